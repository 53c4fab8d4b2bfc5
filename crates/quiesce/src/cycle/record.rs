//! The cycle's record (`CycleRecord`, what the history keeps): what it starts as — each
//! stack and service of the marker, with its policy, or as much as a recovery knows — and each
//! stack's and service's verdict once the cycle is over. The facts in between are written by
//! the other parts of `cycle` as they are applied.

use super::{hooks, Cycle};
use crate::capture::Evidence;
use crate::policy::Policies;
use felhom_marker::{
    Capture, CycleRecord, MarkedStack, Marker, Outcome, ServiceMode, ServiceRecord, StackRecord,
};

impl Cycle {
    /// Each stack's and each service's verdict into the record (once the cycle is over).
    /// A service the cycle stopped (or meant to) is judged from its stack's evidence, one
    /// kept running from its `pre-snapshot` hook; the stack's verdict is the first of
    /// docs/labels.md's order that any of its services has (or its stop's, where it had
    /// stopped containers of a service it no longer lists).
    pub(crate) fn judge(&mut self) {
        let none = Evidence::default();
        for rec in &mut self.record.stacks {
            let evidence = self.evidence.get(&rec.name).unwrap_or(&none);
            let (stop, facts) = evidence.verdict(&self.backup, self.recovering);
            let mut stops = rec.by_service.is_empty();
            for service in &mut rec.by_service {
                let judged_by_stop = service.mode == ServiceMode::Stop || service.stopped;
                stops |= judged_by_stop;
                service.capture = if self.recovering {
                    Capture::Unknown
                } else if judged_by_stop {
                    evidence.verdict_of(&service.service, &self.backup)
                } else {
                    hooks::kept_up_verdict(service)
                };
            }
            let services = rec.by_service.iter().map(|s| s.capture);
            rec.capture = Capture::first_of(services.chain(stops.then_some(stop))).unwrap_or(stop);
            rec.facts = facts;
        }
    }
}

/// Each service of a marked stack as a recovery's record knows it: the services its stop
/// stopped, and those with hooks.
fn services_of(stack: &MarkedStack) -> Vec<ServiceRecord> {
    let mut services: Vec<ServiceRecord> = stack
        .services
        .iter()
        .map(|s| ServiceRecord {
            service: s.clone(),
            mode: ServiceMode::Stop,
            stopped: stack.stop_began,
            capture: Capture::Unknown,
            hooks: Vec::new(),
        })
        .collect();
    for h in &stack.hooks {
        if !services.iter().any(|s| s.service == h.service) {
            services.push(ServiceRecord {
                service: h.service.clone(),
                mode: h.mode,
                stopped: !h.kept_up && stack.stop_began,
                capture: Capture::Unknown,
                hooks: Vec::new(),
            });
        }
    }
    services.sort_by(|a, b| a.service.cmp(&b.service));
    services
}

pub(super) fn new_record(marker: &Marker, outcome: Outcome, policies: &Policies) -> CycleRecord {
    CycleRecord {
        cycle_id: marker.cycle_id.clone(),
        started_at: marker.started_at,
        finished_at: marker.started_at,
        outcome,
        backup_id: marker.backup_id.clone(),
        snapshot_at: None,
        agent_phase: None,
        stacks: marker
            .stacks
            .iter()
            .map(|s| StackRecord {
                name: s.name.clone(),
                services: s.services.clone(),
                stop_started_at: None,
                stopped_at: None,
                started_at: None,
                downtime_ms: None,
                capture: Capture::Unknown,
                facts: Vec::new(),
                stop_order: s.stop_order,
                by_service: policies.services(&s.name).unwrap_or_else(|| services_of(s)),
                label_errors: policies.label_errors(&s.name),
            })
            .collect(),
        stranded: Vec::new(),
        waiting_for_engine: Vec::new(),
        errors: Vec::new(),
    }
}
