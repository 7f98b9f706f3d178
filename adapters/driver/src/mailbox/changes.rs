//! [`GroupChange`]s of a monitored group, and how two of them [`merge`].
//!
//! A monitor never queues without bound: a change that arrives while the
//! previous one has not been taken is merged into it (its mailbox holds at
//! most one change). A slow reader therefore sees fewer, larger changes, and
//! every rule of the contract still holds for what it sees.

use std::collections::BTreeSet;

use groupmesh_core::PortId;

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

/// One change with the effect of `first` then `second`; `None` when together
/// they changed nothing (the reader's view is already `second.members`).
pub(super) fn merge(first: GroupChange, second: GroupChange) -> Option<GroupChange> {
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

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};

    use super::*;
    use crate::mailbox::one::Ones;
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
    fn a_monitors_mailbox_holds_one_change_at_most() {
        let mut monitors = Ones::new();
        monitors.open(0);
        for n in 1..100 {
            let members: Vec<u64> = (1..=n).collect();
            let added = if n == 1 { vec![1] } else { vec![n] };
            monitors.put(&0, change(&members, &added, &[]), merge);
        }
        let all: Vec<u64> = (1..100).collect();
        let cx = Context::from_waker(Waker::noop());
        assert_eq!(monitors.poll(&0, &cx), Some(Some(change(&all, &all, &[]))));
        assert_eq!(monitors.poll(&0, &cx), Some(None));
    }
}
