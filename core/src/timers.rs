//! The connections' deadlines in time order, so that the next one and the
//! ones due are found in O(log N), not by a scan of every connection at
//! every input.
//!
//! Deadlines are lazy. A connection is queued at the deadline it has when
//! queued; what pushes its deadline later (a record received, a frame sent)
//! leaves the queue alone, and when the queued time comes the connection is
//! checked and queued again at its deadline then. Only a change that can
//! bring a deadline earlier (authentication) queues it again at once. So the
//! queue holds, for each connection, a time at or before its deadline.

use alloc::collections::{BTreeMap, BTreeSet};

use crate::ids::ConnId;
use crate::time::Instant;

/// When each connection is next checked.
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    queue: BTreeSet<(Instant, ConnId)>,
    at: BTreeMap<ConnId, Instant>,
}

impl Deadlines {
    /// Checks `id` at `when` (and not at the time set before).
    pub(crate) fn set(&mut self, id: ConnId, when: Instant) {
        if let Some(old) = self.at.insert(id, when) {
            self.queue.remove(&(old, id));
        }
        self.queue.insert((when, id));
    }

    /// Forgets `id`.
    pub(crate) fn remove(&mut self, id: ConnId) {
        if let Some(old) = self.at.remove(&id) {
            self.queue.remove(&(old, id));
        }
    }

    /// The earliest check.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|&(t, _)| t)
    }

    /// A connection whose check is due at `now`, taken off the queue.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ConnId> {
        let &(t, id) = self.queue.first()?;
        if t > now {
            return None;
        }
        self.queue.pop_first();
        self.at.remove(&id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn connections_come_due_in_time_order_and_a_new_time_replaces_the_old() {
        let t = |ms| Instant::ZERO + Duration::from_millis(ms);
        let mut d = Deadlines::default();
        d.set(ConnId(1), t(30));
        d.set(ConnId(2), t(10));
        d.set(ConnId(3), t(20));
        d.set(ConnId(2), t(40));
        d.remove(ConnId(3));
        assert_eq!(d.next(), Some(t(30)));
        assert_eq!(d.pop_due(t(29)), None);
        assert_eq!(d.pop_due(t(45)), Some(ConnId(1)));
        assert_eq!(d.pop_due(t(45)), Some(ConnId(2)));
        assert_eq!(d.pop_due(t(45)), None);
        assert_eq!(d.next(), None);
    }
}
