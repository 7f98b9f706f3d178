//! What the node has for its driver besides events, queued until drained:
//! the last bytes of connections we closed, the connections with bytes
//! waiting, and the dials and closes to carry out.
//!
//! Rules kept here: a closed connection's last bytes come out before any
//! other transmit, and its close after them (transmits are drained before
//! actions); a dial the driver has not been handed yet when its connection
//! closes is taken back, so the driver never dials a connection already
//! gone nor closes one it never dialled; connections with output come out
//! in the order they got it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::event::{Action, Transmit};
use crate::ids::ConnId;

#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// Last bytes of connections already closed.
    closing: VecDeque<Transmit>,
    /// Connections with bytes waiting, in the order they got them.
    dirty: VecDeque<ConnId>,
    actions: VecDeque<Action>,
}

impl Outputs {
    /// The driver is to dial `addr` for `conn`.
    pub(crate) fn dial(&mut self, conn: ConnId, addr: SocketAddr) {
        self.actions.push_back(Action::Dial { conn, addr });
    }

    /// We closed `conn`, with `last` still to write: the bytes go out, then
    /// the driver closes it, unless its dial was not handed out yet (the
    /// node drains after a burst): then the dial is taken back instead.
    pub(crate) fn closed(&mut self, conn: ConnId, last: Vec<u8>) {
        if !last.is_empty() {
            self.closing.push_back(Transmit { conn, data: last });
        }
        let dial = self
            .actions
            .iter()
            .position(|a| matches!(a, Action::Dial { conn: c, .. } if *c == conn));
        match dial {
            Some(at) => {
                self.actions.remove(at);
            }
            None => self.actions.push_back(Action::Close { conn }),
        }
    }

    /// `conn` got output to hand out (once, until it is taken).
    pub(crate) fn mark(&mut self, conn: ConnId) {
        self.dirty.push_back(conn);
    }

    /// The next closed connection's last bytes.
    pub(crate) fn next_closing(&mut self) -> Option<Transmit> {
        self.closing.pop_front()
    }

    /// The next connection with output, in the order they got it.
    pub(crate) fn next_marked(&mut self) -> Option<ConnId> {
        self.dirty.pop_front()
    }

    pub(crate) fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}
