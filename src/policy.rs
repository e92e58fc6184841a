//! The request-policy knobs shared by the pure decision modules (allowlist, bulk): index prefix,
//! strictness, size limits and the configured sensor names. Built by `config`; read-only
//! everywhere else.

use std::sync::Arc;

/// Arkime's index prefix rule (SPEC §1): `P` always ends in `_` (default `arkime_`), and the
/// "old prefix" `O` used for `sessions2` indices is empty when `P` is `arkime_`, else `P`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// `P`: the prefix of every Arkime index (`arkime_`, `tests_`, …).
    pub p: String,
    /// `O`: the prefix of legacy `sessions2` indices and templates.
    pub old: String,
}

impl Prefix {
    /// Applies Arkime's rule to a configured `prefix` value (`None` = not set).
    pub fn new(configured: Option<&str>) -> Prefix {
        let mut p = match configured {
            None => "arkime_".to_string(),
            Some(v) => v.to_string(),
        };
        if !p.is_empty() && !p.ends_with('_') {
            p.push('_');
        }
        if p.is_empty() {
            // Arkime treats an empty prefix as the default one.
            p = "arkime_".to_string();
        }
        let old = if p == "arkime_" {
            String::new()
        } else {
            p.clone()
        };
        Prefix { p, old }
    }
}

impl Default for Prefix {
    fn default() -> Self {
        Prefix::new(None)
    }
}

/// Size and shape limits on what sensors send (config keys documented in `conf/esproxy.ini`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest allowed bulk line (action or document), bytes after inflating.
    pub max_line: usize,
    /// Largest allowed request body as received (compressed or not).
    pub max_body: u64,
    /// Largest allowed inflated size of a gzip body.
    pub max_inflated: u64,
    /// Largest inflated output one received chunk may produce (a gzip-bomb guard that also
    /// bounds per-request memory).
    pub max_chunk_inflated: usize,
    /// Deepest allowed JSON nesting in any inspected line or body.
    pub max_depth: usize,
    /// Largest non-bulk body the proxy buffers to inspect (search bodies, stats docs, …).
    pub max_small_body: usize,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
    /// Process-wide bytes that gzip bulks held for whole-body inflate may take (compressed
    /// body and inflated output); 0 turns whole-body inflate off.
    pub inflate_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 8 * 1024 * 1024,
            max_body: 64 * 1024 * 1024,
            max_inflated: 64 * 1024 * 1024,
            max_chunk_inflated: 16 * 1024 * 1024,
            max_depth: 64,
            max_small_body: 64 * 1024,
            max_header_bytes: 16 * 1024,
            inflate_budget: 32 * 1024 * 1024,
        }
    }
}

/// Everything the pure request checks need besides the request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Index prefixes.
    pub prefix: Prefix,
    /// `esProxyStrict` (default true): the rules of SPEC §4/§5 beyond esProxy.js.
    pub strict: bool,
    /// Size limits.
    pub limits: Limits,
    /// Every configured sensor name (`[esproxy-sensors]`): a session id shaped like another
    /// sensor's consistent id is refused (`bulk::session_id`).
    pub sensor_names: Arc<[String]>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prefix: Prefix::default(),
            strict: true,
            limits: Limits::default(),
            sensor_names: Arc::from([]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_has_empty_old_prefix() {
        let p = Prefix::new(None);
        assert_eq!(p.p, "arkime_");
        assert_eq!(p.old, "");
    }

    #[test]
    fn prefix_without_underscore_gets_one_and_is_also_the_old_prefix() {
        let p = Prefix::new(Some("tests"));
        assert_eq!(p.p, "tests_");
        assert_eq!(p.old, "tests_");
    }

    #[test]
    fn explicit_arkime_prefix_behaves_like_default() {
        assert_eq!(Prefix::new(Some("arkime")), Prefix::default());
    }
}
