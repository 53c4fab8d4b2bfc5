//! A tool that embeds the quiesce cycle, as it would be written outside this repository: one
//! cycle over the real state directory, the agent's and the engine's recording fakes standing
//! in for a real agent and a real Docker engine, and an observer that keeps what an operator
//! would hear of. Its tests run with the workspace's (`cargo test`), so a change of the public
//! API that breaks an embedder breaks the build here first.

use felhom_agentapi::{fake::FakeAgent, BackupPhase};
use felhom_marker::{CycleRecord, StateDir};
use felhom_quiesce::{
    CancellationToken, Collaborators, Controller, CycleConfig, CycleError, IfDue, Notice, Observer,
};
use felhom_stacks::fake::FakeStacks;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Keeps what an operator should hear of; a real tool would queue a webhook here.
#[derive(Debug, Default)]
pub struct Inbox(Mutex<Vec<Notice>>);

impl Inbox {
    /// The notices so far.
    pub fn notices(&self) -> Vec<Notice> {
        self.0.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

impl Observer for Inbox {
    fn notice(&self, notice: &Notice) {
        if let Ok(mut notices) = self.0.lock() {
            notices.push(notice.clone());
        }
    }
}

/// A controller over the state directory at `dir`, the app stacks `stacks` (name, services),
/// an agent that answers `answers` in turn, and `inbox`.
pub fn controller(
    dir: &Path,
    stacks: Arc<FakeStacks>,
    answers: Vec<BackupPhase>,
    inbox: Arc<Inbox>,
) -> Result<Controller, felhom_marker::MarkerError> {
    let state = Arc::new(StateDir::open(dir)?);
    let parts = Collaborators {
        agent: Some(Arc::new(FakeAgent::answering(answers))),
        stacks,
        marker: state.clone(),
        history: state.clone(),
        stranded: state.clone(),
        lock: state,
        observer: inbox,
    };
    Ok(Controller::new(parts, CycleConfig::default()))
}

/// One cycle now if the agent says a backup is due; its record, or `None` when not due.
pub async fn backup_now(controller: &Controller) -> Result<Option<CycleRecord>, CycleError> {
    match controller
        .run_if_due(false, &CancellationToken::new())
        .await?
    {
        IfDue::Ran(record) => Ok(Some(record)),
        IfDue::NotDue(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_marker::{HistoryStore, MarkerStore, Outcome};
    use felhom_quiesce::NoticeKind;

    #[tokio::test(flavor = "current_thread")]
    async fn a_cycle_over_the_real_state_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        let stacks = Arc::new(FakeStacks::running([("nextcloud", &["app", "db"][..])]));
        let inbox = Arc::new(Inbox::default());
        let answers = vec![BackupPhase::Snapshotted, BackupPhase::Done];
        let c = controller(&dir, stacks.clone(), answers, inbox.clone()).expect("state dir");
        let record = backup_now(&c).await.expect("a cycle").expect("due");
        assert!(record.succeeded(), "{record:?}");
        assert_eq!(stacks.calls(), ["stop nextcloud", "start nextcloud app,db"]);
        let state = StateDir::open(&dir).expect("state dir");
        assert_eq!(
            state.load().expect("marker"),
            None,
            "cleared once the stacks run"
        );
        let history = state.recent(5).expect("history");
        assert_eq!(history.last().map(|r| r.outcome), Some(Outcome::Done));
        let kinds: Vec<NoticeKind> = inbox.notices().iter().map(|n| n.event).collect();
        assert_eq!(kinds, [NoticeKind::Done]);
        assert_eq!(c.overview().last.map(|r| r.cycle_id), Some(record.cycle_id));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_crashed_cycle_is_recovered_from_the_real_state_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        let left = felhom_marker::Marker::new(
            "c-crashed",
            chrono::Utc::now(),
            vec![felhom_marker::MarkedStack::new(
                "immich",
                vec!["server".into()],
                vec![],
            )],
        );
        StateDir::open(&dir)
            .expect("state dir")
            .save(&left)
            .expect("a marker left");
        let stacks = Arc::new(FakeStacks::running([("immich", &["server"][..])]));
        let inbox = Arc::new(Inbox::default());
        let c = controller(&dir, stacks.clone(), vec![], inbox.clone()).expect("state dir");
        let recovery = c
            .recover(&CancellationToken::new())
            .await
            .expect("the lock is free");
        let record = recovery.record.expect("the marker's cycle");
        assert_eq!(record.outcome, Outcome::Recovered);
        assert!(recovery.problems.is_empty(), "{:?}", recovery.problems);
        assert!(
            stacks.calls().contains(&"start immich server".to_owned()),
            "{:?}",
            stacks.calls()
        );
        assert_eq!(inbox.notices()[0].event, NoticeKind::Recovered);
    }
}
