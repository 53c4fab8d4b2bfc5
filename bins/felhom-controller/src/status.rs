//! What the state directory says, read without changing anything: the marker, who holds the
//! lock, the stranded stacks. Shared by `status`, `recover --if-stale` and `/metrics`, so that
//! all three judge "needs a person" and "stale" alike.

use crate::errors;
use chrono::Utc;
use felhom_marker::{Marker, StateView, StrandedStack};
use std::time::Duration;

/// How much older than `max_quiesce` a marker must be before `recover --if-stale` takes it
/// (SPEC §5): a live cycle resumes by `max_quiesce`, and its marker goes soon after.
pub(crate) const STALE_MARGIN: Duration = Duration::from_secs(60);

/// The state directory at one moment.
#[derive(Debug)]
pub(crate) struct Look {
    /// The marker; `Err` when it is there but cannot be used (why).
    pub marker: Result<Option<Marker>, String>,
    /// How old the marker is: from its `started_at` (of a damaged marker, as far as it can be
    /// read: else the file's last write). `None`: no marker.
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
    pub(crate) fn at(state: &StateView) -> Look {
        let mut look = Look::files(state);
        look.holder = state
            .lock_holder()
            .unwrap_or_else(|e| Some(format!("unknown ({})", errors::chain(&e))));
        look
    }

    /// [`Look::at`] without probing the lock (`holder` is `None`: not asked), for `/metrics`:
    /// a scrape must not even briefly share the lock a starting cycle takes.
    pub(crate) fn files(state: &StateView) -> Look {
        let mut problems = Vec::new();
        let (marker, marker_age) = match state.marker() {
            Ok(None) => (Ok(None), None),
            Ok(Some(seen)) => {
                let age = (Utc::now() - seen.marker.started_at)
                    .to_std()
                    .unwrap_or_default();
                let marker = match seen.damaged {
                    None => Ok(Some(seen.marker)),
                    Some(why) => Err(damaged_marker(
                        state,
                        &seen.marker,
                        &why,
                        seen.unreadable_stacks,
                    )),
                };
                (marker, Some(age))
            }
            Err(e) => (Err(errors::chain(&e)), None),
        };
        let stranded = match state.stranded() {
            Ok(view) => {
                if let Some(why) = view.damaged {
                    problems.push(format!("the stranded list is damaged: {why}"));
                }
                view.stacks
            }
            Err(e) => {
                problems.push(errors::chain(&e));
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

/// What `status` says of a marker that cannot be used as it is: the next recovery salvages it
/// (moves it aside, brings back the stacks still readable in it).
fn damaged_marker(
    state: &StateView,
    readable: &Marker,
    why: &felhom_marker::Unreadable,
    unreadable_stacks: usize,
) -> String {
    let stacks: Vec<&str> = readable.stacks.iter().map(|s| s.name.as_str()).collect();
    format!(
        "the marker {} {why}; it was left in place (stacks still readable: {}{})",
        state.path().join("marker.json").display(),
        if stacks.is_empty() {
            "none".to_owned()
        } else {
            stacks.join(", ")
        },
        match unreadable_stacks {
            0 => String::new(),
            n => format!("; {n} unreadable"),
        }
    )
}

fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}
