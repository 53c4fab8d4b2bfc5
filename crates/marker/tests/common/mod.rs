//! What several test files share: a marker with every field set, a cycle record, and a look at
//! a directory.
// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use felhom_marker::{CycleRecord, MarkedContainer, MarkedStack, Marker, MarkerPhase};
use std::path::Path;

/// A marker with every field set to something other than its default.
pub(crate) fn full_marker(cycle_id: &str) -> Marker {
    let started_at = Utc
        .with_ymd_and_hms(2026, 11, 26, 19, 10, 0)
        .single()
        .expect("a valid date");
    let mut marker = Marker::new(
        cycle_id,
        started_at,
        vec![
            MarkedStack {
                name: "nextcloud".into(),
                services: vec!["db".into(), "redis".into(), "app".into()],
                restart_attempts: 2,
                containers: vec![MarkedContainer {
                    id: "9c1e0b7d".into(),
                    name: "nextcloud-db-1".into(),
                    service: "db".into(),
                }],
                stop_began: true,
                stop_order: -10,
                hooks: vec![felhom_marker::MarkedHooks {
                    service: "db".into(),
                    mode: felhom_marker::ServiceMode::Hook,
                    kept_up: true,
                    pre_snapshot: true,
                    post_resume: Some("occ maintenance:mode --off".into()),
                    timeout_ms: 120_000,
                    containers: vec![MarkedContainer {
                        id: "9c1e0b7d".into(),
                        name: "nextcloud-db-1".into(),
                        service: "db".into(),
                    }],
                    quiesced: true,
                    runs: vec![felhom_marker::MarkedRun {
                        hook: felhom_marker::HookKind::PreSnapshot,
                        container: "9c1e0b7d".into(),
                        ended: true,
                    }],
                }],
            },
            MarkedStack::new("immich", vec!["server".into()], vec![]),
        ],
    );
    marker.phase = MarkerPhase::BackingUp;
    marker.backup_id = Some("backup-7f3a".into());
    marker
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory lists")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A cycle record for `cycle_id`. Built from JSON, as the history reads it: fields added later
/// with a default do not break it.
pub(crate) fn record(cycle_id: &str) -> CycleRecord {
    serde_json::from_value(serde_json::json!({
        "cycle_id": cycle_id,
        "started_at": "2026-11-26T19:10:00Z",
        "finished_at": "2026-11-26T19:14:30Z",
        "outcome": "done",
        "backup_id": format!("backup-{cycle_id}"),
        "stacks": [{"name": "nextcloud", "services": ["db", "app"], "downtime_ms": 41_000}],
    }))
    .expect("a cycle record parses")
}

/// A temp dir fit to be a state directory as it is: mode `0700`, as `StateDir::open` demands
/// of an existing one (a plain temp dir follows the umask).
pub(crate) fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .expect("a temp dir")
}

/// Creates `<parent>/<name>`, mode `0700`, and returns its path.
pub(crate) fn private_subdir(parent: &Path, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = parent.join(name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("the dir is created");
    dir
}
