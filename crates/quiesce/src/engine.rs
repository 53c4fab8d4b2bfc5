//! An engine that cannot be reached is waited for, not counted (SPEC §2 rule 6): while it is
//! away no start attempt is spent and the marker is kept; the daemon waits as long as it
//! takes, `once` and `recover` up to [`crate::CycleConfig::engine_wait`].

use crate::backoff::Backoff;
use crate::humanize;
use crate::observer::{Notice, NoticeKind};
use crate::overview::Shown;
use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// The first pause after the engine did not answer.
const FIRST_LOOK: Duration = Duration::from_secs(1);
/// The longest pause between two looks at an engine that is away: it is back within this
/// much of its return.
const LOOK_CAP: Duration = Duration::from_secs(30);

/// The pauses between two tries of a start while the engine is away.
pub(crate) fn looks() -> Backoff {
    Backoff::new(FIRST_LOOK, 2.0, LOOK_CAP)
}

/// The engine's absences as this process sees them: at most one at a time, told once,
/// given up on once.
#[derive(Debug)]
pub(crate) struct EngineAbsence {
    now: Mutex<Option<Absence>>,
    /// How long a wait lasts; `None`: as long as it takes.
    limit: Option<Duration>,
}

/// One absence of the engine.
#[derive(Debug, Clone, Copy)]
struct Absence {
    /// When it began, for the bound (tokio's clock).
    began: Instant,
    /// When it began, for people.
    since: DateTime<Utc>,
    /// The wait ended unanswered (bound or cancellation) and was reported.
    gave_up: bool,
}

/// Who waits for the engine, for the notice: the cycle and its stacks still down.
#[derive(Debug, Clone, Default)]
pub(crate) struct Waiting {
    pub(crate) cycle_id: Option<String>,
    pub(crate) stacks: Vec<String>,
}

impl EngineAbsence {
    pub(crate) fn new(limit: Option<Duration>) -> Self {
        EngineAbsence {
            now: Mutex::new(None),
            limit,
        }
    }

    fn now(&self) -> MutexGuard<'_, Option<Absence>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engine did not answer (`why`): waits for the next look, and says so once per
    /// absence (log, overview, an `engine_unreachable` notice, which goes out while stacks are
    /// still down: see [`crate::Observer::notice`]). `false` when the wait is over without an
    /// answer — past the limit, or cancelled: the caller keeps the marker.
    pub(crate) async fn wait(
        &self,
        shown: &Shown,
        waiting: &Waiting,
        why: &str,
        pause: &mut Backoff,
        cancel: &CancellationToken,
    ) -> bool {
        let (absence, new) = self.begin();
        if new {
            self.tell(shown, absence, waiting, why);
        }
        let waited = absence.began.elapsed();
        let since = absence.since.to_rfc3339();
        let over = match self.limit {
            Some(limit) if waited >= limit => Some(format!(
                "the docker engine did not answer within {} (waiting since {since}): giving up with the marker kept; the daemon or `felhom-controller recover` brings the stacks back once it answers",
                humanize(limit)
            )),
            _ if cancel.is_cancelled() => Some(format!(
                "told to stop while waiting for the docker engine (since {since}): the marker is kept; the next start brings the stacks back once it answers"
            )),
            _ => None,
        };
        if let Some(message) = over {
            if self.give_up() {
                tracing::error!("{message}");
            }
            return false;
        }
        let delay = match self.limit {
            Some(limit) => pause.delay().min(limit - waited),
            None => pause.delay(),
        };
        tokio::select! {
            () = sleep(delay) => {}
            () = cancel.cancelled() => {}
        }
        pause.grow();
        true
    }

    /// A stacks call got an answer from the engine: an absence, if any, is over.
    pub(crate) fn answers(&self, shown: &Shown) {
        let Some(absence) = self.now().take() else {
            return;
        };
        tracing::info!(
            since = %absence.since.to_rfc3339(),
            "the docker engine answers again after {}s",
            (Utc::now() - absence.since).num_seconds()
        );
        shown.set(|o| o.engine_unreachable_since = None);
    }

    /// The absence under way; `true` when it begins now.
    fn begin(&self) -> (Absence, bool) {
        let mut now = self.now();
        match *now {
            Some(absence) => (absence, false),
            None => {
                let absence = Absence {
                    began: Instant::now(),
                    since: Utc::now(),
                    gave_up: false,
                };
                *now = Some(absence);
                (absence, true)
            }
        }
    }

    /// The wait for the absence under way ended unanswered; `true` the first time.
    fn give_up(&self) -> bool {
        match self.now().as_mut() {
            Some(absence) if !absence.gave_up => {
                absence.gave_up = true;
                true
            }
            _ => false,
        }
    }

    /// Says once that the engine is away.
    fn tell(&self, shown: &Shown, absence: Absence, waiting: &Waiting, why: &str) {
        let how_long = match self.limit {
            Some(limit) => format!("up to {}", humanize(limit)),
            None => "as long as it takes".to_owned(),
        };
        let since = absence.since.to_rfc3339();
        tracing::error!(
            since = %since,
            "waiting for the engine since {since}: the docker engine cannot be reached ({why}); no start attempt is spent while it is away, the marker is kept, waiting {how_long}"
        );
        shown.set(|o| o.engine_unreachable_since = Some(absence.since));
        shown.notice(&Notice {
            event: NoticeKind::EngineUnreachable,
            cycle_id: waiting.cycle_id.clone(),
            outcome: None,
            stacks: waiting.stacks.clone(),
            stranded: Vec::new(),
            message: format!(
                "the docker engine cannot be reached since {since}: stacks wait to be started"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Recorder;
    use std::sync::Arc;

    fn shown() -> (Shown, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Shown::new(recorder.clone()), recorder)
    }

    #[tokio::test(start_paused = true)]
    async fn an_absence_is_told_once_and_ends_when_the_engine_answers() {
        let (shown, recorder) = shown();
        let engine = EngineAbsence::new(None);
        let waiting = Waiting {
            cycle_id: Some("c-1".into()),
            stacks: vec!["alpha".into()],
        };
        let mut pause = looks();
        let cancel = CancellationToken::new();
        for _ in 0..3 {
            assert!(
                engine
                    .wait(&shown, &waiting, "no socket", &mut pause, &cancel)
                    .await
            );
        }
        assert_eq!(recorder.kinds(), [NoticeKind::EngineUnreachable]);
        assert_eq!(recorder.notices()[0].stacks, ["alpha"]);
        assert!(shown.get().engine_unreachable_since.is_some());
        engine.answers(&shown);
        assert_eq!(shown.get().engine_unreachable_since, None);
        // A new absence is a new notice.
        assert!(
            engine
                .wait(&shown, &waiting, "no socket", &mut looks(), &cancel)
                .await
        );
        assert_eq!(recorder.kinds().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limited_wait_ends_at_its_limit_and_is_given_up_once() {
        let (shown, _) = shown();
        let engine = EngineAbsence::new(Some(Duration::from_secs(10)));
        let (mut pause, cancel) = (looks(), CancellationToken::new());
        let t0 = Instant::now();
        while engine
            .wait(&shown, &Waiting::default(), "away", &mut pause, &cancel)
            .await
        {}
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(10),
            "1 + 2 + 4, then the 3 s left"
        );
        assert!(!engine.give_up(), "given up already");
        assert!(shown.get().engine_unreachable_since.is_some(), "still away");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancellation_ends_the_wait() {
        let (shown, _) = shown();
        let engine = EngineAbsence::new(None);
        let cancel = CancellationToken::new();
        cancel.cancel();
        let t0 = Instant::now();
        assert!(
            !engine
                .wait(&shown, &Waiting::default(), "away", &mut looks(), &cancel)
                .await
        );
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }
}
