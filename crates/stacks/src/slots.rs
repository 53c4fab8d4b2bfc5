//! Parallelism slots for engine work (SPEC §5 `parallelism`, issue 22): what is limited is the
//! engine's own work — a stack's stop calls, each dependency level's start calls — never a wait
//! for an app (to run, to become healthy, to outlive the settle window, to finish a stop in
//! flight), so that one stack's slow health check never queues another stack's start.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one cycle; cheap to clone (clones share the slots).
///
/// First come, first served: stacks that ask in order get their slots in order (tokio's
/// semaphore is fair).
#[derive(Debug, Clone)]
pub struct Slots(Arc<Semaphore>);

/// One slot, held until dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Slots {
    /// `parallelism` slots; 0 is taken as 1 (nothing could ever run).
    pub fn new(parallelism: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            parallelism.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// Waits for a free slot (in the order asked) and holds it until the [`Slot`] is dropped.
    /// For implementations of [`Stacks`](crate::Stacks).
    pub async fn take(&self) -> Slot {
        // The semaphore is never closed, so acquiring cannot fail; should it ever, running
        // without a slot is better than not running at all.
        Slot(Arc::clone(&self.0).acquire_owned().await.ok())
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn slots_are_given_in_the_order_asked() {
        let slots = Slots::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = slots.take().await;
        let mut waiting = Vec::new();
        for i in 0..4 {
            let (slots, order) = (slots.clone(), Arc::clone(&order));
            waiting.push(tokio::spawn(async move {
                let _slot = slots.take().await;
                order.lock().expect("order").push(i);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }));
            // Each asks before the next does.
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.available(), 0);
        drop(first);
        for task in waiting {
            task.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order"), [0, 1, 2, 3]);
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test]
    async fn zero_parallelism_is_one_slot() {
        let slots = Slots::new(0);
        assert_eq!(slots.available(), 1);
        let _one = slots.take().await;
        assert_eq!(slots.available(), 0);
    }
}
