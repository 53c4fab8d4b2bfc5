//! Where each container of a start is on its way up, and from that, when the start is over
//! and what it still waits for. Pure state, apart from the engine calls of the start, so that
//! it is tested without an engine.
//!
//! A start is over when every container is ready (running, and healthy where it waits for
//! health; or a one-shot a dependent waits for, exited 0) and `settle` has passed since each
//! one's start: a container that dies within `settle` of its start is a failed start, with or
//! without a health check (a passing check does not end the watch early).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::listing::Prepared;
use crate::engine::Health;
use crate::order::Condition;

/// Where a container is on its way up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// Its dependencies are not ready yet.
    #[default]
    Waiting,
    /// It still runs, and a stop of it may be in flight: waited for until it exits (never
    /// signalled again), at most until `until` (`None`: its grace is unbounded); then it
    /// counts as started.
    Stopping { until: Option<Instant> },
    /// Its start call is under way.
    Starting,
    /// The engine started it; what it is now is being asked.
    Started,
    /// The engine started it, and what it was right after is known.
    Up,
    /// A one-shot that a dependent waits for, exited 0.
    Completed,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Live {
    pub(super) phase: Phase,
    pub(super) running: bool,
    pub(super) health: Option<Health>,
    /// When its current run began (the engine's `StartedAt`, in ns since the epoch), once
    /// the start is done.
    pub(super) run_started: Option<i64>,
    /// The last `die` seen since its start was asked for: when (ns) and its exit code.
    pub(super) died: Option<(i64, i64)>,
    /// The last health change seen while its start was under way: when (ns) and what.
    pub(super) early_health: Option<(i64, Health)>,
    /// When it was seen up.
    pub(super) since: Option<Instant>,
}

impl Live {
    /// The exit code of a death of the current run; `None` while it lives (or its run is
    /// not known yet).
    pub(super) fn death(&self) -> Option<i64> {
        let run = self.run_started?;
        self.died.filter(|(at, _)| *at >= run).map(|(_, code)| code)
    }

    pub(super) fn ready(&self, prepared: &Prepared) -> bool {
        match self.phase {
            Phase::Completed => true,
            Phase::Up => {
                self.running
                    && (!prepared.waits_for_health() || self.health == Some(Health::Healthy))
            }
            Phase::Waiting | Phase::Stopping { .. } | Phase::Starting | Phase::Started => false,
        }
    }

    /// Whether a dependent waiting on `condition` of this container may start.
    pub(super) fn satisfies(&self, condition: Condition, prepared: &Prepared) -> bool {
        match condition {
            Condition::Completed => self.phase == Phase::Completed,
            Condition::Healthy => self.ready(prepared),
            Condition::Started => {
                // As compose: started is enough, whatever it does next (a death is a failed
                // start all the same).
                matches!(self.phase, Phase::Completed | Phase::Started)
                    || (self.phase == Phase::Up && self.running)
            }
        }
    }
}

/// When the start is over: every container ready, and each one started seen up for `settle`
/// (an app that dies within it is a failed start, health check or not). `None` while some
/// container is not ready.
pub(super) fn settled(
    live: &[Live],
    containers: &[Prepared],
    settle: Duration,
    now: Instant,
) -> Option<Instant> {
    let mut at: Option<Instant> = None;
    for (l, p) in live.iter().zip(containers) {
        if !l.ready(p) {
            return None;
        }
        if l.phase == Phase::Up {
            at = at.max(l.since.map(|since| since + settle));
        }
    }
    Some(at.unwrap_or(now))
}

/// The services not ready, each with why, e.g. `db (unhealthy)`.
pub(super) fn pending(
    live: &[Live],
    containers: &[Prepared],
    deps: &[Vec<(usize, Condition)>],
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for (i, (l, p)) in live.iter().zip(containers).enumerate() {
        if l.ready(p) {
            continue;
        }
        let why = match l.phase {
            Phase::Waiting => {
                let on: BTreeSet<&str> = deps[i]
                    .iter()
                    .map(|(j, _)| containers[*j].container.service.as_str())
                    .collect();
                format!(
                    "waiting for {}",
                    on.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
            Phase::Stopping { .. } => "its stop is still in flight".to_owned(),
            Phase::Starting | Phase::Started => "starting".to_owned(),
            _ if !l.running => "not running".to_owned(),
            _ => l.health.unwrap_or(Health::Starting).as_str().to_owned(),
        };
        out.insert(format!("{} ({why})", p.container.service));
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Inspected;
    use crate::order::ServiceDeps;

    fn prepared(service: &str, has_healthcheck: bool, before: Option<Health>) -> Prepared {
        Prepared {
            container: Inspected {
                has_healthcheck,
                network_mode: "app_default".to_owned(),
                ..Inspected::sample(service)
            },
            deps: ServiceDeps::new(),
            health_before: before,
        }
    }

    fn up(health: Option<Health>, since: Instant) -> Live {
        Live {
            phase: Phase::Up,
            running: true,
            health,
            run_started: Some(1_000),
            died: None,
            early_health: None,
            since: Some(since),
        }
    }

    #[test]
    fn health_is_waited_for_only_where_it_passed_before_the_stop() {
        let now = Instant::now();
        let was_healthy = prepared("db", true, Some(Health::Healthy));
        let was_unhealthy = prepared("cache", true, Some(Health::Unhealthy));
        let was_starting = prepared("queue", true, Some(Health::Starting));
        let unknown = prepared("search", true, None);
        let unchecked = prepared("web", false, None);
        assert!(was_healthy.waits_for_health());
        assert!(
            unknown.waits_for_health(),
            "after a crash, as compose would"
        );
        for p in [&was_unhealthy, &was_starting, &unchecked] {
            assert!(!p.waits_for_health(), "{}", p.container.service);
        }
        let starting = up(Some(Health::Starting), now);
        assert!(!starting.ready(&was_healthy));
        assert!(!starting.satisfies(Condition::Healthy, &was_healthy));
        assert!(starting.satisfies(Condition::Started, &was_healthy));
        assert!(starting.ready(&was_unhealthy));
        assert!(up(Some(Health::Healthy), now).ready(&was_healthy));
        assert!(!Live::default().satisfies(Condition::Started, &unchecked));
        let just_started = Live {
            phase: Phase::Started,
            ..Live::default()
        };
        assert!(just_started.satisfies(Condition::Started, &unchecked));
        assert!(!just_started.satisfies(Condition::Healthy, &was_unhealthy));
        assert!(!just_started.ready(&unchecked));
    }

    #[test]
    fn only_a_death_of_the_current_run_counts() {
        let mut live = up(None, Instant::now());
        live.died = Some((999, 0));
        assert_eq!(live.death(), None, "the stop's die, delivered late");
        live.died = Some((1_000, 137));
        assert_eq!(live.death(), Some(137));
        live.run_started = None;
        assert_eq!(live.death(), None, "not known before the start is done");
    }

    #[test]
    fn a_start_is_over_once_all_are_ready_and_the_unproven_have_settled() {
        let now = Instant::now();
        let settle = Duration::from_millis(200);
        let db = prepared("db", true, Some(Health::Healthy));
        let web = prepared("web", false, None);
        let containers = [db, web];
        let healthy_db = up(Some(Health::Healthy), now);
        let web_up = up(None, now);
        assert_eq!(
            settled(
                &[healthy_db.clone(), web_up.clone()],
                &containers,
                settle,
                now
            ),
            Some(now + settle)
        );
        assert_eq!(
            settled(
                std::slice::from_ref(&healthy_db),
                &containers[..1],
                settle,
                now
            ),
            Some(now + settle),
            "a passing health check does not end the watch early"
        );
        let long_ago = up(Some(Health::Healthy), now - Duration::from_secs(60));
        assert_eq!(
            settled(
                std::slice::from_ref(&long_ago),
                &containers[..1],
                settle,
                now
            ),
            Some(now - Duration::from_secs(60) + settle),
            "healthy after the window: over as soon as it is"
        );
        let completed = Live {
            phase: Phase::Completed,
            ..Live::default()
        };
        assert_eq!(
            settled(
                std::slice::from_ref(&completed),
                &containers[1..],
                settle,
                now
            ),
            Some(now),
            "a completed one-shot is not watched"
        );
        let unhealthy_db = up(Some(Health::Unhealthy), now);
        assert_eq!(
            settled(&[unhealthy_db.clone(), web_up], &containers, settle, now),
            None
        );
        let deps = vec![Vec::new(), vec![(0, Condition::Healthy)]];
        assert_eq!(
            pending(&[unhealthy_db, Live::default()], &containers, &deps),
            ["db (unhealthy)", "web (waiting for db)"]
        );
        let stopping = Live {
            phase: Phase::Stopping { until: None },
            ..Live::default()
        };
        assert!(!stopping.ready(&containers[0]));
        for condition in [Condition::Started, Condition::Healthy, Condition::Completed] {
            assert!(!stopping.satisfies(condition, &containers[0]));
        }
        assert_eq!(
            pending(&[stopping, Live::default()], &containers, &deps),
            ["db (its stop is still in flight)", "web (waiting for db)"]
        );
    }
}
