//! The benchmark's stacks: N real compose projects of the test app, each writing to its own
//! data directory, labelled so that the engine's events and the clean-up find exactly them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use felhom_testsupport::process;

/// The label every benchmark container carries; its value names the set (`<pid>-n<N>`).
pub(crate) const LABEL: &str = "felhom.bench";
const IMAGE: &str = "felhom-testapp:dev";
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// How many `up -d` run at once while deploying (the machine may have 2 cores).
const DEPLOY_PARALLELISM: usize = 4;

/// The compose tool, as the controller's `stacks.compose` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Compose {
    /// `docker compose` or `docker-compose`.
    pub(crate) name: String,
}

impl Compose {
    pub(crate) fn parse(name: &str) -> Result<Self> {
        match name {
            "docker compose" | "docker-compose" => Ok(Compose {
                name: name.to_owned(),
            }),
            other => {
                bail!("--compose {other:?}: expected \"docker compose\" or \"docker-compose\"")
            }
        }
    }

    pub(crate) fn command(&self) -> Command {
        let mut words = self.name.split(' ');
        let mut cmd = Command::new(words.next().unwrap_or("docker"));
        cmd.args(words);
        cmd
    }
}

/// What the stacks' app does: instantly, or like a real app that takes its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct App {
    /// How long its clean shutdown takes (`felhom-testapp serve --stop-delay`).
    pub(crate) stop: Duration,
    /// How long after its start it becomes ready (`--healthy-after`), told to the engine
    /// through a health check; `None`: no health check, ready at its `clean start`.
    pub(crate) ready: Option<Duration>,
}

impl App {
    /// The line of the app's log that says it serves again.
    pub(crate) fn ready_line(self) -> &'static str {
        if self.ready.is_some() {
            "healthy"
        } else {
            "clean start"
        }
    }
}

/// How often the engine runs a slow app's health check: short, so that the engine's view
/// follows the app's own readiness closely (the downtime ends at the app's own `healthy`).
const HEALTH_INTERVAL: &str = "250ms";

/// N deployed and running stacks under their own root; removed (containers and files) on drop.
#[derive(Debug)]
pub(crate) struct StackSet {
    /// The label value of this set's containers.
    pub(crate) id: String,
    /// The stacks root (one directory per stack, holding `compose.yaml`).
    pub(crate) root: PathBuf,
    /// The apps' data (one directory per stack): what the agent backs up.
    pub(crate) data: PathBuf,
    /// The stacks' names, sorted.
    pub(crate) names: Vec<String>,
    /// What their app does.
    pub(crate) app: App,
}

impl StackSet {
    /// Writes N compose stacks under `dir` and brings them up (`up -d`), then waits until
    /// every app runs.
    pub(crate) fn deploy(
        dir: &Path,
        tag: &str,
        n: usize,
        app: App,
        compose: &Compose,
    ) -> Result<Self> {
        let slow = if app == App::default() { "" } else { "s" };
        let id = format!("{tag}-n{n}{slow}");
        let set = StackSet {
            root: dir.join("stacks"),
            data: dir.join("data"),
            names: (1..=n).map(|i| format!("fhb{id}-{i:02}")).collect(),
            id,
            app,
        };
        for name in &set.names {
            let stack_dir = set.root.join(name);
            let data_dir = set.data.join(name);
            for d in [&stack_dir, &data_dir] {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            let file = stack_dir.join("compose.yaml");
            std::fs::write(&file, compose_yaml(&set.id, &data_dir, app))
                .with_context(|| format!("writing {}", file.display()))?;
        }
        for chunk in set.names.chunks(DEPLOY_PARALLELISM) {
            let ups: Vec<_> = chunk
                .iter()
                .map(|name| {
                    let mut cmd = compose.command();
                    cmd.current_dir(set.root.join(name)).args(["up", "-d"]);
                    thread::spawn(move || process::checked(&mut cmd, DOCKER_TIMEOUT))
                })
                .collect();
            for (name, up) in chunk.iter().zip(ups) {
                up.join()
                    .map_err(|_| anyhow::anyhow!("the thread bringing up {name} panicked"))?
                    .with_context(|| format!("bringing up stack {name}"))?;
            }
        }
        set.wait_all_ready(Duration::from_secs(60))?;
        Ok(set)
    }

    /// How many of the set's containers run (and, for an app with a health check, are
    /// healthy).
    fn ready(&self) -> Result<usize> {
        let mut cmd = Command::new("docker");
        cmd.args([
            "ps",
            "--quiet",
            "--filter",
            &format!("label={LABEL}={}", self.id),
            "--filter",
            "status=running",
        ]);
        if self.app.ready.is_some() {
            cmd.args(["--filter", "health=healthy"]);
        }
        Ok(process::checked(&mut cmd, DOCKER_TIMEOUT)?.lines().count())
    }

    /// Waits until each stack's app serves again (after a run, before the next one: a
    /// controller treats an app still starting differently from a healthy one).
    pub(crate) fn wait_all_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = self.ready()?;
            if ready == self.names.len() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "set {}: only {ready} of {} apps serve after {}s",
                    self.id,
                    self.names.len(),
                    limit.as_secs()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub(crate) fn stack_dirs(&self) -> Vec<PathBuf> {
        self.names.iter().map(|n| self.root.join(n)).collect()
    }
}

impl Drop for StackSet {
    fn drop(&mut self) {
        remove_containers(&format!("label={LABEL}={}", self.id));
    }
}

/// Removes the containers of earlier benchmark runs whose process is gone (a run killed with
/// Ctrl-C leaves its stacks behind). Runs of other live benchmarks are left alone.
pub(crate) fn remove_stale_sets() -> Result<()> {
    let mut cmd = Command::new("docker");
    cmd.args([
        "ps",
        "--all",
        "--filter",
        &format!("label={LABEL}"),
        "--format",
        &format!("{{{{.Label \"{LABEL}\"}}}}"),
    ]);
    let sets = process::checked(&mut cmd, DOCKER_TIMEOUT)?;
    let mut seen = Vec::new();
    for set in sets.lines() {
        let pid = set.split('-').next().unwrap_or_default();
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive && !seen.contains(&set) {
            seen.push(set);
            eprintln!("bench: removing the containers left by an earlier run ({LABEL}={set})");
            remove_containers(&format!("label={LABEL}={set}"));
        }
    }
    Ok(())
}

fn remove_containers(filter: &str) {
    let mut list = Command::new("docker");
    list.args(["ps", "--all", "--quiet", "--filter", filter]);
    let ids = match process::checked(&mut list, DOCKER_TIMEOUT) {
        Ok(ids) => ids,
        Err(e) => {
            eprintln!("bench: clean-up: {e:#}");
            return;
        }
    };
    let ids: Vec<&str> = ids.lines().collect();
    if ids.is_empty() {
        return;
    }
    let mut rm = Command::new("docker");
    rm.args(["rm", "--force", "--volumes"]).args(&ids);
    if let Err(e) = process::checked(&mut rm, DOCKER_TIMEOUT) {
        eprintln!("bench: clean-up: {e:#}");
    }
}

/// One service, no network (`network_mode: none` keeps 20 stacks from using up the engine's
/// address pools; the app needs none), its data bind-mounted where the agent backs it up.
fn compose_yaml(set: &str, data: &Path, app: App) -> String {
    let mut command = String::from("\"serve\", \"--data\", \"/data\"");
    let mut extra = String::new();
    if !app.stop.is_zero() {
        let stop = app.stop.as_millis();
        command.push_str(&format!(", \"--stop-delay\", \"{stop}ms\""));
    }
    if let Some(ready) = app.ready {
        let ready = ready.as_millis();
        command.push_str(&format!(", \"--healthy-after\", \"{ready}ms\""));
        extra.push_str(&format!(
            "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\"]\n      \
             interval: {HEALTH_INTERVAL}\n      timeout: 5s\n      retries: 3\n"
        ));
    }
    format!(
        "services:\n  app:\n    image: {IMAGE}\n    command: [{command}]\n    \
         network_mode: none\n    volumes:\n      - \"{}:/data\"\n    labels:\n      {LABEL}: \"{set}\"\n{extra}",
        data.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_compose_tools_are_accepted() {
        assert_eq!(
            Compose::parse("docker compose").expect("v2").name,
            "docker compose"
        );
        assert!(Compose::parse("docker-compose").is_ok());
        let err = Compose::parse("podman-compose").expect_err("not supported");
        assert!(err.to_string().contains("podman-compose"), "{err}");
    }

    #[test]
    fn the_compose_file_labels_the_container_with_its_set() {
        let yaml = compose_yaml("123-n5", Path::new("/b/data/x"), App::default());
        assert!(yaml.contains("felhom.bench: \"123-n5\""), "{yaml}");
        assert!(yaml.contains("\"/b/data/x:/data\""), "{yaml}");
        assert!(yaml.contains("network_mode: none"), "{yaml}");
        assert!(!yaml.contains("healthcheck"), "{yaml}");
        assert_eq!(App::default().ready_line(), "clean start");
    }

    #[test]
    fn a_slow_app_takes_its_time_and_has_a_health_check() {
        let app = App {
            stop: Duration::from_secs(2),
            ready: Some(Duration::from_secs(3)),
        };
        let yaml = compose_yaml("1-n10s", Path::new("/d"), app);
        assert!(
            yaml.contains(r#""--stop-delay", "2000ms", "--healthy-after", "3000ms""#),
            "{yaml}"
        );
        assert!(yaml.contains("healthcheck:"), "{yaml}");
        assert_eq!(app.ready_line(), "healthy");
    }
}
