//! Time: converting between the core's millisecond [`Instant`] and the OS
//! clock, and the task that calls `handle_timeout` when the core asks.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use groupmesh_core::Instant;

use crate::runtime::Runtime;
use crate::shared::Shared;

/// The core's epoch: core time is milliseconds since the node started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    /// Now, rounded down to the millisecond. Read it with the core locked, so
    /// that the core never sees time go back.
    pub(crate) fn now(&self) -> Instant {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    /// When `at` is on the OS clock. A timer set for it fires when [`now`](Self::now) ≥ `at`.
    pub(crate) fn deadline(&self, at: Instant) -> std::time::Instant {
        self.epoch + Duration::from_millis(at.as_millis())
    }
}

/// Calls `handle_timeout` whenever the core's deadline passes; woken early
/// when an input moves the deadline closer. Runs until the node halts.
pub(crate) async fn run<R: Runtime>(shared: Arc<Shared<R>>) {
    loop {
        // Listen before reading the deadline, so that a change made right
        // after the read still wakes us.
        let moved = shared.wake_timer.listen();
        match shared.tick() {
            Some(at) => {
                let sleep = shared.rt.sleep_until(shared.clock.deadline(at));
                future::or(sleep, moved).await;
            }
            None => moved.await,
        }
    }
}
