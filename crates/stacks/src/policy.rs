//! The per-service quiesce policy that an app's author sets with compose labels (issue 23;
//! `docs/labels.md` is the reference an author reads).
//!
//! The labels are read from the containers, not from the compose file, so that they hold for
//! every container the engine counts as the stack's — an orphan of a service since removed
//! from the file included — and so that an image's own `felhom.*` labels count too (the
//! compose file's win, as the engine merges them). A label with a bad value is a
//! [`LabelError`] and the service is treated as if that one label were absent: the default is
//! always the safe choice (stop the service), and a typo never strands an app.
//!
//! No engine type appears here: the quiesce crate reads these values from
//! [`RunningStack::policy`](crate::RunningStack::policy), records them, and its tests build
//! them with [`StackPolicy::read_service`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The names of the labels, as an author writes them in a compose file.
pub mod label {
    /// `stop` (the default) | `skip` | `hook`: see [`QuiesceMode`](super::QuiesceMode).
    pub const QUIESCE: &str = "felhom.quiesce";
    /// A command line run in the container before the backup is posted.
    pub const PRE_SNAPSHOT: &str = "felhom.pre-snapshot";
    /// A command line run in the container when the cycle resumes.
    pub const POST_RESUME: &str = "felhom.post-resume";
    /// How long a hook may run (a human duration, `5m` by default).
    pub const HOOK_TIMEOUT: &str = "felhom.hook-timeout";
    /// `stop` (the default) | `continue` | `skip-backup`: see
    /// [`OnHookError`](super::OnHookError).
    pub const ON_HOOK_ERROR: &str = "felhom.on-hook-error";
    /// An integer, 0 by default: lower values stop first and start last.
    pub const STOP_ORDER: &str = "felhom.stop-order";
}

/// How a service is quiesced for a backup (`felhom.quiesce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QuiesceMode {
    /// Stopped cleanly before the backup, started again after it (the default).
    #[default]
    Stop,
    /// Never stopped: a stateless service whose downtime matters more than its capture.
    Skip,
    /// Not stopped: its `felhom.pre-snapshot` hook makes its data consistent instead.
    Hook,
}

impl QuiesceMode {
    /// The label's value: `stop`, `skip`, `hook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Skip => "skip",
            Self::Hook => "hook",
        }
    }
}

/// What a failed hook leads to (`felhom.on-hook-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnHookError {
    /// Fall back to stopping the service, so that its capture is still consistent (the
    /// default).
    #[default]
    Stop,
    /// Go on without stopping it; its capture is `hook-failed`.
    Continue,
    /// Resume what was stopped, post no backup and fail the cycle.
    SkipBackup,
}

impl OnHookError {
    /// The label's value: `stop`, `continue`, `skip-backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Continue => "continue",
            Self::SkipBackup => "skip-backup",
        }
    }
}

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

/// The policy of one service, from its labels. [`Default`] is a service without labels:
/// stopped, no hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    /// `felhom.quiesce`.
    pub quiesce: QuiesceMode,
    /// `felhom.pre-snapshot`.
    pub pre_snapshot: Option<HookCommand>,
    /// `felhom.post-resume`.
    pub post_resume: Option<HookCommand>,
    /// `felhom.hook-timeout`; more than zero. The caller bounds it further by its own
    /// `max_quiesce`: this crate knows nothing of the cycle.
    pub hook_timeout: Duration,
    /// `felhom.on-hook-error`.
    pub on_hook_error: OnHookError,
    /// `felhom.stop-order`.
    pub stop_order: i32,
}

/// What [`StackPolicy::service`] answers for a service it does not know: no labels.
static NO_LABELS: ServicePolicy = ServicePolicy {
    quiesce: QuiesceMode::Stop,
    pre_snapshot: None,
    post_resume: None,
    hook_timeout: ServicePolicy::DEFAULT_HOOK_TIMEOUT,
    on_hook_error: OnHookError::Stop,
    stop_order: 0,
};

impl Default for ServicePolicy {
    fn default() -> Self {
        NO_LABELS.clone()
    }
}

impl ServicePolicy {
    /// `felhom.hook-timeout` when the label is absent: 5 minutes.
    pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

    /// Reads the policy of `service` of `stack` from a container's labels (all of them:
    /// those that are not `felhom.*` labels of this list are ignored). Each label with a bad
    /// value is a [`LabelError`], and the service is then as if that label were absent. A
    /// label whose value is empty (or only blanks) counts as absent, without an error: that is
    /// how a compose override file takes back a label of the base file or of the image.
    pub fn from_labels<K, V>(
        stack: &str,
        service: &str,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> (Self, Vec<LabelError>)
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut policy = Self::default();
        let mut errors = Vec::new();
        for (key, value) in labels {
            let (key, line) = (key.as_ref(), value.as_ref());
            let value = line.trim();
            if value.is_empty() {
                continue;
            }
            if let Err(why) = policy.read_label(key, value, line) {
                // The command line itself is not repeated: it may hold what its author would
                // not want in a record or a notice, and the author has it in the file.
                let is_command = key == label::PRE_SNAPSHOT || key == label::POST_RESUME;
                errors.push(LabelError {
                    stack: stack.to_owned(),
                    service: service.to_owned(),
                    label: key.to_owned(),
                    value: (!is_command).then(|| shorten(value)),
                    why,
                });
            }
        }
        // `hook` promises a consistent capture through the pre-snapshot hook; without one it
        // would promise it for nothing. The label is then as if absent: the service is stopped.
        if let (QuiesceMode::Hook, None) = (policy.quiesce, &policy.pre_snapshot) {
            policy.quiesce = QuiesceMode::Stop;
            errors.push(LabelError {
                stack: stack.to_owned(),
                service: service.to_owned(),
                label: label::QUIESCE.to_owned(),
                value: Some(QuiesceMode::Hook.as_str().to_owned()),
                why: format!("hook needs a {} command", label::PRE_SNAPSHOT),
            });
        }
        errors.sort_by(|a, b| a.label.cmp(&b.label));
        (policy, errors)
    }

    /// Whether this is the policy of a service without labels (for a compact listing).
    pub fn is_default(&self) -> bool {
        *self == NO_LABELS
    }

    /// Sets what one label says (`value` trimmed, `line` as written); `Err` says why the
    /// value is bad, and nothing is set. Labels of other names are ignored.
    fn read_label(&mut self, key: &str, value: &str, line: &str) -> Result<(), String> {
        match key {
            label::QUIESCE => {
                self.quiesce = match value {
                    "stop" => QuiesceMode::Stop,
                    "skip" => QuiesceMode::Skip,
                    "hook" => QuiesceMode::Hook,
                    _ => return Err("expected stop, skip or hook".to_owned()),
                }
            }
            label::ON_HOOK_ERROR => {
                self.on_hook_error = match value {
                    "stop" => OnHookError::Stop,
                    "continue" => OnHookError::Continue,
                    "skip-backup" => OnHookError::SkipBackup,
                    _ => return Err("expected stop, continue or skip-backup".to_owned()),
                }
            }
            label::HOOK_TIMEOUT => {
                self.hook_timeout = match humantime::parse_duration(value) {
                    Ok(d) if d.is_zero() => {
                        return Err("a hook timeout must be more than 0".to_owned())
                    }
                    Ok(d) => d,
                    Err(e) => return Err(format!("not a duration ({e}); e.g. 90s, 5m, 1h")),
                }
            }
            label::STOP_ORDER => {
                self.stop_order = value
                    .parse()
                    .map_err(|_| format!("expected an integer from {} to {}", i32::MIN, i32::MAX))?
            }
            label::PRE_SNAPSHOT => {
                self.pre_snapshot = Some(HookCommand::parse(line).map_err(|e| e.to_string())?)
            }
            label::POST_RESUME => {
                self.post_resume = Some(HookCommand::parse(line).map_err(|e| e.to_string())?)
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for ServicePolicy {
    /// One line for `check`: the mode, then what differs from the defaults, e.g. `hook,
    /// pre-snapshot: pg_dumpall …, hook-timeout 2m, stop-order -10`. Hook commands are named
    /// by their program only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.quiesce.as_str())?;
        if let Some(c) = &self.pre_snapshot {
            write!(f, ", pre-snapshot: {} …", c.program())?;
        }
        if let Some(c) = &self.post_resume {
            write!(f, ", post-resume: {} …", c.program())?;
        }
        if self.hook_timeout != Self::DEFAULT_HOOK_TIMEOUT {
            write!(
                f,
                ", hook-timeout {}",
                humantime::format_duration(self.hook_timeout)
            )?;
        }
        if self.on_hook_error != OnHookError::Stop {
            write!(f, ", on-hook-error {}", self.on_hook_error.as_str())?;
        }
        if self.stop_order != 0 {
            write!(f, ", stop-order {}", self.stop_order)?;
        }
        Ok(())
    }
}

/// A label with a bad value: an unknown word, a duration or an integer that does not parse, a
/// command line with an unterminated quote, `hook` without a pre-snapshot command. Its
/// message names the stack, the service and the full label; the service is treated as if
/// that label were absent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stack {stack:?}, service {service:?}: label {label}{}: {why}", value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default())]
pub struct LabelError {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// The full label, e.g. `felhom.quiesce`.
    pub label: String,
    /// Its value, at most 64 characters of it; `None` for the hook commands, whose lines are
    /// not repeated.
    pub value: Option<String>,
    /// What is wrong with it.
    pub why: String,
}

/// At most 64 characters of a label's value, for messages.
fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// The policy of a running stack: its running services' policies, the label errors found
/// reading them, and its stop order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackPolicy {
    /// Each running service's policy (every service of
    /// [`RunningStack::services`](crate::RunningStack::services) has one; without labels, the
    /// default).
    pub services: BTreeMap<String, ServicePolicy>,
    /// The labels with bad values, by service, then label.
    pub errors: Vec<LabelError>,
}

impl StackPolicy {
    /// Reads `service`'s policy from its labels (see [`ServicePolicy::from_labels`]) and adds
    /// it, with its label errors, replacing what the service had.
    pub fn read_service<K, V>(
        &mut self,
        stack: &str,
        service: &str,
        labels: impl IntoIterator<Item = (K, V)>,
    ) where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (policy, errors) = ServicePolicy::from_labels(stack, service, labels);
        self.errors.retain(|e| e.service != service);
        self.errors.extend(errors);
        self.errors
            .sort_by(|a, b| (&a.service, &a.label).cmp(&(&b.service, &b.label)));
        self.services.insert(service.to_owned(), policy);
    }

    /// The policy of `service`; a service it does not know has the default (stopped).
    pub fn service(&self, service: &str) -> &ServicePolicy {
        self.services.get(service).unwrap_or(&NO_LABELS)
    }

    /// The stack's stop order: the lowest `felhom.stop-order` of its services (0 without any).
    pub fn stop_order(&self) -> i32 {
        self.services
            .values()
            .map(|p| p.stop_order)
            .min()
            .unwrap_or(0)
    }

    /// Whether every service is stopped and has no hook: what a stack without labels is.
    pub fn stops_everything(&self) -> bool {
        self.services.values().all(|p| {
            p.quiesce == QuiesceMode::Stop && p.pre_snapshot.is_none() && p.post_resume.is_none()
        })
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

    fn read(labels: &[(&str, &str)]) -> (ServicePolicy, Vec<LabelError>) {
        ServicePolicy::from_labels("shop", "db", labels.iter().copied())
    }

    #[test]
    fn no_labels_is_the_default_stop_without_hooks() {
        let (policy, errors) = read(&[
            ("com.docker.compose.service", "db"),
            ("felhom.testapp.sha256", "abc"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy, ServicePolicy::default());
        assert!(policy.is_default());
        assert_eq!(policy.quiesce, QuiesceMode::Stop);
        assert_eq!(policy.hook_timeout, Duration::from_secs(300));
        assert_eq!(policy.on_hook_error, OnHookError::Stop);
        assert_eq!(policy.stop_order, 0);
        assert_eq!(policy.to_string(), "stop");
    }

    #[test]
    fn every_label_is_read() {
        let (policy, errors) = read(&[
            (label::QUIESCE, "hook"),
            (label::PRE_SNAPSHOT, "sh -c 'pg_dumpall > /data/dump.sql'"),
            (label::POST_RESUME, "app maintenance off"),
            (label::HOOK_TIMEOUT, "2m 30s"),
            (label::ON_HOOK_ERROR, "skip-backup"),
            (label::STOP_ORDER, "-10"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policy.quiesce, QuiesceMode::Hook);
        assert_eq!(
            policy.pre_snapshot.as_ref().map(HookCommand::argv),
            Some(
                &[
                    "sh".to_owned(),
                    "-c".into(),
                    "pg_dumpall > /data/dump.sql".into()
                ][..]
            )
        );
        assert_eq!(
            policy.post_resume.as_ref().map(HookCommand::program),
            Some("app")
        );
        assert_eq!(policy.hook_timeout, Duration::from_secs(150));
        assert_eq!(policy.on_hook_error, OnHookError::SkipBackup);
        assert_eq!(policy.stop_order, -10);
        assert_eq!(
            policy.to_string(),
            "hook, pre-snapshot: sh …, post-resume: app …, hook-timeout 2m 30s, \
             on-hook-error skip-backup, stop-order -10"
        );
        for (value, mode) in [("stop", QuiesceMode::Stop), (" skip ", QuiesceMode::Skip)] {
            let (policy, errors) = read(&[(label::QUIESCE, value)]);
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(policy.quiesce, mode);
        }
        for (value, on) in [
            ("stop", OnHookError::Stop),
            ("continue", OnHookError::Continue),
        ] {
            assert_eq!(read(&[(label::ON_HOOK_ERROR, value)]).0.on_hook_error, on);
        }
        assert_eq!(read(&[(label::STOP_ORDER, "+7")]).0.stop_order, 7);
    }

    #[test]
    fn each_bad_value_is_an_error_naming_stack_service_and_label_and_is_ignored() {
        let cases: [(&str, &str, &str); 9] = [
            (label::QUIESCE, "pause", "expected stop, skip or hook"),
            (label::QUIESCE, "Stop", "expected stop, skip or hook"),
            (
                label::ON_HOOK_ERROR,
                "ignore",
                "expected stop, continue or skip-backup",
            ),
            (label::HOOK_TIMEOUT, "soon", "not a duration"),
            (label::HOOK_TIMEOUT, "0s", "more than 0"),
            (label::STOP_ORDER, "first", "expected an integer"),
            (label::STOP_ORDER, "99999999999", "expected an integer"),
            (label::PRE_SNAPSHOT, "sh -c 'unterminated", "single quote"),
            (label::POST_RESUME, "echo \\", "backslash"),
        ];
        for (key, value, why) in cases {
            // Another label beside it is still read.
            let (other, expected) = if key == label::STOP_ORDER {
                (
                    (label::ON_HOOK_ERROR, "continue"),
                    ServicePolicy {
                        on_hook_error: OnHookError::Continue,
                        ..ServicePolicy::default()
                    },
                )
            } else {
                (
                    (label::STOP_ORDER, "-3"),
                    ServicePolicy {
                        stop_order: -3,
                        ..ServicePolicy::default()
                    },
                )
            };
            let (policy, errors) = read(&[(key, value), other]);
            assert_eq!(policy, expected, "{key}={value}: as if absent");
            assert_eq!(errors.len(), 1, "{key}={value}: {errors:?}");
            let text = errors[0].to_string();
            assert!(
                text.starts_with("stack \"shop\", service \"db\": label "),
                "{text}"
            );
            assert!(text.contains(key), "{text}");
            assert!(text.contains(why), "{text}");
            assert_eq!(errors[0].label, key);
            let hook = key == label::PRE_SNAPSHOT || key == label::POST_RESUME;
            assert_eq!(
                text.contains(value),
                !hook,
                "values are shown, command lines are not: {text}"
            );
        }
    }

    #[test]
    fn hook_without_a_pre_snapshot_command_is_stopped_and_said_so() {
        for labels in [
            &[(label::QUIESCE, "hook")][..],
            &[(label::QUIESCE, "hook"), (label::PRE_SNAPSHOT, "'oops")][..],
            &[(label::QUIESCE, "hook"), (label::POST_RESUME, "x")][..],
        ] {
            let (policy, errors) = read(labels);
            assert_eq!(policy.quiesce, QuiesceMode::Stop, "{labels:?}");
            let quiesce: Vec<&LabelError> = errors
                .iter()
                .filter(|e| e.label == label::QUIESCE)
                .collect();
            assert_eq!(quiesce.len(), 1, "{errors:?}");
            assert_eq!(
                quiesce[0].to_string(),
                "stack \"shop\", service \"db\": label felhom.quiesce=\"hook\": \
                 hook needs a felhom.pre-snapshot command"
            );
        }
    }

    #[test]
    fn an_empty_value_is_an_absent_label() {
        let (policy, errors) = read(&[
            (label::QUIESCE, ""),
            (label::PRE_SNAPSHOT, "  "),
            (label::HOOK_TIMEOUT, ""),
            (label::STOP_ORDER, " "),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(policy.is_default());
    }

    #[test]
    fn a_long_bad_value_is_shortened_in_the_message() {
        let long = "x".repeat(500);
        let (_, errors) = read(&[(label::QUIESCE, long.as_str())]);
        let value = errors[0].value.as_deref().expect("shown");
        assert_eq!(value.chars().count(), 65, "64 and an ellipsis");
        assert!(value.ends_with('…'));
    }

    #[test]
    fn a_stacks_stop_order_is_its_lowest_and_unknown_services_are_stopped() {
        let mut stack = StackPolicy::default();
        assert_eq!(stack.stop_order(), 0);
        stack.read_service("shop", "web", [(label::STOP_ORDER, "5")]);
        assert_eq!(stack.stop_order(), 5);
        stack.read_service("shop", "db", [(label::STOP_ORDER, "-10")]);
        stack.read_service("shop", "cache", [(label::QUIESCE, "skip")]);
        assert_eq!(stack.stop_order(), -10);
        assert_eq!(stack.service("cache").quiesce, QuiesceMode::Skip);
        assert_eq!(stack.service("nope"), &ServicePolicy::default());
        assert!(!stack.stops_everything());
        // Errors by service, then label; reading a service again replaces its errors.
        stack.read_service(
            "shop",
            "web",
            [(label::STOP_ORDER, "x"), (label::QUIESCE, "y")],
        );
        stack.read_service("shop", "cache", [(label::HOOK_TIMEOUT, "z")]);
        let named: Vec<(&str, &str)> = stack
            .errors
            .iter()
            .map(|e| (e.service.as_str(), e.label.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("cache", label::HOOK_TIMEOUT),
                ("web", label::QUIESCE),
                ("web", label::STOP_ORDER)
            ]
        );
        stack.read_service("shop", "web", [(label::STOP_ORDER, "1")]);
        assert_eq!(stack.errors.len(), 1);
        let mut plain = StackPolicy::default();
        plain.read_service("shop", "web", [("other", "x")]);
        assert!(plain.stops_everything());
    }
}
