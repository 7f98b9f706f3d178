//! [`NodeEvent`]s, notices about the mesh (nodes up and down, connections
//! closed), and [`Inbox`], the bounded mailbox that holds them for an
//! [`Events`](crate::Events) stream.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::task::Context;

use groupmesh_core::{CloseReason, NodeId};

use super::Reader;

/// A notice about the mesh, from [`Node::events`](crate::Node::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A node is connected and authenticated, and its memberships are known.
    NodeUp {
        /// The node.
        node: NodeId,
        /// Its incarnation (different on every start).
        incarnation: u64,
    },
    /// A node is no longer connected; its members have left every group.
    NodeDown {
        /// The node.
        node: NodeId,
        /// The incarnation that went away.
        incarnation: u64,
        /// Why its connection ended.
        reason: CloseReason,
    },
    /// A connection ended or was refused during its handshake.
    ConnectionClosed {
        /// The remote address (dialled, or accepted from).
        addr: SocketAddr,
        /// The peer, once its greeting was read.
        node: Option<NodeId>,
        /// Whether it had authenticated.
        authenticated: bool,
        /// Why, e.g. [`CloseReason::AuthenticationFailed`] for a wrong secret
        /// on either side, or [`CloseReason::Remote`] with the peer's reason.
        reason: CloseReason,
        /// For [`CloseReason::DialFailed`]: what the connect said (e.g.
        /// [`io::ErrorKind::ConnectionRefused`], [`io::ErrorKind::TimedOut`],
        /// [`io::ErrorKind::HostUnreachable`]); `None` otherwise.
        dial_error: Option<io::ErrorKind>,
    },
    /// An inbound connection was turned away by a connection limit.
    InboundRefused {
        /// Where it came from.
        addr: SocketAddr,
    },
    /// The reader fell behind and this many older notices were dropped.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A subscriber's queue: at most `cap` notices, oldest dropped first.
#[derive(Debug)]
pub(super) struct Inbox {
    queue: VecDeque<NodeEvent>,
    cap: usize,
    missed: u64,
    reader: Reader,
}

impl Inbox {
    pub(super) fn new(cap: usize) -> Self {
        Inbox {
            queue: VecDeque::new(),
            cap: cap.max(1),
            missed: 0,
            reader: Reader::default(),
        }
    }

    pub(super) fn push(&mut self, event: NodeEvent) {
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.missed += 1;
        }
        self.queue.push_back(event);
        self.reader.wake();
    }

    pub(super) fn poll(&mut self, cx: &Context<'_>) -> Option<NodeEvent> {
        if self.missed > 0 {
            let missed = std::mem::take(&mut self.missed);
            return Some(NodeEvent::Lagged { missed });
        }
        self.reader.take(self.queue.pop_front(), cx)
    }

    pub(super) fn wake(&mut self) {
        self.reader.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn up(n: u64) -> NodeEvent {
        NodeEvent::NodeUp {
            node: NodeId::new("a").expect("a valid id"),
            incarnation: n,
        }
    }

    #[test]
    fn a_full_inbox_drops_the_oldest_and_says_how_many() {
        let mut inbox = Inbox::new(2);
        for n in 0..5 {
            inbox.push(up(n));
        }
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(inbox.poll(&cx), Some(NodeEvent::Lagged { missed: 3 }));
        assert_eq!(inbox.poll(&cx), Some(up(3)));
        assert_eq!(inbox.poll(&cx), Some(up(4)));
        assert_eq!(inbox.poll(&cx), None);
    }
}
