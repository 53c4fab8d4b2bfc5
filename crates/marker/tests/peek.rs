//! The read-only look at the marker that `status` uses.

use felhom_marker::{Marker, MarkerStore, StateDir};

/// `peek` (for `status`) reads the marker with the version check of a load, and never moves
/// a file: a corrupt or newer marker is reported and left where it is.
#[test]
fn peek_checks_the_version_and_never_moves_the_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = StateDir::open(dir.path()).expect("open");
    assert!(matches!(state.peek(), Ok(None)));
    let marker = Marker::new("c-1", chrono::Utc::now(), vec![]);
    state.save(&marker).expect("save");
    assert_eq!(state.peek().expect("peek"), Some(marker));
    let path = dir.path().join("marker.json");
    for (bytes, says) in [
        (&b"{not json"[..], "key must be a string"),
        (&br#"{"version": 99}"#[..], "format version 99"),
    ] {
        std::fs::write(&path, bytes).expect("write");
        let err = state.peek().expect_err("unusable").to_string();
        assert!(err.contains(says) && err.contains("marker.json"), "{err}");
        assert_eq!(std::fs::read(&path).expect("still there"), bytes);
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("corrupt")),
        "{names:?}"
    );
}
