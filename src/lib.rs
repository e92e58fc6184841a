//! esproxy: a security proxy between Arkime sensors and Elasticsearch/OpenSearch.
//!
//! # Data path
//! Every request goes through these decisions, in this order, each owned by one module:
//!
//! ```text
//! socket peer ──► client_ip  (XFF / trusted proxies → the client's IP; never allows or denies by itself)
//!             ──► auth       (Basic credentials + client IP → sensor name, or Reject → 401)
//!             ──► allowlist  (method + canonical path + query → Route, or Reject → 400)
//!             ──► upstream   (pick a healthy ES peer; TLS; our credentials replace the sensor's)
//!             ──► bulk       (per body chunk: only complete, validated lines go upstream)
//!             ──► proxy      (glue: calls the above in order, maps Reject → response, logs denials)
//! ```
//! `config` is the only module that reads files; `reject` is the only place a refusal becomes a
//! status code and body; `json` is the one strict JSON reader the body checks share.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod allowlist;
pub mod auth;
pub mod bulk;
pub mod client_ip;
pub mod config;
pub mod framing;
pub mod json;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod proxy_protocol;
pub mod reject;
pub mod replay;
pub mod tee;
pub mod tls;
pub mod reload;
pub mod upstream;
