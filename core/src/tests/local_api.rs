//! The local API: registrations, ports, monitors, batching of what goes out.

use super::{new_node, RawPeer};
use crate::error::ApiError;
use crate::event::Event;
use crate::ids::{NodeId, PortId};
use crate::wire::Frame;

fn group_events(node: &mut crate::Node) -> alloc::vec::Vec<crate::GroupDelta> {
    core::iter::from_fn(|| node.poll_event())
        .filter_map(|e| match e {
            Event::Group(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn only_live_local_ports_can_be_registered() {
    let mut n = new_node("n");
    let remote = PortId::new(NodeId::new("other").expect("id"), 1, 1);
    assert_eq!(n.register("g", &remote), Err(ApiError::NotLocalPort));
    let p = n.open_port();
    n.close_port(&p).expect("live");
    assert_eq!(n.register("g", &p), Err(ApiError::NotLocalPort));
    assert_eq!(n.members("g"), None, "nothing changed");
}

#[test]
fn group_names_must_be_1_to_255_bytes() {
    let mut n = new_node("n");
    let p = n.open_port();
    assert_eq!(n.register("", &p), Err(ApiError::BadGroupName { len: 0 }));
    let long = "x".repeat(256);
    assert_eq!(
        n.register(&long, &p),
        Err(ApiError::BadGroupName { len: 256 })
    );
    assert!(n.register(&long[..255], &p).is_ok());
    assert!(n.monitor(&long).is_err());
}

#[test]
fn a_port_registered_twice_stays_until_its_last_registration_ends() {
    let mut n = new_node("n");
    let p = n.open_port();
    let r1 = n.register("g", &p).expect("ok");
    let r2 = n.register("g", &p).expect("ok");
    assert_eq!(n.members("g"), Some(&[p.clone()][..]));
    n.unregister(r1).expect("live");
    assert_eq!(n.members("g"), Some(&[p.clone()][..]));
    n.unregister(r2).expect("live");
    assert_eq!(n.members("g"), None);
    assert_eq!(n.unregister(r2), Err(ApiError::UnknownRegistration));
}

#[test]
fn closing_a_port_ends_all_its_registrations() {
    let mut n = new_node("n");
    let p = n.open_port();
    let q = n.open_port();
    let r = n.register("a", &p).expect("ok");
    n.register("b", &p).expect("ok");
    n.register("b", &q).expect("ok");
    n.close_port(&p).expect("live");
    assert_eq!(n.members("a"), None);
    assert_eq!(n.members("b"), Some(&[q][..]));
    assert_eq!(n.unregister(r), Err(ApiError::UnknownRegistration));
}

#[test]
fn a_monitor_gets_a_first_event_only_when_the_group_has_members() {
    let mut n = new_node("n");
    n.monitor("g").expect("ok");
    assert!(group_events(&mut n).is_empty());
    let p = n.open_port();
    n.register("g", &p).expect("ok");
    let m2 = n.monitor("g").expect("ok");
    let ev = group_events(&mut n);
    assert_eq!(ev.len(), 2);
    let first = &ev[1];
    assert_eq!(first.monitor, m2);
    assert_eq!(
        (&first.members, &first.added),
        (&ev[0].members, &ev[0].members)
    );
    assert!(first.removed.is_empty());
}

#[test]
fn an_ended_monitor_gets_no_more_events() {
    let mut n = new_node("n");
    let m = n.monitor("g").expect("ok");
    n.unmonitor(m).expect("live");
    let p = n.open_port();
    n.register("g", &p).expect("ok");
    assert!(group_events(&mut n).is_empty());
    assert_eq!(n.unmonitor(m), Err(ApiError::UnknownMonitor));
}

#[test]
fn changes_made_between_drains_go_out_in_one_frame() {
    let mut peer = RawPeer::authenticated(new_node("n"), "x");
    peer.got.clear();
    let ports: alloc::vec::Vec<_> = (0..50).map(|_| peer.node.open_port()).collect();
    for (i, p) in ports.iter().enumerate() {
        peer.node
            .register(&alloc::format!("g{}", i % 5), p)
            .expect("ok");
    }
    peer.drain();
    assert_eq!(peer.got.len(), 1, "{:?}", peer.got);
    let Frame::Update { groups } = &peer.got[0] else {
        panic!("expected an update, got {:?}", peer.got[0]);
    };
    assert_eq!(groups.len(), 5);
    assert_eq!(groups.iter().map(|g| g.joined.len()).sum::<usize>(), 50);
}

#[test]
fn a_join_and_leave_before_the_drain_send_nothing() {
    let mut peer = RawPeer::authenticated(new_node("n"), "x");
    peer.got.clear();
    let p = peer.node.open_port();
    let r = peer.node.register("g", &p).expect("ok");
    peer.node.unregister(r).expect("live");
    peer.drain();
    assert!(peer.got.is_empty(), "{:?}", peer.got);
}

#[test]
fn a_snapshot_larger_than_a_frame_is_split_and_arrives_whole() {
    let mut n = new_node("n");
    let ports: alloc::vec::Vec<_> = (0..40_000).map(|_| n.open_port()).collect();
    for p in &ports {
        n.register("big", p).expect("ok");
    }
    let peer = RawPeer::authenticated(n, "x");
    let syncs: alloc::vec::Vec<_> = peer
        .got
        .iter()
        .filter_map(|f| match f {
            Frame::Sync { groups, done } => {
                Some((groups.iter().map(|g| g.ports.len()).sum::<usize>(), *done))
            }
            _ => None,
        })
        .collect();
    assert!(syncs.len() > 1, "40 000 ports do not fit one 64 KiB frame");
    assert_eq!(syncs.iter().map(|s| s.0).sum::<usize>(), 40_000);
    assert!(syncs.last().expect("some").1, "the last part says done");
    assert!(syncs[..syncs.len() - 1].iter().all(|s| !s.1));
}

#[test]
fn the_api_refuses_calls_after_shutdown() {
    let mut n = new_node("n");
    let p = n.open_port();
    n.shutdown(crate::Instant::ZERO);
    assert_eq!(n.register("g", &p), Err(ApiError::ShutDown));
    assert_eq!(n.poll_timeout(), None);
}

#[test]
fn a_dial_abandoned_before_the_driver_drained_it_is_taken_back() {
    // A driver that drains after a burst: the seed's dial is queued, then
    // the node shuts down before the driver ever saw the dial.
    let mut cfg = crate::Config::new(NodeId::new("a").expect("valid id"), super::SECRET);
    cfg.seeds = alloc::vec![super::addr(7001)];
    let mut node = crate::Node::new(cfg, 1, [1; 32], crate::Instant::ZERO).expect("valid config");
    node.handle_timeout(crate::Instant::ZERO);
    node.shutdown(crate::Instant::ZERO);
    let actions: alloc::vec::Vec<_> = core::iter::from_fn(|| node.poll_action()).collect();
    assert!(
        actions.is_empty(),
        "neither the dial nor its close: {actions:?}"
    );
}
