//! Writes the committed seed corpus: every kind of frame (for `decode`), and
//! streams of valid frames as an authenticated peer sends them (for `stream`).
//!
//! Run: `cargo run -p groupmesh-core --example make_fuzz_corpus` (writes under `fuzz/corpus/`).

use std::fs;

use groupmesh_core::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, Hello, Payload, PeerInfo, WireAddr, WireGroup,
    WireNodeId, LEN_PREFIX, PROTOCOL_VERSION,
};
use groupmesh_core::{Limit, WireReason};

fn name<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    out.push_str(s).expect("short name");
    out
}

fn ports(v: &[u64]) -> BoundedVec<u64, 65536> {
    BoundedVec::try_from_vec(v.to_vec()).expect("short")
}

fn frames() -> Vec<Frame> {
    let mut addrs = heapless::Vec::new();
    addrs
        .push(WireAddr::from(
            "127.0.0.1:7000"
                .parse::<std::net::SocketAddr>()
                .expect("addr"),
        ))
        .expect("room");
    let hello = Hello {
        version: PROTOCOL_VERSION,
        node: name::<64>("node-a"),
        incarnation: 1_700_000_000_000_000_000,
        addrs: addrs.clone(),
        nonce: [0x5a; 32],
        max_frame: 65536,
    };
    let group: WireGroup = name("workers");
    vec![
        Frame::Hello(Box::new(hello)),
        Frame::Auth { mac: [0x11; 32] },
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
                joined: ports(&[4]),
                left: ports(&[1]),
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
    ]
}

fn main() -> std::io::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");
    fs::create_dir_all(format!("{dir}/decode"))?;
    fs::create_dir_all(format!("{dir}/stream"))?;
    let all = frames();
    for (i, f) in all.iter().enumerate() {
        let mut bytes = Vec::new();
        f.encode(&mut bytes);
        fs::write(format!("{dir}/decode/seed-{i:02}"), &bytes[LEN_PREFIX..])?;
    }
    // `stream` inputs: a list of cut points (arbitrary's encoding: a 1 byte
    // before each u16, a 0 to end), then the bytes after authentication.
    let after_auth: Vec<u8> = all[2..]
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
    println!("wrote {} decode and 2 stream seeds", all.len());
    Ok(())
}
