//! The heap a node holds for its snapshot while it goes out to a fresh peer,
//! measured with a counting allocator. Node `b` with `n` memberships (groups
//! of 1,000 ports) authenticates a peer; then each transmit is taken, held
//! while "written", dropped, and the connection reported drained (paced, as
//! the bundled driver does). The receiver is not fed the snapshot, so the
//! heap that moves is the sender's. Two figures per run:
//!
//! - *held*: the most live heap above `b`'s own before the peer came, taken
//!   after each `poll_transmit` with its transmit still held (the chunk in
//!   flight included);
//! - *made*: the most heap allocated within one `poll_transmit` that made a
//!   chunk (the frames' entries and the encoded bytes; the entries are freed
//!   before it returns): what a chunk costs at its peak, at most.
//!
//! With `snapshot_chunk = usize::MAX` the whole snapshot is one chunk, as it
//! was before snapshots streamed (less the list of changes it was built from,
//! 32 bytes per membership more).
//!
//! Run: `cargo bench -p groupmesh-core --bench snapshot` (1,000,000
//! memberships take a few seconds in release).

use std::net::SocketAddr;

use groupmesh_core::{Action, Config, Instant, Node, NodeId, DEFAULT_SNAPSHOT_CHUNK};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes since `region` started (`stats_alloc` counts growth by
/// reallocation in `bytes_allocated`, shrinking in `bytes_deallocated`).
fn live(region: &Region<'_, std::alloc::System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize
}

/// Heap bytes allocated since `region` started, growth by reallocation included.
fn allocated(region: &Region<'_, std::alloc::System>) -> isize {
    region.change().bytes_allocated as isize
}

fn node(id: &str, seed: u8, chunk: usize) -> Node {
    let mut cfg = Config::new(NodeId::new(id).expect("valid id"), b"bench secret");
    cfg.listen_addrs = vec![SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(seed)))];
    cfg.snapshot_chunk = chunk;
    cfg.paced_snapshots = true;
    Node::new(cfg, 1, [seed; 32], Instant::ZERO).expect("valid config")
}

/// (held, made, chunks, snapshot bytes) for a snapshot of `n` memberships.
fn measure(n: usize, chunk: usize) -> (isize, isize, usize, usize) {
    let now = Instant::ZERO;
    let mut b = node("b", 2, chunk);
    for _ in 0..n / 1000 {
        let p = b.open_port();
        for g in 0..1000 {
            b.register(&format!("group-{g:04}"), &p).expect("valid");
        }
    }
    while b.poll_transmit().is_some() {}
    let mut a = node("a", 1, chunk);
    b.add_seed(now, SocketAddr::from(([127, 0, 0, 1], 7001)));
    b.handle_timeout(now);
    let Some(Action::Dial { conn: b_conn, .. }) = b.poll_action() else {
        panic!("b dials its seed");
    };
    let a_conn = a
        .handle_inbound(now, SocketAddr::from(([127, 0, 0, 1], 7002)))
        .expect("room");
    b.handle_dialed(now, b_conn);
    // The handshake, until b authenticated a: its first chunk is made at
    // its next `poll_transmit`.
    'handshake: loop {
        while let Some(t) = b.poll_transmit() {
            a.handle_bytes(now, a_conn, &t.data);
        }
        while let Some(t) = a.poll_transmit() {
            b.handle_bytes(now, b_conn, &t.data);
            if b.stats().authenticated > 0 {
                break 'handshake;
            }
        }
    }
    let region = Region::new(GLOBAL);
    let (mut held, mut made, mut chunks, mut bytes) = (0, 0, 0, 0);
    loop {
        let before = allocated(&region);
        let t = b.poll_transmit().expect("a chunk after each drain report");
        made = made.max(allocated(&region) - before);
        held = held.max(live(&region));
        chunks += 1;
        bytes += t.data.len();
        drop(t);
        if b.stats().snapshots_sending == 0 {
            return (held, made, chunks, bytes);
        }
        b.handle_drained(now, b_conn);
    }
}

fn main() {
    for (n, chunk) in [
        (10_000, DEFAULT_SNAPSHOT_CHUNK),
        (1_000_000, DEFAULT_SNAPSHOT_CHUNK),
        (1_000_000, usize::MAX),
    ] {
        let (held, made, chunks, bytes) = measure(n, chunk);
        let chunk = if chunk == usize::MAX {
            "whole".to_owned()
        } else {
            format!("{chunk} B")
        };
        println!(
            "{n} memberships, chunk {chunk}: {bytes} bytes in {chunks} transmits; \
             held at most {held} heap bytes, at most {made} allocated making one"
        );
    }
}
