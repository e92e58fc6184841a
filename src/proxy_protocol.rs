//! PROXY protocol v1 and v2 (HAProxy's `proxy-protocol.txt`) on the sensor listener
//! (`esProxyProxyProtocol=true`). This module owns one decision: *which address a connection
//! comes from* when a layer-4 balancer sits in front. That address then stands in for the socket
//! peer everywhere (`client_ip` still applies X-Forwarded-For on top of it).
//!
//! Two parts:
//! - [`parse`]: a pure parser over the bytes read so far. It either completes, or says how many
//!   more bytes are certainly part of the header ([`Parse::Incomplete`]), so the reader never
//!   consumes a byte of the request that follows.
//! - The glue: [`read_header`] drives the parser over any async reader; the connection gate
//!   (`crate::connection`) reads the header first, before any TLS handshake or HTTP byte, and
//!   [`apply`] replaces the stream's socket digest so `Session::client_addr()` is the balancer's
//!   client.
//!
//! When the setting is on, a connection without a valid header is closed without an answer (the
//! balancer is broken or someone bypasses it). When it is off, nothing here runs and a PROXY line
//! is just a malformed HTTP request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::{GetSocketDigest, SocketDigest, UniqueID};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature every v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 header starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 line, CRLF included (spec §2.1).
pub const V1_MAX_LEN: usize = 107;
/// Longest v2 address + TLV block we accept. The spec allows 65535, but real balancers send a
/// few hundred bytes at most; a cap bounds what an unauthenticated peer makes us buffer.
pub const V2_MAX_PAYLOAD: usize = 4096;
/// How long a connection may take to send its header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a complete header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The balancer relays a TCP connection from `source` (to `destination`).
    Proxied {
        /// The client as the balancer saw it.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// v2 `LOCAL` (the balancer's own health check), v1 `UNKNOWN`, or a v2 family we do not
    /// relay for (UNSPEC, UNIX): the connection's own peer address stands.
    Local,
}

/// Result of [`parse`] over the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The header is complete and was `len` bytes long; the request starts right after it.
    Complete {
        /// What it says.
        header: Header,
        /// Its length in bytes.
        len: usize,
    },
    /// At least `need` more bytes belong to the header (reading exactly that many never reads
    /// into the request).
    Incomplete {
        /// Bytes to read next (≥ 1).
        need: usize,
    },
}

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Neither the v1 prefix nor the v2 signature.
    #[error("connection does not start with a PROXY protocol header")]
    NotProxy,
    /// A malformed v1 line.
    #[error("bad PROXY v1 header: {0}")]
    V1(&'static str),
    /// A malformed v2 header.
    #[error("bad PROXY v2 header: {0}")]
    V2(&'static str),
    /// The peer closed or failed before the header was complete.
    #[error("reading the PROXY header: {0}")]
    Io(String),
    /// The header did not arrive within [`HEADER_TIMEOUT`].
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
}

/// Parses the PROXY header at the start of `buf` (the bytes read so far, nothing more).
pub fn parse(buf: &[u8]) -> Result<Parse, HeaderError> {
    let sig_len = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig_len] == V2_SIGNATURE[..sig_len] && !buf.is_empty() {
        if buf.len() < 16 {
            return Ok(Parse::Incomplete {
                need: 16 - buf.len(),
            });
        }
        return parse_v2(buf);
    }
    let pre_len = buf.len().min(V1_PREFIX.len());
    if buf[..pre_len] == V1_PREFIX[..pre_len] {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parse::Incomplete {
                need: V1_PREFIX.len() - buf.len(),
            });
        }
        return parse_v1(buf);
    }
    Err(HeaderError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Parse, HeaderError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() >= V1_MAX_LEN {
            return Err(HeaderError::V1("no CRLF within 107 bytes"));
        }
        // The line ends somewhere ahead; one byte at a time is the only way not to overshoot.
        return Ok(Parse::Incomplete { need: 1 });
    };
    let len = lf + 1;
    if len > V1_MAX_LEN {
        return Err(HeaderError::V1("line longer than 107 bytes"));
    }
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(HeaderError::V1("line does not end in CRLF"));
    }
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..lf - 1])
        .map_err(|_| HeaderError::V1("not ASCII"))?;
    if !line.is_ascii() || line.contains('\r') {
        return Err(HeaderError::V1("not ASCII"));
    }
    let mut parts = line.split(' ');
    let header = match parts.next() {
        // "the receiver must ignore anything presented before the CRLF is found"
        Some("UNKNOWN") => Header::Local,
        Some(proto @ ("TCP4" | "TCP6")) => {
            let v6 = proto == "TCP6";
            let mut field = || parts.next().ok_or(HeaderError::V1("missing field"));
            let src = v1_ip(field()?, v6)?;
            let dst = v1_ip(field()?, v6)?;
            let sport = v1_port(field()?)?;
            let dport = v1_port(field()?)?;
            if parts.next().is_some() {
                return Err(HeaderError::V1("extra fields"));
            }
            Header::Proxied {
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            }
        }
        _ => return Err(HeaderError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parse::Complete { header, len })
}

fn v1_ip(s: &str, v6: bool) -> Result<IpAddr, HeaderError> {
    if v6 {
        s.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| HeaderError::V1("bad IPv6 address"))
    } else {
        s.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| HeaderError::V1("bad IPv4 address"))
    }
}

fn v1_port(s: &str) -> Result<u16, HeaderError> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return Err(HeaderError::V1("bad port"));
    }
    s.parse().map_err(|_| HeaderError::V1("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Parse, HeaderError> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(HeaderError::V2("version is not 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(HeaderError::V2("command is neither LOCAL nor PROXY")),
    };
    let fam = buf[13];
    let payload = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if payload > V2_MAX_PAYLOAD {
        return Err(HeaderError::V2("address block too long"));
    }
    let len = 16 + payload;
    if buf.len() < len {
        return Ok(Parse::Incomplete {
            need: len - buf.len(),
        });
    }
    let addr = &buf[16..len];
    if local {
        // The balancer speaking for itself: the addresses (if any) are to be ignored.
        return Ok(Parse::Complete {
            header: Header::Local,
            len,
        });
    }
    let header = match fam {
        // AF_UNSPEC, or AF_UNIX stream/datagram: no IP to use, keep the socket's.
        0x00 | 0x31 | 0x32 => Header::Local,
        0x11 => {
            if addr.len() < 12 {
                return Err(HeaderError::V2("IPv4 address block shorter than 12 bytes"));
            }
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    addr[o],
                    addr[o + 1],
                    addr[o + 2],
                    addr[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([addr[o], addr[o + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        0x21 => {
            if addr.len() < 36 {
                return Err(HeaderError::V2("IPv6 address block shorter than 36 bytes"));
            }
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&addr[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            let port = |o: usize| u16::from_be_bytes([addr[o], addr[o + 1]]);
            Header::Proxied {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        0x12 | 0x22 => return Err(HeaderError::V2("UDP on a TCP listener")),
        _ => return Err(HeaderError::V2("unknown address family or protocol")),
    };
    Ok(Parse::Complete { header, len })
}

/// Reads exactly one PROXY header from `r` (never a byte more) within [`HEADER_TIMEOUT`].
pub async fn read_header<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> Result<Header, HeaderError> {
    let read = async {
        let mut buf = Vec::with_capacity(V1_MAX_LEN);
        loop {
            match parse(&buf)? {
                Parse::Complete { header, .. } => return Ok(header),
                Parse::Incomplete { need } => {
                    let start = buf.len();
                    buf.resize(start + need, 0);
                    r.read_exact(&mut buf[start..])
                        .await
                        .map_err(|e| HeaderError::Io(e.to_string()))?;
                }
            }
        }
    };
    match tokio::time::timeout(HEADER_TIMEOUT, read).await {
        Ok(res) => res,
        Err(_) => Err(HeaderError::Timeout(HEADER_TIMEOUT)),
    }
}

/// Makes `source` the peer address Pingora reports for this stream. The socket digest's
/// `peer_addr` is a once-cell that the listener may already have filled with the balancer's
/// address, so a fresh digest over the same socket replaces it.
fn set_peer<S: GetSocketDigest + UniqueID + ?Sized>(stream: &mut S, source: SocketAddr) {
    let digest = SocketDigest::from_raw_fd(stream.id());
    let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(source)));
    stream.set_socket_digest(digest);
}

/// Applies a header read by [`read_header`]: a relayed connection's source becomes the peer
/// address Pingora reports; `Local` keeps the socket's.
pub fn apply<S: GetSocketDigest + UniqueID + ?Sized>(stream: &mut S, header: Header) {
    if let Header::Proxied { source, .. } = header {
        set_peer(stream, source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Header, usize) {
        match parse(buf) {
            Ok(Parse::Complete { header, len }) => (header, len),
            other => panic!("expected a complete header, got {other:?}"),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = V2_SIGNATURE.to_vec();
        b.push(0x20 | cmd);
        b.push(fam);
        b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    fn v4_payload() -> Vec<u8> {
        let mut p = vec![192, 0, 2, 10, 198, 51, 100, 1];
        p.extend_from_slice(&51234u16.to_be_bytes());
        p.extend_from_slice(&7200u16.to_be_bytes());
        p
    }

    /// Feeds `buf` through the parser the way `read_header` does, checking it never asks for a
    /// byte past the header.
    fn drive(buf: &[u8]) -> Result<(Header, usize), HeaderError> {
        let mut have = 0;
        loop {
            match parse(&buf[..have])? {
                Parse::Complete { header, len } => return Ok((header, len)),
                Parse::Incomplete { need } => {
                    assert!(need >= 1);
                    have += need;
                    assert!(have <= buf.len(), "asked past the end of {buf:?}");
                }
            }
        }
    }

    #[test]
    fn v1_tcp4_gives_source_and_exact_length() {
        let line = b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 7200\r\n";
        let mut buf = line.to_vec();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, len) = drive(&buf).unwrap();
        assert_eq!(len, line.len());
        assert_eq!(
            h,
            Header::Proxied {
                source: sa("192.0.2.10:51234"),
                destination: sa("198.51.100.1:7200")
            }
        );
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let (h, _) = complete(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
        assert_eq!(
            h,
            Header::Proxied {
                source: sa("[2001:db8::1]:1"),
                destination: sa("[2001:db8::2]:65535")
            }
        );
        assert_eq!(complete(b"PROXY UNKNOWN\r\n").0, Header::Local);
        assert_eq!(
            complete(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").0,
            Header::Local
        );
    }

    #[test]
    fn v1_never_reads_past_the_line() {
        // One byte at a time once the prefix is in: the request right behind is never touched.
        assert_eq!(
            parse(b"PROXY TCP4 1").unwrap(),
            Parse::Incomplete { need: 1 }
        );
        assert_eq!(parse(b"PRO").unwrap(), Parse::Incomplete { need: 3 });
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 7200\n"[..],
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 7200 9\r\n",
            b"PROXY TCP4  192.0.2.10 198.51.100.1 51234 7200\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 51234 7200\r\n",
            b"PROXY TCP6 192.0.2.10 2001:db8::2 51234 7200\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 051234 7200\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 7200\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 7200\r\n",
            b"PROXY TCP4 192.0.2.999 198.51.100.1 1 7200\r\n",
            b"PROXY UDP4 192.0.2.10 198.51.100.1 1 2\r\n",
            b"PROXY tcp4 192.0.2.10 198.51.100.1 1 2\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 192.0.2.10\xff198.51.100.1 1 2\r\n",
        ] {
            assert!(
                matches!(drive(bad), Err(HeaderError::V1(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn v1_without_crlf_in_107_bytes_is_refused() {
        let mut long = b"PROXY TCP6 ".to_vec();
        long.resize(200, b'1');
        assert!(matches!(drive(&long), Err(HeaderError::V1(_))));
    }

    #[test]
    fn anything_else_is_not_proxy() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01",
            b"proxy ",
            b"\r\n\r\n\0\r\nQUIZ",
        ] {
            assert_eq!(parse(bad), Err(HeaderError::NotProxy), "{bad:?}");
        }
    }

    #[test]
    fn v2_proxy_ipv4_and_exact_length() {
        let mut buf = v2(1, 0x11, &v4_payload());
        let hdr_len = buf.len();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (h, len) = drive(&buf).unwrap();
        assert_eq!(len, hdr_len);
        assert_eq!(
            h,
            Header::Proxied {
                source: sa("192.0.2.10:51234"),
                destination: sa("198.51.100.1:7200")
            }
        );
    }

    #[test]
    fn v2_proxy_ipv6_with_tlvs() {
        let src: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut p = src.octets().to_vec();
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&443u16.to_be_bytes());
        p.extend_from_slice(&7200u16.to_be_bytes());
        p.extend_from_slice(&[0x04, 0x00, 0x02, b'h', b'i']); // a NOOP TLV, ignored
        let (h, len) = drive(&v2(1, 0x21, &p)).unwrap();
        assert_eq!(len, 16 + p.len());
        assert_eq!(
            h,
            Header::Proxied {
                source: sa("[2001:db8::10]:443"),
                destination: sa("[2001:db8::1]:7200")
            }
        );
    }

    #[test]
    fn v2_local_and_unspec_keep_the_socket_address() {
        assert_eq!(drive(&v2(0, 0x00, &[])).unwrap().0, Header::Local);
        assert_eq!(drive(&v2(0, 0x11, &v4_payload())).unwrap().0, Header::Local);
        assert_eq!(drive(&v2(1, 0x00, &[])).unwrap().0, Header::Local);
        assert_eq!(drive(&v2(1, 0x31, &[0; 216])).unwrap().0, Header::Local);
    }

    #[test]
    fn v2_malformed_headers_are_refused() {
        let mut bad_version = v2(1, 0x11, &v4_payload());
        bad_version[12] = 0x11;
        let mut bad_command = v2(1, 0x11, &v4_payload());
        bad_command[12] = 0x22;
        for bad in [
            bad_version,
            bad_command,
            v2(1, 0x11, &v4_payload()[..11]),
            v2(1, 0x21, &[0; 35]),
            v2(1, 0x12, &v4_payload()),
            v2(1, 0x41, &v4_payload()),
            v2(1, 0x11, &vec![0; V2_MAX_PAYLOAD + 1]),
        ] {
            assert!(matches!(drive(&bad), Err(HeaderError::V2(_))), "{bad:?}");
        }
    }

    #[test]
    fn v2_truncated_header_asks_for_exactly_the_rest() {
        let full = v2(1, 0x11, &v4_payload());
        assert_eq!(parse(&full[..5]).unwrap(), Parse::Incomplete { need: 11 });
        assert_eq!(parse(&full[..16]).unwrap(), Parse::Incomplete { need: 12 });
        assert_eq!(parse(&full[..20]).unwrap(), Parse::Incomplete { need: 8 });
    }

    #[tokio::test]
    async fn read_header_leaves_the_request_unread_and_reports_early_close() {
        let mut data: &[u8] = b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 7200\r\nGET /";
        let h = read_header(&mut data).await.unwrap();
        assert!(matches!(h, Header::Proxied { .. }));
        assert_eq!(data, b"GET /");

        let mut short: &[u8] = &v2(1, 0x11, &v4_payload())[..20];
        assert!(matches!(
            read_header(&mut short).await,
            Err(HeaderError::Io(_))
        ));
    }
}
