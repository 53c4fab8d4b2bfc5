//! What the state directory says, read without changing anything: the marker and its age, who
//! holds the lock, the stranded stacks. Shared by `status`, `recover --if-stale` and
//! `/metrics`, so that all three judge "needs a person" and "stale" alike.

use chrono::{DateTime, Utc};
use felhom_marker::{Marker, StateView, StrandedStack};
use felhom_quiesce::error_chain;
use std::time::Duration;

/// How much older than `max_quiesce` a marker must be before `recover --if-stale` takes it
/// (SPEC §5): a live cycle resumes by `max_quiesce`, and its marker goes soon after.
pub const STALE_MARGIN: Duration = Duration::from_secs(60);

/// The state directory at one moment, as [`Inspection::of`] read it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The marker; `Err` when it is there but cannot be used (why).
    pub marker: Result<Option<Marker>, String>,
    /// How old the marker is, by this machine's clock: from its `started_at` (of a damaged
    /// marker, as far as it can be read: else the file's last write). `None`: no marker.
    pub marker_age: Option<MarkerAge>,
    /// The pid holding the lock (a cycle or a recovery runs), if any; not asked by
    /// [`Inspection::files`].
    pub holder: Option<String>,
    /// The persistent stranded list; of a damaged file, what can be read.
    pub stranded: Vec<StrandedStack>,
    /// Why no new cycle starts with this state directory (another owner, or writable by its
    /// group or others), if none does: its markers are still recovered.
    pub cycles_refused: Option<String>,
    /// Why the state directory itself could not be read in full, if it could not; and a lock
    /// whose holder cannot be told.
    pub problems: Vec<String>,
}

/// A marker's age by the wall clock, which may have been set back since it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerAge {
    /// Written this long ago.
    Past(Duration),
    /// Dated this far ahead of the clock now: the clock was set back (by hand, or by an NTP
    /// correction after a boot with a wrong clock) since it was written. Its true age is
    /// unknown.
    Future(Duration),
}

impl MarkerAge {
    /// The age of a marker started at `started_at`, by the clock at `now`.
    pub fn between(started_at: DateTime<Utc>, now: DateTime<Utc>) -> MarkerAge {
        match (now - started_at).to_std() {
            Ok(age) => MarkerAge::Past(age),
            Err(_) => MarkerAge::Future((started_at - now).to_std().unwrap_or_default()),
        }
    }

    /// The age for the `felhom_marker_age_seconds` gauge: 0 for a marker from the future (its
    /// age is unknown; the daemon and `recover --if-stale` recover it when nobody holds it).
    pub(crate) fn seconds(self) -> Duration {
        match self {
            MarkerAge::Past(age) => age,
            MarkerAge::Future(_) => Duration::ZERO,
        }
    }
}

impl Inspection {
    /// Looks at `state`, the lock holder included; never writes, never moves a file aside.
    /// A lock that cannot be probed (a link where it goes, a permission) is a problem, not a
    /// holder: no live process is known to own the marker, so `recover --if-stale` tries —
    /// and fails loudly if the lock cannot be taken either.
    pub fn of(state: &StateView) -> Inspection {
        let mut look = Inspection::files(state);
        look.holder = state.lock_holder().unwrap_or_else(|e| {
            look.problems.push(format!(
                "who holds the lock cannot be told: {}",
                error_chain(&e)
            ));
            None
        });
        look
    }

    /// [`Inspection::of`] without probing the lock (`holder` is `None`: not asked), for
    /// `/metrics`: a scrape must not even briefly share the lock a starting cycle takes.
    pub fn files(state: &StateView) -> Inspection {
        let mut problems = Vec::new();
        let (marker, marker_age) = match state.marker() {
            Ok(None) => (Ok(None), None),
            Ok(Some(seen)) => {
                let age = MarkerAge::between(seen.marker.started_at, Utc::now());
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
            Err(e) => (Err(error_chain(&e)), None),
        };
        let stranded = match state.stranded() {
            Ok(view) => {
                if let Some(why) = view.damaged {
                    problems.push(format!("the stranded list is damaged: {why}"));
                }
                view.stacks
            }
            Err(e) => {
                problems.push(error_chain(&e));
                Vec::new()
            }
        };
        Inspection {
            marker,
            marker_age,
            holder: None,
            stranded,
            cycles_refused: state.fit_for_new_cycles().err().map(|e| error_chain(&e)),
            problems,
        }
    }

    /// The stranded stacks by name: the persistent list (SPEC §2 rule 6), kept across cycles
    /// and restarts until each runs again.
    pub fn stranded_names(&self) -> Vec<String> {
        self.stranded.iter().map(|s| s.name.clone()).collect()
    }

    /// How many stacks the marker holds down (0 without a readable marker): those with
    /// services to stop or start — not a stack whose every service is kept running, nor one
    /// back already whose `post-resume` hooks are still due (issue 23).
    pub(crate) fn stacks_held(&self) -> usize {
        match &self.marker {
            Ok(Some(m)) => m.stacks.iter().filter(|s| !s.services.is_empty()).count(),
            _ => 0,
        }
    }

    /// Whether a marker is there (readable or not).
    fn has_marker(&self) -> bool {
        !matches!(self.marker, Ok(None))
    }

    /// What needs a person now (SPEC §5 `status` exit 1): stranded stacks, a marker that no
    /// live process holds, a state directory that cannot be read. Empty: all is well.
    pub fn needs_attention(&self) -> Vec<String> {
        let mut why = Vec::new();
        let stranded = self.stranded_names();
        if !stranded.is_empty() {
            why.push(format!("stranded stacks: {}", stranded.join(", ")));
        }
        if self.has_marker() && self.holder.is_none() {
            let age = match self.marker_age {
                Some(MarkerAge::Past(age)) => format!(" ({} old)", whole_seconds(age)),
                Some(MarkerAge::Future(ahead)) => {
                    format!(" (dated {} ahead of this clock)", whole_seconds(ahead))
                }
                None => String::new(),
            };
            why.push(format!(
                "a marker that no live process holds{age}: its stacks may be down \
                 (`felhom-controller recover`)"
            ));
        }
        if let Some(refused) = &self.cycles_refused {
            why.push(format!(
                "no new cycle starts (markers and stranded stacks are still recovered): {refused}"
            ));
        }
        why.extend(self.problems.iter().cloned());
        why
    }

    /// Why `recover --if-stale` leaves things alone; `None` when it should recover: a marker
    /// that no live process holds, older than `max_quiesce` + [`STALE_MARGIN`] — or dated
    /// ahead of the clock, which was set back since: its age is unknown, and a marker whose
    /// lock nobody holds is a dead process's whatever its age (the lock dies with its holder).
    pub fn why_not_stale(&self, max_quiesce: Duration) -> Option<String> {
        if !self.has_marker() {
            return Some("no marker".to_owned());
        }
        if let Some(pid) = &self.holder {
            return Some(format!("the lock is held by pid {pid}, a live process"));
        }
        let limit = max_quiesce + STALE_MARGIN;
        match self.marker_age {
            Some(MarkerAge::Past(age)) if age > limit => None,
            Some(MarkerAge::Future(_)) => None,
            age => Some(format!(
                "the marker is {} old, not older than max_quiesce + {}s ({})",
                match age {
                    Some(MarkerAge::Past(age)) => whole_seconds(age),
                    _ => "of unknown age".to_owned(),
                },
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

/// `d` in whole seconds, as people read it (`1h 2m 3s`).
pub(crate) fn whole_seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_stacks_with_services_to_stop_or_start_are_held_down() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(
            dir.join("marker.json"),
            br#"{"version": 1, "cycle_id": "c-1", "phase": "backing_up", "started_at": "2026-01-01T00:00:00Z", "pid": 1,
                "stacks": [{"name": "wiki", "services": ["app"]},
                           {"name": "front", "services": [], "hooks": [{"service": "web", "timeout_ms": 1000}]}]}"#,
        )
        .expect("write");
        let look = Inspection::of(&StateView::open(&dir).expect("a view"));
        assert!(look.marker.as_ref().is_ok_and(Option::is_some), "{look:?}");
        assert_eq!(look.stacks_held(), 1);
    }

    #[test]
    fn an_inspection_reads_the_marker_without_touching_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Not made yet (the daemon has not run): nothing, and nothing is created.
        let dir = tmp.path().join("state");
        let look = Inspection::of(&StateView::open(&dir).expect("a view"));
        assert!(matches!(look.marker, Ok(None)));
        assert!(look.needs_attention().is_empty());
        assert!(!dir.exists());
        // A mode the writer would refuse (0750) is no obstacle to a look.
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let state = StateView::open(&dir).expect("a view");
        std::fs::write(
            dir.join("marker.json"),
            br#"{"version": 1, "cycle_id": "c-1", "stacks": [{"name": "wiki", "services": ["app"]}, {"#,
        )
        .expect("write");
        let look = Inspection::of(&state);
        let err = look.marker.as_ref().expect_err("corrupt");
        assert!(
            err.contains("marker.json") && err.contains("stacks still readable: wiki"),
            "{err}"
        );
        // An unreadable marker nobody holds needs a person; its age comes from the file.
        assert!(look.marker_age.is_some());
        assert_eq!(look.needs_attention().len(), 1, "{look:?}");
        // Still there: an inspection never moves a marker aside.
        assert!(dir.join("marker.json").exists());
        assert_eq!(
            std::fs::read_dir(&dir).expect("lists").count(),
            1,
            "no lock file made"
        );
    }

    fn with_marker(age: MarkerAge, holder: Option<&str>) -> Inspection {
        Inspection {
            marker: Ok(Some(Marker::new("c-1", Utc::now(), Vec::new()))),
            marker_age: Some(age),
            holder: holder.map(str::to_owned),
            stranded: Vec::new(),
            cycles_refused: None,
            problems: Vec::new(),
        }
    }

    #[test]
    fn a_marker_is_stale_past_the_bound_or_from_the_future_and_only_when_nobody_holds_it() {
        let bound = Duration::from_secs(1800);
        let hour = Duration::from_secs(3600);
        let fresh = with_marker(MarkerAge::Past(Duration::from_secs(60)), None);
        assert!(fresh.why_not_stale(bound).is_some());
        assert_eq!(
            with_marker(MarkerAge::Past(hour), None).why_not_stale(bound),
            None
        );
        // The clock was set back an hour after the marker was written: it is a dead
        // process's all the same.
        let ahead = with_marker(MarkerAge::Future(hour), None);
        assert_eq!(ahead.why_not_stale(bound), None);
        assert!(ahead.needs_attention()[0].contains("ahead of this clock"));
        assert_eq!(MarkerAge::Future(hour).seconds(), Duration::ZERO);
        // Held by a live process: never, whatever its age.
        for age in [MarkerAge::Past(hour), MarkerAge::Future(hour)] {
            let held = with_marker(age, Some("4242"));
            assert!(held
                .why_not_stale(bound)
                .is_some_and(|w| w.contains("4242")));
        }
    }

    #[test]
    fn an_age_is_measured_by_the_clock_now_either_way() {
        let now = Utc::now();
        let minute = chrono::TimeDelta::seconds(60);
        assert_eq!(
            MarkerAge::between(now - minute, now),
            MarkerAge::Past(Duration::from_secs(60))
        );
        assert_eq!(
            MarkerAge::between(now + minute, now),
            MarkerAge::Future(Duration::from_secs(60))
        );
    }

    #[test]
    fn a_state_dir_others_may_write_needs_a_person_and_a_lock_error_is_no_holder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        std::fs::write(
            dir.join("marker.json"),
            serde_json::to_vec(&Marker::new("c-1", Utc::now(), Vec::new())).expect("json"),
        )
        .expect("a marker");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), dir.join("lock"))
            .expect("a link where the lock goes");
        let look = Inspection::of(&StateView::open(&dir).expect("a view"));
        let refused = look.cycles_refused.as_deref().expect("refused");
        assert!(
            refused.contains("of mode 0770 (writable by its group)"),
            "{refused}"
        );
        // Before: the probe's error was a holder named "unknown (…)", and `recover
        // --if-stale` left the marker alone as a live process's.
        assert_eq!(look.holder, None);
        let why = look.needs_attention();
        assert!(
            why.iter().any(|w| w.starts_with("no new cycle starts")),
            "{why:?}"
        );
        assert!(
            why.iter()
                .any(|w| w.contains("who holds the lock cannot be told")
                    && w.contains("symbolic link")),
            "{why:?}"
        );
        assert!(
            why.iter().any(|w| w.contains("no live process holds")),
            "{why:?}"
        );
    }
}
