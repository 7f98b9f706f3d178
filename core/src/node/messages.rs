//! Port messaging: `send` to any port in the mesh, delivery to local ports.
//!
//! Rules kept here: a message travels on the one connection to the port's
//! node, so it arrives in order per sender and port, at most once; it goes
//! only to the incarnation the port belongs to (a restarted node never gets
//! its predecessor's mail); a message for a port that is closed or a node
//! that is not connected is dropped and counted, never an error; a sender
//! without credit for the port sends nothing and waits (`flow.rs`); a
//! payload that does not fit one frame is an error and nothing is sent.

use super::Node;
use crate::conn::Phase;
use crate::credit::Take;
use crate::error::ApiError;
use crate::event::Event;
use crate::ids::{ConnId, PortId};
use crate::wire::{Frame, Payload, MESSAGE_OVERHEAD};

/// What became of a message given to [`Node::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "a message told to wait was not sent"]
pub enum SendOutcome {
    /// Queued for its connection, or delivered to the local port.
    Sent,
    /// The port holds all the messages this sender may have unread there
    /// ([`Config::port_credit`](crate::Config::port_credit)): nothing was
    /// sent. [`Event::SendReady`] for the port follows when sending it
    /// again may succeed.
    Wait,
    /// Dropped and counted: the port is closed (or never existed).
    PortClosed,
    /// Dropped and counted: the port's node is not connected (or runs
    /// another incarnation).
    Unreachable,
}

impl Node {
    /// Sends `payload` to the port `to`, local or remote, optionally naming
    /// a local port `from` the receiver can reply to.
    ///
    /// Delivery is in order per sender and port, at most once, and never
    /// beyond the port's credit: without credit the answer is
    /// [`SendOutcome::Wait`] and nothing is sent; send it again after
    /// [`Event::SendReady`] for `to`. A message for a port that is closed,
    /// or whose node is not connected (or runs another incarnation), is
    /// dropped and counted in
    /// [`Stats::messages_dropped`](crate::Stats::messages_dropped).
    ///
    /// # Errors
    /// [`ApiError::PayloadTooLarge`] when it does not fit one frame,
    /// [`ApiError::NotLocalPort`] when `from` is not a live local port;
    /// nothing is sent.
    pub fn send(
        &mut self,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
    ) -> Result<SendOutcome, ApiError> {
        self.live()?;
        let from_n = from.map(|p| self.local_number(p)).transpose()?;
        if to.node() == &self.cfg.node_id {
            check_size(payload, self.cfg.limits.max_frame)?;
            return Ok(self.send_local(to, from, payload));
        }
        let conn = self.sessions.conn_to(to);
        let max_frame = conn
            .and_then(|c| self.sessions.get(c))
            .map_or(self.cfg.limits.max_frame, |c| c.peer_max_frame);
        check_size(payload, max_frame)?;
        let Some(conn) = conn else {
            self.stats.messages_dropped += 1;
            return Ok(SendOutcome::Unreachable);
        };
        match self.credits.take(conn, to.number(), to) {
            Take::Wait => return Ok(SendOutcome::Wait),
            Take::Closed => {
                self.stats.messages_dropped += 1;
                return Ok(SendOutcome::PortClosed);
            }
            Take::Taken => {}
        }
        let frame = Frame::Message {
            to: to.number(),
            from: from_n,
            payload: Payload::from(payload.to_vec()),
        };
        self.send_frame(self.now, conn, &frame);
        self.stats.messages_sent += 1;
        Ok(SendOutcome::Sent)
    }

    /// [`send`](Self::send) to a port of this node: its credit is shared
    /// by every local sender.
    fn send_local(&mut self, to: &PortId, from: Option<&PortId>, payload: &[u8]) -> SendOutcome {
        let n = to.number();
        if to.incarnation() != self.incarnation || !self.local.is_live(n) {
            self.stats.messages_dropped += 1;
            return SendOutcome::PortClosed;
        }
        if !self.credits.receive(None, n, self.cfg.port_credit, to) {
            return SendOutcome::Wait;
        }
        self.stats.messages_sent += 1;
        self.stats.messages_received += 1;
        self.events.push_back(Event::Message {
            to: to.clone(),
            from: from.cloned(),
            payload: payload.to_vec(),
            conn: None,
        });
        SendOutcome::Sent
    }

    /// The connection a message to `port` would go out on: the authenticated
    /// connection to the incarnation `port` belongs to; `None` for a local
    /// port or a node not connected (or running another incarnation). Lets a
    /// driver apply backpressure per connection before calling [`send`](Self::send).
    pub fn conn_of(&self, port: &PortId) -> Option<ConnId> {
        self.sessions.conn_to(port)
    }

    /// Bytes queued for `conn` that [`poll_transmit`](Self::poll_transmit)
    /// has not handed out yet (0 for an unknown connection). With what it
    /// already gave the writer, this is what a driver's backpressure counts.
    pub fn unsent(&self, conn: ConnId) -> usize {
        self.sessions.get(conn).map_or(0, |c| c.unsent())
    }

    /// A message from the peer on `conn` for our port `to`. One for a port
    /// that is closed is dropped and counted, and the peer told (a sender
    /// waiting for credit there then stops waiting); one beyond the peer's
    /// credit closes the connection.
    pub(super) fn on_message(
        &mut self,
        conn: ConnId,
        to: u64,
        from: Option<u64>,
        payload: Payload,
    ) {
        let Some(Phase::Active {
            node, incarnation, ..
        }) = self.sessions.get(conn).map(|c| &c.phase)
        else {
            return;
        };
        if !self.local.is_live(to) {
            self.stats.messages_dropped += 1;
            self.send_frame(self.now, conn, &Frame::PortDown { port: to });
            return;
        }
        let from = from.map(|n| PortId::new(node.clone(), *incarnation, n));
        let port = PortId::new(self.cfg.node_id.clone(), self.incarnation, to);
        if !self
            .credits
            .receive(Some(conn), to, self.cfg.port_credit, &port)
        {
            self.credit_breach(conn);
            return;
        }
        self.stats.messages_received += 1;
        self.events.push_back(Event::Message {
            to: port,
            from,
            payload: payload.into_vec(),
            conn: Some(conn),
        });
    }
}

fn check_size(payload: &[u8], max_frame: usize) -> Result<(), ApiError> {
    let max = max_frame.saturating_sub(MESSAGE_OVERHEAD);
    if payload.len() > max {
        return Err(ApiError::PayloadTooLarge {
            len: payload.len(),
            max,
        });
    }
    Ok(())
}
