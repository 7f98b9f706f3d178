//! Fuzz harness bodies, shared by the cargo-fuzz targets (`fuzz/`) and by
//! proptest in the normal test run. Each takes raw bytes, never panics on any
//! input unless the core breaks one of its promises, and checks those promises
//! as it goes:
//!
//! - [`decode`]: bytes → frame; whatever decodes re-encodes to the same frame.
//! - [`stream`]: a plaintext frame stream sealed on an authenticated
//!   connection, its records split at fuzzer-chosen points, gives exactly the
//!   same node state and events as the same bytes in one piece.
//! - [`records`]: arbitrary records on an authenticated session (sealed
//!   frames, forged, replayed, reordered, altered or cut records): whatever
//!   was not sealed by the peer closes the connection, and nothing false is listed.
//! - [`node`]: a whole node driven by an arbitrary sequence of inputs (peers
//!   connecting, hostile or valid frames in any state, timeouts, local API
//!   calls); the view, the monitors, the limits and the timers stay sound.
//! - [`handshake`]: hostile handshakes (wrong keys, replayed and spliced
//!   messages, raw bytes, frames too early); no connection ever
//!   authenticates unless the harness proved the key on it.
//!
//! The targets in `fuzz/` are one-line shims over these functions; this
//! crate's `fuzz_bodies` test runs them on random bytes and past crashes.

mod harness;
mod ops;

use arbitrary::{Arbitrary, Unstructured};
use groupmesh_core::wire::{Frame, LEN_PREFIX};

use harness::{framed, pick, small_limits, Harness};
use ops::{HandshakeOp, Op, RecordOp};

/// Bytes → frame. Whatever decodes must re-encode to a frame that decodes equal.
pub fn decode(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert_eq!(
            Frame::decode(&out[LEN_PREFIX..]),
            Ok(frame),
            "a decoded frame re-encodes to itself"
        );
    }
}

/// A plaintext stream sealed on an authenticated connection, its records in
/// fuzzer-chosen chunks, against the same bytes in one piece: same events,
/// same view.
pub fn stream(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cuts) = Vec::<u16>::arbitrary(&mut u) else {
        return;
    };
    let mut plain = u.take_rest().to_vec();
    let mut whole = Harness::new(small_limits());
    let mut split = Harness::new(small_limits());
    let (a, b) = (whole.authenticated_peer(), split.authenticated_peer());
    let bytes = whole.seal(a, &mut plain.clone());
    assert_eq!(bytes, split.seal(b, &mut plain), "same keys, same records");
    whole.bytes(a, &bytes);
    let mut rest = &bytes[..];
    for cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (chunk, tail) = rest.split_at(at);
        split.bytes(b, chunk);
        rest = tail;
    }
    split.bytes(b, rest);
    assert_eq!(whole.events, split.events, "chunking changed the events");
    assert_eq!(whole.view(), split.view(), "chunking changed the view");
    whole.check();
    split.check();
}

/// Arbitrary records on an authenticated session: the node reads exactly the
/// frames its peer sealed, in order, while nothing else came; a whole record
/// it did not seal for this place in the stream (altered, replayed, forged,
/// or after one lost on the way) closes the connection at once; nothing
/// after the first such bytes is ever read.
pub fn records(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut h = Harness::new(small_limits());
    let id = h.authenticated_peer();
    let before = h.node.stats().frames_in;
    // Bytes delivered, and whether each was whole records.
    let mut delivered: Vec<(Vec<u8>, bool)> = Vec::new();
    let mut honest_frames = 0;
    let mut tainted = false;
    // The stream is at a record boundary (only whole records so far).
    let mut aligned = true;
    // A sealed record was lost: the next one cannot open.
    let mut lost = false;
    for _ in 0..64 {
        let Ok(op) = RecordOp::arbitrary(&mut u) else {
            break;
        };
        let (bytes, whole, bad) = match op {
            RecordOp::Sealed(f) => {
                honest_frames += u64::from(!tainted);
                (h.seal(id, &mut framed(&f)), true, lost)
            }
            RecordOp::Dropped(f) => {
                h.seal(id, &mut framed(&f));
                tainted = true;
                lost = true;
                continue;
            }
            RecordOp::Replay(i) => {
                let Some((rec, whole)) = pick(&delivered, i) else {
                    continue;
                };
                (rec, whole, true)
            }
            RecordOp::Flip(f, bit) => {
                let mut rec = h.seal(id, &mut framed(&f));
                let at = usize::from(bit) % (rec.len() * 8);
                rec[at / 8] ^= 1 << (at % 8);
                // A flipped length frames the stream anew.
                (rec, at >= LEN_PREFIX * 8, true)
            }
            RecordOp::Forged(body) => {
                let mut rec = (body.len() as u32).to_le_bytes().to_vec();
                rec.extend_from_slice(&body);
                (rec, true, true)
            }
            RecordOp::Raw(bytes) => (bytes, false, true),
        };
        if bytes.is_empty() {
            continue;
        }
        tainted |= bad;
        delivered.push((bytes.clone(), whole));
        h.bytes(id, &bytes);
        h.check();
        let read = h.node.stats().frames_in - before;
        let open = h.conns.get(&id).is_some_and(|r| r.open);
        assert!(
            read <= honest_frames,
            "{read} frames read, only {honest_frames} sealed and delivered in order"
        );
        assert!(
            tainted || !open || read == honest_frames,
            "{read} frames read of {honest_frames} sealed and delivered in order"
        );
        assert!(
            !(bad && whole && aligned && open),
            "a whole record the peer did not seal there was taken without closing"
        );
        aligned &= whole;
        if !open {
            break;
        }
    }
}

/// A whole node driven by arbitrary inputs.
pub fn node(data: &[u8]) {
    run(data, false);
}

/// Hostile handshakes: the node never authenticates a peer without the secret.
pub fn handshake(data: &[u8]) {
    run(data, true);
}

fn run(data: &[u8], handshake_only: bool) {
    let mut u = Unstructured::new(data);
    let mut h = Harness::new(small_limits());
    for _ in 0..256 {
        let op = if handshake_only {
            HandshakeOp::arbitrary(&mut u).map(Op::from)
        } else {
            Op::arbitrary(&mut u)
        };
        let Ok(op) = op else {
            break;
        };
        h.apply(op);
        if !h.corked {
            h.check();
        }
    }
    // Whatever a burst left undrained comes out now, and must add up.
    h.corked = false;
    h.drain();
    h.check();
}
