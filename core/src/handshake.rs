//! The handshake: greetings, mutual authentication, and the checks on a greeting.
//!
//! Both sides send a [`Hello`] at once. On the peer's hello, a side checks it
//! (version, nonce never seen, not itself) and answers with
//! `Auth { mac }`, where `mac = HMAC-SHA256(secret, LABEL ‖ len ‖ hello_sender ‖ len ‖ hello_receiver)`
//! over the canonical encodings of both greetings. Each side's MAC covers its own
//! greeting first, so a MAC cannot be reflected back, and it covers the other
//! side's fresh nonce, so it cannot be replayed. The secret never travels; MACs
//! are compared in constant time. Nothing but `Hello`, `Auth` and `Close` is
//! accepted before the peer's MAC is verified.

use alloc::collections::{BTreeSet, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::event::CloseReason;
use crate::wire::{Hello, MAC_LEN, NONCE_LEN, PROTOCOL_VERSION};

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"groupmesh/1 auth";

/// How many nonces (ours and peers') are remembered to refuse replays.
const REMEMBERED_NONCES: usize = 4096;

fn mac_over(secret: &[u8], sender: &Hello, receiver: &Hello) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    for hello in [sender, receiver] {
        let bytes = postcard::to_allocvec(hello).expect("encoding into a Vec cannot fail");
        mac.update(&(bytes.len() as u64).to_le_bytes());
        mac.update(&bytes);
    }
    mac.update(LABEL);
    mac
}

/// The MAC a node sends (`ours`: its own greeting, `theirs`: the peer's) to
/// prove the secret. Public so test clients and other implementations can
/// speak the protocol.
pub fn prove(secret: &[u8], ours: &Hello, theirs: &Hello) -> [u8; MAC_LEN] {
    mac_over(secret, ours, theirs)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks the MAC a peer sent (`theirs`: its greeting) in constant time.
pub fn verify(secret: &[u8], ours: &Hello, theirs: &Hello, mac: &[u8; MAC_LEN]) -> bool {
    mac_over(secret, theirs, ours).verify_slice(mac).is_ok()
}

/// Nonces this node generated or received, to refuse reflected and replayed greetings.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    seen: BTreeSet<[u8; NONCE_LEN]>,
    order: VecDeque<[u8; NONCE_LEN]>,
}

impl Nonces {
    /// Remembers `nonce`; false if it was already known.
    pub(crate) fn insert(&mut self, nonce: [u8; NONCE_LEN]) -> bool {
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back(nonce);
        if self.order.len() > REMEMBERED_NONCES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// Checks a peer's greeting against ours. `Err` is the reason to refuse it.
pub(crate) fn check_hello(
    ours: &Hello,
    theirs: &Hello,
    nonces: &mut Nonces,
) -> Result<(), CloseReason> {
    if theirs.version != PROTOCOL_VERSION {
        return Err(CloseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: theirs.version,
        });
    }
    if theirs.nonce == ours.nonce {
        // Our own greeting, reflected on the same connection.
        return Err(CloseReason::ReplayedNonce);
    }
    if theirs.node == ours.node {
        return Err(if theirs.incarnation == ours.incarnation {
            CloseReason::SelfConnection
        } else {
            CloseReason::DuplicateNodeId
        });
    }
    if !nonces.insert(theirs.nonce) {
        return Err(CloseReason::ReplayedNonce);
    }
    Ok(())
}

/// A greeting's nonce as a fresh random value.
pub(crate) fn fresh_nonce(rng: &mut impl rand_core::RngCore) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut n);
    n
}
