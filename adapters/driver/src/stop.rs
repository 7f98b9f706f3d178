//! Stop signals for spawned tasks: a [`Trigger`] fires (explicitly or when
//! dropped) and every task racing its [`Tripwire`] ends, dropping what it owns.

use async_channel::{Receiver, Sender};

/// Fires the paired [`Tripwire`]s when [`fire`](Self::fire)d or dropped.
#[derive(Debug)]
pub(crate) struct Trigger(Sender<()>);

/// Completes [`wait`](Self::wait) once its [`Trigger`] fired.
#[derive(Debug, Clone)]
pub(crate) struct Tripwire(Receiver<()>);

pub(crate) fn tripwire() -> (Trigger, Tripwire) {
    // Nothing is ever sent: the channel only carries its closing.
    let (tx, rx) = async_channel::bounded(1);
    (Trigger(tx), Tripwire(rx))
}

impl Trigger {
    pub(crate) fn fire(&self) {
        self.0.close();
    }
}

impl Tripwire {
    pub(crate) async fn wait(self) {
        // `recv` fails once the channel is closed: that is the signal.
        let _ = self.0.recv().await;
    }
}
