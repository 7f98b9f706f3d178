//! [`GroupChange`]s of a monitored group, and how two of them [`merge`].
//!
//! A monitor never queues without bound: a change that arrives while the
//! previous one has not been taken is merged into it (its mailbox holds at
//! most one change). A slow reader therefore sees fewer, larger changes, and
//! every rule of the contract still holds for what it sees.

use std::collections::{BTreeMap, BTreeSet};

use groupmesh_core::{Meta, PortId, Removal};
use serde::de::DeserializeOwned;

use crate::message::{decode, CodecError};

/// A change of a monitored group: `(members, added, removed)`, each sorted,
/// with why each port left and which members' metadata changed.
///
/// The first change a monitor yields is `(members, members, [])`, with every
/// member's metadata, and only once the group is non-empty. Later changes
/// never have `added`, `removed` and `updated` all empty; `added ⊆ members`,
/// `updated ⊆ members`, `removed ∩ members = ∅`. Applying every change to an
/// empty set (add `added`, remove `removed`, set the metadata in `meta`)
/// always gives the latest `members` and their metadata. A change merged
/// from several for a slow reader may list in `updated` a member whose
/// metadata ended where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChange {
    /// The group's members after the change.
    pub members: Vec<PortId>,
    /// Ports that joined.
    pub added: Vec<PortId>,
    /// Ports that left.
    pub removed: Vec<PortId>,
    /// Why each port of `removed` left, in the same order.
    pub reasons: Vec<Removal>,
    /// Members whose metadata changed (not in `added`).
    pub updated: Vec<PortId>,
    /// The metadata of every port in `added` and `updated`, sorted by port
    /// (empty bytes: none).
    pub meta: Vec<(PortId, Meta)>,
}

impl GroupChange {
    /// The metadata this change gives `port` (one of `added` or `updated`).
    pub fn meta_of(&self, port: &PortId) -> Option<&Meta> {
        groupmesh_core::meta_in(&self.meta, port)
    }

    /// [`meta_of`](Self::meta_of), decoded as a `T` (postcard), as
    /// [`Member::meta_as`](crate::Member::meta_as) does; `None` if this
    /// change gives `port` no metadata.
    pub fn meta_as<T: DeserializeOwned>(&self, port: &PortId) -> Option<Result<T, CodecError>> {
        self.meta_of(port).map(|m| decode(m))
    }
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
    // The last metadata and the last reason each change gave a port.
    let mut meta: BTreeMap<&PortId, &Meta> = first.meta.iter().map(|(p, m)| (p, m)).collect();
    meta.extend(second.meta.iter().map(|(p, m)| (p, m)));
    let mut why: BTreeMap<&PortId, Removal> = first
        .removed
        .iter()
        .zip(first.reasons.iter().copied())
        .collect();
    why.extend(second.removed.iter().zip(second.reasons.iter().copied()));

    let added: Vec<PortId> = after.difference(&before).map(|p| (*p).clone()).collect();
    let removed: Vec<PortId> = before.difference(&after).map(|p| (*p).clone()).collect();
    let updated: Vec<PortId> = meta
        .keys()
        .filter(|p| before.contains(*p) && after.contains(*p))
        .map(|p| (*p).clone())
        .collect();
    if added.is_empty() && removed.is_empty() && updated.is_empty() {
        return None;
    }
    let reasons = removed
        .iter()
        .map(|p| {
            *why.get(p)
                .expect("a port held before and not after was removed by one of the two")
        })
        .collect();
    let mut given: Vec<(PortId, Meta)> = added
        .iter()
        .chain(&updated)
        .map(|p| {
            let m = meta
                .get(p)
                .expect("a port added or updated got its metadata in that change");
            (p.clone(), Meta::clone(m))
        })
        .collect();
    given.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Some(GroupChange {
        members: second.members,
        added,
        removed,
        reasons,
        updated,
        meta: given,
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

    /// A change without metadata, every removal an unregistration.
    fn change(members: &[u64], added: &[u64], removed: &[u64]) -> GroupChange {
        let v = |s: &[u64]| s.iter().map(|&n| p(n)).collect();
        GroupChange {
            members: v(members),
            added: v(added),
            removed: v(removed),
            reasons: vec![Removal::Unregistered; removed.len()],
            updated: Vec::new(),
            meta: added.iter().map(|&n| (p(n), Meta::from(&[][..]))).collect(),
        }
    }

    fn with_meta(mut c: GroupChange, updated: &[u64], meta: &[(u64, &[u8])]) -> GroupChange {
        c.updated = updated.iter().map(|&n| p(n)).collect();
        c.meta = meta.iter().map(|&(n, m)| (p(n), Meta::from(m))).collect();
        c
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
        // 2 left and came back: the reader holds it, with metadata that may
        // have changed since.
        let want = with_meta(change(&[2, 3], &[3], &[1]), &[2], &[(2, b""), (3, b"")]);
        assert_eq!(m, Some(want));
    }

    #[test]
    fn merged_changes_keep_the_last_metadata_and_the_last_reason() {
        // Reader holds {1, 2}; 3 joins with "a", then 3 becomes "b" and 1 changes to "x";
        // then 2 leaves as its port closes.
        let first = with_meta(change(&[1, 2, 3], &[3], &[]), &[], &[(3, b"a")]);
        let second = with_meta(
            change(&[1, 2, 3], &[], &[]),
            &[1, 3],
            &[(1, b"x"), (3, b"b")],
        );
        let mut third = change(&[1, 3], &[], &[2]);
        third.reasons = vec![Removal::PortClosed];
        let m = merge(first, second).and_then(|m| merge(m, third));
        let mut want = with_meta(change(&[1, 3], &[3], &[2]), &[1], &[(1, b"x"), (3, b"b")]);
        want.reasons = vec![Removal::PortClosed];
        assert_eq!(m, Some(want));
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
