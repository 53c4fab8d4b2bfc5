//! The dependency order of a stack's containers: compose's `depends_on` (from the containers'
//! label, or the project's model for containers that carry none), a network namespace shared
//! with another container, and links.

use std::collections::BTreeMap;

/// What a dependent waits for before it starts (compose's `depends_on` conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Condition {
    /// `service_started` (and the namespace and link dependencies): it runs.
    Started,
    /// `service_healthy`: its health check passes.
    Healthy,
    /// `service_completed_successfully`: it ran and exited 0.
    Completed,
}

impl Condition {
    fn parse(text: &str) -> Self {
        match text {
            "service_healthy" => Self::Healthy,
            "service_completed_successfully" => Self::Completed,
            // `service_started`, and what a newer compose may add: at least started.
            _ => Self::Started,
        }
    }
}

/// A service's dependencies: service name → condition.
pub(crate) type ServiceDeps = BTreeMap<String, Condition>;

/// Compose v2's `com.docker.compose.depends_on` label: comma-separated `svc`,
/// `svc:condition` or `svc:condition:restart`.
pub(crate) fn parse_depends_on(label: &str) -> ServiceDeps {
    label
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let mut fields = entry.split(':');
            let service = fields.next().unwrap_or_default().to_owned();
            let condition = fields.next().map_or(Condition::Started, Condition::parse);
            (service, condition)
        })
        .filter(|(service, _)| !service.is_empty())
        .collect()
}

/// What the order needs to know of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) service: &'a str,
    pub(crate) depends_on: &'a ServiceDeps,
    /// `HostConfig.NetworkMode`.
    pub(crate) network_mode: &'a str,
    /// `HostConfig.Links`.
    pub(crate) links: &'a [String],
}

/// For each member, the members it depends on and on what condition (the strongest, where
/// several reasons say the same). Dependencies outside `members` are not part of this start
/// or stop and are left out.
pub(crate) fn dependencies(members: &[Member<'_>]) -> Vec<Vec<(usize, Condition)>> {
    let by_id_or_name = |key: &str| position(members, key);
    members
        .iter()
        .enumerate()
        .map(|(me, member)| {
            let mut deps: BTreeMap<usize, Condition> = BTreeMap::new();
            let mut add = |other: usize, condition: Condition| {
                if other != me {
                    let entry = deps.entry(other).or_insert(condition);
                    *entry = (*entry).max(condition);
                }
            };
            for (service, condition) in member.depends_on {
                for (other, m) in members.iter().enumerate() {
                    if m.service == service {
                        add(other, *condition);
                    }
                }
            }
            if let Some(target) = member.network_mode.strip_prefix("container:") {
                if let Some(other) = by_id_or_name(target) {
                    add(other, Condition::Started);
                }
            }
            for link in member.links {
                // `/app-db-1:/app-web-1/db`: the linked container's name, then the alias.
                let target = link.split(':').next().unwrap_or_default();
                if let Some(other) = by_id_or_name(target.trim_start_matches('/')) {
                    add(other, Condition::Started);
                }
            }
            deps.into_iter().collect()
        })
        .collect()
}

/// The member a key names: its name, its id, or an id prefix of 12 or more.
fn position(members: &[Member<'_>], key: &str) -> Option<usize> {
    members
        .iter()
        .position(|m| m.name == key || m.id == key || (key.len() >= 12 && m.id.starts_with(key)))
}

/// For each member, the member whose network namespace it joins (`container:<id or name>`):
/// a dependency no start can ignore, since the engine refuses to start a container whose
/// namespace container does not run.
pub(crate) fn namespace_targets(members: &[Member<'_>]) -> Vec<Option<usize>> {
    members
        .iter()
        .map(|m| {
            m.network_mode
                .strip_prefix("container:")
                .and_then(|target| position(members, target))
        })
        .collect()
}

/// The reverse: for each member, the members that depend on it.
pub(crate) fn dependents(deps: &[Vec<(usize, Condition)>]) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); deps.len()];
    for (me, mine) in deps.iter().enumerate() {
        for (other, _) in mine {
            out[*other].push(me);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_label_formats_parse() {
        let deps = parse_depends_on(
            "db:service_healthy:false,init:service_completed_successfully:true,cache,queue:service_started",
        );
        assert_eq!(deps["db"], Condition::Healthy);
        assert_eq!(deps["init"], Condition::Completed);
        assert_eq!(deps["cache"], Condition::Started);
        assert_eq!(deps["queue"], Condition::Started);
        assert_eq!(deps.len(), 4);
        assert!(parse_depends_on("").is_empty());
        assert!(parse_depends_on(" , ").is_empty());
    }

    #[test]
    fn dependencies_come_from_labels_namespaces_and_links() {
        let none = ServiceDeps::new();
        let web_deps = parse_depends_on("db:service_healthy:false,gone:service_started");
        let links = vec!["/app-db-1:/app-worker-1/database".to_owned()];
        let members = [
            Member {
                id: "aaaaaaaaaaaaaaaa",
                name: "app-db-1",
                service: "db",
                depends_on: &none,
                network_mode: "bridge",
                links: &[],
            },
            Member {
                id: "bbbbbbbbbbbbbbbb",
                name: "app-web-1",
                service: "web",
                depends_on: &web_deps,
                network_mode: "app_default",
                links: &[],
            },
            Member {
                id: "cccccccccccccccc",
                name: "app-side-1",
                service: "side",
                depends_on: &none,
                network_mode: "container:aaaaaaaaaaaaaaaa",
                links: &[],
            },
            Member {
                id: "dddddddddddddddd",
                name: "app-worker-1",
                service: "worker",
                depends_on: &none,
                network_mode: "app_default",
                links: &links,
            },
        ];
        let deps = dependencies(&members);
        assert_eq!(deps[0], []);
        assert_eq!(
            deps[1],
            [(0, Condition::Healthy)],
            "a service outside is left out"
        );
        assert_eq!(deps[2], [(0, Condition::Started)]);
        assert_eq!(deps[3], [(0, Condition::Started)]);
        assert_eq!(dependents(&deps), [vec![1, 2, 3], vec![], vec![], vec![]]);
        assert_eq!(namespace_targets(&members), [None, None, Some(0), None]);
    }
}
