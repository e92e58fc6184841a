//! INI syntax → raw sections, keeping line numbers (the first of the two config layers).
//!
//! Owns only the file format Arkime uses: `[section]` headers, `key=value` lines (both sides
//! trimmed, the value may contain `=`, `;` and `#`), whole-line comments starting with `#` or
//! `;`. It knows nothing about what any key means; `config` (mod.rs) turns the raw form into a
//! validated `Config`.
//!
//! Leniency follows from the file often being an operator's whole Arkime `config.ini`: a line
//! that is not a key/value pair, or a key before any section, is reported as an issue (the
//! caller makes it a warning) and skipped. A broken section header is a hard error, because the
//! keys after it would silently land in the wrong section.

/// One `key=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The key, trimmed, case preserved.
    pub key: String,
    /// The value, trimmed; empty means "unset".
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// One section; a section repeated in the file is merged into its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSection {
    /// The name between the brackets, trimmed, case preserved.
    pub name: String,
    /// 1-based line of the (first) header.
    pub line: usize,
    /// Entries in file order; for a duplicated key the later entry wins (see [`RawSection::get`]).
    pub entries: Vec<RawEntry>,
}

impl RawSection {
    /// The entry for `key` (exact, case-sensitive); a key given twice → the later line.
    pub fn get(&self, key: &str) -> Option<&RawEntry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    /// Every distinct key with its winning entry, in order of first appearance.
    pub fn effective(&self) -> impl Iterator<Item = &RawEntry> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, e)| !self.entries[..*i].iter().any(|p| p.key == e.key))
            .filter_map(|(_, e)| self.get(&e.key))
    }
}

/// A line the parser skipped, for a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// A line that makes the file unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong and how to fix it.
    pub message: String,
}

/// The whole file, sections in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawIni {
    /// Sections.
    pub sections: Vec<RawSection>,
    /// Skipped lines.
    pub issues: Vec<Issue>,
}

impl RawIni {
    /// The section called `name` (exact, case-sensitive).
    pub fn section(&self, name: &str) -> Option<&RawSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// `key` in section `name`.
    pub fn get(&self, section: &str, key: &str) -> Option<&RawEntry> {
        self.section(section)?.get(key)
    }
}

/// Parses INI text.
pub fn parse(text: &str) -> Result<RawIni, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ini = RawIni::default();
    let mut current: Option<usize> = None;
    for (idx, raw_line) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(SyntaxError {
                    line,
                    message: format!("section header {trimmed:?} has no closing `]`"),
                });
            };
            let name = name.trim();
            if name.is_empty() || name.contains(['[', ']']) {
                return Err(SyntaxError {
                    line,
                    message: format!("bad section header {trimmed:?}"),
                });
            }
            current = Some(match ini.sections.iter().position(|s| s.name == name) {
                Some(i) => i,
                None => {
                    ini.sections.push(RawSection {
                        name: name.to_string(),
                        line,
                        entries: Vec::new(),
                    });
                    ini.sections.len() - 1
                }
            });
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            ini.issues.push(Issue {
                line,
                message: format!(
                    "ignored line {:?}: not `key=value`, a `[section]` or a comment",
                    cut(trimmed)
                ),
            });
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            ini.issues.push(Issue {
                line,
                message: "ignored line: empty key before `=`".to_string(),
            });
            continue;
        }
        let Some(section) = current else {
            ini.issues.push(Issue {
                line,
                message: format!("ignored key {key:?}: it comes before any [section]"),
            });
            continue;
        };
        ini.sections[section].entries.push(RawEntry {
            key: key.to_string(),
            value: value.trim().to_string(),
            line,
        });
    }
    Ok(ini)
}

/// Shortens a line for a message (it may hold a secret, so only its start is shown).
fn cut(s: &str) -> String {
    const MAX: usize = 24;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_and_line_numbers_are_kept() {
        let ini = parse(
            "# c\n[default]\nelasticsearch = http://192.0.2.1:9200 \n\n[esproxy]\nprefix=tests\n",
        )
        .unwrap();
        let e = ini.get("default", "elasticsearch").unwrap();
        assert_eq!(e.value, "http://192.0.2.1:9200");
        assert_eq!(e.line, 3);
        assert_eq!(ini.get("esproxy", "prefix").unwrap().line, 6);
        assert_eq!(ini.section("esproxy").unwrap().line, 5);
    }

    #[test]
    fn value_may_contain_equals_semicolons_and_hashes() {
        let ini = parse("[s]\nfilenameOps=tags=/gre-(.*)\\.pcap%x;a#b\n").unwrap();
        assert_eq!(
            ini.get("s", "filenameOps").unwrap().value,
            "tags=/gre-(.*)\\.pcap%x;a#b"
        );
    }

    #[test]
    fn comments_start_with_hash_or_semicolon_after_indentation() {
        let ini = parse("[s]\n# a=1\n  ; b=2\nc=3\n").unwrap();
        let s = ini.section("s").unwrap();
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.entries[0].key, "c");
    }

    #[test]
    fn later_duplicate_key_wins() {
        let ini = parse("[s]\na=1\na=2\n").unwrap();
        let e = ini.get("s", "a").unwrap();
        assert_eq!((e.value.as_str(), e.line), ("2", 3));
        assert_eq!(ini.section("s").unwrap().effective().count(), 1);
    }

    #[test]
    fn repeated_section_is_merged_and_later_keys_win() {
        let ini = parse("[s]\na=1\nb=1\n[t]\n[s]\na=2\n").unwrap();
        assert_eq!(ini.sections.len(), 2);
        assert_eq!(ini.get("s", "a").unwrap().value, "2");
        assert_eq!(ini.get("s", "b").unwrap().value, "1");
    }

    #[test]
    fn empty_value_is_kept_as_empty() {
        let ini = parse("[default]\nkeyFile=\n").unwrap();
        assert_eq!(ini.get("default", "keyFile").unwrap().value, "");
    }

    #[test]
    fn names_are_case_sensitive() {
        let ini = parse("[Default]\nPrefix=x\n").unwrap();
        assert!(ini.section("default").is_none());
        assert!(ini.get("Default", "prefix").is_none());
    }

    #[test]
    fn crlf_and_bom_are_tolerated() {
        let ini = parse("\u{feff}[s]\r\na=1\r\n").unwrap();
        assert_eq!(ini.get("s", "a").unwrap().value, "1");
    }

    #[test]
    fn junk_lines_are_issues_not_errors() {
        let ini = parse("stray=1\n[s]\nnot a pair\n=v\nk=v\n").unwrap();
        let lines: Vec<_> = ini.issues.iter().map(|i| i.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert_eq!(ini.get("s", "k").unwrap().value, "v");
    }

    #[test]
    fn issue_text_shows_only_the_start_of_a_line() {
        let ini = parse("[s]\nthisisaverylongsecretlinewithoutanyequalsign\n").unwrap();
        assert!(!ini.issues[0].message.contains("withoutanyequalsign"));
    }

    #[test]
    fn broken_section_header_is_an_error_with_its_line() {
        let e = parse("[default]\na=1\n[esproxy\nb=2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("closing"));
        assert_eq!(parse("[]\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]b]\n").unwrap_err().line, 1);
    }
}
