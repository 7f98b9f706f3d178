//! Picking a member: rendezvous hashing spreads keys evenly and moves only
//! the keys of a member that joins or leaves; a random pick is uniform.

use alloc::format;
use alloc::vec::Vec;

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use crate::ids::{NodeId, PortId};
use crate::select::{pick_by_key, pick_random, rendezvous_score};

fn port(node: usize, number: u64) -> PortId {
    PortId::new(
        NodeId::new(&format!("node{node}")).expect("valid"),
        7,
        number,
    )
}

fn members(n: usize) -> Vec<PortId> {
    (0..n).map(|i| port(i, 1)).collect()
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key-{i}").into_bytes()).collect()
}

/// Pearson's chi-square statistic of `counts` against a uniform spread.
fn chi_square(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected) * (c as f64 - expected) / expected)
        .sum()
}

/// Chi-square's critical value for 9 degrees of freedom at p = 0.001: a
/// uniform spread exceeds it once in a thousand draws.
const CHI2_9_DOF_P001: f64 = 27.877;

fn owners(view: &[PortId], keys: &[Vec<u8>]) -> Vec<PortId> {
    keys.iter()
        .map(|k| pick_by_key(view, k).expect("a member").clone())
        .collect()
}

#[test]
fn keys_spread_evenly_over_the_members() {
    let view = members(10);
    let mut counts = [0usize; 10];
    for k in keys(20_000) {
        let owner = pick_by_key(&view, &k).expect("a member");
        let i = view.iter().position(|m| m == owner).expect("from the view");
        counts[i] += 1;
    }
    let chi2 = chi_square(&counts);
    assert!(chi2 < CHI2_9_DOF_P001, "chi-square {chi2:.1}: {counts:?}");
}

#[test]
fn a_member_joining_takes_keys_only_for_itself() {
    let keys = keys(10_000);
    let before = owners(&members(10), &keys);
    let grown = members(11);
    let after = owners(&grown, &keys);
    let moved: Vec<_> = (0..keys.len()).filter(|&i| before[i] != after[i]).collect();
    assert!(
        moved.iter().all(|&i| after[i] == grown[10]),
        "a key moved between two old members"
    );
    // About a share of 1/11 moved to the newcomer.
    assert!((700..=1100).contains(&moved.len()), "{} moved", moved.len());
}

#[test]
fn a_member_leaving_moves_only_its_own_keys() {
    let keys = keys(10_000);
    let view = members(10);
    let before = owners(&view, &keys);
    let gone = view[3].clone();
    let shrunk: Vec<PortId> = view.iter().filter(|m| **m != gone).cloned().collect();
    let after = owners(&shrunk, &keys);
    for i in 0..keys.len() {
        if before[i] != gone {
            assert_eq!(before[i], after[i], "key {i} moved though its owner stayed");
        }
    }
}

#[test]
fn every_client_picks_the_same_member_whatever_order_it_lists_them_in() {
    let view = members(16);
    let mut reversed = view.clone();
    reversed.reverse();
    let refs: Vec<&PortId> = view.iter().collect();
    for k in keys(500) {
        let a = pick_by_key(&view, &k);
        assert_eq!(a, pick_by_key(&reversed, &k));
        assert_eq!(a, pick_by_key(&refs, &k).copied());
    }
    assert_eq!(pick_by_key::<PortId>(&[], b"k"), None);
}

/// Clients of different builds must agree on who owns a key: the score's
/// encoding is part of the contract. These values come from Python's
/// hashlib over the documented bytes, not from this code.
#[test]
fn the_score_of_a_port_and_key_never_changes() {
    let p = PortId::new(NodeId::new("a").expect("valid"), 1, 2);
    assert_eq!(rendezvous_score(&p, b""), SCORE_A_1_2_EMPTY);
    assert_eq!(rendezvous_score(&p, b"user-42"), SCORE_A_1_2_USER42);
}

const SCORE_A_1_2_EMPTY: u64 = 14_849_985_064_795_047_546;
const SCORE_A_1_2_USER42: u64 = 16_111_614_525_155_838_546;

#[test]
fn a_random_pick_is_uniform_and_none_from_an_empty_view() {
    let view = members(10);
    let mut rng = ChaCha12Rng::seed_from_u64(1);
    let mut counts = [0usize; 10];
    for _ in 0..20_000 {
        let m = pick_random(&view, &mut rng).expect("a member");
        counts[view.iter().position(|v| v == m).expect("from the view")] += 1;
    }
    let chi2 = chi_square(&counts);
    assert!(chi2 < CHI2_9_DOF_P001, "chi-square {chi2:.1}: {counts:?}");
    assert_eq!(pick_random::<PortId>(&[], &mut rng), None);
}
