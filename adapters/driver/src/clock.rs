//! [`Clock`]: converting between the core's millisecond [`Instant`] and the
//! OS clock.

use std::time::Duration;

use groupmesh_core::Instant;

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
