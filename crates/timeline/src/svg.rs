//! The drawing: a fixed layout (names on the left, the plot in the middle, each stack's
//! downtime on the right; event labels above, the axis and the legend below), coordinates
//! rounded to a tenth of a pixel so that the output is the same bytes on every run.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::{Row, Timeline};

/// The document's width; everything else is laid out from the left.
pub(crate) const WIDTH: f64 = 1000.0;
/// Where the stack names begin (left-aligned).
const NAME_X: f64 = 12.0;
/// The plot: x of time `lo` and of time `hi` of the axis.
pub(crate) const PLOT_X0: f64 = 220.0;
pub(crate) const PLOT_X1: f64 = 860.0;
/// Where the downtime figures on the right begin.
const FIGURE_X: f64 = 870.0;
const ROW_H: f64 = 24.0;
const BAR_H: f64 = 12.0;
/// One level of event labels above the plot.
const LEVEL_H: f64 = 15.0;
/// Event labels that would overlap go one level up, up to this many levels.
const MAX_LEVELS: usize = 5;
/// A rough width of one character at 11 px in a generic sans-serif face: enough to keep
/// labels from overlapping without knowing the viewer's font.
const CHAR_W: f64 = 6.6;
/// A stack name longer than this is cut (the full name is in the row's tooltip).
const NAME_CHARS: usize = 30;

const DOWN: &str = "#f0a030";
const STRANDED: &str = "#c62828";
const UNLABELLED_MARK: &str = "#777777";
/// Colours of the marks, by label in order of first appearance.
const MARK_COLOURS: [&str; 6] = [
    "#1f4e79", "#2e7d32", "#6a1b9a", "#00838f", "#5d4037", "#37474f",
];
/// Colours of the event lines, in time order.
const LINE_COLOURS: [&str; 5] = ["#1565c0", "#ad1457", "#2e7d32", "#6d4c41", "#4527a0"];

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

pub(crate) fn render(t: &Timeline) -> String {
    let scale = Scale::of(t);
    let mut out = String::new();

    // The heading.
    let mut y = 26.0;
    let heading = format!(
        r#"<text x="{NAME_X}" y="{y}" font-size="15" font-weight="bold">{}</text>"#,
        esc(&t.title)
    );
    let mut body = vec![heading];
    if !t.subtitle.is_empty() {
        y += 18.0;
        body.push(format!(
            r##"<text x="{NAME_X}" y="{y}" fill="#444444">{}</text>"##,
            esc(&t.subtitle)
        ));
    }

    // Event labels, staggered in levels so that none covers another.
    let mut lines: Vec<(usize, &crate::Line)> = t.lines.iter().enumerate().collect();
    lines.sort_by(|a, b| a.1.at.cmp(&b.1.at).then(a.0.cmp(&b.0)));
    let placed = place_labels(t.start, scale, &lines);
    let levels = placed.iter().map(|p| p.level + 1).max().unwrap_or(0);
    let band_top = y + 10.0;
    let rows_top = band_top + levels as f64 * LEVEL_H + 8.0;
    let row_count = t.rows.len().max(1);
    let rows_bottom = rows_top + row_count as f64 * ROW_H;

    // Row backgrounds first, so that everything else is drawn over them.
    for i in (0..t.rows.len()).filter(|i| i % 2 == 0) {
        let ry = rows_top + i as f64 * ROW_H;
        body.push(format!(
            r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW_H}" fill="#f4f4f4"/>"##,
            n(ry)
        ));
    }

    // The axis: grid lines, then tick labels below the rows.
    let axis_y = rows_bottom + 4.0;
    for s in ticks(scale) {
        let x = n(scale.x(s));
        body.push(format!(
            r##"<line class="grid" x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#dddddd"/>"##,
            n(rows_top),
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

    // The rows.
    let mark_labels = mark_labels(t);
    if t.rows.is_empty() {
        body.push(format!(
            r##"<text x="{NAME_X}" y="{}" fill="#444444" font-style="italic">no stack was stopped</text>"##,
            n(rows_top + ROW_H / 2.0 + 4.0)
        ));
    }
    let any_stranded = t
        .rows
        .iter()
        .any(|r| r.down_from.is_some() && r.up_at.is_none());
    for (i, row) in t.rows.iter().enumerate() {
        draw_row(
            &mut body,
            t,
            scale,
            row,
            rows_top + i as f64 * ROW_H,
            &mark_labels,
        );
    }

    // The event lines over the rows, their labels above.
    for p in &placed {
        let colour = LINE_COLOURS[p.order % LINE_COLOURS.len()];
        let line = &t.lines[p.index];
        let x = n(p.x);
        let when = seconds_text(offset(t.start, line.at));
        body.push(format!(
            r#"<g class="event"><title>{} at {when}</title><line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3"/><text x="{}" y="{}" font-size="11" fill="{colour}" text-anchor="{}">{}</text></g>"#,
            esc(&line.label),
            n(band_top + p.level as f64 * LEVEL_H + 4.0),
            n(rows_bottom),
            n(p.text_x),
            n(band_top + p.level as f64 * LEVEL_H + 1.0),
            if p.anchor_end { "end" } else { "start" },
            esc(&p.text),
        ));
    }

    // The legend.
    let legend_y = axis_y + 52.0;
    let mut entries: Vec<(String, String)> = Vec::new();
    if t.rows.iter().any(|r| r.down_from.is_some()) {
        entries.push((
            format!(r#"<rect x="0" y="-9" width="18" height="{BAR_H}" rx="2" fill="{DOWN}"/>"#),
            "down: stop began → runs again".into(),
        ));
    }
    if any_stranded {
        entries.push((
            format!(
                r#"<rect x="0" y="-9" width="18" height="{BAR_H}" fill="url(#stranded)" stroke="{STRANDED}"/>"#
            ),
            "never came back".into(),
        ));
    }
    for (i, label) in mark_labels.iter().enumerate() {
        entries.push((
            format!(
                r#"<rect x="7" y="-12" width="3" height="{}" fill="{}"/>"#,
                BAR_H + 6.0,
                MARK_COLOURS[i % MARK_COLOURS.len()]
            ),
            label.clone(),
        ));
    }
    let (mut lx, mut ly) = (NAME_X, legend_y);
    for (swatch, text) in &entries {
        let w = 24.0 + text.chars().count() as f64 * CHAR_W + 18.0;
        if lx + w > WIDTH - NAME_X && lx > NAME_X {
            lx = NAME_X;
            ly += 18.0;
        }
        body.push(format!(
            r#"<g class="legend" transform="translate({},{})">{swatch}<text x="24" y="1" font-size="11">{}</text></g>"#,
            n(lx),
            n(ly),
            esc(text)
        ));
        lx += w;
    }
    let height = if entries.is_empty() {
        legend_y
    } else {
        ly + 14.0
    };

    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" font-family="sans-serif" font-size="12">"#,
        h = n(height)
    );
    let _ = write!(
        out,
        r##"<title>{}</title><defs><pattern id="stranded" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="8" height="8" fill="#ffcdd2"/><rect width="4" height="8" fill="{STRANDED}"/></pattern></defs>"##,
        esc(&t.title)
    );
    out.push_str(r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    for element in body {
        out.push('\n');
        out.push_str(&element);
    }
    out.push_str("\n</svg>\n");
    out
}

fn draw_row(
    body: &mut Vec<String>,
    t: &Timeline,
    scale: Scale,
    row: &Row,
    top: f64,
    mark_labels: &[String],
) {
    let text_y = n(top + ROW_H / 2.0 + 4.0);
    let bar_y = top + (ROW_H - BAR_H) / 2.0;
    let shown: String = if row.name.chars().count() > NAME_CHARS {
        row.name.chars().take(NAME_CHARS - 1).chain(['…']).collect()
    } else {
        row.name.clone()
    };
    body.push(format!(
        r#"<text class="name" x="{NAME_X}" y="{text_y}"><title>{}</title>{}</text>"#,
        esc(&row.name),
        esc(&shown)
    ));
    match (row.down_from, row.up_at) {
        (Some(from), up) => {
            let from_s = offset(t.start, from);
            let x0 = scale.x(from_s);
            let (x1, class, fill, figure, tip) = match up {
                Some(up) => {
                    let down = offset(from, up);
                    (
                        scale.x(offset(t.start, up)),
                        "down",
                        DOWN.to_owned(),
                        format!(r#"<text class="figure" x="{FIGURE_X}" y="{text_y}">{}</text>"#, seconds_text(down)),
                        format!(
                            "{}: down {} (from {} to {})",
                            row.name,
                            seconds_text(down),
                            seconds_text(from_s),
                            seconds_text(offset(t.start, up))
                        ),
                    )
                }
                None => (
                    PLOT_X1,
                    "down stranded",
                    "url(#stranded)".to_owned(),
                    format!(
                        r#"<text class="figure" x="{FIGURE_X}" y="{text_y}" fill="{STRANDED}" font-weight="bold">never came back</text>"#
                    ),
                    format!(
                        "{}: down from {}, never came back",
                        row.name,
                        seconds_text(from_s)
                    ),
                ),
            };
            let stroke = if up.is_none() {
                format!(r#" stroke="{STRANDED}""#)
            } else {
                String::new()
            };
            body.push(format!(
                r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{BAR_H}" rx="2" fill="{fill}"{stroke}><title>{}</title></rect>"#,
                n(x0),
                n(bar_y),
                n((x1 - x0).max(1.0)),
                esc(&tip)
            ));
            body.push(figure);
        }
        (None, _) if row.marks.is_empty() => body.push(format!(
            r##"<text x="{PLOT_X0}" y="{text_y}" fill="#777777" font-style="italic">no times recorded</text>"##
        )),
        (None, _) => {}
    }
    for mark in &row.marks {
        let x = scale.x(offset(t.start, mark.at));
        let tip = format!(
            "{}: {} at {}",
            row.name,
            if mark.label.is_empty() {
                "event"
            } else {
                &mark.label
            },
            seconds_text(offset(t.start, mark.at))
        );
        let (colour, w, extra) = match mark_labels.iter().position(|l| *l == mark.label) {
            Some(i) => (MARK_COLOURS[i % MARK_COLOURS.len()], 3.0, 3.0),
            None => (UNLABELLED_MARK, 1.5, 1.0),
        };
        body.push(format!(
            r#"<rect class="mark" x="{}" y="{}" width="{w}" height="{}" fill="{colour}"><title>{}</title></rect>"#,
            n(x - w / 2.0),
            n(bar_y - extra),
            n(BAR_H + 2.0 * extra),
            esc(&tip)
        ));
    }
}

/// The distinct non-empty mark labels, in order of first appearance (their colours).
fn mark_labels(t: &Timeline) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for mark in t.rows.iter().flat_map(|r| &r.marks) {
        if !mark.label.is_empty() && !labels.contains(&mark.label) {
            labels.push(mark.label.clone());
        }
    }
    labels
}

/// Where an event's label goes.
#[derive(Debug)]
struct Placed {
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

fn tick_label(s: f64, scale: Scale) -> String {
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

/// A duration for people: `0.21 s`, `12.3 s`, `125 s`.
pub(crate) fn seconds_text(s: f64) -> String {
    let a = s.abs();
    if a < 10.0 {
        format!("{s:.2} s")
    } else if a < 100.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// A time on the axis: `+0.21 s`, `-0.05 s`.
fn signed_seconds(s: f64) -> String {
    if s < 0.0 {
        seconds_text(s)
    } else {
        format!("+{}", seconds_text(s))
    }
}

/// A coordinate to a tenth of a pixel, without a trailing `.0`.
fn n(v: f64) -> String {
    let text = format!("{v:.1}");
    match text.strip_suffix(".0") {
        Some("-0") => "0".to_owned(),
        Some(whole) => whole.to_owned(),
        None => text,
    }
}

/// Text for XML content and attribute values: the five special characters escaped, and the
/// characters XML 1.0 does not allow at all (most control characters) replaced.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
