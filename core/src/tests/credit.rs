//! Flow control of port messages: credit per (sender, port), between a node
//! and a hand-driven peer that grants 64 per port (`hello`).

use alloc::vec::Vec;

use super::{addr, new_node, RawPeer, SECRET};
use crate::config::Config;
use crate::event::{CloseReason, Event, Limit};
use crate::ids::{NodeId, PortId};
use crate::time::Instant;
use crate::wire::{Frame, Payload};
use crate::{Node, SendOutcome};

/// What the peer's greeting grants per port.
const PEER_GRANT: usize = 64;

fn peer_port(n: u64) -> PortId {
    PortId::new(NodeId::new("x").expect("id"), 9, n)
}

fn node_with_credit(credit: u32) -> Node {
    let mut cfg = Config::new(NodeId::new("n").expect("valid id"), SECRET);
    cfg.listen_addrs = alloc::vec![addr(7000)];
    cfg.port_credit = credit;
    Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid config")
}

fn connected(node: Node) -> RawPeer {
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    p.got.clear();
    p.events.clear();
    p
}

fn message_to(port: u64) -> Frame {
    Frame::Message {
        to: port,
        from: None,
        payload: Payload::from(b"m".to_vec()),
    }
}

fn send_ready(events: &[Event]) -> Vec<&PortId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SendReady { port } => Some(port),
            _ => None,
        })
        .collect()
}

/// Sends from the node to the peer's port 3 until it is told to wait; how
/// many were sent.
fn send_until_told_to_wait(p: &mut RawPeer) -> usize {
    let mut sent = 0;
    loop {
        match p.node.send(&peer_port(3), None, b"x") {
            Ok(SendOutcome::Sent) => sent += 1,
            Ok(SendOutcome::Wait) => break,
            other => panic!("unexpected outcome {other:?} after {sent}"),
        }
        assert!(sent <= PEER_GRANT, "sent past the peer's grant");
    }
    p.drain();
    sent
}

#[test]
fn a_sender_out_of_credit_waits_and_is_ready_when_credit_comes_back() {
    let mut p = connected(new_node("n"));
    assert_eq!(send_until_told_to_wait(&mut p), PEER_GRANT);
    assert_eq!(p.got.len(), PEER_GRANT, "nothing past the grant went out");
    assert!(send_ready(&p.events).is_empty());
    p.send(&Frame::Credit { port: 3, n: 32 });
    assert_eq!(send_ready(&p.events), [&peer_port(3)]);
    assert_eq!(send_until_told_to_wait(&mut p), 32);
    assert_eq!(p.node.stats().messages_dropped, 0);
}

#[test]
fn a_peer_sending_beyond_its_credit_is_closed_with_port_credit() {
    let mut p = connected(node_with_credit(4));
    let port = p.node.open_port();
    for _ in 0..4 {
        p.send(&message_to(port.number()));
    }
    assert_eq!(p.close_reason(), None, "within its credit");
    p.send(&message_to(port.number()));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::PortCredit))
    );
    assert!(p.closed);
}

#[test]
fn credit_returned_beyond_what_was_used_closes_the_peer() {
    let mut p = connected(new_node("n"));
    assert_eq!(
        p.node.send(&peer_port(3), None, b"x"),
        Ok(SendOutcome::Sent)
    );
    p.send(&Frame::Credit { port: 3, n: 2 });
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::PortCredit))
    );
}

#[test]
fn reading_returns_credit_to_the_peer_half_a_grant_at_a_time() {
    let mut p = connected(node_with_credit(8));
    let port = p.node.open_port();
    for _ in 0..8 {
        p.send(&message_to(port.number()));
    }
    p.node.message_read(&port, 3);
    p.drain();
    assert!(p.got.is_empty(), "less than half a grant read");
    p.node.message_read(&port, 1);
    p.drain();
    assert_eq!(
        p.got,
        [Frame::Credit {
            port: port.number(),
            n: 4
        }]
    );
    // Its credit back, the peer may send 4 more, and no more.
    for _ in 0..4 {
        p.send(&message_to(port.number()));
    }
    assert_eq!(p.close_reason(), None);
    p.send(&message_to(port.number()));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::PortCredit))
    );
}

#[test]
fn a_waiting_sender_is_woken_when_the_port_closes_and_sending_again_says_so() {
    let mut p = connected(new_node("n"));
    send_until_told_to_wait(&mut p);
    p.send(&Frame::PortDown { port: 3 });
    assert_eq!(send_ready(&p.events), [&peer_port(3)]);
    let dropped = p.node.stats().messages_dropped;
    assert_eq!(
        p.node.send(&peer_port(3), None, b"x"),
        Ok(SendOutcome::PortClosed)
    );
    assert_eq!(p.node.stats().messages_dropped, dropped + 1);
}

#[test]
fn a_waiting_sender_is_woken_when_the_connection_is_lost() {
    let mut p = connected(new_node("n"));
    send_until_told_to_wait(&mut p);
    let (now, conn) = (p.now, p.conn);
    p.node.handle_closed(now, conn);
    p.drain();
    assert_eq!(send_ready(&p.events), [&peer_port(3)]);
    assert_eq!(
        p.node.send(&peer_port(3), None, b"x"),
        Ok(SendOutcome::Unreachable)
    );
}

#[test]
fn closing_a_port_tells_the_peers_that_sent_to_it() {
    let mut p = connected(new_node("n"));
    let port = p.node.open_port();
    p.send(&message_to(port.number()));
    p.node.close_port(&port).expect("live");
    p.drain();
    assert_eq!(
        p.got,
        [Frame::PortDown {
            port: port.number()
        }]
    );
}

#[test]
fn a_local_sender_waits_while_the_port_holds_its_credit() {
    let mut n = node_with_credit(2);
    let (a, b) = (n.open_port(), n.open_port());
    assert_eq!(n.send(&b, Some(&a), b"1"), Ok(SendOutcome::Sent));
    assert_eq!(n.send(&b, Some(&a), b"2"), Ok(SendOutcome::Sent));
    assert_eq!(n.send(&b, Some(&a), b"3"), Ok(SendOutcome::Wait));
    let events: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    assert!(send_ready(&events).is_empty());
    n.message_read(&b, 1);
    let events: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    assert_eq!(send_ready(&events), [&b]);
    assert_eq!(n.send(&b, Some(&a), b"3"), Ok(SendOutcome::Sent));
    n.close_port(&b).expect("live");
    assert_eq!(n.send(&b, Some(&a), b"4"), Ok(SendOutcome::PortClosed));
}
