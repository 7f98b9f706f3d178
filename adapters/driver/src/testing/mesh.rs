//! The mesh: convergence, crashes, restarts, graceful shutdown.

use std::time::Duration;

use futures_lite::StreamExt;
use groupmesh_core::{CloseReason, RemoteReason};

use super::{addr, check_delta_rules, config, drain, eventually, start};
use crate::{NodeEvent, Runtime};

pub async fn five_nodes_converge_until_every_node_lists_every_registration<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let mut nodes = vec![a];
    for name in ["b", "c", "d", "e"] {
        let seed = addr(&nodes[0]);
        nodes.push(start::<R>(config(name, &[seed])).await);
    }
    let ports: Vec<_> = nodes.iter().map(|n| n.open_port()).collect();
    let _regs: Vec<_> = nodes
        .iter()
        .zip(&ports)
        .map(|(n, p)| n.register("everyone", p).expect("a valid group"))
        .collect();
    let mut all: Vec<_> = ports.iter().map(|p| p.id().clone()).collect();
    all.sort();
    eventually::<R>(
        "every node lists all five ports",
        Duration::from_secs(5),
        || {
            nodes
                .iter()
                .all(|n| n.members("everyone").as_ref() == Some(&all))
        },
    )
    .await;
    eventually::<R>("the mesh is full", Duration::from_secs(5), || {
        nodes.iter().all(|n| n.connected_nodes().len() == 4)
    })
    .await;
    for n in &nodes {
        n.shutdown().await;
    }
}

pub async fn a_killed_node_loses_its_members_on_the_other_nodes<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let c = start::<R>(config("c", &[addr(&a)])).await;
    let pa = a.open_port();
    let pb = b.open_port();
    let _ra = a.register("g", &pa).expect("a valid group");
    let _rb = b.register("g", &pb).expect("a valid group");
    let both = {
        let mut v = vec![pa.id().clone(), pb.id().clone()];
        v.sort();
        v
    };
    eventually::<R>("c lists a and b", Duration::from_secs(5), || {
        c.members("g").as_ref() == Some(&both)
    })
    .await;

    a.kill();
    let only_b = Some(vec![pb.id().clone()]);
    eventually::<R>(
        "b and c forget the killed node's port",
        Duration::from_secs(3),
        || b.members("g") == only_b && c.members("g") == only_b,
    )
    .await;
    assert!(!b.connected_nodes().iter().any(|n| n.as_str() == "a"));
    b.shutdown().await;
    c.shutdown().await;
}

pub async fn a_restarted_node_leaves_no_stale_ports<R: Runtime + Default>() {
    let b = start::<R>(config("b", &[])).await;
    let mut watch = b.monitor("g").expect("a valid group");
    let a1 = start::<R>(config("a", &[addr(&b)])).await;
    let p1 = a1.open_port();
    let _r1 = a1.register("g", &p1).expect("a valid group");
    eventually::<R>(
        "b lists the first incarnation's port",
        Duration::from_secs(5),
        || b.members("g") == Some(vec![p1.id().clone()]),
    )
    .await;

    a1.kill();
    let a2 = start::<R>(config("a", &[addr(&b)])).await;
    assert_ne!(a1.incarnation(), a2.incarnation());
    let p2 = a2.open_port();
    let _r2 = a2.register("g", &p2).expect("a valid group");
    assert_eq!(
        p1.id().number(),
        p2.id().number(),
        "same number, new incarnation"
    );
    assert_ne!(p1.id(), p2.id());
    eventually::<R>(
        "b lists only the new incarnation's port",
        Duration::from_secs(5),
        || b.members("g") == Some(vec![p2.id().clone()]),
    )
    .await;

    let changes = drain::<R, _>(&mut watch, Duration::from_millis(300)).await;
    let view = check_delta_rules(&changes);
    assert_eq!(view.into_iter().collect::<Vec<_>>(), vec![p2.id().clone()]);
    let seen_new = changes
        .iter()
        .position(|c| c.members.contains(p2.id()))
        .expect("a change lists the new port");
    assert!(
        changes[seen_new..]
            .iter()
            .all(|c| !c.members.contains(p1.id())),
        "the old incarnation's port came back: {changes:?}"
    );
    a2.shutdown().await;
    b.shutdown().await;
}

pub async fn a_graceful_shutdown_removes_members_at_once<R: Runtime + Default>() {
    // A keepalive far longer than the wait below: only the shutdown can explain it.
    let slow = |name, seeds: &[_]| {
        let mut cfg = config(name, seeds);
        cfg.timeouts.ping_interval = Duration::from_secs(2);
        cfg.timeouts.keepalive_timeout = Duration::from_secs(8);
        cfg
    };
    let a = start::<R>(slow("a", &[])).await;
    let b = start::<R>(slow("b", &[addr(&a)])).await;
    let mut events = b.events();
    let pa = a.open_port();
    let _ra = a.register("g", &pa).expect("a valid group");
    eventually::<R>("b lists a's port", Duration::from_secs(5), || {
        b.members("g").is_some()
    })
    .await;

    let started = std::time::Instant::now();
    a.shutdown().await;
    eventually::<R>("b drops a's port", Duration::from_millis(1000), || {
        b.members("g").is_none()
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        a.register("g", &pa).is_err(),
        "a shut down node refuses registrations"
    );

    let mut down = None;
    while let Some(e) = super::next_within::<R, _>(&mut events, Duration::from_secs(1)).await {
        if let NodeEvent::NodeDown { node, reason, .. } = e {
            assert_eq!(node.as_str(), "a");
            down = Some(reason);
            break;
        }
    }
    assert_eq!(
        down,
        Some(CloseReason::Remote(RemoteReason::Shutdown)),
        "b is told that a shut down"
    );
    b.shutdown().await;
    // What happened before the stop is still delivered, then the stream ends.
    while events.next().await.is_some() {}
}
