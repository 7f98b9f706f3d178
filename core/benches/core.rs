//! CPU cost of the core's hot paths, in release builds:
//! - applying a 1,000-member snapshot and emitting its monitor delta;
//! - a join/leave frame from a connected peer, with and without a monitor.
//!
//! Run: `cargo bench -p groupmesh-core --bench core`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use groupmesh_core::{Instant, Node};

#[path = "common/mod.rs"]
#[allow(dead_code)] // each bench uses part of the helper
mod common;

/// a, authenticated with b, with b's snapshot frames not yet fed.
fn a_before_snapshot(handshake: &[Vec<u8>], monitor: bool) -> (Node, groupmesh_core::ConnId) {
    let mut a = common::fresh_a();
    if monitor {
        a.monitor("g").expect("valid");
    }
    let conn = a
        .handle_inbound(Instant::ZERO, "127.0.0.1:7002".parse().expect("addr"))
        .expect("room");
    for f in handshake {
        a.handle_bytes(Instant::ZERO, conn, f);
    }
    common::drain(&mut a);
    (a, conn)
}

fn snapshot(c: &mut Criterion) {
    let mut b = common::node("b", 2);
    for _ in 0..1000 {
        let p = b.open_port();
        b.register("g", &p).expect("valid");
    }
    let rec = common::connect(b);
    let frames = common::frames(&rec.b_stream);
    // hello, auth, then the snapshot (one frame for 1,000 ports).
    let (handshake, snapshot) = frames.split_at(2);
    assert_eq!(snapshot.len(), 1, "1,000 ports fit one frame");
    c.bench_function("apply 1000-member snapshot + monitor delta", |bench| {
        bench.iter_batched(
            || a_before_snapshot(handshake, true),
            |(mut a, conn)| {
                a.handle_bytes(Instant::ZERO, conn, &snapshot[0]);
                let events = common::drain(&mut a);
                assert_eq!(a.members("g").map(|m| m.len()), Some(1000));
                assert_eq!(events, 2, "node up + one group delta");
                a
            },
            BatchSize::SmallInput,
        )
    });
}

fn join_leave(c: &mut Criterion) {
    for monitor in [false, true] {
        let mut b = common::node("b", 2);
        let ports: Vec<_> = (0..1000).map(|_| b.open_port()).collect();
        for p in &ports {
            b.register("g", p).expect("valid");
        }
        let extra = b.open_port();
        let mut rec = common::connect(b);
        let frames = common::frames(&rec.b_stream);
        let (handshake, snapshot) = frames.split_at(2);
        // Record one join frame and one leave frame of `extra`.
        let reg = rec.b.register("g", &extra).expect("valid");
        let join = rec.b.poll_transmit().expect("join frame").data;
        rec.b.unregister(reg).expect("live");
        let leave = rec.b.poll_transmit().expect("leave frame").data;
        let (mut a, conn) = a_before_snapshot(handshake, monitor);
        a.handle_bytes(Instant::ZERO, conn, &snapshot[0]);
        common::drain(&mut a);
        let name = if monitor {
            "join+leave frames, 1000-member group, monitored"
        } else {
            "join+leave frames, 1000-member group"
        };
        c.bench_function(name, |bench| {
            bench.iter(|| {
                a.handle_bytes(Instant::ZERO, conn, &join);
                a.handle_bytes(Instant::ZERO, conn, &leave);
                common::drain(&mut a)
            })
        });
        assert_eq!(a.members("g").map(|m| m.len()), Some(1000));
        let _ = rec.a_conn_on_b;
    }
}

criterion_group!(benches, snapshot, join_leave);
criterion_main!(benches);
