//! What the state directory says, read without changing anything: the marker, who holds the
//! lock, the stranded stacks. Shared by `status`, `recover --if-stale` and `/metrics`, so that
//! all three judge "needs a person" and "stale" alike.

use chrono::Utc;
use felhom_marker::{Marker, StateDir, StateLock, StrandedStack};
use std::time::Duration;

/// How much older than `max_quiesce` a marker must be before `recover --if-stale` takes it
/// (SPEC §5): a live cycle resumes by `max_quiesce`, and its marker goes soon after.
pub(crate) const STALE_MARGIN: Duration = Duration::from_secs(60);

/// The state directory at one moment.
#[derive(Debug)]
pub(crate) struct Look {
    /// The marker; `Err` when it is there but cannot be used (why).
    pub marker: Result<Option<Marker>, String>,
    /// How old the marker is: from its `started_at`, or from the file's time when it cannot be
    /// read. `None`: no marker.
    pub marker_age: Option<Duration>,
    /// The pid holding the lock (a cycle or a recovery runs), if any.
    pub holder: Option<String>,
    /// The persistent stranded list; of a damaged file, what can be read.
    pub stranded: Vec<StrandedStack>,
    /// Why the state directory itself could not be read in full, if it could not.
    pub problems: Vec<String>,
}

impl Look {
    /// Looks at `state`, the lock holder included; never writes, never moves a file aside.
    pub(crate) fn at(state: &StateDir) -> Look {
        let mut look = Look::files(state);
        look.holder = StateLock::holder(state).unwrap_or_else(|e| Some(format!("unknown ({e})")));
        look
    }

    /// [`Look::at`] without probing the lock (`holder` is `None`: not asked), for `/metrics`:
    /// a scrape must not even briefly share the lock a starting cycle takes.
    pub(crate) fn files(state: &StateDir) -> Look {
        let mut problems = Vec::new();
        let marker = state.peek().map_err(|e| e.to_string());
        let marker_age = match &marker {
            Ok(Some(m)) => Some((Utc::now() - m.started_at).to_std().unwrap_or_default()),
            Ok(None) => None,
            Err(_) => file_age(&state.path().join(MARKER_FILE)),
        };
        let stranded = match state.peek_stranded() {
            Ok(view) => {
                if let Some(why) = view.damaged {
                    problems.push(format!("the stranded list is damaged: {why}"));
                }
                view.stacks
            }
            Err(e) => {
                problems.push(e.to_string());
                Vec::new()
            }
        };
        Look {
            marker,
            marker_age,
            holder: None,
            stranded,
            problems,
        }
    }

    /// The stranded stacks by name: the persistent list (SPEC §2 rule 6), kept across cycles
    /// and restarts until each runs again.
    pub(crate) fn stranded_names(&self) -> Vec<String> {
        self.stranded.iter().map(|s| s.name.clone()).collect()
    }

    /// Whether a marker is there (readable or not).
    fn has_marker(&self) -> bool {
        !matches!(self.marker, Ok(None))
    }

    /// What needs a person now (SPEC §5 `status` exit 1): stranded stacks, a marker that no
    /// live process holds, a state directory that cannot be read. Empty: all is well.
    pub(crate) fn needs_attention(&self) -> Vec<String> {
        let mut why = Vec::new();
        let stranded = self.stranded_names();
        if !stranded.is_empty() {
            why.push(format!("stranded stacks: {}", stranded.join(", ")));
        }
        if self.has_marker() && self.holder.is_none() {
            why.push(format!(
                "a marker that no live process holds{}: its stacks may be down \
                 (`felhom-controller recover`)",
                self.marker_age
                    .map(|a| format!(" ({} old)", whole_seconds(a)))
                    .unwrap_or_default()
            ));
        }
        why.extend(self.problems.iter().cloned());
        why
    }

    /// Why `recover --if-stale` leaves things alone; `None` when it should recover: a marker
    /// older than `max_quiesce` + [`STALE_MARGIN`] that no live process holds.
    pub(crate) fn leave_alone(&self, max_quiesce: Duration) -> Option<String> {
        if !self.has_marker() {
            return Some("no marker".to_owned());
        }
        if let Some(pid) = &self.holder {
            return Some(format!("the lock is held by pid {pid}, a live process"));
        }
        let limit = max_quiesce + STALE_MARGIN;
        match self.marker_age {
            Some(age) if age > limit => None,
            age => Some(format!(
                "the marker is {} old, not older than max_quiesce + {}s ({})",
                age.map_or_else(|| "of unknown age".to_owned(), whole_seconds),
                STALE_MARGIN.as_secs(),
                whole_seconds(limit)
            )),
        }
    }
}

/// The marker's file name in the state directory (felhom-marker's layout).
const MARKER_FILE: &str = "marker.json";

fn file_age(path: &std::path::Path) -> Option<Duration> {
    let modified = std::fs::symlink_metadata(path).ok()?.modified().ok()?;
    Some(modified.elapsed().unwrap_or_default())
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
