//! The timer task: calls `handle_timeout` when the core asks.

use std::sync::Arc;

use futures_lite::future;

use crate::runtime::Runtime;
use crate::shared::Shared;

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
