//! Which keys and sections are ours, and likely misspellings of them (warnings only).
//!
//! We cannot reject unknown keys the way River does: the file is often an operator's whole Arkime
//! `config.ini`. So keys of theirs are ignored, and only keys that look like a mistyped key *of
//! ours* get a warning naming the nearest known one.

use super::error::Warning;
use super::lookup::{Builder, Found};

/// `[$keys]` and the SigV4 keys, which are read alike from the node's section and from `[tee]`
/// (config/sigv4.rs): one list of them for both sections.
macro_rules! with_sigv4_keys {
    ([$($key:literal),* $(,)?]) => {
        &[
            $($key,)*
            "esProxySigV4",
            "esProxySigV4Region",
            "esProxySigV4Service",
            "esProxySigV4CredentialUrl",
            "esProxySigV4CredentialCert",
            "esProxySigV4CredentialKey",
            "esProxySigV4RoleArn",
            "esProxySigV4AccessKeyId",
            "esProxySigV4SecretAccessKey",
            "esProxySigV4SessionToken",
        ]
    };
}

/// Keys read from the node's section or `[default]`.
pub const NODE_KEYS: &[&str] = with_sigv4_keys!([
    "elasticsearch",
    "esProxyPort",
    "esProxyHost",
    "certFile",
    "keyFile",
    "prefix",
    "insecure",
    "caTrustFile",
    "esClientCert",
    "esClientKey",
    "esClientKeyPass",
    "elasticsearchAPIKey",
    "elasticsearchBasicAuth",
    "esProxyStrict",
    "esProxyMaxLine",
    "esProxyMaxBody",
    "esProxyMaxInflated",
    "esProxyMaxChunkInflated",
    "esProxyMaxDepth",
    "esProxyMaxSmallBody",
    "esProxyMaxHeaderSize",
    "esProxyInflateBudget",
    "esProxyThreads",
    "esProxyProxyProtocol",
    "esProxyClientCA",
    "esProxyClientCertRequired",
    "esProxyMetricsPort",
    "esProxyMetricsHost",
    "esProxyGracePeriod",
    "esProxyHealthCheckInterval",
    "esProxyHealthCheckTimeout",
    "esProxyHealthCheckPath",
    "esProxyUpstreamTimeout",
    "esProxyDnsInterval",
    "esProxyAccessLog",
    "esProxyFirstByteTimeout",
    "esProxyHeadTimeout",
    "esProxyKeepAliveTimeout",
    "esProxyBodyIdleTimeout",
    "esProxyMaxConnections",
    "esProxyMaxUnauthenticated",
    "esProxyMaxUnauthenticatedPerClient",
    "esProxyConnLimitExempt",
    "esProxySigV4MaxBody",
]);

/// Keys read from `[tee]`.
pub const TEE_KEYS: &[&str] = with_sigv4_keys!([
    "elasticsearch",
    "elasticsearchAPIKey",
    "elasticsearchBasicAuth",
    "caTrustFile",
    "esClientCert",
    "esClientKey",
    "esClientKeyPass",
    "insecure",
]);

/// Keys read from `[xff]`.
pub const XFF_KEYS: &[&str] = &[
    "enabled",
    "remoteIpHeader",
    "internalProxies",
    "trustedProxies",
];

/// Sections that belong to the proxy.
pub const SECTIONS: &[&str] = &["esproxy-sensors", "tee", "xff"];

/// esProxy.js settings this proxy does not implement (exact names or name prefixes).
fn unsupported(key: &str) -> bool {
    key == "esProxyUnsafeLogging"
}

/// Levenshtein distance over ASCII-lower-cased bytes (keys are short).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.bytes().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `key`, with its distance.
pub fn nearest<'a>(key: &str, candidates: &[&'a str]) -> (&'a str, usize) {
    candidates
        .iter()
        .map(|c| (*c, edit_distance(key, c)))
        .min_by_key(|(_, d)| *d)
        .unwrap_or(("", usize::MAX))
}

/// A warning text for a key in the node section or `[default]`, if it looks like one of ours
/// gone wrong; `None` for keys that are ours or plainly someone else's.
pub fn node_key(key: &str) -> Option<String> {
    if NODE_KEYS.contains(&key) {
        return None;
    }
    if unsupported(key) {
        return Some(format!(
            "`{key}` is an esProxy.js setting this proxy does not support; ignored"
        ));
    }
    if let Some(k) = NODE_KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(format!(
            "unknown key (names are case-sensitive); did you mean `{k}`?"
        ));
    }
    if key.to_ascii_lowercase().starts_with("esproxy") {
        let ours: Vec<&str> = NODE_KEYS
            .iter()
            .copied()
            .filter(|k| k.starts_with("esProxy"))
            .collect();
        let (k, _) = nearest(key, &ours);
        return Some(format!("unknown esProxy setting; did you mean `{k}`?"));
    }
    // Long keys of ours one or two typos away (`elasticserch`); short ones would collide with
    // Arkime's own keys.
    let (k, d) = nearest(key, NODE_KEYS);
    if d <= 2 && k.len() >= 10 {
        return Some(format!("unknown key; did you mean `{k}`?"));
    }
    None
}

/// A warning text for a key in one of our own sections (`[tee]`, `[xff]`): anything unknown.
pub fn own_section_key(key: &str, known: &[&str]) -> Option<String> {
    if known.contains(&key) {
        return None;
    }
    if unsupported(key) {
        return Some(format!(
            "`{key}` is an esProxy.js setting this proxy does not support; ignored"
        ));
    }
    let (k, _) = nearest(key, known);
    Some(format!("unknown key, ignored; did you mean `{k}`?"))
}

/// A warning text for a section name that looks like one of ours (or the node's) mistyped.
pub fn section_name(name: &str, node: &str) -> Option<String> {
    if SECTIONS.contains(&name) || name == node || name == "default" {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if let Some(s) = SECTIONS
        .iter()
        .chain([&node, &"default"])
        .find(|s| s.eq_ignore_ascii_case(name))
    {
        return Some(format!(
            "section names are case-sensitive; did you mean [{s}]?"
        ));
    }
    if lower.starts_with("esproxy") && edit_distance(&lower, "esproxy-sensors") <= 2 {
        return Some("unknown section; did you mean [esproxy-sensors]?".to_string());
    }
    None
}

impl Builder<'_> {
    /// Misspelling and section-name warnings.
    pub(super) fn lint(&mut self, explicit_node: bool) {
        let ini = self.ini;
        if explicit_node && self.node != "default" && ini.section(&self.node).is_none() {
            self.warn_at(
                None,
                None,
                format!(
                    "no [{}] section for node {:?}: using [default] only",
                    self.node, self.node
                ),
            );
        }
        for issue in &ini.issues {
            self.warn_at(None, Some(issue.line), issue.message.clone());
        }
        for section in &ini.sections {
            if let Some(msg) = section_name(&section.name, &self.node) {
                self.warn_at(Some(&section.name), Some(section.line), msg);
            }
            let known: Option<&[&str]> = match section.name.as_str() {
                "tee" => Some(TEE_KEYS),
                "xff" => Some(XFF_KEYS),
                n if n == self.node || n == "default" => None,
                _ => continue,
            };
            for entry in section.effective() {
                let msg = match known {
                    Some(k) => own_section_key(&entry.key, k),
                    None => node_key(&entry.key),
                };
                if let Some(msg) = msg {
                    let f = Found {
                        section: &section.name,
                        entry,
                    };
                    // The value is left out: the key is unknown, so we cannot tell a secret.
                    let mut d = self.diag(&f, msg);
                    d.value = None;
                    self.warnings.push(Warning(d));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_support::{load, ok, ES};

    #[test]
    fn edit_distance_counts_edits_ignoring_case() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("esProxyPort", "esproxyport"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn our_keys_and_foreign_keys_are_silent() {
        for k in [
            "esProxyPort",
            "elasticsearch",
            "pcapDir",
            "viewPort",
            "plugins",
            "usersElasticsearch",
        ] {
            assert_eq!(node_key(k), None, "{k}");
        }
    }

    #[test]
    fn wrong_case_of_our_key_names_the_right_one() {
        assert!(node_key("esproxyport").unwrap().contains("`esProxyPort`"));
        assert!(node_key("CaTrustFile").unwrap().contains("`caTrustFile`"));
    }

    #[test]
    fn unknown_esproxy_key_names_the_nearest() {
        assert!(node_key("esProxyMaxLines")
            .unwrap()
            .contains("`esProxyMaxLine`"));
        assert!(node_key("esProxyGracePeriode")
            .unwrap()
            .contains("`esProxyGracePeriod`"));
        assert!(node_key("esProxyHealthcheckPat")
            .unwrap()
            .contains("`esProxyHealthCheckPath`"));
    }

    #[test]
    fn long_key_typos_are_caught() {
        assert!(node_key("elasticserch")
            .unwrap()
            .contains("`elasticsearch`"));
    }

    #[test]
    fn esproxy_js_only_settings_are_called_unsupported() {
        assert!(node_key("esProxyUnsafeLogging")
            .unwrap()
            .contains("does not support"));
        assert!(own_section_key("esProxyUnsafeLogging", TEE_KEYS)
            .unwrap()
            .contains("does not support"));
        // The SigV4 keys are ours; a misspelt one is named.
        assert!(node_key("esProxySigV4Region").is_none());
        assert!(own_section_key("esProxySigV4Region", TEE_KEYS).is_none());
        assert!(node_key("esProxySigv4RoleArm")
            .unwrap()
            .contains("`esProxySigV4RoleArn`"));
    }

    #[test]
    fn own_sections_flag_every_unknown_key() {
        assert!(own_section_key("internalProxy", XFF_KEYS)
            .unwrap()
            .contains("`internalProxies`"));
        assert_eq!(own_section_key("enabled", XFF_KEYS), None);
    }

    #[test]
    fn misspelt_section_names_name_ours_and_foreign_ones_are_silent() {
        assert!(section_name("esproxy-sensor", "esproxy").is_some());
        assert!(section_name("XFF", "esproxy").unwrap().contains("[xff]"));
        assert!(section_name("ESProxy", "esproxy")
            .unwrap()
            .contains("[esproxy]"));
        assert_eq!(section_name("test", "esproxy"), None);
        assert_eq!(section_name("headers-http-request", "esproxy"), None);
    }

    /// Backticked words of `text`.
    fn ticked(text: &str) -> impl Iterator<Item = &str> {
        text.split('`').skip(1).step_by(2)
    }

    /// The config keys are written in four places: the doc table of `config/mod.rs`, the lint
    /// lists here, the readers' literals (mod.rs and its reader modules) and reload's restart
    /// list. They must name the same keys.
    #[test]
    fn doc_table_lint_lists_builder_and_restart_list_name_the_same_keys() {
        use std::collections::BTreeSet;
        let module = include_str!("mod.rs");
        let code = module.split("\n#[cfg(test)]").next().unwrap();
        let node: BTreeSet<&str> = NODE_KEYS.iter().copied().collect();

        // The doc table's key column.
        let table: BTreeSet<&str> = code
            .lines()
            .filter_map(|l| l.strip_prefix("//! | "))
            .filter(|row| row.starts_with('`'))
            .flat_map(|row| ticked(&row[..row.find(" |").unwrap_or(row.len())]))
            .collect();
        assert_eq!(table, node, "doc table vs NODE_KEYS");

        // The `[tee]` and `[xff]` bullets.
        let bullet = |name: &str| -> BTreeSet<&str> {
            let start = code.find(&format!("//! - `[{name}]`")).unwrap();
            let rest = &code[start..];
            let end = rest[3..].find("//! -").map_or(rest.len(), |i| i + 3);
            let end = end.min(rest.find("\n\n").unwrap_or(rest.len()));
            ticked(&rest[..end])
                .filter(|w| !w.starts_with('['))
                .collect()
        };
        assert_eq!(
            bullet("tee"),
            TEE_KEYS.iter().copied().collect(),
            "[tee] doc"
        );
        let xff: BTreeSet<&str> = bullet("xff")
            .into_iter()
            .filter(|w| XFF_KEYS.contains(w) || w.chars().next().is_some_and(char::is_lowercase))
            .filter(|w| !w.contains([' ', ':']) && *w != "false")
            .collect();
        assert_eq!(xff, XFF_KEYS.iter().copied().collect(), "[xff] doc");

        // The builder reads every listed key by its literal name, and no unlisted esProxy key
        // (mod.rs and the reader modules: sigv4, listen, upstream, limits, sensors).
        let readers = [
            include_str!("sigv4.rs"),
            include_str!("listen.rs"),
            include_str!("upstream.rs"),
            include_str!("limits.rs"),
            include_str!("sensors.rs"),
        ];
        let builder: String = std::iter::once(code)
            .chain(readers.map(|r| r.split("\n#[cfg(test)]").next().unwrap()))
            .flat_map(str::lines)
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for k in NODE_KEYS.iter().chain(TEE_KEYS).chain(XFF_KEYS) {
            assert!(
                builder.contains(&format!("\"{k}\"")),
                "{k} is listed but never read"
            );
        }
        for lit in builder.split('"').skip(1).step_by(2) {
            if lit.starts_with("esProxy") && lit.bytes().all(|b| b.is_ascii_alphanumeric()) {
                assert!(node.contains(lit), "{lit} is read but not listed");
            }
        }

        // Reload's restart list names only listed keys.
        let reload = include_str!("../reload.rs");
        let start = reload.find("pub fn restart_only_changes").unwrap();
        let body = &reload[start..start + reload[start..].find("\n}\n").unwrap()];
        let mut named = 0;
        for lit in body.split('"').skip(1).step_by(2) {
            for word in lit.split(|c: char| !c.is_ascii_alphanumeric()) {
                let looks_like_key = word.starts_with("esProxy")
                    || word.starts_with("elasticsearch")
                    || word.ends_with("File");
                if looks_like_key {
                    named += 1;
                    assert!(node.contains(word), "restart list names {word}, not a key");
                }
            }
        }
        assert!(named >= 10, "restart list parsed: {named} keys");
    }

    #[test]
    fn unknown_keys_are_ignored_silently() {
        let (_, w) = ok(&format!(
            "{ES}pcapDir=/tmp\nplugins=a.so\nrulesFiles=r.yaml\nspiDataMaxIndices=-1\n[custom-fields]\nx=kind:termfield\n"
        ));
        assert!(w.iter().all(|w| w.key().is_none()), "{w:?}");
    }

    #[test]
    fn misspelt_key_of_ours_warns_with_the_nearest_known_one() {
        let (c, w) = ok(&format!("{ES}esProxyPrt=7300\n"));
        assert_eq!(c.listen.port, 7200);
        let w = w.iter().find(|w| w.key() == Some("esProxyPrt")).unwrap();
        assert_eq!(w.line(), Some(3));
        assert_eq!(w.section(), Some("default"));
        assert!(w.message().contains("`esProxyPort`"), "{w}");
        assert!(
            w.to_string()
                .starts_with("conf/x.ini:3: [default] esProxyPrt: unknown esProxy setting"),
            "{w}"
        );
    }

    #[test]
    fn wrong_case_of_our_key_warns() {
        let (_, w) = ok(&format!("{ES}esproxyport=7300\n"));
        assert!(
            w.iter().any(|w| w.message().contains("`esProxyPort`")),
            "{w:?}"
        );
    }

    #[test]
    fn unknown_keys_in_our_sections_warn() {
        let (_, w) = ok(&format!(
            "{ES}[xff]\nenable=true\n[tee]\nelasticsearh=http://192.0.2.9:9200\n"
        ));
        assert!(w.iter().any(|w| w.message().contains("`enabled`")), "{w:?}");
        assert!(
            w.iter().any(|w| w.message().contains("`elasticsearch`")),
            "{w:?}"
        );
    }

    #[test]
    fn misspelt_section_warns() {
        let (_, w) = ok(&format!("{ES}[esproxy-sensor]\na=pass:x\n"));
        assert!(
            w.iter().any(|w| w.message().contains("[esproxy-sensors]")),
            "{w:?}"
        );
    }

    #[test]
    fn explicit_node_without_section_warns() {
        let (_, w) = load(ES, Some("esprxy")).unwrap();
        assert!(
            w.iter()
                .any(|w| w.message().contains("no [esprxy] section")),
            "{w:?}"
        );
    }

    #[test]
    fn junk_lines_are_warnings() {
        let (_, w) = ok(&format!("{ES}just some words\n"));
        assert!(w.iter().any(|w| w.line() == Some(3)), "{w:?}");
    }
}
