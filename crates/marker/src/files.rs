//! How the state directory and its files are touched safely: every file is opened without
//! following a symbolic link, and an existing state directory is judged by what it is.
//!
//! Why: the controller runs as root. A link planted where the lock, the history or the marker
//! goes would make it truncate, append to or read any file of the system.
//!
//! Two judgements, on purpose of different weight (docs/decisions.md, "A state directory of
//! another mode or owner"):
//!
//! - [`not_a_directory`]: a symbolic link or no directory at all is never used — nothing in it
//!   is read, since it is not the directory the controller made;
//! - [`unfit_for_cycles`]: a real directory that someone else may write to (another owner,
//!   group or other write bits) is still *read and recovered* — a stranded app is worse than
//!   anything else, and the marker's files are read without following links — but no new
//!   cycle starts in it until it is fixed.

use crate::MarkerError;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode the controller creates a state directory with.
pub(crate) const STATE_DIR_MODE: u32 = 0o700;

/// The mode bits that let someone other than the owner create, rename or remove files in a
/// directory: the group's and others' write.
const OTHERS_WRITE: u32 = 0o022;

/// Makes `options` refuse a symbolic link as the last component of the path (`O_NOFOLLOW`):
/// the open fails with `ELOOP` instead of opening the link's target.
pub(crate) fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    // `OFlags` are small positive bits; the conversion to the `c_int` std wants is lossless.
    options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
}

/// Whether an open failed because the path is a symbolic link that [`no_follow`] refused.
pub(crate) fn is_refused_link(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// The whole content of `path`, or `None` when there is no such file; a symbolic link is
/// refused, not followed.
pub(crate) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = match no_follow(OpenOptions::new().read(true)).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(Some(bytes))
}

/// The directory `dir` itself, opened for reading without following a link (for a lock on
/// the directory, see `lock.rs`).
pub(crate) fn open_dir(dir: &Path) -> io::Result<File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY;
    // As in `no_follow`: small positive bits.
    OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(dir)
}

/// What a usable state directory is, for the errors.
pub(crate) fn expected() -> String {
    let euid = rustix::process::geteuid().as_raw();
    format!(
        "a directory (not a symbolic link) owned by uid {euid} (this process's effective \
         user) that neither its group nor others may write to (the controller creates it \
         with mode 0700)"
    )
}

/// What the path of a state directory is when it is not a directory the controller could
/// have made: a symbolic link, or no directory at all. `meta` is its own metadata
/// (`symlink_metadata`).
pub(crate) fn not_a_directory(meta: &Metadata) -> Option<&'static str> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        Some("a symbolic link")
    } else if !file_type.is_dir() {
        Some("not a directory")
    } else {
        None
    }
}

/// What keeps a real directory from holding new cycles: another owner than the effective
/// user, or write bits for its group or others (they could remove or replace the marker of a
/// cycle that has stacks down, or plant files in it). `None`: it is fit.
///
/// Read and execute bits for the group or others are accepted (`0750` for a monitoring
/// group, `0755` from a restore): every file in it is `0600`, so they show file names only.
/// Set-group-id and sticky bits are accepted too: a directory created under a set-group-id
/// parent inherits the bit, and neither lets anyone else write.
pub(crate) fn unfit_for_cycles(meta: &Metadata) -> Option<String> {
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Some(format!("owned by uid {}", meta.uid()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & OTHERS_WRITE != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Some(format!("of mode {mode:04o} (writable by {who})"));
    }
    None
}

/// Whether the existing state directory `dir`, of metadata `meta` (`symlink_metadata`), may
/// hold new cycles: [`MarkerError::UnsafeStateDir`] names what is wrong and what is expected.
pub(crate) fn check_for_cycles(dir: &Path, meta: &Metadata) -> Result<(), MarkerError> {
    let found = match not_a_directory(meta) {
        Some(found) => found.to_owned(),
        None => match unfit_for_cycles(meta) {
            Some(found) => found,
            None => return Ok(()),
        },
    };
    Err(MarkerError::UnsafeStateDir {
        path: dir.to_path_buf(),
        found,
        expected: expected(),
    })
}

/// [`check_for_cycles`] of the directory at `dir` as it is now; a directory that does not
/// exist yet is fit (it is created `0700`).
pub(crate) fn check_path_for_cycles(dir: &Path) -> Result<(), MarkerError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => check_for_cycles(dir, &meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(MarkerError::io("inspecting the state directory", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_or_other_write_is_named_and_read_bits_are_not() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        let judge = |mode: u32| {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
            unfit_for_cycles(&std::fs::symlink_metadata(&dir).expect("metadata"))
        };
        for fit in [0o700, 0o750, 0o755, 0o711, 0o500, 0o2700, 0o1700, 0o2750] {
            assert_eq!(judge(fit), None, "{fit:04o}");
        }
        for (mode, found) in [
            (0o770, "of mode 0770 (writable by its group)"),
            (0o702, "of mode 0702 (writable by others)"),
            (0o777, "of mode 0777 (writable by its group and others)"),
            (0o1777, "of mode 1777 (writable by its group and others)"),
            (0o2770, "of mode 2770 (writable by its group)"),
        ] {
            assert_eq!(judge(mode).as_deref(), Some(found));
        }
    }
}
