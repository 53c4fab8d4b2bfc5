//! Real stacks for the tests: the test image, a temporary stacks root, compose projects with
//! unique names (tests run in parallel), and a teardown that runs even when a test fails.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use felhom_stacks::{
    ComposeChoice, ContainerRef, EngineStacks, Slots, Stacks, StacksConfig, StacksError,
    StartReport, StartRequest,
};
use felhom_testsupport::{engine, process};

pub use felhom_testsupport::engine::{ContainerState, IMAGE};

/// The bound of a docker or compose command of a test: only a hang takes this long.
const COMMAND_BOUND: Duration = Duration::from_secs(120);

/// A test for compose v2 and one for v1.
#[allow(unused_macros)]
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
        process::checked(&mut c, COMMAND_BOUND).is_ok()
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
        if let Err(e) = engine::ensure_image() {
            panic!("{e}");
        }
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

    /// Deploys a stack whose compose file names one service that is never brought up: its
    /// containers are made by hand ([`Made`]); the file only makes the stack deployed.
    pub fn deploy_for_hand_made(&mut self, name: &str) {
        self.deploy(
            name,
            "compose.yaml",
            &format!("services:\n{}", serve("unused", &[], "")),
        );
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
            // Short, so that every start does not take the default 10 s; the tests of the
            // settle window set their own.
            settle: Duration::from_millis(500),
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
    if let Err(e) = process::checked(&mut c, COMMAND_BOUND) {
        eprintln!("teardown of {name} failed: {e}");
    }
}

/// Runs a docker or compose command of a test, bounded; fails the test if it fails.
pub fn run(mut command: Command, what: &str) -> String {
    process::checked(&mut command, COMMAND_BOUND).unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub fn docker(args: &[&str]) -> String {
    let mut c = Command::new("docker");
    c.args(args);
    run(c, &format!("docker {}", args.join(" ")))
}

/// The container of `service` in project `project` (exactly one expected).
pub fn container(project: &str, service: &str) -> ContainerState {
    engine::container(project, Some(service)).unwrap_or_else(|e| panic!("{e}"))
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

/// The one container of each of `services` of `project`, as the stacks manager names it.
pub fn refs(project: &str, services: &[&str]) -> Vec<felhom_stacks::ContainerRef> {
    services
        .iter()
        .map(|service| {
            let id = container(project, service).id;
            let name = docker(&["inspect", "--format", "{{.Name}}", &id]);
            felhom_stacks::ContainerRef {
                id,
                name: name.trim().trim_start_matches('/').to_owned(),
                service: (*service).to_owned(),
            }
        })
        .collect()
}

/// The newer engine of `scripts/provision.sh` (Docker 26) as a `DOCKER_HOST`: CI provisions
/// it; elsewhere `None`, and the test says it did not run.
pub fn newer_engine() -> Option<String> {
    let socket = Path::new("/run/felhom-docker26/docker.sock");
    if !socket.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provision the newer engine (scripts/provision.sh)"
        );
        eprintln!("skipped: no newer engine at {}", socket.display());
        return None;
    }
    Some(format!("unix://{}", socket.display()))
}

/// Whether the project has a container for `service` at all.
pub fn has_container(project: &str, service: &str) -> bool {
    !engine::container_ids(project, Some(service))
        .unwrap_or_else(|e| panic!("{e}"))
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

/// Containers a test makes with `docker run` / `docker create` (hand-made members of a
/// project), removed with their volumes when dropped, even when the test fails.
#[derive(Default)]
pub struct Made(Vec<String>);

impl Made {
    /// `docker <args>`; returns the new container's id.
    pub fn docker(&mut self, args: &[&str]) -> String {
        let id = docker(args).trim().to_owned();
        self.0.push(id.clone());
        id
    }

    /// A hand-made member of `project` as `service` running the test app's `command`:
    /// `docker run -d` (`create` where `start` is false) with `options` before the image,
    /// and no network unless they name one (this engine has no default bridge).
    pub fn member(
        &mut self,
        project: &str,
        service: &str,
        start: bool,
        options: &[&str],
        command: &[&str],
    ) -> String {
        let mut args: Vec<String> = if start {
            vec!["run".into(), "-d".into()]
        } else {
            vec!["create".into()]
        };
        if !options.contains(&"--network") {
            args.extend(["--network".to_owned(), "none".to_owned()]);
        }
        args.extend(member_of(project, service));
        args.extend(options.iter().map(|o| (*o).to_owned()));
        args.push(IMAGE.to_owned());
        args.extend(command.iter().map(|c| (*c).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.docker(&args)
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for id in &self.0 {
            let mut c = Command::new("docker");
            c.args(["rm", "-f", "-v", id]);
            if let Err(e) = process::checked(&mut c, COMMAND_BOUND) {
                eprintln!("removing {id} failed: {e}");
            }
        }
    }
}

/// The labels that make a hand-made container a member of `project` as `service`.
pub fn member_of(project: &str, service: &str) -> Vec<String> {
    [
        format!("com.docker.compose.project={project}"),
        format!("com.docker.compose.service={service}"),
        "com.docker.compose.oneoff=False".to_owned(),
    ]
    .into_iter()
    .flat_map(|label| ["--label".to_owned(), label])
    .collect()
}

/// A container's state by id: `(status, StartedAt, FinishedAt)`.
pub fn state_of(
    id: &str,
) -> (
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
) {
    let out = docker(&[
        "inspect",
        "--format",
        "{{.State.Status}}|{{.State.StartedAt}}|{{.State.FinishedAt}}",
        id,
    ]);
    let mut fields = out.trim().split('|');
    let mut next = || fields.next().expect("three fields").to_owned();
    let status = next();
    let time = |text: String| {
        chrono::DateTime::parse_from_rfc3339(&text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .with_timezone(&chrono::Utc)
    };
    let started = time(next());
    let finished = time(next());
    (status, started, finished)
}

/// Waits (bounded) until `what` holds, looking every 100 ms.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The same, from an async test.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(std::time::Instant::now() < until, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the containers of `service` of `project`.
pub fn engine_ids(project: &str, service: &str) -> Vec<String> {
    engine::container_ids(project, Some(service)).unwrap_or_else(|e| panic!("{e}"))
}

/// Counts the signals the engine sends to a container (its `kill` events: a stop's signal, a
/// kill), from when it is made on; a live subscription, since the engine keeps only its last
/// 256 events.
pub struct Signals {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Signals {
    pub fn watch(id: &str) -> Self {
        let since = chrono::Utc::now().timestamp().saturating_sub(1).to_string();
        let mut child = Command::new("docker")
            .args([
                "events",
                "--since",
                &since,
                "--filter",
                &format!("container={id}"),
                "--filter",
                "event=kill",
                "--format",
                "{{.Action}} {{index .Actor.Attributes \"signal\"}}",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker events starts");
        let stdout = child.stdout.take().expect("piped");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().expect("lines").push(line);
            }
        });
        Self { child, seen }
    }

    /// The signals seen so far, e.g. `kill 15`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lines").clone()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops what runs of `stack` as a cycle does: the containers running now, by the v2 calls;
/// the ones it found running and stopped.
pub async fn stop(stacks: &EngineStacks, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
    let running = stacks.running_containers(stack).await?;
    let report = stacks
        .stop_containers(stack, &running, &Slots::new(4))
        .await?;
    Ok(report
        .containers
        .into_iter()
        .filter(|s| s.was_running)
        .map(|s| s.container)
        .collect())
}

/// Starts exactly `containers` of `stack` again, as after a stop of this instance.
pub async fn start(
    stacks: &EngineStacks,
    stack: &str,
    containers: &[ContainerRef],
) -> Result<StartReport, StacksError> {
    let request = StartRequest {
        containers: containers.to_vec(),
        stop_may_be_in_flight: false,
        recreate_vanished: true,
    };
    stacks
        .start_containers(stack, &request, &Slots::new(4))
        .await
}

/// The services of `containers`, sorted, each once.
pub fn services(containers: &[ContainerRef]) -> Vec<String> {
    let mut all: Vec<String> = containers.iter().map(|c| c.service.clone()).collect();
    all.sort();
    all.dedup();
    all
}
