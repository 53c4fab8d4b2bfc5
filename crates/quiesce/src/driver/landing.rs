//! The driver's side of the [`MarkerWriter`](crate::writer::MarkerWriter): what it does once
//! a write has landed. A step that waits for the marker (`Reporter::record`) is answered here,
//! the lines that must not be logged before the marker says the same are logged here, and a
//! write that failed is noted (a marker that cannot be removed is stuck). Also the ways the
//! driver waits while facts keep arriving: beside a piece of work ([`Driver::alongside`]), or
//! for the writes to land ([`Driver::let_land`]).

use super::Driver;
use crate::progress::{Ack, Level};
use crate::writer::Landed;
use crate::{after, humanize};
use std::future::Future;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

impl Driver<'_> {
    /// Answers `ack` once the marker that holds what it asked for is on disk: the write of
    /// number `written`, or (nothing changed) the last one handed over.
    pub(super) fn ack_when_written(&mut self, ack: Ack, written: Option<u64>) {
        if !self.cycle.has_marker() {
            let _ = ack.send(false);
            return;
        }
        let seq = written.unwrap_or(self.writer.handed());
        if self.writer.settled() >= seq {
            // Already on disk — or, for a write just handed over, never to be: the writer is
            // gone.
            let _ = ack.send(written.is_none() && self.last_write_ok);
        } else {
            self.acks.push((seq, ack));
        }
    }

    /// A marker write landed: a failure is noted (a marker that cannot be removed is stuck);
    /// the steps and lines waiting for it are told.
    pub(super) fn landed(&mut self, landed: Landed) {
        let ok = landed.result.is_ok();
        self.last_write_ok = ok;
        let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acks)
            .into_iter()
            .partition(|(seq, _)| *seq <= landed.seq);
        self.acks = still;
        for (_, ack) in done {
            let _ = ack.send(ok);
        }
        if let Err(e) = &landed.result {
            crate::health::counted(&self.shared.shown);
            let what = if landed.cleared {
                "clearing"
            } else {
                "updating"
            };
            let message = format!("{what} the marker: {}", e.describe());
            self.note(Level::Error, message.clone());
            if landed.cleared {
                let cycle_id = &self.cycle.record.cycle_id;
                self.shared
                    .stuck
                    .mark(&self.shared.shown, cycle_id, message);
            }
        }
        self.say_what_landed();
    }

    pub(super) fn say_what_landed(&mut self) {
        let settled = self.writer.settled();
        self.to_say.retain(|(after, said)| {
            if *after <= settled {
                said.say();
            }
            *after > settled
        });
    }

    /// Applies every fact already sent.
    pub(super) fn drain(&mut self) {
        while let Ok(progress) = self.progress.try_recv() {
            self.apply(progress);
        }
    }

    /// Runs `work` beside the driver: the facts it reports are applied, and the marker writes
    /// that land are taken in, as they come.
    pub(super) async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let out = loop {
            tokio::select! {
                out = &mut work => break out,
                Some(progress) = self.progress.recv() => self.apply(progress),
                landed = self.writer.landed() => self.landed(landed),
            }
        };
        self.drain();
        out
    }

    /// Waits up to `limit` (`None`: as long as it takes) for the marker writes handed over.
    pub(super) async fn let_land(&mut self, limit: Option<Duration>) {
        let until = limit.map(after);
        while self.writer.pending() {
            tokio::select! {
                landed = self.writer.landed() => self.landed(landed),
                () = sleep_until(until.unwrap_or_else(Instant::now)), if until.is_some() => {
                    let waited = humanize(limit.unwrap_or_default());
                    let message = format!("the marker's last change did not reach the disk within {waited}: going on");
                    self.note(Level::Error, message);
                    return;
                }
            }
        }
    }
}
