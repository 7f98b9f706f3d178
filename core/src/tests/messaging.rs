//! Port messages and port monitors, between a node and a hand-driven peer.

use alloc::vec;
use alloc::vec::Vec;

use super::{new_node, RawPeer};
use crate::error::ApiError;
use crate::event::{CloseReason, Event, PortDownReason};
use crate::ids::{NodeId, PortId};
use crate::wire::{Frame, Payload};
use crate::SendOutcome;

fn peer_port(n: u64) -> PortId {
    PortId::new(NodeId::new("x").expect("id"), 9, n)
}

fn messages(events: &[Event]) -> Vec<(&PortId, Option<&PortId>, &[u8])> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                to, from, payload, ..
            } => Some((to, from.as_ref(), payload.as_slice())),
            _ => None,
        })
        .collect()
}

fn port_downs(events: &[Event]) -> Vec<(&PortId, PortDownReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PortDown { port, reason, .. } => Some((port, *reason)),
            _ => None,
        })
        .collect()
}

fn connected() -> RawPeer {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    p.got.clear();
    p
}

#[test]
fn a_message_to_a_remote_port_goes_out_on_its_nodes_connection_with_the_sender() {
    let mut p = connected();
    let me = p.node.open_port();
    let sent = p.node.send(&peer_port(3), Some(&me), b"ping");
    assert_eq!(sent, Ok(SendOutcome::Sent));
    p.drain();
    assert_eq!(
        p.got,
        vec![Frame::Message {
            to: 3,
            from: Some(me.number()),
            payload: Payload::from(b"ping".to_vec())
        }]
    );
}

#[test]
fn a_message_from_a_peer_reaches_a_live_local_port_with_a_reply_address() {
    let mut p = connected();
    let me = p.node.open_port();
    p.send(&Frame::Message {
        to: me.number(),
        from: Some(7),
        payload: Payload::from(b"hi".to_vec()),
    });
    assert_eq!(
        messages(&p.events),
        vec![(&me, Some(&peer_port(7)), &b"hi"[..])]
    );
}

#[test]
fn messages_to_missing_ports_or_unconnected_nodes_are_dropped_and_counted() {
    let mut p = connected();
    p.send(&Frame::Message {
        to: 99,
        from: None,
        payload: Payload::from(b"lost".to_vec()),
    });
    let stranger = PortId::new(NodeId::new("nobody").expect("id"), 1, 1);
    let sent = p.node.send(&stranger, None, b"lost too");
    assert_eq!(sent, Ok(SendOutcome::Unreachable));
    let old_incarnation = PortId::new(NodeId::new("x").expect("id"), 8, 1);
    let sent = p.node.send(&old_incarnation, None, b"stale");
    assert_eq!(sent, Ok(SendOutcome::Unreachable));
    p.drain();
    assert!(messages(&p.events).is_empty());
    assert_eq!(
        p.got,
        vec![Frame::PortDown { port: 99 }],
        "the sender to a missing port is told; nothing goes to a restarted node's old ports"
    );
    assert_eq!(p.node.stats().messages_dropped, 3);
}

#[test]
fn a_local_message_is_delivered_without_the_network() {
    let mut n = new_node("n");
    let a = n.open_port();
    let b = n.open_port();
    assert_eq!(n.send(&b, Some(&a), b"local"), Ok(SendOutcome::Sent));
    let got: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(messages(&got), vec![(&b, Some(&a), &b"local"[..])]);
}

#[test]
fn a_payload_over_the_frame_size_is_a_typed_error_and_sends_nothing() {
    let mut p = connected();
    let big = vec![0u8; 70_000];
    let err = p
        .node
        .send(&peer_port(1), None, &big)
        .expect_err("too large");
    assert!(
        matches!(err, ApiError::PayloadTooLarge { len: 70_000, .. }),
        "{err}"
    );
    p.drain();
    assert!(p.got.is_empty());
}

#[test]
fn a_remote_port_monitor_fires_once_when_its_owner_says_the_port_closed() {
    let mut p = connected();
    let m = p.node.monitor_port(&peer_port(4)).expect("live");
    p.node.monitor_port(&peer_port(4)).expect("live");
    p.drain();
    assert_eq!(
        p.got,
        vec![Frame::MonitorPort { port: 4 }],
        "one request per port"
    );
    p.send(&Frame::PortDown { port: 4 });
    let downs = port_downs(&p.events);
    assert_eq!(downs.len(), 2);
    assert!(downs
        .iter()
        .all(|(port, r)| **port == peer_port(4) && *r == PortDownReason::Closed));
    assert_eq!(
        p.node.unmonitor_port(m),
        Err(ApiError::UnknownPortMonitor),
        "fired monitors end"
    );
}

#[test]
fn a_remote_port_monitor_fires_when_the_node_is_lost() {
    let mut p = connected();
    p.node.monitor_port(&peer_port(4)).expect("live");
    let (now, conn) = (p.now, p.conn);
    p.node.handle_closed(now, conn);
    p.drain();
    assert_eq!(
        port_downs(&p.events),
        vec![(
            &peer_port(4),
            PortDownReason::NodeDown(CloseReason::Disconnected)
        )]
    );
}

#[test]
fn monitoring_a_port_of_an_unconnected_node_fires_at_once() {
    let mut n = new_node("n");
    let stranger = PortId::new(NodeId::new("nobody").expect("id"), 1, 1);
    n.monitor_port(&stranger).expect("ok");
    let got: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(
        port_downs(&got),
        vec![(&stranger, PortDownReason::Unreachable)]
    );
}

#[test]
fn closing_a_watched_local_port_tells_local_monitors_and_watching_peers() {
    let mut p = connected();
    let mine = p.node.open_port();
    p.node.monitor_port(&mine).expect("live");
    p.send(&Frame::MonitorPort {
        port: mine.number(),
    });
    p.node.close_port(&mine).expect("live");
    p.drain();
    assert_eq!(port_downs(&p.events), vec![(&mine, PortDownReason::Closed)]);
    assert!(p.got.contains(&Frame::PortDown {
        port: mine.number()
    }));
}

#[test]
fn a_peer_watching_a_missing_port_is_told_at_once() {
    let mut p = connected();
    p.send(&Frame::MonitorPort { port: 42 });
    assert_eq!(p.got, vec![Frame::PortDown { port: 42 }]);
}

#[test]
fn ending_the_last_monitor_of_a_remote_port_tells_its_node() {
    let mut p = connected();
    let m = p.node.monitor_port(&peer_port(5)).expect("live");
    p.node.unmonitor_port(m).expect("live");
    p.drain();
    assert_eq!(
        p.got,
        vec![
            Frame::MonitorPort { port: 5 },
            Frame::DemonitorPort { port: 5 }
        ]
    );
}
