//! `groupmesh demo`: a local mesh on loopback, in one process, narrated.
//!
//! Starts the nodes (all seeded with the first), registers ports, times the
//! mesh becoming full and the group converging, then has node-0 send a
//! request to every member and times the replies, then kills one node
//! without warning and times its members vanishing everywhere (and a port
//! monitor firing), then lets another leave gracefully. Exits non-zero if
//! any step takes longer than 10 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_lite::{future, StreamExt};
use groupmesh_driver::{Node, NodeConfig, Port, Registration};

use crate::rt::Rt;

use crate::output::{ms, ports};
use crate::DemoArgs;

/// Prints a line; a closed stdout (the reader gone) ends the demo quietly.
macro_rules! println {
    () => {
        println!("")
    };
    ($($arg:tt)*) => {
        if !crate::output::write_line(&format!($($arg)*)) {
            std::process::exit(0);
        }
    };
}

const GROUP: &str = "demo.workers";
const SECRET: &[u8] = b"groupmesh demo secret";
const STEP_LIMIT: Duration = Duration::from_secs(10);

struct Member<R: Rt> {
    node: Node<R>,
    _regs: Vec<Registration>,
    /// One task per port, answering every request (ends with the node).
    _responders: Vec<crate::rt::Task<()>>,
}

/// Answers every message that names its sender with the same bytes.
fn respond<R: Rt>(mut port: Port) -> crate::rt::Task<()> {
    crate::rt::spawn::<R, _>(async move {
        while let Some(m) = port.recv().await {
            if let Some(from) = &m.from {
                let _ = port.send(from, &m.payload).await;
            }
        }
    })
}

/// node-0 sends a request to every member from one port; returns the
/// round-trip times of the replies.
async fn ask_everyone<R: Rt>(node: &Node<R>) -> Result<Vec<Duration>, String> {
    let members = node.members(GROUP).unwrap_or_default();
    let mut client = node.open_port();
    let mut asked = HashMap::new();
    for (i, member) in members.iter().enumerate() {
        asked.insert(member.clone(), Instant::now());
        client
            .send(member, format!("request {i}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut rtts = Vec::new();
    let replies = async {
        while rtts.len() < members.len() {
            let Some(m) = client.recv().await else { break };
            if let Some(sent) = m.from.as_ref().and_then(|f| asked.remove(f)) {
                rtts.push(sent.elapsed());
            }
        }
    };
    future::or(replies, async {
        crate::rt::sleep::<R>(STEP_LIMIT).await;
    })
    .await;
    if rtts.len() < members.len() {
        return Err(format!(
            "only {} of {} members replied within {STEP_LIMIT:?}",
            rtts.len(),
            members.len()
        ));
    }
    rtts.sort();
    Ok(rtts)
}

/// Waits until `done` holds, checking every millisecond; returns the time taken.
async fn until<R: Rt>(what: &str, mut done: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > STEP_LIMIT {
            return Err(format!("{what}: not reached within {STEP_LIMIT:?}"));
        }
        crate::rt::sleep::<R>(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

fn step(text: &str, took: Duration) {
    println!("  ✔ {text:<58} {:>10}", ms(took));
}

pub(crate) async fn run<R: Rt>(args: DemoArgs) -> Result<(), String> {
    let n = usize::from(args.nodes);
    let p = usize::from(args.ports);
    let total = Instant::now();
    println!(
        "groupmesh demo: {n} nodes on 127.0.0.1, each registering {p} port(s) in group {GROUP:?}\n"
    );

    // 1. Start the nodes; every node but the first joins through the first.
    let mut nodes: Vec<Member<R>> = Vec::new();
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
        let (mut regs, mut responders) = (Vec::new(), Vec::new());
        for _ in 0..p {
            let port = node.open_port();
            regs.push(node.register(GROUP, &port).map_err(|e| e.to_string())?);
            responders.push(respond::<R>(port));
        }
        println!("  started {} on {addr}", node.id());
        nodes.push(Member {
            node,
            _regs: regs,
            _responders: responders,
        });
    }
    let started = total.elapsed();
    println!();

    // 2. The mesh forms and the group converges.
    let full = until::<R>("full mesh", || {
        nodes
            .iter()
            .all(|m| m.node.connected_nodes().len() == n - 1)
    })
    .await?;
    step(
        &format!("mesh full: every node connected to the {} others", n - 1),
        started + full,
    );
    let conv = until::<R>("group convergence", || {
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

    // 3. Request and response: node-0 asks every member, each answers.
    let asked = Instant::now();
    let rtts = ask_everyone::<R>(&nodes[0].node).await?;
    println!();
    step(
        &format!("node-0 asked all {} members, all replied", rtts.len()),
        asked.elapsed(),
    );
    let pick = |q: usize| {
        rtts.get((rtts.len() - 1) * q / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "    round trip: min {}, median {}, max {}",
        ms(pick(0)),
        ms(pick(50)),
        ms(pick(100))
    );

    // 4. Watch the group from node-0, then kill the last node without warning.
    let mut monitor = nodes[0].node.monitor(GROUP).map_err(|e| e.to_string())?;
    let first = monitor.next().await.ok_or("monitor ended")?;
    println!(
        "\n  node-0 monitors {GROUP:?}: first event lists {} members",
        first.members.len()
    );
    let victim = nodes.pop().ok_or("no node to kill")?;
    let victim_id = victim.node.id().clone();
    let watched = first
        .members
        .iter()
        .find(|p| p.node() == &victim_id)
        .ok_or("the victim has no member")?
        .clone();
    let port_monitor = nodes[0]
        .node
        .monitor_port(&watched)
        .map_err(|e| e.to_string())?;
    println!("  node-0 monitors port {watched}");
    println!("  killing {victim_id} (no goodbye: its sockets just close)");
    let killed_at = Instant::now();
    victim.node.kill();
    drop(victim);
    let lost = until::<R>("members of the killed node vanish", || {
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
    let why = delta
        .reasons
        .first()
        .map_or_else(String::new, |r| format!(" ({r})"));
    println!(
        "    node-0's monitor saw one change: -{} [{}]{why}, {} left",
        delta.removed.len(),
        ports(&delta.removed),
        delta.members.len()
    );
    let reason = future::or(port_monitor, async {
        crate::rt::sleep::<R>(STEP_LIMIT).await;
        None
    })
    .await
    .ok_or("the port monitor did not fire")?;
    println!(
        "    node-0's port monitor fired after {}: {watched} is gone ({reason})",
        ms(killed_at.elapsed())
    );

    // 5. Another node leaves gracefully: peers are told at once.
    if nodes.len() > 2 {
        let leaver = nodes.pop().ok_or("no node to stop")?;
        let id = leaver.node.id().clone();
        println!("  {id} shuts down gracefully");
        let t = Instant::now();
        leaver.node.shutdown().await;
        drop(leaver);
        let gone = until::<R>("members of the stopped node vanish", || {
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
