//! A connection's read gate: closed while a port's mailbox holds messages
//! that came on the connection (backpressure), open otherwise.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;
use futures_lite::future;

#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    opened: Event,
}

impl Gate {
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn open(&self) {
        self.closed.store(false, Ordering::Release);
        self.opened.notify(usize::MAX);
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Waits until the gate is open, or `late` completes; false if it was
    /// still closed then.
    pub(crate) async fn wait_open(&self, late: impl Future<Output = ()>) -> bool {
        let open = async {
            loop {
                let listener = self.opened.listen();
                if self.is_open() {
                    return true;
                }
                listener.await;
            }
        };
        let late = async {
            late.await;
            false
        };
        future::or(open, late).await || self.is_open()
    }
}
