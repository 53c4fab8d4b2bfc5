//! The legend below the axis: the bar, the stranded bar and each mark label's colour, as far
//! as the picture has them, wrapped to the width.

use super::text::{esc, n};
use super::{BAR_H, CHAR_W, DOWN, MARK_COLOURS, NAME_X, STRANDED, WIDTH};
use crate::Timeline;

/// Draws the legend from `top` on; the picture's height with it.
pub(super) fn draw(body: &mut Vec<String>, t: &Timeline, mark_labels: &[String], top: f64) -> f64 {
    let mut entries: Vec<(String, String)> = Vec::new();
    if t.rows.iter().any(|r| r.down_from.is_some()) {
        entries.push((
            format!(r#"<rect x="0" y="-9" width="18" height="{BAR_H}" rx="2" fill="{DOWN}"/>"#),
            "down: stop began → runs again".into(),
        ));
    }
    let any_stranded = t
        .rows
        .iter()
        .any(|r| r.down_from.is_some() && r.up_at.is_none());
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
    let (mut lx, mut ly) = (NAME_X, top);
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
    if entries.is_empty() {
        top
    } else {
        ly + 14.0
    }
}
