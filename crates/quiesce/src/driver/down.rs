//! The down half as the driver runs it: what each step's task is handed of the cycle — the
//! `pre-snapshot` hooks' groups, the stops' groups, the stacks to look at again before
//! `POST /backup`, the backup's id and last phase for a status poll — before it runs
//! [`Driver::bounded`]. A task holds nothing of the cycle: it reports back as `Progress`.

use super::Driver;
use crate::backoff::Backoff;
use crate::machine::Event;
use crate::{hooks, steps};
use felhom_agentapi::AgentApi;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The longest an agent with the long-poll extension is asked to hold a status answer.
const LONG_POLL: Duration = Duration::from_secs(30);

/// Where a cycle's status polls while the stacks are down are, across the driver's turns.
#[derive(Debug)]
pub(super) struct BackupPolls {
    /// The interval schedule, for an agent without the long-poll extension.
    wait: Backoff,
    /// Set at the first status poll while the stacks are down.
    since: Option<Instant>,
    /// The last answer was held, or came with a new phase: ask again at once.
    held: bool,
}

impl BackupPolls {
    pub(super) fn new(config: &crate::CycleConfig) -> Self {
        BackupPolls {
            wait: Backoff::backup_wait(config),
            since: None,
            held: false,
        }
    }
}

impl Driver<'_> {
    /// Runs every `pre-snapshot` hook of the cycle, by groups.
    pub(super) async fn pre_snapshot(
        &mut self,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        let shared = self.shared;
        let groups = self.cycle.pre_snapshot_groups();
        let report = self.report.clone();
        let task = hooks::pre_snapshot(
            shared.parts.stacks.clone(),
            groups,
            shared.config.parallelism,
            report,
        );
        self.bounded(task, deadline, cancel).await
    }

    /// Stops the stacks of the marker, by groups.
    pub(super) async fn stop(&mut self, deadline: Instant, cancel: &CancellationToken) -> Event {
        let shared = self.shared;
        let (stacks, groups) = (shared.parts.stacks.clone(), self.cycle.stop_groups());
        let (slots, report) = (self.slots.clone(), self.report.clone());
        let task = steps::stop_all(stacks, groups, shared.config.parallelism, slots, report);
        self.bounded(task, deadline, cancel).await
    }

    /// Looks at the stopped stacks again, then asks the agent for the backup.
    pub(super) async fn start_backup(
        &mut self,
        agent: &Arc<dyn AgentApi>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        let cycle_id = self.cycle.record.cycle_id.clone();
        let stopped = self.cycle.to_recheck();
        let (stacks, slots) = (self.shared.parts.stacks.clone(), self.slots.clone());
        let report = self.report.clone();
        let task = steps::start_backup(agent.clone(), stacks, cycle_id, stopped, slots, report);
        self.bounded(task, deadline, cancel).await
    }

    /// One status poll while the stacks are down.
    ///
    /// The long-poll (SPEC §3): an agent with the extension holds each answer until the phase
    /// changes, so it is asked again at once; one without it answers at once, and is asked on
    /// the interval schedule.
    pub(super) async fn await_backup(
        &mut self,
        agent: &Arc<dyn AgentApi>,
        polls: &mut BackupPolls,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Event {
        let since = *polls.since.get_or_insert_with(Instant::now);
        let pause = if polls.held {
            Duration::ZERO
        } else {
            polls.wait.pause_while_down(since.elapsed())
        };
        let wait = LONG_POLL.min(deadline.saturating_duration_since(Instant::now()));
        let ours = self.cycle.record.backup_id.clone();
        let last = self.cycle.poll().last_phase.clone();
        let report = self.report.clone();
        let task = steps::poll_after(agent.clone(), ours, pause, last, wait, report);
        let event = self.bounded(task, deadline, cancel).await;
        polls.held = matches!(event, Event::Status(_)) && self.cycle.poll().held;
        if !polls.held {
            polls.wait.pace(event);
        }
        event
    }
}
