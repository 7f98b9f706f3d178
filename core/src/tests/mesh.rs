//! Who is dialled and when: backoff, reconnects, handshake slots.

use alloc::vec::Vec;

use super::{addr, framed, hello, SECRET};
use crate::channel::{Channel, Input};
use crate::event::{Action, Limit, WireReason};
use crate::handshake::Psk;
use crate::ids::ConnId;
use crate::time::Instant;
use crate::wire::Frame;
use crate::{Config, Node, NodeId};

/// Plays the node at the other end of `node`'s dial `conn`: answers its
/// handshake as `id`, then does what `then` says with the keyed channel.
fn answer_dial(
    node: &mut Node,
    now: Instant,
    conn: ConnId,
    id: &str,
    then: impl FnOnce(&mut Channel) -> Vec<u8>,
) {
    let mut ch = Channel::new(false, &Psk::derive(SECRET), 1 << 24, [conn.0 as u8; 32]);
    ch.start(&hello(id, 9));
    node.handle_dialed(now, conn);
    let mut then = Some(then);
    for _ in 0..4 {
        let mut to_us = Vec::new();
        while let Some(t) = node.poll_transmit() {
            if t.conn == conn {
                to_us.extend_from_slice(&t.data);
            }
        }
        let mut input = &to_us[..];
        while let Ok(Some(got)) = ch.next(&mut input) {
            if let Input::Greeting(_) = got {
                ch.answer();
            }
        }
        let mut reply = ch.take_wire();
        if ch.is_authenticated() {
            if let Some(then) = then.take() {
                reply.extend(then(&mut ch));
            }
        }
        if reply.is_empty() {
            return;
        }
        node.handle_bytes(now, conn, &reply);
    }
}

/// A sealed close frame from the peer.
fn close_with(ch: &mut Channel, reason: WireReason) -> Vec<u8> {
    let mut plain = framed(&Frame::Close { reason });
    ch.seal(&mut plain);
    ch.take_wire()
}

fn node_with_seed() -> Node {
    let mut cfg = Config::new(NodeId::new("n").expect("valid"), SECRET);
    cfg.listen_addrs = alloc::vec![addr(7000)];
    cfg.seeds = alloc::vec![addr(7001)];
    Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid")
}

/// Runs the node's timers from `now` until it asks to dial; returns when and which.
fn next_dial(node: &mut Node, mut now: Instant) -> (Instant, ConnId) {
    for _ in 0..1000 {
        node.handle_timeout(now);
        while let Some(a) = node.poll_action() {
            if let Action::Dial { conn, .. } = a {
                return (now, conn);
            }
        }
        while node.poll_event().is_some() {}
        now = node.poll_timeout().expect("a dial is scheduled").max(now);
    }
    panic!("no dial");
}

#[test]
fn a_peer_that_closes_right_after_the_handshake_is_redialled_ever_more_slowly() {
    let mut node = node_with_seed();
    let mut now = Instant::ZERO;
    let mut gaps = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let (at, conn) = next_dial(&mut node, now);
        if let Some(l) = last {
            gaps.push(at.saturating_since(l));
        }
        last = Some(at);
        // It authenticates, then closes at once (say our registrations are
        // past its limits).
        answer_dial(&mut node, at, conn, "m", |ch| {
            close_with(ch, WireReason::LimitExceeded(Limit::Members))
        });
        while node.poll_event().is_some() {}
        while node.poll_action().is_some() {}
        assert_eq!(node.stats().connections, 0);
        now = at;
    }
    // 100 ms doubling, with half of each delay random: from the 5th gap on,
    // at least 800 ms; no gap shrinks to the minimum again.
    let min = node.config().timeouts.backoff_min;
    assert!(gaps[4] >= min * 8, "gaps {gaps:?}");
    assert!(gaps[5] >= min * 16, "gaps {gaps:?}");
}

#[test]
fn a_connection_that_stayed_up_starts_the_backoff_over() {
    let mut node = node_with_seed();
    let mut now = Instant::ZERO;
    // Three quick failures first.
    for _ in 0..3 {
        let (at, conn) = next_dial(&mut node, now);
        answer_dial(&mut node, at, conn, "m", |ch| {
            close_with(ch, WireReason::Shutdown)
        });
        while node.poll_event().is_some() {}
        now = at;
    }
    // Then a connection that stays up past the keepalive timeout.
    let (at, conn) = next_dial(&mut node, now);
    answer_dial(&mut node, at, conn, "m", |ch| {
        let mut plain = framed(&Frame::Sync {
            groups: Default::default(),
            done: true,
        });
        ch.seal(&mut plain);
        ch.take_wire()
    });
    assert_eq!(node.connected_nodes().count(), 1);
    let lost = at + node.config().timeouts.keepalive_timeout;
    node.handle_closed(lost, conn);
    while node.poll_event().is_some() {}
    let (again, _) = next_dial(&mut node, lost);
    let min = node.config().timeouts.backoff_min;
    assert!(
        again.saturating_since(lost) <= min,
        "redialled after {:?}",
        again.saturating_since(lost)
    );
}

#[test]
fn a_full_handshake_table_gives_the_oldest_slot_to_a_new_connection() {
    let mut cfg = Config::new(NodeId::new("n").expect("valid"), SECRET);
    cfg.limits.max_unauthenticated = 4;
    let mut node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    // Four silent clients hold every slot.
    let silent: Vec<ConnId> = (0..4u64)
        .map(|i| {
            let at = Instant::from_millis(i);
            node.handle_inbound(at, addr(9000 + i as u16))
                .expect("room")
        })
        .collect();
    while node.poll_transmit().is_some() {}
    // An honest peer still gets in, at once: the oldest silent one goes.
    let mut p = super::RawPeer::connect_with(node, SECRET, 9100);
    p.now = Instant::from_millis(10);
    p.handshake(&hello("honest", 9));
    assert!(p.channel.is_authenticated());
    assert_eq!(p.node.stats().authenticated, 1);
    assert!(p.events.iter().any(|e| matches!(
        e,
        crate::Event::ConnectionClosed { conn, reason: crate::CloseReason::LimitExceeded(Limit::Connections), .. }
            if *conn == silent[0]
    )));
    assert_eq!(p.node.stats().inbound_refused, 0);
    assert_eq!(
        p.node.stats().connections,
        4,
        "three silent ones and the honest one"
    );
}

#[test]
fn a_greeted_handshake_keeps_its_slot_until_a_quarter_of_the_handshake_timeout() {
    let mut cfg = Config::new(NodeId::new("n").expect("valid"), SECRET);
    cfg.limits.max_unauthenticated = 3;
    let quarter = cfg.timeouts.handshake_timeout / 4;
    let mut node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    let greet = |node: &mut Node, at: Instant, port: u16| {
        let conn = node.handle_inbound(at, addr(port));
        if let Some(conn) = conn {
            let mut ch = Channel::new(true, &Psk::derive(SECRET), 1 << 24, [port as u8; 32]);
            ch.start(&hello(&alloc::format!("honest{port}"), 9));
            node.handle_bytes(at, conn, &ch.take_wire());
        }
        conn
    };
    let evicted = |node: &mut Node| {
        core::iter::from_fn(|| node.poll_event())
            .filter_map(|e| match e {
                crate::Event::ConnectionClosed {
                    conn,
                    reason: crate::CloseReason::LimitExceeded(Limit::Connections),
                    ..
                } => Some(conn),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // Two honest dialers greet under the key; then a socket says nothing.
    let first = greet(&mut node, Instant::ZERO, 9000).expect("room");
    greet(&mut node, Instant::ZERO, 9001).expect("room");
    let silent = node
        .handle_inbound(Instant::from_millis(1), addr(9050))
        .expect("room");
    // A newcomer takes the silent socket's slot, though it is the youngest.
    greet(&mut node, Instant::from_millis(2), 9002).expect("the silent one's slot");
    assert_eq!(evicted(&mut node), [silent]);
    // Every slot now holds a young greeted handshake: the next is refused,
    // and dials again after its backoff.
    assert_eq!(greet(&mut node, Instant::from_millis(3), 9003), None);
    assert_eq!(node.stats().inbound_refused, 1);
    assert_eq!(evicted(&mut node), []);
    // A quarter of the handshake timeout on, the oldest gives its slot up.
    greet(&mut node, Instant::ZERO + quarter, 9004).expect("the oldest one's slot");
    assert_eq!(evicted(&mut node), [first]);
}

#[test]
fn the_nodes_own_dials_have_slots_of_their_own_and_a_cap() {
    let mut cfg = Config::new(NodeId::new("n").expect("valid"), SECRET);
    cfg.limits.max_unauthenticated = 2;
    cfg.limits.max_dials = 3;
    cfg.seeds = (0..10).map(|i| addr(7100 + i)).collect();
    let mut node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    node.handle_timeout(Instant::ZERO);
    let dials = core::iter::from_fn(|| node.poll_action())
        .filter(|a| matches!(a, Action::Dial { .. }))
        .count();
    assert_eq!(dials, 3, "at most max_dials at once");
    // Slow dials do not take inbound slots.
    for i in 0..2 {
        assert!(node.handle_inbound(Instant::ZERO, addr(9000 + i)).is_some());
    }
    // Nor does the cap make the node spin: the next dial is not due at once.
    let next = node.poll_timeout().expect("scheduled");
    assert!(next > Instant::ZERO);
}

/// Two nodes that dial each other at once, their bytes delivered round by
/// round with connection `first` (by rank of its id) served first.
fn simultaneous_dials(first: usize) -> (Vec<crate::Event>, Vec<crate::Event>, Node, Node) {
    let mk = |id: &str, port: u16, seed: u16| {
        let mut cfg = Config::new(NodeId::new(id).expect("valid"), SECRET);
        cfg.listen_addrs = alloc::vec![addr(port)];
        cfg.seeds = alloc::vec![addr(seed)];
        let mut n = Node::new(cfg, 1, [port as u8; 32], Instant::ZERO).expect("valid");
        let p = n.open_port();
        n.register("g", &p).expect("valid");
        n
    };
    let (mut x, mut y) = (mk("x", 7000, 7001), mk("y", 7001, 7000));
    let now = Instant::ZERO;
    x.handle_timeout(now);
    y.handle_timeout(now);
    let dial = |n: &mut Node| match n.poll_action() {
        Some(Action::Dial { conn, .. }) => conn,
        other => panic!("a dial: {other:?}"),
    };
    let (xo, yo) = (dial(&mut x), dial(&mut y));
    let yi = y.handle_inbound(now, addr(50_000)).expect("room");
    let xi = x.handle_inbound(now, addr(50_001)).expect("room");
    x.handle_dialed(now, xo);
    y.handle_dialed(now, yo);
    // Links: x's dial (xo ↔ yi) and y's dial (yo ↔ xi).
    let (mut ex, mut ey) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let mut tx: Vec<(bool, ConnId, Vec<u8>)> = Vec::new();
        while let Some(t) = x.poll_transmit() {
            tx.push((true, t.conn, t.data));
        }
        while let Some(t) = y.poll_transmit() {
            tx.push((false, t.conn, t.data));
        }
        while let Some(a) = x.poll_action() {
            if let Action::Close { conn } = a {
                let other = if conn == xo { yi } else { yo };
                y.handle_closed(now, other);
            }
        }
        while let Some(a) = y.poll_action() {
            if let Action::Close { conn } = a {
                let other = if conn == yo { xi } else { xo };
                x.handle_closed(now, other);
            }
        }
        ex.extend(core::iter::from_fn(|| x.poll_event()));
        ey.extend(core::iter::from_fn(|| y.poll_event()));
        if tx.is_empty() {
            break;
        }
        // Link 0 is x's dial, link 1 y's; `first` goes first this round.
        tx.sort_by_key(|(from_x, conn, _)| {
            let link = usize::from(!((*from_x && *conn == xo) || (!*from_x && *conn == yi)));
            link != first
        });
        for (from_x, conn, data) in tx {
            match (from_x, conn) {
                (true, c) if c == xo => y.handle_bytes(now, yi, &data),
                (true, _) => y.handle_bytes(now, yo, &data),
                (false, c) if c == yo => x.handle_bytes(now, xi, &data),
                (false, _) => x.handle_bytes(now, xo, &data),
            }
        }
    }
    (ex, ey, x, y)
}

#[test]
fn two_nodes_dialling_each_other_keep_one_connection_and_never_go_down() {
    for first in [0, 1] {
        let (ex, ey, x, y) = simultaneous_dials(first);
        for (events, n) in [(&ex, &x), (&ey, &y)] {
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, crate::Event::NodeDown { .. })),
                "a flap: {events:?}"
            );
            assert_eq!(n.stats().connections, 1, "{events:?}");
            assert_eq!(n.connected_nodes().count(), 1);
            assert_eq!(n.members("g").map(<[_]>::len), Some(2));
            let ups = events
                .iter()
                .filter(|e| matches!(e, crate::Event::NodeUp { .. }))
                .count();
            assert_eq!(ups, 1, "{events:?}");
        }
    }
}

#[test]
fn a_superseded_connection_is_handed_over_only_to_an_authenticated_one() {
    // x is up on one connection, and a recording of its first message
    // greets the node on another.
    let recording = {
        let mut p = super::RawPeer::connect(super::new_node("n"));
        p.channel.start(&hello("x", 9));
        p.channel.take_wire()
    };
    let mut live = super::RawPeer::authenticated(super::new_node("n"), "x");
    live.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    assert_eq!(live.node.connected_nodes().count(), 1);
    let replay = live
        .node
        .handle_inbound(Instant::ZERO, addr(9300))
        .expect("room");
    live.node.handle_bytes(Instant::ZERO, replay, &recording);
    live.drain();
    // x closes its live connection as superseded: nothing proven takes over.
    live.send(&Frame::Close {
        reason: WireReason::Superseded,
    });
    assert!(
        live.events
            .iter()
            .any(|e| matches!(e, crate::Event::NodeDown { .. })),
        "handed to an unproven connection: {:?}",
        live.events
    );
    assert_eq!(live.node.connected_nodes().count(), 0);
}

#[test]
fn a_stale_incarnation_never_replaces_a_newer_one() {
    let mut live = super::RawPeer::authenticated(super::new_node("n"), "x");
    live.send(&Frame::Sync {
        groups: Default::default(),
        done: true,
    });
    // The dead older incarnation's connection authenticates late.
    let mut late = super::RawPeer::connect_with(live.node, SECRET, 9400);
    late.handshake(&hello("x", 5));
    assert_eq!(
        late.close_reason(),
        Some(crate::CloseReason::StaleIncarnation)
    );
    assert!(!late
        .events
        .iter()
        .any(|e| matches!(e, crate::Event::NodeDown { .. })));
    assert_eq!(late.node.connected_nodes().count(), 1);
    assert_eq!(late.node.stats().authenticated, 1);
}
