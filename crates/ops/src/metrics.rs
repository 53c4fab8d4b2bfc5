//! The Prometheus metrics (SPEC §7), through `prometheus-client`: the names here are the
//! contract of `deploy/prometheus/alerts.yml` and of operators' dashboards.
//!
//! The status endpoint serves [`Metrics::encode`] at `/metrics` (OpenMetrics text; its
//! content type is [`CONTENT_TYPE`]). The observer sets them as things happen
//! ([`crate::OpsObserver`]), from the controller's own [`Overview`]; the endpoint sets those
//! that describe the state directory when it is scraped.

use chrono::{DateTime, Utc};
use felhom_marker::{Capture, CycleRecord, Outcome};
use felhom_quiesce::Overview;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every outcome, so that each `felhom_cycles_total{outcome}` series exists from the start
/// (a series that appears only on its first increment defeats `increase()` in alerts).
const OUTCOMES: [Outcome; 6] = [
    Outcome::Done,
    Outcome::Failed,
    Outcome::Lost,
    Outcome::Bounded,
    Outcome::Cancelled,
    Outcome::Recovered,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaptureLabel {
    stack: String,
    capture: &'static str,
}

/// The verdicts a stack of the last cycle gets a series for (1: its verdict, 0: the others):
/// every one, the per-service policy's (`skipped`, `hooked`, `hook-failed`) included.
const CAPTURES: [Capture; 7] = Capture::BY_WEIGHT;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StackLabel {
    stack: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The controller's metrics. Shared by reference (`Arc`); every setter takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    cycles: Family<OutcomeLabel, Counter>,
    stranded: Gauge,
    cycle_running: Gauge,
    stacks_quiesced: Gauge,
    last_max_downtime: FloatGauge,
    last_finished: FloatGauge,
    last_success: FloatGauge,
    marker_age: FloatGauge,
    engine_reachable: Gauge,
    engine_unreachable_since: FloatGauge,
    recovering: Gauge,
    state_errors: Counter,
    cycles_refused: Gauge,
    agent_errors: Family<KindLabel, Counter>,
    stack_capture: Family<CaptureLabel, Gauge>,
    stack_last_downtime: Family<StackLabel, FloatGauge>,
    cycle_duration: Histogram,
    stack_downtime: Histogram,
}

impl Metrics {
    /// Every metric registered, at zero; `max_quiesce` is published for the stale-marker alert.
    pub fn new(max_quiesce: Duration) -> Metrics {
        let mut m = Metrics {
            cycles: Family::default(),
            stranded: Gauge::default(),
            cycle_running: Gauge::default(),
            stacks_quiesced: Gauge::default(),
            last_max_downtime: FloatGauge::default(),
            last_finished: FloatGauge::default(),
            last_success: FloatGauge::default(),
            marker_age: FloatGauge::default(),
            // Assumed reachable until a call says otherwise: no alert at startup.
            engine_reachable: Gauge::default(),
            engine_unreachable_since: FloatGauge::default(),
            recovering: Gauge::default(),
            state_errors: Counter::default(),
            cycles_refused: Gauge::default(),
            agent_errors: Family::default(),
            stack_capture: Family::default(),
            stack_last_downtime: Family::default(),
            // 10 s .. ~2.8 h: a cycle lasts from seconds (nothing to stop) to max_quiesce.
            cycle_duration: Histogram::new(exponential_buckets(10.0, 2.0, 11)),
            // 1 s .. ~34 min: a stack's downtime, snapshot-bound with early resume.
            stack_downtime: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            registry: Registry::default(),
        };
        m.engine_reachable.set(1);
        for outcome in OUTCOMES {
            // Creating the series is the point; the guard it returns is not needed.
            let _ = m.cycles.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            });
        }
        m.register_cycles();
        m.register_state(max_quiesce);
        m.register_details();
        m
    }

    /// The cycles: how many ended by outcome, what runs now, the last cycle's times.
    fn register_cycles(&mut self) {
        self.registry.register(
            "felhom_cycles",
            "Quiesce cycles finished by this process, by outcome",
            self.cycles.clone(),
        );
        self.registry.register(
            "felhom_stranded_stacks",
            "Stacks that could not be started again and are still down (the persistent list)",
            self.stranded.clone(),
        );
        self.registry.register(
            "felhom_cycle_running",
            "Whether a cycle runs now",
            self.cycle_running.clone(),
        );
        self.registry.register(
            "felhom_stacks_quiesced",
            "Stacks stopped by the controller now",
            self.stacks_quiesced.clone(),
        );
        self.registry.register(
            "felhom_last_cycle_max_downtime_seconds",
            "The longest downtime of a stack in the last cycle",
            self.last_max_downtime.clone(),
        );
        self.registry.register(
            "felhom_last_cycle_finished_timestamp_seconds",
            "When the last cycle finished (Unix time; 0: none yet)",
            self.last_finished.clone(),
        );
        self.registry.register(
            "felhom_last_success_timestamp_seconds",
            "When the last successful cycle (done, nothing stranded) finished (Unix time; 0: none)",
            self.last_success.clone(),
        );
    }

    /// The state of the controller and of what it depends on: the marker, the bound, the
    /// engine, the start-up recovery, the state directory.
    fn register_state(&mut self, max_quiesce: Duration) {
        let max_quiesce_gauge = FloatGauge::default();
        max_quiesce_gauge.set(max_quiesce.as_secs_f64());

        self.registry.register(
            "felhom_marker_age_seconds",
            "Age of the marker in the state directory (0: no marker)",
            self.marker_age.clone(),
        );
        self.registry.register(
            "felhom_max_quiesce_seconds",
            "The configured max_quiesce bound",
            max_quiesce_gauge,
        );
        self.registry.register(
            "felhom_engine_reachable",
            "Whether the Docker engine answers (1), or stacks the controller stopped wait for it (0)",
            self.engine_reachable.clone(),
        );
        self.registry.register(
            "felhom_engine_unreachable_since_timestamp_seconds",
            "Since when stacks the controller stopped wait for a Docker engine that does not answer (Unix time; 0: it answers)",
            self.engine_unreachable_since.clone(),
        );
        self.registry.register(
            "felhom_recovering",
            "Whether the daemon's start-up recovery runs (a crashed cycle's stacks, the stranded stacks)",
            self.recovering.clone(),
        );
        self.registry.register(
            "felhom_state_errors",
            "Writes of the state directory that failed in this process (a marker, the stranded list, a history record not written, a marker not removed)",
            self.state_errors.clone(),
        );
        self.registry.register(
            "felhom_cycles_refused",
            "Whether new cycles are refused because the state directory is not fit for them (another owner, or writable by others); markers are still recovered",
            self.cycles_refused.clone(),
        );
    }

    /// The details: the agent's errors by kind, each stack's verdict and downtime, the
    /// distributions, the build.
    fn register_details(&mut self) {
        self.registry.register(
            "felhom_agent_errors",
            "Failed calls to the host agent, by kind",
            self.agent_errors.clone(),
        );
        self.registry.register(
            "felhom_stack_capture",
            "What the last cycle's backup captured of each stack it touched (SPEC §2 rule 10, docs/labels.md): 1 for its verdict (clean, killed, live, unknown, skipped, hooked, hook-failed), 0 for the others",
            self.stack_capture.clone(),
        );
        self.registry.register(
            "felhom_stack_last_downtime_seconds",
            "Each stack's downtime in the last cycle that stopped and started it, from its stop to running again (a stack the last cycle did not bring back has no series)",
            self.stack_last_downtime.clone(),
        );
        self.registry.register(
            "felhom_cycle_duration_seconds",
            "Duration of finished cycles, from the first stop to the end",
            self.cycle_duration.clone(),
        );
        self.registry.register(
            "felhom_stack_downtime_seconds",
            "Downtime of each stack stopped by a cycle, from its stop to running again",
            self.stack_downtime.clone(),
        );
        self.registry.register(
            "felhom_build",
            "The controller's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
    }

    /// The text for `/metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric,
        // and a partial page is still more use than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics could not be encoded in full");
        }
        out
    }

    /// Whether a cycle (or a recovery) runs now.
    pub(crate) fn set_cycle_running(&self, running: bool) {
        self.cycle_running.set(i64::from(running));
    }

    /// How many stacks the controller holds stopped now (falls as they come back).
    pub(crate) fn set_stacks_quiesced(&self, n: usize) {
        self.stacks_quiesced.set(saturating_i64(n));
    }

    /// A cycle ended: counted by outcome, its duration and each stack's downtime observed,
    /// the last-cycle gauges set.
    pub(crate) fn cycle_finished(&self, record: &CycleRecord) {
        self.cycles
            .get_or_create(&OutcomeLabel {
                outcome: record.outcome.as_str(),
            })
            .inc();
        let duration = (record.finished_at - record.started_at)
            .to_std()
            .unwrap_or_default();
        self.cycle_duration.observe(duration.as_secs_f64());
        for ms in record.stacks.iter().filter_map(|s| s.downtime_ms) {
            self.stack_downtime.observe(ms as f64 / 1000.0);
        }
        self.cycle_running.set(0);
        self.stacks_quiesced.set(0);
        self.restore(Some(record), None);
    }

    /// The last-cycle gauges from the history at startup (the counters and histograms count
    /// this process's cycles only): `last` is the newest record, `last_success` the newest
    /// successful one, if any.
    pub(crate) fn restore(&self, last: Option<&CycleRecord>, last_success: Option<&CycleRecord>) {
        if let Some(r) = last {
            let max_ms = r.stacks.iter().filter_map(|s| s.downtime_ms).max();
            self.last_max_downtime
                .set(max_ms.unwrap_or(0) as f64 / 1000.0);
            self.last_finished.set(unix(r.finished_at));
            if r.succeeded() {
                self.last_success.set(unix(r.finished_at));
            }
            // The last cycle's stacks only: one that is no longer stopped keeps no series.
            self.stack_capture.clear();
            self.stack_last_downtime.clear();
            for stack in &r.stacks {
                if let Some(ms) = stack.downtime_ms {
                    let label = StackLabel {
                        stack: stack.name.clone(),
                    };
                    self.stack_last_downtime
                        .get_or_create(&label)
                        .set(ms as f64 / 1000.0);
                }
            }
            for stack in &r.stacks {
                for capture in CAPTURES {
                    let label = CaptureLabel {
                        stack: stack.name.clone(),
                        capture: capture.as_str(),
                    };
                    self.stack_capture
                        .get_or_create(&label)
                        .set(i64::from(stack.capture == capture));
                }
            }
        }
        if let Some(r) = last_success.filter(|r| r.succeeded()) {
            self.last_success.set(unix(r.finished_at));
        }
    }

    /// The stranded stacks kept in the state directory.
    pub(crate) fn set_stranded(&self, n: usize) {
        self.stranded.set(saturating_i64(n));
    }

    /// Whether new cycles are refused over the state directory (read from it at each scrape).
    pub(crate) fn set_cycles_refused(&self, refused: bool) {
        self.cycles_refused.set(i64::from(refused));
    }

    /// The marker's age, `None` when there is none.
    pub(crate) fn set_marker_age(&self, age: Option<Duration>) {
        self.marker_age.set(age.map_or(0.0, |a| a.as_secs_f64()));
    }

    /// What the controller's overview says now: whether a cycle runs, whether the start-up
    /// recovery runs, and since when stacks wait for an engine that does not answer (the
    /// driver's own state: `Overview::engine_unreachable_since`).
    pub(crate) fn overview(&self, overview: &Overview) {
        self.set_cycle_running(overview.phase.is_some());
        self.recovering.set(i64::from(overview.recovering));
        // The overview counts since the process started, as the counter does: it only
        // catches up.
        let counted = self.state_errors.get();
        if overview.state_errors > counted {
            self.state_errors.inc_by(overview.state_errors - counted);
        }
        let since = overview.engine_unreachable_since;
        self.engine_reachable.set(i64::from(since.is_none()));
        self.engine_unreachable_since.set(since.map_or(0.0, unix));
    }

    /// A call to the agent failed; `kind` is a short fixed word (`timeout`, `connect`,
    /// `status`, `body`, ...), never text from the agent, to keep the series few.
    pub(crate) fn agent_error(&self, kind: &str) {
        self.agent_errors
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
