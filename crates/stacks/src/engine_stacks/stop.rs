//! The stop of a stack: every running container, each as soon as everything that depends on
//! it has stopped, with its own grace period. Kept apart from the start, which shares only the
//! listing and the records with it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;

use super::listing::{dependencies, Prepared};
use super::{container_error, EngineStacks};
use crate::engine::State;
use crate::name::check_stack_name;
use crate::order;
use crate::orphans;
use crate::StacksError;

/// What a stop call gets beyond the container's grace period: the engine kills the container
/// at the end of the grace, and its answer must come before this bound gives up on it.
const STOP_MARGIN: Duration = Duration::from_secs(30);

impl EngineStacks {
    /// Stops the running containers of `stack` and records them for the start; returns their
    /// services, sorted.
    pub(super) async fn stop_stack(&self, stack: &str) -> Result<Vec<String>, StacksError> {
        check_stack_name(stack)?;
        if self.is_protected(stack) {
            return Err(StacksError::Protected(stack.to_owned()));
        }
        self.files(stack)?;
        self.wait_for_other_stops(stack).await;
        let running: Vec<String> = self
            .containers(stack)
            .await?
            .into_iter()
            .filter(|l| l.running)
            .map(|l| l.id)
            .collect();
        if running.is_empty() {
            // What an earlier stop recorded stays for the start that follows.
            tracing::debug!(stack, "nothing runs; nothing to stop");
            return Ok(Vec::new());
        }
        let mut prepared = self.prepare(stack, &running, &HashMap::new()).await?;
        prepared.retain(|p| p.container.state == State::Running);
        for p in &mut prepared {
            p.health_before = p.container.health;
        }
        let services: Vec<String> = prepared
            .iter()
            .map(|p| p.container.service.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tracing::info!(stack, ?services, "stopping");
        let result = self.stop_in_order(stack, &prepared).await;
        self.records.stopped(stack, prepared);
        result.map(|()| services)
    }

    /// Waits until no other process runs a compose `stop` of `stack` (one left behind by an
    /// older controller, or an operator's), bounded by what such a stop may take.
    pub(super) async fn wait_for_other_stops(&self, stack: &str) {
        let bound = self
            .config
            .stop_timeout
            .saturating_mul(2)
            .saturating_add(STOP_MARGIN);
        let left = orphans::wait_for_stops(stack, bound).await;
        if !left.is_empty() {
            tracing::warn!(stack, still_running = ?left, "going ahead although another compose stop of the stack still runs");
        }
    }

    /// Stops `containers`, each once every container that depends on it is stopped; the
    /// independent ones at once.
    async fn stop_in_order(&self, stack: &str, containers: &[Prepared]) -> Result<(), StacksError> {
        let deps = dependencies(containers);
        let mut waiting_for: Vec<usize> = order::dependents(&deps).iter().map(Vec::len).collect();
        let mut launched = vec![false; containers.len()];
        let mut flights = FuturesUnordered::new();
        let mut first_error = None;
        loop {
            for (i, c) in containers.iter().enumerate() {
                if !launched[i] && waiting_for[i] == 0 {
                    launched[i] = true;
                    flights.push(async move { (i, self.stop_one(stack, c).await) });
                }
            }
            match flights.next().await {
                Some((i, result)) => {
                    if let Err(e) = result {
                        tracing::error!(stack, "{e}");
                        first_error.get_or_insert(e);
                    }
                    for (dep, _) in &deps[i] {
                        waiting_for[*dep] = waiting_for[*dep].saturating_sub(1);
                    }
                }
                None if launched.iter().all(|l| *l) => break,
                None => {
                    // A dependency cycle (compose refuses them; a hand-made link may not):
                    // what is left stops at once.
                    tracing::warn!(
                        stack,
                        "dependency cycle among the containers: stopping the rest at once"
                    );
                    waiting_for.iter_mut().for_each(|w| *w = 0);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn stop_one(&self, stack: &str, prepared: &Prepared) -> Result<(), StacksError> {
        let c = &prepared.container;
        // Its own grace where it declares one (the engine applies it, with its own signal);
        // `stop_timeout` only where it declares none.
        let (grace, own) = match c.stop_timeout {
            Some(secs) => (secs, true),
            None => (whole_seconds(self.config.stop_timeout), false),
        };
        let wait = Duration::from_secs(grace).saturating_add(STOP_MARGIN);
        tracing::debug!(stack, service = %c.service, container = %c.name, grace, own, "stopping");
        match self.engine.stop(&c.id, (!own).then_some(grace), wait).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(container_error(stack, c, "stop", e)),
        }
    }
}

/// The engine takes whole seconds; a fraction is rounded up so that an app never gets less
/// time to stop than configured.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
    }
}
