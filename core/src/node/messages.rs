//! Port messaging: `send` to any port in the mesh, delivery to local ports.
//!
//! Rules kept here: a message travels on the one connection to the port's
//! node, so it arrives in order per sender and port, at most once; it goes
//! only to the incarnation the port belongs to (a restarted node never gets
//! its predecessor's mail); a message for a port that does not exist or a
//! node that is not connected is dropped and counted, never an error; a
//! payload that does not fit one frame is an error and nothing is sent.

use super::Node;
use crate::conn::Phase;
use crate::error::ApiError;
use crate::event::Event;
use crate::ids::{ConnId, PortId};
use crate::wire::{Frame, Payload, MESSAGE_OVERHEAD};

impl Node {
    /// Sends `payload` to the port `to`, local or remote, optionally naming
    /// a local port `from` the receiver can reply to.
    ///
    /// Delivery is in order per sender and port, at most once. A message for
    /// a port that does not exist, or whose node is not connected (or runs
    /// another incarnation), is dropped and counted in
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
    ) -> Result<(), ApiError> {
        self.live()?;
        let from_n = from.map(|p| self.local_number(p)).transpose()?;
        if to.node() == &self.cfg.node_id {
            check_size(payload, self.cfg.limits.max_frame)?;
            if to.incarnation() == self.incarnation && self.local.is_live(to.number()) {
                self.stats.messages_sent += 1;
                self.stats.messages_received += 1;
                self.events.push_back(Event::Message {
                    to: to.clone(),
                    from: from.cloned(),
                    payload: payload.to_vec(),
                    conn: None,
                });
            } else {
                self.stats.messages_dropped += 1;
            }
            return Ok(());
        }
        let conn = self.sessions.conn_to(to);
        let max_frame = conn
            .and_then(|c| self.sessions.get(c))
            .map_or(self.cfg.limits.max_frame, |c| c.peer_max_frame);
        check_size(payload, max_frame)?;
        let Some(conn) = conn else {
            self.stats.messages_dropped += 1;
            return Ok(());
        };
        let frame = Frame::Message {
            to: to.number(),
            from: from_n,
            payload: Payload::from(payload.to_vec()),
        };
        self.send_frame(self.now, conn, &frame);
        self.stats.messages_sent += 1;
        Ok(())
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

    /// A message from the peer on `conn` for our port `to`.
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
            return;
        }
        let from = from.map(|n| PortId::new(node.clone(), *incarnation, n));
        self.stats.messages_received += 1;
        self.events.push_back(Event::Message {
            to: PortId::new(self.cfg.node_id.clone(), self.incarnation, to),
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
