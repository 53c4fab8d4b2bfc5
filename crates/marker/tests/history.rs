//! The cycle history on real files.

mod common;

use common::{names_in, record};
use felhom_marker::{HistoryStore, StateDir, HISTORY_LIMIT};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

fn ids(records: &[felhom_marker::CycleRecord]) -> Vec<String> {
    records.iter().map(|r| r.cycle_id.clone()).collect()
}

fn append_raw(path: &std::path::Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("the history opens")
        .write_all(bytes)
        .expect("raw bytes are appended");
}

#[test]
fn an_absent_history_is_empty() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    assert!(state.recent(10).expect("the history reads").is_empty());
}

#[test]
fn recent_returns_the_last_records_oldest_first() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    for id in ["c1", "c2", "c3", "c4"] {
        state.append(&record(id)).expect("a record appends");
    }
    assert_eq!(ids(&state.recent(2).expect("reads")), vec!["c3", "c4"]);
    assert_eq!(
        ids(&state.recent(100).expect("reads")),
        vec!["c1", "c2", "c3", "c4"]
    );
    assert!(state.recent(0).expect("reads").is_empty());
    assert_eq!(state.recent(1).expect("reads"), vec![record("c4")]);
}

#[test]
fn the_history_keeps_the_last_records_up_to_its_bound() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let total = HISTORY_LIMIT + 5;
    for i in 0..total {
        state
            .append(&record(&format!("c{i:03}")))
            .expect("a record appends");
    }
    let all = state.recent(usize::MAX).expect("the history reads");
    assert_eq!(all.len(), HISTORY_LIMIT);
    let expected: Vec<String> = (total - HISTORY_LIMIT..total)
        .map(|i| format!("c{i:03}"))
        .collect();
    assert_eq!(ids(&all), expected, "the oldest five were dropped");

    let path = tmp.path().join("history.jsonl");
    let text = std::fs::read_to_string(&path).expect("the history is text");
    assert_eq!(
        text.lines().count(),
        HISTORY_LIMIT,
        "the file itself is bounded"
    );
    let mode = std::fs::metadata(&path)
        .expect("the history exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the rewritten history's mode");
    assert_eq!(
        names_in(tmp.path()),
        vec!["history.jsonl"],
        "no temp file is left"
    );
}

#[test]
fn lines_that_do_not_parse_are_skipped() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("c1")).expect("a record appends");
    append_raw(&path, b"{\"cycle_id\": 42}\nnot json at all\n\xff\xfe\n\n");
    state.append(&record("c2")).expect("a record appends");
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["c1", "c2"]);
}

#[test]
fn a_record_cut_by_a_crash_does_not_swallow_the_next_one() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("c1")).expect("a record appends");
    // What a crash mid-append leaves: half a line, no newline.
    append_raw(&path, br#"{"cycle_id": "c-cut", "started_at": "2026-"#);
    state.append(&record("c2")).expect("a record appends");
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["c1", "c2"]);
}

#[test]
fn the_bound_counts_unparsable_lines_and_keeps_the_newest() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("oldest")).expect("a record appends");
    let garbage = "garbage\n".repeat(HISTORY_LIMIT - 1);
    append_raw(&path, garbage.as_bytes());
    state.append(&record("newest")).expect("a record appends");
    let text = std::fs::read_to_string(&path).expect("the history is text");
    assert_eq!(text.lines().count(), HISTORY_LIMIT);
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["newest"]);
}

/// A record of a cycle whose every start failed with an app's log in its error, as the
/// resume writes them: 20 log lines of 300 bytes per failed attempt, 60 attempts.
fn loud_record(cycle_id: &str) -> felhom_marker::CycleRecord {
    let log: Vec<String> = (0..20)
        .map(|i| format!("app | line {i}: {}", "x".repeat(300)))
        .collect();
    let mut rec = record(cycle_id);
    rec.errors = (1..=60)
        .map(|a| {
            format!(
                "starting nextcloud (attempt {a}/60): exited (1)\n{}",
                log.join("\n")
            )
        })
        .collect();
    rec
}

#[test]
fn a_record_keeps_a_bounded_number_of_bounded_error_lines() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    // Before: kept whole, 60 errors of 6 KiB each (360 KiB for one record).
    state.append(&loud_record("c-loud")).expect("appends");
    let line = std::fs::read(tmp.path().join("history.jsonl")).expect("the history");
    assert!(line.len() < 64 * 1024, "one record is {} bytes", line.len());
    let kept = state.recent(1).expect("reads").remove(0);
    assert_eq!(kept.errors.len(), 50);
    assert!(
        kept.errors[0].starts_with("starting nextcloud (attempt 1/60): exited (1)\napp | line 0"),
        "each line keeps its beginning: {}",
        &kept.errors[0][..80]
    );
    assert!(
        kept.errors[0].ends_with("more bytes, in the log)"),
        "and says it was cut"
    );
    assert!(kept.errors[0].len() < 1100);
    assert_eq!(kept.errors[49], "… and 11 more error lines, in the log");
    // A record within the bounds is kept as it is.
    state.append(&record("c-quiet")).expect("appends");
    assert_eq!(state.recent(1).expect("reads"), vec![record("c-quiet")]);
}

#[test]
fn the_history_file_is_bounded_in_bytes_and_keeps_the_newest() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    // Before: 200 such records, some 72 MiB, read whole by every status and every start.
    for i in 0..HISTORY_LIMIT {
        state
            .append(&loud_record(&format!("c{i:03}")))
            .expect("appends");
        let size = std::fs::metadata(&path).expect("the history").len();
        assert!(
            size <= felhom_marker::HISTORY_MAX_BYTES as u64,
            "after {i}: {size} bytes"
        );
    }
    let all = state.recent(usize::MAX).expect("reads");
    assert!(
        all.len() > 10 && all.len() < HISTORY_LIMIT,
        "{} kept",
        all.len()
    );
    let last = format!("c{:03}", HISTORY_LIMIT - 1);
    assert_eq!(all.last().map(|r| r.cycle_id.clone()), Some(last));
    let expected: Vec<String> = (HISTORY_LIMIT - all.len()..HISTORY_LIMIT)
        .map(|i| format!("c{i:03}"))
        .collect();
    assert_eq!(ids(&all), expected, "the newest, in order");
    assert_eq!(names_in(tmp.path()), vec!["history.jsonl"]);
}

#[test]
fn a_history_over_its_bytes_written_by_someone_else_is_cut_to_the_newest() {
    let tmp = common::private_dir();
    let state = StateDir::open(tmp.path()).expect("the state dir opens");
    let path = tmp.path().join("history.jsonl");
    state.append(&record("old")).expect("appends");
    // One huge line (an older build kept whole errors), then the bound is hit.
    let huge = format!(
        "{{\"cycle_id\": \"huge\", \"pad\": \"{}\"}}\n",
        "y".repeat(felhom_marker::HISTORY_MAX_BYTES)
    );
    append_raw(&path, huge.as_bytes());
    state.append(&record("new")).expect("appends");
    assert_eq!(ids(&state.recent(10).expect("reads")), vec!["new"]);
    let size = std::fs::metadata(&path).expect("the history").len();
    assert!(size < 4096, "{size}");
}
