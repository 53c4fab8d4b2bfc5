//! The test's world: stacks on the engine, their containers, and the controller's config.

use std::path::{Path, PathBuf};
use std::process::Command;

use felhom_marker::{CycleRecord, Marker};

use crate::agent::Access;
use crate::{ensure_image, process, run_ok, IMAGE, WAIT};

/// The compose tool a test deploys its stacks with, and configures the controller to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compose {
    /// `docker compose` (the plugin).
    V2,
    /// `docker-compose` (the Python tool).
    V1,
}

impl Compose {
    fn command(self) -> Command {
        match self {
            Compose::V2 => {
                let mut c = Command::new("docker");
                c.arg("compose");
                c
            }
            Compose::V1 => Command::new("docker-compose"),
        }
    }

    /// The value of `[stacks] compose` that selects this tool.
    pub fn config_value(self) -> &'static str {
        match self {
            Compose::V2 => "docker compose",
            Compose::V1 => "docker-compose",
        }
    }
}

/// How a deployed stack looks: one service `app` running the test app (or, with
/// [`Env::deploy_services`], several).
#[derive(Debug, Clone)]
pub struct StackSpec {
    data: bool,
    healthy_after: Option<String>,
    stop_delay: Option<String>,
    grace: Option<String>,
    replicas: u32,
    crash_on_restart: bool,
    labels: Vec<(String, String)>,
}

impl StackSpec {
    /// An app with its data directory `<data_dir>/<name>` mounted at `/data`: the agent backs
    /// it up, and the app's log there says whether it shut down cleanly.
    pub fn app() -> Self {
        StackSpec {
            data: true,
            healthy_after: None,
            stop_delay: None,
            grace: None,
            replicas: 1,
            crash_on_restart: false,
            labels: Vec::new(),
        }
    }

    /// A service without data (infrastructure, e.g. the protected proxy).
    pub fn no_data() -> Self {
        StackSpec {
            data: false,
            healthy_after: None,
            stop_delay: None,
            grace: None,
            replicas: 1,
            crash_on_restart: false,
            labels: Vec::new(),
        }
    }

    /// Adds the compose label `key: value` to the service (e.g. `felhom.quiesce`, `hook`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds a compose health check that passes only `duration` (e.g. `"2s"`) after each start,
    /// so that a start takes at least that long.
    pub fn healthy_after(mut self, duration: &str) -> Self {
        self.healthy_after = Some(duration.to_owned());
        self
    }

    /// Makes the app take `duration` (e.g. `"4s"`) to shut down after SIGTERM (its compose
    /// `stop_grace_period` is raised to match, so compose does not kill it first).
    pub fn stop_delay(mut self, duration: &str) -> Self {
        self.stop_delay = Some(duration.to_owned());
        self
    }

    /// Sets the service's `stop_grace_period` to `duration` (e.g. `"2s"`), whatever its
    /// shutdown takes: with a longer [`StackSpec::stop_delay`] its grace runs out.
    pub fn grace(mut self, duration: &str) -> Self {
        self.grace = Some(duration.to_owned());
        self
    }

    /// Runs `n` replicas of the service (compose `scale`).
    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = n;
        self
    }

    /// An app that runs normally until [`Env::crash_on_restart`], and from then on dies 2 s
    /// after each start. (Its health file lives in its data directory, written 2 s after each
    /// start; a dangling link in its place makes that write, and so the app, fail.)
    pub fn crash_on_restart(mut self) -> Self {
        self.crash_on_restart = true;
        self
    }
}

pub use felhom_testsupport::engine::ContainerState;

/// The state of the one container of compose project `project`.
pub fn container(project: &str) -> ContainerState {
    felhom_testsupport::engine::container(project, None).unwrap_or_else(|e| panic!("{e}"))
}

/// The state of the one container of `service` of compose project `project`.
pub fn service_container(project: &str, service: &str) -> ContainerState {
    felhom_testsupport::engine::container(project, Some(service)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every container of compose project `project` (e.g. the replicas of a service), running or
/// not, sorted by name (the replicas' numbers).
pub fn containers(project: &str) -> Vec<ContainerState> {
    let mut all = felhom_testsupport::engine::containers(project).unwrap_or_else(|e| panic!("{e}"));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// A test's world: a temporary directory with a stacks root, the apps' data (the agent's
/// source), the agent's output and the controller's state directory. Dropping it takes every
/// deployed stack down (`down -v --remove-orphans`).
#[derive(Debug)]
pub struct Env {
    dir: tempfile::TempDir,
    prefix: String,
    compose: Compose,
    deployed: Vec<String>,
    protected: Vec<String>,
}

impl Env {
    /// A new environment whose stacks use compose v2. `tag` (a few lowercase letters or
    /// digits) names the test in stack names.
    pub fn new(tag: &str) -> Self {
        Self::with_compose(tag, Compose::V2)
    }

    /// A new environment whose stacks use `compose`.
    pub fn with_compose(tag: &str, compose: Compose) -> Self {
        assert!(
            !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "a test tag is lowercase letters and digits: {tag:?}"
        );
        ensure_image();
        let dir = tempfile::Builder::new()
            .prefix(&format!("felhom-e2e-{tag}-"))
            .tempdir()
            .expect("a temporary directory");
        let env = Env {
            dir,
            // Stack names are global on the engine and tests run in parallel (and test runs in
            // other processes): the pid and the tag keep them apart.
            prefix: format!("e2e{}{tag}", std::process::id()),
            compose,
            deployed: Vec::new(),
            protected: Vec::new(),
        };
        for dir in [env.stacks_root(), env.data_dir(), env.out_dir()] {
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        env
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `[stacks] root`.
    pub fn stacks_root(&self) -> PathBuf {
        self.path().join("stacks")
    }

    /// The apps' data: `<data_dir>/<stack>`; the agent's source.
    pub fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The agent's snapshots and archives (`<id>.tar`).
    pub fn out_dir(&self) -> PathBuf {
        self.path().join("out")
    }

    /// `[quiesce] state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    /// The marker file.
    pub fn marker_path(&self) -> PathBuf {
        self.state_dir().join("marker.json")
    }

    /// The marker, if one is on disk.
    pub fn marker(&self) -> Option<Marker> {
        let path = self.marker_path();
        match std::fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display())),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }

    /// The cycle records of `state_dir/history.jsonl`, oldest first.
    pub fn history(&self) -> Vec<CycleRecord> {
        let path = self.state_dir().join("history.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("reading {}: {e}", path.display()),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{}: line {l:?}: {e}", path.display()))
            })
            .collect()
    }

    /// The full name of a stack of this test: `e2e<pid><tag>-<short>`.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// Writes `<stacks_root>/<name>/compose.yaml` for `spec` (not started); returns the name.
    /// Its data directory is `<data_dir>/<name>`.
    pub fn deploy(&mut self, short: &str, spec: &StackSpec) -> String {
        let name = self.name(short);
        let data = self.data_dir().join(&name);
        let yaml = format!("services:\n{}", service_yaml("app", spec, &data));
        self.write_stack(&name, &yaml)
    }

    /// Writes a stack of several services, each `(service, spec)` with its data directory
    /// at `<data_dir>/<name>/<service>` (see [`Env::service_data`]); returns the name.
    pub fn deploy_services(&mut self, short: &str, services: &[(&str, StackSpec)]) -> String {
        let name = self.name(short);
        let mut yaml = "services:\n".to_owned();
        for (service, spec) in services {
            yaml.push_str(&service_yaml(
                service,
                spec,
                &self.service_data(&name, service),
            ));
        }
        self.write_stack(&name, &yaml)
    }

    /// The data directory of `service` of a stack of [`Env::deploy_services`].
    pub fn service_data(&self, name: &str, service: &str) -> PathBuf {
        self.data_dir().join(name).join(service)
    }

    /// The app's own log of `service` of a stack of [`Env::deploy_services`].
    pub fn service_log(&self, name: &str, service: &str) -> String {
        let path = self.service_data(name, service).join("log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn write_stack(&mut self, name: &str, yaml: &str) -> String {
        let dir = self.stacks_root().join(name);
        std::fs::create_dir_all(&dir).expect("the stack's directory");
        std::fs::write(dir.join("compose.yaml"), yaml).expect("writing compose.yaml");
        self.deployed.push(name.to_owned());
        name.to_owned()
    }

    /// Deploys a stack without data and adds it to `[stacks] protected` (a unique name: the
    /// built-in `traefik` would collide between tests running at the same time).
    pub fn deploy_protected(&mut self, short: &str) -> String {
        let name = self.deploy(short, &StackSpec::no_data());
        self.protected.push(name.clone());
        name
    }

    fn compose(&self, name: &str, args: &[&str]) {
        let mut c = self.compose.command();
        c.args(["-p", name])
            .args(args)
            .current_dir(self.stacks_root().join(name));
        run_ok(c, &format!("compose {} of {name}", args.join(" ")));
    }

    /// `compose up -d`, as an operator deploys a stack.
    pub fn up(&self, name: &str) {
        self.compose(name, &["up", "-d"]);
    }

    /// `compose stop`: deployed but not running.
    pub fn stop(&self, name: &str) {
        self.compose(name, &["stop", "-t", "1"]);
    }

    /// From now on the app of stack `name` (deployed with [`StackSpec::crash_on_restart`], and
    /// stopped) dies 2 s after each start: its health file's directory becomes a link to
    /// nowhere, which its start tolerates (nothing to remove) and its health write does not.
    pub fn crash_on_restart(&self, name: &str) {
        let dir = self.data_dir().join(name).join("h");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", dir.display()),
        }
        std::os::unix::fs::symlink("/felhom-e2e-nowhere", &dir)
            .unwrap_or_else(|e| panic!("linking {}: {e}", dir.display()));
    }

    /// The app's own log (`<data_dir>/<name>/log`).
    pub fn app_log(&self, name: &str) -> String {
        let path = self.data_dir().join(name).join("log");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A controller config for this environment and `agent`, with short timings: stop timeout
    /// 5 s, settle 1 s, due polled every second, status every 200 ms, `max_quiesce` 60 s, one
    /// cycle an hour, no status endpoint.
    pub fn config(&self, agent: &Access) -> ConfigFile {
        let mut config = ConfigFile {
            table: toml::Table::new(),
            path: self.path().join("controller.toml"),
        };
        config = config
            .set("agent.url", agent.url.as_str())
            .set("agent.token", agent.token.as_str())
            .set("agent.pin_sha256", agent.pin.as_str())
            .set("agent.request_timeout", "5s")
            .set("stacks.root", path_str(&self.stacks_root()))
            .set("stacks.compose", self.compose.config_value())
            .set("stacks.protected", self.protected.clone())
            .set("stacks.stop_timeout", "5s")
            .set("stacks.start_timeout", "60s")
            // The settle window (10 s by default) lengthens every cycle: a second is enough
            // for a test app, and a test about it sets its own.
            .set("stacks.settle", "1s")
            .set("quiesce.state_dir", path_str(&self.state_dir()))
            .set("quiesce.due_poll_interval", "1s")
            .set("quiesce.status_poll_interval", "200ms")
            .set("quiesce.max_quiesce", "60s")
            .set("quiesce.min_cycle_interval", "1h")
            .set("quiesce.failure_cooldown", "1h")
            .set("status.listen", "");
        config
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in &self.deployed {
            let mut c = self.compose.command();
            c.args(["-p", name, "down", "-v", "--remove-orphans", "-t", "1"])
                .current_dir(self.stacks_root().join(name));
            match process::run(&mut c, WAIT) {
                Ok(out) if out.status.success() => {}
                Ok(out) => eprintln!("teardown of {name} failed: {}", out.stderr),
                Err(e) => eprintln!("teardown of {name} failed: {e}"),
            }
        }
    }
}

/// One service of a compose file: the test app as `spec` says, its data (if any) in `data`
/// (made here rather than by the engine, which would make it on first start only).
fn service_yaml(service: &str, spec: &StackSpec, data: &Path) -> String {
    let mut command = vec!["serve".to_owned()];
    let mut yaml = format!("  {service}:\n    image: {IMAGE}\n");
    if spec.data {
        std::fs::create_dir_all(data).expect("the app's data directory");
        command.extend(["--data".to_owned(), "/data".to_owned()]);
        yaml.push_str(&format!(
            "    volumes: [{}]\n",
            json_string(&format!("{}:/data", data.display()))
        ));
    }
    if let Some(after) = &spec.healthy_after {
        command.extend(["--healthy-after".to_owned(), after.clone()]);
        yaml.push_str(
            "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      \
             interval: 1s\n      timeout: 2s\n      retries: 60\n",
        );
    }
    if spec.crash_on_restart {
        assert!(
            spec.data,
            "an app that crashes on restart needs its data directory"
        );
        command.extend(
            ["--healthy-after", "2s", "--health-file", "/data/h/healthy"].map(str::to_owned),
        );
    }
    if let Some(delay) = &spec.stop_delay {
        command.extend(["--stop-delay".to_owned(), delay.clone()]);
    }
    match (&spec.grace, &spec.stop_delay) {
        (Some(grace), _) => yaml.push_str(&format!("    stop_grace_period: {grace}\n")),
        (None, Some(_)) => yaml.push_str("    stop_grace_period: 90s\n"),
        (None, None) => {}
    }
    if spec.replicas != 1 {
        yaml.push_str(&format!("    scale: {}\n", spec.replicas));
    }
    if !spec.labels.is_empty() {
        yaml.push_str("    labels:\n");
        for (key, value) in &spec.labels {
            // JSON strings are YAML: no quoting rule of YAML's applies to them.
            yaml.push_str(&format!(
                "      {}: {}\n",
                json_string(key),
                json_string(value)
            ));
        }
    }
    // JSON is YAML: the command as a JSON array needs no YAML quoting rules.
    yaml.push_str(&format!(
        "    command: {}\n",
        serde_json::to_string(&command).expect("strings serialize")
    ));
    yaml
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A controller configuration being put together; [`ConfigFile::write`] puts it on disk.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    table: toml::Table,
    path: PathBuf,
}

impl ConfigFile {
    /// Sets `section.key` (e.g. `"quiesce.max_quiesce"`) to `value`.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        let (section, key) = key
            .split_once('.')
            .unwrap_or_else(|| panic!("a config key is section.key: {key:?}"));
        let section = self
            .table
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        section
            .as_table_mut()
            .expect("a section is a table")
            .insert(key.to_owned(), value.into());
        self
    }

    /// Removes `section.key` (e.g. `"agent.token"`), if set.
    pub fn remove(mut self, key: &str) -> Self {
        let (section, key) = key
            .split_once('.')
            .unwrap_or_else(|| panic!("a config key is section.key: {key:?}"));
        if let Some(toml::Value::Table(table)) = self.table.get_mut(section) {
            table.remove(key);
        }
        self
    }

    /// Writes the file under another name in the same directory.
    pub fn named(mut self, file_name: &str) -> Self {
        self.path.set_file_name(file_name);
        self
    }

    /// Writes the file; returns its path.
    pub fn write(&self) -> PathBuf {
        let text = toml::to_string(&self.table).expect("a TOML table serializes");
        std::fs::write(&self.path, text)
            .unwrap_or_else(|e| panic!("writing {}: {e}", self.path.display()));
        self.path.clone()
    }
}
