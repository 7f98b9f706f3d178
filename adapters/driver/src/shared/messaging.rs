//! Sending messages, with the driver's backpressure rule, and opening ports
//! and port monitors with their mailboxes.
//!
//! Backpressure: a message for a connection whose unwritten bytes, this
//! message included, would exceed half of the send buffer is dropped and
//! counted, unless nothing at all is queued (a single message up to the
//! frame size always fits an idle connection). Messages therefore never
//! push a connection past its send buffer limit (which closes it): a flood
//! loses messages, not the connection, and group traffic keeps the other
//! half of the buffer.
//!
//! Receiving: a message past a port's full mailbox is held, and the
//! connection it came on is not read again until the port's reader has
//! made room (TCP then slows the sender down to the reader's pace, and the
//! rule above drops at the sender, where it is counted). A connection is
//! paused for at most a quarter of `ping_interval`: then what it had held is
//! dropped and counted, and it is read again, so that a port nobody reads
//! never holds up a peer's group changes or pings for long. A full mailbox
//! drops a message sent from this node at once.

use std::sync::atomic::Ordering;

use groupmesh_core::wire::MESSAGE_OVERHEAD;
use groupmesh_core::{ApiError, ConnId, PortId, PortMonitorId};

use super::{Shared, State};
use crate::message::SendError;
use crate::runtime::Runtime;

impl<R: Runtime> Shared<R> {
    /// Sends a message, or drops it if its connection is congested.
    pub(crate) fn send_message(
        &self,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.with(|st, _| {
            if st.stopped {
                return Err(SendError::ShutDown);
            }
            if let Some(conn) = st.core.conn_of(to) {
                if self.congested(st, conn, payload.len()) {
                    // What could never be sent is still an error: checked
                    // here against this node's frame limit.
                    let max = st
                        .core
                        .config()
                        .limits
                        .max_frame
                        .saturating_sub(MESSAGE_OVERHEAD);
                    if payload.len() > max {
                        return Err(SendError::PayloadTooLarge {
                            len: payload.len(),
                            max,
                        });
                    }
                    st.dropped += 1;
                    tracing::debug!(%conn, %to, "connection congested: message dropped");
                    return Ok(());
                }
            }
            st.core.send(to, from, payload).map_err(SendError::from_api)
        })
    }

    /// Whether a message of `len` bytes for `conn` would fill its unwritten
    /// bytes past half of the send buffer.
    fn congested(&self, st: &State<R::Stream>, conn: ConnId, len: usize) -> bool {
        let Some(slot) = st.slots.get(&conn) else {
            return false;
        };
        // What the writer has not written, and what the core holds for the
        // next flush.
        let queued = slot.queued.load(Ordering::Acquire) + st.core.unsent(conn);
        queued > 0 && queued.saturating_add(len + MESSAGE_OVERHEAD) > self.send_buffer / 2
    }

    /// Opens a local port with its mailbox.
    pub(crate) fn open_port(&self) -> PortId {
        let mut st = self.lock();
        let id = st.core.open_port();
        st.mailboxes.open_port(id.clone());
        id
    }

    /// Starts a port monitor; its notice may already be waiting.
    pub(crate) fn monitor_port(&self, port: &PortId) -> Result<PortMonitorId, ApiError> {
        self.api(|st| {
            let id = st.core.monitor_port(port)?;
            // Before the drain: a port already gone fires at once.
            st.mailboxes.open_watch(id);
            Ok(id)
        })
    }

    /// A message that came on `conn` is held past a full mailbox: stop
    /// reading `conn` until the reader made room.
    pub(super) fn hold(&self, st: &mut State<R::Stream>, conn: ConnId) {
        *st.held.entry(conn).or_default() += 1;
        if let Some(slot) = st.slots.get(&conn) {
            slot.gate.close();
        }
    }

    /// Held messages of these connections moved into mailboxes (or were
    /// dropped): a connection with none held any more reads again.
    pub(super) fn release(&self, st: &mut State<R::Stream>, conns: &[ConnId]) {
        for conn in conns {
            let Some(n) = st.held.get_mut(conn) else {
                continue;
            };
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.held.remove(conn);
                if let Some(slot) = st.slots.get(conn) {
                    slot.gate.open();
                }
            }
        }
    }

    /// `conn` stayed paused for `hold`: its held messages are dropped (and
    /// counted), and it reads again, so that its group changes and pings
    /// get through even to a node whose port is never read.
    pub(crate) fn hold_expired(&self, conn: ConnId) {
        let mut st = self.lock();
        let dropped = st.mailboxes.drop_held_from(conn);
        st.dropped += dropped as u64;
        tracing::debug!(%conn, dropped, "mailbox not read in time: held messages dropped");
        st.held.remove(&conn);
        if let Some(slot) = st.slots.get(&conn) {
            slot.gate.open();
        }
    }
}
