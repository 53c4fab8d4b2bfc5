//! The resume's facts into the cycle: a failed start (counted in the marker), a stack back
//! or left alone (it leaves the marker once no `post-resume` hook of it is due), a stranded
//! stack and whether the stranded list took it. SPEC §2 rule 6: a stack leaves the marker
//! only once it runs or another durable list holds it.

use super::Cycle;
use crate::progress::{Applied, Level, OnDisk, Said};
use chrono::{DateTime, Utc};
use felhom_marker::StrandedStack;

impl Cycle {
    /// One start of `stack` failed: noted, and counted in the marker.
    pub(super) fn start_failed(
        &mut self,
        stack: &str,
        attempt: u32,
        attempts: u32,
        error: &str,
    ) -> Applied {
        self.note(
            Level::Warn,
            format!("starting {stack} (attempt {attempt}/{attempts}): {error}"),
        );
        self.change_marker(|m| {
            if let Some(s) = m.stack_mut(stack) {
                s.restart_attempts += 1;
            }
        });
        self.on_disk_now()
    }

    /// Stack `stack` runs again: it has nothing left to start (it leaves the marker once no
    /// `post-resume` hook of it is due), and its downtime is recorded.
    pub(super) fn back(&mut self, stack: String, attempt: u32, at: DateTime<Utc>) -> Applied {
        self.change_marker(|m| {
            if let Some(s) = m.stack_mut(&stack) {
                // What a recovery finds of it now: nothing to start, its hooks' progress.
                s.containers = Vec::new();
                s.services = Vec::new();
                s.stop_began = false;
                s.restart_attempts = 0;
            }
        });
        self.resumed.insert(stack.clone());
        self.settle(&stack);
        if let Some(rec) = self.stack_record(&stack) {
            rec.started_at = Some(at);
            rec.downtime_ms = rec
                .stop_started_at
                .map(|t| (at - t).num_milliseconds().max(0) as u64);
        }
        Applied {
            say: Some(Said::StackBack { stack, attempt }),
            ..self.on_disk_now()
        }
    }

    /// `stack`'s stop never began: nothing of ours stopped it, so nothing is started; it is
    /// over as far as the resume goes.
    pub(super) fn left_alone(&mut self, stack: String) -> Applied {
        let stopped_nothing = self
            .marked()
            .iter()
            .any(|s| s.name == stack && !s.services.is_empty());
        if stopped_nothing {
            tracing::info!(stack = %stack, "its stop never began: left as it is");
        }
        self.resumed.insert(stack.clone());
        self.settle(&stack);
        self.on_disk_now()
    }

    /// `stack` could not be started again after every attempt: it waits for the stranded
    /// list (it stays in the marker until the list holds it).
    pub(super) fn stranded(&mut self, stack: StrandedStack) -> Applied {
        let message = format!(
            "stack {} STRANDED: it could not be started again",
            stack.name
        );
        self.note(Level::Error, message);
        self.record.stranded.push(stack.name.clone());
        self.newly_stranded.push(stack);
        Applied::default()
    }

    /// The stranded list holds `names` now: they leave the marker (and the marker goes once
    /// nothing is left in it).
    pub(super) fn stranded_kept(&mut self, names: &[String]) -> Applied {
        self.change_marker(|m| m.stacks.retain(|s| !names.contains(&s.name)));
        if self.marked().is_empty() {
            // Every stack runs or is stranded: nothing is left for a recovery.
            self.marker = None;
            return Applied {
                on_disk: OnDisk::Remove,
                say: None,
            };
        }
        self.on_disk_now()
    }

    /// The stranded list could not take `names`: the marker keeps them.
    pub(super) fn stranded_not_kept(&mut self, names: Vec<String>) -> Applied {
        let message = format!(
            "the stranded list cannot take {}: the marker keeps them, and they are tried again from it later",
            names.join(", ")
        );
        self.unkept_stranded.extend(names);
        self.note(Level::Error, message)
    }
}
