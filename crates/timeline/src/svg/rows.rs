//! The rows, one per stack: its name, its bar from the stop to running again (or to the end,
//! marked, when it never came back) with the downtime on the right, and its marks.

use chrono::{DateTime, Utc};

use super::axis::{offset, Scale};
use super::text::{esc, n, seconds_text};
use super::{
    Layout, BAR_H, DOWN, FIGURE_X, MARK_COLOURS, NAME_CHARS, NAME_X, PLOT_X0, PLOT_X1, ROW_H,
    STRANDED, UNLABELLED_MARK, WIDTH,
};
use crate::{Row, Timeline};

/// Every other row's background, first, so that everything else is drawn over them.
pub(super) fn backgrounds(body: &mut Vec<String>, t: &Timeline, layout: &Layout) {
    for i in (0..t.rows.len()).filter(|i| i % 2 == 0) {
        let ry = layout.rows_top + i as f64 * ROW_H;
        body.push(format!(
            r##"<rect x="0" y="{}" width="{WIDTH}" height="{ROW_H}" fill="#f4f4f4"/>"##,
            n(ry)
        ));
    }
}

/// Each row, or a line that says there is none.
pub(super) fn draw(
    body: &mut Vec<String>,
    t: &Timeline,
    scale: Scale,
    layout: &Layout,
    mark_labels: &[String],
) {
    if t.rows.is_empty() {
        body.push(format!(
            r##"<text x="{NAME_X}" y="{}" fill="#444444" font-style="italic">no stack was stopped</text>"##,
            n(layout.rows_top + ROW_H / 2.0 + 4.0)
        ));
    }
    for (i, row) in t.rows.iter().enumerate() {
        let top = layout.rows_top + i as f64 * ROW_H;
        name(body, row, top);
        match (row.down_from, row.up_at) {
            (Some(from), up) => bar(body, t, scale, row, (from, up), top),
            (None, _) if row.marks.is_empty() => body.push(format!(
                r##"<text x="{PLOT_X0}" y="{}" fill="#777777" font-style="italic">no times recorded</text>"##,
                text_y(top)
            )),
            (None, _) => {}
        }
        marks(body, t, scale, row, top, mark_labels);
    }
}

/// Where the text of the row at `top` stands.
fn text_y(top: f64) -> String {
    n(top + ROW_H / 2.0 + 4.0)
}

/// Where the bar of the row at `top` begins.
fn bar_y(top: f64) -> f64 {
    top + (ROW_H - BAR_H) / 2.0
}

/// The stack's name, cut where it is long (the full name in its tooltip).
fn name(body: &mut Vec<String>, row: &Row, top: f64) {
    let shown: String = if row.name.chars().count() > NAME_CHARS {
        row.name.chars().take(NAME_CHARS - 1).chain(['…']).collect()
    } else {
        row.name.clone()
    };
    body.push(format!(
        r#"<text class="name" x="{NAME_X}" y="{}"><title>{}</title>{}</text>"#,
        text_y(top),
        esc(&row.name),
        esc(&shown)
    ));
}

/// The bar `from` the stop to running again (`up`), its downtime on the right; without `up`,
/// to the end of the plot, marked as never back.
fn bar(
    body: &mut Vec<String>,
    t: &Timeline,
    scale: Scale,
    row: &Row,
    (from, up): (DateTime<Utc>, Option<DateTime<Utc>>),
    top: f64,
) {
    let (text_y, bar_y) = (text_y(top), bar_y(top));
    let from_s = offset(t.start, from);
    let x0 = scale.x(from_s);
    let (x1, class, fill, figure, tip) = match up {
        Some(up) => {
            let down = offset(from, up);
            (
                scale.x(offset(t.start, up)),
                "down",
                DOWN.to_owned(),
                format!(
                    r#"<text class="figure" x="{FIGURE_X}" y="{text_y}">{}</text>"#,
                    seconds_text(down)
                ),
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

/// The row's marks: a tick each, in its label's colour (grey without a label).
fn marks(
    body: &mut Vec<String>,
    t: &Timeline,
    scale: Scale,
    row: &Row,
    top: f64,
    mark_labels: &[String],
) {
    let bar_y = bar_y(top);
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
pub(super) fn mark_labels(t: &Timeline) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for mark in t.rows.iter().flat_map(|r| &r.marks) {
        if !mark.label.is_empty() && !labels.contains(&mark.label) {
            labels.push(mark.label.clone());
        }
    }
    labels
}
