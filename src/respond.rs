//! Writing the answers the proxy makes itself, rather than relaying Elasticsearch's: a refusal,
//! our 502 and 504, the answer to another proxying failure (logged here), and ES's answer to a
//! replayed bulk. Framing and headers only: which status and body a refusal or failure gets is
//! `reject`'s decision. Every such answer closes the connection (a possibly large unread body
//! is never drained).

use crate::logline;
use crate::reject::{Failure, Reject, BAD_GATEWAY_BODY, GATEWAY_TIMEOUT_BODY};
use crate::replay;
use bytes::Bytes;
use log::warn;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// Writes the refusal response (never carrying Elasticsearch's headers).
pub async fn refusal(session: &mut Session, r: &Reject) -> Result<u16> {
    let resp = r.response();
    let mut h = ResponseHeader::build(resp.status, Some(4))?;
    if resp.www_authenticate {
        h.insert_header("WWW-Authenticate", "Basic")?;
    }
    h.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    h.insert_header("Content-Length", resp.body.len().to_string())?;
    // Never drain a possibly huge refused body to reuse the connection: close it.
    session.set_keepalive(None);
    session.write_response_header(Box::new(h), false).await?;
    session
        .write_response_body(Some(Bytes::from_static(resp.body)), true)
        .await?;
    Ok(resp.status)
}

/// Relays ES's answer to a replayed bulk (buffered whole, so framed by length).
pub async fn replayed(session: &mut Session, a: replay::Answer) -> u16 {
    let status = a.header.status.as_u16();
    let write = async {
        let mut h = a.header;
        for name in [
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
            http::header::CONTENT_LENGTH,
        ] {
            h.remove_header(&name);
        }
        h.remove_header("Keep-Alive");
        h.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
        session.set_keepalive(None);
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(a.body), true).await
    };
    match write.await {
        Ok(()) => status,
        Err(_) => 0,
    }
}

/// Writes our 502 (no Elasticsearch node answered); the status written, or 0.
pub async fn bad_gateway(session: &mut Session) -> u16 {
    json_error(session, 502, BAD_GATEWAY_BODY).await
}

/// Writes our 504 (an Elasticsearch node went silent and the request could not be sent again);
/// the status written, or 0.
pub async fn gateway_timeout(session: &mut Session) -> u16 {
    json_error(session, 504, GATEWAY_TIMEOUT_BODY).await
}

/// Writes one of our own JSON error answers; the status written, or 0.
async fn json_error(session: &mut Session, status: u16, body: &'static [u8]) -> u16 {
    let write = async {
        let mut h = ResponseHeader::build(status, Some(3))?;
        h.insert_header("Content-Type", "application/json")?;
        h.insert_header("Content-Length", body.len().to_string())?;
        session.set_keepalive(None);
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(Bytes::from_static(body)), true)
            .await
    };
    match write.await {
        Ok(()) => status,
        Err(_) => 0,
    }
}

/// Answers a proxying failure that is not one of our refusals, and logs why (`sensor`: who sent
/// the request; `not_resent`: why a silent node's request was not sent again). Returns the
/// status written, else the one [`Failure::status`] names for the log.
pub async fn failure(
    session: &mut Session,
    e: &Error,
    failure: Failure,
    sensor: Option<&str>,
    not_resent: &str,
) -> u16 {
    match failure {
        Failure::Status(c) => {
            let _ = session.respond_error(c).await;
        }
        Failure::UpstreamBroke => {
            logline::upstream("error", sensor, session.req_header(), format_args!("{e}"));
            return bad_gateway(session).await;
        }
        Failure::NoPeer => {
            warn!("no Elasticsearch peer reachable: {e}");
            return bad_gateway(session).await;
        }
        Failure::UpstreamTimeout => {
            // Counted and the node marked down when it happened; say why no re-send.
            logline::upstream(
                "timeout",
                sensor,
                session.req_header(),
                format_args!("504, not sent again: {not_resent}: {e}"),
            );
            return gateway_timeout(session).await;
        }
        Failure::ClientGone => {}
    }
    failure.status()
}
