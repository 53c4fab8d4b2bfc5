//! The down half's facts into the cycle: the containers a stop is about to stop (recorded in
//! the marker before the stop call), the stop's beginning and its report, containers that
//! came back meanwhile, a failed stop. What the marker says of each stack's stop here is what
//! a resume (or a crash recovery) starts again, so only containers that ran and were ours to
//! stop stay in it.

use super::{marked, Cycle};
use crate::progress::{Applied, Level};
use chrono::{DateTime, Utc};
use felhom_marker::MarkedContainer;
use felhom_stacks::{ContainerRef, StopReport};

impl Cycle {
    /// `containers` of `stack` are about to be stopped: recorded, and its stop marked as
    /// begun. Its first recording replaces what the listing said (what runs now is what
    /// the stop stops); later ones add to it.
    pub(super) fn recording(&mut self, stack: &str, containers: &[ContainerRef]) -> Applied {
        let mut changed = false;
        self.change_marker(|m| {
            let Some(s) = m.stack_mut(stack) else {
                return;
            };
            let mut now: Vec<MarkedContainer> = if s.stop_began {
                s.containers.clone()
            } else {
                Vec::new()
            };
            for c in containers {
                if !now.iter().any(|k| k.id == c.id) {
                    now.push(marked(c));
                }
            }
            let mut services: Vec<String> = now.iter().map(|c| c.service.clone()).collect();
            services.sort();
            services.dedup();
            if !s.stop_began || now != s.containers {
                s.stop_began = true;
                s.containers = now;
                s.services = services;
                changed = true;
            }
        });
        if changed {
            if let Some(services) = self
                .marker
                .as_ref()
                .and_then(|m| m.stacks.iter().find(|s| s.name == stack))
                .map(|s| s.services.clone())
            {
                self.stopping(stack, &services);
                if let Some(rec) = self.stack_record(stack) {
                    rec.services = services;
                }
            }
            self.on_disk_now()
        } else {
            Applied::default()
        }
    }

    /// The first stop call of `stack` began: from now on it is down.
    pub(super) fn stop_began(&mut self, stack: &str, at: DateTime<Utc>) -> Applied {
        self.evidence_of(stack).stop_began(at);
        if let Some(rec) = self.stack_record(stack) {
            rec.stop_started_at.get_or_insert(at);
        }
        Applied::default()
    }

    /// A stop call of `stack` answered: its evidence, its times; a container that had
    /// already exited when its first stop came (on its own, or by someone else) is not ours
    /// to start again, nor is one that vanished.
    pub(super) fn stopped(
        &mut self,
        stack: &str,
        report: &StopReport,
        at: DateTime<Utc>,
    ) -> Applied {
        let evidence = self.evidence_of(stack);
        evidence.stopped(report, at);
        let not_ours: Vec<String> = report
            .containers
            .iter()
            .filter(|s| !s.was_running && !evidence.was_stopped(&s.container.id))
            .map(|s| s.container.id.clone())
            .chain(report.vanished.iter().map(|c| c.id.clone()))
            .collect();
        tracing::info!(stack = %stack, "stack stopped");
        if let Some(rec) = self.stack_record(stack) {
            rec.stopped_at = Some(at);
        }
        if not_ours.is_empty() {
            return Applied::default();
        }
        self.change_marker(|m| {
            if let Some(s) = m.stack_mut(stack) {
                s.containers.retain(|c| !not_ours.contains(&c.id));
            }
        });
        self.on_disk_now()
    }

    /// Containers of `stack` ran again between its stops: its evidence says so, and a warning.
    pub(super) fn came_back(
        &mut self,
        stack: &str,
        containers: &[(ContainerRef, Option<DateTime<Utc>>)],
    ) -> Applied {
        self.evidence_of(stack).came_back(containers);
        let names: Vec<&str> = containers.iter().map(|(c, _)| c.name.as_str()).collect();
        let message = format!(
            "stack {stack}: {} ran again before the backup began: stopped again",
            names.join(", ")
        );
        self.note(Level::Warn, message)
    }

    /// A stop of `stack` failed. If no stop call of it began, nothing of it was stopped: the
    /// marker no longer says its stop began (it is left alone, not started).
    pub(super) fn stop_failed(&mut self, stack: &str, error: &str, began: bool) -> Applied {
        let evidence = self.evidence_of(stack);
        evidence.stop_failed(began);
        let not_stopped = evidence.not_stopped();
        if !not_stopped {
            return self.note(Level::Error, format!("stopping {stack}: {error}"));
        }
        self.note(
            Level::Error,
            format!("stopping {stack}: {error}: it was not stopped"),
        );
        let mut changed = false;
        self.change_marker(|m| {
            if let Some(s) = m
                .stacks
                .iter_mut()
                .find(|s| s.name == stack && s.stop_began)
            {
                s.stop_began = false;
                changed = true;
            }
        });
        if changed {
            self.on_disk_now()
        } else {
            Applied::default()
        }
    }
}
