//! What a stop of this instance records for the start that follows, and what each start
//! noticed. Kept apart from the engine calls because it is state across calls: a stop's record
//! lives until the stack's next successful start, so that a retried start still knows the
//! health each container had before the stop, and needs no listing nor inspect on the way up.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use super::listing::Prepared;

/// What the last successful start of a stack noticed without failing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Services with a health check that did not pass before the stop (unhealthy, or still
    /// starting): they were waited for only until they ran, not until healthy.
    pub not_waited_for_health: Vec<String>,
    /// Services whose containers had vanished while the stack was down (or that joined the
    /// network namespace of one that had), brought back with compose `up`.
    pub recreated: Vec<String>,
}

/// The records of one [`EngineStacks`](super::EngineStacks), per stack.
#[derive(Debug, Default)]
pub(super) struct Records {
    /// What each stop of this instance stopped, until the stack's next successful start:
    /// the start then needs no listing nor inspect on the way up, where every call is
    /// downtime, and knows each container's health before the stop.
    stopped: Mutex<HashMap<String, Vec<Prepared>>>,
    /// What the last start of each stack noticed (see [`Records::last_start`]).
    reports: Mutex<HashMap<String, StartReport>>,
}

impl Records {
    /// A stop of `stack` stopped `prepared`. A stop again before the start (one that did not
    /// end well is repeated) adds to what the first one recorded: their health before the
    /// cycle is still known.
    pub(super) fn stopped(&self, stack: &str, prepared: Vec<Prepared>) {
        let mut stopped = lock(&self.stopped);
        let mut record = prepared;
        for earlier in stopped.remove(stack).into_iter().flatten() {
            if !record
                .iter()
                .any(|p| p.container.id == earlier.container.id)
            {
                record.push(earlier);
            }
        }
        stopped.insert(stack.to_owned(), record);
    }

    /// What the stop recorded of exactly the services `wanted` (sorted, each once); `None`
    /// when it did not record them all. Kept until a start succeeds: a retry then still
    /// knows the health before the stop.
    pub(super) fn for_start(&self, stack: &str, wanted: &[String]) -> Option<Vec<Prepared>> {
        lock(&self.stopped).get(stack).and_then(|r| {
            let mine: Vec<Prepared> = r
                .iter()
                .filter(|p| wanted.contains(&p.container.service))
                .cloned()
                .collect();
            (services_of(&mine) == wanted).then_some(mine)
        })
    }

    /// A start of `stack` succeeded: what its stop recorded is spent.
    pub(super) fn started(&self, stack: &str, report: StartReport) {
        lock(&self.stopped).remove(stack);
        lock(&self.reports).insert(stack.to_owned(), report);
    }

    /// What the last successful start of `stack` noticed.
    pub(super) fn last_start(&self, stack: &str) -> Option<StartReport> {
        lock(&self.reports).get(stack).cloned()
    }
}

fn services_of(containers: &[Prepared]) -> Vec<String> {
    containers
        .iter()
        .map(|p| p.container.service.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
