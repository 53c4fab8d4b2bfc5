//! Reading the configuration file, and saying what is wrong with it without ever quoting it.
//!
//! The file may hold the agent's token and notification URLs with secrets in them, and a
//! config error goes to the journal (readable by the `adm` group). So no error shows the
//! file's text: a syntax error is told as its line, column and the parser's own words (never
//! its excerpt of the source line, which is what `toml`'s and figment's `Display` print); a
//! value that does not fit its key is shown only for keys that cannot hold a secret; a name
//! from the file (an unknown key) only when it looks like a key.

use super::ConfigError;
use figment::error::{Actual, Kind};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider, Source};
use std::path::{Path, PathBuf};
use toml_edit::ImDocument;

/// Keys whose value may be (or hold) a secret, and is therefore never shown: the token, the
/// places a token is pasted by mistake (a path, a URL), and the notification URLs (SPEC §5:
/// they may carry secrets and are never logged in full).
const SECRET_KEYS: [&str; 6] = [
    "agent.token",
    "agent.token_file",
    "agent.url",
    "notify.webhook",
    "notify.ntfy",
    "notify.ping",
];

/// The configuration file, read and parsed once: figment reads its values from here, and an
/// error's key is looked up here for its line.
pub(super) struct TomlFile {
    path: PathBuf,
    text: String,
    doc: ImDocument<String>,
}

impl TomlFile {
    /// Reads and parses `path`. A syntax error names the file, the line and the column, and
    /// says what the parser expected — never what it found.
    pub(super) fn read(path: &Path) -> Result<TomlFile, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Invalid(format!("reading {}: {e}", path.display())))?;
        match ImDocument::parse(text.clone()) {
            Ok(doc) => Ok(TomlFile {
                path: path.to_path_buf(),
                text,
                doc,
            }),
            Err(e) => {
                let (line, column) = match e.span() {
                    Some(span) => line_column(&text, span.start),
                    None => (0, 0),
                };
                Err(ConfigError::Invalid(format!(
                    "{} line {line}, column {column}: not valid TOML: {} (the line is not \
                     shown: it may hold a secret)",
                    path.display(),
                    parser_words(e.message())
                )))
            }
        }
    }

    /// The line of the value at `path` (`["agent", "token"]`), or of the nearest section
    /// that holds it.
    fn line_of(&self, path: &[String]) -> Option<usize> {
        let mut item = self.doc.as_item();
        let mut line = None;
        for key in path {
            match item.get(key.as_str()) {
                Some(inner) => item = inner,
                None => break,
            }
            if let Some(span) = item.span() {
                line = Some(line_column(&self.text, span.start).0);
            }
        }
        line
    }

    /// The key an error is about: `path`, or, for an error about a whole section (checked as
    /// a whole: `[agent]`, `[notify]`), the key of that section its message names
    /// (`notify.webhook: ...`).
    fn refined(&self, path: &[String], message: &str) -> Vec<String> {
        let [section] = path else {
            return path.to_vec();
        };
        let keys = self
            .doc
            .as_item()
            .get(section.as_str())
            .and_then(|s| s.as_table_like())
            .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>())
            .unwrap_or_default();
        keys.into_iter()
            .find(|k| message.contains(&format!("{section}.{k}")))
            .map_or_else(|| path.to_vec(), |k| vec![section.clone(), k])
    }

    /// Every error of `error`, each with its key, the file (or the environment) and the line.
    pub(super) fn describe(&self, error: figment::Error) -> String {
        let mut out = Vec::new();
        for err in error {
            let key = err.path.join(".");
            let from_file = matches!(
                err.metadata.as_ref().and_then(|m| m.source.as_ref()),
                Some(Source::File(_))
            );
            let text = kind_text(&err.kind, &key);
            let place = match &err.metadata {
                _ if from_file => match self.line_of(&self.refined(&err.path, &text)) {
                    Some(line) => format!(" in {} line {line}", self.path.display()),
                    None => format!(" in {}", self.path.display()),
                },
                Some(m) => match &m.source {
                    Some(s) => format!(" in {s}"),
                    None => format!(" in {}", m.name),
                },
                None => format!(" in {}", self.path.display()),
            };
            // An unknown key's name is in its path too.
            let shown_key: Vec<&str> = err
                .path
                .iter()
                .map(|k| {
                    if looks_like_a_name(k) {
                        k.as_str()
                    } else {
                        "…"
                    }
                })
                .collect();
            let key_part = if key.is_empty() {
                String::new()
            } else {
                format!(" (key `{}`)", shown_key.join("."))
            };
            out.push(format!("{text}{key_part}{place}"));
        }
        out.join("; ")
    }
}

/// figment reads the values from the text already parsed; its errors then name this file.
impl Provider for TomlFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("TOML file", self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // The text parsed once already; should figment's parser still refuse it, its message
        // (which quotes the line) is replaced in `kind_text`, as an error without a key.
        Toml::string(&self.text).data()
    }
}

/// What is wrong with the value of `key`, in figment's words where they cannot show a secret.
fn kind_text(kind: &Kind, key: &str) -> String {
    let secret = SECRET_KEYS.contains(&key);
    match kind {
        // Without a key: a provider's own error, such as its parser's, which quotes the line.
        Kind::Message(_) if key.is_empty() => {
            "the file does not parse (its text is not shown)".to_owned()
        }
        // With a key: a value's own parser (ours; felhom-notify's, whose errors show a URL
        // only redacted) names what is wrong.
        Kind::Message(m) if !secret || key.starts_with("notify.") => m.clone(),
        Kind::Message(_) => "the value is not accepted (it is not shown)".to_owned(),
        Kind::InvalidType(actual, expected) if secret => format!(
            "invalid type: found {}, expected {expected} (the value is not shown)",
            type_name(actual)
        ),
        Kind::InvalidValue(actual, expected) if secret => format!(
            "invalid value: found {}, expected {expected} (the value is not shown)",
            type_name(actual)
        ),
        Kind::ISizeOutOfRange(_) | Kind::USizeOutOfRange(_) if secret => {
            "the number is out of range (it is not shown)".to_owned()
        }
        Kind::UnknownField(name, expected) => format!(
            "unknown key {}, expected one of {}",
            shown_name(name),
            backticked(expected)
        ),
        Kind::UnknownVariant(name, expected) => format!(
            "unknown value {}, expected one of {}",
            shown_name(name),
            backticked(expected)
        ),
        other => other.to_string(),
    }
}

/// The kind of a value, without the value.
fn type_name(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name taken from the file (an unknown key, an unknown value), shown only when it looks
/// like one: lowercase letters and `_`. A token pasted where a key goes has digits or capitals
/// (a random 16-character hex token has none of the digits 0-9 about once in 10^7).
fn shown_name(name: &str) -> String {
    if looks_like_a_name(name) {
        format!("`{name}`")
    } else {
        "(its name is not shown: it does not look like a key, and may be a secret)".to_owned()
    }
}

fn looks_like_a_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
}

/// The parser's message with every name it took from the file (`` `name` ``, e.g. of a
/// duplicate key) kept only when it looks like a name; what it expected (`` `=` ``, `` `"` ``)
/// is kept. One line.
fn parser_words(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        // Odd parts are inside backticks.
        if i % 2 == 0 {
            out.push_str(part);
        } else if part.chars().count() <= 2 || looks_like_a_name(part) {
            out.push('`');
            out.push_str(part);
            out.push('`');
        } else {
            out.push_str("(a name that is not shown)");
        }
    }
    out.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The 1-based line and column (in characters) of the byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // After the two bytes of `é`, the column counts one character.
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 7), (2, 2), "inside a character");
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn the_parsers_words_keep_what_it_expected_and_drop_names_that_may_be_secrets() {
        assert_eq!(
            parser_words("invalid escape sequence\nexpected `b`, `\\`, `\"`"),
            "invalid escape sequence; expected `b`, `\\`, `\"`"
        );
        assert_eq!(
            parser_words("duplicate key `token` in table `agent`"),
            "duplicate key `token` in table `agent`"
        );
        assert_eq!(
            parser_words("invalid table header\nduplicate key `Zq9Xk2mWv8` in document root"),
            "invalid table header; duplicate key (a name that is not shown) in document root"
        );
    }

    #[test]
    fn names_from_the_file_are_shown_only_when_they_look_like_keys() {
        assert!(looks_like_a_name("max_quiesse"));
        assert!(looks_like_a_name("engine_unreachable"));
        assert!(!looks_like_a_name("9f86d081884c7d65"));
        assert!(!looks_like_a_name("Zq9XkmWv"));
        assert!(!looks_like_a_name(""));
        assert!(!looks_like_a_name(&"a".repeat(41)));
    }
}
