use super::*;
use crate::{Line, Mark, Row, Timeline};
use chrono::{TimeDelta, TimeZone};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0)
        .single()
        .expect("a valid time")
}

fn at(ms: i64) -> DateTime<Utc> {
    t0() + TimeDelta::milliseconds(ms)
}

fn row(name: &str, from_ms: i64, up_ms: Option<i64>) -> Row {
    Row {
        name: name.into(),
        down_from: Some(at(from_ms)),
        up_at: up_ms.map(at),
        marks: Vec::new(),
    }
}

fn parse(svg: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
}

/// The elements whose `class` contains `class`, in document order.
fn with_class<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    class: &str,
) -> Vec<roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|w| w == class))
        })
        .collect()
}

fn number(node: roxmltree::Node<'_, '_>, attribute: &str) -> f64 {
    node.attribute(attribute)
        .unwrap_or_else(|| panic!("no {attribute} on {node:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{attribute} of {node:?}: {e}"))
}

/// The text of an element and of its children, but not of its `<title>` tooltip.
fn shown_text(node: roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(|c| !c.has_tag_name("title"))
        .map(|c| {
            if c.is_text() {
                c.text().unwrap_or_default().to_owned()
            } else {
                shown_text(c)
            }
        })
        .collect()
}

#[test]
fn each_row_gets_one_bar_from_its_stop_to_its_start() {
    let mut t = Timeline::new("cycle c-1: done", t0());
    t.end = Some(at(10_000));
    t.rows = vec![
        row("alpha", 1_000, Some(3_000)),
        row("beta", 2_000, Some(6_000)),
    ];
    t.lines = vec![Line::new(at(5_000), "snapshot")];
    let svg = t.to_svg();
    let doc = parse(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let bars = with_class(&doc, "down");
    assert_eq!(bars.len(), 2, "{svg}");
    // The axis runs from 0 to the end (10 s) across the plot.
    let scale = Scale::of(&t);
    assert_eq!(scale, Scale { lo: 0.0, hi: 10.0 });
    let per_second = (PLOT_X1 - PLOT_X0) / 10.0;
    for (bar, (from, to)) in bars.iter().zip([(1.0, 3.0), (2.0, 6.0)]) {
        let x = number(*bar, "x");
        let w = number(*bar, "width");
        assert!((x - (PLOT_X0 + from * per_second)).abs() < 0.06, "{bar:?}");
        assert!(
            (x + w - (PLOT_X0 + to * per_second)).abs() < 0.11,
            "{bar:?}"
        );
    }
    // The figures on the right are the downtimes; the names are on the left.
    let figures: Vec<String> = with_class(&doc, "figure")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(figures, ["2.00 s", "4.00 s"]);
    let names: Vec<String> = with_class(&doc, "name")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    // The event line stands at 5 s, labelled with its time.
    let event = with_class(&doc, "event");
    assert_eq!(event.len(), 1);
    let line = event[0]
        .children()
        .find(|c| c.has_tag_name("line"))
        .expect("a line");
    assert!((number(line, "x1") - (PLOT_X0 + 5.0 * per_second)).abs() < 0.06);
    assert_eq!(shown_text(event[0]), "snapshot +5.00 s");
    // Ticks every second, labelled 0 … 10.
    let ticks: Vec<String> = with_class(&doc, "tick")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(
        ticks,
        ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
    );
}

#[test]
fn names_and_labels_are_escaped() {
    let nasty = r#"<&>"' ]]> <script>x</script>"#;
    let mut t = Timeline::new(format!("title {nasty}"), t0());
    t.subtitle = format!("sub {nasty}");
    let mut r = row(nasty, 0, Some(1_000));
    r.marks.push(Mark::new(at(500), nasty));
    t.rows.push(r);
    t.lines.push(Line::new(at(700), nasty));
    // Control characters are not allowed in XML 1.0 at all, not even escaped.
    t.rows.push(row("bell\u{7}stack", 0, Some(1_000)));
    let svg = t.to_svg();
    let doc = parse(&svg);
    assert!(!svg.contains("<script"), "{svg}");
    let names: Vec<String> = with_class(&doc, "name")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(names[0], nasty);
    assert_eq!(names[1], "bell\u{FFFD}stack");
    let event = with_class(&doc, "event");
    assert_eq!(shown_text(event[0]), format!("{nasty} +0.70 s"));
    let legend: Vec<String> = with_class(&doc, "legend")
        .into_iter()
        .map(shown_text)
        .collect();
    assert!(legend.contains(&nasty.to_owned()), "{legend:?}");
    let title = doc
        .root_element()
        .children()
        .find(|c| c.has_tag_name("title"))
        .and_then(|c| c.text());
    assert_eq!(title, Some(format!("title {nasty}").as_str()));
}

#[test]
fn an_empty_cycle_is_a_picture_that_says_so() {
    let t = Timeline::new("cycle c-0: failed", t0());
    let svg = t.to_svg();
    let doc = parse(&svg);
    assert!(with_class(&doc, "down").is_empty());
    assert!(svg.contains("no stack was stopped"), "{svg}");
    // The axis still has a sensible range.
    assert_eq!(Scale::of(&t), Scale { lo: 0.0, hi: 1.02 });
    assert!(!with_class(&doc, "tick").is_empty());
}

#[test]
fn a_single_stack_cycle() {
    let mut t = Timeline::new("cycle c-1: done", t0());
    let mut r = row("nextcloud", 120, Some(2_450));
    r.marks = vec![
        Mark::new(at(900), "stopped"),
        Mark::new(at(1_800), "start began"),
    ];
    t.rows.push(r);
    t.lines = vec![
        Line::new(at(50), "backup posted"),
        Line::new(at(1_700), "snapshot"),
        Line::new(at(4_000), "done"),
    ];
    t.end = Some(at(4_100));
    let svg = t.to_svg();
    let doc = parse(&svg);
    assert_eq!(with_class(&doc, "down").len(), 1);
    assert_eq!(with_class(&doc, "mark").len(), 2);
    let legend: Vec<String> = with_class(&doc, "legend")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(
        legend,
        ["down: stop began → runs again", "stopped", "start began"]
    );
    let figures: Vec<String> = with_class(&doc, "figure")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(figures, ["2.33 s"]);
}

#[test]
fn a_stack_that_never_came_back_runs_to_the_end_marked() {
    let mut t = Timeline::new("cycle c-2: bounded", t0());
    t.end = Some(at(30_000));
    t.rows = vec![row("ok", 0, Some(2_000)), row("immich", 500, None)];
    t.lines = vec![Line::new(at(30_000), "bound (max_quiesce) reached")];
    let svg = t.to_svg();
    let doc = parse(&svg);
    let stranded = with_class(&doc, "stranded");
    assert_eq!(stranded.len(), 1, "{svg}");
    let bar = stranded[0];
    let end = number(bar, "x") + number(bar, "width");
    assert!((end - PLOT_X1).abs() < 0.11, "{bar:?}");
    assert_eq!(bar.attribute("fill"), Some("url(#stranded)"));
    let figures: Vec<String> = with_class(&doc, "figure")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(figures, ["2.00 s", "never came back"]);
    let legend: Vec<String> = with_class(&doc, "legend")
        .into_iter()
        .map(shown_text)
        .collect();
    assert!(legend.contains(&"never came back".to_owned()), "{legend:?}");
    // The hatching it refers to is defined in the document itself.
    assert!(doc
        .descendants()
        .any(|n| n.has_tag_name("pattern") && n.attribute("id") == Some("stranded")));
    // A label at the right edge turns left so that it stays in the picture.
    let event = with_class(&doc, "event");
    let text = event[0]
        .children()
        .find(|c| c.has_tag_name("text"))
        .expect("a label");
    assert_eq!(text.attribute("text-anchor"), Some("end"));
}

#[test]
fn labels_of_events_close_together_do_not_overlap() {
    let mut t = Timeline::new("close", t0());
    t.rows.push(row("a", 0, Some(10_000)));
    t.lines = vec![
        Line::new(at(200), "snapshot"),
        Line::new(at(150), "backup posted"),
        Line::new(at(9_000), "done"),
    ];
    let doc_text = t.to_svg();
    let doc = parse(&doc_text);
    let labels: Vec<(String, f64)> = with_class(&doc, "event")
        .into_iter()
        .map(|g| {
            let text = g
                .children()
                .find(|c| c.has_tag_name("text"))
                .expect("a label");
            (shown_text(g), number(text, "y"))
        })
        .collect();
    // In time order; the second one a level above the first; the last one back at the bottom.
    assert_eq!(labels[0].0, "backup posted +0.15 s");
    assert_eq!(labels[1].0, "snapshot +0.20 s");
    assert!(labels[1].1 > labels[0].1, "{labels:?}");
    assert_eq!(labels[2].1, labels[0].1, "{labels:?}");
}

#[test]
fn times_before_the_start_extend_the_axis_to_the_left() {
    let mut t = Timeline::new("early", t0());
    t.rows.push(row("a", -2_000, Some(3_000)));
    let scale = Scale::of(&t);
    assert_eq!(scale.lo, -2.0);
    let svg = t.to_svg();
    let doc = parse(&svg);
    let bar = with_class(&doc, "down")[0];
    assert!((number(bar, "x") - PLOT_X0).abs() < 0.06);
    let ticks: Vec<String> = with_class(&doc, "tick")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(ticks.first().map(String::as_str), Some("-2"), "{ticks:?}");
    assert!(ticks.contains(&"0".to_owned()), "{ticks:?}");
}

#[test]
fn a_row_without_times_says_so_and_a_long_name_is_cut() {
    let mut t = Timeline::new("recovered", t0());
    let long = "a-very-long-stack-name-that-goes-on-and-on";
    t.rows.push(Row {
        name: long.into(),
        down_from: None,
        up_at: None,
        marks: Vec::new(),
    });
    let svg = t.to_svg();
    let doc = parse(&svg);
    assert!(svg.contains("no times recorded"), "{svg}");
    assert!(with_class(&doc, "down").is_empty());
    let name = with_class(&doc, "name")[0];
    let shown = shown_text(name);
    assert_eq!(shown.chars().count(), NAME_CHARS);
    assert!(shown.ends_with('…'), "{shown}");
    // The whole name is still there, as the tooltip.
    let tip = name.children().find(|c| c.has_tag_name("title"));
    assert_eq!(tip.and_then(|c| c.text()), Some(long));
}

#[test]
fn the_same_timeline_gives_the_same_bytes() {
    let mut t = Timeline::new("same", t0());
    for i in 0..12 {
        let mut r = row(&format!("stack-{i:02}"), i * 130, Some(1_000 + i * 377));
        r.marks.push(Mark::new(at(i * 130 + 40), "stopped"));
        r.marks.push(Mark::new(at(i * 200 + 900), ""));
        t.rows.push(r);
    }
    t.lines.push(Line::new(at(700), "snapshot"));
    let a = t.to_svg();
    assert_eq!(a, t.clone().to_svg());
    // An unlabelled mark is drawn but not in the legend.
    let doc = parse(&a);
    assert_eq!(with_class(&doc, "mark").len(), 24);
    let legend: Vec<String> = with_class(&doc, "legend")
        .into_iter()
        .map(shown_text)
        .collect();
    assert_eq!(legend, ["down: stop began → runs again", "stopped"]);
}

#[test]
fn numbers_for_people() {
    assert_eq!(seconds_text(0.2049), "0.20 s");
    assert_eq!(seconds_text(12.34), "12.3 s");
    assert_eq!(seconds_text(125.4), "125 s");
    assert_eq!(n(-0.01), "0");
    assert_eq!(n(12.0), "12");
    assert_eq!(n(12.25), "12.2");
    let scale = Scale { lo: 0.0, hi: 0.8 };
    assert_eq!(tick_label(0.1 * 3.0, scale), "0.3");
    assert_eq!(
        ticks(Scale { lo: 0.0, hi: 25.0 }),
        [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    );
}
