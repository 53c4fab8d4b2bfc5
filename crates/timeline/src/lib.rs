//! One quiesce cycle drawn as a standalone SVG picture: a row per stack with a bar for the
//! time it was down (from the beginning of its stop until it ran again), optional sub-marks
//! on it (its stop ended, its start began, the engine saw it healthy …), and vertical lines
//! for the cycle's events (the backup posted, the snapshot, the agent's `done` or `failed`,
//! the bound), over a time axis in seconds from the cycle's start.
//!
//! The input is a plain [`Timeline`] of absolute times, so that anything that knows when
//! things happened can feed it: the controller's cycle record (`felhom-controller status
//! --svg`) as well as the benchmark's engine events. The output is one self-contained
//! document — no script, no external asset, only the generic `sans-serif` font family — and
//! deterministic: the same timeline always gives the same bytes, so pictures can be compared
//! and kept in a repository.
//!
//! ```
//! use chrono::{TimeDelta, TimeZone, Utc};
//! use felhom_timeline::{Line, Mark, Row, Timeline};
//!
//! let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap();
//! let at = |ms| t0 + TimeDelta::milliseconds(ms);
//! let mut timeline = Timeline::new("cycle c-1: done", t0);
//! timeline.rows.push(Row {
//!     name: "nextcloud".into(),
//!     down_from: Some(at(100)),
//!     up_at: Some(at(2_400)),
//!     marks: vec![Mark::new(at(900), "stopped"), Mark::new(at(1_700), "start began")],
//! });
//! timeline.lines.push(Line::new(at(1_500), "snapshot"));
//! let svg = timeline.to_svg();
//! assert!(svg.starts_with("<svg"));
//! ```
#![deny(missing_docs)]

mod svg;

use chrono::{DateTime, Utc};

/// One cycle to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The heading, e.g. `cycle c-20260101-0300: done`.
    pub title: String,
    /// A second line under the heading (empty: none), e.g. the backup's id and the worst
    /// downtime.
    pub subtitle: String,
    /// Time zero of the axis: the cycle's start. Times before it are drawn left of zero.
    pub start: DateTime<Utc>,
    /// The cycle's end, if known: the axis reaches at least this far, and the bar of a stack
    /// that never came back runs to it. Without it, the axis ends at the latest time drawn.
    pub end: Option<DateTime<Utc>>,
    /// One row per stack, drawn top to bottom in this order.
    pub rows: Vec<Row>,
    /// Events of the whole cycle, drawn as vertical lines across every row.
    pub lines: Vec<Line>,
}

/// One stack's way down and up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The stack's name (any text: it is escaped).
    pub name: String,
    /// When its stop began: the app stopped serving. `None`: not recorded (the row shows its
    /// marks only; a row without a bar and without marks says so).
    pub down_from: Option<DateTime<Utc>>,
    /// When it ran again. `None` with a `down_from`: it never came back — the bar runs to the
    /// end of the axis and is marked so.
    pub up_at: Option<DateTime<Utc>>,
    /// Sub-marks on the row, each drawn as a tick in a colour of its own label (listed in the
    /// legend); a mark with an empty label is a plain grey tick, not in the legend.
    pub marks: Vec<Mark>,
}

/// A point in one row's life, e.g. `stopped` or `start began`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// When.
    pub at: DateTime<Utc>,
    /// What (marks that share a label share a colour).
    pub label: String,
}

/// An event of the whole cycle, e.g. `snapshot` or `done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When.
    pub at: DateTime<Utc>,
    /// What; drawn at the top of the line with its time from the start.
    pub label: String,
}

impl Timeline {
    /// An empty timeline titled `title` whose axis starts at `start`.
    pub fn new(title: impl Into<String>, start: DateTime<Utc>) -> Timeline {
        Timeline {
            title: title.into(),
            subtitle: String::new(),
            start,
            end: None,
            rows: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// The picture: one standalone SVG document (UTF-8, no external reference).
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }
}

impl Mark {
    /// A mark `label` at `at`.
    pub fn new(at: DateTime<Utc>, label: impl Into<String>) -> Mark {
        Mark {
            at,
            label: label.into(),
        }
    }
}

impl Line {
    /// A line `label` at `at`.
    pub fn new(at: DateTime<Utc>, label: impl Into<String>) -> Line {
        Line {
            at,
            label: label.into(),
        }
    }
}
