//! The start of a stack: each container as soon as the condition its dependents wait for is
//! met, watched on the engine's event stream until every one runs (and is healthy where it
//! was before the stop) and none died within `start_settle`. Vanished containers are handed
//! to the compose fallback, and the start resumes with what it made.

use std::collections::{BTreeSet, HashMap};

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use super::listing::{dependencies, Prepared};
use super::progress::{pending, settled, Live, Phase};
use super::records::StartReport;
use super::{container_error, engine_error, EngineStacks};
use crate::engine::{EngineError, Health, Inspected, State};
use crate::name::{check_service_name, check_stack_name};
use crate::order::Condition;
use crate::StacksError;

/// Log lines of a failed container carried in the error.
const LOG_TAIL: usize = 20;

/// One engine call of a start that has come back.
enum Step {
    /// The start call of container `.0`.
    Started(usize, Result<(), EngineError>),
    /// The inspect right after it.
    Seen(usize, Result<Inspected, EngineError>),
}

/// How a start through the engine ended without success.
enum Interrupted {
    /// Containers of these services are gone: the compose fallback brings them back.
    Vanished(Vec<String>),
    Failed(StacksError),
}

impl From<StacksError> for Interrupted {
    fn from(e: StacksError) -> Self {
        Self::Failed(e)
    }
}

impl EngineStacks {
    /// Starts the containers of `services` of `stack`, from what its stop recorded or, without
    /// a record (a start after a crash), from what the engine has now.
    pub(super) async fn start_stack(
        &self,
        stack: &str,
        services: &[String],
    ) -> Result<(), StacksError> {
        check_stack_name(stack)?;
        for service in services {
            check_service_name(stack, service)?;
        }
        let mut wanted = services.to_vec();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        self.wait_for_other_stops(stack).await;
        let deadline = Instant::now() + self.config.start_timeout;

        // Right after this instance stopped these services, what its stop saw is still true
        // unless a container was removed meanwhile, which its start then tells.
        let recorded = self.records.for_start(stack, &wanted);
        let health_before: HashMap<String, Option<Health>> = recorded
            .iter()
            .flatten()
            .map(|p| (p.container.service.clone(), p.health_before))
            .collect();
        let containers = match recorded {
            Some(containers) => containers,
            None => self.current(stack, &wanted, &health_before).await?,
        };
        let mut report = StartReport {
            not_waited_for_health: containers
                .iter()
                .filter(|p| p.container.has_healthcheck && !p.waits_for_health())
                .map(|p| p.container.service.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            recreated: Vec::new(),
        };
        if !report.not_waited_for_health.is_empty() {
            tracing::warn!(stack, services = ?report.not_waited_for_health, "health checks that did not pass before the stop: waiting for these only until they run");
        }
        tracing::info!(stack, services = ?wanted, "starting");
        let missing: Vec<String> = wanted
            .iter()
            .filter(|s| !containers.iter().any(|p| &p.container.service == *s))
            .cloned()
            .collect();
        let vanished = if missing.is_empty() {
            match self.start_in_order(stack, &containers, deadline).await {
                Ok(()) => {
                    self.records.started(stack, report);
                    return Ok(());
                }
                Err(Interrupted::Vanished(services)) => services,
                Err(Interrupted::Failed(e)) => return Err(e),
            }
        } else {
            missing
        };
        report.recreated = self
            .recreate(stack, &wanted, &vanished, &containers, deadline)
            .await?;
        let containers = self.current(stack, &wanted, &health_before).await?;
        match self.start_in_order(stack, &containers, deadline).await {
            Ok(()) => {
                self.records.started(stack, report);
                Ok(())
            }
            Err(Interrupted::Failed(e)) => Err(e),
            Err(Interrupted::Vanished(services)) => Err(StacksError::Command {
                stack: stack.to_owned(),
                command: "compose up".to_owned(),
                detail: format!("containers of {} vanished again", services.join(", ")),
            }),
        }
    }

    /// Starts `containers` in dependency order, honouring the conditions their dependents
    /// wait for, and waits until every one runs (and is healthy, where it waits for health),
    /// none having died within `start_settle` of its start, bounded by `deadline`.
    async fn start_in_order(
        &self,
        stack: &str,
        containers: &[Prepared],
        deadline: Instant,
    ) -> Result<(), Interrupted> {
        let deps = dependencies(containers);
        let n = containers.len();
        // A dependency some dependent waits on to complete: its exit is no failure.
        let mut one_shot = vec![false; n];
        for mine in &deps {
            for (dep, condition) in mine {
                if *condition == Condition::Completed {
                    one_shot[*dep] = true;
                }
            }
        }
        let index: HashMap<&str, usize> = containers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.container.id.as_str(), i))
            .collect();
        // Subscribed before the first start, so that no event of it is missed.
        let mut events = self
            .engine
            .events(stack)
            .map_err(|e| engine_error(stack, "events", e))?;
        let mut live: Vec<Live> = vec![Live::default(); n];
        let mut flights = FuturesUnordered::new();
        loop {
            for i in 0..n {
                if live[i].phase == Phase::Waiting
                    && deps[i]
                        .iter()
                        .all(|(j, c)| live[*j].satisfies(*c, &containers[*j]))
                {
                    live[i].phase = Phase::Starting;
                    let id = containers[i].container.id.as_str();
                    flights
                        .push(async move { Step::Started(i, self.engine.start(id).await) }.boxed());
                }
            }
            let now = Instant::now();
            if let Some(settled_at) = settled(&live, containers, self.config.start_settle, now) {
                if now >= settled_at {
                    return Ok(());
                }
            }
            if now >= deadline {
                return Err(StacksError::StartTimeout {
                    stack: stack.to_owned(),
                    command: "start".to_owned(),
                    waited: self.config.start_timeout,
                    pending: pending(&live, containers, &deps),
                }
                .into());
            }
            let wake = settled(&live, containers, self.config.start_settle, now)
                .map_or(deadline, |at| at.min(deadline))
                .max(now);
            tokio::select! {
                Some(step) = flights.next(), if !flights.is_empty() => {
                    let (i, seen) = match step {
                        Step::Started(i, Ok(())) => {
                            // What waits only for it to be started may start now; the inspect
                            // tells its run and health.
                            live[i].phase = Phase::Started;
                            let id = containers[i].container.id.as_str();
                            flights.push(
                                async move { Step::Seen(i, self.engine.inspect(id).await) }.boxed(),
                            );
                            continue;
                        }
                        Step::Started(i, Err(e)) => (i, Err(e)),
                        Step::Seen(i, seen) => (i, seen),
                    };
                    let c = &containers[i];
                    match seen {
                        Ok(now_seen) => {
                            let l = &mut live[i];
                            l.phase = Phase::Up;
                            l.since = Some(Instant::now());
                            l.run_started = Some(now_seen.started_at);
                            // A change seen on the stream while the start was under way is
                            // at least as new as the inspect; later ones are still to come.
                            l.health = l
                                .early_health
                                .take()
                                .filter(|(at, _)| *at >= now_seen.started_at)
                                .map(|(_, h)| h)
                                .or(now_seen.health);
                            let exited = now_seen.state == State::Exited;
                            if one_shot[i] && exited && now_seen.exit_code == 0 {
                                l.phase = Phase::Completed;
                            } else if now_seen.state == State::Running && l.death().is_none() {
                                l.running = true;
                            } else {
                                return Err(self.start_failed(stack, c).await.into());
                            }
                        }
                        Err(e) if e.is_not_found() => {
                            return Err(Interrupted::Vanished(vec![c.container.service.clone()]));
                        }
                        Err(e) => return Err(container_error(stack, &c.container, "start", e).into()),
                    }
                }
                event = events.next() => {
                    let event = match event {
                        Some(Ok(event)) => event,
                        Some(Err(e)) => return Err(engine_error(stack, "events", e).into()),
                        None => {
                            return Err(StacksError::EngineUnreachable {
                                detail: format!("stack {stack:?}: the engine ended its event stream ({})", self.engine.host()),
                            }
                            .into())
                        }
                    };
                    let Some(&i) = index.get(event.id.as_str()) else { continue };
                    let l = &mut live[i];
                    // Events of the run before this start (the engine may deliver the stop's
                    // `die`, or a late health probe, after the subscription) are not this run's.
                    if l.phase == Phase::Waiting || l.run_started.is_some_and(|run| event.time < run) {
                        continue;
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
                            if one_shot[i] && event.exit_code == Some(0) {
                                l.phase = Phase::Completed;
                                l.running = false;
                            } else {
                                return Err(self.start_failed(stack, &containers[i]).await.into());
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

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
