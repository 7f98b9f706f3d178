//! The README's quick start: join a mesh, register, watch, message, leave.
//!
//! Run two of these on one machine:
//! `cargo run -p groupmesh-smol --example smol_quick_start -- w1 127.0.0.1:7000`
//! `cargo run -p groupmesh-smol --example smol_quick_start -- w2 127.0.0.1:7001 127.0.0.1:7000`

use std::time::Duration;

use groupmesh_smol::{Node, NodeConfig};
use smol::stream::StreamExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_else(|| "worker-1".into());
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:7000".into());
    let seeds: Vec<String> = args.collect();

    smol::block_on(async {
        let mut cfg = NodeConfig::new(id, b"shared secret");
        cfg.bind.push(bind.parse()?);
        for seed in &seeds {
            cfg.seeds.push(seed.parse()?); // any node already in the mesh
        }
        let node = Node::start(cfg).await?; // typed errors: address in use, ...

        let mut port = node.open_port(); // a port is a mailbox
        let _reg = node.register("workers", &port)?; // listed everywhere until dropped
        let mut workers = node.monitor("workers")?; // Stream of (members, added, removed)
        let first = workers.next().await; // (members, members, []): us at least
        println!("first: {first:?}");
        smol::Timer::after(Duration::from_secs(1)).await; // let the mesh form
        let members = node.members("workers").unwrap_or_default(); // local, sorted

        for peer in members.iter().filter(|p| *p != port.id()) {
            port.send(peer, b"hello").await?; // at most once, in order per sender->port
            let _lost = node.monitor_port(peer)?; // a future: closed, node lost or restarted
        }
        if members.len() > 1 {
            if let Some(msg) = port.recv().await {
                println!("{:?} says {:?}", msg.from, msg.payload);
            }
        }
        node.shutdown().await; // peers drop our members at once
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
