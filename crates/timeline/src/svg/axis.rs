//! The time axis: where a time goes across the plot ([`Scale`]), round ticks, and the axis
//! drawn below the rows.

use chrono::{DateTime, Utc};

use super::text::n;
use super::{Layout, PLOT_X0, PLOT_X1};
use crate::Timeline;

/// The axis: seconds from the cycle's start, `lo` at [`PLOT_X0`], `hi` at [`PLOT_X1`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scale {
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

impl Scale {
    /// Covers zero, `end` and every time drawn, with a little room on the right.
    pub(crate) fn of(timeline: &Timeline) -> Scale {
        let offsets = every_time(timeline).map(|t| offset(timeline.start, t));
        let (mut lo, mut hi) = (0.0_f64, 0.0_f64);
        for s in offsets {
            lo = lo.min(s);
            hi = hi.max(s);
        }
        if hi - lo < 0.001 {
            hi = lo + 1.0;
        }
        // Room after the last event, so that a bar ending there stays visible as ending.
        let end = timeline.end.map(|e| offset(timeline.start, e));
        if end.is_none_or(|e| e < hi) {
            hi += (hi - lo) * 0.02;
        }
        Scale { lo, hi }
    }

    pub(crate) fn x(self, seconds: f64) -> f64 {
        PLOT_X0 + (seconds - self.lo) / (self.hi - self.lo) * (PLOT_X1 - PLOT_X0)
    }
}

fn every_time(t: &Timeline) -> impl Iterator<Item = DateTime<Utc>> + '_ {
    t.end
        .into_iter()
        .chain(t.lines.iter().map(|l| l.at))
        .chain(t.rows.iter().flat_map(|r| {
            r.down_from
                .into_iter()
                .chain(r.up_at)
                .chain(r.marks.iter().map(|m| m.at))
        }))
}

/// Seconds from `start` to `t` (negative before it), to the microsecond.
pub(crate) fn offset(start: DateTime<Utc>, t: DateTime<Utc>) -> f64 {
    let d = t - start;
    d.num_microseconds()
        .map_or_else(|| d.num_milliseconds() as f64 / 1e3, |us| us as f64 / 1e6)
}

/// The grid lines across the rows, their tick labels below them, the axis line and its title.
pub(super) fn draw(body: &mut Vec<String>, scale: Scale, layout: &Layout) {
    let axis_y = layout.axis_y;
    for s in ticks(scale) {
        let x = n(scale.x(s));
        body.push(format!(
            r##"<line class="grid" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#dddddd"/>"##,
            n(layout.rows_top),
            n(axis_y)
        ));
        body.push(format!(
            r##"<text class="tick" x="{x}" y="{}" text-anchor="middle" font-size="11" fill="#444444">{}</text>"##,
            n(axis_y + 14.0),
            tick_label(s, scale)
        ));
    }
    body.push(format!(
        r##"<line x1="{PLOT_X0}" y1="{y}" x2="{PLOT_X1}" y2="{y}" stroke="#888888"/>"##,
        y = n(axis_y)
    ));
    body.push(format!(
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#444444">seconds from the cycle's start</text>"##,
        n((PLOT_X0 + PLOT_X1) / 2.0),
        n(axis_y + 30.0)
    ));
}

/// Round tick values (1, 2 or 5 times a power of ten seconds) across the axis, about ten.
pub(crate) fn ticks(scale: Scale) -> Vec<f64> {
    let step = tick_step(scale);
    let first = (scale.lo / step).ceil() as i64;
    let last = (scale.hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick_step(scale: Scale) -> f64 {
    let raw = (scale.hi - scale.lo) / 10.0;
    let magnitude = 10_f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

pub(super) fn tick_label(s: f64, scale: Scale) -> String {
    let step = tick_step(scale);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    let text = format!("{s:.decimals$}");
    // No "-0" for a zero that came out of a float a hair below it.
    if text
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        text.trim_start_matches('-').to_owned()
    } else {
        text
    }
}
