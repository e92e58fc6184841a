//! One integration binary: every test runs the real `esproxy` executable against real
//! `osmem-server` upstreams and asserts on what the upstream stored.

mod arkime_regression;
mod auth_and_allowlist;
mod bulk_stream;
mod capture_trace;
mod client_ip;
mod connection;
mod dns;
mod harness;
mod hostile;
mod loadgen;
mod ops;
mod pool;
mod session_ids;
mod siege;
mod sigv4;
mod stall;
mod strict;
mod tee;
mod tls;
mod upstream_head;
mod viewer_trace;

/// Arkime's own regression layout (`[esproxy] prefix=tests`, sensor `test`), run with `-n esproxy`.
pub fn arkime_test_ini(es: &str, strict: bool) -> String {
    format!(
        "[default]\nelasticsearch=http://127.0.0.1:1\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n\
         [esproxy]\nprefix=tests\nelasticsearch= , {es},\nesProxyStrict={strict}\n\
         [esproxy-sensors]\ntest=pass:test;ip:127.0.0.1,::1\ntest2=pass:test2;ip:127.0.0.1\n\
         iponly=ip:192.0.2.10\n"
    )
}

/// A production-like layout: default prefix, sensors `toronto01` and `toronto011`.
pub fn fleet_ini(es: &str, extra: &str) -> String {
    format!(
        "[default]\nelasticsearch={es}\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n{extra}\n\
         [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\ntoronto011=pass:secret2;ip:127.0.0.1\n"
    )
}
