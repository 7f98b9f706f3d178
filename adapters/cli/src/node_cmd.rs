//! `groupmesh node`: join a real mesh and print what happens until stopped
//! (by a signal, or when the reader of its output goes away).

use std::collections::BTreeSet;

use futures_lite::StreamExt;
use groupmesh_driver::Node;

use crate::rt::Signals;
use serde_json::json;

use crate::args;
use crate::messaging::node_config;
use crate::order::Order;
use crate::output::{self, Printer};
use crate::NodeArgs;

enum Item {
    Group(String, groupmesh_driver::GroupChange),
    Node(groupmesh_driver::NodeEvent),
    Stop(&'static str),
}

pub(crate) async fn run<R: Signals>(args: NodeArgs) -> Result<(), String> {
    // Every flag was checked by now but these, which need each other or a file.
    let mut cfg = node_config(
        Some(&args.id),
        "node",
        &args.secret_file,
        args.ping_ms,
        args.keepalive_ms,
    )?;
    cfg.bind = args.binds;
    let meta = match (&args.meta, &args.meta_file) {
        (Some(meta), _) => meta.0.clone(),
        (None, Some(file)) => args::read_meta_file(file)?.0,
        (None, None) => Vec::new(),
    };
    let max_meta = cfg.limits.max_meta;
    if meta.len() > max_meta {
        return Err(format!(
            "--meta: {} bytes of compact JSON, more than the {max_meta} a member may carry",
            meta.len()
        ));
    }
    // Seeds are added once our registrations are made: a connection that
    // authenticates first would carry a snapshot without them, and a restart
    // would show as two deltas (the old ports removed, then the new added).
    let out = Printer::new(args.json);
    let node = Node::<R>::start(cfg).await.map_err(|e| e.to_string())?;
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

    let (tx, rx) = async_channel::unbounded::<Item>();
    let mut tasks = Vec::new();
    let mut events = node.events();
    let etx = tx.clone();
    tasks.push(crate::rt::spawn::<R, _>(async move {
        while let Some(e) = events.next().await {
            if etx.send(Item::Node(e)).await.is_err() {
                break;
            }
        }
    }));

    // Registered before the monitors start, so that a monitor's first view
    // already holds our own ports (as the `registered` lines said).
    let mut registrations = Vec::new();
    for group in &args.register {
        let port = node.open_port();
        let reg = node
            .register_with_meta_bytes(group, &port, &meta)
            .map_err(|e| format!("--register {group:?}: {e}"))?;
        out.line(
            &format!("registered {} in group {group:?}", port.id()),
            json!({
                "event": "registered",
                "group": group,
                "port": output::port(port.id()),
                "meta": output::meta_json(&meta),
            }),
        );
        registrations.push((port, reg));
    }
    for seed in args.seeds {
        node.add_seed(seed);
    }

    let watched: BTreeSet<String> = args.register.iter().chain(&args.monitor).cloned().collect();
    for group in watched {
        let flag = if args.register.contains(&group) {
            "--register"
        } else {
            "--monitor"
        };
        let mut monitor = node
            .monitor(&group)
            .map_err(|e| format!("{flag} {group:?}: {e}"))?;
        let tx = tx.clone();
        tasks.push(crate::rt::spawn::<R, _>(async move {
            while let Some(change) = monitor.next().await {
                if tx.send(Item::Group(group.clone(), change)).await.is_err() {
                    break;
                }
            }
        }));
    }
    let signal = R::stop_signal()?;
    tasks.push(crate::rt::spawn::<R, _>(async move {
        if let Some(name) = signal.await {
            let _ = tx.send(Item::Stop(name)).await;
        }
    }));

    let mut order = Order::new(node.id().clone());
    while !out.closed() {
        let Ok(item) = rx.recv().await else { break };
        match item {
            Item::Group(group, change) => order.group(&out, &group, &change),
            Item::Node(e) => order.notice(&out, &e),
            Item::Stop(sig) => {
                out.stopping(sig);
                break;
            }
        }
    }
    // A closed stdout ends the node as a signal does, without a word.
    drop(registrations);
    node.shutdown().await;
    out.line("stopped", json!({"event": "stopped"}));
    Ok(())
}
