//! Writes the committed seed corpus: every kind of frame (for `decode`),
//! streams of valid frames as an authenticated peer sends them (for `stream`),
//! the same frames as sealed-record operations (for `records`), and the
//! handshake records and a greeting (for `handshake`, whose inputs are
//! operations: the records give the fuzzer their shapes to splice).
//!
//! Run: `cargo run -p groupmesh-core --example make_fuzz_corpus` (writes under `fuzz/corpus/`).

use std::fs;

use groupmesh_core::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, HandshakeRecord, Hello, LeaveReason, Payload,
    PeerInfo, WireAddr, WireGroup, WireLeave, WireNodeId, WirePort, LEN_PREFIX, PROTOCOL_VERSION,
};
use groupmesh_core::{Limit, WireReason};

fn name<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    out.push_str(s).expect("short name");
    out
}

/// Ports with metadata: port `n` carries `n` bytes of it.
fn ports(v: &[u64]) -> BoundedVec<WirePort, 65536> {
    let port = |&n: &u64| WirePort {
        number: n,
        meta: Payload::from(vec![b'm'; n as usize]),
    };
    BoundedVec::try_from_vec(v.iter().map(port).collect()).expect("short")
}

fn leaves(v: &[(u64, LeaveReason)]) -> BoundedVec<WireLeave, 65536> {
    let leave = |&(number, reason): &(u64, LeaveReason)| WireLeave { number, reason };
    BoundedVec::try_from_vec(v.iter().map(leave).collect()).expect("short")
}

fn addrs() -> heapless::Vec<WireAddr, 8> {
    let mut addrs = heapless::Vec::new();
    addrs
        .push(WireAddr::from(
            "127.0.0.1:7000"
                .parse::<std::net::SocketAddr>()
                .expect("addr"),
        ))
        .expect("room");
    addrs
}

fn hello() -> Hello {
    Hello {
        node: name::<64>("node-a"),
        incarnation: 1_700_000_000_000_000_000,
        epoch: 1_700_000_000_000_000_000,
        addrs: addrs(),
        max_frame: 65536,
        port_credit: 64,
    }
}

fn frames() -> Vec<Frame> {
    let addrs = addrs();
    let group: WireGroup = name("workers");
    vec![
        Frame::Peers {
            nodes: BoundedVec::try_from_vec(vec![PeerInfo {
                node: name::<64>("node-b") as WireNodeId,
                addrs,
            }])
            .expect("short"),
        },
        Frame::Sync {
            groups: BoundedVec::try_from_vec(vec![GroupPorts {
                group: group.clone(),
                ports: ports(&[1, 2, 3]),
            }])
            .expect("short"),
            done: true,
        },
        Frame::Update {
            groups: BoundedVec::try_from_vec(vec![GroupChange {
                group,
                joined: ports(&[4, 2]),
                left: leaves(&[(1, LeaveReason::Unregistered), (3, LeaveReason::PortClosed)]),
            }])
            .expect("short"),
        },
        Frame::Ping,
        Frame::Close {
            reason: WireReason::LimitExceeded(Limit::Groups),
        },
        Frame::Message {
            to: 1,
            from: Some(2),
            payload: Payload::from(b"hello".to_vec()),
        },
        Frame::MonitorPort { port: 1 },
        Frame::DemonitorPort { port: 1 },
        Frame::PortDown { port: 1 },
        Frame::Credit { port: 1, n: 32 },
    ]
}

fn main() -> std::io::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
    for target in ["decode", "stream", "records", "handshake"] {
        fs::create_dir_all(format!("{dir}/{target}"))?;
    }
    let all = frames();
    for (i, f) in all.iter().enumerate() {
        let mut bytes = Vec::new();
        f.encode(&mut bytes);
        fs::write(format!("{dir}/decode/seed-{i:02}"), &bytes[LEN_PREFIX..])?;
    }
    // `stream` inputs: a list of cut points (arbitrary's encoding: a 1 byte
    // before each u16, a 0 to end), then the bytes after authentication.
    let after_auth: Vec<u8> = all
        .iter()
        .flat_map(|f| {
            let mut b = Vec::new();
            f.encode(&mut b);
            b
        })
        .collect();
    fs::write(
        format!("{dir}/stream/seed-00"),
        [&[0u8][..], &after_auth].concat(),
    )?;
    fs::write(
        format!("{dir}/stream/seed-01"),
        [&[1u8, 3, 0, 1, 9, 0, 0][..], &after_auth].concat(),
    )?;
    // `records` inputs: operations, each a u32 variant index (arbitrary's
    // encoding) and its fields; variant 0 is a frame sealed and delivered.
    // Postcard and arbitrary disagree on a frame's bytes, so these are shapes
    // for the fuzzer to mutate: every frame sealed, then one of each attack.
    for (i, f) in all.iter().enumerate() {
        let mut body = Vec::new();
        f.encode(&mut body);
        let mut op = 0u32.to_le_bytes().to_vec();
        op.extend_from_slice(&body[LEN_PREFIX..]);
        fs::write(format!("{dir}/records/seed-{i:02}"), &op)?;
    }
    for (k, variant) in (1u32..=5).enumerate() {
        let mut op = variant.to_le_bytes().to_vec();
        op.extend_from_slice(&[3, 0, 0x10, 0x20, 0x30]);
        fs::write(format!("{dir}/records/attack-{k:02}"), &op)?;
    }
    // `handshake` inputs: the handshake records as they travel, and a
    // greeting's bytes.
    let mut records = Vec::new();
    HandshakeRecord::Version(PROTOCOL_VERSION).encode(&mut records);
    HandshakeRecord::Noise(Payload::from(hello().to_bytes())).encode(&mut records);
    HandshakeRecord::Refuse(WireReason::Superseded).encode(&mut records);
    fs::write(format!("{dir}/handshake/seed-00"), &records)?;
    fs::write(format!("{dir}/handshake/seed-01"), hello().to_bytes())?;
    println!(
        "wrote {} decode, 2 stream, {} records and 2 handshake seeds",
        all.len(),
        all.len() + 5
    );
    Ok(())
}
