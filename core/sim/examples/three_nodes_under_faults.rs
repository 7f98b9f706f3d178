//! Testing an application's use of the core under seeded faults.
//!
//! The "application": two workers (nodes 0 and 1) register a port each in
//! the group `workers`; a client (node 2) monitors the group and sends every
//! worker it sees a message. The faults: the client's link to worker 0 is
//! cut, worker 1 is cut off silently and then crashes and restarts. After
//! the network heals, the client must list exactly the live workers, and
//! every message the simulator saw delivered was checked on the way (right
//! port, at most once, in order).
//!
//! Run: `cargo run --release -p groupmesh-sim --example three_nodes_under_faults`;
//! `SIM_SEED=n` runs only seed `n`, `SIM_TRACE=1` adds the debug log.

use std::time::Duration;

use groupmesh_core::{Event, PortId};
use groupmesh_sim::{init_tracing, seeds, CutMode, Sim, SimOptions};

const WORKERS: &str = "workers";
const CLIENT: usize = 2;

/// The client sends one message to every worker it lists now.
fn client_sends(sim: &mut Sim) {
    for to in sim.members(CLIENT, WORKERS) {
        sim.send(CLIENT, None, &to, 16);
    }
}

/// One worker port on node `i`, registered in `workers`.
fn start_worker(sim: &mut Sim, i: usize) -> PortId {
    let port = sim.open_port(i);
    sim.register(i, WORKERS, &port);
    port
}

fn run(seed: u64) {
    let mut sim = Sim::new(SimOptions::new(3), seed);
    sim.settle_or_panic();
    let w0 = start_worker(&mut sim, 0);
    start_worker(&mut sim, 1);
    let mark = sim.mark(CLIENT);
    sim.monitor(CLIENT, WORKERS);
    sim.settle_or_panic();
    client_sends(&mut sim);
    sim.run_for(Duration::from_millis(100)); // delivered: the network is quiet

    // Faults: a reset, a silent partition, a crash in the middle of it.
    sim.cut(CLIENT, 0);
    sim.partition(1, CLIENT, CutMode::Silent);
    sim.run_for(Duration::from_millis(700));
    client_sends(&mut sim);
    sim.crash(1, false);
    sim.run_for(Duration::from_secs(3));
    sim.heal_all();
    sim.restart(1);
    let w1 = start_worker(&mut sim, 1);
    sim.settle_or_panic();

    // The client lists exactly the live workers' ports.
    let mut want = vec![w0, w1];
    want.sort();
    assert_eq!(sim.members(CLIENT, WORKERS), want, "seed {seed}");
    client_sends(&mut sim);
    sim.settle_or_panic();
    assert!(
        sim.undelivered_since(sim.sent.len() as u64 - 2).is_empty(),
        "seed {seed}: a message to a live worker on a quiet network was lost"
    );
    let deltas = sim
        .events_since(CLIENT, mark)
        .iter()
        .filter(|e| matches!(e, Event::Group(_)))
        .count();
    println!(
        "seed {seed}: converged at {:?}, {deltas} monitor deltas, {} of {} messages delivered, {} node downs",
        sim.now, sim.counts.messages_delivered, sim.counts.messages_sent, sim.counts.node_downs
    );
}

fn main() {
    init_tracing();
    for seed in seeds(0..20) {
        run(seed);
    }
}
