//! esproxy: a security proxy between Arkime sensors and Elasticsearch/OpenSearch.
//!
//! # Data path
//! Every request goes through these decisions, in this order, each owned by one module:
//!
//! ```text
//! connection  ──► connection (caps: open / unauthenticated per client; deadlines to the first
//!                  byte, the TLS handshake and whole head, between keep-alive requests; hands the
//!                  body idle timeout on)
//!             ──► proxy_protocol (PROXY v1/v2 header → the socket peer, read by the gate before
//!                             TLS and HTTP)
//!             ──► tls        (listener certificate; a verified client certificate → node names)
//! raw head    ──► framing    (ambiguous framing / oversized head → 400/431; the body's declared facts)
//! socket peer ──► client_ip  (XFF / trusted proxies → the client's IP; refuses only an unreadable
//!                             header from a trusted hop, never allows or denies a sensor)
//!             ──► auth       (Basic and/or certificate names + client IP → sensor name, or 401)
//!             ──► allowlist  (method + canonical path + query → Route, or Reject → 400)
//!             ──► body_plan  (route + declared body → stream, bulk validator, or small body checked whole)
//!             ──► body_read  (bodies we read ourselves: a small one whole, the rest of a held bulk
//!                             for its replay, a signed request's whole body; how long and how much)
//!             ──► upstream   (pick a healthy ES peer: every address of every name, names
//!                             resolved again in the background; TLS; our credentials
//!                             replace the sensor's)
//!             ──► upstream_head (only allowlisted sensor headers go upstream, and our XFF;
//!                              a body we change goes chunked)
//!             ──► body_flow  (per body chunk: bulk validated, held for replay, mirrored)
//!                   ├ bulk   (only complete, validated lines go upstream; strict: a session
//!                   │         index under an id naming no node goes as create; a gzip bulk of
//!                   │         known small size held whole within esProxyInflateBudget and
//!                   │         inflated by libdeflate, else streamed through zlib-ng)
//!                   ├ tee    (the validated bytes, mirrored in the background; never waits)
//!                   └ replay (a held bulk ES refused with 429/503, lost, or left unanswered
//!                            past esProxyUpstreamTimeout is sent again when that is safe)
//!             ──► sigv4      (esProxySigV4: the body is held whole (body_read), then the request is
//!                             sent by the replayer, signed per attempt; keys refreshed in the background)
//!             ──► retry      (whether Pingora sends a failed attempt again)
//!             ──► proxy      (glue: calls the above in order, answers refusals, logs denials)
//! ```
//! `config` reads the config file and checks that the files it names exist (`tls` and `upstream`
//! load those certificates and keys); `policy` holds the request-check settings it builds for
//! the decision modules; `reject` is the only place a refusal or a
//! proxying failure becomes a status code and body; `json` owns strict JSON reading (the
//! reference parser, the one-pass scanner and the action-line fast path, held to one definition
//! of strict); `logline` is the one place attacker-controlled text is escaped for a log line;
//! `respond` writes the answers the proxy makes itself (refusals, our 502/504, a replay's answer).
//! `simd` holds the byte-class searches the scanner runs on (the only `unsafe` in the crate).
//! Around the data path: `metrics` records what happened (never decides), `reload` swaps the
//! per-request settings on SIGHUP and ends the process after a graceful-shutdown drain.
// `unsafe` is denied everywhere but in `simd` (issue #16), which allows it for its loads.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod allowlist;
pub mod auth;
pub mod body_flow;
pub mod body_plan;
pub mod body_read;
pub mod bulk;
pub mod client_ip;
pub mod config;
pub mod connection;
pub mod framing;
pub mod json;
pub mod logline;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod proxy_protocol;
pub mod reject;
pub mod reload;
pub mod replay;
pub mod respond;
pub mod retry;
pub mod sigv4;
pub mod simd;
pub mod tee;
pub mod tls;
pub mod upstream;
pub mod upstream_head;
