//! What an operator removed stays removed (issue 19): a stranded stack whose containers were
//! removed (`docker compose down`) is given up — shown with why, told once, never tried again,
//! still needing a person — and a recovery finds such a stack gone and gives it up at once
//! without recreating it, while the cycle's own resume still brings back a container removed
//! under it. Fakes at the seams; paused tokio time.

use felhom_agentapi::fake::FakeAgent;
use felhom_agentapi::BackupPhase;
use felhom_marker::fake::FakeState;
use felhom_marker::{MarkedContainer, MarkedStack, Marker};
use felhom_quiesce::testing::Recorder;
use felhom_quiesce::{CancellationToken, Collaborators, Controller, CycleConfig, NoticeKind};
use felhom_stacks::fake::{FakeStacks, Trouble};
use felhom_stacks::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::sleep;

struct Rig {
    controller: Controller,
    recorder: Arc<Recorder>,
    stacks: Arc<FakeStacks>,
    state: Arc<FakeState>,
}

fn config() -> CycleConfig {
    CycleConfig {
        max_quiesce: Duration::from_secs(600),
        restart_attempts: 3,
        restart_backoff: Duration::from_secs(1),
        due_poll_interval: Duration::from_secs(60),
        ..CycleConfig::default()
    }
}

fn rig(agent: Option<FakeAgent>, stacks: FakeStacks, state: FakeState) -> Rig {
    let recorder = Arc::new(Recorder::default());
    let stacks = Arc::new(stacks);
    let state = Arc::new(state);
    let parts = Collaborators {
        observer: recorder.clone(),
        ..Collaborators::in_memory(
            agent.map(|a| Arc::new(a) as _),
            stacks.clone(),
            state.clone(),
        )
    };
    Rig {
        controller: Controller::new(parts, config()),
        recorder,
        stacks,
        state,
    }
}

/// How many starts of `stack` the fake was asked for.
fn starts(stacks: &FakeStacks, stack: &str) -> usize {
    let prefix = format!("start {stack} ");
    stacks
        .calls()
        .iter()
        .filter(|c| c.starts_with(&prefix))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_stranded_stack_whose_containers_were_removed_is_given_up_never_recreated() {
    // A cycle strands beta (every start of its cycle fails).
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])])
        .start_trouble("beta", Trouble::FailTimes(3));
    let agent = FakeAgent::answering([BackupPhase::Done]);
    let r = rig(Some(agent), stacks, FakeState::default());
    let record = r
        .controller
        .run_cycle(&CancellationToken::new())
        .await
        .expect("cycle");
    assert_eq!(record.stranded, ["beta"]);
    assert_eq!(starts(&r.stacks, "beta"), 3);

    // The operator takes beta down on purpose: its containers are gone.
    r.stacks.remove_stack("beta");

    // The daemon's slow retry (2 min after the strand) finds them gone: given up.
    let cancel = CancellationToken::new();
    let daemon = {
        let (c, until) = (r.controller.clone(), cancel.clone());
        tokio::spawn(async move { c.run(&until).await })
    };
    sleep(Duration::from_secs(3 * 60)).await;
    assert_eq!(starts(&r.stacks, "beta"), 4, "tried once more");
    let kept = r.state.stranded_now();
    assert_eq!(kept.len(), 1);
    let why = kept[0].given_up.as_deref().expect("given up in the list");
    assert!(why.contains("removed outside the controller"), "{why}");
    assert!(why.contains("felhom-controller forget beta"), "{why}");
    assert!(
        kept[0].last_error.contains("no longer exist"),
        "{}",
        kept[0].last_error
    );
    assert_eq!(kept[0].attempts, 4);
    assert!(
        r.stacks.running_now("beta").is_empty(),
        "nothing recreated nor started"
    );

    // Shown, still needing a person; told once.
    let overview = r.controller.overview();
    assert_eq!(overview.stranded(), ["beta"]);
    assert_eq!(
        overview.stranded_stacks[0].given_up.as_deref(),
        Some(why),
        "the overview (status, /status) says why"
    );
    let told: Vec<_> = r
        .recorder
        .notices()
        .into_iter()
        .filter(|n| n.event == NoticeKind::Stranded && n.message.contains("no longer retried"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].stacks, ["beta"]);

    // Hours later: never tried again, still shown.
    sleep(Duration::from_secs(6 * 3600)).await;
    assert_eq!(starts(&r.stacks, "beta"), 4, "never retried once given up");
    assert!(r.stacks.running_now("beta").is_empty());
    assert_eq!(r.controller.overview().stranded(), ["beta"]);

    // The operator brings beta back with `docker compose up`: on the slow schedule (at most
    // 30 min apart) the daemon sees each of its services run and lets it go, starting nothing.
    r.stacks.compose_up("beta", &["app"]);
    sleep(Duration::from_secs(31 * 60)).await;
    assert!(r.controller.overview().stranded().is_empty());
    assert!(r.state.stranded_now().is_empty(), "off the list on disk");
    assert_eq!(starts(&r.stacks, "beta"), 4, "nothing started by us");
    let back: Vec<_> = r
        .recorder
        .notices()
        .into_iter()
        .filter(|n| n.event == NoticeKind::Recovered && n.stacks == ["beta"])
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");
    assert!(
        back[0].message.contains("brought back by someone"),
        "{}",
        back[0].message
    );
    cancel.cancel();
    daemon.await.expect("the loop ends");
}

/// A marker left by a crash names alpha and beta; beta's containers were removed before the
/// recovery. Alpha comes back; beta is stranded at once (one start, not every attempt),
/// given up, and nothing of it is made.
#[tokio::test(start_paused = true)]
async fn a_recovery_gives_up_a_stack_whose_containers_were_removed() {
    let stacks = FakeStacks::running([("alpha", &["app"][..]), ("beta", &["app"][..])]);
    let marked: Vec<MarkedStack> = ["alpha", "beta"]
        .into_iter()
        .map(|n| {
            let app = stacks.running_now(n).remove(0);
            let app = MarkedContainer {
                id: app.id,
                name: app.name,
                service: app.service,
            };
            let mut stack = MarkedStack::new(n, vec!["app".into()], vec![app]);
            stack.stop_began = true;
            stack
        })
        .collect();
    stacks.remove_stack("beta");
    let state = FakeState::with_marker(Marker::new("c-crashed", Utc::now(), marked));
    let r = rig(None, stacks, state);
    let recovery = r
        .controller
        .recover(&CancellationToken::new())
        .await
        .expect("recovers");
    assert_eq!(recovery.stranded, ["beta"]);
    assert_eq!(starts(&r.stacks, "beta"), 1, "not retried: gone stays gone");
    assert!(r.stacks.running_now("beta").is_empty(), "nothing recreated");
    assert_eq!(r.stacks.running_now("alpha").len(), 1, "alpha is back");
    assert_eq!(r.state.marker(), None, "the marker is released");
    let kept = r.state.stranded_now();
    assert!(kept[0].given_up.is_some(), "{kept:?}");
}

/// The cycle's own resume: a container removed while its stack was down for the backup is
/// made again (an accident, such as a prune, must not leave the app down).
#[tokio::test(start_paused = true)]
async fn the_cycles_own_resume_still_recreates_a_removed_container() {
    let stacks = FakeStacks::running([("alpha", &["app"][..])]);
    let agent = FakeAgent::answering([BackupPhase::Running, BackupPhase::Done]);
    let r = rig(Some(agent), stacks, FakeState::default());
    let controller = r.controller.clone();
    let cycle = tokio::spawn(async move { controller.run_cycle(&CancellationToken::new()).await });
    // Removed once its stop has happened, before the resume.
    while !r.stacks.calls().iter().any(|c| c.starts_with("stop alpha")) {
        sleep(Duration::from_millis(10)).await;
    }
    r.stacks.remove_stack("alpha");
    let record = cycle.await.expect("task").expect("cycle");
    assert!(record.stranded.is_empty(), "{record:?}");
    assert_eq!(r.stacks.running_now("alpha").len(), 1, "made again");
    assert!(r.state.stranded_now().is_empty());
}
