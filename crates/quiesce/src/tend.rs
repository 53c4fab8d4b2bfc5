//! What the daemon tends to between cycles, on every tick of its loop (SPEC §2 rules 6 and 9):
//! a marker that no live process holds, and the stranded stacks, tried again with a slow
//! backoff until they run.

use crate::engine::Absence;
use crate::observer::{Notice, NoticeKind};
use crate::up::CallError;
use crate::{Controller, CycleError};
use felhom_marker::{MovedAside, Stranded, StrandedStack};
use std::collections::HashMap;
use std::sync::MutexGuard;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The first pause before a stranded stack is tried again; it doubles after each failed try.
const STRANDED_FIRST: Duration = Duration::from_secs(2 * 60);
/// The longest pause between two tries of a stranded stack.
const STRANDED_CAP: Duration = Duration::from_secs(30 * 60);

/// This process's memory of what it waits for and tries again.
#[derive(Debug, Default)]
pub(crate) struct Tending {
    /// The engine's absence under way, if any.
    pub(crate) engine: Option<Absence>,
    /// Each stranded stack's next try, and the pause that led to it.
    retries: HashMap<String, (Instant, Duration)>,
    /// The cycle id of a marker that could not be removed although its stacks ran: it is not
    /// recovered again (that would restart every stack of it at every tick).
    stuck: Option<String>,
    /// The last problem a tick logged: a lasting one is logged once, not every tick.
    last_problem: Option<String>,
}

impl Controller {
    pub(crate) fn tending(&self) -> MutexGuard<'_, Tending> {
        self.tending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One tick of the daemon's housekeeping: recovers a marker that no live process holds,
    /// and tries the stranded stacks whose time has come. Quiet while another process holds
    /// the lock (it is alive: its marker is its own); a lasting problem is logged once.
    pub(crate) async fn tend(&self, cancel: &CancellationToken) {
        let marker = self.recover(cancel).await;
        if let Ok(Some(record)) = &marker {
            tracing::warn!(cycle = %record.cycle_id, stranded = ?record.stranded, "recovered the marker of a process that died");
        }
        let stranded = self.retry_stranded_due(false, cancel).await;
        let problem = match (marker, stranded) {
            (Err(e), _) | (_, Err(e)) if !matches!(e, CycleError::Busy(_)) => Some(e.to_string()),
            _ => None,
        };
        let mut tending = self.tending();
        if problem != tending.last_problem {
            match &problem {
                Some(p) => tracing::error!("{p}"),
                None if tending.last_problem.is_some() => {
                    tracing::info!("the state directory is usable again")
                }
                None => {}
            }
            tending.last_problem = problem;
        }
    }

    /// Whether the marker of `cycle_id` is one that could not be removed (see [`Tending`]).
    pub(crate) fn is_stuck(&self, cycle_id: &str) -> bool {
        self.tending().stuck.as_deref() == Some(cycle_id)
    }

    /// The marker of `cycle_id` could not be removed although its stacks ran.
    pub(crate) fn marker_stuck(&self, cycle_id: &str, message: String) {
        self.tending().stuck = Some(cycle_id.to_owned());
        self.set_live(|l| l.marker_stuck = Some(message));
    }

    /// Tries once more to start every stranded stack (`felhom-controller recover`, the
    /// daemon's start); returns those still stranded. `Err(CycleError::Busy)` while another
    /// process holds the lock.
    pub async fn retry_stranded(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, CycleError> {
        self.retry_stranded_due(true, cancel).await
    }

    /// Tries the stranded stacks again: all of them, or only those whose pause (2 min
    /// doubling to 30 min from when this process first saw them) is over.
    async fn retry_stranded_due(
        &self,
        all: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, CycleError> {
        let _guard = self.parts.lock.acquire().map_err(CycleError::Busy)?;
        let list = self.parts.stranded.stranded()?;
        let stacks = list.stacks.clone();
        self.show_stranded(list);
        let now = Instant::now();
        for stack in stacks {
            if cancel.is_cancelled() {
                break;
            }
            let due = {
                let mut tending = self.tending();
                let (at, _) = *tending
                    .retries
                    .entry(stack.name.clone())
                    .or_insert((now + STRANDED_FIRST, STRANDED_FIRST));
                all || at <= now
            };
            if due && !self.retry_one(stack).await {
                // The engine is away: the others would fail the same way.
                break;
            }
        }
        Ok(self.live().stranded())
    }

    /// One try of a stranded stack. `false` when the engine did not answer.
    async fn retry_one(&self, mut stack: StrandedStack) -> bool {
        tracing::info!(stack = %stack.name, since = %stack.since.to_rfc3339(), "trying a stranded stack again");
        match self.start_call(&stack.name, &stack.services).await {
            Ok(()) => {
                self.engine_answers();
                tracing::warn!(stack = %stack.name, "a stranded stack runs again");
                self.no_longer_stranded(&stack.name);
                self.parts.observer.notice(&Notice {
                    event: NoticeKind::Recovered,
                    cycle_id: Some(stack.cycle_id.clone()),
                    outcome: None,
                    stacks: vec![stack.name.clone()],
                    stranded: self.live().stranded(),
                    message: format!(
                        "stranded stack {} runs again (stranded since {})",
                        stack.name,
                        stack.since.to_rfc3339()
                    ),
                });
                true
            }
            Err(CallError::EngineAway(why)) => {
                // Not "waiting for the engine": no stack waits in a marker. The next tick
                // tries again, and counts nothing.
                tracing::info!(stack = %stack.name, "the stranded stacks are tried again later: {why}");
                false
            }
            Err(CallError::Failed(e)) => {
                self.engine_answers();
                let pause = {
                    let mut tending = self.tending();
                    let entry = tending
                        .retries
                        .entry(stack.name.clone())
                        .or_insert((Instant::now(), STRANDED_FIRST));
                    let pause = if entry.0 <= Instant::now() {
                        (entry.1 * 2).min(STRANDED_CAP)
                    } else {
                        entry.1
                    };
                    *entry = (Instant::now() + pause, pause);
                    pause
                };
                tracing::warn!(stack = %stack.name, "the stranded stack did not start ({e}); next try in {}s", pause.as_secs());
                stack.attempts += 1;
                stack.last_error = e.lines().next().unwrap_or_default().to_owned();
                match self.parts.stranded.strand(&[stack]) {
                    Ok(list) => self.show_stranded(list),
                    Err(e) => tracing::error!("keeping the stranded stacks: {e}"),
                }
                true
            }
        }
    }

    /// `name` runs again: it leaves the stranded list, if it was on it.
    pub(crate) fn no_longer_stranded(&self, name: &str) {
        if !self.live().stranded_stacks.iter().any(|s| s.name == name) {
            return;
        }
        self.tending().retries.remove(name);
        match self.parts.stranded.unstrand(name) {
            Ok(list) => self.show_stranded(list),
            Err(e) => {
                tracing::error!(stack = %name, "removing it from the stranded list: {e}");
                self.set_live(|l| l.stranded_stacks.retain(|s| s.name != name));
            }
        }
    }

    /// The stranded list as the store returned it: into the live status, and its damage, if
    /// any, reported.
    pub(crate) fn show_stranded(&self, list: Stranded) {
        if let Some(moved) = &list.moved_aside {
            self.stranded_list_corrupt(moved);
        }
        self.set_live(|l| l.stranded_stacks = list.stacks);
    }

    /// The stranded list was found unusable and moved aside: the stacks it lost need a person.
    fn stranded_list_corrupt(&self, moved: &MovedAside) {
        let message =
            format!("the stranded list {moved}: stacks it named may be down and need a person");
        tracing::error!("{message}");
        self.set_live(|l| l.marker_corrupt = Some(message.clone()));
        self.parts.observer.notice(&Notice {
            event: NoticeKind::MarkerCorrupt,
            cycle_id: None,
            outcome: None,
            stacks: Vec::new(),
            stranded: self.live().stranded(),
            message,
        });
    }
}
