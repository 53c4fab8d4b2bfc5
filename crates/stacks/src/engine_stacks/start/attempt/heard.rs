//! What an attempt hears from the engine — its own calls coming back, the project's events, a
//! cut event stream — and what each does to where the containers are on their way up. A
//! death of a container's current run, or one that vanished, ends the attempt.

use std::time::Duration;

use futures::FutureExt;
use tokio::time::Instant;

use super::{Attempt, Events, Step};
use crate::engine::{EngineError, Event, Health, Inspected, State};
use crate::engine_stacks::listing::Prepared;
use crate::engine_stacks::progress::Phase;
use crate::engine_stacks::start::Interrupted;
use crate::engine_stacks::{container_error, EngineStacks};
use crate::StacksError;

/// Log lines of a failed container carried in the error.
const LOG_TAIL: usize = 20;
/// A pause before an event stream that was cut is opened again, so that an engine that keeps
/// cutting it is not asked in a busy loop.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

impl<'a> Attempt<'a> {
    /// One of its engine calls came back.
    pub(super) async fn on_step(&mut self, step: Step) -> Result<(), Interrupted> {
        match step {
            Step::Batch(results) => self.on_started(results),
            Step::Seen(i, seen) => self.on_seen(i, self.found(i, seen)?).await,
            Step::Checked(i, seen) => self.on_checked(i, self.found(i, seen)?).await,
        }
    }

    fn on_started(
        &mut self,
        results: Vec<(usize, Result<(), EngineError>)>,
    ) -> Result<(), Interrupted> {
        for (i, result) in results {
            let c = &self.containers[i].container;
            match result {
                Ok(()) => {
                    // What waits only for it to be started may start now; the inspect tells
                    // its run and health.
                    self.live[i].phase = Phase::Started;
                    self.flights.push(self.seen(i));
                }
                Err(e) if e.is_not_found() => {
                    return Err(Interrupted::Vanished(vec![c.to_ref()]));
                }
                Err(e) => return Err(container_error(self.stack, c, "start", e).into()),
            }
        }
        Ok(())
    }

    /// The inspect right after its start: how its run began.
    async fn on_seen(&mut self, i: usize, seen: Inspected) -> Result<(), Interrupted> {
        let l = &mut self.live[i];
        l.phase = Phase::Up;
        l.since = Some(Instant::now());
        l.run_started = Some(seen.started_at);
        // A change seen on the stream while the start was under way is at least as new as the
        // inspect; later ones are still to come.
        l.health = l
            .early_health
            .take()
            .filter(|(at, _)| *at >= seen.started_at)
            .map(|(_, h)| h)
            .or(seen.health);
        if self.one_shot[i] && seen.state == State::Exited && seen.exit_code == 0 {
            l.phase = Phase::Completed;
        } else if seen.state == State::Running && l.death().is_none() {
            l.running = true;
        } else {
            return Err(self.failed(i).await.into());
        }
        Ok(())
    }

    /// A look at a container on its way: its stop in flight ended, or its run goes on (or
    /// ended).
    async fn on_checked(&mut self, i: usize, seen: Inspected) -> Result<(), Interrupted> {
        let l = &mut self.live[i];
        let same_run = l.run_started == Some(seen.started_at);
        match l.phase {
            Phase::Stopping { .. } if !seen.is_up() => self.stop_ended(i),
            Phase::Stopping { .. } if !same_run => {
                // Its stop ended and something started it again meanwhile.
                l.phase = Phase::Started;
                let c = &self.containers[i].container;
                self.noticed.already_running.push(c.to_ref());
                self.flights
                    .push(async move { Step::Seen(i, Ok(seen)) }.boxed());
            }
            // An answer from before this run (asked while it was still stopping, answered
            // late) says nothing of this run.
            Phase::Up if l.run_started.is_some_and(|run| seen.started_at < run) => {}
            Phase::Up if l.running => {
                if seen.state != State::Running || !same_run {
                    let completed =
                        self.one_shot[i] && seen.state == State::Exited && seen.exit_code == 0;
                    if completed && same_run {
                        l.phase = Phase::Completed;
                        l.running = false;
                    } else {
                        return Err(self.failed(i).await.into());
                    }
                } else if seen.health.is_some() {
                    l.health = seen.health;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An event of the project.
    pub(super) async fn on_event(&mut self, event: Event) -> Result<(), Interrupted> {
        self.resume_from = self.resume_from.max(event.time);
        let Some(&i) = self.index.get(event.id.as_str()) else {
            return Ok(());
        };
        let l = &mut self.live[i];
        // Events of the run before this start (the engine may deliver the stop's `die`, or a
        // late health probe, after the subscription) are not this run's.
        if l.phase == Phase::Waiting || l.run_started.is_some_and(|run| event.time < run) {
            return Ok(());
        }
        if let Phase::Stopping { .. } = l.phase {
            if event.action == "die" {
                let c = &self.containers[i].container;
                tracing::info!(stack = self.stack, container = %c.name, "its stop in flight ended");
                self.stop_ended(i);
            }
            return Ok(());
        }
        if let Some(health) = Health::from_action(&event.action) {
            if matches!(l.phase, Phase::Starting | Phase::Started) {
                l.early_health = Some((event.time, health));
            } else {
                l.health = Some(health);
            }
        } else if event.action == "die" {
            l.died = Some((event.time, event.exit_code.unwrap_or(-1)));
            if l.phase == Phase::Up {
                if self.one_shot[i] && event.exit_code == Some(0) {
                    l.phase = Phase::Completed;
                    l.running = false;
                } else {
                    return Err(self.failed(i).await.into());
                }
            }
        }
        Ok(())
    }

    /// The stop in flight of container `i` has ended: it waits for its start like the others,
    /// and the start gets its whole time from now.
    fn stop_ended(&mut self, i: usize) {
        self.live[i].phase = Phase::Waiting;
        let c = &self.containers[i].container;
        self.noticed.waited_for_stop.push(c.to_ref());
        self.deadline = self
            .deadline
            .max(Instant::now() + self.stacks.config.start_timeout);
    }

    /// The event stream was cut (an error, or its end): the engine is away if it answers
    /// nothing; else the stream is resumed from the last event, and every container on its
    /// way is looked at again.
    pub(super) async fn resubscribe(
        &mut self,
        cut: Option<Result<Event, EngineError>>,
    ) -> Result<Events, Interrupted> {
        let stack = self.stack;
        let engine = &self.stacks.engine;
        let why = match cut {
            Some(Err(e)) => e.to_string(),
            _ => "the engine ended its event stream".to_owned(),
        };
        if !engine.answers().await {
            return Err(StacksError::EngineUnreachable {
                detail: format!(
                    "stack {stack:?}: events: {why} ({}), and the engine answers nothing",
                    engine.host()
                ),
            }
            .into());
        }
        tracing::warn!(stack, "the engine's event stream was cut ({why}) while the engine answers: resuming it from the last event, and looking at every container again");
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
        let events = self.subscribe(Some(self.resume_from))?;
        for i in 0..self.live.len() {
            if matches!(self.live[i].phase, Phase::Stopping { .. } | Phase::Up) {
                self.flights.push(self.check(i));
            }
        }
        Ok(events)
    }

    /// Container `i` died: a failed start. The future holds no reference to the attempt,
    /// whose engine calls under way are not `Sync`. under way are not `Sync`.
    fn failed(&self, i: usize) -> impl std::future::Future<Output = StacksError> + Send + 'a {
        let (stacks, stack, containers) = (self.stacks, self.stack, self.containers);
        stacks.start_failed(stack, &containers[i])
    }

    /// An inspect's answer, or how it ends the start.
    fn found(
        &self,
        i: usize,
        seen: Result<Inspected, EngineError>,
    ) -> Result<Inspected, Interrupted> {
        let c = &self.containers[i].container;
        match seen {
            Ok(seen) => Ok(seen),
            Err(e) if e.is_not_found() => Err(Interrupted::Vanished(vec![c.to_ref()])),
            Err(e) => Err(container_error(self.stack, c, "inspect", e).into()),
        }
    }
}

impl EngineStacks {
    /// A container of the start died: a failed start, with its status and the tail of its
    /// log.
    async fn start_failed(&self, stack: &str, prepared: &Prepared) -> StacksError {
        let c = &prepared.container;
        let status = match self.engine.inspect(&c.id).await {
            Ok(now) => now.status(),
            Err(e) => format!("cannot inspect it: {e}"),
        };
        let logs = match self.engine.logs_tail(&c.id, LOG_TAIL).await {
            Ok(logs) => logs,
            Err(e) => format!("(cannot read them: {e})"),
        };
        StacksError::StartFailed {
            stack: stack.to_owned(),
            command: format!("start of container {}", c.name),
            service: c.service.clone(),
            status,
            logs,
        }
    }
}
