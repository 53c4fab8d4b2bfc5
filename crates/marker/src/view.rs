//! A read-only view of a state directory, for whoever is not its writer: the controller's
//! `status` command and metrics, other felhom tools, a monitoring script.

use crate::files::read;
use crate::lock::LockError;
use crate::model::{CycleRecord, Marker};
use crate::salvage::{read_loosely, Unreadable};
use crate::state_dir::{HISTORY_FILE, LOCK_FILE, MARKER_FILE};
use crate::store::{parse_marker, written_at, MarkerError};
use crate::stranded::StrandedView;
use std::path::{Path, PathBuf};

/// A state directory as a reader that is not its writer sees it.
///
/// Unlike [`crate::StateDir::open`], opening a view never creates the directory, never removes
/// a temp file a dead writer left, never moves a damaged file aside and never takes the lock;
/// nothing of the view writes. It accepts a directory of any owner and mode that this process
/// can read (the writer's `0700` directory when run as its user or as root, a copy with other
/// permissions, a read-only mount). As the writer, it opens no file through a symbolic link.
///
/// ```
/// use felhom_marker::{StateDir, StateView};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let path = tmp.path().join("state");
/// # StateDir::open(&path)?;
/// let view = StateView::open(&path)?;
/// if let Some(marker) = view.marker()? {
///     let names: Vec<&str> = marker.marker.stacks.iter().map(|s| s.name.as_str()).collect();
///     println!("a cycle holds {names:?} down; the lock is held by {:?}", view.lock_holder()?);
/// }
/// println!("stranded: {:?}", view.stranded()?.stacks);
/// println!("last cycles: {:?}", view.history(5)?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StateView {
    dir: PathBuf,
}

/// The marker as a [`StateView`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerView {
    /// The marker. Of a damaged file (corrupt, of another format version), what can still be
    /// read, as a load salvages it: its readable stacks, stand-ins for the rest (the start is
    /// the file's last write when the file does not say). Its `salvage` is `None`: nothing
    /// was moved.
    pub marker: Marker,
    /// Set when the file is damaged: why. It stays where it is, for the writer's next load
    /// to salvage and move aside.
    pub damaged: Option<Unreadable>,
    /// Of a damaged file, how many stack entries could not be read: at least this many stacks
    /// may be down and known to no one.
    pub unreadable_stacks: usize,
}

impl crate::StateDir {
    /// A read-only view of this state directory, for readers that share the writer's process
    /// (a status endpoint): the same files, through [`StateView`]'s reads.
    pub fn view(&self) -> StateView {
        StateView {
            dir: self.path().to_path_buf(),
        }
    }
}

impl StateView {
    /// A view of the state directory `dir`: a directory, not a symbolic link (which its writer
    /// refuses as well: [`MarkerError::UnsafeStateDir`]). A directory that does not exist
    /// yet is seen empty — no marker, no history, nothing stranded, no holder — and is not
    /// created: its writer has not run.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateView, MarkerError> {
        let dir = dir.into();
        let meta = match std::fs::symlink_metadata(&dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StateView { dir }),
            Err(e) => return Err(MarkerError::io("inspecting the state directory", &dir, e)),
        };
        let found = if meta.file_type().is_symlink() {
            "a symbolic link"
        } else if !meta.is_dir() {
            "not a directory"
        } else {
            return Ok(StateView { dir });
        };
        Err(MarkerError::UnsafeStateDir {
            path: dir,
            found: found.to_owned(),
            expected: "a directory (not a symbolic link)".to_owned(),
        })
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether new cycles may start with this state directory, judged as its writer judges it
    /// ([`crate::StateDir::fit_for_new_cycles`]): a `status` line when it is not. A directory
    /// that does not exist yet is fit (its writer creates it `0700`).
    pub fn fit_for_new_cycles(&self) -> Result<(), MarkerError> {
        crate::files::check_path_for_cycles(&self.dir)
    }

    /// The marker, or `None` when there is none. A damaged marker is read as far as it can
    /// be and left in place ([`MarkerView::damaged`]).
    pub fn marker(&self) -> Result<Option<MarkerView>, MarkerError> {
        let path = self.dir.join(MARKER_FILE);
        let bytes = match read(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(e) => return Err(MarkerError::io("reading the marker", path, e)),
        };
        Ok(Some(match parse_marker(&bytes) {
            Ok(marker) => MarkerView {
                marker,
                damaged: None,
                unreadable_stacks: 0,
            },
            Err(reason) => {
                let (marker, unreadable_stacks) =
                    read_loosely(&bytes, written_at(&path), MARKER_FILE);
                MarkerView {
                    marker,
                    damaged: Some(reason),
                    unreadable_stacks,
                }
            }
        }))
    }

    /// The last `n` cycle records, oldest first; lines that do not parse are skipped.
    pub fn history(&self, n: usize) -> Result<Vec<CycleRecord>, MarkerError> {
        crate::history::recent(&self.dir.join(HISTORY_FILE), n)
    }

    /// The stranded stacks; of a damaged list, those that can still be read
    /// ([`StrandedView::damaged`]), the file left in place.
    pub fn stranded(&self) -> Result<StrandedView, MarkerError> {
        crate::stranded::look(&self.dir)
    }

    /// The pid of the live process that holds the state directory's lock (a cycle or a
    /// recovery runs), or `None` when no process holds it. The pid is the text the holder
    /// wrote (`unknown` if it cannot be read).
    ///
    /// The single-flight lock is never taken: the probe tries a *shared* lock and, when it is
    /// had, drops it at once (flock has no way to ask without trying), so a writer that takes
    /// the lock at that instant retries for a tenth of a second rather than fail. A caller
    /// that must not touch the lock file at all (a frequent metrics scrape) leaves this out.
    /// A lock file this process may not read is an error, not "nobody".
    pub fn lock_holder(&self) -> Result<Option<String>, LockError> {
        crate::lock::holder(self.dir.join(LOCK_FILE))
    }
}
