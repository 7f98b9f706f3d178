//! [`PortQueue`]: the bounded mailbox of a local [`Port`](crate::Port).

use std::collections::VecDeque;
use std::task::Context;

use groupmesh_core::ConnId;

use super::Reader;
use crate::message::Message;

/// A port's mailbox: at most `cap` messages. Past it, a message from this
/// node is dropped; one from a peer is held, and the driver stops reading
/// that peer's connection until the reader has made room (backpressure),
/// for a bounded time.
#[derive(Debug)]
pub(super) struct PortQueue {
    queue: VecDeque<Message>,
    /// Messages past `cap`, with the connection each came on (paused).
    held: VecDeque<(ConnId, Message)>,
    cap: usize,
    reader: Reader,
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
    pub(super) fn new(cap: usize) -> Self {
        PortQueue {
            queue: VecDeque::new(),
            held: VecDeque::new(),
            cap: cap.max(1),
            reader: Reader::default(),
        }
    }

    /// Queues `m` (arrived on `conn`, `None` if sent from this node).
    pub(super) fn push(&mut self, m: Message, conn: Option<ConnId>) -> Pushed {
        if self.held.is_empty() && self.queue.len() < self.cap {
            self.queue.push_back(m);
            self.reader.wake();
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
    pub(super) fn poll(&mut self, cx: &Context<'_>, released: &mut Vec<ConnId>) -> Option<Message> {
        if !self.held.is_empty() && self.queue.len() <= self.cap / 2 {
            while self.queue.len() < self.cap {
                let Some((conn, m)) = self.held.pop_front() else {
                    break;
                };
                self.queue.push_back(m);
                released.push(conn);
            }
        }
        self.reader.take(self.queue.pop_front(), cx)
    }

    /// Drops the held messages that came on `conn` (held too long); how many.
    pub(super) fn drop_held_from(&mut self, conn: ConnId) -> usize {
        let before = self.held.len();
        self.held.retain(|(c, _)| *c != conn);
        before - self.held.len()
    }

    /// Drops every held message (the port is gone); their connections.
    pub(super) fn take_held(&mut self) -> Vec<ConnId> {
        self.held.drain(..).map(|(c, _)| c).collect()
    }

    pub(super) fn wake(&mut self) {
        self.reader.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use groupmesh_core::{NodeId, PortId};

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
}
