//! Carrying out what the core asks after an input: bytes to the writers
//! (within the send buffer limit), dials and closes, changes to monitor
//! mailboxes, messages to port mailboxes, port monitors' notices, notices
//! to event inboxes, and waking the timer.

use std::sync::atomic::Ordering;

use groupmesh_core::{Action, ConnId, Event, Transmit};

use super::{Shared, State};
use crate::mailbox::{GroupChange, NodeEvent};
use crate::message::Message;
use crate::runtime::Runtime;

/// How many connections one drain hands bytes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writes {
    /// Every connection the core has bytes for.
    All,
    /// At most this many; the core keeps the rest for the flush task.
    AtMost(usize),
}

/// The most connections a call hands bytes to before it returns. A group
/// change goes to every peer, and its caller (perhaps a task on the
/// runtime's only thread) should not make N - 1 writes, each waking a peer
/// that may preempt it: at N=20 that was 0.41-0.49 ms per `register`. Up to
/// this many peers hear from the call itself, without a task hop (a mesh of
/// five, every peer); the flush task writes to the others right after
/// (tests/tests/fan_out.rs).
pub(super) const WRITES_PER_CALL: usize = 4;

impl<R: Runtime> Shared<R> {
    /// Carries out what the core asks, until it asks nothing more (bytes
    /// for as many connections as `writes` allows). Returns whether it
    /// handed any bytes to a connection.
    pub(super) fn drain(&self, st: &mut State<R::Stream>, writes: Writes) -> bool {
        let mut wrote = false;
        let mut left = match writes {
            Writes::All => usize::MAX,
            Writes::AtMost(n) => n,
        };
        loop {
            let mut overflowed = Vec::new();
            let mut drained = Vec::new();
            while left > 0 {
                let Some(t) = st.core.poll_transmit() else {
                    break;
                };
                left -= 1;
                wrote = true;
                self.deliver(st, t, &mut overflowed, &mut drained);
            }
            while let Some(action) = st.core.poll_action() {
                self.act(st, action);
            }
            while let Some(event) = st.core.poll_event() {
                self.dispatch(st, event);
            }
            if overflowed.is_empty() && drained.is_empty() {
                break;
            }
            // New inputs only once every output of the last one is out.
            let now = self.clock.now();
            for id in overflowed {
                st.core.handle_send_overflow(now, id);
            }
            for id in drained {
                Self::writable(st, id);
                st.core.handle_drained(now, id);
            }
        }
        if let Some(at) = st.core.poll_timeout() {
            if st.armed.is_none_or(|armed| at < armed) {
                st.armed = Some(at);
                self.wake_timer.notify(1);
            }
        }
        wrote
    }

    /// Hands bytes to a connection's writer, unless its buffer is full.
    /// A connection left holding no more than the low-water mark goes on
    /// `drained` (the core's next snapshot chunk may follow); one holding
    /// more is reported by its writer when it gets there.
    fn deliver(
        &self,
        st: &mut State<R::Stream>,
        t: Transmit,
        overflowed: &mut Vec<ConnId>,
        drained: &mut Vec<ConnId>,
    ) {
        let Some(slot) = st.slots.get(&t.conn) else {
            tracing::trace!(conn = %t.conn, "bytes for a closed connection dropped");
            return;
        };
        let Some(out) = &slot.out else {
            return;
        };
        let queued = slot.queued.load(Ordering::Acquire);
        if queued.saturating_add(t.data.len()) > self.send_buffer {
            tracing::warn!(
                conn = %t.conn,
                queued,
                limit = self.send_buffer,
                "send buffer full, the peer does not read: closing the connection"
            );
            self.remove_slot(st, t.conn);
            overflowed.push(t.conn);
            return;
        }
        let mut data = t.data;
        if queued == 0 {
            // The writer is idle (it has written all it was given): write
            // from here, and queue only what the socket does not take now.
            if let Some(stream) = &slot.direct {
                match R::try_write(stream, &data) {
                    Ok(n) if n == data.len() => {
                        drained.push(t.conn);
                        return;
                    }
                    Ok(n) => {
                        data.drain(..n);
                    }
                    // The writer meets the same error and reports it.
                    Err(_) => {}
                }
            }
        }
        let held = slot.queued.fetch_add(data.len(), Ordering::AcqRel) + data.len();
        // Unbounded: it fails only when the writer already ended, and then
        // the connection's end is being reported anyway.
        let _ = out.try_send(data);
        st.send_buffer_peak = st.send_buffer_peak.max(held);
        if held <= self.low_water {
            drained.push(t.conn);
        }
    }

    fn act(&self, st: &mut State<R::Stream>, action: Action) {
        match action {
            Action::Dial { conn: id, addr } => {
                tracing::debug!(conn = %id, %addr, "dialling");
                self.dial(st, id, addr);
            }
            Action::Close { conn: id } => self.close_slot(st, id),
            other => tracing::debug!(action = ?other, "unknown core action ignored"),
        }
    }

    fn dispatch(&self, st: &mut State<R::Stream>, event: Event) {
        let notice = match event {
            Event::Group(d) => {
                let change = GroupChange {
                    members: d.members,
                    added: d.added,
                    removed: d.removed,
                    reasons: d.reasons,
                    updated: d.updated,
                    meta: d.meta,
                };
                st.mailboxes.push_change(d.monitor, change);
                return;
            }
            Event::NodeUp { node, incarnation } => {
                tracing::debug!(%node, incarnation, "node up");
                st.up.insert(node.clone(), incarnation);
                NodeEvent::NodeUp { node, incarnation }
            }
            Event::NodeDown {
                node,
                incarnation,
                reason,
            } => {
                tracing::debug!(%node, incarnation, %reason, "node down");
                if st.up.get(&node) == Some(&incarnation) {
                    st.up.remove(&node);
                }
                NodeEvent::NodeDown {
                    node,
                    incarnation,
                    reason,
                }
            }
            Event::ConnectionClosed {
                conn: id,
                addr,
                node,
                authenticated,
                reason,
            } => {
                // The core is done with it. If the core asked to close it, it
                // is already writing its last bytes; otherwise the peer closed
                // or the socket failed: nothing more to write, drop it.
                if st.slots.get(&id).is_some_and(|s| s.out.is_some()) {
                    self.remove_slot(st, id);
                }
                let dial_error = st.dial_errors.remove(&id);
                tracing::debug!(conn = %id, %addr, ?node, authenticated, %reason, ?dial_error, "connection closed");
                NodeEvent::ConnectionClosed {
                    addr,
                    node,
                    authenticated,
                    reason,
                    dial_error,
                }
            }
            Event::InboundRefused { addr } => NodeEvent::InboundRefused { addr },
            Event::Message {
                to, from, payload, ..
            } => {
                let m = Message {
                    from,
                    to: to.clone(),
                    payload,
                };
                if !st.mailboxes.deliver(&to, m) {
                    st.dropped += 1;
                    tracing::debug!(port = %to, "port gone: message dropped");
                }
                return;
            }
            Event::PortDown {
                monitor,
                port,
                reason,
            } => {
                tracing::debug!(%port, %reason, "monitored port down");
                st.mailboxes.fire(monitor, reason);
                return;
            }
            Event::SendReady { port } => {
                self.send_ready(st, &port);
                return;
            }
            other => {
                tracing::debug!(event = ?other, "unknown core event ignored");
                return;
            }
        };
        st.mailboxes.notify(&notice);
    }
}
