//! What a stop of this instance records for the start that follows, and what each start
//! noticed. Kept apart from the engine calls because it is state across calls: a stop's record
//! lives until the container's next successful start, so that a retried start still knows the
//! health each container had before the stop, and needs no inspect on the way up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use super::listing::Prepared;
use crate::StartReport;

/// The records of one [`EngineStacks`](super::EngineStacks), per stack, per container id.
#[derive(Debug, Default)]
pub(super) struct Records {
    /// What each stop of this instance was about to stop, until the container's next
    /// successful start: the start then needs no inspect on the way up, where every call is
    /// downtime, and knows each container's health before the stop. Written before the first
    /// stop call, so that a stop abandoned half-way still left it.
    stopped: Mutex<HashMap<String, BTreeMap<String, Prepared>>>,
    /// What the last start of each stack noticed (see [`Records::last_start`]).
    reports: Mutex<HashMap<String, StartReport>>,
}

impl Records {
    /// A stop of `stack` is about to stop `prepared`. A container recorded by an earlier stop
    /// (one that did not end well is repeated, or someone started it again meanwhile) keeps
    /// its health from before the cycle.
    pub(super) fn stopping(&self, stack: &str, prepared: &[Prepared]) {
        let mut stopped = lock(&self.stopped);
        let record = stopped.entry(stack.to_owned()).or_default();
        for p in prepared {
            record
                .entry(p.container.id.clone())
                .or_insert_with(|| p.clone());
        }
    }

    /// What the stops recorded of the containers `ids` of `stack` (those it recorded; the
    /// others are not in the answer). Kept until a start succeeds: a retry then still knows
    /// the health before the stop.
    pub(super) fn recorded(&self, stack: &str, ids: &[String]) -> Vec<Prepared> {
        lock(&self.stopped)
            .get(stack)
            .map(|record| {
                ids.iter()
                    .filter_map(|id| record.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A start of `ids` of `stack` succeeded: what the stops recorded of them is spent.
    pub(super) fn started(&self, stack: &str, ids: &[String], report: StartReport) {
        let mut stopped = lock(&self.stopped);
        if let Some(record) = stopped.get_mut(stack) {
            record.retain(|id, _| !ids.contains(id));
            if record.is_empty() {
                stopped.remove(stack);
            }
        }
        drop(stopped);
        lock(&self.reports).insert(stack.to_owned(), report);
    }

    /// What the last successful start of `stack` noticed.
    pub(super) fn last_start(&self, stack: &str) -> Option<StartReport> {
        lock(&self.reports).get(stack).cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
