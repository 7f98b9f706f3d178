//! The handshake: who is refused, and why; what the MAC binds.

use alloc::boxed::Box;

use super::{hello, new_node, RawPeer, SECRET};
use crate::event::{CloseReason, Event};
use crate::handshake::{check_hello, prove, verify, Nonces};
use crate::wire::{Frame, PROTOCOL_VERSION};

#[test]
fn a_mac_proves_the_secret_and_binds_both_greetings() {
    let (a, b) = (hello("a", 1), hello("b", 2));
    let mac = prove(SECRET, &a, &b);
    assert!(verify(SECRET, &b, &a, &mac), "b accepts a's proof");
    assert!(!verify(b"other", &b, &a, &mac), "wrong secret");
    assert!(
        !verify(SECRET, &a, &b, &mac),
        "a's own proof reflected back to a"
    );
    let mut b2 = b.clone();
    b2.nonce = [3; 32];
    assert!(
        !verify(SECRET, &b2, &a, &mac),
        "replayed to a greeting with a new nonce"
    );
}

#[test]
fn a_greeting_with_a_seen_nonce_is_refused_as_a_replay() {
    let ours = hello("a", 1);
    let mut nonces = Nonces::default();
    assert_eq!(check_hello(&ours, &hello("b", 2), &mut nonces), Ok(()));
    assert_eq!(
        check_hello(&ours, &hello("c", 2), &mut nonces),
        Err(CloseReason::ReplayedNonce)
    );
}

#[test]
fn a_greeting_from_ourselves_is_a_self_connection_and_our_id_elsewhere_a_duplicate() {
    let ours = hello("a", 1);
    let mut nonces = Nonces::default();
    let mut me = hello("a", 2);
    me.incarnation = ours.incarnation;
    assert_eq!(
        check_hello(&ours, &me, &mut nonces),
        Err(CloseReason::SelfConnection)
    );
    me.incarnation += 1;
    assert_eq!(
        check_hello(&ours, &me, &mut nonces),
        Err(CloseReason::DuplicateNodeId)
    );
}

#[test]
fn an_echoed_greeting_is_refused() {
    let mut p = RawPeer::connect(new_node("n"));
    let mut echo = p.node_hello.clone().expect("greeted");
    echo.node = super::wire_id("someone-else");
    p.send(&Frame::Hello(Box::new(echo)));
    assert_eq!(p.close_reason(), Some(CloseReason::ReplayedNonce));
    assert!(p.closed);
}

#[test]
fn the_wrong_secret_closes_the_connection_and_tells_the_peer_why() {
    let mut p = RawPeer::connect(new_node("n"));
    let ours = hello("x", 5);
    p.send(&Frame::Hello(Box::new(ours.clone())));
    let theirs = p.node_hello.clone().expect("greeted");
    let mac = prove(b"not the secret", &ours, &theirs);
    p.send(&Frame::Auth { mac });
    assert_eq!(p.close_reason(), Some(CloseReason::AuthenticationFailed));
    assert!(p.got.contains(&Frame::Close {
        reason: crate::WireReason::AuthenticationFailed
    }));
    assert_eq!(p.node.connected_nodes().count(), 0);
}

#[test]
fn any_frame_before_authentication_closes_the_connection() {
    for early in [
        Frame::Ping,
        Frame::Update {
            groups: Default::default(),
        },
        Frame::Auth { mac: [0; 32] },
    ] {
        let mut p = RawPeer::connect(new_node("n"));
        p.send(&early);
        assert_eq!(
            p.close_reason(),
            Some(CloseReason::UnexpectedFrame),
            "{early:?}"
        );
    }
}

#[test]
fn a_second_greeting_after_authentication_closes_the_connection() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    assert_eq!(p.close_reason(), None);
    p.send(&Frame::Hello(Box::new(hello("x", 77))));
    assert_eq!(p.close_reason(), Some(CloseReason::UnexpectedFrame));
}

#[test]
fn a_greeting_of_another_version_is_refused_with_both_versions() {
    let mut p = RawPeer::connect(new_node("n"));
    let mut h = hello("x", 5);
    h.version = PROTOCOL_VERSION + 1;
    p.send(&Frame::Hello(Box::new(h)));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        })
    );
}

#[test]
fn a_handshake_that_never_finishes_times_out() {
    let mut p = RawPeer::connect(new_node("n"));
    let limit = p.node.config().timeouts.handshake_timeout;
    let deadline = p.node.poll_timeout().expect("handshake deadline");
    assert_eq!(deadline, crate::Instant::ZERO + limit);
    p.node.handle_timeout(crate::Instant::ZERO + limit);
    p.drain();
    assert_eq!(p.close_reason(), Some(CloseReason::HandshakeTimeout));
}

#[test]
fn authentication_makes_the_peer_a_connected_node_after_its_snapshot() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    assert_eq!(p.node.connected_nodes().count(), 0, "no snapshot yet");
    p.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    assert_eq!(p.node.connected_nodes().count(), 1);
    assert!(p.events.iter().any(|e| matches!(e, Event::NodeUp { .. })));
    // The node sent its own (empty) snapshot right after authenticating.
    assert!(p
        .got
        .iter()
        .any(|f| matches!(f, Frame::Sync { done: true, .. })));
}
