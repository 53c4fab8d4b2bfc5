//! What a command that ran a cycle or a recovery (`once`, `recover`) tells its caller beside
//! the record: the lines that need a person. Each line is the reason for exit status 1
//! (SPEC §5); the binary prints them on stderr.

use felhom_marker::CycleRecord;
use felhom_quiesce::Overview;

/// A line for each stack of `record` whose capture is not app-consistent (`killed`, `live`,
/// `hook-failed`: SPEC §2 rule 10 names them, it does not only count them).
pub fn not_app_consistent(record: &CycleRecord) -> Vec<String> {
    record
        .inconsistent()
        .into_iter()
        .map(|stack| {
            format!(
                "the backup is not app-consistent for {}: its capture is {} (the record's facts say which container; docs/operations.md, \"A capture that is not clean\")",
                stack.name, stack.capture
            )
        })
        .collect()
}

/// What the command leaves for a person or for the daemon, a line each: the engine was still
/// away when the wait for it ended (the marker is kept), or a marker could not be removed.
pub fn left_undone(overview: &Overview) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(since) = overview.engine_unreachable_since {
        lines.push(format!(
            "the docker engine cannot be reached (waiting since {}): the marker is kept; the daemon, or `felhom-controller recover` once the engine answers, brings the stacks back",
            since.to_rfc3339()
        ));
    }
    if let Some(stuck) = &overview.marker_stuck {
        lines.push(stuck.clone());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn an_engine_away_and_a_stuck_marker_are_each_a_line_and_nothing_else_is() {
        assert!(left_undone(&Overview::default()).is_empty());
        let overview = Overview {
            engine_unreachable_since: Some(Utc::now()),
            marker_stuck: Some("clearing the marker: read-only".into()),
            ..Overview::default()
        };
        let lines = left_undone(&overview);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("the marker is kept"), "{lines:?}");
        assert_eq!(lines[1], "clearing the marker: read-only");
    }
}
