//! The metrics as a scraper reads them: the encoded text parsed by a Prometheus parser.

use super::*;
use chrono::TimeZone;
use felhom_marker::StackRecord;
use prometheus_parse::{Scrape, Value};

fn scrape(m: &Metrics) -> Scrape {
    let text = m.encode();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses as Prometheus text")
}

/// The value of the one sample `name` whose labels include `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name}{labels:?}, found {found:?}"
    );
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// A histogram's `_count` and `_sum`, whichever way the parser groups them.
fn histogram(s: &Scrape, name: &str) -> (f64, f64, Vec<(f64, f64)>) {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name)
        .unwrap_or_else(|| panic!("{name} missing"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("{name} is not a histogram: {:?}", sample.value);
    };
    let count = value(s, &format!("{name}_count"), &[]);
    let sum = value(s, &format!("{name}_sum"), &[]);
    (
        count,
        sum,
        buckets.iter().map(|b| (b.less_than, b.count)).collect(),
    )
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 0)
        .single()
        .expect("valid")
}

/// The last success and the last cycle's end, as seconds after [`at`]'s origin.
fn assert_last_times(s: &Scrape, success: i64, finished: i64) {
    assert_eq!(
        value(s, "felhom_last_success_timestamp_seconds", &[]),
        at(success).timestamp() as f64
    );
    assert_eq!(
        value(s, "felhom_last_cycle_finished_timestamp_seconds", &[]),
        at(finished).timestamp() as f64
    );
}

fn stack(name: &str, downtime_ms: u64) -> StackRecord {
    StackRecord {
        name: name.into(),
        services: vec![],
        stop_started_at: None,
        stopped_at: None,
        started_at: None,
        downtime_ms: Some(downtime_ms),
        capture: felhom_marker::Capture::Clean,
        facts: vec![],
        stop_order: 0,
        by_service: vec![],
        label_errors: vec![],
    }
}

fn record(outcome: Outcome, stranded: &[&str], from: i64, to: i64) -> CycleRecord {
    CycleRecord {
        cycle_id: "c-1".into(),
        started_at: at(from),
        finished_at: at(to),
        outcome,
        backup_id: None,
        snapshot_at: None,
        agent_phase: None,
        stacks: vec![stack("a", 1_500), stack("b", 40_000)],
        stranded: stranded.iter().map(|s| (*s).to_owned()).collect(),
        waiting_for_engine: vec![],
        errors: vec![],
    }
}

#[test]
fn a_fresh_registry_has_every_series_at_its_start_value() {
    let s = scrape(&Metrics::new(Duration::from_secs(1800)));
    for outcome in "done failed lost bounded cancelled recovered".split(' ') {
        assert_eq!(
            value(&s, "felhom_cycles_total", &[("outcome", outcome)]),
            0.0
        );
    }
    assert_eq!(value(&s, "felhom_max_quiesce_seconds", &[]), 1800.0);
    assert_eq!(value(&s, "felhom_engine_reachable", &[]), 1.0);
    assert_eq!(value(&s, "felhom_last_success_timestamp_seconds", &[]), 0.0);
    assert_eq!(value(&s, "felhom_stranded_stacks", &[]), 0.0);
    assert_eq!(value(&s, "felhom_cycle_running", &[]), 0.0);
    assert_eq!(value(&s, "felhom_stacks_quiesced", &[]), 0.0);
    assert_eq!(value(&s, "felhom_marker_age_seconds", &[]), 0.0);
    assert_eq!(value(&s, "felhom_recovering", &[]), 0.0);
    assert_eq!(value(&s, "felhom_state_errors_total", &[]), 0.0);
    assert_eq!(value(&s, "felhom_cycles_refused", &[]), 0.0);
    assert_eq!(
        value(
            &s,
            "felhom_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[test]
fn a_cycle_is_counted_timed_and_its_downtimes_observed() {
    let m = Metrics::new(Duration::from_secs(1800));
    m.set_cycle_running(true);
    m.set_stacks_quiesced(2);
    let s = scrape(&m);
    assert_eq!(value(&s, "felhom_cycle_running", &[]), 1.0);
    assert_eq!(value(&s, "felhom_stacks_quiesced", &[]), 2.0);

    m.cycle_finished(&record(Outcome::Done, &[], 0, 90));
    let s = scrape(&m);
    assert_eq!(
        value(&s, "felhom_cycles_total", &[("outcome", "done")]),
        1.0
    );
    assert_eq!(
        value(&s, "felhom_cycles_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(value(&s, "felhom_cycle_running", &[]), 0.0);
    assert_eq!(value(&s, "felhom_stacks_quiesced", &[]), 0.0);
    assert_eq!(
        value(&s, "felhom_last_cycle_max_downtime_seconds", &[]),
        40.0
    );
    let end = at(90).timestamp() as f64;
    assert_eq!(
        value(&s, "felhom_last_cycle_finished_timestamp_seconds", &[]),
        end
    );
    assert_eq!(value(&s, "felhom_last_success_timestamp_seconds", &[]), end);

    let (count, sum, buckets) = histogram(&s, "felhom_cycle_duration_seconds");
    assert_eq!((count, sum), (1.0, 90.0));
    // 90 s falls in the 160 s bucket, not the 80 s one.
    assert!(
        buckets.contains(&(80.0, 0.0)) && buckets.contains(&(160.0, 1.0)),
        "{buckets:?}"
    );
    let (count, sum, buckets) = histogram(&s, "felhom_stack_downtime_seconds");
    assert_eq!((count, sum), (2.0, 41.5));
    assert!(
        buckets.contains(&(2.0, 1.0)) && buckets.contains(&(64.0, 2.0)),
        "{buckets:?}"
    );
}

#[test]
fn only_done_without_stranded_stacks_is_a_success() {
    let m = Metrics::new(Duration::from_secs(1800));
    m.cycle_finished(&record(Outcome::Done, &[], 0, 10));
    m.cycle_finished(&record(Outcome::Done, &["b"], 100, 110));
    m.cycle_finished(&record(Outcome::Failed, &[], 200, 210));
    let s = scrape(&m);
    assert_last_times(&s, 10, 210);
    assert_eq!(
        value(&s, "felhom_cycles_total", &[("outcome", "done")]),
        2.0
    );
    assert_eq!(
        value(&s, "felhom_cycles_total", &[("outcome", "failed")]),
        1.0
    );
}

/// Issue 18: each stack of the last cycle has a series per verdict, 1 for its own; a stack the
/// next cycle did not stop has none; a killed or live capture is no success.
#[test]
fn each_stack_of_the_last_cycle_shows_its_capture() {
    let m = Metrics::new(Duration::from_secs(1800));
    let mut first = record(Outcome::Done, &[], 0, 60);
    first.stacks[1].capture = Capture::Killed;
    m.cycle_finished(&first);
    let s = scrape(&m);
    let capture = |s: &Scrape, stack: &str, capture: &str| {
        value(
            s,
            "felhom_stack_capture",
            &[("stack", stack), ("capture", capture)],
        )
    };
    assert_eq!(capture(&s, "a", "clean"), 1.0);
    assert_eq!(capture(&s, "a", "killed"), 0.0);
    assert_eq!(capture(&s, "b", "killed"), 1.0);
    assert_eq!(capture(&s, "b", "clean"), 0.0);
    assert_eq!(capture(&s, "b", "unknown"), 0.0);
    assert_eq!(
        value(&s, "felhom_last_success_timestamp_seconds", &[]),
        0.0,
        "a killed capture is no success"
    );
    let mut second = record(Outcome::Done, &[], 100, 160);
    second.stacks.truncate(1);
    second.stacks[0].capture = Capture::Live;
    m.cycle_finished(&second);
    let text = m.encode();
    assert!(
        !text.contains("stack=\"b\""),
        "b was not stopped by the last cycle: {text}"
    );
    assert_eq!(capture(&scrape(&m), "a", "live"), 1.0);
}

/// The per-service policy's verdicts (issue 23) have their series, and each stack the last
/// cycle brought back its downtime (the fleet dashboard's downtime per stack over time).
#[test]
fn the_policys_verdicts_and_each_stacks_last_downtime_are_shown() {
    let m = Metrics::new(Duration::from_secs(1800));
    let mut r = record(Outcome::Done, &[], 0, 60);
    r.stacks[0].capture = Capture::HookFailed;
    r.stacks[1].capture = Capture::Hooked;
    r.stacks[1].downtime_ms = None;
    m.cycle_finished(&r);
    let s = scrape(&m);
    let capture = |stack: &str, capture: &str| {
        value(
            &s,
            "felhom_stack_capture",
            &[("stack", stack), ("capture", capture)],
        )
    };
    assert_eq!(capture("a", "hook-failed"), 1.0);
    assert_eq!(capture("a", "clean"), 0.0);
    assert_eq!(capture("b", "hooked"), 1.0);
    assert_eq!(capture("b", "skipped"), 0.0);
    assert_eq!(
        value(&s, "felhom_stack_last_downtime_seconds", &[("stack", "a")]),
        1.5
    );
    assert!(
        !m.encode()
            .contains("felhom_stack_last_downtime_seconds{stack=\"b\"}"),
        "b was not stopped"
    );
}

#[test]
fn restore_sets_the_gauges_from_history_without_counting() {
    let m = Metrics::new(Duration::from_secs(1800));
    m.restore(
        Some(&record(Outcome::Bounded, &[], 500, 600)),
        Some(&record(Outcome::Done, &[], 0, 60)),
    );
    let s = scrape(&m);
    assert_last_times(&s, 60, 600);
    assert_eq!(
        value(&s, "felhom_cycles_total", &[("outcome", "bounded")]),
        0.0
    );
}

#[test]
fn the_setters_show_in_the_text() {
    let m = Metrics::new(Duration::from_secs(60));
    m.set_stranded(2);
    m.set_marker_age(Some(Duration::from_millis(90_500)));
    // The driver's own view: stacks wait for an engine away since `at(5)`; the start-up
    // recovery runs.
    m.overview(&Overview {
        engine_unreachable_since: Some(at(5)),
        recovering: true,
        ..Overview::default()
    });
    m.agent_error("timeout");
    m.agent_error("timeout");
    m.agent_error("connect");
    let s = scrape(&m);
    assert_eq!(value(&s, "felhom_stranded_stacks", &[]), 2.0);
    assert_eq!(value(&s, "felhom_marker_age_seconds", &[]), 90.5);
    assert_eq!(value(&s, "felhom_engine_reachable", &[]), 0.0);
    assert_eq!(value(&s, "felhom_recovering", &[]), 1.0);
    assert_eq!(
        value(&s, "felhom_engine_unreachable_since_timestamp_seconds", &[]),
        at(5).timestamp() as f64
    );
    assert_eq!(
        value(&s, "felhom_agent_errors_total", &[("kind", "timeout")]),
        2.0
    );
    assert_eq!(
        value(&s, "felhom_agent_errors_total", &[("kind", "connect")]),
        1.0
    );

    m.overview(&Overview::default());
    m.set_marker_age(None);
    let s = scrape(&m);
    assert_eq!(value(&s, "felhom_engine_reachable", &[]), 1.0);
    assert_eq!(
        value(&s, "felhom_engine_unreachable_since_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(value(&s, "felhom_marker_age_seconds", &[]), 0.0);
    assert_eq!(value(&s, "felhom_recovering", &[]), 0.0);
}

#[test]
fn state_errors_follow_the_overview_s_count_and_a_refusal_shows() {
    let m = Metrics::new(Duration::from_secs(60));
    let with = |n: u64| Overview {
        state_errors: n,
        ..Overview::default()
    };
    m.overview(&with(2));
    m.overview(&with(2));
    m.overview(&with(3));
    m.set_cycles_refused(true);
    let s = scrape(&m);
    assert_eq!(
        value(&s, "felhom_state_errors_total", &[]),
        3.0,
        "counted once each"
    );
    assert_eq!(value(&s, "felhom_cycles_refused", &[]), 1.0);
    m.set_cycles_refused(false);
    assert_eq!(value(&scrape(&m), "felhom_cycles_refused", &[]), 0.0);
}
