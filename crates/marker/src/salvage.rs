//! What is kept of a state file that cannot be used as it is (truncated by a crash of the disk,
//! edited by hand, written by a newer build): the stacks it names are read loosely, one entry
//! at a time, so that each stack that can still be read is brought back (SPEC §2 rule 1: a
//! stranded-down app is worse than anything else). Then the file is kept aside, never
//! deleted — and when it cannot be (a read-only or full file system), the stacks read from it
//! are returned all the same: the salvage never depends on the move.

use crate::model::{MarkedStack, Marker, MarkerPhase, FORMAT_VERSION};
use chrono::{DateTime, Utc};
use serde_json::{Deserializer, Map, Value};
use std::fmt;
use std::path::PathBuf;

/// A state file that could not be used as it was, and where it is kept now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// Where the file was (`<state_dir>/marker.json`, `<state_dir>/stranded.json`).
    pub path: PathBuf,
    /// Where its bytes are kept now, for a human to look at (`marker.corrupt-<UTC time>`,
    /// ...), its place taken by what could be read of it. `Err`: why no copy could be made
    /// (a read-only or full file system); the file then stays where it was, as it was, and
    /// the next read salvages it again.
    pub moved_to: Result<PathBuf, String>,
    /// Why it could not be used.
    pub reason: Unreadable,
}

impl fmt::Display for MovedAside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; ", self.path.display(), self.reason)?;
        match &self.moved_to {
            Ok(to) => write!(f, "it was moved to {}", to.display()),
            Err(why) => write!(
                f,
                "it could not be moved aside ({why}), so it stays where it is"
            ),
        }
    }
}

/// Why a state file could not be used as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// It did not parse, or not into what it should be.
    Corrupt {
        /// The parser's complaint.
        detail: String,
    },
    /// It is of a format version this build does not know.
    UnknownVersion {
        /// The version found.
        version: u64,
        /// The version this build knows.
        known: u32,
    },
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::Corrupt { detail } => write!(f, "is corrupt ({detail})"),
            Unreadable::UnknownVersion { version, known } => {
                write!(f, "has format version {version}, this build knows {known}")
            }
        }
    }
}

/// How a marker that could not be used as it was became the [`Marker`] that
/// [`crate::MarkerStore::load`] returned: only its readable stacks are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerSalvage {
    /// The unusable marker file, now moved aside (or why it could not be).
    pub moved: MovedAside,
    /// How many stack entries were seen but could not be read (a bad name, no services, cut
    /// off): at least this many stacks may still be down and need a person.
    pub unreadable_stacks: usize,
}

impl fmt::Display for MarkerSalvage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the marker {}", self.moved)?;
        if self.unreadable_stacks > 0 {
            write!(
                f,
                "; {} of its stack entries could not be read",
                self.unreadable_stacks
            )?;
        }
        Ok(())
    }
}

impl MarkerSalvage {
    /// The marker that `bytes` still tells ([`read_loosely`]), with the salvage noted in it.
    pub(crate) fn salvage(
        bytes: &[u8],
        written_at: Option<DateTime<Utc>>,
        moved: MovedAside,
    ) -> Marker {
        let moved_name = match &moved.moved_to {
            Ok(to) => to.file_name(),
            Err(_) => moved.path.file_name(),
        }
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
        let (mut marker, unreadable_stacks) = read_loosely(bytes, written_at, &moved_name);
        marker.salvage = Some(MarkerSalvage {
            moved,
            unreadable_stacks,
        });
        marker
    }
}

/// The marker that the bytes of an unusable marker file still tell: its readable stacks, and
/// what else can be read (cycle id, phase, start, pid, backup id), with stand-ins for the rest;
/// and how many stack entries could not be read. `written_at` is the file's last write, the
/// start when the file does not say; `file_name` names the file in a stand-in cycle id.
pub(crate) fn read_loosely(
    bytes: &[u8],
    written_at: Option<DateTime<Utc>>,
    file_name: &str,
) -> (Marker, usize) {
    let (entries, mut unreadable_stacks) = array_entries(bytes, "stacks");
    let mut stacks: Vec<MarkedStack> = Vec::new();
    for entry in entries {
        match marked_stack(&entry) {
            Some(stack) if stacks.iter().all(|s| s.name != stack.name) => stacks.push(stack),
            // A duplicate: the first entry of a name is the one that counts.
            Some(_) => {}
            None => unreadable_stacks += 1,
        }
    }
    let marker = Marker {
        version: FORMAT_VERSION,
        cycle_id: string_at(bytes, "cycle_id")
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("unknown ({file_name})")),
        phase: value_at(bytes, "phase")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or(MarkerPhase::Quiescing),
        started_at: value_at(bytes, "started_at")
            .and_then(|v| serde_json::from_value(v).ok())
            .or(written_at)
            .unwrap_or_else(Utc::now),
        pid: value_at(bytes, "pid")
            .and_then(|v| v.as_u64())
            .and_then(|pid| u32::try_from(pid).ok())
            .unwrap_or(0),
        backup_id: string_at(bytes, "backup_id"),
        stacks,
        salvage: None,
    };
    (marker, unreadable_stacks)
}

fn marked_stack(entry: &Map<String, Value>) -> Option<MarkedStack> {
    Some(MarkedStack {
        name: stack_name(entry)?,
        services: services(entry)?,
        restart_attempts: entry
            .get("restart_attempts")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        // Where every one of them reads; else none (the stack is then recovered by its
        // services).
        containers: read_or_default(entry, "containers"),
        // Absent: a marker of a build before it (its stack is recovered by services). Present
        // but unreadable: taken as begun, so that the stack is started, never left down.
        stop_began: entry
            .get("stop_began")
            .is_some_and(|v| v.as_bool().unwrap_or(true)),
        // Issue 23: the order of its starts and its hooks' progress, where they still read
        // (else none: its stack is still started, its post-resume hooks are not run).
        stop_order: read_or_default(entry, "stop_order"),
        hooks: read_or_default(entry, "hooks"),
    })
}

/// The entry's `key` as a `T`, where it reads; else `T`'s default.
pub(crate) fn read_or_default<T: serde::de::DeserializeOwned + Default>(
    entry: &Map<String, Value>,
    key: &str,
) -> T {
    entry
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The entry's `name`, if it is a valid compose project name: `[a-z0-9][a-z0-9_-]*`. A name
/// from a damaged file reaches `docker compose -p` only when it passes this.
pub(crate) fn stack_name(entry: &Map<String, Value>) -> Option<String> {
    let name = entry.get("name")?.as_str()?;
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    (first_ok && rest_ok).then(|| name.to_owned())
}

/// The entry's `services`, if it is a list of valid compose service names
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub(crate) fn services(entry: &Map<String, Value>) -> Option<Vec<String>> {
    entry
        .get("services")?
        .as_array()?
        .iter()
        .map(|s| {
            let s = s.as_str()?;
            let mut chars = s.chars();
            let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
            let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            (first_ok && rest_ok).then(|| s.to_owned())
        })
        .collect()
}

/// The JSON document in `bytes` if it is of format version `known`. The version is read before
/// the structure, so that a newer format is reported as such rather than as whichever of its
/// fields fails to parse first.
pub(crate) fn versioned_json(bytes: &[u8], known: u32) -> Result<Value, Unreadable> {
    let corrupt = |detail: String| Unreadable::Corrupt { detail };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let version = match value.get("version") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| corrupt(format!("`version` is {v}, not a version number")))?,
        None => return Err(corrupt("no `version` field".to_owned())),
    };
    if version != u64::from(known) {
        return Err(Unreadable::UnknownVersion { version, known });
    }
    Ok(value)
}

/// The complete entries (objects) of the array under `key`, read one at a time so that an
/// array cut off in the middle still gives the entries before the cut; and how many entries
/// were seen but are not objects or are cut off.
pub(crate) fn array_entries(bytes: &[u8], key: &str) -> (Vec<Map<String, Value>>, usize) {
    let mut entries = Vec::new();
    let mut unreadable = 0;
    let Some(start) = after_key(bytes, key) else {
        return (entries, unreadable);
    };
    let Some(mut pos) = skip_ws(bytes, start).filter(|&p| bytes[p] == b'[') else {
        return (entries, unreadable);
    };
    pos += 1;
    while let Some(p) = skip_ws(bytes, pos) {
        match bytes[p] {
            b']' => break,
            b',' => pos = p + 1,
            _ => {
                let mut stream = Deserializer::from_slice(&bytes[p..]).into_iter::<Value>();
                match stream.next() {
                    Some(Ok(Value::Object(entry))) => entries.push(entry),
                    Some(Ok(_)) => unreadable += 1,
                    // Cut off or garbled: nothing after it can be trusted to line up.
                    Some(Err(_)) | None => {
                        unreadable += 1;
                        break;
                    }
                }
                pos = p + stream.byte_offset();
            }
        }
    }
    (entries, unreadable)
}

/// The complete value under `key` (the first place it appears as a key), if it can be read.
pub(crate) fn value_at(bytes: &[u8], key: &str) -> Option<Value> {
    let start = skip_ws(bytes, after_key(bytes, key)?)?;
    Deserializer::from_slice(&bytes[start..])
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// The string under `key`, if there is one.
pub(crate) fn string_at(bytes: &[u8], key: &str) -> Option<String> {
    match value_at(bytes, key)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// The offset just after `"key":` (the first occurrence of the quoted key followed by a
/// colon), where its value begins.
fn after_key(bytes: &[u8], key: &str) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let needle = quoted.as_bytes();
    let mut from = 0;
    while let Some(found) = bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
    {
        let end = from + found + needle.len();
        if let Some(colon) = skip_ws(bytes, end).filter(|&p| bytes[p] == b':') {
            return Some(colon + 1);
        }
        from = end;
    }
    None
}

/// The first offset at or after `pos` that is not JSON whitespace, if any.
fn skip_ws(bytes: &[u8], pos: usize) -> Option<usize> {
    (pos..bytes.len()).find(|&p| !matches!(bytes[p], b' ' | b'\t' | b'\n' | b'\r'))
}
