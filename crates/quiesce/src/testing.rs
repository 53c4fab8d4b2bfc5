//! Test doubles for tests of this crate and of tools that embed it (feature `mock`): a lock
//! a test can hold "from another process" ([`FakeLock`]), an observer that keeps everything
//! it is told ([`Recorder`]), and [`Collaborators::in_memory`] over the marker crate's
//! [`FakeState`] (which is also a [`CycleLock`] here: one that is always free).

use crate::machine::Phase;
use crate::{Collaborators, CycleLock, Notice, NoticeKind, Observer, Overview};
use felhom_agentapi::AgentApi;
use felhom_marker::fake::FakeState;
use felhom_marker::LockError;
use felhom_stacks::Stacks;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::time::Instant;

/// The pid a [`FakeLock`] held "elsewhere" names.
pub const OTHER_PID: u32 = 4242;

/// The cycle lock as a flag. Clones share it, so a test keeps one to take the lock as
/// another process would ([`FakeLock::hold_elsewhere`]) and to see that a cycle let go of it.
#[derive(Debug, Clone, Default)]
pub struct FakeLock(Arc<AtomicBool>);

impl FakeLock {
    /// Another process takes the lock: every acquire fails, naming pid [`OTHER_PID`].
    pub fn hold_elsewhere(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// The other process ends (its lock dies with it).
    pub fn release_elsewhere(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether anyone holds the lock.
    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Holds a [`FakeLock`] until dropped.
#[derive(Debug)]
struct FakeGuard(Arc<AtomicBool>);

impl Drop for FakeGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl CycleLock for FakeLock {
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, LockError> {
        if self.0.swap(true, Ordering::SeqCst) {
            return Err(LockError::Held {
                path: "lock".into(),
                pid: OTHER_PID.to_string(),
            });
        }
        Ok(Box::new(FakeGuard(self.0.clone())))
    }
}

/// A state in memory has no other process to share a lock with: it is always free. A test
/// that needs the lock held elsewhere uses [`FakeLock`].
impl CycleLock for FakeState {
    fn acquire(&self) -> Result<Box<dyn Debug + Send + Sync>, LockError> {
        Ok(Box::new(()))
    }
}

impl Collaborators {
    /// The collaborators of a controller whose state (marker, history, stranded list, lock)
    /// is `state`, in memory, and whom nobody observes. Replace a field to change one.
    pub fn in_memory(
        agent: Option<Arc<dyn AgentApi>>,
        stacks: Arc<dyn Stacks>,
        state: Arc<FakeState>,
    ) -> Self {
        Collaborators {
            agent,
            stacks,
            marker: state.clone(),
            history: state.clone(),
            stranded: state.clone(),
            lock: state,
            observer: Arc::new(()),
        }
    }
}

/// A log of calls shared with the other crates' fakes (`log_into`).
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// An [`Observer`] that keeps everything it is told: the overview as last told, each phase
/// as it changed, the time of every tick, and every notice — with, when it watches a call log,
/// how many calls had been logged when the notice came.
#[derive(Debug, Default)]
pub struct Recorder {
    overview: Mutex<Overview>,
    phases: Mutex<Vec<Option<Phase>>>,
    ticks: Mutex<Vec<Instant>>,
    notices: Mutex<Vec<(Notice, usize)>>,
    calls: Option<CallLog>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-call must not hide its own failure behind a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    /// A recorder that notes, at each notice, how many calls `log` held.
    pub fn watching(log: CallLog) -> Self {
        Recorder {
            calls: Some(log),
            ..Recorder::default()
        }
    }

    /// The overview as it was last told.
    pub fn overview(&self) -> Overview {
        locked(&self.overview).clone()
    }

    /// The phases told, each change once (`None`: no cycle runs).
    pub fn phases(&self) -> Vec<Option<Phase>> {
        locked(&self.phases).clone()
    }

    /// When each tick came (tokio's clock).
    pub fn ticks(&self) -> Vec<Instant> {
        locked(&self.ticks).clone()
    }

    /// The notices, in order.
    pub fn notices(&self) -> Vec<Notice> {
        locked(&self.notices)
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// What each notice was about, in order.
    pub fn kinds(&self) -> Vec<NoticeKind> {
        locked(&self.notices).iter().map(|(n, _)| n.event).collect()
    }

    /// For each notice, how many calls the watched log held when it came (0 unwatched).
    pub fn calls_at_notices(&self) -> Vec<usize> {
        locked(&self.notices)
            .iter()
            .map(|(_, seen)| *seen)
            .collect()
    }
}

impl Observer for Recorder {
    fn changed(&self, overview: &Overview) {
        let mut phases = locked(&self.phases);
        if phases.last() != Some(&overview.phase) {
            phases.push(overview.phase);
        }
        *locked(&self.overview) = overview.clone();
    }

    fn tick(&self) {
        locked(&self.ticks).push(Instant::now());
    }

    fn notice(&self, notice: &Notice) {
        let seen = self.calls.as_ref().map_or(0, |log| locked(log).len());
        locked(&self.notices).push((notice.clone(), seen));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_lock_is_single_flight_and_can_be_held_elsewhere() {
        let lock = FakeLock::default();
        let guard = lock.acquire().expect("free");
        assert!(lock.acquire().is_err(), "held by the first taker");
        drop(guard);
        assert!(!lock.is_held());
        lock.hold_elsewhere();
        let err = lock.acquire().expect_err("held elsewhere");
        assert!(err.to_string().contains(&OTHER_PID.to_string()), "{err}");
        lock.release_elsewhere();
        assert!(lock.acquire().is_ok());
    }
}
