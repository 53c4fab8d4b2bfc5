//! One measured run drawn as a picture (`--svg`, through `felhom-timeline`): each stack's
//! outage as the engine and the app saw it, and the agent's steps and status requests as its
//! timeline recorded them — the same times the figures are computed from.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use felhom_timeline::{Line, Mark, Row, Timeline};

use crate::agent::BackupTimes;
use crate::engine::Outage;
use crate::measure::StackFigures;

/// What one run's picture is drawn from.
#[derive(Debug)]
pub(crate) struct Drawn<'a> {
    pub(crate) title: String,
    /// Time zero: the cycle's start (the controller's record), else the candidate's launch.
    pub(crate) start: DateTime<Utc>,
    pub(crate) outages: &'a BTreeMap<String, Outage>,
    /// For each stack of `outages`, in its order: when the app served again.
    pub(crate) ready: &'a [DateTime<Utc>],
    /// The agent's side of the run, if it backed up.
    pub(crate) agent: Option<&'a BackupTimes>,
    /// Engine alone: when it called the first start.
    pub(crate) first_start_call: Option<DateTime<Utc>>,
    pub(crate) figures: &'a [StackFigures],
}

/// The name of the row of the agent's status requests.
const STATUS_ROW: &str = "agent: GET /backup/status";

impl Drawn<'_> {
    pub(crate) fn timeline(&self) -> Timeline {
        let mut t = Timeline::new(self.title.clone(), self.start);
        let mut downtimes: Vec<f64> = self.figures.iter().map(|f| f.downtime_ms).collect();
        downtimes.sort_by(f64::total_cmp);
        let mut about = Vec::new();
        if let (Some(mid), Some(max)) = (downtimes.get(downtimes.len() / 2), downtimes.last()) {
            about.push(format!(
                "downtime (the engine's kill → the app serves again) p50 {:.0} ms, max {:.0} ms",
                mid, max
            ));
        }
        if let Some(agent) = self.agent {
            t.rows.push(Row {
                name: STATUS_ROW.into(),
                down_from: None,
                up_at: None,
                marks: agent
                    .status_polls
                    .iter()
                    .flat_map(|p| {
                        let held = p.held.then(|| Mark::new(p.arrived, "long-poll held"));
                        held.into_iter()
                            .chain([Mark::new(p.answered, "status answered")])
                    })
                    .collect(),
            });
            let held = agent.status_polls.iter().filter(|p| p.held).count();
            about.push(format!(
                "{} status request(s), {held} held",
                agent.status_polls.len()
            ));
            t.lines.push(Line::new(agent.requested, "backup posted"));
            t.lines.push(Line::new(agent.snapshot, "snapshot"));
            t.lines.push(Line::new(agent.finished, "agent: done"));
        }
        if let Some(call) = self.first_start_call {
            t.lines.push(Line::new(call, "first start call"));
        }
        for ((stack, outage), ready) in self.outages.iter().zip(self.ready) {
            let mut marks = vec![
                Mark::new(outage.died, "exited"),
                Mark::new(outage.start, "started (engine)"),
            ];
            if let Some(healthy) = outage.healthy {
                marks.push(Mark::new(healthy, "healthy (engine)"));
            }
            t.rows.push(Row {
                name: stack.clone(),
                down_from: Some(outage.kill),
                up_at: Some(*ready),
                marks,
            });
        }
        t.subtitle = about.join(" · ");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::StatusRequest;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("in range")
    }

    #[test]
    fn a_run_is_drawn_from_the_engine_the_app_and_the_agent() {
        let outages = BTreeMap::from([
            (
                "a".to_owned(),
                Outage {
                    kill: at(100),
                    died: at(130),
                    start: at(900),
                    healthy: None,
                },
            ),
            (
                "b".to_owned(),
                Outage {
                    kill: at(110),
                    died: at(2_100),
                    start: at(1_000),
                    healthy: Some(at(4_200)),
                },
            ),
        ]);
        let ready = [at(950), at(4_210)];
        let agent = BackupTimes {
            requested: at(200),
            snapshot: at(400),
            finished: at(5_400),
            status_polls: vec![
                StatusRequest {
                    arrived: at(250),
                    answered: at(250),
                    held: false,
                },
                StatusRequest {
                    arrived: at(300),
                    answered: at(402),
                    held: true,
                },
            ],
        };
        let figures = [];
        let drawn = Drawn {
            title: "controller: N = 2, round 1".into(),
            start: at(0),
            outages: &outages,
            ready: &ready,
            agent: Some(&agent),
            first_start_call: None,
            figures: &figures,
        };
        let t = drawn.timeline();
        let names: Vec<&str> = t.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, [STATUS_ROW, "a", "b"]);
        assert_eq!(t.rows[0].marks.len(), 3);
        assert_eq!(t.rows[0].down_from, None);
        // The bar ends where the downtime figure ends: when the app served again.
        assert_eq!(t.rows[2].down_from, Some(at(110)));
        assert_eq!(t.rows[2].up_at, Some(at(4_210)));
        assert_eq!(t.rows[2].marks.len(), 3);
        let lines: Vec<&str> = t.lines.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(lines, ["backup posted", "snapshot", "agent: done"]);
        assert_eq!(t.subtitle, "2 status request(s), 1 held");
        assert!(t.to_svg().contains("long-poll held"));
    }
}
