//! Two nodes connected by hand, and the bytes one sends the other, recorded
//! so a benchmark can replay them into a fresh node.

use std::net::SocketAddr;

use groupmesh_core::{Action, Config, ConnId, Instant, Node, NodeId};

pub(crate) fn node(id: &str, seed: u8) -> Node {
    let mut cfg = Config::new(NodeId::new(id).expect("valid id"), b"bench secret");
    cfg.listen_addrs = vec![SocketAddr::from(([127, 0, 0, 1], 7000 + u16::from(seed)))];
    Node::new(cfg, 1, [seed; 32], Instant::ZERO).expect("valid config")
}

/// Splits a byte stream into its records (4-byte length prefix each).
pub(crate) fn records(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        out.push(rest[..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    out
}

/// A receiving node `a` (fresh each time from the same seed, so its greeting
/// is the same) and a sender `b`; returns b's whole stream to a after the
/// handshake, and a's inbound connection id.
pub(crate) struct Recorded {
    pub(crate) b_stream: Vec<u8>,
    pub(crate) b: Node,
    pub(crate) a_conn_on_b: ConnId,
}

pub(crate) fn fresh_a() -> Node {
    node("a", 1)
}

/// Connects b to a fresh `a` by hand (b dials), drains everything, and records what b sent.
pub(crate) fn connect(b: Node) -> Recorded {
    connect_to(&mut fresh_a(), b)
}

/// Connects b to `a` by hand (b dials), drains everything, and records what b sent.
pub(crate) fn connect_to(a: &mut Node, mut b: Node) -> Recorded {
    let a_addr = SocketAddr::from(([127, 0, 0, 1], 7001));
    b.add_seed(Instant::ZERO, a_addr);
    b.handle_timeout(Instant::ZERO);
    let Some(Action::Dial { conn: b_conn, .. }) = b.poll_action() else {
        panic!("b dials its seed");
    };
    let a_conn = a
        .handle_inbound(Instant::ZERO, SocketAddr::from(([127, 0, 0, 1], 7002)))
        .expect("room");
    b.handle_dialed(Instant::ZERO, b_conn);
    let mut b_stream = Vec::new();
    for _ in 0..10 {
        while let Some(t) = a.poll_transmit() {
            b.handle_bytes(Instant::ZERO, b_conn, &t.data);
        }
        while let Some(t) = b.poll_transmit() {
            b_stream.extend_from_slice(&t.data);
            a.handle_bytes(Instant::ZERO, a_conn, &t.data);
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        while a.poll_action().is_some() {}
        while b.poll_action().is_some() {}
    }
    Recorded {
        b_stream,
        b,
        a_conn_on_b: b_conn,
    }
}

/// Drains everything a node has queued; returns how many events it had.
pub(crate) fn drain(n: &mut Node) -> usize {
    while n.poll_transmit().is_some() {}
    while n.poll_action().is_some() {}
    std::iter::from_fn(|| n.poll_event()).count()
}
