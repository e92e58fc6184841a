//! Every reason the proxy refuses a request, and the one place a refusal becomes a status code
//! and body (SPEC §8). The sensor gets the standard short body; the detail goes to the log.

use std::net::IpAddr;

/// One variant per reason a request is refused. The `String`s carry detail for the log line
/// only; they never reach the sensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No `Authorization` header, or not a well-formed Basic one.
    #[error("missing or malformed Basic credentials")]
    NoCredentials,
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    /// The Basic user is not a configured sensor.
    #[error("unknown sensor")]
    UnknownSensor,
    /// The password does not match the sensor's.
    #[error("wrong password")]
    BadPassword,
    /// The client IP is not in the sensor's list.
    #[error("client ip {0} not allowed for this sensor")]
    IpNotAllowed(IpAddr),
    /// The TLS client certificate does not name the sensor (or names none, or several).
    #[error("client certificate: {0}")]
    CertMismatch(String),
    /// A forwarding header (X-Forwarded-For) that a trusted hop handed us is unusable.
    #[error("bad forwarding header: {0}")]
    BadForwardedFor(String),
    /// Ambiguous HTTP framing (CL + TE, several CLs, TE other than chunked).
    #[error("ambiguous framing: {0}")]
    BadFraming(String),
    /// The path is not canonical (encoded separators, traversal, …).
    #[error("bad path: {0}")]
    BadPath(String),
    /// Method + path is not on the allowlist.
    #[error("API not allowed: {0}")]
    NotAllowed(String),
    /// A query parameter the route does not allow.
    #[error("query not allowed: {0}")]
    BadQuery(String),
    /// An inspected (non-bulk) body failed its check.
    #[error("body refused: {0}")]
    BadBody(String),
    /// A `_bulk` line failed validation (1-based line number in the inflated body).
    #[error("bulk line {line}: {reason}")]
    BadBulk {
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
    /// `Content-Encoding` other than none or gzip, or a broken gzip stream.
    #[error("bad content encoding: {0}")]
    BadEncoding(String),
    /// Body, line or inflated size over a configured limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The request head (request line and headers) is over the configured limit.
    #[error("request head too large: {0}")]
    HeadersTooLarge(String),
    /// No request body byte within `esProxyBodyIdleTimeout`.
    #[error("request body idle: {0}")]
    BodyTimeout(String),
}

/// The response the sensor gets for a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectResponse {
    /// HTTP status.
    pub status: u16,
    /// Body (short plain text; empty for 401).
    pub body: &'static [u8],
    /// Whether `WWW-Authenticate: Basic` is sent.
    pub www_authenticate: bool,
}

/// The body esProxy.js answers for every refused API call; sensors and Arkime's tests match it.
pub const NOT_AUTHORIZED: &[u8] = b"Not authorized for API";

impl Reject {
    /// The status code and body for this refusal.
    pub fn response(&self) -> RejectResponse {
        use Reject::*;
        match self {
            NoCredentials
            | MultipleAuthorization
            | UnknownSensor
            | BadPassword
            | IpNotAllowed(_)
            | CertMismatch(_) => RejectResponse {
                status: 401,
                body: b"",
                www_authenticate: true,
            },
            BadForwardedFor(_) => RejectResponse {
                status: 400,
                body: b"Bad forwarding header",
                www_authenticate: false,
            },
            BadFraming(_) => RejectResponse {
                status: 400,
                body: b"Bad request framing",
                www_authenticate: false,
            },
            TooLarge(_) => RejectResponse {
                status: 413,
                body: b"Request too large",
                www_authenticate: false,
            },
            HeadersTooLarge(_) => RejectResponse {
                status: 431,
                body: b"Request headers too large",
                www_authenticate: false,
            },
            BodyTimeout(_) => RejectResponse {
                status: 408,
                body: b"Request body timeout",
                www_authenticate: false,
            },
            BadPath(_)
            | NotAllowed(_)
            | BadQuery(_)
            | BadBody(_)
            | BadBulk { .. }
            | BadEncoding(_) => RejectResponse {
                status: 400,
                body: NOT_AUTHORIZED,
                www_authenticate: false,
            },
        }
    }

    /// A short, fixed label for metrics and log grouping (bounded cardinality).
    pub fn label(&self) -> &'static str {
        use Reject::*;
        match self {
            NoCredentials => "no_credentials",
            MultipleAuthorization => "multiple_authorization",
            UnknownSensor => "unknown_sensor",
            BadPassword => "bad_password",
            IpNotAllowed(_) => "ip_not_allowed",
            CertMismatch(_) => "cert_mismatch",
            BadForwardedFor(_) => "bad_forwarded_for",
            BadFraming(_) => "bad_framing",
            BadPath(_) => "bad_path",
            NotAllowed(_) => "not_allowed",
            BadQuery(_) => "bad_query",
            BadBody(_) => "bad_body",
            BadBulk { .. } => "bad_bulk",
            BadEncoding(_) => "bad_encoding",
            TooLarge(_) => "too_large",
            HeadersTooLarge(_) => "headers_too_large",
            BodyTimeout(_) => "body_timeout",
        }
    }
}

/// The body of our 502 when no Elasticsearch node answered.
pub const BAD_GATEWAY_BODY: &[u8] =
    br#"{"error":"esproxy: no Elasticsearch node could be reached"}"#;

/// The body of our 504 when an Elasticsearch node went silent and the request could not be
/// sent again.
pub const GATEWAY_TIMEOUT_BODY: &[u8] =
    br#"{"error":"esproxy: Elasticsearch did not answer in time; the request was not sent again"}"#;

/// What the sensor gets when proxying failed for a reason other than one of our refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// This status, with Pingora's standard body.
    Status(u16),
    /// The exchange with ES broke: 502 with [`BAD_GATEWAY_BODY`].
    UpstreamBroke,
    /// No ES peer could be reached: 502 with [`BAD_GATEWAY_BODY`].
    NoPeer,
    /// The ES node went silent for `esProxyUpstreamTimeout`: 504 with [`GATEWAY_TIMEOUT_BODY`].
    UpstreamTimeout,
    /// The sensor's connection is gone: nothing to answer.
    ClientGone,
}

impl Failure {
    /// The failure that `e` is.
    pub fn of(e: &pingora::Error) -> Failure {
        use pingora::{ErrorSource, ErrorType};
        match (e.etype(), e.esource()) {
            (ErrorType::HTTPStatus(c), _) => Failure::Status(*c),
            (ErrorType::ReadTimedout | ErrorType::WriteTimedout, ErrorSource::Upstream) => {
                Failure::UpstreamTimeout
            }
            (_, ErrorSource::Upstream) => Failure::UpstreamBroke,
            (
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
            ) => Failure::ClientGone,
            (_, ErrorSource::Downstream) => Failure::Status(400),
            (ErrorType::ConnectNoRoute, _) => Failure::NoPeer,
            _ => Failure::Status(500),
        }
    }

    /// The status the sensor gets (0: none).
    pub fn status(&self) -> u16 {
        match self {
            Failure::Status(c) => *c,
            Failure::UpstreamBroke | Failure::NoPeer => 502,
            Failure::UpstreamTimeout => 504,
            Failure::ClientGone => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's status, body, challenge and label, in one table: a new variant must be
    /// added to it (the exhaustive match below points here) with the answer the sensor gets.
    #[test]
    fn every_refusal_has_its_pinned_status_body_and_label() {
        let x = || "x".to_string();
        let ip = "192.0.2.1".parse().unwrap();
        #[rustfmt::skip]
        let table: Vec<(Reject, u16, &[u8], bool, &str)> = vec![
            (Reject::NoCredentials, 401, b"", true, "no_credentials"),
            (Reject::MultipleAuthorization, 401, b"", true, "multiple_authorization"),
            (Reject::UnknownSensor, 401, b"", true, "unknown_sensor"),
            (Reject::BadPassword, 401, b"", true, "bad_password"),
            (Reject::IpNotAllowed(ip), 401, b"", true, "ip_not_allowed"),
            (Reject::CertMismatch(x()), 401, b"", true, "cert_mismatch"),
            (Reject::BadForwardedFor(x()), 400, b"Bad forwarding header", false, "bad_forwarded_for"),
            (Reject::BadFraming(x()), 400, b"Bad request framing", false, "bad_framing"),
            (Reject::BadPath(x()), 400, NOT_AUTHORIZED, false, "bad_path"),
            (Reject::NotAllowed(x()), 400, NOT_AUTHORIZED, false, "not_allowed"),
            (Reject::BadQuery(x()), 400, NOT_AUTHORIZED, false, "bad_query"),
            (Reject::BadBody(x()), 400, NOT_AUTHORIZED, false, "bad_body"),
            (Reject::BadBulk { line: 1, reason: x() }, 400, NOT_AUTHORIZED, false, "bad_bulk"),
            (Reject::BadEncoding(x()), 400, NOT_AUTHORIZED, false, "bad_encoding"),
            (Reject::TooLarge(x()), 413, b"Request too large", false, "too_large"),
            (Reject::HeadersTooLarge(x()), 431, b"Request headers too large", false, "headers_too_large"),
            (Reject::BodyTimeout(x()), 408, b"Request body timeout", false, "body_timeout"),
        ];
        for (r, status, body, challenge, label) in &table {
            // Exhaustive: a new variant does not compile until it is named here, beside the table.
            match r {
                Reject::NoCredentials
                | Reject::MultipleAuthorization
                | Reject::UnknownSensor
                | Reject::BadPassword
                | Reject::IpNotAllowed(_)
                | Reject::CertMismatch(_)
                | Reject::BadForwardedFor(_)
                | Reject::BadFraming(_)
                | Reject::BadPath(_)
                | Reject::NotAllowed(_)
                | Reject::BadQuery(_)
                | Reject::BadBody(_)
                | Reject::BadBulk { .. }
                | Reject::BadEncoding(_)
                | Reject::TooLarge(_)
                | Reject::HeadersTooLarge(_)
                | Reject::BodyTimeout(_) => {}
            }
            let resp = r.response();
            assert_eq!(
                (resp.status, resp.body, resp.www_authenticate, r.label()),
                (*status, *body, *challenge, *label),
                "{r:?}"
            );
        }
        let mut labels: Vec<&str> = table.iter().map(|t| t.4).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), table.len(), "labels are unique");
    }

    #[test]
    fn auth_failures_are_401_with_basic_challenge_and_empty_body() {
        for r in [
            Reject::NoCredentials,
            Reject::MultipleAuthorization,
            Reject::UnknownSensor,
            Reject::BadPassword,
            Reject::IpNotAllowed("192.0.2.1".parse().unwrap()),
        ] {
            let resp = r.response();
            assert_eq!(resp.status, 401, "{r}");
            assert!(resp.www_authenticate);
            assert!(resp.body.is_empty());
        }
    }

    #[test]
    fn api_refusals_are_400_not_authorized_for_api() {
        for r in [
            Reject::BadPath("x".into()),
            Reject::NotAllowed("x".into()),
            Reject::BadQuery("x".into()),
            Reject::BadBody("x".into()),
            Reject::BadBulk {
                line: 1,
                reason: "x".into(),
            },
            Reject::BadEncoding("br".into()),
        ] {
            let resp = r.response();
            assert_eq!(resp.status, 400, "{r}");
            assert_eq!(resp.body, b"Not authorized for API");
            assert!(!resp.www_authenticate);
        }
    }

    #[test]
    fn proxy_failures_map_to_one_status_each() {
        use pingora::{Error, ErrorSource, ErrorType};
        let of = |t: ErrorType, src: ErrorSource| Failure::of(&Error::create(t, src, None, None));
        let cases = [
            (
                ErrorType::HTTPStatus(413),
                ErrorSource::Internal,
                Failure::Status(413),
                413,
            ),
            (
                ErrorType::ReadError,
                ErrorSource::Upstream,
                Failure::UpstreamBroke,
                502,
            ),
            (
                ErrorType::ReadTimedout,
                ErrorSource::Upstream,
                Failure::UpstreamTimeout,
                504,
            ),
            (
                ErrorType::WriteTimedout,
                ErrorSource::Upstream,
                Failure::UpstreamTimeout,
                504,
            ),
            (
                ErrorType::ReadError,
                ErrorSource::Downstream,
                Failure::ClientGone,
                0,
            ),
            (
                ErrorType::WriteError,
                ErrorSource::Downstream,
                Failure::ClientGone,
                0,
            ),
            (
                ErrorType::ConnectionClosed,
                ErrorSource::Downstream,
                Failure::ClientGone,
                0,
            ),
            (
                ErrorType::InvalidHTTPHeader,
                ErrorSource::Downstream,
                Failure::Status(400),
                400,
            ),
            (
                ErrorType::ConnectNoRoute,
                ErrorSource::Internal,
                Failure::NoPeer,
                502,
            ),
            (
                ErrorType::InternalError,
                ErrorSource::Internal,
                Failure::Status(500),
                500,
            ),
        ];
        for (t, src, want, status) in cases {
            let got = of(t.clone(), src.clone());
            assert_eq!((got, got.status()), (want, status), "{t:?} from {src:?}");
        }
    }

    #[test]
    fn idle_body_is_408() {
        assert_eq!(Reject::BodyTimeout("x".into()).response().status, 408);
    }

    #[test]
    fn over_limit_is_413() {
        assert_eq!(Reject::TooLarge("x".into()).response().status, 413);
    }
}
