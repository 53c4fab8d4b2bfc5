//! The stranded stacks (`stranded.json`): stacks that did not come back after every attempt of
//! their cycle. They are state, not a log line (SPEC §2 rule 6): kept across cycles and
//! restarts until each runs again, so that `status`, the metrics and the retries see them.

use crate::durable::{sync_dir, write_atomically, StateFile};
use crate::model::StrandedStack;
use crate::salvage::{
    array_entries, read_or_default, services, stack_name, versioned_json, MovedAside, Unreadable,
};
use crate::store::written_at;
use crate::{MarkerError, StateDir};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::io;
use std::path::Path;

/// The format version of `stranded.json` this build writes and reads.
const STRANDED_VERSION: u32 = 1;
pub(crate) const STRANDED_FILE: &str = "stranded.json";
const CORRUPT_PREFIX: &str = "stranded.corrupt-";

/// Keeps the stranded stacks.
///
/// Each method is durable before it returns. A read-modify-write is not atomic across
/// processes: callers hold the [`crate::StateLock`] while they change the list.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait StrandedStore: Send + Sync {
    /// The stranded stacks, in the order they were stranded.
    fn stranded(&self) -> Result<Stranded, MarkerError>;
    /// Adds `stacks`, each replacing an entry of the same name (a new attempt count, a new
    /// error), and returns the list as it is now.
    fn strand(&self, stacks: &[StrandedStack]) -> Result<Stranded, MarkerError>;
    /// Removes the stack `name` (it runs again) and returns the list as it is now; no error
    /// when it was not there.
    fn unstrand(&self, name: &str) -> Result<Stranded, MarkerError>;
    /// Drops the stack `name` from the list because a person took it down on purpose: it is
    /// no longer retried nor shown. Returns its entry, `None` when it was not stranded.
    fn forget(&self, name: &str) -> Result<Option<StrandedStack>, MarkerError> {
        let list = self.stranded()?;
        let Some(entry) = list.stacks.into_iter().find(|s| s.name == name) else {
            return Ok(None);
        };
        let _ = self.unstrand(name)?;
        Ok(Some(entry))
    }
}

/// The stranded stacks, and whether the file was found unusable on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a stranded list found corrupt must be reported: its lost entries need a person"]
pub struct Stranded {
    /// The stranded stacks.
    pub stacks: Vec<StrandedStack>,
    /// Set when `stranded.json` could not be used as it was: it was moved aside, and
    /// `stacks` holds what could be read of it (written back in its place) — or, when it
    /// could not be moved ([`MovedAside::moved_to`] is `Err`), it stays as it is and
    /// `stacks` is what can be read of it all the same. Report it (log, `marker_corrupt`
    /// notice): entries that could not be read are down and forgotten.
    pub moved_aside: Option<MovedAside>,
}

/// The file's layout.
#[derive(Serialize, Deserialize)]
struct StrandedFile {
    version: u32,
    stacks: Vec<StrandedStack>,
}

impl StrandedStore for StateDir {
    fn stranded(&self) -> Result<Stranded, MarkerError> {
        let path = self.dir.join(STRANDED_FILE);
        let bytes = match crate::files::read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Stranded::default()),
            Err(e) => return Err(MarkerError::io("reading the stranded list", path, e)),
        };
        let reason = match parse(&bytes) {
            Ok(stacks) => {
                return Ok(Stranded {
                    stacks,
                    moved_aside: None,
                })
            }
            Err(reason) => reason,
        };
        // The stacks first, from the bytes in hand: whatever becomes of the file, they are
        // kept and retried.
        let stacks = salvage(&bytes, written_at(&path).unwrap_or_else(Utc::now));
        let moved_to = self.keep_aside(&bytes, CORRUPT_PREFIX);
        if moved_to.is_ok() {
            // What could be read takes the damaged file's place at once: the next read must
            // not find the list empty. If this fails, the damaged file stays and is salvaged
            // again; without a copy of it, it is not touched at all.
            let _ = self.write_stranded(&stacks);
        }
        Ok(Stranded {
            stacks,
            moved_aside: Some(MovedAside {
                path,
                moved_to,
                reason,
            }),
        })
    }

    fn strand(&self, stacks: &[StrandedStack]) -> Result<Stranded, MarkerError> {
        let mut list = self.stranded()?;
        for stack in stacks {
            match list.stacks.iter_mut().find(|s| s.name == stack.name) {
                Some(kept) => *kept = stack.clone(),
                None => list.stacks.push(stack.clone()),
            }
        }
        self.write_stranded(&list.stacks)?;
        Ok(list)
    }

    fn unstrand(&self, name: &str) -> Result<Stranded, MarkerError> {
        let mut list = self.stranded()?;
        let before = list.stacks.len();
        list.stacks.retain(|s| s.name != name);
        if list.stacks.len() != before {
            self.write_stranded(&list.stacks)?;
        }
        Ok(list)
    }

    /// One read of the file (the trait's default reads it twice).
    fn forget(&self, name: &str) -> Result<Option<StrandedStack>, MarkerError> {
        let mut list = self.stranded()?;
        let Some(at) = list.stacks.iter().position(|s| s.name == name) else {
            return Ok(None);
        };
        let entry = list.stacks.remove(at);
        self.write_stranded(&list.stacks)?;
        Ok(Some(entry))
    }
}

/// The stranded stacks as the file says, read without changing anything
/// ([`crate::StateView::stranded`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrandedView {
    /// The stranded stacks; of a damaged file, those that can still be read.
    pub stacks: Vec<StrandedStack>,
    /// Set when the file is damaged: why. It stays where it is until a [`StrandedStore`]
    /// method moves it aside.
    pub damaged: Option<Unreadable>,
}

/// The stranded stacks of the state directory `dir`, read without moving a damaged file aside
/// or writing anything.
pub(crate) fn look(dir: &Path) -> Result<StrandedView, MarkerError> {
    let path = dir.join(STRANDED_FILE);
    let bytes = match crate::files::read(&path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(StrandedView::default()),
        Err(e) => return Err(MarkerError::io("reading the stranded list", path, e)),
    };
    Ok(match parse(&bytes) {
        Ok(stacks) => StrandedView {
            stacks,
            damaged: None,
        },
        Err(reason) => StrandedView {
            stacks: salvage(&bytes, written_at(&path).unwrap_or_else(Utc::now)),
            damaged: Some(reason),
        },
    })
}

impl StateDir {
    /// Replaces `stranded.json` by `stacks`, or removes it when there are none (a state
    /// directory without stranded stacks holds no such file).
    fn write_stranded(&self, stacks: &[StrandedStack]) -> Result<(), MarkerError> {
        let path = self.dir.join(STRANDED_FILE);
        if stacks.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(MarkerError::io("removing the stranded list", path, e)),
            }
            return sync_dir(&self.dir);
        }
        let file = StrandedFile {
            version: STRANDED_VERSION,
            stacks: stacks.to_vec(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| MarkerError::io("serializing the stranded list", &path, e.into()))?;
        bytes.push(b'\n');
        write_atomically(&self.dir, StateFile::Stranded, &path, &bytes)
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<StrandedStack>, Unreadable> {
    let value = versioned_json(bytes, STRANDED_VERSION)?;
    let file: StrandedFile = serde_json::from_value(value).map_err(|e| Unreadable::Corrupt {
        detail: e.to_string(),
    })?;
    Ok(file.stacks)
}

/// The entries of an unusable file that still name a valid stack and its services; what else
/// an entry lacks gets a stand-in, since a stack to retry matters more than its record.
fn salvage(bytes: &[u8], written_at: DateTime<Utc>) -> Vec<StrandedStack> {
    let (entries, _cut_off) = array_entries(bytes, "stacks");
    let mut stacks: Vec<StrandedStack> = Vec::new();
    for entry in &entries {
        let Some(stack) = salvage_entry(entry, written_at) else {
            continue;
        };
        if stacks.iter().all(|s| s.name != stack.name) {
            stacks.push(stack);
        }
    }
    stacks
}

fn salvage_entry(entry: &Map<String, Value>, written_at: DateTime<Utc>) -> Option<StrandedStack> {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(StrandedStack {
        name: stack_name(entry)?,
        services: services(entry)?,
        containers: read_or_default(entry, "containers"),
        cycle_id: text("cycle_id").unwrap_or_else(|| "unknown".to_owned()),
        since: entry
            .get("since")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or(written_at),
        attempts: entry
            .get("attempts")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        last_error: text("last_error")
            .unwrap_or_else(|| "unknown (salvaged from a corrupt stranded list)".to_owned()),
        given_up: text("given_up"),
    })
}
