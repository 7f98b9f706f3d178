//! The group view's merge: a batch applied to a sorted member list.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use proptest::prelude::*;

use crate::groups::merge;
use crate::ids::{NodeId, PortId};

fn port() -> impl Strategy<Value = PortId> {
    (0u8..4, 1u64..3, 0u64..12).prop_map(|(n, inc, num)| {
        let node = NodeId::new(&alloc::format!("n{n}")).expect("short id");
        PortId::new(node, inc, num)
    })
}

fn sorted(set: &BTreeSet<PortId>) -> Vec<PortId> {
    set.iter().cloned().collect()
}

proptest! {
    /// Whatever the batch, the list ends sorted and equal to the set model,
    /// and what is reported changed is exactly the difference.
    #[test]
    fn a_merged_batch_matches_a_set_model(
        before in proptest::collection::btree_set(port(), 0..40),
        added in proptest::collection::btree_set(port(), 0..12),
        removed in proptest::collection::btree_set(port(), 0..12),
    ) {
        // A port is never both added and removed in one batch.
        let removed: BTreeSet<PortId> = removed.difference(&added).cloned().collect();
        let mut members = sorted(&before);
        let (added_v, removed_v) = (sorted(&added), sorted(&removed));
        let (did_add, did_remove) = merge(&mut members, &added_v, &removed_v);
        let did_add: Vec<PortId> = did_add.iter().map(|&k| added_v[k].clone()).collect();
        let did_remove: Vec<PortId> = did_remove.iter().map(|&k| removed_v[k].clone()).collect();

        let mut after = before.clone();
        after.extend(added.iter().cloned());
        after.retain(|p| !removed.contains(p));
        prop_assert_eq!(&members, &sorted(&after));
        let want_add: Vec<PortId> = added.difference(&before).cloned().collect();
        let want_remove: Vec<PortId> = removed.intersection(&before).cloned().collect();
        prop_assert_eq!(did_add, want_add);
        prop_assert_eq!(did_remove, want_remove);
    }
}

#[test]
fn a_batch_that_changes_nothing_reports_nothing() {
    let n = NodeId::new("n").expect("short id");
    let p = |i| PortId::new(n.clone(), 1, i);
    let mut members = alloc::vec![p(1), p(3)];
    let (a, r) = merge(&mut members, &[p(1)], &[p(2)]);
    assert!(a.is_empty() && r.is_empty());
    assert_eq!(members, alloc::vec![p(1), p(3)]);
}
