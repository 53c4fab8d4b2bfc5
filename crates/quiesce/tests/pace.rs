//! The tuned hot paths (docs/performance.md): slots freed as soon as any stack is done,
//! and the status poll schedule. Paused tokio time: the waits run instantly.

use async_trait::async_trait;
use felhom_agentapi::{AgentApi, AgentError, BackupPhase, BackupStart, BackupStatus, Due};
use felhom_marker::fake::FakeState;
use felhom_marker::Outcome;
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig};
use felhom_stacks::{RunningStack, Stacks, StacksError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{sleep, Instant};

const SLOW: Duration = Duration::from_secs(10);
const QUICK: Duration = Duration::from_secs(1);

/// Stacks whose stop and start take `SLOW` for `slow` and `QUICK` for the others; each
/// call's beginning is logged with its time since `t0`.
struct TimedStacks {
    names: Vec<&'static str>,
    slow: &'static str,
    t0: Instant,
    log: Mutex<Vec<(String, Duration)>>,
}

impl TimedStacks {
    async fn call(&self, what: &str, stack: &str) {
        let at = self.t0.elapsed();
        self.log
            .lock()
            .expect("log")
            .push((format!("{what} {stack}"), at));
        sleep(if stack == self.slow { SLOW } else { QUICK }).await;
    }

    fn began(&self, call: &str) -> Duration {
        let log = self.log.lock().expect("log");
        log.iter()
            .find(|(c, _)| c == call)
            .map(|(_, at)| *at)
            .unwrap_or_else(|| panic!("{call:?} not in {log:?}"))
    }

    fn order(&self, what: &str) -> Vec<String> {
        let log = self.log.lock().expect("log");
        log.iter()
            .filter(|(c, _)| c.starts_with(what))
            .map(|(c, _)| c.clone())
            .collect()
    }
}

#[async_trait]
impl Stacks for TimedStacks {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        Ok(self
            .names
            .iter()
            .map(|n| RunningStack {
                name: (*n).to_owned(),
                services: vec!["app".into()],
                containers: Vec::new(),
                policy: Default::default(),
            })
            .collect())
    }
    async fn stop(&self, stack: &str) -> Result<Vec<String>, StacksError> {
        self.call("stop", stack).await;
        Ok(vec!["app".into()])
    }
    async fn start(&self, stack: &str, _services: &[String]) -> Result<(), StacksError> {
        self.call("start", stack).await;
        Ok(())
    }
    async fn is_running(&self, _stack: &str) -> Result<bool, StacksError> {
        Ok(true)
    }
}

/// An agent that answers `running` to the first `running` status polls, then
/// `snapshotted`, then `done`; it logs when each poll came, since the `POST`.
struct ScriptedAgent {
    running: usize,
    posted: Mutex<Option<Instant>>,
    polls: Mutex<Vec<Duration>>,
}

#[async_trait]
impl AgentApi for ScriptedAgent {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        Ok(Due {
            due: true,
            reason: None,
            next_due_at: None,
        })
    }
    async fn start_backup(&self, _cycle_id: &str) -> Result<BackupStart, AgentError> {
        *self.posted.lock().expect("posted") = Some(Instant::now());
        Ok(BackupStart {
            id: "b-1".into(),
            adopted: false,
        })
    }
    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        let posted = self
            .posted
            .lock()
            .expect("posted")
            .unwrap_or_else(Instant::now);
        let mut polls = self.polls.lock().expect("polls");
        polls.push(posted.elapsed());
        let phase = match polls.len() {
            n if n <= self.running => BackupPhase::Running,
            n if n == self.running + 1 => BackupPhase::Snapshotted,
            _ => BackupPhase::Done,
        };
        Ok(BackupStatus {
            id: Some("b-1".into()),
            phase,
            started_at: None,
            snapshot_at: None,
            finished_at: None,
            error: None,
        })
    }
}

fn cycle_config(parallelism: usize) -> CycleConfig {
    CycleConfig {
        parallelism,
        start_call_timeout: Duration::from_secs(60),
        ..CycleConfig::default()
    }
}

async fn run(parallelism: usize, running_polls: usize) -> (Arc<TimedStacks>, Arc<ScriptedAgent>) {
    let stacks = Arc::new(TimedStacks {
        names: vec!["a", "b", "c", "d"],
        slow: "a",
        t0: Instant::now(),
        log: Mutex::new(Vec::new()),
    });
    let agent = Arc::new(ScriptedAgent {
        running: running_polls,
        posted: Mutex::new(None),
        polls: Mutex::new(Vec::new()),
    });
    let parts = Collaborators::in_memory(
        Some(agent.clone()),
        stacks.clone(),
        Arc::new(FakeState::default()),
    );
    let controller = Controller::new(parts, cycle_config(parallelism));
    let record = controller
        .run_cycle(&CancellationToken::new())
        .await
        .expect("the cycle runs");
    assert_eq!(record.outcome, Outcome::Done, "{record:?}");
    assert!(record.stranded.is_empty(), "{record:?}");
    (stacks, agent)
}

#[tokio::test(start_paused = true)]
async fn a_slow_stack_does_not_hold_back_the_stacks_after_it() {
    let (stacks, _) = run(2, 0).await;
    // a (slow) and b begin at once; c takes b's slot when b ends, d takes c's: neither
    // waits for a. (In order of completion they would have: the oldest first.)
    assert_eq!(stacks.began("stop c"), QUICK);
    assert_eq!(stacks.began("stop d"), QUICK * 2);
    let resume = stacks.began("start a");
    assert!(resume >= SLOW, "the backup waited for every stop");
    assert_eq!(stacks.began("start c") - resume, QUICK);
    assert_eq!(stacks.began("start d") - resume, QUICK * 2);
    // Slots are handed out in name order.
    assert_eq!(
        stacks.order("stop"),
        ["stop a", "stop b", "stop c", "stop d"]
    );
    assert_eq!(
        stacks.order("start"),
        ["start a", "start b", "start c", "start d"]
    );
}

#[tokio::test(start_paused = true)]
async fn parallelism_one_is_the_strict_order() {
    let (stacks, _) = run(1, 0).await;
    assert_eq!(stacks.began("stop b"), SLOW);
    assert_eq!(stacks.began("stop c"), SLOW + QUICK);
    let resume = stacks.began("start a");
    assert_eq!(stacks.began("start b") - resume, SLOW);
    assert_eq!(stacks.began("start d") - resume, SLOW + QUICK * 2);
}

#[tokio::test(start_paused = true)]
async fn status_polls_start_fast_and_back_off_to_the_interval() {
    let (_, agent) = run(4, 30).await;
    let polls = agent.polls.lock().expect("polls").clone();
    let pauses: Vec<u128> = polls
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // 50 ms after the POST, then each pause half again as long, but at most 0.7 s or a tenth
    // of the time waited, and at most 2 s (give or take the timer's millisecond).
    assert_eq!(polls[0].as_millis(), 50, "{polls:?}");
    let expected = [
        75, 112, 168, 253, 379, 569, 700, 700, 700, 700, 700, 700, 700, 700, 721, 793,
    ];
    for (pause, want) in pauses.iter().zip(expected) {
        assert!(pause.abs_diff(want) <= 1, "{pauses:?} against {expected:?}");
    }
    let first_10s = polls.iter().filter(|p| p.as_millis() <= 10_000).count();
    assert!(first_10s <= 20, "{first_10s} polls in 10 s: {polls:?}");
    // After 20 s of waiting the interval caps the pause again.
    for pause in &pauses[27..30] {
        assert!(pause.abs_diff(2000) <= 1, "{pauses:?}");
    }
    // The snapshot (the 31st answer) ended the wait: the stacks were resumed, and the
    // outcome was polled for afterwards.
    assert!(polls.len() > 31, "{polls:?}");
}
