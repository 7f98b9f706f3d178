//! Flow control of port messages: the `Node` side of [`Credits`](crate::credit::Credits).
//!
//! Rules kept here: our port's reader returns credit to the peers it read
//! from ([`Frame::Credit`]) and to local senders; a sender told to wait is
//! woken ([`Event::SendReady`]) when credit comes back, when the port is
//! closed, or when the connection to its node is gone; a peer that sends
//! beyond its credit, or returns credit it never used, is closed with
//! [`Limit::PortCredit`].

use alloc::vec::Vec;

use super::Node;
use crate::event::{CloseReason, Event, Limit};
use crate::ids::{ConnId, PortId};
use crate::time::Instant;
use crate::wire::Frame;

impl Node {
    /// The user read `n` messages of the local `port` (in the order the
    /// [`Event::Message`]s came): their senders' credit comes back. Call
    /// it as the user takes messages, then drain the outputs (a
    /// [`Frame::Credit`] to a peer, or [`Event::SendReady`] for a local
    /// sender, may follow). A port that is not ours or not live: nothing.
    pub fn message_read(&mut self, port: &PortId, n: usize) {
        if port.node() != &self.cfg.node_id || port.incarnation() != self.incarnation {
            return;
        }
        let read = self.credits.read(port.number(), n, self.cfg.port_credit);
        for (conn, n) in read.returns {
            let frame = Frame::Credit {
                port: port.number(),
                n,
            };
            self.send_frame(self.now, conn, &frame);
        }
        if let Some(port) = read.wake_local {
            self.events.push_back(Event::SendReady { port });
        }
    }

    /// The peer on `conn` returned `n` credits for its port `port`.
    pub(super) fn on_credit(&mut self, now: Instant, conn: ConnId, port: u64, n: u32) {
        match self.credits.returned(conn, port, n) {
            Ok(Some(port)) => self.events.push_back(Event::SendReady { port }),
            Ok(None) => {}
            Err(()) => self.close(now, conn, CloseReason::LimitExceeded(Limit::PortCredit)),
        }
    }

    /// The peer on `conn` said its port `port` is closed.
    pub(super) fn credit_port_down(&mut self, conn: ConnId, port: u64) {
        if let Some(port) = self.credits.port_down(conn, port) {
            self.events.push_back(Event::SendReady { port });
        }
    }

    /// Our port `port` closed: a local sender waiting for it is woken; the
    /// connections that sent to it, to be told.
    pub(super) fn credit_local_port_closed(&mut self, port: u64) -> Vec<ConnId> {
        let (conns, local) = self.credits.local_port_closed(port);
        if let Some(port) = local {
            self.events.push_back(Event::SendReady { port });
        }
        conns
    }

    /// `conn` is gone: senders waiting on it are woken.
    pub(super) fn credit_conn_closed(&mut self, conn: ConnId) {
        for port in self.credits.conn_closed(conn) {
            self.events.push_back(Event::SendReady { port });
        }
    }

    /// The peer on `conn` sent a message beyond its credit.
    pub(super) fn credit_breach(&mut self, conn: ConnId) {
        tracing::debug!(%conn, "peer sent beyond its port credit");
        self.close(
            self.now,
            conn,
            CloseReason::LimitExceeded(Limit::PortCredit),
        );
    }
}
