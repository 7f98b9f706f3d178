//! What forming a mesh costs: N cold nodes, every one seeded with node 0,
//! bytes delivered at once in rounds, timers run as they fall due.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use super::SECRET;
use crate::{Action, Config, ConnId, Instant, Node, NodeId};

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16))
}

/// Forms a mesh of `n`; returns (frames, bytes, virtual time it took).
fn form(n: usize) -> (u64, u64, Instant) {
    let mut nodes: Vec<Node> = (0..n)
        .map(|i| {
            let id = NodeId::new(&format!("n{i:03}")).expect("short id");
            let mut cfg = Config::new(id, SECRET);
            cfg.listen_addrs = alloc::vec![addr(i)];
            if i > 0 {
                cfg.seeds = alloc::vec![addr(0)];
            }
            let mut node = Node::new(cfg, 1, [i as u8; 32], Instant::ZERO).expect("valid");
            let p = node.open_port();
            node.register("g", &p).expect("valid group");
            node
        })
        .collect();
    let mut links: BTreeMap<(usize, ConnId), (usize, ConnId)> = BTreeMap::new();
    let mut dials: VecDeque<(usize, usize, ConnId)> = VecDeque::new();
    let mut now = Instant::ZERO;
    for _ in 0..100_000 {
        let mut moved = false;
        for node in &mut nodes {
            node.handle_timeout(now);
        }
        for i in 0..n {
            while let Some(a) = nodes[i].poll_action() {
                match a {
                    Action::Dial { conn, addr } => {
                        dials.push_back((i, usize::from(addr.port() - 10_000), conn));
                    }
                    Action::Close { conn } => {
                        if let Some((j, c)) = links.remove(&(i, conn)) {
                            links.remove(&(j, c));
                            nodes[j].handle_closed(now, c);
                        }
                    }
                }
            }
        }
        while let Some((i, t, conn)) = dials.pop_front() {
            match nodes[t].handle_inbound(now, addr(50_000)) {
                Some(c) => {
                    links.insert((i, conn), (t, c));
                    links.insert((t, c), (i, conn));
                    nodes[i].handle_dialed(now, conn);
                }
                None => nodes[i].handle_dial_failed(now, conn),
            }
            moved = true;
        }
        for i in 0..n {
            while let Some(tx) = nodes[i].poll_transmit() {
                if let Some(&(j, c)) = links.get(&(i, tx.conn)) {
                    nodes[j].handle_bytes(now, c, &tx.data);
                    moved = true;
                }
            }
            while nodes[i].poll_event().is_some() {}
        }
        let formed = nodes.iter().all(|x| {
            x.connected_nodes().count() == n - 1 && x.members("g").map(<[_]>::len) == Some(n)
        });
        if formed && !moved {
            let frames = nodes.iter().map(|x| x.stats().frames_out).sum();
            let bytes = nodes.iter().map(|x| x.stats().bytes_out).sum();
            return (frames, bytes, now);
        }
        if !moved {
            let next = nodes.iter().filter_map(Node::poll_timeout).min();
            now = next.unwrap_or(now).max(now + Duration::from_millis(1));
        }
    }
    panic!("a mesh of {n} never formed");
}

#[test]
fn forming_a_mesh_costs_a_few_frames_per_pair_not_one_per_node() {
    let n = 30;
    let (frames, bytes, took) = form(n);
    let per_pair = frames as f64 / (n * (n - 1)) as f64;
    std::eprintln!(
        "N={n}: {per_pair:.1} frames and {} bytes per directed pair, formed at {took:?}",
        bytes / (n * (n - 1)) as u64
    );
    assert!(per_pair <= 8.0, "{per_pair:.1} frames per directed pair");
}

/// `FORMATION_N=200 cargo test --release -p groupmesh-core --lib formation -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: run with FORMATION_N"]
fn formation_figures() {
    let n = std::env::var("FORMATION_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let (frames, bytes, took) = form(n);
    let pairs = (n * (n - 1)) as f64;
    std::eprintln!(
        "N={n}: {frames} frames ({:.1} per directed pair), {bytes} bytes ({:.0} per pair), formed at {took:?}",
        frames as f64 / pairs,
        bytes as f64 / pairs
    );
}
