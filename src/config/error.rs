//! What a configuration mistake looks like: [`ConfigError`] (unusable) and [`Warning`]
//! (works, probably not what was meant), both pointing at file, line, section and key, and
//! [`is_secret`], which decides which values are never echoed in them.

use std::fmt;
use std::path::PathBuf;

/// Where a diagnostic points, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Diag {
    pub(super) file: PathBuf,
    pub(super) line: Option<usize>,
    pub(super) section: Option<String>,
    pub(super) key: Option<String>,
    /// Already redacted.
    pub(super) value: Option<String>,
    pub(super) message: String,
}

impl Diag {
    /// A diagnostic about the file as a whole, or one line of it outside any key.
    pub(super) fn in_file(file: &std::path::Path, line: Option<usize>, message: String) -> Diag {
        Diag {
            file: file.to_path_buf(),
            line,
            section: None,
            key: None,
            value: None,
            message,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(s) = &self.section {
            write!(f, "[{s}] ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}")?;
            if let Some(v) = &self.value {
                write!(f, " = {v:?}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A configuration that cannot be used. Displays as
/// `file:line: [section] key = "value": what is wrong and how to fix it`
/// (secrets are never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(super) Box<Diag>);

/// Something in the configuration that works but is probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub(super) Diag);

macro_rules! diag_accessors {
    ($t:ty) => {
        impl $t {
            /// 1-based line, when the problem is on one line.
            pub fn line(&self) -> Option<usize> {
                self.0.line
            }
            /// Section, when known.
            pub fn section(&self) -> Option<&str> {
                self.0.section.as_deref()
            }
            /// Key, when known.
            pub fn key(&self) -> Option<&str> {
                self.0.key.as_deref()
            }
            /// What is wrong (without the location).
            pub fn message(&self) -> &str {
                &self.0.message
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
diag_accessors!(ConfigError);
diag_accessors!(Warning);

impl std::error::Error for ConfigError {}

/// Keys whose values are secrets: never echoed in messages. Matched loosely, so a misspelt
/// secret key (`elasticsearchBasicauth`) is not echoed either.
pub(super) fn is_secret(section: &str, key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    section == "esproxy-sensors"
        || ["pass", "auth", "apikey", "secret", "token"]
            .iter()
            .any(|s| k.contains(s))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

    #[test]
    fn bad_port_error_names_file_line_section_key_value() {
        let text =
            "[default]\nelasticsearch=http://127.0.0.1:9200\n\n\n\n\n\n\n\n\n\nesProxyPort=72x0\n";
        assert_eq!(
            load(text, Some("esproxy")).unwrap_err().to_string(),
            "conf/x.ini:12: [default] esProxyPort = \"72x0\": not a port number (1-65535)"
        );
    }

    #[test]
    fn misspelt_secret_key_warning_does_not_echo_the_value() {
        let (_, w) = ok(&format!("{ES}elasticsearchBasicauth=elastic:hunter2\n"));
        let w = w
            .iter()
            .find(|w| w.key() == Some("elasticsearchBasicauth"))
            .unwrap();
        assert!(!w.to_string().contains("hunter2"), "{w}");
        assert!(w.message().contains("`elasticsearchBasicAuth`"), "{w}");
    }

    #[test]
    fn every_password_in_a_url_list_is_hidden() {
        let e = err(
            "[default]\nelasticsearch=http://a:hunter1@192.0.2.1,http://b:hunter2@192.0.2.2:0\n",
        );
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn bad_url_error_hides_the_password() {
        let e = err("[default]\nelasticsearch=http://elastic:hunter2@192.0.2.1:99999\n");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.starts_with("conf/x.ini:2: [default] elasticsearch = \"http://elastic:***@"),
            "{e}"
        );
    }

    #[test]
    fn bad_secret_values_are_never_echoed() {
        let e = err(&format!("{ES}elasticsearchBasicAuth=not base64 hunter2\n"));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.starts_with("conf/x.ini:3: [default] elasticsearchBasicAuth: "),
            "{e}"
        );
        let e = err(&format!("{ES}[esproxy-sensors]\nt=pass:hunter2;ip:nope\n"));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.starts_with("conf/x.ini:4: [esproxy-sensors] t: "), "{e}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let (c, _) = ok(
            "[default]\nelasticsearch=http://u:hunter1@192.0.2.1\nelasticsearchBasicAuth=e:hunter2\n\
             [esproxy-sensors]\nt=pass:hunter3\n[tee]\nelasticsearch=http://192.0.2.2\nelasticsearchAPIKey=hunter4\n"
        );
        let d = format!("{c:?}");
        for s in ["hunter", &b64("e:hunter2"), &b64("u:hunter1")] {
            assert!(!d.contains(s), "{s} in {d}");
        }
    }
}
