//! `/metrics` of the real daemon after a real cycle, read over HTTP and parsed as Prometheus
//! text: today's names and the new ones, with the values the cycle must have left.

use felhom_devagent::{DueMode, Fault};
use felhom_e2e::{http_get, Agent, Env};
use prometheus_parse::{Scrape, Value};

use crate::{assert_run_again, daemon_after_a_cycle, running_apps};

/// The value of the sample `name` with `labels` (a counter, gauge or untyped sample).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", scrape.samples));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

#[test]
fn metrics_after_a_cycle_count_it_and_describe_the_present() {
    let mut env = Env::new("mtr");
    let (apps, before) = running_apps(&mut env);
    // Two status polls answer 500: counted as agent errors; the cycle still ends `done`.
    let agent = Agent::start(&env, |c| c.faults = vec![Fault::Status500(2)]);
    let (run, port) = daemon_after_a_cycle(&env, &agent.access());
    agent.set_due(DueMode::Never);
    assert_run_again(&before, "after the cycle");

    let text = http_get(port, "/metrics").expect("/metrics answers");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"));
    // Today's names.
    assert_eq!(
        value(&scrape, "felhom_cycles_total", &[("outcome", "done")]),
        1.0
    );
    assert_eq!(
        value(&scrape, "felhom_cycles_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(value(&scrape, "felhom_stranded_stacks", &[]), 0.0);
    assert_eq!(value(&scrape, "felhom_cycle_running", &[]), 0.0);
    let finished_at = value(&scrape, "felhom_last_cycle_finished_timestamp_seconds", &[]);
    assert!(finished_at > 1.7e9, "{finished_at}");
    assert!(value(&scrape, "felhom_last_cycle_max_downtime_seconds", &[]) > 0.0);
    // The new ones.
    assert_eq!(
        value(&scrape, "felhom_last_success_timestamp_seconds", &[]),
        finished_at
    );
    assert_eq!(value(&scrape, "felhom_stacks_quiesced", &[]), 0.0);
    assert_eq!(value(&scrape, "felhom_marker_age_seconds", &[]), 0.0);
    assert_eq!(value(&scrape, "felhom_max_quiesce_seconds", &[]), 60.0);
    assert_eq!(value(&scrape, "felhom_engine_reachable", &[]), 1.0);
    assert_eq!(
        value(&scrape, "felhom_agent_errors_total", &[("kind", "status")]),
        2.0
    );
    assert_eq!(
        value(
            &scrape,
            "felhom_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let downtimes = scrape
        .samples
        .iter()
        .find(|s| s.metric == "felhom_stack_downtime_seconds")
        .unwrap_or_else(|| panic!("no downtime histogram: {text}"));
    match &downtimes.value {
        Value::Histogram(buckets) => {
            let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert_eq!(all, apps.len() as f64, "one downtime per stack: {text}");
        }
        other => panic!("felhom_stack_downtime_seconds is {other:?}"),
    }
    let status = http_get(port, "/status").expect("/status answers");
    let status: serde_json::Value = serde_json::from_str(&status).expect("JSON");
    assert_eq!(status["cycles"]["done"], 1, "{status}");

    run.terminate();
    let end = run.wait();
    assert_eq!(end.code, Some(0), "{end}");
}
