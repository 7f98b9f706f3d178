//! `groupmesh node`: join a real mesh and print what happens until stopped.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_lite::StreamExt;
use groupmesh_smol::{Node, NodeConfig};
use serde_json::json;

use crate::output::Printer;
use crate::NodeArgs;

enum Item {
    Group(String, groupmesh_smol::GroupChange),
    Node(groupmesh_smol::NodeEvent),
    Stop(&'static str),
}

pub(crate) fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut secret = std::fs::read(path)
        .map_err(|e| format!("cannot read the secret file {}: {e}", path.display()))?;
    if secret.last() == Some(&b'\n') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(format!(
            "the secret file {} is empty; put the mesh's shared secret in it \
             (e.g. `head -c 32 /dev/urandom | base64 > {}`)",
            path.display(),
            path.display()
        ));
    }
    Ok(secret)
}

pub(crate) async fn run(args: NodeArgs) -> Result<(), String> {
    let secret = read_secret(&args.secret_file)?;
    let mut cfg = NodeConfig::new(args.id.clone(), secret);
    cfg.bind = args.binds;
    cfg.seeds = args.seeds;
    cfg.timeouts.ping_interval = Duration::from_millis(args.ping_ms);
    cfg.timeouts.keepalive_timeout = Duration::from_millis(args.keepalive_ms);
    let out = Printer::new(args.json);
    let node = Node::start(cfg).await.map_err(|e| e.to_string())?;
    let addrs: Vec<String> = node.local_addrs().iter().map(ToString::to_string).collect();
    out.line(
        &format!(
            "node {} listening on {} (incarnation {}, pid {})",
            node.id(),
            addrs.join(", "),
            node.incarnation(),
            std::process::id()
        ),
        json!({"event": "started", "node": node.id().as_str(), "addrs": addrs,
               "incarnation": node.incarnation(), "pid": std::process::id()}),
    );

    let (tx, rx) = smol::channel::unbounded::<Item>();
    let watched: BTreeSet<String> = args.register.iter().chain(&args.monitor).cloned().collect();
    let mut tasks = Vec::new();
    for group in watched {
        let mut monitor = node
            .monitor(&group)
            .map_err(|e| format!("--monitor {group:?}: {e}"))?;
        let tx = tx.clone();
        tasks.push(smol::spawn(async move {
            while let Some(change) = monitor.next().await {
                if tx.send(Item::Group(group.clone(), change)).await.is_err() {
                    break;
                }
            }
        }));
    }
    let mut events = node.events();
    let etx = tx.clone();
    tasks.push(smol::spawn(async move {
        while let Some(e) = events.next().await {
            if etx.send(Item::Node(e)).await.is_err() {
                break;
            }
        }
    }));
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])
            .map_err(|e| format!("cannot watch for signals: {e}"))?;
    tasks.push(smol::spawn(async move {
        if let Some(Ok(sig)) = signals.next().await {
            let name = if sig == async_signal::Signal::Int {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            let _ = tx.send(Item::Stop(name)).await;
        }
    }));

    let mut registrations = Vec::new();
    for group in &args.register {
        let port = node.open_port();
        let reg = node
            .register(group, &port)
            .map_err(|e| format!("--register {group:?}: {e}"))?;
        out.line(
            &format!("registered {} in group {group:?}", port.id()),
            json!({"event": "registered", "group": group, "port": port.id().to_string()}),
        );
        registrations.push((port, reg));
    }

    while let Ok(item) = rx.recv().await {
        match item {
            Item::Group(group, change) => out.group(&group, &change),
            Item::Node(e) => out.node_event(&e),
            Item::Stop(sig) => {
                out.stopping(sig);
                break;
            }
        }
    }
    drop(registrations);
    node.shutdown().await;
    out.line("stopped", json!({"event": "stopped"}));
    Ok(())
}
