//! The cycle's events: a dashed line each across every row, its label above the rows, labels
//! staggered in levels so that none covers another.

use chrono::{DateTime, Utc};

use super::axis::{offset, Scale};
use super::text::{esc, n, seconds_text, signed_seconds};
use super::{Layout, CHAR_W, LEVEL_H, LINE_COLOURS, MAX_LEVELS, WIDTH};
use crate::Timeline;

/// Where an event's label goes.
#[derive(Debug)]
pub(super) struct Placed {
    /// Index into the timeline's lines.
    index: usize,
    /// Rank in time order (its colour).
    order: usize,
    level: usize,
    x: f64,
    text_x: f64,
    anchor_end: bool,
    text: String,
}

/// Where each event's label goes, the events taken in time order (the earlier first where two
/// are at the same time).
pub(super) fn place(t: &Timeline, scale: Scale) -> Vec<Placed> {
    let mut lines: Vec<(usize, &crate::Line)> = t.lines.iter().enumerate().collect();
    lines.sort_by(|a, b| a.1.at.cmp(&b.1.at).then(a.0.cmp(&b.0)));
    place_labels(t.start, scale, &lines)
}

/// How many levels the labels take.
pub(super) fn levels(placed: &[Placed]) -> usize {
    placed.iter().map(|p| p.level + 1).max().unwrap_or(0)
}

/// Each label right of its line (left of it where it would leave the picture), on the lowest
/// level where it overlaps no other; where every level is taken, on the one whose last label
/// ends first.
fn place_labels(
    start: DateTime<Utc>,
    scale: Scale,
    lines: &[(usize, &crate::Line)],
) -> Vec<Placed> {
    let mut ends: Vec<f64> = Vec::new();
    let mut placed = Vec::new();
    for (order, (index, line)) in lines.iter().enumerate() {
        let s = offset(start, line.at);
        let x = scale.x(s);
        let text = format!("{} {}", line.label, signed_seconds(s));
        let w = text.chars().count() as f64 * CHAR_W;
        let anchor_end = x + 3.0 + w > WIDTH - 4.0;
        let (left, text_x) = if anchor_end {
            (x - 3.0 - w, x - 3.0)
        } else {
            (x, x + 3.0)
        };
        let right = left + w + 3.0;
        let level = match ends.iter().position(|&end| end + 4.0 <= left) {
            Some(level) => level,
            None if ends.len() < MAX_LEVELS => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
            None => ends
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i),
        };
        ends[level] = right;
        placed.push(Placed {
            index: *index,
            order,
            level,
            x,
            text_x,
            anchor_end,
            text,
        });
    }
    placed
}

/// The event lines over the rows, their labels above.
pub(super) fn draw(body: &mut Vec<String>, t: &Timeline, placed: &[Placed], layout: &Layout) {
    for p in placed {
        let colour = LINE_COLOURS[p.order % LINE_COLOURS.len()];
        let line = &t.lines[p.index];
        let x = n(p.x);
        let when = seconds_text(offset(t.start, line.at));
        body.push(format!(
            r#"<g class="event"><title>{} at {when}</title><line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/><text x="{}" y="{}" font-size="11" fill="{colour}" text-anchor="{}">{}</text></g>"#,
            esc(&line.label),
            n(layout.band_top + p.level as f64 * LEVEL_H + 4.0),
            n(layout.rows_bottom),
            n(p.text_x),
            n(layout.band_top + p.level as f64 * LEVEL_H + 1.0),
            if p.anchor_end { "end" } else { "start" },
            esc(&p.text),
        ));
    }
}
