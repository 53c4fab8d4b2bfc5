//! What the cycle tells the steps of what it knows: the stacks to look at again before
//! `POST /backup` ([`Recheck`]), and how each stack of the marker is brought back and in
//! which order ([`Cycle::plan`], [`START_ORDER`]). Read-only: a plan changes nothing; the
//! steps report what they did as `Progress`.

use super::{container, Cycle};
use crate::capture::Evidence;
use crate::resume::{StackPlan, Wanted};
use chrono::{DateTime, Utc};
use felhom_stacks::ContainerRef;
use std::collections::BTreeSet;

/// Which stacks' starts are launched first. Every start is launched at once, so the order is
/// the order in which they queue for the slots: it decides who waits when there are more
/// stacks than slots. No stack depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum StartOrder {
    /// The stack whose stop began first has been down longest: it is started first. Every
    /// stack's downtime is then about the same, and the longest is the least it can be.
    DownLongestFirst,
    /// The stack stopped last is started first (as a stack's own containers are: the last
    /// stopped, its dependencies, start first).
    StoppedLastFirst,
}

/// The order of the starts: measured both ways, see docs/decisions.md ("Start order").
pub(crate) const START_ORDER: StartOrder = StartOrder::DownLongestFirst;

/// The stacks to look at again before `POST /backup` ([`Cycle::to_recheck`]).
#[derive(Debug, Clone)]
pub(crate) struct Recheck {
    pub(crate) stack: String,
    /// The containers its stop stopped.
    pub(crate) containers: Vec<ContainerRef>,
    /// Since when they are down.
    pub(crate) since: DateTime<Utc>,
    /// Its services kept running: their containers are not the stop's.
    pub(crate) keep: BTreeSet<String>,
}

impl Cycle {
    /// The stacks to look at again before `POST /backup`: those whose stop ended, with the
    /// containers it stopped, since when they are down, and the services kept running (whose
    /// containers are not the stop's).
    pub(crate) fn to_recheck(&self) -> Vec<Recheck> {
        self.marked()
            .into_iter()
            .filter_map(|s| {
                let evidence = self.evidence.get(&s.name)?;
                let since = evidence.down_since().filter(|_| evidence.stop_ended())?;
                let containers = s.containers.iter().map(container).collect();
                Some(Recheck {
                    keep: self.keep(&s.name),
                    stack: s.name,
                    containers,
                    since,
                })
            })
            .collect()
    }

    /// How the stacks of the marker are brought back, in the order their starts are launched
    /// (see [`START_ORDER`]).
    ///
    /// - A stack whose stop never began is left alone: nothing of ours stopped it.
    /// - A stack whose every stop call answered is started as its stop left it; one whose
    ///   stop was cut short (the bound, a cancellation, a panic, a crash) or failed may still
    ///   be shutting down: its start waits for that, never signalling it again.
    /// - A recovered stack whose marker names no container (written before container ids)
    ///   is started by its services.
    /// - Once the agent reported the snapshot, each stopped stack is checked first.
    pub(crate) fn plan(&self) -> Vec<StackPlan> {
        let mut plans: Vec<StackPlan> = self
            .marked()
            .into_iter()
            .map(|stack| {
                let evidence = self.evidence.get(&stack.name);
                let containers: Vec<ContainerRef> =
                    stack.containers.iter().map(container).collect();
                // A stack with nothing of its own to stop (its services kept running, or
                // started again already: only its hooks are left) names no service.
                let by_services = stack.containers.is_empty() && !stack.services.is_empty();
                let start = if self.recovering && by_services {
                    // A marker written before container ids (or whose ids could not be
                    // salvaged): it does not say whether the stop began, nor what it stopped.
                    Some(Wanted::Services(stack.services.clone()))
                } else if !stack.stop_began {
                    None
                } else {
                    let ended = !self.recovering && evidence.is_some_and(Evidence::stop_ended);
                    Some(Wanted::Containers {
                        containers: containers.clone(),
                        in_flight: !ended,
                    })
                };
                let check = evidence
                    .and_then(Evidence::down_since)
                    .filter(|_| self.backup.captured && !self.recovering)
                    .map(|since| (containers, since));
                let post_resume = self.post_resume_plan(&stack, start.is_some());
                StackPlan {
                    stack,
                    start,
                    check,
                    post_resume,
                }
            })
            .collect();
        // When each stack's stop began; one never stopped has nothing to start: last.
        let began = |plan: &StackPlan| {
            self.record
                .stacks
                .iter()
                .find(|r| r.name == plan.stack.name)
                .and_then(|r| r.stop_started_at)
        };
        // Stable: stacks whose stops began at the same moment keep the marker's order.
        plans.sort_by(|a, b| match (began(a), began(b)) {
            (Some(a), Some(b)) => match START_ORDER {
                StartOrder::DownLongestFirst => a.cmp(&b),
                StartOrder::StoppedLastFirst => b.cmp(&a),
            },
            (a, b) => b.is_some().cmp(&a.is_some()),
        });
        plans
    }
}
