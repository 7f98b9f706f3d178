//! Choosing one member of a group's view: at random, or by key with
//! rendezvous (highest-random-weight) hashing.
//!
//! Rendezvous hashing gives each (member, key) pair a score and picks the
//! member with the highest. Every client with the same view picks the same
//! member for a key, whatever order it lists the view in. When a member
//! joins, it takes only the keys it now scores highest for; when one leaves,
//! only the keys it owned move, each to its runner-up. No other key moves.
//!
//! The score is the first 8 bytes of SHA-256 over the port id and the key,
//! in a fixed encoding (see [`rendezvous_score`]): it is the same on every
//! machine and in every version of this crate, so that clients of different
//! builds agree on who owns a key.

use core::borrow::Borrow;

use rand_core::RngCore;
use sha2::{Digest, Sha256};

use crate::ids::PortId;

/// The score of `port` for `key`: the first 8 bytes (little-endian) of
/// SHA-256 over the node id's length (one byte) and bytes, the incarnation
/// and the port number (each 8 bytes, little-endian), then the key.
pub fn rendezvous_score(port: &PortId, key: &[u8]) -> u64 {
    let node = port.node().as_str().as_bytes();
    let mut h = Sha256::new();
    // A node id is at most 64 bytes, so its length fits one byte.
    h.update([node.len() as u8]);
    h.update(node);
    h.update(port.incarnation().to_le_bytes());
    h.update(port.number().to_le_bytes());
    h.update(key);
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The member that owns `key` by rendezvous hashing: the highest
/// [`rendezvous_score`], ties going to the greater port id. `None` for an
/// empty view. Any order of `members` gives the same pick.
pub fn pick_by_key<'a, T: Borrow<PortId>>(members: &'a [T], key: &[u8]) -> Option<&'a T> {
    members
        .iter()
        .map(|m| {
            let port: &PortId = m.borrow();
            ((rendezvous_score(port, key), port), m)
        })
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, m)| m)
}

/// A member drawn uniformly at random from `members`; `None` if empty.
pub fn pick_random<'a, T>(members: &'a [T], rng: &mut impl RngCore) -> Option<&'a T> {
    if members.is_empty() {
        return None;
    }
    // Multiply-shift (Lemire): a bias of at most len / 2^64.
    let i = ((u128::from(rng.next_u64()) * members.len() as u128) >> 64) as usize;
    members.get(i)
}
