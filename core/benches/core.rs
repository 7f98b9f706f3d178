//! CPU cost of the core's hot paths, in release builds:
//! - the Noise handshake of one connection, both sides;
//! - applying a 1,000-member snapshot and emitting its monitor delta;
//! - a join/leave frame from a connected peer, with and without a monitor
//!   (each in its own sealed record, opened and applied).
//!
//! Run: `cargo bench -p groupmesh-core --bench core`.

use std::time::{Duration, Instant as Clock};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use groupmesh_core::wire::Hello;
use groupmesh_core::{Channel, Input, Instant, Node, Psk};

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
    let records = common::records(&rec.b_stream);
    // Version, the Noise message, the key confirmation, then the snapshot
    // (one frame for 1,000 ports, in one sealed record).
    let (handshake, snapshot) = records.split_at(3);
    assert_eq!(snapshot.len(), 1, "1,000 ports fit one record");
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
        let records = common::records(&rec.b_stream);
        let (handshake, snapshot) = records.split_at(3);
        let (mut a, conn) = a_before_snapshot(handshake, monitor);
        a.handle_bytes(Instant::ZERO, conn, &snapshot[0]);
        common::drain(&mut a);
        let name = if monitor {
            "join+leave frames, 1000-member group, monitored"
        } else {
            "join+leave frames, 1000-member group"
        };
        // Every record opens once, in order: b seals a fresh join and leave
        // per iteration (untimed), a opens and applies them (timed).
        c.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let mut sealed = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let reg = rec.b.register("g", &extra).expect("valid");
                    let join = rec.b.poll_transmit().expect("join record").data;
                    rec.b.unregister(reg).expect("live");
                    let leave = rec.b.poll_transmit().expect("leave record").data;
                    sealed.push((join, leave));
                }
                let start = Clock::now();
                for (join, leave) in &sealed {
                    a.handle_bytes(Instant::ZERO, conn, join);
                    a.handle_bytes(Instant::ZERO, conn, leave);
                    common::drain(&mut a);
                }
                start.elapsed()
            })
        });
        assert_eq!(a.members("g").map(|m| m.len()), Some(1000));
        let _ = rec.a_conn_on_b;
    }
}

/// One connection's whole handshake, both sides: version records, the two
/// Noise messages (two X25519 key generations and DHs), the key confirmation.
fn handshake(c: &mut Criterion) {
    let psk = Psk::derive(b"bench secret");
    let hello = |node: &str| Hello {
        node: node.try_into().expect("short id"),
        incarnation: 1,
        epoch: 1,
        addrs: Default::default(),
        max_frame: 65_536,
        port_credit: 256,
    };
    let (ha, hb) = (hello("a"), hello("b"));
    let mut seed = 0u8;
    c.bench_function("noise handshake, both sides", |bench| {
        bench.iter(|| {
            seed = seed.wrapping_add(1);
            let mut i = Channel::new(true, &psk, 65_536, [seed; 32]);
            let mut r = Channel::new(false, &psk, 65_536, [seed ^ 0xff; 32]);
            i.start(&ha);
            r.start(&hb);
            let mut up = (false, false);
            while !(up.0 && up.1) {
                let to_r = i.take_wire();
                let mut input = &to_r[..];
                while let Ok(Some(got)) = r.next(&mut input) {
                    match got {
                        Input::Greeting(_) => r.answer(),
                        Input::Authenticated(_) => up.1 = true,
                        Input::Frame(_) => {}
                    }
                }
                let to_i = r.take_wire();
                let mut input = &to_i[..];
                while let Ok(Some(got)) = i.next(&mut input) {
                    up.0 |= matches!(got, Input::Authenticated(_));
                }
            }
            (i, r)
        })
    });
}

/// Sealing and opening a 64 KiB frame stream (one record's worth): the
/// channel's cost per byte after the handshake.
fn seal_open(c: &mut Criterion) {
    let psk = Psk::derive(b"bench secret");
    let (mut i, mut r) = (
        Channel::new(true, &psk, 1 << 20, [1; 32]),
        Channel::new(false, &psk, 1 << 20, [2; 32]),
    );
    let hello = Hello {
        node: "x".try_into().expect("short id"),
        incarnation: 1,
        epoch: 1,
        addrs: Default::default(),
        max_frame: 1 << 20,
        port_credit: 256,
    };
    i.start(&hello);
    r.start(&hello);
    for _ in 0..3 {
        let to_r = i.take_wire();
        let mut input = &to_r[..];
        while let Ok(Some(got)) = r.next(&mut input) {
            if let Input::Greeting(_) = got {
                r.answer();
            }
        }
        let to_i = r.take_wire();
        let mut input = &to_i[..];
        while let Ok(Some(_)) = i.next(&mut input) {}
    }
    assert!(i.is_authenticated() && r.is_authenticated());
    let payload = vec![7u8; 65_000];
    let mut frame = Vec::new();
    groupmesh_core::wire::Frame::Message {
        to: 1,
        from: None,
        payload: payload.into(),
    }
    .encode(&mut frame);
    let mut group = c.benchmark_group("channel");
    group.throughput(criterion::Throughput::Bytes(frame.len() as u64));
    let message = groupmesh_core::wire::Frame::Message {
        to: 1,
        from: None,
        payload: vec![7u8; 65_000].into(),
    };
    group.bench_function("encode one 64 KiB message frame", |bench| {
        let mut out = Vec::with_capacity(70_000);
        bench.iter(|| {
            out.clear();
            message.encode(&mut out);
            out.len()
        })
    });
    group.bench_function("seal + open one 64 KiB frame", |bench| {
        bench.iter(|| {
            let mut plain = frame.clone();
            i.seal(&mut plain);
            let wire = i.take_wire();
            let mut input = &wire[..];
            match r.next(&mut input) {
                Ok(Some(Input::Frame(f))) => f,
                other => panic!("the frame: {other:?}"),
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = handshake, seal_open, snapshot, join_leave
}
criterion_main!(benches);
