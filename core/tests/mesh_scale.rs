//! How far a full mesh goes: the simulator (`groupmesh-sim`, no sockets)
//! forms meshes of N nodes with 100 memberships each (10 ports, each in 10
//! groups) at the default timers, and measures
//!
//! - idle traffic: the bytes every node hands its driver over 20 s of a
//!   quiet, converged mesh (`Node::stats().bytes_out`), per node and per peer,
//!   and the cores' CPU meanwhile (`SCALE_IDLE_S` sets the window);
//! - one node joining: node N (dead from the start, known to nobody) starts,
//!   registers its 100 memberships and joins through the usual seeds; the
//!   bytes all nodes send until every node lists everything, and the CPU
//!   of every core call meanwhile (`Sim::core_time`: the wall time inside
//!   the cores' calls, the simulator being one thread), both less what the
//!   same span of idle mesh costs;
//! - memory: a counting allocator (`stats_alloc`); the heap one node gives
//!   back when it is dropped, less an empty node's, per peer (each peer's
//!   100 memberships in the view included).
//!
//! Release build, run explicitly; `SCALE_N` picks the sizes (default
//! `50,100,200,500`):
//!
//! ```text
//! cargo test --release -p groupmesh-core --test mesh_scale -- --ignored --nocapture
//! ```

use std::alloc::System;
use std::time::Duration;

use groupmesh_core::{Config, Instant, Node, Timeouts};
use groupmesh_sim::{Sim, SimOptions};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const PORTS: usize = 10;
const GROUPS: usize = 10;

/// The idle window: `SCALE_IDLE_S` seconds (default 20).
fn idle_window() -> Duration {
    let s = std::env::var("SCALE_IDLE_S").map_or(20, |v| v.parse().expect("SCALE_IDLE_S: seconds"));
    Duration::from_secs(s)
}

/// Heap bytes live in `region` now.
fn live(region: &Region<'_, System>) -> i64 {
    let c = region.change();
    c.bytes_allocated as i64 - c.bytes_deallocated as i64 + c.bytes_reallocated as i64
}

/// Bytes sent by every live node so far.
fn bytes_out(sim: &Sim) -> u64 {
    sim.live_nodes()
        .iter()
        .map(|&i| sim.core(i).stats().bytes_out)
        .sum()
}

/// Node `i` registers its 100 memberships.
fn register_all(sim: &mut Sim, i: usize) {
    for _ in 0..PORTS {
        let p = sim.open_port(i);
        for g in 0..GROUPS {
            sim.register(i, &format!("group-{g}"), &p);
        }
    }
}

/// Runs until converged (checked every 100 ms of virtual time); returns how long.
fn converge(sim: &mut Sim) -> Duration {
    let start = sim.now;
    while let Err(e) = sim.check_converged() {
        assert!(
            sim.now - start < Duration::from_secs(600),
            "not converged: {e}"
        );
        sim.run_for(Duration::from_millis(100));
    }
    sim.now - start
}

/// One row of the table: N nodes.
fn measure(n: usize) -> String {
    let wall = std::time::Instant::now();
    let mut opts = SimOptions::new(n + 1);
    opts.timeouts = Timeouts::default();
    opts.light_checks = true;
    opts.allow_dead = true;
    let mut sim = Sim::new(opts, n as u64);
    // The node that joins later: dead before anything happened.
    sim.crash(n, false);
    for i in 0..n {
        register_all(&mut sim, i);
    }
    let formed = converge(&mut sim);
    sim.run_for(sim.opts.hold());

    let idle = idle_window();
    let (b0, c0) = (bytes_out(&sim), sim.core_time);
    sim.run_for(idle);
    let idle_bytes = (bytes_out(&sim) - b0) as f64 / idle.as_secs_f64();
    let idle_cpu = (sim.core_time - c0).as_secs_f64() / idle.as_secs_f64();
    let idle_per_node = idle_bytes / n as f64;

    let (b0, c0, t0) = (bytes_out(&sim), sim.core_time, sim.now);
    sim.restart(n);
    register_all(&mut sim, n);
    let took = converge(&mut sim);
    let span = (sim.now - t0).as_secs_f64();
    let join_bytes = (bytes_out(&sim) - b0) as f64 - idle_bytes * span;
    let join_cpu = (sim.core_time - c0).as_secs_f64() - idle_cpu * span;

    let region = Region::new(GLOBAL);
    let empty = Node::new(
        Config::new(groupmesh_sim::node_id(999), b"s"),
        1,
        [0; 32],
        Instant::ZERO,
    )
    .expect("valid");
    let before = live(&region);
    drop(empty);
    let empty_heap = before - live(&region);
    let core = sim.nodes[0].node.take().expect("node 0 is live");
    let members = core.stats().members;
    let before = live(&region);
    drop(core);
    let heap = before - live(&region);
    let per_peer = (heap - empty_heap) as f64 / n as f64;
    eprintln!(
        "N={n}: formed in {formed:?} (virtual), join converged in {took:?}; node 0 viewed \
         {members} memberships, heap {heap} B; simulated in {:?}",
        wall.elapsed()
    );
    format!(
        "| {n} | {idle_per_node:.0} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} |",
        idle_per_node / (n - 1) as f64,
        idle_cpu * 1e6 / n as f64,
        join_bytes / 1024.0,
        join_cpu * 1e3,
        per_peer / 1024.0,
    )
}

#[test]
#[ignore = "a measurement: run explicitly, in a release build"]
fn a_full_mesh_measured_at_fifty_to_five_hundred_nodes() {
    let sizes: Vec<usize> = std::env::var("SCALE_N")
        .unwrap_or_else(|_| "50,100,200,500".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("SCALE_N: sizes separated by commas")
        })
        .collect();
    let mut table = String::from(
        "| N | idle B/s per node | idle B/s per peer | idle core µs/s per node | \
         join: KiB sent (all nodes) | join: core CPU ms (all nodes) | heap KiB per peer |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for n in sizes {
        let row = measure(n);
        eprintln!("{row}");
        table.push_str(&row);
        table.push('\n');
    }
    eprintln!("\n{table}");
}
