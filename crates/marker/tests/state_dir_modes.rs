//! A real state directory of a mode or owner the controller would not create (`chmod 750` for
//! a monitoring group, a tar restore without `-p`, a set-group-id parent, another owner): its
//! marker is still read and can be cleared — a stranded app is worse than a mode bit — but new
//! cycles are refused while anyone but its owner may write to it. Nothing is changed behind
//! the operator's back. The tests run as root (as the controller does), so they change owners.

mod common;

use common::full_marker;
use felhom_marker::{MarkerError, MarkerStore, StateDir, StateView};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A state directory holding the marker of a cycle that died, as a `0700` writer left it.
fn with_marker(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = common::private_subdir(parent, name);
    StateDir::open(&dir)
        .expect("opens")
        .save(&full_marker("cycle-died"))
        .expect("saves");
    dir
}

fn assert_refused(result: Result<(), MarkerError>, dir: &Path, found: &str) {
    match result {
        Err(err @ MarkerError::UnsafeStateDir { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&*dir.to_string_lossy()) && message.contains(found),
                "the error names the directory and what is wrong ({found}): {message}"
            );
            assert!(message.contains("expected"), "{message}");
        }
        other => panic!("expected UnsafeStateDir ({found}), got {other:?}"),
    }
}

#[test]
fn a_state_dir_of_another_mode_gives_its_marker_and_refuses_cycles_only_when_writable() {
    let tmp = common::private_dir();
    for (dir_mode, refused) in [
        (0o750, None),
        (0o755, None),
        (0o711, None),
        (0o500, None),
        (0o2700, None),
        (0o1700, None),
        (0o770, Some("of mode 0770 (writable by its group)")),
        (0o702, Some("of mode 0702 (writable by others)")),
        (
            0o777,
            Some("of mode 0777 (writable by its group and others)"),
        ),
        (
            0o1777,
            Some("of mode 1777 (writable by its group and others)"),
        ),
    ] {
        let dir = with_marker(tmp.path(), &format!("state-{dir_mode:o}"));
        chmod(&dir, dir_mode);

        // Before: `StateDir::open` refused every mode but 0700, and the daemon crash-looped
        // with the marker's apps down.
        let state = StateDir::open(&dir)
            .unwrap_or_else(|e| panic!("mode {dir_mode:04o}: the state dir opens: {e}"));
        assert_eq!(
            state.load().expect("the marker loads"),
            Some(full_marker("cycle-died")),
            "mode {dir_mode:04o}"
        );
        match refused {
            None => state
                .fit_for_new_cycles()
                .unwrap_or_else(|e| panic!("mode {dir_mode:04o} is fit: {e}")),
            Some(found) => assert_refused(state.fit_for_new_cycles(), &dir, found),
        }
        // The recovery's end: the marker goes (root writes through a mode of 0500).
        state.clear().expect("the marker is cleared");
        assert_eq!(state.load().expect("loads"), None);
        assert_eq!(
            mode(&dir),
            dir_mode,
            "the mode is left as the operator set it"
        );
    }
}

#[test]
fn a_state_dir_of_another_owner_gives_its_marker_and_is_fit_again_once_given_back() {
    let tmp = common::private_dir();
    let dir = with_marker(tmp.path(), "state");
    let me = std::fs::metadata(&dir).expect("metadata").uid();
    let other = me + 4242;
    std::os::unix::fs::chown(&dir, Some(other), None)
        .expect("chown works (the tests run as root, as the controller does)");

    let state = StateDir::open(&dir).expect("a state dir of another owner opens");
    assert_eq!(
        state.load().expect("the marker loads"),
        Some(full_marker("cycle-died"))
    );
    let found = format!("owned by uid {other}");
    assert_refused(state.fit_for_new_cycles(), &dir, &found);
    if let Err(MarkerError::UnsafeStateDir { expected, .. }) = state.fit_for_new_cycles() {
        assert!(expected.contains(&format!("uid {me}")), "{expected}");
    }
    assert_eq!(
        std::fs::metadata(&dir).expect("metadata").uid(),
        other,
        "not chowned behind the operator's back"
    );

    // Given back, the same store sees it at the next look: no restart needed.
    std::os::unix::fs::chown(&dir, Some(me), None).expect("chown back");
    state.fit_for_new_cycles().expect("fit once it is ours");
}

#[test]
fn a_state_dir_made_under_a_set_group_id_parent_opens_again_and_is_fit() {
    let tmp = common::private_dir();
    let parent = tmp.path().join("var-lib");
    std::fs::create_dir(&parent).expect("mkdir");
    chmod(&parent, 0o2755);
    let dir = parent.join("felhom-controller");

    StateDir::open(&dir).expect("the state dir is created");
    // Linux hands the parent's set-group-id bit down to a new directory, whatever mode it is
    // made with: before, the controller's own directory was refused at its next start.
    assert_eq!(mode(&dir), 0o2700);
    let again = StateDir::open(&dir).expect("the state dir opens again");
    again
        .fit_for_new_cycles()
        .expect("fit: nobody else may write");
}

#[test]
fn the_view_judges_a_state_dir_as_its_writer_does() {
    let tmp = common::private_dir();
    let dir = with_marker(tmp.path(), "state");
    chmod(&dir, 0o770);
    let view = StateView::open(&dir).expect("opens");
    assert_refused(
        view.fit_for_new_cycles(),
        &dir,
        "of mode 0770 (writable by its group)",
    );
    chmod(&dir, 0o750);
    view.fit_for_new_cycles().expect("fit");

    let missing = StateView::open(tmp.path().join("missing")).expect("opens");
    missing
        .fit_for_new_cycles()
        .expect("a state dir not made yet is fit: its writer makes it 0700");
}
