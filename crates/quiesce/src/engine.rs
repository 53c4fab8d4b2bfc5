//! An engine that cannot be reached is waited for, not counted (SPEC §2 rule 6): while it is
//! away no start attempt is spent and the marker is kept; the daemon waits as long as it
//! takes, `once` and `recover` up to [`crate::CycleConfig::engine_wait`].

use crate::backoff::Backoff;
use crate::cycle::SharedCycle;
use crate::observer::{Notice, NoticeKind};
use crate::{humanize, Controller};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// The first pause after the engine did not answer.
const FIRST_LOOK: Duration = Duration::from_secs(1);
/// The longest pause between two looks at an engine that is away: it is back within this
/// much of its return.
pub(crate) const ENGINE_LOOK_CAP: Duration = Duration::from_secs(30);

/// The pauses between two tries of a start while the engine is away.
pub(crate) fn backoff() -> Backoff {
    Backoff::new(FIRST_LOOK, 2.0, ENGINE_LOOK_CAP)
}

/// One absence of the engine, as this process saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Absence {
    /// When it began, for the bound (tokio's clock).
    began: Instant,
    /// When it began, for people.
    since: DateTime<Utc>,
    /// The wait ended unanswered (bound or cancellation) and was reported.
    gave_up: bool,
}

impl Controller {
    /// The engine did not answer (`why`): waits for the next look, and says so once per
    /// absence (log, live status, an `engine_unreachable` notice). `false` when the wait is
    /// over without an answer: past [`crate::CycleConfig::engine_wait`], or cancelled; the
    /// caller keeps the marker.
    pub(crate) async fn await_engine(
        &self,
        cycle: Option<&SharedCycle>,
        why: &str,
        pause: &mut Backoff,
        cancel: &CancellationToken,
    ) -> bool {
        let absence = self.engine_absence(cycle, why);
        let waited = absence.began.elapsed();
        let over = match self.config.engine_wait {
            Some(limit) if waited >= limit => Some(format!(
                "the docker engine did not answer within {} (waiting since {}): giving up with the marker kept; the daemon or `felhom-controller recover` brings the stacks back once it answers",
                humanize(limit),
                absence.since.to_rfc3339()
            )),
            _ if cancel.is_cancelled() => Some(format!(
                "told to stop while waiting for the docker engine (since {}): the marker is kept; the next start brings the stacks back once it answers",
                absence.since.to_rfc3339()
            )),
            _ => None,
        };
        if let Some(message) = over {
            let first = match self.tending().engine.as_mut() {
                Some(absence) if !absence.gave_up => {
                    absence.gave_up = true;
                    true
                }
                _ => false,
            };
            if first {
                tracing::error!("{message}");
            }
            return false;
        }
        let delay = match self.config.engine_wait {
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

    /// The absence under way, begun now if none is: the first to see it reports it, and the
    /// notice goes out while stacks are still down (see [`crate::Observer::notice`]).
    fn engine_absence(&self, cycle: Option<&SharedCycle>, why: &str) -> Absence {
        let (absence, new) = {
            let mut tending = self.tending();
            match tending.engine {
                Some(absence) => (absence, false),
                None => {
                    let absence = Absence {
                        began: Instant::now(),
                        since: Utc::now(),
                        gave_up: false,
                    };
                    tending.engine = Some(absence);
                    (absence, true)
                }
            }
        };
        if new {
            let how_long = match self.config.engine_wait {
                Some(limit) => format!("up to {}", humanize(limit)),
                None => "as long as it takes".to_owned(),
            };
            tracing::error!(
                since = %absence.since.to_rfc3339(),
                "waiting for the engine since {}: the docker engine cannot be reached ({why}); no start attempt is spent while it is away, the marker is kept, waiting {how_long}",
                absence.since.to_rfc3339()
            );
            self.set_live(|l| l.engine_unreachable_since = Some(absence.since));
            let (cycle_id, stacks) = match cycle {
                Some(c) => {
                    let c = c.lock();
                    let names = c.marker.stacks.iter().map(|s| s.name.clone()).collect();
                    (Some(c.record.cycle_id.clone()), names)
                }
                None => (None, Vec::new()),
            };
            self.parts.observer.notice(&Notice {
                event: NoticeKind::EngineUnreachable,
                cycle_id,
                outcome: None,
                stacks,
                stranded: Vec::new(),
                message: format!(
                    "the docker engine cannot be reached since {}: stacks wait to be started",
                    absence.since.to_rfc3339()
                ),
            });
        }
        absence
    }

    /// A stacks call got an answer from the engine: an absence, if any, is over.
    pub(crate) fn engine_answers(&self) {
        let Some(absence) = self.tending().engine.take() else {
            return;
        };
        tracing::info!(
            since = %absence.since.to_rfc3339(),
            "the docker engine answers again after {}s",
            (Utc::now() - absence.since).num_seconds()
        );
        self.set_live(|l| l.engine_unreachable_since = None);
    }
}
