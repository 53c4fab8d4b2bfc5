//! SPEC §2 rule 2, the bound: each step of the down half runs in its own task, and the driver
//! races it against the `max_quiesce` deadline, the cancellation and the task's panic,
//! aborting the task when any of them fires. The bound is enforced here, outside the code it
//! bounds, so it holds even when a call inside a step never returns.

use super::Driver;
use crate::machine::Event;
use crate::progress::Level;
use crate::{humanize, LANDING};
use std::future::Future;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

impl Driver<'_> {
    /// Runs one step of the down half in its own task, raced against the deadline, the
    /// cancellation and the task's panic; whichever ends first is the event. The step begins
    /// once the marker writes before it have landed (the phase, the backup's id), which
    /// races the same deadline.
    pub(super) async fn bounded(
        &mut self,
        step: impl Future<Output = Event> + Send + 'static,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        let mut step = Some(step);
        let mut task: Option<JoinHandle<Event>> = None;
        let (event, why) = loop {
            if task.is_none() && !self.writer.pending() {
                task = step.take().map(|s| tokio::spawn(s.in_current_span()));
            }
            tokio::select! {
                joined = join(&mut task) => match joined {
                    Ok(event) => {
                        self.drain();
                        return event;
                    }
                    Err(e) => break (Event::Panicked, format!("the cycle's task failed: {e}")),
                },
                Some(progress) = self.progress.recv() => self.apply(progress),
                landed = self.writer.landed() => self.landed(landed),
                () = sleep_until(deadline) => break (
                    Event::Bound,
                    format!("max_quiesce ({}) reached: resuming", humanize(self.shared.config.max_quiesce)),
                ),
                () = cancel.cancelled() => break (Event::Cancelled, "cancelled: resuming".to_owned()),
            }
        };
        if let Some(mut task) = task.filter(|t| !t.is_finished()) {
            task.abort();
            // Let the aborted task unwind (its child processes are killed on drop), but never
            // wait for it long: the resume matters more.
            let _ = timeout(LANDING, &mut task).await;
        }
        // What the task sent before it ended is applied: which stops had begun.
        // A step aborted while it waited for a write no longer hears of it.
        self.drain();
        self.note(Level::Warn, why);
        event
    }
}

/// The task's end, or never when there is no task yet.
async fn join(task: &mut Option<JoinHandle<Event>>) -> Result<Event, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
