//! Heap bytes per (group, port) entry in a node's view, measured with a
//! counting allocator: a node learns 100,000 remote memberships (10 peers ×
//! 10 groups × 1,000 ports); its heap is what dropping it gives back.
//!
//! Run: `cargo bench -p groupmesh-core --bench memory`.

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[path = "common/mod.rs"]
#[allow(dead_code)] // each bench uses part of the helper
mod common;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn live(region: &Region<'_, std::alloc::System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

fn main() {
    const PEERS: usize = 10;
    const GROUPS: usize = 10;
    const PORTS: usize = 1000;
    let region = Region::new(GLOBAL);
    let empty = common::fresh_a();
    let before = live(&region);
    drop(empty);
    let empty_node = before - live(&region);

    let mut a = common::fresh_a();
    let mut senders = Vec::new();
    for i in 0..PEERS {
        let mut b = common::node(&format!("peer-{i:02}"), 10 + i as u8);
        for g in 0..GROUPS {
            for _ in 0..PORTS {
                let p = b.open_port();
                b.register(&format!("group-{g}"), &p).expect("valid");
            }
        }
        senders.push(common::connect_to(&mut a, b));
        common::drain(&mut a);
    }
    let entries = a.stats().members;
    assert_eq!(entries, PEERS * GROUPS * PORTS);
    let with_a = live(&region);
    drop(a);
    let node = with_a - live(&region);
    println!("empty node: {empty_node} heap bytes");
    println!(
        "node viewing {entries} (group, port) entries from {PEERS} peers: {node} heap bytes, \
         {:.1} bytes per entry",
        (node - empty_node) as f64 / entries as f64
    );
    drop(senders);
}
