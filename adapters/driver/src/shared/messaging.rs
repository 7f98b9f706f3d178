//! Sending messages, with flow control, and opening ports and port
//! monitors with their mailboxes.
//!
//! Flow control: a message goes out only when the core has credit for its
//! port (see `groupmesh_core::Config::port_credit`: the receiving port's
//! reader returns it as it reads) and its connection's unwritten bytes,
//! this message included, stay within half of the send buffer (a single
//! message up to the frame size always fits an idle connection). Otherwise
//! the sender waits: for the core's `SendReady` of that port, or for the
//! connection's writer to drain. So a slow reader slows its senders down
//! to its pace, and nothing is dropped while the port and its node live;
//! credit is per port, so other ports, group changes and pings on the same
//! connection go on. Messages never push a connection past its send
//! buffer (which closes it), and group traffic keeps the other half.
//!
//! Receiving: the mailbox takes whatever the core delivers (the core never
//! delivers more than each sender's credit), and each message read is
//! reported to the core, which returns the credit.

use std::sync::atomic::Ordering;

use event_listener::{Event as Notify, EventListener};
use groupmesh_core::wire::MESSAGE_OVERHEAD;
use groupmesh_core::{ApiError, ConnId, PortId, PortMonitorId, SendOutcome};

use super::{Control, Shared, State};
use crate::message::SendError;
use crate::runtime::Runtime;

/// Which try to send this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Try {
    /// `try_send`: never waits; no room is [`SendError::Full`], and the
    /// message counts as dropped (the caller chose not to wait).
    Now,
    /// The first try of a `send(..).await`.
    First,
    /// A try after waiting: a port or node gone since is an error.
    Again,
}

/// What became of one try to send.
pub(crate) enum Attempt {
    /// Sent (or dropped and counted: its port or node is gone).
    Sent,
    /// Not sent: wait for the listener, then try again.
    Wait(EventListener),
}

/// Sends, waiting while the destination has no room: the body of every
/// `send(..).await`. `Err` as [`SendError`] says; a port or node gone while
/// it waited is [`SendError::PortClosed`] or [`SendError::Unreachable`].
pub(crate) async fn send_waiting(
    ctl: &dyn Control,
    to: &PortId,
    from: Option<&PortId>,
    payload: &[u8],
) -> Result<(), SendError> {
    let mut attempt = Try::First;
    loop {
        match ctl.try_send(to, from, payload, attempt)? {
            Attempt::Sent => return Ok(()),
            Attempt::Wait(listener) => {
                listener.await;
                attempt = Try::Again;
            }
        }
    }
}

/// Sends if the destination has room now, else [`SendError::Full`].
pub(crate) fn send_now(
    ctl: &dyn Control,
    to: &PortId,
    from: Option<&PortId>,
    payload: &[u8],
) -> Result<(), SendError> {
    match ctl.try_send(to, from, payload, Try::Now)? {
        Attempt::Sent => Ok(()),
        Attempt::Wait(_) => Err(SendError::Full),
    }
}

impl<R: Runtime> Shared<R> {
    /// Tries to send a message once, as `attempt` says.
    pub(crate) fn attempt_send(
        &self,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
        attempt: Try,
    ) -> Result<Attempt, SendError> {
        self.with(|st, _| {
            if st.stopped {
                return Err(SendError::ShutDown);
            }
            if let Some(conn) = st.core.conn_of(to) {
                if let Some(listener) = self.congested(st, conn, payload.len()) {
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
                    return Ok(Self::wait(st, attempt, listener));
                }
            }
            match st
                .core
                .send(to, from, payload)
                .map_err(SendError::from_api)?
            {
                SendOutcome::Wait => {
                    let ready = st.send_ready.entry(to.clone()).or_insert_with(Notify::new);
                    let listener = ready.listen();
                    Ok(Self::wait(st, attempt, listener))
                }
                SendOutcome::PortClosed if attempt == Try::Again => Err(SendError::PortClosed),
                SendOutcome::Unreachable if attempt == Try::Again => Err(SendError::Unreachable),
                _ => Ok(Attempt::Sent),
            }
        })
    }

    /// No room: wait for `listener`, or, for `try_send`, count the message
    /// the caller chose not to wait for as dropped.
    fn wait(st: &mut State<R::Stream>, attempt: Try, listener: EventListener) -> Attempt {
        if attempt == Try::Now {
            st.dropped += 1;
        }
        Attempt::Wait(listener)
    }

    /// Whether a message of `len` bytes for `conn` would fill its unwritten
    /// bytes past half of the send buffer: if so, a listener woken when
    /// the connection drains (or closes).
    fn congested(&self, st: &State<R::Stream>, conn: ConnId, len: usize) -> Option<EventListener> {
        let slot = st.slots.get(&conn)?;
        // What the writer has not written, and what the core holds for the
        // next flush.
        let queued = slot.queued.load(Ordering::Acquire) + st.core.unsent(conn);
        let full =
            queued > 0 && queued.saturating_add(len + MESSAGE_OVERHEAD) > self.send_buffer / 2;
        full.then(|| slot.writable.listen())
    }

    /// The core says senders waiting for `port` may try again.
    pub(super) fn send_ready(&self, st: &mut State<R::Stream>, port: &PortId) {
        if let Some(ready) = st.send_ready.remove(port) {
            ready.notify(usize::MAX);
        }
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
}
