//! The request checks' settings (`prefix`, `esProxyStrict`, the size limits) → [`Policy`], and
//! the sensor listener's deadlines and connection caps → [`crate::connection::Settings`]. Each
//! size and count key has bounds: beyond them a value is a mistake, not a tuning choice.

use std::sync::Arc;

use crate::client_ip::{ProxySet, XffConfig};
use crate::policy::{Limits, Policy, Prefix};

use super::lookup::Builder;
use super::{value, ConfigError};

/// Bounds for the size keys: (min, max). Beyond them a value is a mistake, not a tuning choice.
const MAX_LINE: (u64, u64) = (1 << 10, 8 << 20);
const MAX_BODY: (u64, u64) = (1 << 10, 1 << 30);
const MAX_INFLATED: (u64, u64) = (1 << 10, 1 << 30);
const MAX_CHUNK_INFLATED: (u64, u64) = (64 << 10, 256 << 20);
const MAX_DEPTH: (u64, u64) = (2, 512);
// Pingora replays a buffered body from its retry buffer, which holds at most 64 KiB.
const MAX_SMALL_BODY: (u64, u64) = (1 << 10, 64 << 10);
const MAX_HEADER: (u64, u64) = (1 << 10, 1 << 20);
const INFLATE_BUDGET: (u64, u64) = (0, 16 << 30);
const CONN_TIMEOUT: (u64, u64) = (1, 3600);
const MAX_CONNECTIONS: (u64, u64) = (1, 10_000_000);

impl Builder<'_> {
    pub(super) fn policy(&self) -> Result<Policy, ConfigError> {
        let prefix = self.node_value("prefix", value::prefix)?;
        let strict = self
            .node_value("esProxyStrict", value::boolean)?
            .unwrap_or(true);
        let d = Limits::default();
        let size =
            |key: &str, (min, max): (u64, u64)| self.node_value(key, |v| value::size(v, min, max));
        let limits = Limits {
            max_line: size("esProxyMaxLine", MAX_LINE)?.map_or(d.max_line, |v| v as usize),
            max_body: size("esProxyMaxBody", MAX_BODY)?.unwrap_or(d.max_body),
            max_inflated: size("esProxyMaxInflated", MAX_INFLATED)?.unwrap_or(d.max_inflated),
            max_chunk_inflated: size("esProxyMaxChunkInflated", MAX_CHUNK_INFLATED)?
                .map_or(d.max_chunk_inflated, |v| v as usize),
            max_depth: self
                .node_value("esProxyMaxDepth", |v| {
                    value::count(v, MAX_DEPTH.0, MAX_DEPTH.1)
                })?
                .map_or(d.max_depth, |v| v as usize),
            max_small_body: size("esProxyMaxSmallBody", MAX_SMALL_BODY)?
                .map_or(d.max_small_body, |v| v as usize),
            max_header_bytes: size("esProxyMaxHeaderSize", MAX_HEADER)?
                .map_or(d.max_header_bytes, |v| v as usize),
            inflate_budget: size("esProxyInflateBudget", INFLATE_BUDGET)?
                .map_or(d.inflate_budget, |v| v as usize),
        };
        Ok(Policy {
            prefix: Prefix::new(prefix.as_deref()),
            strict,
            limits,
            sensor_names: Arc::from([]),
        })
    }

    pub(super) fn connection(
        &self,
        policy: &Policy,
        xff: &XffConfig,
    ) -> Result<crate::connection::Settings, ConfigError> {
        let d = crate::connection::Settings::default();
        let secs = |key: &str, default: std::time::Duration| {
            self.node_value(key, |v| value::seconds(v, CONN_TIMEOUT.0, CONN_TIMEOUT.1))
                .map(|v| v.unwrap_or(default))
        };
        let count = |key: &str, default: usize| {
            self.node_value(key, |v| {
                value::count(v, MAX_CONNECTIONS.0, MAX_CONNECTIONS.1)
            })
            .map(|v| v.map_or(default, |n| n as usize))
        };
        // HTTP balancers named in [xff] relay many clients from their own address: not capped
        // as one client unless esProxyConnLimitExempt says otherwise.
        let exempt = match self.node_value("esProxyConnLimitExempt", ProxySet::parse)? {
            Some(set) => set,
            None if xff.enabled() => xff.internal().clone(),
            None => ProxySet::default(),
        };
        Ok(crate::connection::Settings {
            first_byte: secs("esProxyFirstByteTimeout", d.first_byte)?,
            head: secs("esProxyHeadTimeout", d.head)?,
            keepalive: secs("esProxyKeepAliveTimeout", d.keepalive)?,
            body_idle: secs("esProxyBodyIdleTimeout", d.body_idle)?,
            max_head_bytes: policy.limits.max_header_bytes,
            caps: crate::connection::caps::Limits {
                max_connections: count("esProxyMaxConnections", d.caps.max_connections)?,
                max_unauthenticated: count(
                    "esProxyMaxUnauthenticated",
                    d.caps.max_unauthenticated,
                )?,
                per_client: count("esProxyMaxUnauthenticatedPerClient", d.caps.per_client)?,
                exempt,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::net::IpAddr;
    use std::time::Duration;

    #[test]
    fn bad_boolean_and_sizes_are_errors() {
        assert_eq!(
            err(&format!("{ES}esProxyStrict=treu\n")),
            "conf/x.ini:3: [default] esProxyStrict = \"treu\": not a boolean (true or false)"
        );
        assert_eq!(
            err(&format!("{ES}esProxyMaxLine=16M\n")),
            "conf/x.ini:3: [default] esProxyMaxLine = \"16M\": too large (at most 8388608 (8M))"
        );
        assert!(err(&format!("{ES}esProxyMaxBody=lots\n")).contains("not a size"));
        assert!(err(&format!("{ES}esProxyMaxDepth=0\n")).contains("too small"));
        assert!(err(&format!("{ES}esProxyThreads=0\n")).contains("esProxyThreads"));
    }

    #[test]
    fn sizes_and_tuning_keys_are_read() {
        let (c, _) = ok(&format!(
            "{ES}esProxyStrict=false\nesProxyMaxLine=1M\nesProxyMaxBody=32M\nesProxyMaxInflated=128M\n\
             esProxyMaxChunkInflated=4M\nesProxyMaxDepth=32\nesProxyMaxSmallBody=32K\nesProxyMaxHeaderSize=8K\nesProxyThreads=3\n\
             esProxyGracePeriod=0\nesProxyAccessLog=true\nesProxyProxyProtocol=true\n\
             esProxyHealthCheckInterval=10\nesProxyHealthCheckTimeout=3\nesProxyHealthCheckPath=/_cluster/health\n\
             esProxyHost=192.0.2.5\n"
        ));
        assert!(!c.policy.strict);
        let l = &c.policy.limits;
        assert_eq!(
            (
                l.max_line,
                l.max_body,
                l.max_inflated,
                l.max_chunk_inflated,
                l.max_depth,
                l.max_small_body,
                l.max_header_bytes
            ),
            (1 << 20, 32 << 20, 128 << 20, 4 << 20, 32, 32 << 10, 8 << 10)
        );
        assert_eq!(c.threads, 3);
        assert_eq!(c.grace_period, Duration::ZERO);
        assert!(c.access_log && c.listen.proxy_protocol);
        assert_eq!(c.upstream.health.interval, Duration::from_secs(10));
        assert_eq!(c.upstream.health.timeout, Duration::from_secs(3));
        assert_eq!(c.upstream.health.path, "/_cluster/health");
        assert_eq!(c.listen.bind_addr(), "192.0.2.5:7200");
    }

    #[test]
    fn inflate_budget_is_read_zero_turns_it_off_and_bad_values_are_errors() {
        assert_eq!(ok(ES).0.policy.limits.inflate_budget, 32 << 20);
        let (c, _) = ok(&format!("{ES}esProxyInflateBudget=128M\n"));
        assert_eq!(c.policy.limits.inflate_budget, 128 << 20);
        let (c, _) = ok(&format!("{ES}esProxyInflateBudget=0\n"));
        assert_eq!(c.policy.limits.inflate_budget, 0);
        assert!(err(&format!("{ES}esProxyInflateBudget=lots\n")).contains("not a size"));
        assert!(err(&format!("{ES}esProxyInflateBudget=32G\n")).contains("too large"));
    }

    #[test]
    fn bad_prefix_is_an_error() {
        let e = err(&format!("{ES}prefix=Tests*\n"));
        assert!(
            e.starts_with("conf/x.ini:3: [default] prefix = \"Tests*\": not a valid index prefix"),
            "{e}"
        );
    }

    #[test]
    fn connection_limit_exempt_defaults_to_the_xff_balancers_and_can_be_set() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (c, _) = ok(ES);
        assert!(c.connection.caps.exempt.is_empty());
        let (c, _) = ok(&format!(
            "{ES}[xff]\nenabled=true\ninternalProxies=192.0.2.10\n"
        ));
        assert!(c.connection.caps.exempt.contains(ip("192.0.2.10")));
        let (c, _) = ok(&format!(
            "{ES}esProxyConnLimitExempt=198.51.100.0/24\n[xff]\nenabled=true\ninternalProxies=192.0.2.10\n"
        ));
        assert!(c.connection.caps.exempt.contains(ip("198.51.100.7")));
        assert!(!c.connection.caps.exempt.contains(ip("192.0.2.10")));
        let (c, _) = ok(&format!(
            "{ES}esProxyFirstByteTimeout=5\nesProxyHeadTimeout=15\nesProxyKeepAliveTimeout=30\n\
             esProxyBodyIdleTimeout=45\nesProxyMaxConnections=100\nesProxyMaxUnauthenticated=50\n\
             esProxyMaxUnauthenticatedPerClient=5\n"
        ));
        let k = &c.connection;
        assert_eq!(
            (k.first_byte, k.head, k.keepalive, k.body_idle),
            (
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(30),
                Duration::from_secs(45)
            )
        );
        assert_eq!(
            (
                k.caps.max_connections,
                k.caps.max_unauthenticated,
                k.caps.per_client
            ),
            (100, 50, 5)
        );
        assert!(err(&format!("{ES}esProxyHeadTimeout=0\n")).contains("esProxyHeadTimeout"));
    }
}
