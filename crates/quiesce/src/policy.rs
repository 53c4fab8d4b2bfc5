//! What a cycle knows of its stacks' per-service policy (issue 23, `docs/labels.md`): read
//! once from the listing of the running stacks, it says which services are stopped, which
//! are kept running, which hooks run where, and in which groups (`felhom.stop-order`) the
//! stacks stop and start. Only the driver's cycle holds it; the steps get plain plans made
//! from it.

use crate::cycle::marked;
use felhom_marker::{MarkedHooks, MarkedStack, ServiceMode, ServiceRecord};
use felhom_stacks::{
    ContainerRef, HookCommand, OnHookError, QuiesceMode, RunningStack, StackPolicy,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The policy of each stack of a cycle, with its containers by service.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies {
    stacks: BTreeMap<String, Listed>,
    /// `max_quiesce`: no hook runs longer.
    max_quiesce: Duration,
}

#[derive(Debug, Clone)]
struct Listed {
    policy: StackPolicy,
    containers: Vec<ContainerRef>,
}

/// One `pre-snapshot` hook of a service, to run in each of its containers in turn.
#[derive(Debug, Clone)]
pub(crate) struct PreHook {
    pub(crate) service: String,
    pub(crate) containers: Vec<ContainerRef>,
    pub(crate) command: HookCommand,
    pub(crate) timeout: Duration,
    pub(crate) on_error: OnHookError,
}

/// A stack's `pre-snapshot` hooks, one service after another (by name).
#[derive(Debug, Clone)]
pub(crate) struct StackPre {
    pub(crate) stack: String,
    pub(crate) hooks: Vec<PreHook>,
}

pub(crate) fn mode_of(mode: QuiesceMode) -> ServiceMode {
    match mode {
        QuiesceMode::Stop => ServiceMode::Stop,
        QuiesceMode::Skip => ServiceMode::Skip,
        QuiesceMode::Hook => ServiceMode::Hook,
    }
}

impl Policies {
    /// The policies of the `running` stacks; every hook bounded by `max_quiesce` too.
    pub(crate) fn of(running: &[RunningStack], max_quiesce: Duration) -> Self {
        let stacks = running
            .iter()
            .map(|s| {
                let listed = Listed {
                    policy: s.policy.clone(),
                    containers: s.containers.clone(),
                };
                (s.name.clone(), listed)
            })
            .collect();
        Policies {
            stacks,
            max_quiesce,
        }
    }

    /// How long each hook of `policy` may run: its `felhom.hook-timeout`, at most
    /// `max_quiesce`.
    fn timeout(&self, timeout: Duration) -> Duration {
        if self.max_quiesce.is_zero() {
            timeout
        } else {
            timeout.min(self.max_quiesce)
        }
    }

    /// The marker's entry of `stack` before anything is stopped: the containers of its
    /// services to stop (those kept running are not the stop's), its stop order, and each
    /// service with hooks.
    pub(crate) fn marked(&self, stack: &RunningStack) -> MarkedStack {
        let policy = &stack.policy;
        let stopped = |c: &&ContainerRef| policy.service(&c.service).quiesce == QuiesceMode::Stop;
        let containers: Vec<_> = stack
            .containers
            .iter()
            .filter(stopped)
            .map(marked)
            .collect();
        let mut services: Vec<String> = containers.iter().map(|c| c.service.clone()).collect();
        services.dedup();
        let mut entry = MarkedStack::new(stack.name.clone(), services, containers);
        entry.stop_order = policy.stop_order();
        entry.hooks = policy
            .services
            .iter()
            .filter(|(_, p)| p.pre_snapshot.is_some() || p.post_resume.is_some())
            .map(|(service, p)| MarkedHooks {
                service: service.clone(),
                mode: mode_of(p.quiesce),
                kept_up: p.quiesce != QuiesceMode::Stop,
                pre_snapshot: p.pre_snapshot.is_some(),
                post_resume: p.post_resume.as_ref().map(|c| c.line().to_owned()),
                timeout_ms: u64::try_from(self.timeout(p.hook_timeout).as_millis())
                    .unwrap_or(u64::MAX),
                containers: of_service(&stack.containers, service).map(marked).collect(),
                quiesced: false,
                runs: Vec::new(),
            })
            .collect();
        entry
    }

    /// Each service of `stack` as the record begins it: its mode, not (yet) stopped.
    pub(crate) fn services(&self, stack: &str) -> Option<Vec<ServiceRecord>> {
        let listed = self.stacks.get(stack)?;
        Some(
            listed
                .policy
                .services
                .iter()
                .map(|(service, p)| ServiceRecord {
                    service: service.clone(),
                    mode: mode_of(p.quiesce),
                    stopped: false,
                    capture: felhom_marker::Capture::Unknown,
                    hooks: Vec::new(),
                })
                .collect(),
        )
    }

    /// The labels of `stack` with bad values, one line each.
    pub(crate) fn label_errors(&self, stack: &str) -> Vec<String> {
        self.stacks
            .get(stack)
            .map(|l| l.policy.errors.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// The services of `stack` kept running (`skip`, `hook`), before any hook failed.
    pub(crate) fn kept_up(&self, stack: &str) -> BTreeSet<String> {
        self.stacks
            .get(stack)
            .map(|l| {
                l.policy
                    .services
                    .iter()
                    .filter(|(_, p)| p.quiesce != QuiesceMode::Stop)
                    .map(|(s, _)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `felhom.on-hook-error` of `service` of `stack`.
    pub(crate) fn on_hook_error(&self, stack: &str, service: &str) -> OnHookError {
        self.stacks
            .get(stack)
            .map(|l| l.policy.service(service).on_hook_error)
            .unwrap_or_default()
    }

    /// `stack`'s `pre-snapshot` hooks, service by service (by name); `None` without any.
    pub(crate) fn pre_snapshot(&self, stack: &str) -> Option<StackPre> {
        let listed = self.stacks.get(stack)?;
        let hooks: Vec<PreHook> = listed
            .policy
            .services
            .iter()
            .filter_map(|(service, p)| {
                let command = p.pre_snapshot.clone()?;
                Some(PreHook {
                    service: service.clone(),
                    containers: of_service(&listed.containers, service).cloned().collect(),
                    command,
                    timeout: self.timeout(p.hook_timeout),
                    on_error: p.on_hook_error,
                })
            })
            .collect();
        (!hooks.is_empty()).then(|| StackPre {
            stack: stack.to_owned(),
            hooks,
        })
    }
}

fn of_service<'a>(
    containers: &'a [ContainerRef],
    service: &'a str,
) -> impl Iterator<Item = &'a ContainerRef> + 'a {
    containers.iter().filter(move |c| c.service == service)
}

/// `items` in groups of equal stop order: the lowest first (stops, and the `pre-snapshot`
/// hooks), or the highest first (starts); items of one order keep their order.
pub(crate) fn groups<T>(
    items: Vec<T>,
    order: impl Fn(&T) -> i32,
    lowest_first: bool,
) -> Vec<Vec<T>> {
    let mut keyed: Vec<(i32, T)> = items.into_iter().map(|t| (order(&t), t)).collect();
    // Stable: the order within a group is kept.
    keyed.sort_by_key(|(o, _)| {
        if lowest_first {
            i64::from(*o)
        } else {
            -i64::from(*o)
        }
    });
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut last: Option<i32> = None;
    for (o, t) in keyed {
        match out.last_mut() {
            Some(group) if last == Some(o) => group.push(t),
            _ => out.push(vec![t]),
        }
        last = Some(o);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_stacks::label;

    fn container(stack: &str, service: &str, n: u32) -> ContainerRef {
        ContainerRef {
            id: format!("{stack}-{service}-{n}-id"),
            name: format!("{stack}-{service}-{n}"),
            service: service.into(),
        }
    }

    fn shop() -> RunningStack {
        let mut policy = StackPolicy::default();
        policy.read_service(
            "shop",
            "db",
            [
                (label::QUIESCE, "hook"),
                (label::PRE_SNAPSHOT, "dump /data/x"),
                (label::POST_RESUME, "echo back"),
                (label::HOOK_TIMEOUT, "2h"),
                (label::STOP_ORDER, "5"),
            ],
        );
        policy.read_service("shop", "front", [(label::QUIESCE, "skip")]);
        policy.read_service("shop", "web", [(label::QUIESCE, "nope")]);
        RunningStack {
            name: "shop".into(),
            services: vec!["db".into(), "front".into(), "web".into()],
            containers: vec![
                container("shop", "db", 1),
                container("shop", "db", 2),
                container("shop", "front", 1),
                container("shop", "web", 1),
            ],
            policy,
        }
    }

    #[test]
    fn the_marker_names_only_what_is_stopped_and_every_service_with_hooks() {
        let stack = shop();
        let policies = Policies::of(std::slice::from_ref(&stack), Duration::from_secs(600));
        let marked = policies.marked(&stack);
        assert_eq!(marked.services, ["web"], "a bad quiesce value is a stop");
        assert_eq!(marked.containers.len(), 1);
        assert_eq!(marked.stop_order, 0, "the lowest of its services'");
        assert_eq!(marked.hooks.len(), 1);
        let db = &marked.hooks[0];
        assert!(db.kept_up && db.pre_snapshot && !db.quiesced);
        assert_eq!(db.post_resume.as_deref(), Some("echo back"));
        assert_eq!(db.timeout_ms, 600_000, "bounded by max_quiesce");
        assert_eq!(db.containers.len(), 2);
        assert_eq!(policies.kept_up("shop").len(), 2);
        assert_eq!(policies.label_errors("shop").len(), 1);
        let pre = policies.pre_snapshot("shop").expect("db has one");
        assert_eq!(pre.hooks.len(), 1);
        assert_eq!(pre.hooks[0].containers.len(), 2, "a scaled service: each");
        assert_eq!(pre.hooks[0].timeout, Duration::from_secs(600));
        let services = policies.services("shop").expect("listed");
        let modes: Vec<_> = services
            .iter()
            .map(|s| (s.service.as_str(), s.mode))
            .collect();
        assert_eq!(
            modes,
            [
                ("db", ServiceMode::Hook),
                ("front", ServiceMode::Skip),
                ("web", ServiceMode::Stop)
            ]
        );
    }

    #[test]
    fn groups_go_by_stop_order_keeping_the_order_within_each() {
        let items = vec![("a", 0), ("b", 10), ("c", -5), ("d", 0), ("e", 10)];
        fn names(groups: Vec<Vec<(&'static str, i32)>>) -> Vec<Vec<&'static str>> {
            groups
                .into_iter()
                .map(|g| g.into_iter().map(|(n, _)| n).collect())
                .collect()
        }
        assert_eq!(
            names(groups(items.clone(), |(_, o)| *o, true)),
            [vec!["c"], vec!["a", "d"], vec!["b", "e"]]
        );
        assert_eq!(
            names(groups(items, |(_, o)| *o, false)),
            [vec!["b", "e"], vec!["a", "d"], vec!["c"]]
        );
        assert!(groups(Vec::<i32>::new(), |o| *o, true).is_empty());
        let extremes = vec![i32::MIN, i32::MAX, 0];
        assert_eq!(
            groups(extremes, |o| *o, false),
            [vec![i32::MAX], vec![0], vec![i32::MIN]]
        );
    }
}
