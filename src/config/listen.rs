//! The sensor listener's keys (`esProxyHost`, `esProxyPort`, `certFile`/`keyFile`, client
//! certificates, PROXY protocol) → [`Listen`], and the metrics listener, which must not
//! collide with it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::lookup::Builder;
use super::{value, ConfigError};

/// The listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// `esProxyHost` (IP or host name, no brackets); `None` = all interfaces.
    pub host: Option<String>,
    /// `esProxyPort`.
    pub port: u16,
    /// `certFile`/`keyFile`: TLS on the listener.
    pub tls: Option<ServerTls>,
    /// `esProxyProxyProtocol`: each connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
}

impl Listen {
    /// The address to bind, `host:port` with IPv6 in brackets. Unset host → `[::]:PORT`, which
    /// on Linux (default `bindv6only=0`) also accepts IPv4, like Node's `listen(port)`; a caller
    /// on a host without IPv6 may fall back to `0.0.0.0:PORT`.
    pub fn bind_addr(&self) -> String {
        match &self.host {
            None => format!("[::]:{}", self.port),
            Some(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Some(h) => format!("{h}:{}", self.port),
        }
    }
}

/// Listener certificate and key (PEM files, checked to exist at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// `certFile`.
    pub cert: PathBuf,
    /// `keyFile`.
    pub key: PathBuf,
    /// `esProxyClientCA`: CA bundle for sensor client certificates.
    pub client_ca: Option<PathBuf>,
    /// `esProxyClientCertRequired`: the handshake fails without a client certificate.
    pub client_cert_required: bool,
}

impl Builder<'_> {
    pub(super) fn listen(&self) -> Result<Listen, ConfigError> {
        let port = self.node_value("esProxyPort", value::port)?.unwrap_or(7200);
        let host = self.node_value("esProxyHost", value::host)?;
        let cert_found = self.node_key("certFile");
        let key_found = self.node_key("keyFile");
        let cert = self.file_value(self.node_key("certFile"))?;
        let key = self.file_value(self.node_key("keyFile"))?;
        let client_ca_found = self.node_key("esProxyClientCA");
        let client_ca = self.file_value(self.node_key("esProxyClientCA"))?;
        let required_found = self.node_key("esProxyClientCertRequired");
        let client_cert_required = self
            .node_value("esProxyClientCertRequired", value::boolean)?
            .unwrap_or(false);
        if let (Some(f), true) = (&client_ca_found, cert.is_none()) {
            return Err(self.error(f, "client certificates need TLS: set certFile and keyFile"));
        }
        if let (Some(f), true, None) = (&required_found, client_cert_required, &client_ca) {
            return Err(self.error(
                f,
                "set esProxyClientCA too (the CA that signs sensor certificates)",
            ));
        }
        let tls = match (cert, key, cert_found, key_found) {
            (Some(cert), Some(key), _, _) => Some(ServerTls {
                cert,
                key,
                client_ca,
                client_cert_required,
            }),
            (Some(_), None, Some(f), _) => {
                return Err(self.error(&f, "keyFile must be set too (both or neither enable TLS)"))
            }
            (None, Some(_), _, Some(f)) => {
                return Err(self.error(&f, "certFile must be set too (both or neither enable TLS)"))
            }
            _ => None,
        };
        let proxy_protocol = self
            .node_value("esProxyProxyProtocol", value::boolean)?
            .unwrap_or(false);
        Ok(Listen {
            host,
            port,
            tls,
            proxy_protocol,
        })
    }

    pub(super) fn metrics(&self, listen: &Listen) -> Result<Option<SocketAddr>, ConfigError> {
        let port = self.parse_found(self.node_key("esProxyMetricsPort"), value::port)?;
        let host: IpAddr = self
            .node_value("esProxyMetricsHost", value::ip)?
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let Some((port, found)) = port else {
            return Ok(None);
        };
        let overlaps = match &listen.host {
            None => true,
            Some(h) => host.is_unspecified() || h.parse::<IpAddr>().ok() == Some(host),
        };
        if port == listen.port && overlaps {
            return Err(self.error(&found, "must differ from esProxyPort"));
        }
        Ok(Some(SocketAddr::new(host, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::path::PathBuf;

    #[test]
    fn ipv6_listen_host_is_bracketed_in_bind_addr() {
        let (c, _) = ok(&format!("{ES}esProxyHost=[::1]\nesProxyPort=7201\n"));
        assert_eq!(c.listen.host.as_deref(), Some("::1"));
        assert_eq!(c.listen.bind_addr(), "[::1]:7201");
    }

    #[test]
    fn listener_tls_needs_both_files_and_they_must_exist() {
        let f = existing();
        let (c, _) = ok(&format!("{ES}certFile={f}\nkeyFile={f}\n"));
        let tls = c.listen.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from(&f));
        let e = err(&format!("{ES}certFile={f}\n"));
        assert!(e.starts_with("conf/x.ini:3: [default] certFile"), "{e}");
        assert!(e.contains("keyFile must be set too"), "{e}");
        let e = err(&format!("{ES}certFile={f}\nkeyFile=/nonexistent/key.pem\n"));
        assert!(
            e.starts_with(
                "conf/x.ini:4: [default] keyFile = \"/nonexistent/key.pem\": cannot use this file"
            ),
            "{e}"
        );
    }

    #[test]
    fn client_certificate_keys_need_tls_and_a_ca() {
        let f = existing();
        let (c, _) = ok(&format!(
            "{ES}certFile={f}\nkeyFile={f}\nesProxyClientCA={f}\nesProxyClientCertRequired=true\n"
        ));
        let tls = c.listen.tls.unwrap();
        assert_eq!(tls.client_ca, Some(PathBuf::from(&f)));
        assert!(tls.client_cert_required);
        let e = err(&format!("{ES}esProxyClientCA={f}\n"));
        assert!(e.contains("need TLS"), "{e}");
        let e = err(&format!(
            "{ES}certFile={f}\nkeyFile={f}\nesProxyClientCertRequired=true\n"
        ));
        assert!(e.contains("set esProxyClientCA too"), "{e}");
    }

    #[test]
    fn metrics_listener_defaults_to_loopback_and_must_differ_from_the_proxy() {
        let (c, _) = ok(&format!("{ES}esProxyMetricsPort=9100\n"));
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        let (c, _) = ok(&format!(
            "{ES}esProxyMetricsPort=9100\nesProxyMetricsHost=::1\n"
        ));
        assert_eq!(c.metrics, Some("[::1]:9100".parse().unwrap()));
        let e = err(&format!("{ES}esProxyMetricsPort=7200\n"));
        assert!(e.contains("must differ from esProxyPort"), "{e}");
        assert!(err(&format!(
            "{ES}esProxyMetricsPort=9100\nesProxyMetricsHost=localhost\n"
        ))
        .contains("not an IP address"));
    }
}
