//! What the docker engine says about compose containers: one `docker ps` per question,
//! filtered on compose's labels (cheaper than an inspect per container).

use std::collections::{BTreeMap, BTreeSet};

use crate::command::CommandLine;

const PROJECT_LABEL: &str = "com.docker.compose.project";
/// `compose run` containers are one-offs: not part of the stack's services, and compose's
/// own `stop`/`start` leave them alone, so this crate ignores them too.
const NOT_ONE_OFF: &str = "label=com.docker.compose.oneoff=False";

/// One container of a project, as `docker ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    pub(crate) id: String,
    pub(crate) service: String,
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited` or `dead`.
    pub(crate) state: String,
    /// The human-readable status, e.g. `Up 3 seconds (healthy)`; the only place `docker ps`
    /// shows the health.
    pub(crate) status: String,
}

/// A container's health, for containers that have a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Container {
    pub(crate) fn is_running(&self) -> bool {
        self.state == "running"
    }

    /// Gone for good since its start: it will not come up by waiting.
    pub(crate) fn has_failed(&self) -> bool {
        matches!(self.state.as_str(), "exited" | "dead" | "restarting")
    }

    /// `None` for a container without a health check.
    pub(crate) fn health(&self) -> Option<Health> {
        // The engine formats these in `State.String()`: `Up 2 seconds (health: starting)`.
        if self.status.contains("(health: starting)") {
            Some(Health::Starting)
        } else if self.status.contains("(unhealthy)") {
            Some(Health::Unhealthy)
        } else if self.status.contains("(healthy)") {
            Some(Health::Healthy)
        } else {
            None
        }
    }
}

/// The running, non-one-off containers of all compose projects: `project\tservice` lines.
pub(crate) fn ps_running_services() -> CommandLine {
    CommandLine::new(
        "docker",
        [
            "ps",
            "--filter",
            &format!("label={PROJECT_LABEL}"),
            "--filter",
            NOT_ONE_OFF,
            "--filter",
            "status=running",
            "--format",
            "{{.Label \"com.docker.compose.project\"}}\t{{.Label \"com.docker.compose.service\"}}",
        ],
    )
}

/// The services that run, by project.
pub(crate) fn parse_running_services(stdout: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut projects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in stdout.lines() {
        if let Some((project, service)) = line.split_once('\t') {
            if !project.is_empty() && !service.is_empty() {
                projects
                    .entry(project.to_owned())
                    .or_default()
                    .insert(service.to_owned());
            }
        }
    }
    projects
}

/// The project's containers: all of them, or only the running ones.
pub(crate) fn ps_project(project: &str, running_only: bool) -> CommandLine {
    let mut args = vec!["ps".to_owned()];
    if !running_only {
        args.push("--all".to_owned());
    }
    for filter in [
        format!("label={PROJECT_LABEL}={project}"),
        NOT_ONE_OFF.to_owned(),
    ] {
        args.push("--filter".to_owned());
        args.push(filter);
    }
    if running_only {
        args.extend(["--filter".to_owned(), "status=running".to_owned()]);
    }
    args.extend([
        "--format".to_owned(),
        "{{.ID}}\t{{.Label \"com.docker.compose.service\"}}\t{{.State}}\t{{.Status}}".to_owned(),
    ]);
    CommandLine::new("docker", args)
}

pub(crate) fn parse_containers(stdout: &str) -> Vec<Container> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(4, '\t');
            let container = Container {
                id: fields.next()?.to_owned(),
                service: fields.next()?.to_owned(),
                state: fields.next()?.to_owned(),
                status: fields.next()?.to_owned(),
            };
            (!container.id.is_empty() && !container.service.is_empty()).then_some(container)
        })
        .collect()
}

/// The services among `containers` that have a running container, sorted.
pub(crate) fn running_services(containers: &[Container]) -> Vec<String> {
    containers
        .iter()
        .filter(|c| c.is_running())
        .map(|c| c.service.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The last lines a container logged, both streams.
pub(crate) fn logs_tail(container_id: &str, lines: usize) -> CommandLine {
    CommandLine::new(
        "docker",
        ["logs", "--tail", &lines.to_string(), container_id],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_filters_on_the_project_and_skips_one_offs() {
        let line = ps_project("app", false);
        assert_eq!(line.program, "docker");
        assert_eq!(
            line.args,
            [
                "ps",
                "--all",
                "--filter",
                "label=com.docker.compose.project=app",
                "--filter",
                "label=com.docker.compose.oneoff=False",
                "--format",
                "{{.ID}}\t{{.Label \"com.docker.compose.service\"}}\t{{.State}}\t{{.Status}}",
            ]
        );
        let running = ps_project("app", true);
        assert!(!running.args.contains(&"--all".to_owned()));
        assert!(running.args.contains(&"status=running".to_owned()));
    }

    #[test]
    fn running_services_are_grouped_by_project() {
        let out = "b\tweb\na\tdb\nb\tdb\nb\tweb\n\tnoproject\nnoservice\t\ngarbage\n";
        let parsed = parse_running_services(out);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["a"].iter().collect::<Vec<_>>(), ["db"]);
        assert_eq!(parsed["b"].iter().collect::<Vec<_>>(), ["db", "web"]);
    }

    #[test]
    fn containers_parse_with_state_and_health() {
        let out = "\
abc\tdb\trunning\tUp 3 seconds (healthy)
def\tweb\trunning\tUp 1 second (health: starting)
ghi\tinit\texited\tExited (0) 2 minutes ago
jkl\tcache\trunning\tUp 5 minutes (unhealthy)
mno\tworker\trunning\tUp 5 minutes
pqr\tloop\trestarting\tRestarting (1) 2 seconds ago
broken line
";
        let containers = parse_containers(out);
        assert_eq!(containers.len(), 6);
        let health: Vec<_> = containers.iter().map(Container::health).collect();
        assert_eq!(
            health,
            [
                Some(Health::Healthy),
                Some(Health::Starting),
                None,
                Some(Health::Unhealthy),
                None,
                None
            ]
        );
        let failed: Vec<_> = containers
            .iter()
            .filter(|c| c.has_failed())
            .map(|c| c.service.as_str())
            .collect();
        assert_eq!(failed, ["init", "loop"]);
        assert_eq!(
            running_services(&containers),
            ["cache", "db", "web", "worker"]
        );
    }
}
