//! [`Monitor`]: a stream of one group's changes, and its mailbox.
//!
//! A monitor never queues without bound: a change that arrives while the
//! previous one has not been taken is merged into it (the mailbox holds at
//! most one change). A slow reader therefore sees fewer, larger changes, and
//! every rule of the contract still holds for what it sees.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_lite::Stream;
use groupmesh_core::{MonitorId, PortId};

use crate::shared::Control;

/// A change of a monitored group: `(members, added, removed)`, each sorted.
///
/// The first change a monitor yields is `(members, members, [])`, and only
/// once the group is non-empty. Later changes never have both `added` and
/// `removed` empty; `added ⊆ members` and `removed ∩ members = ∅`. Applying
/// every change to an empty set (add `added`, remove `removed`) always gives
/// the latest `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// The group's members after the change.
    pub members: Vec<PortId>,
    /// Ports that joined.
    pub added: Vec<PortId>,
    /// Ports that left.
    pub removed: Vec<PortId>,
}

/// Where a monitor's changes wait for its reader: one change at most.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    pending: Option<GroupChange>,
    waker: Option<Waker>,
}

impl Mailbox {
    /// Adds a change, merging it into the one not yet taken.
    pub(crate) fn push(&mut self, change: GroupChange) {
        self.pending = match self.pending.take() {
            None => Some(change),
            Some(earlier) => merge(earlier, change),
        };
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Takes the waiting change, or remembers who to wake.
    pub(crate) fn poll(&mut self, cx: &Context<'_>) -> Option<GroupChange> {
        let change = self.pending.take();
        if change.is_none() {
            self.waker = Some(cx.waker().clone());
        }
        change
    }

    /// Wakes the reader (the monitor ended).
    pub(crate) fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// One change with the effect of `first` then `second`; `None` when together
/// they changed nothing (the reader's view is already `second.members`).
fn merge(first: GroupChange, second: GroupChange) -> Option<GroupChange> {
    // What the reader holds now: the members before `first`.
    let added: BTreeSet<&PortId> = first.added.iter().collect();
    let mut before: BTreeSet<&PortId> = first
        .members
        .iter()
        .filter(|p| !added.contains(p))
        .collect();
    before.extend(first.removed.iter());
    let after: BTreeSet<&PortId> = second.members.iter().collect();
    let added: Vec<PortId> = after.difference(&before).map(|p| (*p).clone()).collect();
    let removed: Vec<PortId> = before.difference(&after).map(|p| (*p).clone()).collect();
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    Some(GroupChange {
        members: second.members,
        added,
        removed,
    })
}

/// The changes of one group, from [`Node::monitor`](crate::Node::monitor).
///
/// A [`Stream`] of [`GroupChange`]; it ends when the node stops. Dropping it
/// ends the monitor.
#[must_use = "a monitor does nothing unless its stream is read"]
pub struct Monitor {
    pub(crate) id: MonitorId,
    pub(crate) group: Arc<str>,
    pub(crate) ctl: Arc<dyn Control>,
}

impl Monitor {
    /// The monitored group.
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl Stream for Monitor {
    type Item = GroupChange;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupChange>> {
        self.ctl.poll_monitor(self.id, cx)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.ctl.unmonitor(self.id);
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("id", &self.id)
            .field("group", &self.group)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupmesh_core::NodeId;

    fn p(n: u64) -> PortId {
        PortId::new(NodeId::new("a").expect("a valid id"), 1, n)
    }

    fn change(members: &[u64], added: &[u64], removed: &[u64]) -> GroupChange {
        let v = |s: &[u64]| s.iter().map(|&n| p(n)).collect();
        GroupChange {
            members: v(members),
            added: v(added),
            removed: v(removed),
        }
    }

    #[test]
    fn a_merged_first_change_is_still_a_first_change() {
        let m = merge(change(&[1], &[1], &[]), change(&[1, 2], &[2], &[]));
        assert_eq!(m, Some(change(&[1, 2], &[1, 2], &[])));
    }

    #[test]
    fn changes_that_cancel_out_merge_into_nothing() {
        let m = merge(change(&[1, 2], &[2], &[]), change(&[1], &[], &[2]));
        assert_eq!(m, None);
    }

    #[test]
    fn a_merged_change_is_relative_to_what_the_reader_holds() {
        // Reader holds {1, 2}; then 2 leaves and 3 joins, then 1 leaves and 2 rejoins.
        let m = merge(change(&[1, 3], &[3], &[2]), change(&[2, 3], &[2], &[1]));
        assert_eq!(m, Some(change(&[2, 3], &[3], &[1])));
    }

    #[test]
    fn a_mailbox_holds_one_change_at_most() {
        let mut mb = Mailbox::default();
        for n in 1..100 {
            let members: Vec<u64> = (1..=n).collect();
            let added = if n == 1 { vec![1] } else { vec![n] };
            mb.push(change(&members, &added, &[]));
        }
        let all: Vec<u64> = (1..100).collect();
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(mb.poll(&cx), Some(change(&all, &all, &[])));
        assert_eq!(mb.poll(&cx), None);
    }
}
