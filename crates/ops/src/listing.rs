//! What `check` shows of the running app stacks (issue 23, `docs/labels.md`): each stack's
//! stop order and each service's policy as its labels say — stopping nothing, running no
//! hook — and every label with a bad value.

use felhom_stacks::{RunningStack, ServicePolicy};
use std::time::Duration;

/// The running app stacks as `check` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyListing {
    /// One line per stack (`shop (stop-order 0)`), then one per service, indented
    /// (`  db: hook, pre-snapshot: sh …, hook-timeout 10m`).
    pub lines: Vec<String>,
    /// Each label with a bad value, naming the stack, the service and the full label; the
    /// service is treated as if that label were absent. `check` exits 1 when there is any.
    pub errors: Vec<String>,
}

impl PolicyListing {
    /// The listing of `stacks`; a hook timeout longer than `max_quiesce` is said to be cut
    /// to it.
    pub fn of(stacks: &[RunningStack], max_quiesce: Duration) -> Self {
        let mut listing = PolicyListing::default();
        for stack in stacks {
            listing.lines.push(format!(
                "{} (stop-order {})",
                stack.name,
                stack.policy.stop_order()
            ));
            for service in &stack.services {
                let policy = stack.policy.service(service);
                listing.lines.push(format!(
                    "  {service}: {policy}{}",
                    bounded(policy, max_quiesce)
                ));
            }
            listing
                .errors
                .extend(stack.policy.errors.iter().map(ToString::to_string));
        }
        listing
    }
}

/// `, at most max_quiesce (30m)` for a service with hooks whose timeout is longer.
fn bounded(policy: &ServicePolicy, max_quiesce: Duration) -> String {
    let hooks = policy.pre_snapshot.is_some() || policy.post_resume.is_some();
    if hooks && policy.hook_timeout > max_quiesce {
        format!(
            ", at most max_quiesce ({})",
            humantime::format_duration(max_quiesce)
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_stacks::{label, StackPolicy};

    fn stack(name: &str, labels: &[(&str, &[(&str, &str)])]) -> RunningStack {
        let mut policy = StackPolicy::default();
        for (service, l) in labels {
            policy.read_service(name, service, l.iter().copied());
        }
        RunningStack {
            name: name.into(),
            services: labels.iter().map(|(s, _)| (*s).to_owned()).collect(),
            containers: vec![],
            policy,
        }
    }

    #[test]
    fn each_stack_and_service_is_listed_with_its_policy_and_each_bad_label_named() {
        let stacks = [
            stack(
                "shop",
                &[
                    (
                        "db",
                        &[
                            (label::QUIESCE, "hook"),
                            (label::PRE_SNAPSHOT, "sh -c 'pg_dumpall > /d/x.sql'"),
                            (label::HOOK_TIMEOUT, "2h"),
                        ],
                    ),
                    ("frontend", &[(label::QUIESCE, "skip")]),
                    ("worker", &[(label::QUIESCE, "pause")]),
                ],
            ),
            stack("wiki", &[("app", &[(label::STOP_ORDER, "-10")])]),
        ];
        let listing = PolicyListing::of(&stacks, Duration::from_secs(1800));
        assert_eq!(
            listing.lines,
            [
                "shop (stop-order 0)",
                "  db: hook, pre-snapshot: sh …, hook-timeout 2h, at most max_quiesce (30m)",
                "  frontend: skip",
                "  worker: stop",
                "wiki (stop-order -10)",
                "  app: stop, stop-order -10",
            ]
        );
        assert_eq!(
            listing.errors,
            ["stack \"shop\", service \"worker\": label felhom.quiesce=\"pause\": expected stop, skip or hook"]
        );
        assert!(
            !listing.lines.iter().any(|l| l.contains("pg_dumpall")),
            "a hook is named by its program only"
        );
    }
}
