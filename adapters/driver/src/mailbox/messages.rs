//! [`PortQueue`]: the mailbox of a local [`Port`](crate::Port).

use std::collections::VecDeque;
use std::task::Context;

use super::Reader;
use crate::message::Message;

/// A port's mailbox, oldest first. It holds what the core delivers, which
/// is never more than each sender's credit (`Config::port_credit`): the
/// bound is the core's, so nothing here is ever dropped.
#[derive(Debug, Default)]
pub(super) struct PortQueue {
    queue: VecDeque<Message>,
    reader: Reader,
}

impl PortQueue {
    pub(super) fn push(&mut self, m: Message) {
        self.queue.push_back(m);
        self.reader.wake();
    }

    /// Takes the oldest message, or remembers who to wake.
    pub(super) fn poll(&mut self, cx: &Context<'_>) -> Option<Message> {
        self.reader.take(self.queue.pop_front(), cx)
    }

    pub(super) fn wake(&mut self) {
        self.reader.wake();
    }
}
