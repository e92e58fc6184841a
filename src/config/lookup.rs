//! Where a key is looked up: the node's section (`-n NODE`, else the short host name), then
//! `[default]`; the first that has the key decides, and an empty value there means unset. The
//! [`Builder`] that the other config modules extend with one reader per concern lives here,
//! with the helpers that parse a found value and point errors at its line.

use std::path::{Path, PathBuf};

use super::error::{is_secret, ConfigError, Diag, Warning};
use super::ini::{RawEntry, RawIni};
use super::value;

/// Arkime's default node name: the host name up to the first `.`.
pub(super) fn short_hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().split('.').next()?.to_string();
    (!h.is_empty()).then_some(h)
}

/// A key found in some section.
pub(super) struct Found<'a> {
    pub(super) section: &'a str,
    pub(super) entry: &'a RawEntry,
}

impl Found<'_> {
    /// The value, `None` when empty (= unset).
    pub(super) fn value(&self) -> Option<&str> {
        Some(self.entry.value.as_str()).filter(|v| !v.is_empty())
    }
}

/// Reads the keys of one parsed file; each config module adds the readers of its concern.
pub(super) struct Builder<'a> {
    pub(super) ini: &'a RawIni,
    pub(super) file: &'a Path,
    pub(super) node: String,
    pub(super) warnings: Vec<Warning>,
}
impl<'a> Builder<'a> {
    pub(super) fn diag(&self, found: &Found<'_>, message: String) -> Diag {
        let (section, key) = (found.section, found.entry.key.as_str());
        let value = if is_secret(section, key) {
            None
        } else if key == "elasticsearch" {
            Some(
                found
                    .entry
                    .value
                    .split(',')
                    .map(value::redact_url)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        } else {
            Some(found.entry.value.clone())
        };
        Diag {
            file: self.file.to_path_buf(),
            line: Some(found.entry.line),
            section: Some(section.to_string()),
            key: Some(key.to_string()),
            value,
            message,
        }
    }

    pub(super) fn error(&self, found: &Found<'_>, message: impl Into<String>) -> ConfigError {
        ConfigError(Box::new(self.diag(found, message.into())))
    }

    pub(super) fn warn(&mut self, found: &Found<'_>, message: impl Into<String>) {
        let d = self.diag(found, message.into());
        self.warnings.push(Warning(d));
    }

    /// An error about a key that is missing or about a combination of keys.
    pub(super) fn error_at(
        &self,
        section: &str,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError(Box::new(Diag {
            file: self.file.to_path_buf(),
            line: None,
            section: Some(section.to_string()),
            key: Some(key.to_string()),
            value: None,
            message: message.into(),
        }))
    }

    pub(super) fn warn_at(
        &mut self,
        section: Option<&str>,
        line: Option<usize>,
        message: impl Into<String>,
    ) {
        self.warnings.push(Warning(Diag {
            file: self.file.to_path_buf(),
            line,
            section: section.map(str::to_string),
            key: None,
            value: None,
            message: message.into(),
        }));
    }

    /// The sections searched for node-level keys, in order.
    pub(super) fn node_sections(&self) -> Vec<&'a str> {
        let mut v = Vec::with_capacity(2);
        if let Some(s) = self.ini.section(&self.node) {
            v.push(s.name.as_str());
        }
        if self.node != "default" {
            if let Some(s) = self.ini.section("default") {
                v.push(s.name.as_str());
            }
        }
        v
    }

    /// The first of `sections` that has `key`.
    pub(super) fn find_in(&self, sections: &[&'a str], key: &str) -> Option<Found<'a>> {
        sections.iter().find_map(|s| {
            self.ini
                .get(s, key)
                .map(|entry| Found { section: s, entry })
        })
    }

    pub(super) fn node_key(&self, key: &str) -> Option<Found<'a>> {
        self.find_in(&self.node_sections(), key)
    }

    /// A set, non-empty key parsed with `parse`; errors point at its line.
    pub(super) fn parse_found<T>(
        &self,
        found: Option<Found<'a>>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<(T, Found<'a>)>, ConfigError> {
        let Some(found) = found else { return Ok(None) };
        let Some(v) = found.value() else {
            return Ok(None);
        };
        match parse(v) {
            Ok(t) => Ok(Some((t, found))),
            Err(msg) => Err(self.error(&found, msg)),
        }
    }

    pub(super) fn node_value<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        Ok(self.parse_found(self.node_key(key), parse)?.map(|(t, _)| t))
    }

    /// A path key whose file must exist and be readable.
    pub(super) fn file_value(
        &self,
        found: Option<Found<'a>>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        self.parse_found(found, |v| {
            let p = PathBuf::from(v);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => Ok(p),
                Ok(_) => Err("not a regular file".to_string()),
                Err(e) => Err(format!("cannot use this file: {e}")),
            }
        })
        .map(|o| o.map(|(p, _)| p))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::short_hostname;

    #[test]
    fn node_section_overrides_default() {
        let text = "[default]\nelasticsearch=http://192.0.2.1:9200\nesProxyPort=7300\nprefix=a\n\
                    [n1]\nesProxyPort=7301\n";
        let (c, _) = load(text, Some("n1")).unwrap();
        assert_eq!(c.listen.port, 7301);
        assert_eq!(c.policy.prefix.p, "a_", "falls back to [default]");
        let (c, _) = load(text, Some("other")).unwrap();
        assert_eq!(c.listen.port, 7300);
    }

    #[test]
    fn empty_value_in_node_section_unsets_the_default() {
        let text = format!(
            "[default]\nelasticsearch=http://192.0.2.1:9200\ncertFile={f}\nkeyFile={f}\n\
             [esproxy]\ncertFile=\nkeyFile=\n",
            f = existing()
        );
        let (c, _) = ok(&text);
        assert!(c.listen.tls.is_none());
        let (c, _) = load(&text, Some("other")).unwrap();
        assert!(c.listen.tls.is_some());
    }

    #[test]
    fn node_defaults_to_the_short_host_name() {
        let text = "[default]\nelasticsearch=http://192.0.2.1:9200\n";
        let (c, _) = load(text, None).unwrap();
        if let Some(h) = short_hostname() {
            assert_eq!(c.node, h);
            assert!(!c.node.contains('.'));
        }
    }
}
