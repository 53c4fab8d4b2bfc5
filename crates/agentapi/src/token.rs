//! The bearer token, kept out of every `Debug`, log line and error message.

use std::fmt;
use std::path::Path;

use crate::ConfigError;

/// The agent API's bearer token. A secret: `Debug` prints `Token(***)`, there is no `Display`,
/// and the only way out of this type is the `Authorization` header the client builds.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token taken as is (for example from `FELHOM_AGENT__TOKEN`).
    pub fn new(token: String) -> Token {
        Token(token)
    }

    /// Reads a token file, trimming surrounding whitespace (a trailing newline is usual).
    /// The error names the file and never shows its content.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Token, ConfigError> {
        let path = path.as_ref();
        let failed = |reason: String| ConfigError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        // Not `String::from_utf8(..)`'s error: its Display is harmless, but its Debug would
        // carry the file's bytes.
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| failed("the token is not valid UTF-8".to_owned()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(failed("the file holds no token".to_owned()));
        }
        Ok(Token(token.to_owned()))
    }

    pub(crate) fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let token = Token::new("s3cret-value".to_owned());
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(format!("{token:#?}"), "Token(***)");
    }

    #[test]
    fn from_file_trims() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("agent.token");
        std::fs::write(&path, "  abc-123\n").expect("write token");
        let token = Token::from_file(&path).expect("token file reads");
        assert_eq!(token.secret(), "abc-123");

        std::fs::write(&path, "\n \n").expect("write blank token");
        let err = Token::from_file(&path).expect_err("blank file is refused");
        assert!(err.to_string().contains("holds no token"), "{err}");
        assert!(err.to_string().contains("agent.token"), "{err}");

        std::fs::write(&path, b"secret\xff\xfe").expect("write non-UTF-8 token");
        let err = Token::from_file(&path).expect_err("non-UTF-8 is refused");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
    }

    #[test]
    fn from_file_names_a_missing_file() {
        let err = Token::from_file("/nonexistent/felhom/agent.token").expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/felhom/agent.token"),
            "{err}"
        );
    }
}
