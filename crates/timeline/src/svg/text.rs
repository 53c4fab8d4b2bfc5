//! Numbers and text as the picture shows them: durations for people, coordinates to a tenth
//! of a pixel, XML escapes.

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
pub(super) fn signed_seconds(s: f64) -> String {
    if s < 0.0 {
        seconds_text(s)
    } else {
        format!("+{}", seconds_text(s))
    }
}

/// A coordinate to a tenth of a pixel, without a trailing `.0`.
pub(super) fn n(v: f64) -> String {
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
