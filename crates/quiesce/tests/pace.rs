//! The tuned hot paths (docs/performance.md): slots freed as soon as any stack is done, held
//! by engine work only, and the status poll schedule. Paused tokio time: the waits run
//! instantly.

use async_trait::async_trait;
use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::{
    AgentApi, AgentError, Answered, BackupPhase, BackupStart, BackupStatus, Due,
};
use felhom_marker::fake::FakeState;
use felhom_marker::Outcome;
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig};
use felhom_stacks::fake::{FakeStacks, Timing};
use felhom_stacks::{
    ContainerRef, DateTime, DownCheck, RunningStack, Slots, Stacks, StacksError, StartReport,
    StartRequest, StopReport, Utc,
};
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

fn app(stack: &str) -> ContainerRef {
    ContainerRef {
        id: format!("{stack}-app-id"),
        name: format!("{stack}-app-1"),
        service: "app".into(),
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
                containers: vec![app(n)],
                policy: Default::default(),
            })
            .collect())
    }
    async fn is_running(&self, _stack: &str) -> Result<bool, StacksError> {
        Ok(true)
    }
    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        // Running until its stop.
        let stopped = self
            .log
            .lock()
            .expect("log")
            .iter()
            .any(|(c, _)| *c == format!("stop {stack}"));
        Ok(if stopped { vec![] } else { vec![app(stack)] })
    }
    async fn stop_containers(
        &self,
        stack: &str,
        _containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        // The engine's work holds a slot, as `EngineStacks` does.
        let _slot = slots.take().await;
        self.call("stop", stack).await;
        Ok(StopReport::default())
    }
    async fn check_down(
        &self,
        _stack: &str,
        _containers: &[ContainerRef],
        _since: DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        Ok(DownCheck::default())
    }
    async fn start_containers(
        &self,
        stack: &str,
        _request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        let _slot = slots.take().await;
        self.call("start", stack).await;
        Ok(StartReport::default())
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
        Ok(due())
    }
    async fn start_backup(&self, _cycle_id: &str) -> Result<BackupStart, AgentError> {
        Ok(posted(&self.posted))
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

/// Due, always.
fn due() -> Due {
    Due {
        due: true,
        reason: None,
        next_due_at: None,
    }
}

/// Notes when the backup was posted; backup `b-1` started.
fn posted(at: &Mutex<Option<Instant>>) -> BackupStart {
    *at.lock().expect("posted") = Some(Instant::now());
    BackupStart {
        id: "b-1".into(),
        adopted: false,
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

/// Issue 22: a slot is for engine work only. Three stacks whose start calls take 1 s and whose
/// containers then take 30 s to be ready (running, healthy, settled), one slot: the three start
/// calls follow each other, and the waits run side by side — the last stack is back 33 s after
/// the resume, not 93 s.
#[tokio::test(start_paused = true)]
async fn a_stack_waiting_to_be_ready_holds_no_slot() {
    let timing = Timing {
        stop: Duration::ZERO,
        start: Duration::from_secs(1),
        ready: Duration::from_secs(30),
    };
    let stacks = Arc::new(
        FakeStacks::running([
            ("a", &["app"][..]),
            ("b", &["app"][..]),
            ("c", &["app"][..]),
        ])
        .timing(timing),
    );
    let agent = Arc::new(FakeAgent::answering([BackupPhase::Done]));
    let parts = Collaborators::in_memory(Some(agent), stacks, Arc::new(FakeState::default()));
    let begun = Instant::now();
    let record = Controller::new(parts, cycle_config(1))
        .run_cycle(&CancellationToken::new())
        .await
        .expect("the cycle runs");
    assert!(record.succeeded(), "{record:?}");
    // The stops and the backup take well under a second here.
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(33) && took < Duration::from_secs(35),
        "{took:?}"
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

/// An agent whose backup is snapshotted `snapshot_after` its `POST` and done 20 s later; with
/// `long_poll`, it holds each status answer until its phase differs from the one the request
/// names, or the wait has passed (SPEC §3's extension); without, it answers at once, as an
/// agent that ignores the query does. Each request's time since the `POST` is logged.
struct TimedAgent {
    snapshot_after: Duration,
    long_poll: bool,
    posted: Mutex<Option<Instant>>,
    asked: Mutex<Vec<Duration>>,
}

impl TimedAgent {
    fn new(snapshot_after: Duration, long_poll: bool) -> Self {
        TimedAgent {
            snapshot_after,
            long_poll,
            posted: Mutex::new(None),
            asked: Mutex::new(Vec::new()),
        }
    }

    fn posted(&self) -> Instant {
        self.posted
            .lock()
            .expect("posted")
            .unwrap_or_else(Instant::now)
    }

    /// The phase now, and when it changes next.
    fn phase(&self) -> (BackupPhase, Option<Instant>) {
        let snapshot = self.posted() + self.snapshot_after;
        let done = snapshot + Duration::from_secs(20);
        let now = Instant::now();
        if now < snapshot {
            (BackupPhase::Running, Some(snapshot))
        } else if now < done {
            (BackupPhase::Snapshotted, Some(done))
        } else {
            (BackupPhase::Done, None)
        }
    }

    fn asked_within(&self, d: Duration) -> usize {
        let asked = self.asked.lock().expect("asked");
        asked.iter().filter(|at| **at <= d).count()
    }
}

fn status_of(phase: BackupPhase) -> BackupStatus {
    BackupStatus {
        id: Some("b-1".into()),
        phase,
        started_at: None,
        snapshot_at: None,
        finished_at: None,
        error: None,
    }
}

#[async_trait]
impl AgentApi for TimedAgent {
    async fn backup_due(&self) -> Result<Due, AgentError> {
        Ok(due())
    }
    async fn start_backup(&self, _cycle_id: &str) -> Result<BackupStart, AgentError> {
        Ok(posted(&self.posted))
    }
    async fn backup_status(&self) -> Result<BackupStatus, AgentError> {
        Ok(status_of(self.phase().0))
    }
    async fn backup_status_wait(
        &self,
        last_phase: &BackupPhase,
        wait: Duration,
    ) -> Result<Answered<BackupStatus>, AgentError> {
        let asked = self.posted().elapsed();
        self.asked.lock().expect("asked").push(asked);
        let (phase, changes) = self.phase();
        if self.long_poll && phase == *last_phase && !wait.is_zero() {
            let until = changes.map_or(Instant::now() + wait, |at| at.min(Instant::now() + wait));
            tokio::time::sleep_until(until).await;
        }
        Ok(Answered::complete(status_of(self.phase().0)))
    }
}

/// One cycle of four quick stacks against `agent`; when the first start began, since the POST.
async fn noticed(agent: Arc<TimedAgent>) -> Duration {
    let stacks = Arc::new(TimedStacks {
        names: vec!["a", "b", "c", "d"],
        slow: "none",
        t0: Instant::now(),
        log: Mutex::new(Vec::new()),
    });
    let parts = Collaborators::in_memory(
        Some(agent.clone()),
        stacks.clone(),
        Arc::new(FakeState::default()),
    );
    let record = Controller::new(parts, cycle_config(4))
        .run_cycle(&CancellationToken::new())
        .await
        .expect("the cycle runs");
    assert_eq!(record.outcome, Outcome::Done, "{record:?}");
    let first_start = stacks
        .log
        .lock()
        .expect("log")
        .iter()
        .find(|(c, _)| c.starts_with("start "))
        .map(|(_, at)| *at)
        .expect("a start");
    let posted = agent.posted() - stacks.t0;
    first_start - posted
}

/// Issue 22: against an agent with the long-poll extension, a snapshot taken 10 s into the
/// backup is acted on the moment it is reported, with one or two requests in those 10 s.
#[tokio::test(start_paused = true)]
async fn with_the_long_poll_the_snapshot_is_acted_on_at_once() {
    let agent = Arc::new(TimedAgent::new(Duration::from_secs(10), true));
    let late = noticed(agent.clone()).await;
    assert_eq!(
        late,
        Duration::from_secs(10),
        "noticed the moment it happened"
    );
    assert!(
        agent.asked_within(Duration::from_secs(10)) <= 2,
        "{:?}",
        agent.asked
    );
}

/// Issue 22: an agent without the extension answers at once: the interval schedule takes
/// over, at most 0.7 s late, within the request budget (≤ 20 in the first 10 s).
#[tokio::test(start_paused = true)]
async fn without_the_long_poll_the_interval_schedule_takes_over() {
    let agent = Arc::new(TimedAgent::new(Duration::from_secs(10), false));
    let late = noticed(agent.clone()).await;
    assert!(
        late >= Duration::from_secs(10) && late <= Duration::from_millis(10_700),
        "{late:?}"
    );
    let first_10s = agent.asked_within(Duration::from_secs(10));
    assert!(
        (10..=20).contains(&first_10s),
        "{first_10s}: {:?}",
        agent.asked
    );
}
