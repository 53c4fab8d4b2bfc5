//! The stranded stacks (SPEC §2 rule 6) as this process looks after them: the state
//! directory's list, shown in the overview until each runs, and each stack's slow retry
//! schedule (2 min doubling to 30 min, on [`Backoff`]). Stacks the list could not take (a
//! full disk) stay in their marker, which is retried on the same schedule (`stuck.rs`); they
//! are shown here all the same, whatever the file says, until they run or the list takes them.
//!
//! A retry never recreates containers: a stack whose containers were removed meanwhile (an
//! operator's `docker compose down`) is given up — marked so in the list, shown, never tried
//! again — until `felhom-controller forget` drops it.

use crate::backoff::Backoff;
use crate::controller::Shared;
use crate::cycle::container;
use crate::io::off_runtime;
use crate::observer::{Notice, NoticeKind};
use crate::overview::Shown;
use crate::resume::{first_line, given_up, start_call, CallError, Wanted};
use crate::{error_chain, CycleError};
use felhom_marker::{Stranded, StrandedStack, StrandedStore};
use felhom_stacks::Slots;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The stranded list and the retry schedule of each of its stacks.
pub(crate) struct StrandedList {
    store: Arc<dyn StrandedStore>,
    /// Each stack's next try, and the pause after it.
    retries: Mutex<HashMap<String, Retry>>,
    /// Stranded stacks the list could not take: kept in their marker, shown from here.
    unkept: Mutex<Vec<StrandedStack>>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    at: Instant,
    pause: Backoff,
}

impl std::fmt::Debug for StrandedList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrandedList")
            .field("retries", &*self.retries())
            .finish_non_exhaustive()
    }
}

impl StrandedList {
    pub(crate) fn new(store: Arc<dyn StrandedStore>) -> Self {
        StrandedList {
            store,
            retries: Mutex::new(HashMap::new()),
            unkept: Mutex::new(Vec::new()),
        }
    }

    fn unkept(&self) -> MutexGuard<'_, Vec<StrandedStack>> {
        self.unkept.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn retries(&self) -> MutexGuard<'_, HashMap<String, Retry>> {
        self.retries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `name` is to be tried now. A stack this process has not seen before is: it was
    /// stranded by another process, or before a restart (the daemon's start, `recover`).
    fn due(&self, name: &str, now: Instant) -> bool {
        let mut retries = self.retries();
        let retry = retries.entry(name.to_owned()).or_insert(Retry {
            at: now,
            pause: Backoff::stranded(),
        });
        retry.at <= now
    }

    /// A try of `name` failed: its next try comes after a pause that doubles each time.
    fn failed(&self, name: &str, now: Instant) -> Duration {
        let mut retries = self.retries();
        let retry = retries.entry(name.to_owned()).or_insert(Retry {
            at: now,
            pause: Backoff::stranded(),
        });
        let pause = retry.pause.delay();
        retry.at = now + pause;
        retry.pause.grow();
        pause
    }

    /// A cycle of this process stranded `name` after its own attempts: the first slow try
    /// comes a pause later.
    fn stranded_now(&self, name: &str, now: Instant) {
        let mut pause = Backoff::stranded();
        let at = now + pause.delay();
        pause.grow();
        let retry = Retry { at, pause };
        self.retries().insert(name.to_owned(), retry);
    }

    /// Adds the stacks a cycle stranded to the list (and the overview, even when the list
    /// cannot be written: they still need a person — and are shown until they run or a later
    /// write takes them). The error says why it was not written: the caller keeps them in the
    /// marker.
    pub(crate) async fn keep(
        &self,
        shown: &Shown,
        newly: Vec<StrandedStack>,
    ) -> Result<(), String> {
        for stack in &newly {
            self.stranded_now(&stack.name, Instant::now());
        }
        let store = self.store.clone();
        let kept = newly.clone();
        match off_runtime(move || store.strand(&kept)).await {
            Ok(list) => {
                self.unkept()
                    .retain(|u| newly.iter().all(|n| n.name != u.name));
                self.show(shown, list);
                Ok(())
            }
            Err(e) => {
                {
                    let mut unkept = self.unkept();
                    for s in &newly {
                        unkept.retain(|k| k.name != s.name);
                        unkept.push(s.clone());
                    }
                }
                shown.set(|o| {
                    for s in newly {
                        o.stranded_stacks.retain(|k| k.name != s.name);
                        o.stranded_stacks.push(s);
                    }
                });
                Err(error_chain(&e))
            }
        }
    }

    /// `name` runs again: it leaves the list, if it was on it.
    pub(crate) async fn runs(&self, shown: &Shown, name: &str) {
        if !shown.get().stranded_stacks.iter().any(|s| s.name == name) {
            return;
        }
        self.retries().remove(name);
        self.unkept().retain(|s| s.name != name);
        let (store, owned) = (self.store.clone(), name.to_owned());
        match off_runtime(move || store.unstrand(&owned)).await {
            Ok(list) => self.show(shown, list),
            Err(e) => {
                // It stays in the file: the next round finds it running and tries again.
                let what = format!(
                    "removing {name}, which runs again, from the stranded list: {}",
                    error_chain(&e)
                );
                crate::health::not_kept(shown, &what);
                shown.set(|o| o.stranded_stacks.retain(|s| s.name != name));
            }
        }
    }

    /// Tries the stranded stacks whose time has come (the caller holds the cycle lock);
    /// returns those still stranded.
    pub(crate) async fn retry_due(
        &self,
        shared: &Shared,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, CycleError> {
        let store = self.store.clone();
        let list = off_runtime(move || store.stranded())
            .await
            .map_err(CycleError::StrandedList)?;
        let stacks = list.stacks.clone();
        self.show(&shared.shown, list);
        let now = Instant::now();
        for stack in stacks {
            if cancel.is_cancelled() {
                break;
            }
            if !self.due(&stack.name, now) {
                continue;
            }
            // Given up: its containers were removed on purpose. It is never started by us
            // again; it leaves the list by `forget`, or once someone brought it back.
            if stack.given_up.is_some() {
                if !self.brought_back(shared, &stack).await {
                    break;
                }
                continue;
            }
            if !self.retry(shared, stack).await {
                // The engine is away: the others would fail the same way.
                break;
            }
        }
        Ok(shared.shown.get().stranded())
    }

    /// One try of a stranded stack. `false` when the engine did not answer.
    async fn retry(&self, shared: &Shared, mut stack: StrandedStack) -> bool {
        let since = stack.since.to_rfc3339();
        tracing::info!(stack = %stack.name, since = %since, "trying a stranded stack again");
        let wanted = if stack.containers.is_empty() {
            // A stranded list written before container ids.
            Wanted::Services(stack.services.clone())
        } else {
            Wanted::Containers {
                containers: stack.containers.iter().map(container).collect(),
                in_flight: false,
            }
        };
        let slots = Slots::new(shared.config.parallelism);
        // Never recreating: what was removed since the strand was removed by a person.
        match start_call(shared, &stack.name, &wanted, false, &slots).await {
            Ok(_) => {
                shared.engine.answers(&shared.shown);
                tracing::warn!(stack = %stack.name, "a stranded stack runs again");
                let message = format!(
                    "stranded stack {} runs again (stranded since {since})",
                    stack.name
                );
                self.back(shared, &stack, message).await;
                true
            }
            Err(CallError::EngineAway(why)) => {
                // Not "waiting for the engine": no stack waits in a marker. The next tick
                // tries again, and counts nothing.
                tracing::info!(stack = %stack.name, "the stranded stacks are tried again later: {why}");
                false
            }
            Err(CallError::Vanished(e)) => {
                shared.engine.answers(&shared.shown);
                let why = given_up(&stack.name);
                tracing::error!(stack = %stack.name, "a stranded stack is given up: {why} ({e})");
                self.retries().remove(&stack.name);
                stack.attempts += 1;
                stack.last_error = first_line(&e);
                stack.given_up = Some(why.clone());
                let name = stack.name.clone();
                let cycle_id = stack.cycle_id.clone();
                self.record_try(shared, stack).await;
                shared.shown.notice(&Notice {
                    event: NoticeKind::Stranded,
                    cycle_id: Some(cycle_id),
                    outcome: None,
                    stacks: vec![name.clone()],
                    stranded: shared.shown.get().stranded(),
                    message: format!("stranded stack {name} is no longer retried: {why}"),
                });
                true
            }
            Err(CallError::Failed(e)) => {
                shared.engine.answers(&shared.shown);
                let pause = self.failed(&stack.name, Instant::now());
                tracing::warn!(stack = %stack.name, "the stranded stack did not start ({e}); next try in {}s", pause.as_secs());
                stack.attempts += 1;
                stack.last_error = first_line(&e);
                self.record_try(shared, stack).await;
                true
            }
        }
    }

    /// Looks at a given-up stack on the stranded stacks' slow schedule, without starting
    /// anything: once each of its services runs again (an operator's `compose up`), it is no
    /// longer stranded. `false` when the engine did not answer.
    async fn brought_back(&self, shared: &Shared, stack: &StrandedStack) -> bool {
        let running = match shared.parts.stacks.running_containers(&stack.name).await {
            Ok(running) => running,
            Err(e) if e.is_engine_unreachable() => return false,
            Err(e) => {
                tracing::info!(stack = %stack.name, "a given-up stack could not be looked at: {}", error_chain(&e));
                self.failed(&stack.name, Instant::now());
                return true;
            }
        };
        shared.engine.answers(&shared.shown);
        let runs = |service: &String| running.iter().any(|c| &c.service == service);
        if running.is_empty() || !stack.services.iter().all(runs) {
            self.failed(&stack.name, Instant::now());
            return true;
        }
        tracing::warn!(stack = %stack.name, "a given-up stack runs again: someone brought it back");
        let message = format!(
            "stranded stack {} runs again, brought back by someone (given up since {})",
            stack.name,
            stack.since.to_rfc3339()
        );
        self.back(shared, stack, message).await;
        true
    }

    /// `stack` runs again: off the list, and a `recovered` notice saying `message`.
    async fn back(&self, shared: &Shared, stack: &StrandedStack, message: String) {
        self.runs(&shared.shown, &stack.name).await;
        shared.shown.notice(&Notice {
            event: NoticeKind::Recovered,
            cycle_id: Some(stack.cycle_id.clone()),
            outcome: None,
            stacks: vec![stack.name.clone()],
            stranded: shared.shown.get().stranded(),
            message,
        });
    }

    /// A failed try of `stack` into the list (its count, its error, whether it is given up).
    async fn record_try(&self, shared: &Shared, stack: StrandedStack) {
        let store = self.store.clone();
        match off_runtime(move || store.strand(&[stack])).await {
            Ok(list) => self.show(&shared.shown, list),
            // The list still holds the stack, with its former count and error.
            Err(e) => crate::health::not_kept(
                &shared.shown,
                &format!("keeping the stranded stacks: {}", error_chain(&e)),
            ),
        }
    }

    /// The list as the store returned it: into the overview, and its damage, if any, told.
    fn show(&self, shown: &Shown, list: Stranded) {
        if let Some(moved) = &list.moved_aside {
            let message =
                format!("the stranded list {moved}: stacks it named may be down and need a person");
            tracing::error!("{message}");
            shown.set(|o| o.marker_corrupt = Some(message.clone()));
            shown.notice(&Notice {
                event: NoticeKind::MarkerCorrupt,
                cycle_id: None,
                outcome: None,
                stacks: Vec::new(),
                stranded: list.stacks.iter().map(|s| s.name.clone()).collect(),
                message,
            });
        }
        let mut stacks = list.stacks;
        for unkept in self.unkept().iter() {
            if stacks.iter().all(|s| s.name != unkept.name) {
                stacks.push(unkept.clone());
            }
        }
        shown.set(|o| o.stranded_stacks = stacks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_marker::fake::FakeState;

    fn list() -> StrandedList {
        StrandedList::new(Arc::new(FakeState::default()))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_stack_first_seen_is_due_then_its_pause_doubles_up_to_half_an_hour() {
        let list = list();
        let now = Instant::now();
        assert!(
            list.due("beta", now),
            "seen for the first time: tried at once"
        );
        let pauses: Vec<u64> = (0..6)
            .map(|_| list.failed("beta", now).as_secs() / 60)
            .collect();
        assert_eq!(pauses, [2, 4, 8, 16, 30, 30]);
        assert!(!list.due("beta", now + 29 * MIN));
        assert!(list.due("beta", now + 30 * MIN));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stack_this_process_stranded_waits_two_minutes_then_four() {
        let list = list();
        let now = Instant::now();
        list.stranded_now("beta", now);
        assert!(!list.due("beta", now + MIN));
        assert!(list.due("beta", now + 2 * MIN));
        assert_eq!(list.failed("beta", now + 2 * MIN), 4 * MIN);
    }

    #[tokio::test]
    async fn kept_stacks_are_shown_and_leave_once_they_run() {
        let state = Arc::new(FakeState::default());
        let list = StrandedList::new(state.clone());
        let shown = Shown::new(Arc::new(()));
        let beta = StrandedStack {
            name: "beta".into(),
            services: vec!["app".into()],
            cycle_id: "c-1".into(),
            since: chrono::Utc::now(),
            attempts: 3,
            last_error: "exited".into(),
            given_up: None,
            containers: vec![],
        };
        list.keep(&shown, vec![beta]).await.expect("kept");
        assert_eq!(shown.get().stranded(), ["beta"]);
        assert_eq!(state.stranded_now().len(), 1);
        assert!(
            !list.due("beta", Instant::now()),
            "its first slow try is later"
        );
        list.runs(&shown, "alpha").await;
        assert_eq!(state.calls(), ["strand beta"], "alpha was not stranded");
        list.runs(&shown, "beta").await;
        assert!(shown.get().stranded().is_empty());
        assert!(state.stranded_now().is_empty());
        assert!(
            list.due("beta", Instant::now()),
            "forgotten: a new strand starts over"
        );
    }
}
