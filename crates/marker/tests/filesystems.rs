//! Saves on a file system that refuses writes: read-only, and full. Both are real tmpfs mounts,
//! because the tests run as root, and root writes through permission bits.

mod common;

use common::{full_marker, names_in, record};
use felhom_marker::{HistoryStore, MarkerError, MarkerStore, StateDir, StateLock};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(path).expect("the mount point is created");
        mount(&["-t", "tmpfs", "-o", options, "tmpfs"], path);
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn remount_read_only(&self) {
        mount(&["-o", "remount,ro"], &self.path);
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

fn assert_io_error_in(dir: &Path, result: Result<(), MarkerError>, action: &str) {
    match &result {
        Err(
            err @ MarkerError::Io {
                action: got,
                path,
                source,
            },
        ) => {
            assert_eq!(*got, action);
            assert!(
                path.starts_with(dir),
                "{} is in {}",
                path.display(),
                dir.display()
            );
            assert_cause_only_in_source(err, source);
        }
        other => panic!("expected an Io error while {action}, got {other:?}"),
    }
}

/// The error convention of the felhom crates: the message says what went wrong, and the OS
/// error is its `source()`, not also part of the message (a chain printer shows it once).
fn assert_cause_only_in_source(err: &MarkerError, cause: &std::io::Error) {
    let (shown, cause_text) = (err.to_string(), cause.to_string());
    assert!(
        !shown.contains(&cause_text),
        "{shown:?} repeats {cause_text:?}"
    );
    let source = std::error::Error::source(err).map(ToString::to_string);
    assert_eq!(source, Some(cause_text));
}

#[test]
fn on_a_read_only_file_system_writes_fail_and_the_marker_is_intact() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=1m,mode=0755");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("the state dir opens");
    let before = full_marker("cycle-before");
    state
        .save(&before)
        .expect("the marker saves while writable");
    state
        .append(&record("cycle-before"))
        .expect("the history appends while writable");

    fs.remount_read_only();

    let err = state
        .save(&full_marker("cycle-after"))
        .expect_err("a save on a read-only file system fails");
    assert!(
        err.to_string().contains(&*dir.to_string_lossy()),
        "the error names the path: {err}"
    );
    assert_io_error_in(&dir, Err(err), "creating the marker's temp file");
    assert_eq!(state.load().expect("the marker loads"), Some(before));

    match state.clear() {
        Err(err @ MarkerError::Stuck { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&*dir.join("marker.json").to_string_lossy())
                    && message.contains("cannot be removed"),
                "one clear error naming the marker: {message}"
            );
            if let MarkerError::Stuck { source, .. } = &err {
                assert_eq!(source.raw_os_error(), Some(30), "EROFS: {source}");
                assert_cause_only_in_source(&err, source);
            }
        }
        other => panic!("expected Stuck, got {other:?}"),
    }
    assert!(
        dir.join("marker.json").exists(),
        "a failed clear keeps the marker"
    );

    assert_io_error_in(
        &dir,
        state.append(&record("cycle-after")),
        "opening the history",
    );
    let history = state.recent(10).expect("the history reads");
    assert_eq!(history, vec![record("cycle-before")]);

    match StateDir::open(fs.path.join("other")) {
        Err(MarkerError::Io { action, path, .. }) => {
            assert_eq!(action, "creating the state directory");
            assert_eq!(path, fs.path.join("other"));
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    match StateLock::acquire(&state) {
        Err(felhom_marker::LockError::Io { path, .. }) => assert_eq!(path, dir.join("lock")),
        other => panic!("expected an Io error taking the lock, got {other:?}"),
    }
}

#[test]
fn on_a_full_file_system_a_save_fails_cleanly_and_the_marker_is_intact() {
    let tmp = common::private_dir();
    let fs = Tmpfs::mount(&tmp.path().join("mnt"), "size=64k,mode=0755");
    let dir = fs.path.join("state");
    let state = StateDir::open(&dir).expect("the state dir opens");
    let before = full_marker("cycle-before");
    state
        .save(&before)
        .expect("the marker saves while there is room");

    let filler_path = fs.path.join("filler");
    let mut filler = std::fs::File::create(&filler_path).expect("the filler is created");
    let chunk = [0u8; 4096];
    // Bounded: 64 KiB of tmpfs fills within a few dozen chunks.
    let full = (0..1000).any(|_| filler.write_all(&chunk).is_err());
    assert!(full, "the 64 KiB tmpfs never filled");
    drop(filler);

    let after = full_marker("cycle-after");
    assert_io_error_in(&dir, state.save(&after), "writing the marker's temp file");
    assert_eq!(state.load().expect("the marker loads"), Some(before));
    assert_eq!(
        names_in(&dir),
        vec!["marker.json"],
        "the failed save left no temp file"
    );

    std::fs::remove_file(&filler_path).expect("the filler is removed");
    // The kernel may hand the filler's pages back to the tmpfs a moment after the unlink:
    // wait (bounded) for the room, then the save must succeed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut saved = state.save(&after);
    while saved.is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        saved = state.save(&after);
    }
    saved.expect("the marker saves once there is room");
    assert_eq!(state.load().expect("the marker loads"), Some(after));
}
