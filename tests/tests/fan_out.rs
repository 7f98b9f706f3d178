//! A group change goes to every peer, but the call that makes it does not
//! make every write: the node writes to at most four connections from the
//! caller's thread (those peers hear without a task hop) and leaves the rest
//! to a task that runs right after. In a mesh of N nodes a `register` would
//! otherwise make N - 1 socket writes before it returns, each waking a
//! receiver that may preempt the caller (0.41-0.49 ms at N=20 on loopback,
//! docs/BENCHMARKS.md, "Notify latency against Erlang `pg`").

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod hooked_smol;

use groupmesh_smol::NodeConfig;
use hooked_smol::{HookedSmol, Hooks};
use smol::Timer;

thread_local! {
    /// Writes made from this thread through `Runtime::try_write`.
    static DIRECT_WRITES: Cell<usize> = const { Cell::new(0) };
}

/// Counts the writes the driver makes from the calling thread.
struct CountingWrites;

impl Hooks for CountingWrites {
    fn writing(_: &[u8]) {
        DIRECT_WRITES.with(|n| n.set(n.get() + 1));
    }
}

type Node = groupmesh_driver::Node<HookedSmol<CountingWrites>>;

fn config(name: &str, seeds: &[SocketAddr]) -> NodeConfig {
    let mut cfg = NodeConfig::new(name, b"groupmesh fan-out test secret");
    cfg.bind.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.seeds = seeds.to_vec();
    cfg
}

async fn start(cfg: NodeConfig) -> Node {
    let name = cfg.node_id.clone();
    Node::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("node {name} did not start: {e}"))
}

/// Waits (polling, within a limit) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let limit = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < limit, "timed out waiting until {what}");
        Timer::after(Duration::from_millis(5)).await;
    }
}

#[test]
fn a_register_writes_to_at_most_four_peers_from_the_callers_thread() {
    smol::block_on(async {
        let a = start(config("a", &[])).await;
        let seed = *a.local_addrs().first().expect("a listens");
        let mut nodes = vec![a];
        for name in ["b", "c", "d", "e", "f", "g", "h"] {
            nodes.push(start(config(name, &[seed])).await);
        }
        until("the mesh is full", || {
            nodes.iter().all(|n| n.connected_nodes().len() == 7)
        })
        .await;

        let port = nodes[0].open_port();
        DIRECT_WRITES.with(|n| n.set(0));
        let registration = nodes[0].register("svc", &port).expect("a valid name");
        let direct = DIRECT_WRITES.with(Cell::get);
        assert!(
            direct <= 4,
            "register wrote to {direct} of its 7 peers from the caller's thread"
        );

        // Every peer still hears of it, through the writers.
        until("every node lists the new member", || {
            nodes
                .iter()
                .all(|n| n.members("svc").is_some_and(|m| m.contains(port.id())))
        })
        .await;
        drop(registration);
        until("every node has dropped it", || {
            nodes
                .iter()
                .all(|n| n.members("svc").is_none_or(|m| m.is_empty()))
        })
        .await;
        for n in nodes {
            n.shutdown().await;
        }
    });
}
