//! The drawing: a fixed layout (names on the left, the plot in the middle, each stack's
//! downtime on the right; event labels above, the axis and the legend below), coordinates
//! rounded to a tenth of a pixel so that the output is the same bytes on every run.
//!
//! This file lays the picture out and puts it together; `axis`, `rows`, `events` and
//! `legend` draw each part, `text` writes numbers and text as the picture shows them.

mod axis;
mod events;
mod legend;
mod rows;
mod text;

use std::fmt::Write as _;

use crate::Timeline;

use axis::Scale;
use text::{esc, n};

// What the tests (`tests.rs`) use of the parts, by the names they had in one file.
#[cfg(test)]
use {
    axis::{tick_label, ticks},
    chrono::{DateTime, Utc},
    text::seconds_text,
};

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

/// Where the parts of the picture go, from the top: the heading, the band of event labels,
/// the rows, the axis below them.
struct Layout {
    /// The top of the event labels' band.
    band_top: f64,
    rows_top: f64,
    rows_bottom: f64,
    /// The axis line, right below the rows.
    axis_y: f64,
}

impl Layout {
    /// Below a heading that ends at `heading_y`, with `levels` of event labels and `rows`.
    fn new(heading_y: f64, levels: usize, rows: usize) -> Layout {
        let band_top = heading_y + 10.0;
        let rows_top = band_top + levels as f64 * LEVEL_H + 8.0;
        let rows_bottom = rows_top + rows.max(1) as f64 * ROW_H;
        Layout {
            band_top,
            rows_top,
            rows_bottom,
            axis_y: rows_bottom + 4.0,
        }
    }
}

pub(crate) fn render(t: &Timeline) -> String {
    let scale = Scale::of(t);
    let mut body = Vec::new();
    let heading_y = heading(&mut body, t);
    let placed = events::place(t, scale);
    let layout = Layout::new(heading_y, events::levels(&placed), t.rows.len());
    rows::backgrounds(&mut body, t, &layout);
    axis::draw(&mut body, scale, &layout);
    let mark_labels = rows::mark_labels(t);
    rows::draw(&mut body, t, scale, &layout, &mark_labels);
    events::draw(&mut body, t, &placed, &layout);
    let height = legend::draw(&mut body, t, &mark_labels, layout.axis_y + 52.0);
    document(t, height, body)
}

/// The title, and the subtitle under it if there is one; where the heading ends.
fn heading(body: &mut Vec<String>, t: &Timeline) -> f64 {
    let mut y = 26.0;
    body.push(format!(
        r#"<text x="{NAME_X}" y="{y}" font-size="15" font-weight="bold">{}</text>"#,
        esc(&t.title)
    ));
    if !t.subtitle.is_empty() {
        y += 18.0;
        body.push(format!(
            r##"<text x="{NAME_X}" y="{y}" fill="#444444">{}</text>"##,
            esc(&t.subtitle)
        ));
    }
    y
}

/// The standalone document around the drawn elements.
fn document(t: &Timeline, height: f64, body: Vec<String>) -> String {
    let mut out = String::new();
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

#[cfg(test)]
mod tests;
