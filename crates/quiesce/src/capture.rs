//! The capture verdict of each stack (SPEC §2 rule 10): what the backup holds of it, judged
//! from the engine's evidence — each container's exit as its stop reported it, and what the
//! engine said of the stack when the snapshot was reported — never from what the controller
//! meant to do.
//!
//! [`Evidence`] gathers one stack's facts as the cycle applies them; [`Evidence::verdict`]
//! judges them once the cycle is over. The order of the rules is the order of their weight:
//! `live` (a container ran while it was to be down) over `killed` (a container's grace ran
//! out) over `unknown` (it cannot be told) over `clean`.

use chrono::{DateTime, Utc};
use felhom_marker::{Capture, ContainerFact, Fact};
use felhom_stacks::{ContainerRef, DownCheck, StopReport};
use std::collections::BTreeSet;

/// What the cycle knows of its backup, for the verdicts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backup {
    /// The agent reported the snapshot taken (or `done`): there is a capture to judge.
    pub(crate) captured: bool,
    /// The backup was adopted (`409`): it may have begun before this cycle's stops.
    pub(crate) adopted: bool,
    /// When the agent says the backup began, where it said so.
    pub(crate) started_at: Option<DateTime<Utc>>,
}

/// What the engine said of one stack during a cycle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Evidence {
    /// When its first stop call began.
    first_stop: Option<DateTime<Utc>>,
    /// Since when it is down, by the engine's account: the request of its stop (or of the
    /// later stop of a container that came back).
    down_since: Option<DateTime<Utc>>,
    /// Stop calls begun, and answered.
    calls_begun: u32,
    calls_answered: u32,
    /// A stop call failed after it began: how far it got is not known.
    failed: bool,
    /// Its stop never began: nothing of it was stopped.
    not_stopped: bool,
    /// The containers its stops found running and stopped.
    stopped: BTreeSet<String>,
    /// Killed and came-back facts, as they happened.
    facts: Vec<ContainerFact>,
    /// The check at the snapshot: whether it stayed down, with what ran or appeared.
    check: Option<Result<Vec<ContainerFact>, String>>,
    /// Containers came back and are being stopped again: that stop moves `down_since`, even
    /// where they had exited again by themselves.
    restop: bool,
}

fn fact(c: &ContainerRef, fact: Fact, at: Option<DateTime<Utc>>) -> ContainerFact {
    ContainerFact {
        container: c.name.clone(),
        service: c.service.clone(),
        fact,
        at,
    }
}

impl Evidence {
    /// A stop call of the stack begins at `at`.
    pub(crate) fn stop_began(&mut self, at: DateTime<Utc>) {
        self.first_stop.get_or_insert(at);
        self.calls_begun += 1;
    }

    /// A stop call answered with `report`, at `at`.
    pub(crate) fn stopped(&mut self, report: &StopReport, at: DateTime<Utc>) {
        self.calls_answered += 1;
        for s in &report.containers {
            if s.was_running {
                self.stopped.insert(s.container.id.clone());
            }
            if s.killed {
                self.facts
                    .push(fact(&s.container, Fact::Killed, s.exited_at.or(Some(at))));
            }
        }
        // Down since the request of this stop, when it stopped anything that ran: a later
        // stop (of a container that came back) moves it on, also when that container had
        // exited again by itself (it is down from then on).
        let restop = std::mem::take(&mut self.restop);
        let requested = report
            .containers
            .iter()
            .filter(|s| s.was_running || restop)
            .map(|s| s.stop_requested_at)
            .min();
        self.down_since = match (self.down_since, requested) {
            (Some(since), Some(t)) => Some(since.max(t)),
            (None, t) => Some(t.or(self.first_stop).unwrap_or(at)),
            (since, None) => since,
        };
    }

    /// Containers that ran again after the stop, before the backup began.
    pub(crate) fn came_back(&mut self, containers: &[(ContainerRef, Option<DateTime<Utc>>)]) {
        for (c, at) in containers {
            self.facts.push(fact(c, Fact::CameBack, *at));
        }
        self.restop = true;
    }

    /// The stack's stop failed; `began`: whether a stop call of it had begun.
    pub(crate) fn stop_failed(&mut self, began: bool) {
        if began || self.calls_begun > 0 {
            self.failed = true;
        } else {
            self.not_stopped = true;
        }
    }

    /// What the engine said when the snapshot was reported.
    pub(crate) fn checked(&mut self, check: Result<DownCheck, String>) {
        self.check = Some(check.map(|check| {
            let ran = check
                .ran
                .iter()
                .map(|(c, at)| fact(c, Fact::Ran, Some(*at)));
            let appeared = check.appeared.iter().map(|c| fact(c, Fact::Appeared, None));
            ran.chain(appeared).collect()
        }));
    }

    /// Since when it is to be down: the engine's account where a stop answered, else the
    /// beginning of its stop (a stop that failed: the check tells whether it still runs);
    /// `None` when no stop of it began.
    pub(crate) fn down_since(&self) -> Option<DateTime<Utc>> {
        self.down_since.or(self.first_stop)
    }

    /// Whether its stop never began: nothing of it was stopped.
    pub(crate) fn not_stopped(&self) -> bool {
        self.not_stopped
    }

    /// Every stop call that began answered, and none failed: no stop can be in flight.
    pub(crate) fn stop_ended(&self) -> bool {
        self.calls_answered > 0 && self.calls_answered == self.calls_begun && !self.failed
    }

    /// Whether `id` was running when a stop of this stack came for it.
    pub(crate) fn was_stopped(&self, id: &str) -> bool {
        self.stopped.contains(id)
    }

    /// The verdict and the facts behind it. `recovering`: a crash recovery, which knows
    /// nothing of the stops (`unknown`).
    pub(crate) fn verdict(
        &self,
        backup: &Backup,
        recovering: bool,
    ) -> (Capture, Vec<ContainerFact>) {
        if recovering {
            return (Capture::Unknown, Vec::new());
        }
        self.judged(backup, |_| true)
    }

    /// The verdict of one service the stop was for (issue 23): the stack's evidence, with
    /// only that service's containers' facts.
    pub(crate) fn verdict_of(&self, service: &str, backup: &Backup) -> Capture {
        self.judged(backup, |f| f.service == service).0
    }

    fn judged(
        &self,
        backup: &Backup,
        about: impl Fn(&ContainerFact) -> bool,
    ) -> (Capture, Vec<ContainerFact>) {
        let mut facts: Vec<ContainerFact> =
            self.facts.iter().filter(|f| about(f)).cloned().collect();
        let seen: Vec<ContainerFact> = match &self.check {
            Some(Ok(seen)) => seen.iter().filter(|f| about(f)).cloned().collect(),
            _ => Vec::new(),
        };
        facts.extend(seen.iter().cloned());
        let began_before_the_stop = match (backup.adopted, backup.started_at, self.first_stop) {
            (false, _, _) => Some(false),
            (true, Some(began), Some(stop)) => Some(began < stop),
            (true, Some(_), None) => Some(true),
            (true, None, _) => None,
        };
        let killed = facts.iter().any(|f| f.fact == Fact::Killed);
        let capture = if !seen.is_empty()
            || (backup.captured && self.not_stopped)
            || began_before_the_stop == Some(true)
        {
            Capture::Live
        } else if killed {
            Capture::Killed
        } else if !backup.captured
            || began_before_the_stop.is_none()
            || !matches!(self.check, Some(Ok(_)))
            || !self.stop_ended()
        {
            Capture::Unknown
        } else {
            Capture::Clean
        };
        (capture, facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_stacks::StoppedContainer;

    fn container(service: &str) -> ContainerRef {
        ContainerRef {
            id: format!("{service}-id"),
            name: format!("app-{service}-1"),
            service: service.into(),
        }
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("a time")
    }

    fn report(killed: bool, requested: DateTime<Utc>) -> StopReport {
        StopReport {
            containers: vec![StoppedContainer {
                container: container("db"),
                was_running: true,
                stop_requested_at: requested,
                exited_at: Some(requested + chrono::Duration::seconds(2)),
                exit_code: Some(if killed { 137 } else { 0 }),
                killed,
            }],
            vanished: vec![],
        }
    }

    /// A stack stopped at `t(10)` (killed or not), then checked at the snapshot.
    fn stopped(killed: bool, check: Result<DownCheck, String>) -> Evidence {
        let mut e = Evidence::default();
        e.stop_began(t(10));
        e.stopped(&report(killed, t(10)), t(12));
        e.checked(check);
        e
    }

    fn captured() -> Backup {
        Backup {
            captured: true,
            ..Backup::default()
        }
    }

    #[test]
    fn a_clean_stop_that_stayed_down_is_clean() {
        let e = stopped(false, Ok(DownCheck::default()));
        assert_eq!(e.verdict(&captured(), false), (Capture::Clean, vec![]));
        assert_eq!(e.down_since(), Some(t(10)));
        assert!(e.stop_ended() && e.was_stopped("db-id"));
    }

    #[test]
    fn a_kill_at_the_end_of_the_grace_is_killed_with_its_container_named() {
        let (capture, facts) = stopped(true, Ok(DownCheck::default())).verdict(&captured(), false);
        assert_eq!(capture, Capture::Killed);
        assert_eq!(facts.len(), 1);
        assert_eq!(
            (facts[0].container.as_str(), facts[0].fact),
            ("app-db-1", Fact::Killed)
        );
        assert_eq!(facts[0].at, Some(t(12)));
    }

    #[test]
    fn a_container_that_ran_or_appeared_is_live_over_a_kill() {
        let ran = DownCheck {
            ran: vec![(container("db"), t(20))],
            appeared: vec![],
        };
        let (capture, facts) = stopped(true, Ok(ran)).verdict(&captured(), false);
        assert_eq!(capture, Capture::Live);
        assert_eq!(
            facts.iter().map(|f| f.fact).collect::<Vec<_>>(),
            [Fact::Killed, Fact::Ran]
        );
        let appeared = DownCheck {
            ran: vec![],
            appeared: vec![container("web")],
        };
        let (capture, facts) = stopped(false, Ok(appeared)).verdict(&captured(), false);
        assert_eq!(capture, Capture::Live);
        assert_eq!(facts[0].fact, Fact::Appeared);
    }

    #[test]
    fn what_cannot_be_told_is_unknown() {
        // The engine away at the check.
        let away = stopped(false, Err("engine away".into()));
        assert_eq!(away.verdict(&captured(), false).0, Capture::Unknown);
        // No snapshot reported.
        let clean = stopped(false, Ok(DownCheck::default()));
        assert_eq!(clean.verdict(&Backup::default(), false).0, Capture::Unknown);
        // A recovery.
        assert_eq!(clean.verdict(&captured(), true).0, Capture::Unknown);
        // A stop that did not answer (cut by the bound): it may not have been clean.
        let mut cut = Evidence::default();
        cut.stop_began(t(10));
        cut.checked(Ok(DownCheck::default()));
        assert!(!cut.stop_ended());
        assert_eq!(cut.verdict(&captured(), false).0, Capture::Unknown);
        // A stop that failed half-way.
        let mut failed = stopped(false, Ok(DownCheck::default()));
        failed.stop_failed(true);
        assert_eq!(failed.verdict(&captured(), false).0, Capture::Unknown);
    }

    #[test]
    fn a_stack_that_was_not_stopped_is_live_once_captured() {
        let mut e = Evidence::default();
        e.stop_failed(false);
        assert_eq!(e.verdict(&captured(), false).0, Capture::Live);
        assert_eq!(e.verdict(&Backup::default(), false).0, Capture::Unknown);
    }

    #[test]
    fn an_adopted_backup_that_began_before_the_stop_is_live() {
        let e = stopped(false, Ok(DownCheck::default()));
        let adopted = |started_at| Backup {
            captured: true,
            adopted: true,
            started_at,
        };
        assert_eq!(e.verdict(&adopted(Some(t(5))), false).0, Capture::Live);
        assert_eq!(e.verdict(&adopted(Some(t(11))), false).0, Capture::Clean);
        assert_eq!(
            e.verdict(&adopted(None), false).0,
            Capture::Unknown,
            "no times"
        );
    }

    #[test]
    fn a_container_that_came_back_and_exited_again_is_down_from_its_second_stop() {
        let mut e = stopped(false, Ok(DownCheck::default()));
        e.came_back(&[(container("db"), Some(t(15)))]);
        e.stop_began(t(16));
        let mut again = report(false, t(16));
        again.containers[0].was_running = false;
        e.stopped(&again, t(16));
        assert_eq!(e.down_since(), Some(t(16)));
    }

    #[test]
    fn a_service_is_judged_by_its_own_containers_facts() {
        let mut e = Evidence::default();
        e.stop_began(t(10));
        let mut both = report(true, t(10));
        both.containers.push(StoppedContainer {
            container: container("web"),
            was_running: true,
            stop_requested_at: t(10),
            exited_at: Some(t(11)),
            exit_code: Some(0),
            killed: false,
        });
        e.stopped(&both, t(12));
        e.checked(Ok(DownCheck {
            ran: vec![],
            appeared: vec![container("cache")],
        }));
        assert_eq!(e.verdict_of("db", &captured()), Capture::Killed);
        assert_eq!(e.verdict_of("web", &captured()), Capture::Clean);
        assert_eq!(e.verdict_of("cache", &captured()), Capture::Live);
        assert_eq!(e.verdict(&captured(), false).0, Capture::Live);
        // No snapshot: what cannot be told is unknown for each.
        assert_eq!(e.verdict_of("web", &Backup::default()), Capture::Unknown);
    }

    #[test]
    fn a_container_stopped_again_moves_the_down_since_and_is_noted() {
        let mut e = stopped(false, Ok(DownCheck::default()));
        e.came_back(&[(container("db"), Some(t(15)))]);
        e.stop_began(t(16));
        e.stopped(&report(false, t(16)), t(17));
        assert_eq!(e.down_since(), Some(t(16)));
        assert!(e.stop_ended());
        let (capture, facts) = e.verdict(&captured(), false);
        assert_eq!(
            capture,
            Capture::Clean,
            "it stayed down from its second stop"
        );
        assert_eq!(facts[0].fact, Fact::CameBack);
        assert_eq!(facts[0].at, Some(t(15)));
    }
}
