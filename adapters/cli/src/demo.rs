//! `groupmesh demo`: a local mesh on loopback, in one process, narrated.
//!
//! Starts the nodes (all seeded with the first), registers ports, times the
//! mesh becoming full and the group converging, then kills one node without
//! warning and times its members vanishing everywhere, then lets another
//! leave gracefully. Exits non-zero if any step takes longer than 10 s.

use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use groupmesh_smol::{Node, NodeConfig, Port, Registration};

use crate::output::{ms, ports};
use crate::DemoArgs;

const GROUP: &str = "demo.workers";
const SECRET: &[u8] = b"groupmesh demo secret";
const STEP_LIMIT: Duration = Duration::from_secs(10);

struct Member {
    node: Node,
    _ports: Vec<(Port, Registration)>,
}

/// Waits until `done` holds, checking every millisecond; returns the time taken.
async fn until(what: &str, mut done: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > STEP_LIMIT {
            return Err(format!("{what}: not reached within {STEP_LIMIT:?}"));
        }
        smol::Timer::after(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

fn step(text: &str, took: Duration) {
    println!("  ✔ {text:<58} {:>10}", ms(took));
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), String> {
    let n = usize::from(args.nodes);
    let p = usize::from(args.ports);
    let total = Instant::now();
    println!(
        "groupmesh demo: {n} nodes on 127.0.0.1, each registering {p} port(s) in group {GROUP:?}\n"
    );

    // 1. Start the nodes; every node but the first joins through the first.
    let mut nodes: Vec<Member> = Vec::new();
    let mut seed = None;
    for i in 0..n {
        let mut cfg = NodeConfig::new(format!("node-{i}"), SECRET);
        cfg.bind.push(([127, 0, 0, 1], 0).into());
        cfg.seeds.extend(seed);
        let node = Node::start(cfg)
            .await
            .map_err(|e| format!("starting node-{i}: {e}"))?;
        let addr = node.local_addrs()[0];
        seed.get_or_insert(addr);
        let mut ports_held = Vec::new();
        for _ in 0..p {
            let port = node.open_port();
            let reg = node.register(GROUP, &port).map_err(|e| e.to_string())?;
            ports_held.push((port, reg));
        }
        println!("  started {} on {addr}", node.id());
        nodes.push(Member {
            node,
            _ports: ports_held,
        });
    }
    let started = total.elapsed();
    println!();

    // 2. The mesh forms and the group converges.
    let full = until("full mesh", || {
        nodes
            .iter()
            .all(|m| m.node.connected_nodes().len() == n - 1)
    })
    .await?;
    step(
        &format!("mesh full: every node connected to the {} others", n - 1),
        started + full,
    );
    let conv = until("group convergence", || {
        nodes
            .iter()
            .all(|m| m.node.members(GROUP).map(|v| v.len()) == Some(n * p))
    })
    .await?;
    step(
        &format!("group converged: every node lists all {} members", n * p),
        started + full + conv,
    );
    println!(
        "\n  {:<8} {:<22} {:>9} {:>9}",
        "node", "address", "peers", "members"
    );
    for m in &nodes {
        println!(
            "  {:<8} {:<22} {:>9} {:>9}",
            m.node.id().as_str(),
            m.node.local_addrs()[0].to_string(),
            m.node.connected_nodes().len(),
            m.node.members(GROUP).map_or(0, |v| v.len())
        );
    }

    // 3. Watch the group from node-0, then kill the last node without warning.
    let mut monitor = nodes[0].node.monitor(GROUP).map_err(|e| e.to_string())?;
    let first = monitor.next().await.ok_or("monitor ended")?;
    println!(
        "\n  node-0 monitors {GROUP:?}: first event lists {} members",
        first.members.len()
    );
    let victim = nodes.pop().ok_or("no node to kill")?;
    let victim_id = victim.node.id().clone();
    println!("  killing {victim_id} (no goodbye: its sockets just close)");
    let killed_at = Instant::now();
    victim.node.kill();
    drop(victim);
    let lost = until("members of the killed node vanish", || {
        nodes
            .iter()
            .all(|m| m.node.members(GROUP).map(|v| v.len()) == Some((n - 1) * p))
    })
    .await?;
    step(
        &format!("{victim_id}'s members gone from every survivor"),
        lost,
    );
    let delta = monitor.next().await.ok_or("monitor ended")?;
    println!(
        "    node-0's monitor saw one change: -{} [{}], {} left",
        delta.removed.len(),
        ports(&delta.removed),
        delta.members.len()
    );
    let _ = killed_at;

    // 4. Another node leaves gracefully: peers are told at once.
    if nodes.len() > 2 {
        let leaver = nodes.pop().ok_or("no node to stop")?;
        let id = leaver.node.id().clone();
        println!("  {id} shuts down gracefully");
        let t = Instant::now();
        leaver.node.shutdown().await;
        drop(leaver);
        let gone = until("members of the stopped node vanish", || {
            nodes
                .iter()
                .all(|m| m.node.members(GROUP).map(|v| v.len()) == Some((n - 2) * p))
        })
        .await?;
        step(
            &format!("{id}'s members gone from every survivor"),
            t.elapsed().max(gone),
        );
    }

    for m in &nodes {
        m.node.shutdown().await;
    }
    println!("\ndemo finished in {}", ms(total.elapsed()));
    Ok(())
}
