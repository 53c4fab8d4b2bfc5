//! The Docker engine and the test image every real-stack test needs, and the workspace's own
//! binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process;

/// The image of the test app (`crates/testapp`), built by `scripts/build-test-image.sh`.
pub const IMAGE: &str = "felhom-testapp:dev";

/// The bound of a short docker command (`info`, `image inspect`).
const DOCKER_BOUND: Duration = Duration::from_secs(60);
/// The first build compiles the test app: minutes, not seconds.
const BUILD_BOUND: Duration = Duration::from_secs(15 * 60);

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Checks that a Docker engine answers; the error says what to do.
pub fn check_engine() -> Result<(), String> {
    let mut info = Command::new("docker");
    info.args(["info", "--format", "{{.ServerVersion}}"]);
    process::checked(&mut info, DOCKER_BOUND)
        .map(drop)
        .map_err(|e| format!("no Docker engine: run scripts/provision.sh ({e})"))
}

/// Checks that [`IMAGE`] is on the engine, without building it; the error says how to build
/// it.
pub fn check_image() -> Result<(), String> {
    let mut inspect = Command::new("docker");
    inspect.args(["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    process::checked(&mut inspect, DOCKER_BOUND)
        .map(drop)
        .map_err(|e| format!("the image {IMAGE} is needed: run scripts/build-test-image.sh ({e})"))
}

/// Checks the engine and builds the test image (or finds it up to date), once per process;
/// later calls return the first call's answer. A missing engine is an error, never a skip.
pub fn ensure_image() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            check_engine()?;
            let script = repo_root().join("scripts/build-test-image.sh");
            process::checked(&mut Command::new(&script), BUILD_BOUND)
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// The workspace binary `name` in the directory `dir` (e.g. `target/<profile>/`); the error
/// says how to build it.
pub fn binary_in(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let bin = dir.join(name);
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: build it (`cargo build -p {name}`) with the same CARGO_TARGET_DIR",
            bin.display()
        ))
    }
}

/// The workspace binary `name` next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`).
pub fn test_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test executable's path: {e}"))?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps", exe.display()))?;
    binary_in(profile, name)
}

/// What the engine says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The container id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// `State.Running`.
    pub running: bool,
    /// `State.Status` (`running`, `exited`, ...).
    pub status: String,
    /// `State.Health.Status`, empty without a health check.
    pub health: String,
    /// `State.StartedAt`: the last start.
    pub started_at: DateTime<Utc>,
    /// `State.FinishedAt`: the last exit (year 1 if it never exited).
    pub finished_at: DateTime<Utc>,
}

/// The ids of the containers of compose project `project` (of its `service` only, if
/// given), running or not.
pub fn container_ids(project: &str, service: Option<&str>) -> Result<Vec<String>, String> {
    let mut ps = Command::new("docker");
    ps.args(["ps", "-a", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=com.docker.compose.project={project}"));
    if let Some(service) = service {
        ps.arg("--filter")
            .arg(format!("label=com.docker.compose.service={service}"));
    }
    let ids = process::checked(&mut ps, DOCKER_BOUND).map_err(|e| e.to_string())?;
    Ok(ids.split_whitespace().map(str::to_owned).collect())
}

/// The one container of compose project `project` (of its `service`, if given); an error
/// when there is not exactly one.
pub fn container(project: &str, service: Option<&str>) -> Result<ContainerState, String> {
    let what = match service {
        Some(service) => format!("{project}/{service}"),
        None => project.to_owned(),
    };
    let ids = container_ids(project, service)?;
    let [id] = ids.as_slice() else {
        return Err(format!("{what} should have exactly one container: {ids:?}"));
    };
    state_of(id, &what)
}

/// Every container of compose project `project`, running or not, by id.
pub fn containers(project: &str) -> Result<Vec<ContainerState>, String> {
    container_ids(project, None)?
        .iter()
        .map(|id| state_of(id, project))
        .collect()
}

/// The state of container `id`; `what` names it in errors.
fn state_of(id: &str, what: &str) -> Result<ContainerState, String> {
    let mut inspect = Command::new("docker");
    inspect.args(["inspect", id]);
    let text = process::checked(&mut inspect, DOCKER_BOUND).map_err(|e| e.to_string())?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("docker inspect of {what}: {e}"))?;
    let state = &doc[0]["State"];
    let text_at = |key: &str| -> Result<&str, String> {
        state[key]
            .as_str()
            .ok_or_else(|| format!("{what}: State.{key} missing in {state}"))
    };
    let time = |key: &str| -> Result<DateTime<Utc>, String> {
        let text = text_at(key)?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{what}: State.{key} = {text:?}: {e}"))
    };
    Ok(ContainerState {
        id: id.to_owned(),
        name: doc[0]["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        running: state["Running"]
            .as_bool()
            .ok_or_else(|| format!("{what}: State.Running missing in {state}"))?,
        status: text_at("Status")?.to_owned(),
        health: state["Health"]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        started_at: time("StartedAt")?,
        finished_at: time("FinishedAt")?,
    })
}
