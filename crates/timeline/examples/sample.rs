//! Writes a sample picture of a cycle to the file named by the first argument (or stdout):
//! `cargo run -p felhom-timeline --example sample -- /tmp/cycle.svg`.

use chrono::{TimeDelta, TimeZone, Utc};
use felhom_timeline::{Line, Mark, Row, Timeline};

fn main() -> std::io::Result<()> {
    let Some(t0) = Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).single() else {
        return Ok(());
    };
    let at = |ms: i64| t0 + TimeDelta::milliseconds(ms);
    let mut t = Timeline::new("cycle c-20260101-030000: done", t0);
    t.subtitle = "backup b-42 · 5 stacks · max downtime 4.10 s · one never came back".into();
    t.end = Some(at(9_800));
    let stacks = [
        ("demo-notes", 40, 2_100, Some(4_150)),
        ("demo-photos", 45, 300, Some(3_700)),
        ("demo-wiki", 50, 350, Some(4_900)),
        ("nextcloud <prod> & co", 60, 2_400, Some(4_300)),
        ("immich", 70, 500, None),
    ];
    for (name, from, stopped, up) in stacks {
        let mut marks = vec![Mark::new(at(stopped), "stopped")];
        if up.is_some() {
            marks.push(Mark::new(at(3_450), "start began"));
        }
        t.rows.push(Row {
            name: name.into(),
            down_from: Some(at(from)),
            up_at: up.map(at),
            marks,
        });
    }
    t.lines = vec![
        Line::new(at(2_420), "backup posted"),
        Line::new(at(3_420), "snapshot"),
        Line::new(at(9_700), "agent: done"),
    ];
    let svg = t.to_svg();
    match std::env::args().nth(1) {
        Some(path) => std::fs::write(path, svg),
        None => {
            print!("{svg}");
            Ok(())
        }
    }
}
