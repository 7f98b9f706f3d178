//! Groups: registrations, port drops and monitors, seen from other nodes.

use std::time::Duration;

use super::{
    addr, check_delta_rules, config, drain, eventually, next_within, small_buffer_config, start,
};
use crate::Runtime;

pub async fn registrations_ending_and_ports_dropping_propagate_to_every_node<
    R: Runtime + Default,
>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let c = start::<R>(config("c", &[addr(&a)])).await;
    let others = [&b, &c];
    let wait = Duration::from_secs(5);

    let port = a.open_port();
    let me = Some(vec![port.id().clone()]);
    let in_one = a.register("one", &port).expect("a valid group");
    let in_two = a.register("two", &port).expect("a valid group");
    let twice_1 = a.register("twice", &port).expect("a valid group");
    let twice_2 = a.register("twice", &port).expect("a valid group");
    eventually::<R>("b and c list the port in every group", wait, || {
        others
            .iter()
            .all(|n| n.members("one") == me && n.members("two") == me && n.members("twice") == me)
    })
    .await;
    assert_eq!(a.groups(), vec!["one", "twice", "two"]);

    in_one.end();
    eventually::<R>("ending a registration removes the port", wait, || {
        others.iter().all(|n| n.members("one").is_none())
    })
    .await;

    drop(twice_1);
    // Give a wrong removal time to show, then check the port is still listed.
    super::sleep::<R>(Duration::from_millis(200)).await;
    for n in others {
        assert_eq!(
            n.members("twice"),
            me,
            "a port stays until its last registration ends"
        );
    }
    drop(twice_2);
    eventually::<R>(
        "the last registration ending removes the port",
        wait,
        || others.iter().all(|n| n.members("twice").is_none()),
    )
    .await;

    assert_eq!(b.members("two"), me);
    drop(port);
    eventually::<R>("dropping the port removes it everywhere", wait, || {
        others.iter().all(|n| n.members("two").is_none()) && a.members("two").is_none()
    })
    .await;
    // Ending a registration of a destroyed port is harmless.
    in_two.end();
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

pub async fn monitors_report_every_change_by_the_delta_rules<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let c = start::<R>(config("c", &[addr(&a)])).await;
    let mut early = c.monitor("g").expect("a valid group");

    let pa1 = a.open_port();
    let pa2 = a.open_port();
    let pb1 = b.open_port();
    let ra1 = a.register("g", &pa1).expect("a valid group");
    let first = next_within::<R, _>(&mut early, Duration::from_secs(5))
        .await
        .expect("a join reaches the monitor");
    assert_eq!(first.members, vec![pa1.id().clone()]);
    assert_eq!(first.added, first.members);
    assert!(first.removed.is_empty());

    let rb1 = b.register("g", &pb1).expect("a valid group");
    let ra2 = a.register("g", &pa2).expect("a valid group");
    super::sleep::<R>(Duration::from_millis(50)).await;
    drop(ra1);
    let pb2 = b.open_port();
    let _rb2 = b.register("g", &pb2).expect("a valid group");
    drop(pa2); // ends ra2 with the port
    drop(ra2);
    drop(rb1);

    let expected = Some(vec![pb2.id().clone()]);
    eventually::<R>(
        "c sees the final membership",
        Duration::from_secs(5),
        || c.members("g") == expected,
    )
    .await;
    // A monitor started now gets the group as its first change at once.
    let mut late = c.monitor("g").expect("a valid group");
    let now = next_within::<R, _>(&mut late, Duration::from_secs(1))
        .await
        .expect("a non-empty group's first change comes at once");
    assert_eq!(
        (now.members.clone(), now.added.clone()),
        (vec![pb2.id().clone()], vec![pb2.id().clone()])
    );
    assert!(now.removed.is_empty());

    let mut changes = vec![first];
    changes.extend(drain::<R, _>(&mut early, Duration::from_millis(300)).await);
    let view = check_delta_rules(&changes);
    assert_eq!(Some(view.into_iter().collect()), c.members("g"));
    assert_eq!(check_delta_rules(&[now]).len(), 1);

    // A dropped monitor ends; the others keep working.
    drop(early);
    drop(pb2);
    let gone = next_within::<R, _>(&mut late, Duration::from_secs(5))
        .await
        .expect("the last member leaving is a change");
    assert!(gone.members.is_empty());
    assert_eq!(Some(gone.removed), expected);
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

pub async fn a_monitor_on_an_empty_group_stays_silent_until_a_join<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let mut watch = b.monitor("quiet").expect("a valid group");
    let pa = a.open_port();
    let _other = a.register("other", &pa).expect("a valid group");
    eventually::<R>("b lists the other group", Duration::from_secs(5), || {
        b.members("other").is_some()
    })
    .await;
    assert!(
        next_within::<R, _>(&mut watch, Duration::from_millis(300))
            .await
            .is_none(),
        "no first change for an empty group"
    );
    // A join and leave before the reader looks may merge into nothing, but a
    // join that stays must show.
    let _reg = a.register("quiet", &pa).expect("a valid group");
    let first = next_within::<R, _>(&mut watch, Duration::from_secs(5))
        .await
        .expect("the join shows");
    assert_eq!(first.members, vec![pa.id().clone()]);
    assert_eq!(first.added, first.members);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_slow_monitor_reader_gets_changes_merged_not_queued<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let mut watch = a.monitor("g").expect("a valid group");
    let ports: Vec<_> = (0..100).map(|_| a.open_port()).collect();
    let mut regs: Vec<_> = ports
        .iter()
        .map(|p| a.register("g", p).expect("a valid group"))
        .collect();
    // 100 joins and 50 leaves happened before the reader looked: one change.
    drop(regs.split_off(50));
    let mut kept: Vec<_> = ports.iter().take(50).map(|p| p.id().clone()).collect();
    kept.sort();
    let changes = drain::<R, _>(&mut watch, Duration::from_millis(200)).await;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].members, kept);
    check_delta_rules(&changes);
    drop(regs);
    a.shutdown().await;
}

pub async fn a_snapshot_forty_times_the_send_buffer_streams_to_a_fresh_peer<
    R: Runtime + Default,
>() {
    // A port in 200 groups of 200-byte names: a 40 KiB snapshot through a
    // 1 KiB send buffer. It goes out a chunk (256 bytes here) at a time,
    // each once the connection drained.
    let a = start::<R>(small_buffer_config("a")).await;
    let port = a.open_port();
    let names: Vec<String> = (0..200).map(|i| format!("{i:0>200}")).collect();
    let _regs: Vec<_> = names
        .iter()
        .map(|g| a.register(g, &port).expect("a valid group"))
        .collect();
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let me = Some(vec![port.id().clone()]);
    eventually::<R>(
        "b lists a's port in every group",
        Duration::from_secs(5),
        || b.groups().len() == names.len() && names.iter().all(|g| b.members(g) == me),
    )
    .await;
    let stats = a.stats();
    assert!(stats.closed.is_empty(), "no connection closed: {stats:?}");
    assert_eq!(stats.snapshots_sending, 0);
    assert!(
        stats.largest_transmit <= 512 && stats.send_buffer_peak <= 1024,
        "a chunk at a time: {stats:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn every_node_picks_the_same_member_for_a_key<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let c = start::<R>(config("c", &[addr(&a)])).await;
    let nodes = [a, b, c];
    let ports: Vec<_> = nodes
        .iter()
        .flat_map(|n| [n.open_port(), n.open_port()])
        .collect();
    let _regs: Vec<_> = ports
        .iter()
        .zip(nodes.iter().flat_map(|n| [n, n]))
        .map(|(p, n)| n.register("shards", p).expect("a valid group"))
        .collect();
    eventually::<R>("every node lists all six", Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| n.members("shards").is_some_and(|m| m.len() == 6))
    })
    .await;
    let mut owners = std::collections::BTreeSet::new();
    for k in 0..200u32 {
        let key = k.to_le_bytes();
        let picks: Vec<_> = nodes
            .iter()
            .map(|n| n.pick_by_key("shards", &key))
            .collect();
        assert!(
            picks.iter().all(|p| p.is_some() && *p == picks[0]),
            "key {k}: {picks:?}"
        );
        owners.extend(picks[0].clone());
    }
    assert_eq!(owners.len(), 6, "200 keys reach every member");
    assert_eq!(nodes[0].pick_by_key("nobody", b"k"), None);
    for n in &nodes {
        n.shutdown().await;
    }
}
