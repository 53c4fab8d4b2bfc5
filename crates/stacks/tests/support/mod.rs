//! Real stacks for the tests: the test image, a temporary stacks root, compose projects with
//! unique names (tests run in parallel), and a teardown that runs even when a test fails.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use felhom_stacks::{ComposeChoice, EngineStacks, StacksConfig};

pub const IMAGE: &str = "felhom-testapp:dev";

/// A test for compose v2 and one for v1.
macro_rules! both_tools {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn v2() {
                super::$name(super::Tool::V2)
            }
            #[test]
            fn v1() {
                super::$name(super::Tool::V1)
            }
        }
    )*};
}

/// Fails the test with a clear message when there is no engine or the image cannot be built;
/// the image is built (or found up to date) once per test process.
pub fn ensure_image() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match info {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "no Docker engine: run scripts/provision.sh ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
            Err(e) => return Err(format!("no Docker engine: run scripts/provision.sh ({e})")),
        }
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
        let out = Command::new(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = ready {
        panic!("{e}");
    }
}

/// The compose tool of a test variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    V2,
    V1,
}

impl Tool {
    pub fn choice(self) -> ComposeChoice {
        match self {
            Tool::V2 => ComposeChoice::V2,
            Tool::V1 => ComposeChoice::V1,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Tool::V2 => "v2",
            Tool::V1 => "v1",
        }
    }

    fn command(self) -> Command {
        match self {
            Tool::V2 => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            Tool::V1 => Command::new("docker-compose"),
        }
    }

    fn installed(self) -> bool {
        let mut c = self.command();
        c.arg("version");
        c.output().map(|o| o.status.success()).unwrap_or(false)
    }
}

/// A stacks root with one or more stacks in it; dropping it tears every stack down.
pub struct Root {
    pub dir: tempfile::TempDir,
    pub tool: Tool,
    stacks: Vec<String>,
}

impl Root {
    pub fn new(tool: Tool) -> Self {
        ensure_image();
        assert!(
            tool.installed(),
            "compose {tool:?} is not installed: run scripts/provision.sh"
        );
        Self {
            dir: tempfile::tempdir().expect("a temporary stacks root"),
            tool,
            stacks: Vec::new(),
        }
    }

    /// A unique project name for this test and variant: `fst-<short>-<v1|v2>-<pid>`.
    pub fn name(&self, short: &str) -> String {
        format!("fst-{short}-{}-{}", self.tool.tag(), std::process::id())
    }

    /// Deploys a stack: `<root>/<name>/<file>` with `yaml`; returns its directory.
    pub fn deploy(&mut self, name: &str, file: &str, yaml: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("stack directory");
        std::fs::write(dir.join(file), yaml).expect("compose file");
        self.stacks.push(name.to_owned());
        dir
    }

    /// The stacks manager under test, with short timeouts.
    pub fn stacks(&self) -> EngineStacks {
        self.stacks_with(|_| {})
    }

    pub fn stacks_with(&self, tweak: impl FnOnce(&mut StacksConfig)) -> EngineStacks {
        let mut config = StacksConfig {
            root: self.dir.path().to_path_buf(),
            compose: self.tool.choice(),
            stop_timeout: Duration::from_secs(1),
            start_timeout: Duration::from_secs(30),
            ..StacksConfig::default()
        };
        tweak(&mut config);
        EngineStacks::new(config).expect("a valid configuration")
    }

    /// `compose up -d` of a deployed stack, as the operator deployed it.
    pub fn up(&self, name: &str) {
        self.up_with(name, &[]);
    }

    /// `compose <global args> up -d`, e.g. with `-f other.yml`.
    pub fn up_with(&self, name: &str, global: &[&str]) {
        let mut c = self.tool.command();
        c.args(["-p", name])
            .args(global)
            .args(["up", "-d"])
            .current_dir(self.dir.path().join(name));
        run(c, &format!("compose up of {name}"));
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for name in &self.stacks {
            down(self.tool, name, &self.dir.path().join(name));
        }
    }
}

/// `compose down -v --remove-orphans` of the project; v2 where it works, it is faster.
pub fn down(tool: Tool, name: &str, dir: &Path) {
    let tool = if Tool::V2.installed() { Tool::V2 } else { tool };
    let mut c = tool.command();
    c.args(["-p", name, "down", "-v", "--remove-orphans", "-t", "0"])
        .current_dir(dir);
    match c.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "teardown of {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("teardown of {name} failed: {e}"),
    }
}

pub fn run(mut command: Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn docker(args: &[&str]) -> String {
    let mut c = Command::new("docker");
    c.args(args);
    run(c, &format!("docker {}", args.join(" ")))
}

/// What the engine says about one service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub status: String,
    pub health: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

/// The container of `service` in project `project` (exactly one expected).
pub fn container(project: &str, service: &str) -> ContainerState {
    let ids = docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(
        ids.len(),
        1,
        "one container of {project}/{service}: {ids:?}"
    );
    let out = docker(&[
        "inspect",
        "--format",
        "{{.Id}}|{{.State.Status}}|{{with index .State \"Health\"}}{{.Status}}{{end}}|{{.State.StartedAt}}|{{.State.FinishedAt}}",
        ids[0],
    ]);
    let fields: Vec<&str> = out.trim().split('|').collect();
    let time = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("docker time {s:?}: {e}"))
            .with_timezone(&chrono::Utc)
    };
    ContainerState {
        id: fields[0].to_owned(),
        status: fields[1].to_owned(),
        health: fields[2].to_owned(),
        started_at: time(fields[3]),
        finished_at: time(fields[4]),
    }
}

/// A container's exit code and network mode.
pub fn exit_and_network(id: &str) -> (i64, String) {
    let out = docker(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}|{{.HostConfig.NetworkMode}}",
        id,
    ]);
    let (code, mode) = out.trim().split_once('|').expect("two fields");
    (code.parse().expect("an exit code"), mode.to_owned())
}

/// The timestamps of the lines of a test app's log that contain `what`.
pub fn log_times(
    stack_dir: &Path,
    service: &str,
    what: &str,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    app_log(stack_dir, service)
        .lines()
        .filter(|line| line.contains(what))
        .filter_map(|line| line.split_whitespace().next())
        .map(|ts| {
            chrono::DateTime::parse_from_rfc3339(ts)
                .unwrap_or_else(|e| panic!("log time {ts:?}: {e}"))
                .with_timezone(&chrono::Utc)
        })
        .collect()
}

/// Waits (bounded) until the container of `project`/`service` reports `health`.
pub fn wait_for_health(project: &str, service: &str, health: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = container(project, service).health;
        if now == health {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{project}/{service} never became {health} (is {now})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A one-shot that had exited before the cycle is still exited, and did not run again.
pub fn assert_not_run_again(project: &str, service: &str, before: &ContainerState) {
    let after = container(project, service);
    assert_eq!(after.status, "exited");
    assert_eq!(
        after.started_at, before.started_at,
        "the one-shot did not run again"
    );
}

/// Whether the project has a container for `service` at all.
pub fn has_container(project: &str, service: &str) -> bool {
    !docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ])
    .trim()
    .is_empty()
}

/// A test app service: `serve` with its data in `./data/<service>`, plus extra YAML lines.
pub fn serve(service: &str, serve_args: &[&str], extra: &str) -> String {
    let mut command = vec!["serve", "--data", "/data"];
    command.extend_from_slice(serve_args);
    let command: Vec<String> = command.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "  {service}:\n    image: {IMAGE}\n    command: [{}]\n    volumes: [\"./data/{service}:/data\"]\n{extra}",
        command.join(", ")
    )
}

/// The app's log in a stack's `data/<service>/log`.
pub fn app_log(stack_dir: &Path, service: &str) -> String {
    std::fs::read_to_string(stack_dir.join("data").join(service).join("log")).unwrap_or_default()
}

/// Runs an async test body on a runtime, bounded so that a hang fails instead of blocking.
pub fn block_on<F: std::future::Future>(limit: Duration, body: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(limit, body)
            .await
            .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
    })
}
