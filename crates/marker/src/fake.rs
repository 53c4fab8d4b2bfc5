//! A recording fake of [`MarkerStore`], [`HistoryStore`] and [`StrandedStore`] for other
//! crates' tests and examples (feature `mock`): the marker, the history and the stranded list
//! in memory, every write logged (`save Quiescing a,b`, `clear`, `record Done`, `strand a`,
//! `unstrand a`), and every saved marker kept.

use crate::{
    CycleRecord, HistoryStore, Marker, MarkerError, MarkerStore, Stranded, StrandedStack,
    StrandedStore,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// A log shared between fakes, so a test sees the order of everything that happened.
pub type CallLog = Arc<Mutex<Vec<String>>>;

/// A state directory in memory; see the module docs.
#[derive(Debug, Default)]
pub struct FakeState {
    marker: Mutex<Option<Marker>>,
    saved: Mutex<Vec<Marker>>,
    history: Mutex<Vec<CycleRecord>>,
    stranded: Mutex<Vec<StrandedStack>>,
    log: CallLog,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked mid-call must not hide its own failure behind a poisoned lock.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeState {
    /// A state that holds `marker`, as a crashed controller leaves it.
    pub fn with_marker(marker: Marker) -> Self {
        FakeState {
            marker: Mutex::new(Some(marker)),
            ..FakeState::default()
        }
    }

    /// Holds `stacks` as stranded, as an earlier cycle left them.
    pub fn with_stranded(self, stacks: Vec<StrandedStack>) -> Self {
        *locked(&self.stranded) = stacks;
        self
    }

    /// The stranded stacks now.
    pub fn stranded_now(&self) -> Vec<StrandedStack> {
        locked(&self.stranded).clone()
    }

    /// Logs into `log` (shared with other fakes) instead of a log of its own.
    pub fn log_into(mut self, log: CallLog) -> Self {
        self.log = log;
        self
    }

    /// The marker now.
    pub fn marker(&self) -> Option<Marker> {
        locked(&self.marker).clone()
    }

    /// Every marker saved, in order.
    pub fn saved(&self) -> Vec<Marker> {
        locked(&self.saved).clone()
    }

    /// The history, oldest first.
    pub fn records(&self) -> Vec<CycleRecord> {
        locked(&self.history).clone()
    }

    /// Every write so far, in order.
    pub fn calls(&self) -> Vec<String> {
        locked(&self.log).clone()
    }
}

impl MarkerStore for FakeState {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        Ok(self.marker())
    }

    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        let names: Vec<&str> = marker.stacks.iter().map(|s| s.name.as_str()).collect();
        locked(&self.log).push(format!("save {:?} {}", marker.phase, names.join(",")));
        locked(&self.saved).push(marker.clone());
        *locked(&self.marker) = Some(marker.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), MarkerError> {
        locked(&self.log).push("clear".to_owned());
        *locked(&self.marker) = None;
        Ok(())
    }
}

impl HistoryStore for FakeState {
    fn append(&self, record: &CycleRecord) -> Result<(), MarkerError> {
        locked(&self.log).push(format!("record {:?}", record.outcome));
        locked(&self.history).push(record.clone());
        Ok(())
    }

    fn recent(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError> {
        let all = locked(&self.history);
        Ok(all[all.len().saturating_sub(n)..].to_vec())
    }
}

impl StrandedStore for FakeState {
    fn stranded(&self) -> Result<Stranded, MarkerError> {
        Ok(Stranded {
            stacks: self.stranded_now(),
            moved_aside: None,
        })
    }

    fn strand(&self, stacks: &[StrandedStack]) -> Result<Stranded, MarkerError> {
        let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
        locked(&self.log).push(format!("strand {}", names.join(",")));
        {
            let mut list = locked(&self.stranded);
            for stack in stacks {
                match list.iter_mut().find(|s| s.name == stack.name) {
                    Some(kept) => *kept = stack.clone(),
                    None => list.push(stack.clone()),
                }
            }
        }
        self.stranded()
    }

    fn unstrand(&self, name: &str) -> Result<Stranded, MarkerError> {
        locked(&self.log).push(format!("unstrand {name}"));
        locked(&self.stranded).retain(|s| s.name != name);
        self.stranded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_and_logs_what_is_written() {
        let state = FakeState::default();
        let marker = Marker::new("c-1", chrono::Utc::now(), vec![]);
        state.save(&marker).expect("save");
        assert_eq!(state.load().expect("load"), Some(marker));
        state.clear().expect("clear");
        assert_eq!(state.load().expect("load"), None);
        assert_eq!(state.calls(), ["save Quiescing ", "clear"]);
        assert_eq!(state.saved().len(), 1);
    }
}
