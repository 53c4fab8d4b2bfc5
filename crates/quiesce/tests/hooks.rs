//! The per-service policy of `docs/labels.md` (issue 23), on the fakes: every path of a hook
//! (its order before the stops, each `felhom.on-hook-error`, a hang killed at its timeout,
//! the cycle's bound, an engine call that never returns), the services kept running, the
//! verdicts per service and per stack, the `post-resume` hooks after every kind of end, the
//! marker's account of each hook (and a recovery that runs what is due), and the groups of
//! `felhom.stop-order`. Paused tokio time.

use async_trait::async_trait;
use chrono::Utc;
use felhom_agentapi::fake::{Answer, FakeAgent};
use felhom_agentapi::{AgentApi, BackupPhase};
use felhom_marker::fake::FakeState;
use felhom_marker::{
    Capture, CycleRecord, HookKind, MarkedContainer, MarkedHooks, MarkedRun, MarkedStack, Marker,
    Outcome, ServiceMode, ServiceRecord,
};
use felhom_quiesce::testing::Recorder;
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig, NoticeKind};
use felhom_stacks::fake::{FakeStacks, HookScript, Timing};
use felhom_stacks::{
    ContainerRef, DownCheck, HookCommand, HookError, HookRun, RunningStack, Slots, Stacks,
    StacksError, StartReport, StartRequest, StopReport,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

type Log = Arc<Mutex<Vec<String>>>;

fn config() -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 2,
        restart_backoff: Duration::from_secs(1),
        parallelism: 4,
        ..CycleConfig::default()
    }
}

/// The fake stacks, with each call's begin and end on a timeline (tokio's clock, from the
/// watch's creation) and the containers each stop and start was given.
struct Watched {
    inner: FakeStacks,
    t0: Instant,
    seen: Mutex<Vec<(Duration, String)>>,
}

impl Watched {
    fn new(inner: FakeStacks) -> Self {
        Watched {
            inner,
            t0: Instant::now(),
            seen: Mutex::default(),
        }
    }

    fn note(&self, what: String) {
        let at = self.t0.elapsed();
        self.seen.lock().expect("seen").push((at, what));
    }

    fn seen(&self) -> Vec<(Duration, String)> {
        self.seen.lock().expect("seen").clone()
    }

    /// When `what` was seen first.
    fn at(&self, what: &str) -> Duration {
        self.seen()
            .into_iter()
            .find(|(_, w)| w == what)
            .map(|(at, _)| at)
            .unwrap_or_else(|| panic!("{what} not seen: {:?}", self.seen()))
    }

    fn whats(&self) -> Vec<String> {
        self.seen().into_iter().map(|(_, w)| w).collect()
    }
}

fn names(containers: &[ContainerRef]) -> String {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    names.join(",")
}

#[async_trait]
impl Stacks for Watched {
    async fn running_app_stacks(&self) -> Result<Vec<RunningStack>, StacksError> {
        self.inner.running_app_stacks().await
    }
    async fn is_running(&self, stack: &str) -> Result<bool, StacksError> {
        self.inner.is_running(stack).await
    }
    async fn running_containers(&self, stack: &str) -> Result<Vec<ContainerRef>, StacksError> {
        self.inner.running_containers(stack).await
    }
    async fn stop_containers(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        slots: &Slots,
    ) -> Result<StopReport, StacksError> {
        self.note(format!("stop {stack} {}", names(containers)));
        let out = self.inner.stop_containers(stack, containers, slots).await;
        self.note(format!("stopped {stack}"));
        out
    }
    async fn check_down(
        &self,
        stack: &str,
        containers: &[ContainerRef],
        since: chrono::DateTime<Utc>,
    ) -> Result<DownCheck, StacksError> {
        self.inner.check_down(stack, containers, since).await
    }
    async fn start_containers(
        &self,
        stack: &str,
        request: &StartRequest,
        slots: &Slots,
    ) -> Result<StartReport, StacksError> {
        self.note(format!("start {stack} {}", names(&request.containers)));
        let out = self.inner.start_containers(stack, request, slots).await;
        self.note(format!("started {stack}"));
        out
    }
    async fn run_hook(
        &self,
        stack: &str,
        container: &ContainerRef,
        command: &HookCommand,
        timeout: Duration,
    ) -> Result<HookRun, HookError> {
        self.note(format!("hook {} {}", container.name, command.line()));
        let out = self
            .inner
            .run_hook(stack, container, command, timeout)
            .await;
        self.note(format!("hooked {} {}", container.name, command.line()));
        out
    }
}

/// A cycle's world: the stacks watched, the state and the agent logging into one log.
struct World {
    log: Log,
    stacks: Arc<Watched>,
    state: Arc<FakeState>,
    recorder: Arc<Recorder>,
}

impl World {
    fn new(stacks: FakeStacks) -> Self {
        let log = Log::default();
        World {
            stacks: Arc::new(Watched::new(stacks.log_into(log.clone()))),
            state: Arc::new(FakeState::default().log_into(log.clone())),
            recorder: Arc::new(Recorder::default()),
            log,
        }
    }

    fn with_marker(stacks: FakeStacks, marker: Marker) -> Self {
        let log = Log::default();
        World {
            stacks: Arc::new(Watched::new(stacks.log_into(log.clone()))),
            state: Arc::new(FakeState::with_marker(marker).log_into(log.clone())),
            recorder: Arc::new(Recorder::default()),
            log,
        }
    }

    fn controller(&self, agent: FakeAgent, config: CycleConfig) -> Controller {
        let agent: Arc<dyn AgentApi> = Arc::new(agent.log_into(self.log.clone()));
        let parts = Collaborators {
            observer: self.recorder.clone(),
            ..Collaborators::in_memory(Some(agent), self.stacks.clone(), self.state.clone())
        };
        Controller::new(parts, config)
    }

    async fn cycle_with(&self, agent: FakeAgent, config: CycleConfig) -> CycleRecord {
        self.controller(agent, config)
            .run_cycle(&CancellationToken::new())
            .await
            .expect("the cycle runs")
    }

    async fn cycle(&self) -> CycleRecord {
        let agent = FakeAgent::answering([BackupPhase::Snapshotted, BackupPhase::Done]);
        self.cycle_with(agent, config()).await
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    /// Where `entry` is in the log (its first occurrence).
    fn index(&self, entry: &str) -> usize {
        let log = self.log();
        log.iter()
            .position(|e| e == entry)
            .unwrap_or_else(|| panic!("{entry:?} not in {log:#?}"))
    }
}

fn service<'a>(record: &'a CycleRecord, stack: &str, service: &str) -> &'a ServiceRecord {
    record
        .stack(stack)
        .and_then(|s| s.service(service))
        .unwrap_or_else(|| panic!("{stack}/{service} in {record:#?}"))
}

fn capture(record: &CycleRecord, stack: &str) -> Capture {
    let found = record.stack(stack).map(|s| s.capture);
    found.unwrap_or_else(|| panic!("{stack} in {record:#?}"))
}

const DUMP: &str = "dump /data/db.sql";
const WARM: &str = "warm up";

/// `shop`: `db` kept up by a hook (`extra` labels added), `web` stopped.
fn shop(extra: &[(&'static str, &'static str)]) -> FakeStacks {
    let mut labels = vec![
        ("felhom.quiesce", "hook"),
        ("felhom.pre-snapshot", DUMP),
        ("felhom.post-resume", WARM),
    ];
    labels.extend_from_slice(extra);
    FakeStacks::running([("shop", &["db", "web"][..])]).labels("shop", "db", &labels)
}

#[tokio::test(start_paused = true)]
async fn a_hooked_service_is_dumped_before_any_stop_and_never_stopped() {
    let w = World::new(shop(&[]));
    let record = w.cycle().await;
    assert_eq!(record.outcome, Outcome::Done);
    // The hook before any stop; only web stopped; the post-resume once the stacks resumed.
    let seen = w.stacks.whats();
    assert_eq!(
        seen[..3],
        [
            format!("hook shop-db-1 {DUMP}"),
            format!("hooked shop-db-1 {DUMP}"),
            "stop shop shop-web-1".to_owned(),
        ],
        "{seen:#?}"
    );
    assert!(
        w.stacks.at("started shop") <= w.stacks.at(&format!("hook shop-db-1 {WARM}")),
        "{seen:#?}"
    );
    assert_eq!(service(&record, "shop", "db").capture, Capture::Hooked);
    assert!(!service(&record, "shop", "db").stopped);
    assert_eq!(service(&record, "shop", "web").capture, Capture::Clean);
    assert!(service(&record, "shop", "web").stopped);
    assert_eq!(
        capture(&record, "shop"),
        Capture::Hooked,
        "hooked before clean"
    );
    assert_eq!(record.stacks[0].services, ["web"], "what was stopped");
    assert!(record.succeeded(), "{record:#?}");
    // Each hook with its exit status and duration in the record.
    let hooks = &service(&record, "shop", "db").hooks;
    let kinds: Vec<(HookKind, Option<i64>, bool)> = hooks
        .iter()
        .map(|h| (h.hook, h.exit_code, h.succeeded))
        .collect();
    assert_eq!(
        kinds,
        [
            (HookKind::PreSnapshot, Some(0), true),
            (HookKind::PostResume, Some(0), true)
        ]
    );
    assert_eq!(hooks[0].program, "dump");
    assert_eq!(hooks[0].container, "shop-db-1");

    // The marker: the hook about to run is on disk before it runs (with its service
    // quiesced); the marker is cleared only once the post-resume hook ended.
    let log = w.log();
    let hook_at = w.index(&format!("hook shop db {DUMP}"));
    let saves_before = log[..hook_at]
        .iter()
        .filter(|e| e.starts_with("save "))
        .count();
    let on_disk = &w.state.saved()[saves_before - 1];
    let db = &on_disk.stacks[0].hooks[0];
    assert!(db.quiesced && db.kept_up, "{db:?}");
    assert_eq!(
        db.runs,
        [MarkedRun {
            hook: HookKind::PreSnapshot,
            container: "shop-db-id".into(),
            ended: false
        }]
    );
    assert_eq!(
        on_disk.stacks[0].containers.len(),
        1,
        "only web is the stop's"
    );
    assert!(
        w.index("clear") > w.index(&format!("hook shop db {WARM}")),
        "{log:#?}"
    );
    assert_eq!(w.state.marker(), None);
    assert_eq!(w.recorder.kinds(), [NoticeKind::Done]);
}

#[tokio::test(start_paused = true)]
async fn a_skip_service_is_never_stopped_and_a_stack_of_only_kept_services_not_at_all() {
    let stacks = FakeStacks::running([("front", &["proxy"][..]), ("shop", &["cache", "web"][..])])
        .labels("front", "proxy", &[("felhom.quiesce", "skip")])
        .labels("shop", "cache", &[("felhom.quiesce", "skip")]);
    let w = World::new(stacks);
    let record = w.cycle().await;
    let stops: Vec<String> = w
        .stacks
        .whats()
        .into_iter()
        .filter(|e| e.starts_with("stop "))
        .collect();
    assert_eq!(stops, ["stop shop shop-web-1"]);
    assert_eq!(capture(&record, "front"), Capture::Skipped);
    assert_eq!(service(&record, "shop", "cache").capture, Capture::Skipped);
    assert_eq!(service(&record, "shop", "web").capture, Capture::Clean);
    assert_eq!(capture(&record, "shop"), Capture::Skipped);
    let listed: Vec<&str> = record.stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(listed, ["front", "shop"], "every stack the cycle touched");
    assert!(record.succeeded());
    assert_eq!(
        w.stacks.inner.running_now("front").len(),
        1,
        "still running"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_hook_with_on_hook_error_stop_falls_back_to_a_clean_stop() {
    let stacks = shop(&[]).hook("shop", "db", HookScript::exit(3, "disk full: s3cr3t"));
    let w = World::new(stacks);
    let record = w.cycle().await;
    // Stopped with its stack's other stopped services, in one stop.
    assert!(
        w.stacks
            .whats()
            .contains(&"stop shop shop-db-1,shop-web-1".to_owned()),
        "{:#?}",
        w.stacks.whats()
    );
    let db = service(&record, "shop", "db");
    assert!(db.stopped);
    assert_eq!(
        db.capture,
        Capture::Clean,
        "its verdict comes from the stop"
    );
    assert_eq!(db.hooks[0].exit_code, Some(3));
    assert_eq!(
        db.hooks[0].output, "disk full: s3cr3t",
        "the output is kept"
    );
    assert_eq!(capture(&record, "shop"), Capture::Clean);
    assert!(record.succeeded(), "{record:#?}");
    let error = record
        .errors
        .iter()
        .find(|e| e.contains("pre-snapshot hook"))
        .expect("the hook's failure is in the errors");
    assert_eq!(
        error,
        "stack shop, service db: pre-snapshot hook \"dump\" (container shop-db-1): exit 3 after 0.0s: stopped with its stack instead"
    );
    // Its post-resume once it runs again.
    assert!(w.stacks.at("started shop") <= w.stacks.at(&format!("hook shop-db-1 {WARM}")));
    for notice in w.recorder.notices() {
        assert!(!notice.message.contains("s3cr3t"), "{notice:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn continue_keeps_it_up_hook_failed_and_the_cycle_inconsistent() {
    let stacks = shop(&[("felhom.on-hook-error", "continue")]).hook(
        "shop",
        "db",
        HookScript::exit(1, "s3cr3t output"),
    );
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert!(w
        .stacks
        .whats()
        .contains(&"stop shop shop-web-1".to_owned()));
    let db = service(&record, "shop", "db");
    assert!(!db.stopped);
    assert_eq!(db.capture, Capture::HookFailed);
    assert_eq!(capture(&record, "shop"), Capture::HookFailed);
    assert_eq!(record.outcome, Outcome::Done);
    assert!(!record.succeeded(), "hook-failed needs a person");
    assert_eq!(w.recorder.kinds(), [NoticeKind::Inconsistent]);
    let notice = &w.recorder.notices()[0];
    assert!(
        notice.message.contains("shop (hook-failed: db)"),
        "{notice:?}"
    );
    assert!(!notice.message.contains("s3cr3t"));
    assert!(record.errors.iter().all(|e| !e.contains("s3cr3t")));
    // Its post-resume runs once the starts are issued, it was quiesced.
    assert!(w.stacks.whats().contains(&format!("hook shop-db-1 {WARM}")));
}

#[tokio::test(start_paused = true)]
async fn skip_backup_gives_the_cycle_up_before_any_stop_and_runs_what_was_quiesced() {
    let stacks = FakeStacks::running([
        ("ledger", &["db"][..]),
        ("shop", &["cache", "web"][..]),
        ("later", &["app"][..]),
    ])
    .labels(
        "ledger",
        "db",
        &[
            ("felhom.quiesce", "hook"),
            ("felhom.pre-snapshot", "ledger-dump"),
            ("felhom.post-resume", "ledger-unlock"),
            ("felhom.on-hook-error", "skip-backup"),
        ],
    )
    .labels(
        "shop",
        "cache",
        &[
            ("felhom.quiesce", "skip"),
            ("felhom.post-resume", "cache-warm"),
        ],
    )
    .labels(
        "later",
        "app",
        &[
            ("felhom.pre-snapshot", "app-flush"),
            ("felhom.stop-order", "5"),
        ],
    )
    .hook("ledger", "db", HookScript::exit(2, "no space"));
    let w = World::new(stacks);
    let record = w.cycle().await;
    let log = w.log();
    assert!(!log.iter().any(|e| e.starts_with("stop ")), "{log:#?}");
    assert!(!log.contains(&"POST /backup".to_owned()), "{log:#?}");
    assert!(
        !log.iter().any(|e| e.contains("app-flush")),
        "no hook begins once the cycle is given up: {log:#?}"
    );
    assert!(
        log.contains(&"hook ledger db ledger-unlock".to_owned()),
        "the post-resume of what was quiesced: {log:#?}"
    );
    assert!(
        !log.iter().any(|e| e.contains("cache-warm")),
        "nothing was stopped and no backup posted: the cache was not quiesced"
    );
    assert_eq!(record.outcome, Outcome::Failed);
    assert!(record.errors.iter().any(|e| e.contains("service db")
        && e.contains("\"ledger-dump\"")
        && e.contains("skip-backup")));
    assert_eq!(
        service(&record, "ledger", "db").capture,
        Capture::HookFailed
    );
    assert_eq!(service(&record, "later", "app").capture, Capture::Unknown);
    assert_eq!(w.recorder.kinds(), [NoticeKind::Failed]);
    assert_eq!(w.state.marker(), None);
}

#[tokio::test(start_paused = true)]
async fn a_stop_services_failed_pre_snapshot_is_noted_and_it_is_stopped_as_planned() {
    let stacks = FakeStacks::running([("shop", &["web"][..])])
        .labels("shop", "web", &[("felhom.pre-snapshot", "flush")])
        .hook("shop", "web", HookScript::exit(9, ""));
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert!(w.stacks.at("hooked shop-web-1 flush") <= w.stacks.at("stop shop shop-web-1"));
    assert_eq!(service(&record, "shop", "web").capture, Capture::Clean);
    assert!(record
        .errors
        .iter()
        .any(|e| e.ends_with("exit 9 after 0.0s: stopped as planned")));
    assert!(record.succeeded());
}

/// `shop` whose `db` hook has 10 s and goes on without it when it fails; its first hook
/// does `script`.
fn shop_10s_continue(script: HookScript) -> FakeStacks {
    shop(&[
        ("felhom.hook-timeout", "10s"),
        ("felhom.on-hook-error", "continue"),
    ])
    .hook("shop", "db", script)
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_hangs_is_killed_at_its_timeout_and_counts_as_failed() {
    let stacks = shop_10s_continue(HookScript::Hang);
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert_eq!(
        w.stacks.at(&format!("hooked shop-db-1 {DUMP}"))
            - w.stacks.at(&format!("hook shop-db-1 {DUMP}")),
        Duration::from_secs(10)
    );
    let run = &service(&record, "shop", "db").hooks[0];
    assert!(run.timed_out && !run.succeeded, "{run:?}");
    assert_eq!((run.exit_code, run.duration_ms), (Some(137), 10_000));
    assert_eq!(service(&record, "shop", "db").capture, Capture::HookFailed);
    assert!(record
        .errors
        .iter()
        .any(|e| e.contains("killed at its timeout after 10.0s")));
}

#[tokio::test(start_paused = true)]
async fn hook_timeouts_are_bounded_by_max_quiesce_and_the_bound_cuts_a_running_hook() {
    let stacks = shop(&[("felhom.hook-timeout", "2h")]).hook("shop", "db", HookScript::Hang);
    let w = World::new(stacks);
    let begun = Instant::now();
    let record = w.cycle().await;
    // The bound (600 s) ends the wait, not the hook's 2 h.
    assert!(
        begun.elapsed() < Duration::from_secs(700),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(record.outcome, Outcome::Bounded);
    assert_eq!(
        w.state.saved()[0].stacks[0].hooks[0].timeout_ms,
        600_000,
        "no hook's timeout is longer than max_quiesce"
    );
    let log = w.log();
    assert!(!log.iter().any(|e| e.starts_with("stop ")), "{log:#?}");
    assert!(!log.contains(&"POST /backup".to_owned()));
    let db = service(&record, "shop", "db");
    assert_eq!(db.capture, Capture::HookFailed);
    assert!(db.hooks[0]
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("cut short")));
    // A hook that was cut may have done half its work: its post-resume runs.
    assert!(log.contains(&format!("hook shop db {WARM}")), "{log:#?}");
    assert_eq!(w.state.marker(), None);
}

#[tokio::test(start_paused = true)]
async fn an_engine_call_that_never_returns_is_abandoned_after_its_timeout_and_a_margin() {
    let stacks = shop_10s_continue(HookScript::Stuck);
    let w = World::new(stacks);
    let record = w.cycle().await;
    let run = &service(&record, "shop", "db").hooks[0];
    assert_eq!(
        run.error.as_deref(),
        Some("the engine's call did not return within 70s")
    );
    assert_eq!(run.duration_ms, 70_000);
    assert_eq!(record.outcome, Outcome::Done);
}

#[tokio::test(start_paused = true)]
async fn a_hook_that_cannot_run_is_a_failed_hook() {
    let not_running = HookError::NotRunning {
        stack: "shop".into(),
        service: "db".into(),
        container: "shop-db-1".into(),
        program: "dump".into(),
        status: "restarting".into(),
    };
    let stacks = shop(&[]).hook("shop", "db", HookScript::Fail(not_running));
    let w = World::new(stacks);
    let record = w.cycle().await;
    let db = service(&record, "shop", "db");
    assert!(db.stopped, "fell back to a stop (on-hook-error stop)");
    assert!(db.hooks[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("not running (restarting)")));
}

#[tokio::test(start_paused = true)]
async fn post_resume_hooks_run_after_a_failed_or_bounded_cycle() {
    for (agent, outcome) in [
        (FakeAgent::answering([BackupPhase::Failed]), Outcome::Failed),
        (
            FakeAgent::scripted([Answer::Phase(BackupPhase::Running)]),
            Outcome::Bounded,
        ),
    ] {
        let stacks = shop(&[]).labels("shop", "web", &[("felhom.post-resume", "web-up")]);
        let w = World::new(stacks);
        let record = w.cycle_with(agent, config()).await;
        assert_eq!(record.outcome, outcome);
        let log = w.log();
        for hook in [
            format!("hook shop db {WARM}"),
            "hook shop web web-up".to_owned(),
        ] {
            assert!(log.contains(&hook), "{outcome:?}: {hook}: {log:#?}");
        }
        // web's once it runs again.
        assert!(w.stacks.at("started shop") <= w.stacks.at("hook shop-web-1 web-up"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_services_post_resume_waits_for_its_start_a_kept_ones_only_for_the_starts_issued()
{
    let timing = Timing {
        ready: Duration::from_secs(30),
        ..Timing::default()
    };
    let stacks = shop(&[])
        .labels("shop", "web", &[("felhom.post-resume", "web-up")])
        .timing(timing);
    let w = World::new(stacks);
    w.cycle().await;
    let kept = w.stacks.at(&format!("hook shop-db-1 {WARM}"));
    let start = w.stacks.at("start shop shop-web-1");
    let started = w.stacks.at("started shop");
    assert!(start <= kept && kept < started, "{:#?}", w.stacks.seen());
    assert!(started <= w.stacks.at("hook shop-web-1 web-up"));
}

#[tokio::test(start_paused = true)]
async fn a_stack_that_stays_down_runs_none_of_its_stopped_services_hooks() {
    let stacks = shop(&[])
        .labels("shop", "web", &[("felhom.post-resume", "web-up")])
        .start_trouble("shop", felhom_stacks::fake::Trouble::Fail("no".into()));
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert_eq!(record.stranded, ["shop"]);
    let log = w.log();
    assert!(!log.iter().any(|e| e.contains("web-up")), "{log:#?}");
    assert!(
        log.contains(&format!("hook shop db {WARM}")),
        "db runs: {log:#?}"
    );
    assert!(record
        .errors
        .iter()
        .any(|e| e.contains("post-resume hooks of web were not run")));
    assert_eq!(
        w.state.marker(),
        None,
        "stranded: kept in the stranded list"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_order_groups_stop_lowest_first_and_start_highest_first_each_after_the_previous() {
    let timing = Timing {
        stop: Duration::from_secs(2),
        start: Duration::from_secs(1),
        ready: Duration::from_secs(5),
    };
    let stacks = FakeStacks::running([
        ("a", &["app"][..]),
        ("b", &["app"][..]),
        ("c", &["app", "db"][..]),
        ("d", &["app"][..]),
    ])
    .labels("a", "app", &[("felhom.stop-order", "10")])
    .labels("c", "db", &[("felhom.stop-order", "0")])
    .labels("c", "app", &[("felhom.stop-order", "7")])
    .labels("d", "app", &[("felhom.stop-order", "-5")])
    .timing(timing);
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert!(record.succeeded());
    assert_eq!(record.stacks[0].stop_order, 10);
    assert_eq!(
        record.stacks[2].stop_order, 0,
        "the lowest of its services'"
    );
    let at = |what: &str| w.stacks.at(what);
    // Stops: d, then b and c at once, then a.
    assert!(at("stopped d") <= at("stop b b-app-1"));
    assert!(at("stopped d") <= at("stop c c-app-1,c-db-1"));
    assert_eq!(
        at("stop b b-app-1"),
        at("stop c c-app-1,c-db-1"),
        "one group, at once"
    );
    assert!(at("stopped b").max(at("stopped c")) <= at("stop a a-app-1"));
    // Starts: a, then b and c, then d; each group once the previous one's starts ended.
    assert!(at("started a") <= at("start b b-app-1"));
    assert!(at("started a") <= at("start c c-app-1,c-db-1"));
    assert!(at("started b").max(at("started c")) <= at("start d d-app-1"));
    assert_eq!(
        at("started a") - at("start a a-app-1"),
        Duration::from_secs(6),
        "a group ends when its stacks run (start and ready)"
    );
}

#[tokio::test(start_paused = true)]
async fn pre_snapshot_hooks_run_by_stop_order_groups_stacks_of_a_group_at_once_one_at_a_time_within(
) {
    let slow = || HookScript::Exit {
        code: 0,
        output: String::new(),
        after: Duration::from_secs(5),
    };
    let stacks = FakeStacks::running([
        ("a", &["app"][..]),
        ("b", &["app", "db"][..]),
        ("c", &["app"][..]),
    ])
    .labels(
        "a",
        "app",
        &[("felhom.pre-snapshot", "fa"), ("felhom.stop-order", "10")],
    )
    .labels("b", "app", &[("felhom.pre-snapshot", "fb1")])
    .labels("b", "db", &[("felhom.pre-snapshot", "fb2")])
    .labels("c", "app", &[("felhom.pre-snapshot", "fc")])
    .hook("a", "app", slow())
    .hook("b", "app", slow())
    .hook("b", "db", slow())
    .hook("c", "app", slow());
    let w = World::new(stacks);
    w.cycle().await;
    let at = |what: &str| w.stacks.at(what);
    let secs = Duration::from_secs;
    // b and c (order 0) at once; within b one hook after the other; then a (order 10);
    // then the stops.
    assert_eq!(at("hook b-app-1 fb1"), at("hook c-app-1 fc"));
    assert_eq!(at("hook b-db-1 fb2") - at("hook b-app-1 fb1"), secs(5));
    assert_eq!(at("hook a-app-1 fa") - at("hook b-app-1 fb1"), secs(10));
    let first_stop = w
        .stacks
        .seen()
        .into_iter()
        .find(|(_, e)| e.starts_with("stop "))
        .map(|(at, _)| at)
        .expect("stops");
    assert!(at("hooked a-app-1 fa") <= first_stop);
}

#[tokio::test(start_paused = true)]
async fn a_bad_label_is_as_if_absent_and_listed_for_the_stack_never_a_stranded_stack() {
    let stacks = FakeStacks::running([("shop", &["db"][..])]).labels(
        "shop",
        "db",
        &[("felhom.quiesce", "pause")],
    );
    let w = World::new(stacks);
    let record = w.cycle().await;
    assert!(w.stacks.whats().contains(&"stop shop shop-db-1".to_owned()));
    assert_eq!(
        record.stacks[0].label_errors,
        ["stack \"shop\", service \"db\": label felhom.quiesce=\"pause\": expected stop, skip or hook"]
    );
    assert_eq!(service(&record, "shop", "db").mode, ServiceMode::Stop);
    assert!(record.succeeded() && record.stranded.is_empty());
}

/// A marker as a controller killed after `shop`'s `pre-snapshot` hook began leaves it: the
/// stop of `web` begun, `db`'s hook about to run.
fn crashed_after_the_pre_snapshot() -> Marker {
    let mut w = MarkedStack::new("shop", vec!["web".into()], vec![marked("shop", "web")]);
    w.stop_began = true;
    w.hooks = vec![
        MarkedHooks {
            service: "db".into(),
            mode: ServiceMode::Hook,
            kept_up: true,
            pre_snapshot: true,
            post_resume: Some(WARM.into()),
            timeout_ms: 60_000,
            containers: vec![marked("shop", "db")],
            quiesced: true,
            runs: vec![MarkedRun {
                hook: HookKind::PreSnapshot,
                container: "shop-db-id".into(),
                ended: false,
            }],
        },
        MarkedHooks {
            service: "cache".into(),
            mode: ServiceMode::Hook,
            kept_up: true,
            pre_snapshot: true,
            post_resume: Some("cache-warm".into()),
            timeout_ms: 60_000,
            containers: vec![marked("shop", "cache")],
            quiesced: false,
            runs: vec![],
        },
        MarkedHooks {
            service: "web".into(),
            mode: ServiceMode::Stop,
            kept_up: false,
            pre_snapshot: false,
            post_resume: Some("web-up".into()),
            timeout_ms: 60_000,
            containers: vec![marked("shop", "web")],
            quiesced: true,
            runs: vec![MarkedRun {
                hook: HookKind::PostResume,
                container: "shop-web-id".into(),
                ended: true,
            }],
        },
    ];
    Marker::new("c-crashed", Utc::now(), vec![w])
}

fn marked(stack: &str, service: &str) -> MarkedContainer {
    MarkedContainer {
        id: format!("{stack}-{service}-id"),
        name: format!("{stack}-{service}-1"),
        service: service.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn recovery_runs_the_post_resume_of_each_service_whose_pre_snapshot_ran_and_no_other() {
    let stacks = FakeStacks::running([("shop", &["cache", "db", "web"][..])]);
    let w = World::with_marker(stacks, crashed_after_the_pre_snapshot());
    let controller = w.controller(FakeAgent::answering([]), config());
    let recovery = controller
        .recover(&CancellationToken::new())
        .await
        .expect("recovers");
    let record = recovery.record.expect("the marker's record");
    assert_eq!(record.outcome, Outcome::Recovered);
    let log = w.log();
    assert!(log.contains(&format!("hook shop db {WARM}")), "{log:#?}");
    assert!(
        !log.iter().any(|e| e.contains("cache-warm")),
        "its pre-snapshot never began: {log:#?}"
    );
    assert!(
        !log.iter().any(|e| e.contains("web-up")),
        "its post-resume had ended: {log:#?}"
    );
    assert!(
        w.stacks
            .whats()
            .contains(&"start shop shop-web-1".to_owned()),
        "what the marker stopped is started: {:#?}",
        w.stacks.whats()
    );
    assert_eq!(w.state.marker(), None);
    let db = service(&record, "shop", "db");
    assert_eq!(db.hooks.len(), 1);
    assert_eq!(db.hooks[0].hook, HookKind::PostResume);
    assert_eq!(
        db.capture,
        Capture::Unknown,
        "a recovery knows nothing of the capture"
    );
}

/// A `kill -9` after a `pre-snapshot` hook began: the marker then on disk, recovered, runs
/// that service's `post-resume` hook — and a stack already back, whose post-resume had not
/// ended, is not started again.
#[tokio::test(start_paused = true)]
async fn the_marker_on_disk_while_a_hook_runs_is_enough_for_a_recovery_to_run_its_post_resume() {
    let stacks = shop(&[("felhom.hook-timeout", "1h")]).hook("shop", "db", HookScript::Hang);
    let w = World::new(stacks);
    let controller = w.controller(FakeAgent::answering([BackupPhase::Done]), config());
    let cancel = CancellationToken::new();
    let cycle = tokio::spawn({
        let cancel = cancel.clone();
        async move { controller.run_cycle(&cancel).await }
    });
    // Until the hook runs: the marker on disk then is what a kill -9 leaves.
    while !w.log().contains(&format!("hook shop db {DUMP}")) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = w.state.marker().expect("a marker while the hook runs");
    cycle.abort();
    let _ = cycle.await;
    let w2 = World::with_marker(FakeStacks::running([("shop", &["db", "web"][..])]), left);
    let recovery = w2
        .controller(FakeAgent::answering([]), config())
        .recover(&CancellationToken::new())
        .await
        .expect("recovers");
    assert!(recovery.record.is_some());
    let log = w2.log();
    assert!(log.contains(&format!("hook shop db {WARM}")), "{log:#?}");
    assert!(
        !log.iter().any(|e| e.starts_with("start ")),
        "nothing of it was stopped yet: {log:#?}"
    );
    assert_eq!(w2.state.marker(), None);

    // A stack back already, its post-resume not ended: run, not started again.
    let mut back = crashed_after_the_pre_snapshot();
    back.stacks[0].containers = Vec::new();
    back.stacks[0].services = Vec::new();
    back.stacks[0].stop_began = false;
    let w3 = World::with_marker(FakeStacks::running([("shop", &["db", "web"][..])]), back);
    w3.controller(FakeAgent::answering([]), config())
        .recover(&CancellationToken::new())
        .await
        .expect("recovers");
    let log = w3.log();
    assert!(log.contains(&format!("hook shop db {WARM}")), "{log:#?}");
    assert!(!log.iter().any(|e| e.starts_with("start ")), "{log:#?}");
}

/// A stack with hooks still due stays in the marker until they ended, but not as a stack to
/// start: a kill -9 after its start and before its post-resume runs the hook, never a second
/// start.
#[tokio::test(start_paused = true)]
async fn a_stack_back_keeps_only_its_hooks_in_the_marker_until_they_ended() {
    let stacks = shop(&[("felhom.hook-timeout", "1h")])
        .labels("shop", "web", &[("felhom.post-resume", "web-up")])
        .hook(
            "shop",
            "web",
            HookScript::Exit {
                code: 0,
                output: String::new(),
                after: Duration::from_secs(30),
            },
        );
    let w = World::new(stacks);
    w.cycle().await;
    let saved = w.state.saved();
    let back = saved
        .iter()
        .position(|m| m.stacks.first().is_some_and(|s| s.containers.is_empty()))
        .expect("a marker written once shop is back, its hooks due");
    for m in &saved[back..] {
        let Some(shop) = m.stacks.first() else {
            continue;
        };
        assert!(
            shop.containers.is_empty() && shop.services.is_empty() && !shop.stop_began,
            "back: nothing to start any more: {shop:?}"
        );
    }
    let web = |m: &Marker| {
        m.stacks[0]
            .hooks
            .iter()
            .find(|h| h.service == "web")
            .is_some_and(|h| !h.post_resume_due().is_empty())
    };
    assert!(
        web(&saved[back]),
        "web's post-resume is still due: {:?}",
        saved[back]
    );
    assert_eq!(w.state.marker(), None);
}
