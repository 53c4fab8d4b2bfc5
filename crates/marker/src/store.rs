//! The marker store: the trait the state machine uses ([`MarkerStore`]), the crate's error
//! ([`MarkerError`]), and the marker file of the real [`StateDir`] — loaded (and salvaged when
//! it cannot be used as it is), saved whole and durably, cleared durably.

use crate::durable::{sync_dir, write_atomically, StateFile};
use crate::files::is_refused_link;
use crate::model::{Marker, FORMAT_VERSION};
use crate::salvage::{versioned_json, MarkerSalvage, Unreadable};
use crate::StateDir;
use std::io;
use std::path::{Path, PathBuf};

/// What an unusable marker's copy is named: `<this><UTC time>[-n]`.
const CORRUPT_PREFIX: &str = "marker.corrupt-";

/// Loads, saves and clears the crash-recovery marker.
///
/// Every method is durable before it returns: a `save` that returned `Ok` survives a power
/// cut, and so does a `clear`.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait MarkerStore: Send + Sync {
    /// The marker, or `None` when there is none.
    ///
    /// A marker that cannot be used as it is (corrupt, or of an unknown format version) comes
    /// back as a marker all the same: the stacks that could still be read from it, with
    /// [`Marker::salvage`] saying what happened. So the recovery that follows every marker
    /// brings those stacks back even where the caller does not look; the caller also records
    /// and reports the salvage. The unusable file is kept aside, never deleted, and what
    /// could be read of it takes its place; where no copy can be made (a read-only or full
    /// file system) it stays as it is, and is salvaged the same way at every load.
    fn load(&self) -> Result<Option<Marker>, MarkerError>;
    /// Atomically and durably replaces the marker.
    fn save(&self, marker: &Marker) -> Result<(), MarkerError>;
    /// Durably removes the marker (no error when there is none). A marker that stays
    /// is [`MarkerError::Stuck`].
    fn clear(&self) -> Result<(), MarkerError>;
}

/// What can go wrong with the state directory's files.
///
/// As every error of the felhom crates, the message says what went wrong and the cause (the
/// OS error) is only in [`source()`](std::error::Error::source): print the chain (anyhow's
/// `{:#}`, or a loop over `source()`) to show both.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The file system refused (read-only, full, permissions...).
    #[error("{action} {path}")]
    Io {
        /// What was being done ("writing the marker", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the state directory is a symbolic link, which is never followed.
    #[error("{action} {path}: it is a symbolic link, which is never followed in a state directory; remove it")]
    Symlink {
        /// What was being done ("reading the marker", ...).
        action: &'static str,
        /// The link.
        path: PathBuf,
    },
    /// A state directory that is not one (a symbolic link, a file): nothing in it is used.
    /// Or, from [`StateDir::fit_for_new_cycles`], one that others could tamper with: it is
    /// used to recover, but no new cycle starts in it.
    #[error("the state directory {path} is {found}; expected {expected}")]
    UnsafeStateDir {
        /// The state directory.
        path: PathBuf,
        /// What was found ("a symbolic link", "owned by uid 1000", "of mode 0770 (writable
        /// by its group)").
        found: String,
        /// What a usable state directory is.
        expected: String,
    },
    /// The marker cannot be removed: until it is, every start of the controller and every
    /// recovery finds it again and restarts its stacks once more.
    #[error("the marker {path} cannot be removed")]
    Stuck {
        /// The marker.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl MarkerError {
    /// An error of the file system while `action`; a link refused by `O_NOFOLLOW` is named
    /// as such, since the OS's "too many levels of symbolic links" would mislead.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_refused_link(&source) {
            return MarkerError::Symlink { action, path };
        }
        MarkerError::Io {
            action,
            path,
            source,
        }
    }
}

impl MarkerStore for StateDir {
    fn load(&self) -> Result<Option<Marker>, MarkerError> {
        let path = self.marker_path();
        let bytes = match crate::files::read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(MarkerError::io("reading the marker", path, e)),
        };
        let reason = match parse_marker(&bytes) {
            Ok(marker) => return Ok(Some(marker)),
            Err(reason) => reason,
        };
        // The stacks first, from the bytes in hand: whatever becomes of the file, they are
        // recovered. The file's last write stands in for a start it does not say.
        let moved_to = self.keep_aside(&bytes, CORRUPT_PREFIX);
        let kept = moved_to.is_ok();
        let marker = MarkerSalvage::salvage(
            &bytes,
            written_at(&path),
            crate::salvage::MovedAside {
                path,
                moved_to,
                reason,
            },
        );
        if kept {
            // What could be read takes the unusable file's place, so that the next load (a
            // crash mid-recovery) finds these stacks as a sound marker. If this fails, the
            // unusable file stays and is salvaged again: nothing is lost either way.
            let _ = self.save(&marker);
        }
        Ok(Some(marker))
    }

    fn save(&self, marker: &Marker) -> Result<(), MarkerError> {
        let path = self.marker_path();
        let mut bytes = serde_json::to_vec_pretty(marker)
            .map_err(|e| MarkerError::io("serializing the marker", &path, e.into()))?;
        bytes.push(b'\n');
        write_atomically(&self.dir, StateFile::Marker, &path, &bytes)
    }

    fn clear(&self) -> Result<(), MarkerError> {
        let path = self.marker_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(MarkerError::Stuck { path, source }),
        }
        // Even when the marker was already absent: its removal may not be durable yet.
        sync_dir(&self.dir)
    }
}

/// The marker that `bytes` hold, or why they are not one.
pub(crate) fn parse_marker(bytes: &[u8]) -> Result<Marker, Unreadable> {
    let value = versioned_json(bytes, FORMAT_VERSION)?;
    serde_json::from_value(value).map_err(|e| Unreadable::Corrupt {
        detail: e.to_string(),
    })
}

/// When the file at `path` was last written, if that can be told: the stand-in for a salvaged
/// entry's time.
pub(crate) fn written_at(path: &Path) -> Option<chrono::DateTime<chrono::Utc>> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from)
}
