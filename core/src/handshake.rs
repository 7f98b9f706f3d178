//! The handshake's rules: the Noise pattern, the key derived from the shared
//! secret, where its randomness comes from, and the checks on a greeting.
//!
//! Pattern: `Noise_NNpsk0_25519_AESGCM_BLAKE2s`, with the prologue
//! [`PROLOGUE`] (which binds the protocol version). The dialler is the
//! initiator:
//!
//! ```text
//! -> psk, e        payload: initiator's Hello (encrypted under the PSK)
//! <- e, ee         payload: responder's Hello (PSK and both ephemerals)
//! -> first sealed record (key confirmation, at most 1 KiB)
//! ```
//!
//! The initiator knows the responder holds the key, and is live, when the
//! second message decrypts (it depends on the initiator's fresh ephemeral).
//! The responder knows the same of the initiator only when the first sealed
//! record opens (it depends on the responder's fresh ephemeral): a recorded
//! first message replayed on a new connection gets an answer nobody can use.
//! Why this pattern is in `docs/SECURITY.md`.
//!
//! The pre-shared key is HKDF-SHA256 of the configured secret with a domain
//! label; the secret itself never leaves the node. Ephemeral keys come from a
//! ChaCha RNG seeded by the node's own seeded RNG, so runs replay exactly.

use alloc::boxed::Box;
use core::fmt;

use hkdf::Hkdf;
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::Sha256;
use snow::params::{CipherChoice, DHChoice, HashChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::HandshakeState;

use crate::event::CloseReason;
use crate::wire::Hello;

/// The Noise protocol name. Records are sealed with AES-256-GCM: on the
/// processors a mesh runs on (x86-64 with AES-NI and CLMUL, ARMv8 with its
/// crypto extensions) it seals and opens a 64 KiB record 2.2× faster than
/// ChaCha20-Poly1305 (`benches/core.rs`, "seal + open one 64 KiB frame");
/// without them both `ring` and the default resolver fall back to
/// constant-time code. Protocol version 4 brought it in (3 sealed with
/// ChaCha20-Poly1305).
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_BLAKE2s";

/// Mixed into the handshake hash: both sides must speak this protocol version.
pub const PROLOGUE: &[u8] = b"groupmesh/2";

/// HKDF salt and info: the domain of the derived key.
const PSK_SALT: &[u8] = b"groupmesh/2 pre-shared key";
const PSK_INFO: &[u8] = b"noise psk0";

/// The 32-byte pre-shared key derived from a mesh's secret. Its `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; 32]);

impl Psk {
    /// The key for a secret of any length.
    pub fn derive(secret: &[u8]) -> Psk {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(PSK_SALT), secret)
            .expand(PSK_INFO, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Psk(key)
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// A Noise handshake for one connection: the initiator if `initiator`, keyed
/// by `psk`, its ephemeral key drawn from an RNG seeded with `seed`.
pub(crate) fn noise(initiator: bool, psk: &Psk, seed: [u8; 32]) -> Box<HandshakeState> {
    let params: NoiseParams = NOISE_PATTERN
        .parse()
        .expect("the pattern is a valid Noise protocol name");
    let builder = snow::Builder::with_resolver(params, Box::new(Seeded(seed)))
        .prologue(PROLOGUE)
        .and_then(|b| b.psk(0, &psk.0))
        .expect("a prologue and a 32-byte psk at location 0 are valid");
    let state = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    };
    Box::new(state.expect("the default resolver has every primitive of the pattern"))
}

/// Snow's primitives, with the randomness from a seed instead of the OS.
struct Seeded([u8; 32]);

struct SeededRng(ChaCha12Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for Seeded {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha12Rng::from_seed(self.0))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        #[cfg(feature = "ring")]
        if let Some(cipher) = snow::resolvers::RingResolver.resolve_cipher(choice) {
            return Some(cipher);
        }
        DefaultResolver.resolve_cipher(choice)
    }
}

/// Checks a peer's greeting against our node id and incarnation. `Err` is
/// the reason to refuse it.
pub(crate) fn check_hello(node: &str, incarnation: u64, theirs: &Hello) -> Result<(), CloseReason> {
    if theirs.node.as_str() == node {
        return Err(if theirs.incarnation == incarnation {
            CloseReason::SelfConnection
        } else {
            CloseReason::DuplicateNodeId
        });
    }
    Ok(())
}
