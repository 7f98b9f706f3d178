//! [`Message`]s between ports, the errors of sending them, and a port's
//! bounded mailbox.

use std::collections::VecDeque;
use std::fmt;
use std::task::{Context, Waker};

use groupmesh_core::{ApiError, ConnId, PortId};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A message received by a local [`Port`](crate::Port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's port, when it sent from one
    /// ([`Port::send`](crate::Port::send)): reply there. `None` for
    /// [`Node::send`](crate::Node::send).
    pub from: Option<PortId>,
    /// The local port it was sent to.
    pub to: PortId,
    /// The bytes, as sent.
    pub payload: Vec<u8>,
}

impl Message {
    /// Decodes the payload as a `T` sent with
    /// [`send_value`](crate::Port::send_value) (postcard encoding).
    ///
    /// # Errors
    /// [`CodecError`] when the bytes do not decode as a postcard-encoded `T`
    /// (bytes past the end of a `T` are ignored, as `postcard::from_bytes` does).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        postcard::from_bytes(&self.payload).map_err(|source| CodecError {
            op: "decode",
            type_name: std::any::type_name::<T>(),
            source,
        })
    }
}

/// Encodes `value` for [`send_value`](crate::Port::send_value).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SendError> {
    postcard::to_allocvec(value).map_err(|source| {
        SendError::Encode(CodecError {
            op: "encode",
            type_name: std::any::type_name::<T>(),
            source,
        })
    })
}

/// A value could not be encoded or decoded (postcard).
#[derive(Debug)]
pub struct CodecError {
    op: &'static str,
    type_name: &'static str,
    source: postcard::Error,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == "decode" {
            write!(
                f,
                "the payload does not decode as {}: {}; sender and receiver must \
                 agree on the message type",
                self.type_name, self.source
            )
        } else {
            write!(
                f,
                "cannot encode {} with postcard: {}",
                self.type_name, self.source
            )
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A message was not sent. Nothing was queued.
///
/// A message that is sent but cannot be delivered (no such port, node not
/// connected, connection congested, receiver's mailbox full) is not an
/// error: it is dropped and counted in
/// [`Stats::messages_dropped`](crate::Stats::messages_dropped).
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// The payload does not fit one frame.
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload that fits.
        max: usize,
    },
    /// The node has been shut down (or killed).
    ShutDown,
    /// [`send_value`](crate::Port::send_value): the value could not be encoded.
    Encode(CodecError),
}

impl SendError {
    /// The core's refusal of a `send` from a live [`Port`](crate::Port) of
    /// this node (or no port): too large, or the node is stopping.
    pub(crate) fn from_api(e: ApiError) -> Self {
        match e {
            ApiError::PayloadTooLarge { len, max } => SendError::PayloadTooLarge { len, max },
            // ShutDown, or NotLocalPort for a sending port the core no longer
            // knows: only possible once the node stopped.
            _ => SendError::ShutDown,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::PayloadTooLarge { len, max } => fmt::Display::fmt(
                &ApiError::PayloadTooLarge {
                    len: *len,
                    max: *max,
                },
                f,
            ),
            SendError::ShutDown => fmt::Display::fmt(&ApiError::ShutDown, f),
            SendError::Encode(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// A port's mailbox: at most `cap` messages. Past it, a message from this
/// node is dropped; one from a peer is held, and the driver stops reading
/// that peer's connection until the reader has made room (backpressure),
/// for a bounded time.
#[derive(Debug)]
pub(crate) struct PortQueue {
    queue: VecDeque<Message>,
    /// Messages past `cap`, with the connection each came on (paused).
    held: VecDeque<(ConnId, Message)>,
    cap: usize,
    waker: Option<Waker>,
}

/// What became of a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Held past the mailbox: pause the connection it came on.
    Held(ConnId),
    Dropped,
}

impl PortQueue {
    pub(crate) fn new(cap: usize) -> Self {
        PortQueue {
            queue: VecDeque::new(),
            held: VecDeque::new(),
            cap: cap.max(1),
            waker: None,
        }
    }

    /// Queues `m` (arrived on `conn`, `None` if sent from this node).
    pub(crate) fn push(&mut self, m: Message, conn: Option<ConnId>) -> Pushed {
        if self.held.is_empty() && self.queue.len() < self.cap {
            self.queue.push_back(m);
            self.wake();
            return Pushed::Queued;
        }
        match conn {
            Some(conn) => {
                self.held.push_back((conn, m));
                Pushed::Held(conn)
            }
            None => Pushed::Dropped,
        }
    }

    /// Takes the oldest message, or remembers who to wake. Once the mailbox
    /// is down to half, held messages move in; `released` gets the
    /// connection of each.
    pub(crate) fn poll(&mut self, cx: &Context<'_>, released: &mut Vec<ConnId>) -> Option<Message> {
        if !self.held.is_empty() && self.queue.len() <= self.cap / 2 {
            while self.queue.len() < self.cap {
                let Some((conn, m)) = self.held.pop_front() else {
                    break;
                };
                self.queue.push_back(m);
                released.push(conn);
            }
        }
        let m = self.queue.pop_front();
        if m.is_none() {
            self.waker = Some(cx.waker().clone());
        }
        m
    }

    /// Drops the held messages that came on `conn` (held too long); how many.
    pub(crate) fn drop_held_from(&mut self, conn: ConnId) -> usize {
        let before = self.held.len();
        self.held.retain(|(c, _)| *c != conn);
        before - self.held.len()
    }

    /// Drops every held message (the port is gone); their connections.
    pub(crate) fn take_held(&mut self) -> Vec<ConnId> {
        self.held.drain(..).map(|(c, _)| c).collect()
    }

    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupmesh_core::NodeId;

    fn msg(n: u8) -> Message {
        let p = PortId::new(NodeId::new("a").expect("a valid id"), 1, 1);
        Message {
            from: None,
            to: p,
            payload: vec![n],
        }
    }

    #[test]
    fn a_full_mailbox_drops_the_newest_local_message() {
        let mut q = PortQueue::new(2);
        assert_eq!(q.push(msg(1), None), Pushed::Queued);
        assert_eq!(q.push(msg(2), None), Pushed::Queued);
        assert_eq!(q.push(msg(3), None), Pushed::Dropped);
        let cx = Context::from_waker(Waker::noop());
        let mut released = Vec::new();
        assert_eq!(q.poll(&cx, &mut released), Some(msg(1)));
        assert_eq!(q.poll(&cx, &mut released), Some(msg(2)));
        assert_eq!(q.poll(&cx, &mut released), None);
        assert_eq!(q.push(msg(4), None), Pushed::Queued, "room again once read");
        assert!(released.is_empty());
    }

    #[test]
    fn a_full_mailbox_holds_a_peers_messages_in_order_until_read() {
        let (x, y) = (ConnId(1), ConnId(2));
        let mut q = PortQueue::new(2);
        assert_eq!(q.push(msg(1), Some(x)), Pushed::Queued);
        assert_eq!(q.push(msg(2), Some(x)), Pushed::Queued);
        assert_eq!(q.push(msg(3), Some(x)), Pushed::Held(x));
        // Once anything is held, newer messages queue behind it.
        assert_eq!(q.push(msg(4), Some(y)), Pushed::Held(y));
        assert_eq!(q.push(msg(5), None), Pushed::Dropped);
        let cx = Context::from_waker(Waker::noop());
        let mut released = Vec::new();
        let got: Vec<_> = std::iter::from_fn(|| q.poll(&cx, &mut released)).collect();
        assert_eq!(got, vec![msg(1), msg(2), msg(3), msg(4)]);
        assert_eq!(released, vec![x, y]);
    }

    #[test]
    fn held_messages_of_a_connection_can_be_dropped() {
        let (x, y) = (ConnId(1), ConnId(2));
        let mut q = PortQueue::new(1);
        q.push(msg(1), Some(x));
        q.push(msg(2), Some(x));
        q.push(msg(3), Some(y));
        assert_eq!(q.drop_held_from(x), 1);
        assert_eq!(q.take_held(), vec![y]);
    }

    #[test]
    fn values_round_trip_and_a_wrong_type_is_a_typed_error() {
        let mut m = msg(0);
        m.payload = encode(&("job", 7u32)).expect("encodes");
        assert_eq!(
            m.decode::<(String, u32)>().expect("decodes"),
            ("job".into(), 7)
        );
        m.payload = vec![5, b'a'];
        let e = m.decode::<String>().expect_err("a 5-byte string cut short");
        assert!(
            e.to_string()
                .contains("does not decode as alloc::string::String"),
            "{e}"
        );
    }
}
