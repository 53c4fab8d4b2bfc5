//! Running the docker and compose command-line tools: argument vectors, no shell, stdin
//! closed, bounded in time, killed when the caller gives up.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// How many lines of a command's stderr an error carries.
const TAIL_LINES: usize = 20;
/// And at most this many bytes of them: compose can print very long lines.
const TAIL_BYTES: usize = 4000;
/// What the compose tools print when nothing answers on the engine's socket (missing,
/// refused, reset): the docker CLI's words, which compose v2 uses, and compose v1's
/// (docker-py), whose first call asks the engine for its API version.
const ENGINE_AWAY: [&str; 2] = [
    "Cannot connect to the Docker daemon",
    "Error while fetching server API version: ('Connection aborted.'",
];

/// One command line: the program, its arguments and where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandLine {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: Option<PathBuf>,
}

impl CommandLine {
    pub(crate) fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
        }
    }
}

impl fmt::Display for CommandLine {
    /// The command as an operator would type it (only for messages: it never reaches a shell).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            {
                write!(f, " {arg:?}")?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

/// Why a command did not succeed; its `Display` is the detail of an error message.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The program could not be started at all.
    Spawn(io::Error),
    /// Reading its output failed.
    Io(io::Error),
    /// It did not finish in time and was killed.
    TimedOut(Duration),
    /// It finished unsuccessfully.
    Exit { status: ExitStatus, stderr: String },
}

impl Failure {
    /// Whether the command failed only because no engine answered: the caller then reports
    /// the engine unreachable, as its own engine calls do, and not a failed command.
    pub(crate) fn engine_away(&self) -> bool {
        matches!(self, Self::Exit { stderr, .. } if ENGINE_AWAY.iter().any(|words| stderr.contains(words)))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot run it: {e}"),
            Self::Io(e) => write!(f, "cannot read its output: {e}"),
            Self::TimedOut(limit) => write!(f, "no answer within {}s, killed", limit.as_secs()),
            Self::Exit { status, stderr } if stderr.is_empty() => write!(f, "{status}"),
            Self::Exit { status, stderr } => write!(f, "{status}: {stderr}"),
        }
    }
}

/// Runs commands with the environment every docker call of this crate shares.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runner {
    /// `DOCKER_HOST` for the children, when the engine is not the default one.
    pub(crate) docker_host: Option<String>,
    /// Variables of this process the children must not inherit (the embedder's: this crate
    /// knows none of them).
    pub(crate) hidden_env: Vec<String>,
}

impl Runner {
    fn command(&self, line: &CommandLine) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&line.program);
        command
            .args(&line.args)
            .stdin(Stdio::null())
            // A cancelled or timed-out call must not leave a compose process behind.
            .kill_on_drop(true);
        if let Some(cwd) = &line.cwd {
            command.current_dir(cwd);
        }
        if let Some(host) = &self.docker_host {
            command.env("DOCKER_HOST", host);
        }
        for name in &self.hidden_env {
            command.env_remove(name);
        }
        command
    }

    /// Runs `line` to completion within `limit` and returns its stdout.
    pub(crate) async fn stdout(
        &self,
        line: &CommandLine,
        limit: Duration,
    ) -> Result<String, Failure> {
        let mut command = self.command(line);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = command.spawn().map_err(Failure::Spawn)?;
        // On timeout the child is dropped with the future, and kill_on_drop kills it.
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .map_err(|_| Failure::TimedOut(limit))?
            .map_err(Failure::Io)?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Failure::Exit {
                status: output.status,
                stderr: tail(&String::from_utf8_lossy(&output.stderr)),
            })
        }
    }
}

/// The last lines of a command's output, trimmed, for an error message.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let joined = lines[start..].join("\n");
    if joined.len() <= TAIL_BYTES {
        return joined;
    }
    let mut cut = joined.len() - TAIL_BYTES;
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    format!("…{}", &joined[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_display_like_a_shell_would_read_them() {
        let mut line = CommandLine::new("docker", ["compose", "-p", "app", "stop", "-t", "30"]);
        assert_eq!(line.to_string(), "docker compose -p app stop -t 30");
        line.args = vec![
            "ps".into(),
            "--format".into(),
            "{{.ID}}\t{{.State}}".into(),
            String::new(),
        ];
        assert_eq!(
            line.to_string(),
            "docker ps --format \"{{.ID}}\\t{{.State}}\" \"\""
        );
    }

    #[test]
    fn tail_keeps_the_last_lines_and_bytes() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tailed = tail(&text);
        assert!(tailed.starts_with("line 11\n"), "{tailed}");
        assert!(tailed.ends_with("line 30"), "{tailed}");
        let long = "é".repeat(5000);
        let tailed = tail(&long);
        assert!(tailed.len() <= TAIL_BYTES + "…".len(), "{}", tailed.len());
        assert!(tailed.starts_with('…'));
    }

    #[tokio::test]
    async fn a_failing_command_reports_status_and_stderr() {
        let line = CommandLine::new("ls", ["/nonexistent-felhom-path"]);
        let err = Runner::default()
            .stdout(&line, Duration::from_secs(10))
            .await
            .expect_err("ls of a missing path fails");
        let text = err.to_string();
        assert!(text.starts_with("exit status: 2"), "{text}");
        assert!(text.contains("/nonexistent-felhom-path"), "{text}");
    }

    /// A variable the embedder hides is not in a child's environment; the others are.
    #[tokio::test]
    async fn the_hidden_variables_are_not_inherited() {
        // Cargo gives every test process these two.
        let (hidden, kept) = ("CARGO_MANIFEST_DIR", "CARGO_PKG_NAME");
        for name in [hidden, kept] {
            assert!(std::env::var_os(name).is_some(), "{name} not set by cargo");
        }
        let line = CommandLine::new("env", Vec::<String>::new());
        let runner = Runner {
            hidden_env: vec![hidden.to_owned()],
            ..Runner::default()
        };
        let env = runner
            .stdout(&line, Duration::from_secs(10))
            .await
            .expect("env runs");
        assert!(!env.contains(&format!("{hidden}=")), "{env}");
        assert!(env.contains(&format!("{kept}=")), "{env}");
        let env = Runner::default()
            .stdout(&line, Duration::from_secs(10))
            .await
            .expect("env runs");
        assert!(env.contains(&format!("{hidden}=")), "{env}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_failure() {
        let line = CommandLine::new("felhom-no-such-program", Vec::<String>::new());
        let err = Runner::default()
            .stdout(&line, Duration::from_secs(10))
            .await
            .expect_err("no such program");
        assert!(matches!(err, Failure::Spawn(_)), "{err}");
        assert!(err.to_string().starts_with("cannot run it: "), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_limit() {
        let line = CommandLine::new("sleep", ["30"]);
        let started = std::time::Instant::now();
        let err = Runner::default()
            .stdout(&line, Duration::from_millis(200))
            .await
            .expect_err("sleep outlives the limit");
        assert!(matches!(err, Failure::TimedOut(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "not bounded");
    }

    /// Each compose tool, against a socket path where no engine is, and one where the socket
    /// exists but nobody listens: both are "the engine is away", whatever the tool's words.
    #[tokio::test]
    async fn compose_without_an_engine_is_the_engine_away() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("compose.yaml"),
            "services: {web: {image: x}}\n",
        )
        .expect("compose file");
        let missing = dir.path().join("missing.sock");
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
        let up = ["-p", "felhom-away", "up", "-d", "--no-deps", "web"];
        for socket in [&missing, &dead] {
            let runner = Runner {
                docker_host: Some(format!("unix://{}", socket.display())),
                ..Runner::default()
            };
            let v2 = ["compose"].into_iter().chain(up);
            for mut line in [
                CommandLine::new("docker", v2),
                CommandLine::new("docker-compose", up),
            ] {
                line.cwd = Some(dir.path().to_path_buf());
                let err = runner
                    .stdout(&line, Duration::from_secs(60))
                    .await
                    .expect_err("no engine");
                assert!(err.engine_away(), "{line} on {}: {err}", socket.display());
            }
        }
    }

    #[tokio::test]
    async fn other_failures_are_not_the_engine_away() {
        let line = CommandLine::new(
            "docker",
            ["compose", "-f", "/nonexistent/compose.yaml", "config"],
        );
        let err = Runner::default()
            .stdout(&line, Duration::from_secs(60))
            .await
            .expect_err("no such file");
        assert!(!err.engine_away(), "{err}");
        assert!(!Failure::TimedOut(Duration::from_secs(1)).engine_away());
    }
}
