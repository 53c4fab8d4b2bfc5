//! How the state directory and its files are touched safely: every file is opened without
//! following a symbolic link, and an existing state directory is used only when it is a real
//! directory that nobody but the controller's own user can reach.
//!
//! Why: the controller runs as root. A link planted where the lock, the history or the marker
//! goes would make it truncate, append to or read any file of the system.

use crate::store::MarkerError;
use std::fs::{Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The only mode an existing state directory may have.
pub(crate) const STATE_DIR_MODE: u32 = 0o700;

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

/// Refuses an existing state directory that is not a real directory, owned by the effective
/// user, with mode `0700`. `meta` is the directory's own metadata (`symlink_metadata`).
pub(crate) fn check_state_dir(dir: &Path, meta: &Metadata) -> Result<(), MarkerError> {
    let euid = rustix::process::geteuid().as_raw();
    let expected = format!(
        "a directory (not a symbolic link) owned by uid {euid} (this process's effective user), \
         with mode 0700"
    );
    let unsafe_dir = |found: String| MarkerError::UnsafeStateDir {
        path: dir.to_path_buf(),
        found,
        expected: expected.clone(),
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Err(unsafe_dir("a symbolic link".to_owned()));
    }
    if !file_type.is_dir() {
        return Err(unsafe_dir("not a directory".to_owned()));
    }
    if meta.uid() != euid {
        return Err(unsafe_dir(format!("owned by uid {}", meta.uid())));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != STATE_DIR_MODE {
        return Err(unsafe_dir(format!("of mode {mode:04o}")));
    }
    Ok(())
}
