//! A hook's command line, split into words as a POSIX shell splits them, with no shell.

use std::fmt;

/// A hook's command: one command line split into words as a POSIX shell splits them — quotes
/// respected, backslash escapes, a `#` at the start of a word begins a comment — with no
/// expansion of any kind and no shell: `sh -c 'date +%s > /data/dump'` runs `sh` with the two
/// arguments `-c` and `date +%s > /data/dump`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookCommand {
    line: String,
    argv: Vec<String>,
}

/// Why a command line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandLineError {
    /// It holds no word (only blanks, or only a comment).
    #[error("the command line is empty")]
    Empty,
    /// A single quote that is never closed.
    #[error("a single quote (') is never closed")]
    UnterminatedSingleQuote,
    /// A double quote that is never closed.
    #[error("a double quote (\") is never closed")]
    UnterminatedDoubleQuote,
    /// A backslash as the last character: it escapes nothing.
    #[error("it ends with a backslash that escapes nothing")]
    TrailingBackslash,
}

impl HookCommand {
    /// Splits `line` into words (see the type's docs).
    pub fn parse(line: &str) -> Result<Self, CommandLineError> {
        let Some(argv) = shlex::split(line) else {
            return Err(why_unsplittable(line));
        };
        if argv.is_empty() {
            return Err(CommandLineError::Empty);
        }
        Ok(Self {
            line: line.to_owned(),
            argv,
        })
    }

    /// The command line as the author wrote it.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Its words: the program, then its arguments. Never empty.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The program (the first word): what error messages name, since the rest of a command
    /// line may hold what its author would not want in a notice.
    pub fn program(&self) -> &str {
        self.argv.first().map(String::as_str).unwrap_or_default()
    }
}

impl fmt::Display for HookCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

/// Why `shlex` refused `line`: it says only that it did. The same walk as its own (POSIX
/// quoting; a comment from a `#` at the start of a word to the end of the line), told apart
/// by where it ends.
fn why_unsplittable(line: &str) -> CommandLineError {
    #[derive(PartialEq)]
    enum In {
        Blank,
        Word,
        Single,
        Double,
        Comment,
    }
    let mut state = In::Blank;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        state = match (state, c) {
            (In::Comment, '\n') => In::Blank,
            (In::Comment, _) => In::Comment,
            (In::Blank, '#') => In::Comment,
            (In::Blank | In::Word, ' ' | '\t' | '\n') => In::Blank,
            (In::Blank | In::Word, '\'') => In::Single,
            (In::Blank | In::Word, '"') => In::Double,
            (In::Single, '\'') | (In::Double, '"') => In::Word,
            (s @ (In::Blank | In::Word | In::Double), '\\') => {
                if chars.next().is_none() {
                    return if s == In::Double {
                        CommandLineError::UnterminatedDoubleQuote
                    } else {
                        CommandLineError::TrailingBackslash
                    };
                }
                if s == In::Double {
                    In::Double
                } else {
                    In::Word
                }
            }
            (In::Blank | In::Word, _) => In::Word,
            (s, _) => s,
        };
    }
    match state {
        In::Single => CommandLineError::UnterminatedSingleQuote,
        In::Double => CommandLineError::UnterminatedDoubleQuote,
        // Not reached for a line shlex refused; the likeliest reading otherwise.
        _ => CommandLineError::TrailingBackslash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        HookCommand::parse(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .argv()
            .to_vec()
    }

    #[test]
    fn a_command_line_splits_as_a_posix_shell_splits_it() {
        assert_eq!(
            words("sh -c 'date +%s > /data/dump'"),
            ["sh", "-c", "date +%s > /data/dump"]
        );
        assert_eq!(
            words(r#"sh -c "pg_dumpall -U postgres > \"/var/lib/my dump.sql\"""#),
            [
                "sh",
                "-c",
                r#"pg_dumpall -U postgres > "/var/lib/my dump.sql""#
            ]
        );
        // Blanks of any kind and number between words; none at the ends.
        assert_eq!(words("  a\t b \n c  "), ["a", "b", "c"]);
        // A backslash escapes the next character outside quotes, nothing inside single ones,
        // and only $ ` " \ and a newline inside double ones.
        assert_eq!(words(r"a\ b c\'d"), ["a b", "c'd"]);
        assert_eq!(words(r"'a\b' 'it'\''s'"), [r"a\b", "it's"]);
        assert_eq!(words(r#""a\$b \x \\ \"""#), [r#"a$b \x \ ""#]);
        // Adjacent quoted and unquoted parts make one word; an empty quote is an empty word.
        assert_eq!(
            words(r#"--name="my app"'s' '' x"#),
            ["--name=my apps", "", "x"]
        );
        // No expansion of any kind: variables, globs, tildes and operators are plain text.
        assert_eq!(
            words("echo $HOME ~ *.sql a|b c;d"),
            ["echo", "$HOME", "~", "*.sql", "a|b", "c;d"]
        );
        // A # at the start of a word begins a comment; inside a word it is text.
        assert_eq!(words("echo a#b # the rest"), ["echo", "a#b"]);
    }

    #[test]
    fn a_bad_command_line_says_why() {
        let cases = [
            (
                "sh -c 'unterminated",
                CommandLineError::UnterminatedSingleQuote,
            ),
            (r#"echo "no end"#, CommandLineError::UnterminatedDoubleQuote),
            (r#"echo "a\"#, CommandLineError::UnterminatedDoubleQuote),
            (r"echo a\", CommandLineError::TrailingBackslash),
            (
                r#"echo 'a"b' "c'd"#,
                CommandLineError::UnterminatedDoubleQuote,
            ),
            (
                r#"echo "a'b" 'c"#,
                CommandLineError::UnterminatedSingleQuote,
            ),
            ("", CommandLineError::Empty),
            ("   \t", CommandLineError::Empty),
            ("# only a comment", CommandLineError::Empty),
        ];
        for (line, expected) in cases {
            assert_eq!(HookCommand::parse(line), Err(expected), "{line:?}");
        }
        // A quote inside a comment opens nothing.
        assert_eq!(words("a # don't"), ["a"]);
        assert_eq!(
            HookCommand::parse("a # don't\nb 'c"),
            Err(CommandLineError::UnterminatedSingleQuote)
        );
    }

    #[test]
    fn a_command_keeps_its_line_and_names_its_program() {
        let c = HookCommand::parse("  pg_dumpall -U postgres ").expect("parses");
        assert_eq!(c.line(), "  pg_dumpall -U postgres ");
        assert_eq!(c.program(), "pg_dumpall");
        assert_eq!(c.to_string(), c.line());
    }
}
