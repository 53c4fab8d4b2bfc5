//! A real file system that refuses writes, for the state directory's tests: a tmpfs mounted
//! for one test (small, to be filled; or remounted read-only), unmounted when dropped. The
//! tests run as root with `CAP_SYS_ADMIN`, as in the project's test container: root writes
//! through permission bits, so only a real mount refuses it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs at `path` (created if missing) with `options` (`size=64k,mode=0755`).
    ///
    /// # Panics
    ///
    /// When it cannot be mounted, saying what the test needs.
    pub fn mount(path: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("the mount point is created");
        mount(&["-t", "tmpfs", "-o", options, "tmpfs"], path);
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Remounts it read-only: every write fails with `EROFS` from now on.
    pub fn remount_read_only(&self) {
        mount(&["-o", "remount,ro"], &self.path);
    }

    /// Fills it until a write fails (`ENOSPC`); the filler is `<mount>/filler`, returned.
    pub fn fill(&self) -> PathBuf {
        let path = self.path.join("filler");
        let mut filler = std::fs::File::create(&path).expect("the filler is created");
        let chunk = [0u8; 4096];
        // Bounded: a test's tmpfs of a few dozen KiB fills within a few dozen chunks.
        let full = (0..1000).any(|_| filler.write_all(&chunk).is_err());
        assert!(full, "the tmpfs at {} never filled", self.path.display());
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open in a failed test must not keep the mount around.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn mount(args: &[&str], path: &Path) {
    let out = Command::new("mount")
        .args(args)
        .arg(path)
        .output()
        .expect("`mount` runs (util-linux is installed)");
    assert!(
        out.status.success(),
        "this test needs to mount a tmpfs (root with CAP_SYS_ADMIN, as in the project's test \
         container): `mount {} {}` failed: {}",
        args.join(" "),
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
