//! The handshake and the sealed channel: who is refused and why, what a
//! recording or an outsider between two nodes can and cannot do.

use alloc::format;
use alloc::vec::Vec;

use super::{addr, framed, hello, new_node, RawPeer};
use crate::event::{CloseReason, Event, Limit};
use crate::handshake::check_hello;
use crate::ids::ConnId;
use crate::time::Instant;
use crate::wire::{Frame, HandshakeRecord, LEN_PREFIX, PROTOCOL_VERSION};
use crate::{Config, Node, NodeId, WireReason};

#[test]
fn a_greeting_from_ourselves_is_a_self_connection_and_our_id_elsewhere_a_duplicate() {
    let ours = hello("a", 1);
    assert_eq!(
        check_hello(&ours.node, ours.incarnation, &hello("a", 1)),
        Err(CloseReason::SelfConnection)
    );
    assert_eq!(
        check_hello(&ours.node, ours.incarnation, &hello("a", 2)),
        Err(CloseReason::DuplicateNodeId)
    );
    assert_eq!(
        check_hello(&ours.node, ours.incarnation, &hello("b", 1)),
        Ok(())
    );
}

#[test]
fn an_honest_handshake_authenticates_both_sides() {
    let p = RawPeer::authenticated(new_node("n"), "x");
    assert_eq!(p.close_reason(), None);
    assert!(p.channel.is_authenticated());
    assert_eq!(
        p.node_hello.as_ref().map(|h| h.node.as_str()),
        Some("n"),
        "the node's greeting travelled inside the handshake"
    );
    assert_eq!(p.node.stats().authenticated, 1);
}

#[test]
fn the_wrong_secret_fails_authentication_and_tells_the_peer_why() {
    let mut p = RawPeer::connect_with(new_node("n"), b"not the secret", 9000);
    p.handshake(&hello("x", 5));
    assert_eq!(p.close_reason(), Some(CloseReason::AuthenticationFailed));
    assert_eq!(
        p.ended,
        Some(CloseReason::Remote(WireReason::AuthenticationFailed))
    );
    assert!(p.closed);
    assert_eq!(p.node.connected_nodes().count(), 0);
}

#[test]
fn any_frame_before_the_handshake_closes_the_connection() {
    for early in [
        Frame::Ping,
        Frame::Sync {
            groups: Default::default(),
            done: true,
        },
    ] {
        let mut p = RawPeer::connect(new_node("n"));
        p.send_bytes(&framed(&early));
        assert!(
            matches!(
                p.close_reason(),
                Some(CloseReason::Malformed | CloseReason::UnexpectedFrame)
            ),
            "{early:?}: {:?}",
            p.close_reason()
        );
        assert_eq!(p.node.stats().authenticated, 0);
    }
}

#[test]
fn a_version_1_greeting_is_refused_as_a_version_mismatch() {
    // Version 1's greeting: Frame::Hello (variant 0), version 1 first, then
    // the node id, incarnation, addresses, nonce and frame size.
    let mut body = alloc::vec![0u8, 1, 1, b'x', 5, 0];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0x80, 0x80, 0x04]);
    let mut v1 = (body.len() as u32).to_le_bytes().to_vec();
    v1.extend_from_slice(&body);
    let mut p = RawPeer::connect(new_node("n"));
    p.send_bytes(&v1);
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: 1
        })
    );
    // And our first record reads, to a version-1 node, as a greeting of our version.
    let first = &p.raw[LEN_PREFIX..LEN_PREFIX + 2];
    assert_eq!(first, &[0, PROTOCOL_VERSION as u8]);
}

#[test]
fn a_version_record_of_another_version_is_refused_with_both_versions() {
    let mut p = RawPeer::connect(new_node("n"));
    let mut rec = Vec::new();
    HandshakeRecord::Version(PROTOCOL_VERSION + 1).encode(&mut rec);
    p.send_bytes(&rec);
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: PROTOCOL_VERSION + 1
        })
    );
}

#[test]
fn a_record_over_the_handshake_size_is_refused_from_its_length_alone() {
    let mut p = RawPeer::connect(new_node("n"));
    // Only the length: 2 KiB announced before authentication.
    p.send_bytes(&2048u32.to_le_bytes());
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::FrameSize))
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

/// The bytes an honest initiator "x" sent the node, up to its key
/// confirmation (exclusive): its version record and first Noise message.
fn recorded_first_message() -> Vec<u8> {
    let mut p = RawPeer::connect(new_node("n"));
    p.channel.start(&hello("x", 9));
    p.channel.take_wire()
}

#[test]
fn a_recorded_first_message_replayed_never_authenticates() {
    let recording = recorded_first_message();
    // The live peer x is connected and up.
    let mut live = RawPeer::authenticated(new_node("n"), "x");
    live.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    assert_eq!(live.node.connected_nodes().count(), 1);
    // The replay, on a new connection: the node answers (it cannot tell
    // yet), but nobody can use the answer.
    let mut node = live.node;
    let now = Instant::ZERO;
    let replay = node.handle_inbound(now, addr(9100)).expect("room");
    node.handle_bytes(now, replay, &recording);
    let out = drain(&mut node);
    assert!(!out.closed.contains(&replay), "answered, not refused");
    assert!(out
        .events
        .iter()
        .all(|e| !matches!(e, Event::NodeUp { .. })));
    assert_eq!(node.stats().authenticated, 1, "only the live connection");
    // Whatever follows that the recording does not hold fails; the live
    // connection is untouched.
    let mut garbage = (40u32).to_le_bytes().to_vec();
    garbage.extend_from_slice(&[9; 40]);
    node.handle_bytes(now, replay, &garbage);
    let out = drain(&mut node);
    assert!(out.closed_with(replay, CloseReason::AuthenticationFailed));
    assert_eq!(node.connected_nodes().count(), 1);
    assert_eq!(node.stats().authenticated, 1);
}

#[test]
fn a_recorded_first_message_replayed_and_left_alone_times_out() {
    let recording = recorded_first_message();
    let mut node = new_node("n");
    let replay = node
        .handle_inbound(Instant::ZERO, addr(9100))
        .expect("room");
    node.handle_bytes(Instant::ZERO, replay, &recording);
    drain(&mut node);
    let limit = node.config().timeouts.handshake_timeout;
    node.handle_timeout(Instant::ZERO + limit);
    let out = drain(&mut node);
    assert!(out.closed_with(replay, CloseReason::HandshakeTimeout));
    assert_eq!(node.stats().closed.len(), 1);
}

#[test]
fn an_altered_replayed_or_reordered_record_closes_with_decrypt() {
    let sync = Frame::Sync {
        groups: Default::default(),
        done: true,
    };
    // Altered: one bit flipped in a sealed record.
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let mut plain = framed(&sync);
    p.channel.seal(&mut plain);
    let mut rec = p.channel.take_wire();
    let last = rec.len() - 1;
    rec[last] ^= 1;
    p.send_bytes(&rec);
    assert_eq!(p.close_reason(), Some(CloseReason::Decrypt));
    assert_eq!(p.node.connected_nodes().count(), 0);

    // Replayed: the same sealed record twice.
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let mut plain = framed(&Frame::Ping);
    p.channel.seal(&mut plain);
    let rec = p.channel.take_wire();
    p.send_bytes(&rec);
    assert_eq!(p.close_reason(), None);
    p.send_bytes(&rec);
    assert_eq!(p.close_reason(), Some(CloseReason::Decrypt));

    // Reordered: the second record before the first.
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let (mut a, mut b) = (framed(&Frame::Ping), framed(&sync));
    p.channel.seal(&mut a);
    let first = p.channel.take_wire();
    p.channel.seal(&mut b);
    let second = p.channel.take_wire();
    p.send_bytes(&second);
    assert_eq!(p.close_reason(), Some(CloseReason::Decrypt));
    assert!(!first.is_empty());

    // Injected: a well-formed record nobody sealed.
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let mut fake = 40u32.to_le_bytes().to_vec();
    fake.extend_from_slice(&[0; 40]);
    p.send_bytes(&fake);
    assert_eq!(p.close_reason(), Some(CloseReason::Decrypt));
    assert!(p.node.stats().closed.contains(&(CloseReason::Decrypt, 1)));
}

#[test]
fn a_frame_larger_than_a_record_travels_in_several() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let port = p.node.open_port();
    let payload = alloc::vec![7u8; 60_000];
    let big = Frame::Message {
        to: port.number(),
        from: None,
        payload: crate::wire::Payload::from(payload.clone()),
    };
    // Two 60 KB messages are more than one record (64 KiB) holds.
    let mut plain = framed(&big);
    plain.extend(framed(&big));
    p.channel.seal(&mut plain);
    let wire = p.channel.take_wire();
    assert!(wire.len() > 120_000);
    p.send_bytes(&wire);
    assert_eq!(p.close_reason(), None);
    let got = p
        .events
        .iter()
        .filter(|e| matches!(e, Event::Message { payload: pl, .. } if *pl == payload))
        .count();
    assert_eq!(got, 2);
}

#[test]
fn neither_config_nor_node_debug_shows_the_secret() {
    let secret = b"hunter2-very-secret";
    let cfg = Config::new(NodeId::new("a").expect("valid"), secret);
    let node = Node::new(cfg.clone(), 1, [1; 32], Instant::ZERO).expect("valid");
    for shown in [format!("{cfg:?}"), format!("{node:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            !shown.contains("104, 117, 110"),
            "bytes of the secret: {shown}"
        );
    }
}

#[test]
fn a_secret_of_any_length_keys_the_mesh() {
    for len in [1, 32, 4096] {
        let secret = alloc::vec![3u8; len];
        let mut cfg = Config::new(NodeId::new("n").expect("valid"), &secret);
        cfg.listen_addrs = alloc::vec![addr(7000)];
        let node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("any length");
        let mut p = RawPeer::connect_with(node, &secret, 9000);
        p.handshake(&hello("x", 5));
        assert!(p.channel.is_authenticated(), "{len} bytes");
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let run = || {
        let mut p = RawPeer::authenticated(new_node("n"), "x");
        p.send(&Frame::Ping);
        (p.raw, p.sent)
    };
    assert_eq!(run(), run());
}

/// What a node said after a burst of input.
#[derive(Default)]
struct Out {
    bytes: Vec<(ConnId, Vec<u8>)>,
    closed: Vec<ConnId>,
    dials: Vec<ConnId>,
    events: Vec<Event>,
}

impl Out {
    fn closed_with(&self, conn: ConnId, reason: CloseReason) -> bool {
        self.events.iter().any(|e| {
            matches!(e, Event::ConnectionClosed { conn: c, reason: r, .. } if *c == conn && *r == reason)
        })
    }
}

fn drain(node: &mut Node) -> Out {
    let mut out = Out::default();
    while let Some(t) = node.poll_transmit() {
        out.bytes.push((t.conn, t.data));
    }
    while let Some(a) = node.poll_action() {
        match a {
            crate::Action::Close { conn } => out.closed.push(conn),
            crate::Action::Dial { conn, .. } => out.dials.push(conn),
        }
    }
    while let Some(e) = node.poll_event() {
        out.events.push(e);
    }
    out
}

#[test]
fn an_outsider_splicing_two_nodes_authenticates_nobody() {
    // The outsider opens a connection to x and one to y and forwards every
    // byte each node sends to the other, both ways, for as long as they talk.
    let (mut x, mut y) = (new_node("x"), new_node("y"));
    let now = Instant::ZERO;
    let cx = x.handle_inbound(now, addr(9200)).expect("room");
    let cy = y.handle_inbound(now, addr(9201)).expect("room");
    let mut events = Vec::new();
    for _ in 0..10 {
        let (ox, oy) = (drain(&mut x), drain(&mut y));
        events.extend(ox.events.iter().cloned());
        events.extend(oy.events.iter().cloned());
        let mut any = false;
        for (_, b) in ox.bytes.iter().filter(|(c, _)| *c == cx) {
            y.handle_bytes(now, cy, b);
            any = true;
        }
        for (_, b) in oy.bytes.iter().filter(|(c, _)| *c == cy) {
            x.handle_bytes(now, cx, b);
            any = true;
        }
        if !any {
            break;
        }
    }
    // Both wait for an initiator's message nobody can write; then time out.
    for n in [&mut x, &mut y] {
        assert_eq!(n.stats().authenticated, 0);
        assert_eq!(n.connected_nodes().count(), 0);
        let limit = n.config().timeouts.handshake_timeout;
        n.handle_timeout(now + limit);
        events.extend(drain(n).events);
    }
    assert!(events
        .iter()
        .all(|e| !matches!(e, Event::NodeUp { .. } | Event::Group(_))));
    assert!(x.members("payments").is_none() && y.members("payments").is_none());
}

#[test]
fn a_seed_at_our_own_listen_address_is_never_dialled_again() {
    let mut cfg = Config::new(NodeId::new("n").expect("valid"), super::SECRET);
    cfg.listen_addrs = alloc::vec![addr(7000)];
    cfg.seeds = alloc::vec![addr(7000)];
    let mut node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    node.handle_timeout(Instant::ZERO);
    let Some(crate::Action::Dial { conn: out, .. }) = node.poll_action() else {
        panic!("the seed is dialled");
    };
    let inb = node
        .handle_inbound(Instant::ZERO, addr(50_000))
        .expect("room");
    node.handle_dialed(Instant::ZERO, out);
    let mut events = Vec::new();
    // The node talks to itself until it stops.
    for _ in 0..10 {
        let o = drain(&mut node);
        events.extend(o.events);
        if o.bytes.is_empty() {
            break;
        }
        for (conn, bytes) in o.bytes {
            let to = if conn == out { inb } else { out };
            node.handle_bytes(Instant::ZERO, to, &bytes);
        }
    }
    let closed = |c: ConnId, r: CloseReason| {
        events.iter().any(|e| {
            matches!(e, Event::ConnectionClosed { conn, reason, .. } if *conn == c && *reason == r)
        })
    };
    assert!(closed(inb, CloseReason::SelfConnection), "{events:?}");
    assert!(
        closed(out, CloseReason::Remote(WireReason::SelfConnection)),
        "{events:?}"
    );
    // Long after any backoff or forgetting, the seed is not dialled again.
    let later = Instant::ZERO + node.config().timeouts.forget_after * 3;
    node.handle_timeout(later);
    let o = drain(&mut node);
    assert!(o.dials.is_empty(), "dialled again");
}

/// Every byte of a fixed handshake and one sealed frame, both ways, hashed:
/// the same with the RustCrypto AEAD and with `ring`'s (feature `ring`), so
/// nodes built either way speak to each other. CI runs it both ways.
#[test]
fn the_channel_bytes_are_the_same_with_either_aead() {
    use sha2::Digest;
    let psk = crate::handshake::Psk::derive(b"known answer");
    let mut i = crate::Channel::new(true, &psk, 1 << 16, [1; 32]);
    let mut r = crate::Channel::new(false, &psk, 1 << 16, [2; 32]);
    i.start(&hello("i", 1));
    r.start(&hello("r", 2));
    let mut transcript = sha2::Sha256::new();
    for _ in 0..3 {
        let to_r = i.take_wire();
        transcript.update(&to_r);
        let mut input = &to_r[..];
        while let Ok(Some(got)) = r.next(&mut input) {
            if let crate::Input::Greeting(_) = got {
                r.answer();
            }
        }
        let to_i = r.take_wire();
        transcript.update(&to_i);
        let mut input = &to_i[..];
        while let Ok(Some(_)) = i.next(&mut input) {}
    }
    assert!(i.is_authenticated() && r.is_authenticated());
    let mut plain = framed(&Frame::Ping);
    i.seal(&mut plain);
    transcript.update(i.take_wire());
    let digest = transcript.finalize();
    let hex: alloc::string::String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "1d132b42650187720b7ce3f70fd9389e96d641bfca96c021d0bef8dd1435051b"
    );
}

/// Seen 642 times in a cold start of 200 nodes on 2 cores: a dialer that
/// gave up (its handshake timed out) refused in the clear just as the
/// answer crossed it, and the responder read the refusal as a sealed record.
#[test]
fn a_dialer_giving_up_as_the_answer_crosses_it_is_a_refusal_not_a_wrong_secret() {
    use crate::channel::{Channel, Input};
    use crate::handshake::Psk;
    let psk = Psk::derive(super::SECRET);
    let mut dialer = Channel::new(true, &psk, 1 << 20, [1; 32]);
    let mut answerer = Channel::new(false, &psk, 1 << 20, [2; 32]);
    dialer.start(&hello("a", 1));
    answerer.start(&hello("b", 1));
    let greeting = dialer.take_wire();
    let mut input = &greeting[..];
    assert!(matches!(
        answerer.next(&mut input),
        Ok(Some(Input::Greeting(_)))
    ));
    answerer.answer();
    let mut queued = Vec::new();
    dialer.refuse(WireReason::HandshakeTimeout, &mut queued);
    let refusal = dialer.take_wire();
    assert_eq!(
        answerer.next(&mut &refusal[..]),
        Err(CloseReason::Remote(WireReason::HandshakeTimeout))
    );
}
