//! The marker's one writer: a task of its own that puts each state the driver hands it on
//! disk, in the order given, off the runtime's worker threads. Handing a state over never
//! waits, so a slow or hung disk cannot hold up the driver's race against the bound; the
//! driver hears of each write when it has landed ([`Landed`]) and decides where to wait for
//! it.
//!
//! The marker store's `save` and `clear` are called in [`put_on_disk`] and nowhere else in
//! this crate (`tests/one_writer.rs` fails when another call appears).

use felhom_marker::{Marker, MarkerError, MarkerStore};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::Instrument;

/// What the marker on disk is to become: `Some` saves it, `None` removes it.
type State = Option<Marker>;

/// How one write ended.
#[derive(Debug)]
pub(crate) struct Landed {
    /// The number of the state the write put on disk: every state handed over up to it is
    /// settled.
    pub(crate) seq: u64,
    /// Whether it removed the marker.
    pub(crate) cleared: bool,
    pub(crate) result: Result<(), WriteError>,
}

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The store said no.
    Store(MarkerError),
    /// The store's call panicked (a bug): nothing is known of the file.
    Panicked(String),
}

impl WriteError {
    /// The failure as a line for the record.
    pub(crate) fn describe(&self) -> String {
        match self {
            WriteError::Store(e) => crate::error_chain(e),
            WriteError::Panicked(why) => format!("the marker store failed: {why}"),
        }
    }
}

/// The driver's end of the writer.
#[derive(Debug)]
pub(crate) struct MarkerWriter {
    states: mpsc::UnboundedSender<(u64, State)>,
    landed: mpsc::UnboundedReceiver<Landed>,
    /// The number of the last state handed over.
    handed: u64,
    /// The number of the newest state known to have landed.
    settled: u64,
}

impl MarkerWriter {
    /// Starts the writer over `store`. It ends once this end is dropped and what was handed
    /// over is written.
    pub(crate) fn start(store: Arc<dyn MarkerStore>) -> Self {
        let (states, queue) = mpsc::unbounded_channel();
        let (done, landed) = mpsc::unbounded_channel();
        tokio::spawn(write_in_order(store, queue, done).in_current_span());
        MarkerWriter {
            states,
            landed,
            handed: 0,
            settled: 0,
        }
    }

    /// Hands `state` over; never waits. Returns its number.
    pub(crate) fn hand_over(&mut self, state: State) -> u64 {
        self.handed += 1;
        if self.states.send((self.handed, state)).is_err() {
            // The writer is gone (the runtime is shutting down): nothing will land.
            self.settled = self.handed;
        }
        self.handed
    }

    /// The number of the last state handed over (0: none).
    pub(crate) fn handed(&self) -> u64 {
        self.handed
    }

    /// The number of the newest state known to have landed: every one up to it is settled.
    pub(crate) fn settled(&self) -> u64 {
        self.settled
    }

    /// Whether a state handed over has not landed yet.
    pub(crate) fn pending(&self) -> bool {
        self.settled < self.handed
    }

    /// The next write that lands; waits forever when none is pending.
    pub(crate) async fn landed(&mut self) -> Landed {
        if !self.pending() {
            return std::future::pending().await;
        }
        match self.landed.recv().await {
            Some(landed) => {
                self.settled = self.settled.max(landed.seq);
                landed
            }
            None => {
                self.settled = self.handed;
                Landed {
                    seq: self.handed,
                    cleared: false,
                    result: Err(WriteError::Panicked("the marker writer stopped".into())),
                }
            }
        }
    }
}

/// The writer's task: each state in turn, every one of them (a few per stack and cycle), so
/// that the disk goes through the same states as the cycle.
async fn write_in_order(
    store: Arc<dyn MarkerStore>,
    mut queue: mpsc::UnboundedReceiver<(u64, State)>,
    done: mpsc::UnboundedSender<Landed>,
) {
    while let Some((seq, state)) = queue.recv().await {
        let cleared = state.is_none();
        let result = put_on_disk(store.clone(), state).await;
        // The driver may be gone (it finished, or was dropped): the write still happened.
        let _ = done.send(Landed {
            seq,
            cleared,
            result,
        });
    }
}

/// The one call of the marker store's writes.
async fn put_on_disk(store: Arc<dyn MarkerStore>, state: State) -> Result<(), WriteError> {
    let call = tokio::task::spawn_blocking(move || match &state {
        Some(marker) => store.save(marker),
        None => store.clear(),
    });
    match call.await {
        Ok(result) => result.map_err(WriteError::Store),
        Err(e) => Err(WriteError::Panicked(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use felhom_marker::fake::FakeState;

    fn marker(names: &[&str]) -> Marker {
        let stacks = names
            .iter()
            .map(|n| felhom_marker::MarkedStack::new(*n, vec![], vec![]))
            .collect();
        Marker::new("c-1", chrono::Utc::now(), stacks)
    }

    async fn settle(writer: &mut MarkerWriter) -> Vec<Landed> {
        let mut all = Vec::new();
        while writer.pending() {
            all.push(writer.landed().await);
        }
        all
    }

    #[tokio::test]
    async fn every_state_lands_in_the_order_handed_over() {
        let state = Arc::new(FakeState::default());
        let mut writer = MarkerWriter::start(state.clone());
        writer.hand_over(Some(marker(&["a", "b"])));
        writer.hand_over(Some(marker(&["b"])));
        let last = writer.hand_over(None);
        assert!(writer.pending());
        let landed = settle(&mut writer).await;
        assert_eq!(
            landed.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [1, 2, last]
        );
        assert!(landed.iter().all(|l| l.result.is_ok()));
        assert_eq!(
            landed.iter().map(|l| l.cleared).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(
            state.calls(),
            ["save Quiescing a,b", "save Quiescing b", "clear"]
        );
        assert_eq!(state.marker(), None);
        assert_eq!(writer.settled(), writer.handed());
    }

    /// A store whose writes fail, and whose clear panics.
    struct Broken;
    impl MarkerStore for Broken {
        fn load(&self) -> Result<Option<Marker>, MarkerError> {
            Ok(None)
        }
        fn save(&self, _: &Marker) -> Result<(), MarkerError> {
            Err(MarkerError::Io {
                action: "writing the marker",
                path: "/state/marker.json".into(),
                source: std::io::Error::other("No space left on device"),
            })
        }
        fn clear(&self) -> Result<(), MarkerError> {
            panic!("a bug in the store")
        }
    }

    #[tokio::test]
    async fn a_failed_or_panicking_write_is_reported_and_the_writer_goes_on() {
        let mut writer = MarkerWriter::start(Arc::new(Broken));
        writer.hand_over(Some(marker(&["a"])));
        let first = writer.landed().await;
        let failed = first.result.expect_err("no space");
        assert!(
            failed.describe().contains("No space left on device"),
            "{failed:?}"
        );
        writer.hand_over(None);
        let second = writer.landed().await;
        assert!(second.cleared);
        let failed = second.result.expect_err("panicked");
        assert!(failed.describe().contains("panic"), "{failed:?}");
        writer.hand_over(Some(marker(&["a"])));
        assert!(writer.landed().await.result.is_err(), "still writing");
        assert!(!writer.pending());
    }
}
