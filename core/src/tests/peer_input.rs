//! What a connected peer's frames do to the view: snapshot, updates, limits,
//! loss, restarts.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{
    deltas, hello, new_node, port, update_with_meta, wire_group as g, wire_ports, RawPeer, SECRET,
};
use crate::event::{CloseReason, Event, Limit};
use crate::ids::NodeId;
use crate::wire::{BoundedVec, Frame, GroupPorts, LeaveReason};
use crate::{Config, Instant, Node};

fn sync(entries: &[(&str, &[u64])], done: bool) -> Frame {
    Frame::Sync {
        groups: BoundedVec::try_from_vec(
            entries
                .iter()
                .map(|(name, ports)| GroupPorts {
                    group: g(name),
                    ports: wire_ports(&ports.iter().map(|&n| (n, &[][..])).collect::<Vec<_>>()),
                })
                .collect(),
        )
        .expect("short"),
        done,
    }
}

fn update(name: &str, joined: &[u64], left: &[u64]) -> Frame {
    let joined: Vec<(u64, &[u8])> = joined.iter().map(|&n| (n, &[][..])).collect();
    let left: Vec<(u64, LeaveReason)> = left
        .iter()
        .map(|&n| (n, LeaveReason::Unregistered))
        .collect();
    update_with_meta(name, &joined, &left)
}

#[test]
fn a_snapshot_split_over_frames_is_applied_in_one_delta() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&sync(&[("g", &[1, 2])], false));
    assert_eq!(p.node.members("g"), None, "nothing published before `done`");
    p.send(&sync(&[("g", &[3])], true));
    let want = vec![port("x", 9, 1), port("x", 9, 2), port("x", 9, 3)];
    assert_eq!(p.node.members("g"), Some(&want[..]));
    let d = deltas(&p.events);
    assert_eq!(d.len(), 1);
    assert_eq!((&d[0].members, &d[0].added), (&want, &want));
}

#[test]
fn updates_after_the_snapshot_are_applied_as_they_come() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[], true));
    p.send(&update("g", &[5, 4], &[]));
    assert_eq!(
        p.node.members("g"),
        Some(&[port("x", 9, 4), port("x", 9, 5)][..])
    );
    p.send(&update("g", &[], &[4, 99]));
    assert_eq!(p.node.members("g"), Some(&[port("x", 9, 5)][..]));
}

#[test]
fn a_port_that_joins_and_leaves_in_one_frame_changes_nothing() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&sync(&[], true));
    p.send(&update("g", &[7], &[7]));
    assert_eq!(p.node.members("g"), None);
    assert!(deltas(&p.events).is_empty());
}

#[test]
fn lost_node_members_vanish_in_one_delta_per_group() {
    let mut node = new_node("n");
    let local = node.open_port();
    node.register("a", &local).expect("local");
    node.monitor("a").expect("valid");
    node.monitor("b").expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&sync(&[("a", &[1, 2]), ("b", &[3])], true));
    p.events.clear();
    let (now, conn) = (p.now, p.conn);
    p.node.handle_closed(now, conn);
    p.drain();
    let d = deltas(&p.events);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].removed, vec![port("x", 9, 1), port("x", 9, 2)]);
    assert_eq!(d[0].members, vec![local.clone()]);
    assert_eq!(d[1].removed, vec![port("x", 9, 3)]);
    assert_eq!(p.node.members("a"), Some(&[local][..]));
    assert_eq!(p.node.members("b"), None);
    assert!(p.events.iter().any(|e| matches!(
        e,
        Event::NodeDown {
            reason: CloseReason::Disconnected,
            ..
        }
    )));
}

#[test]
fn too_many_groups_from_one_peer_close_it_and_keep_everyone_else() {
    let mut cfg = Config::new(NodeId::new("n").expect("id"), SECRET);
    cfg.limits.max_groups_per_peer = 2;
    let mut node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    let mine = node.open_port();
    node.register("mine", &mine).expect("local");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&sync(&[], true));
    p.send(&update("g1", &[1], &[]));
    p.send(&update("g2", &[1], &[]));
    assert_eq!(p.close_reason(), None);
    p.send(&update("g3", &[1], &[]));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::Groups))
    );
    assert_eq!(
        p.node.members("g1"),
        None,
        "the closed peer's members are gone"
    );
    assert_eq!(
        p.node.members("mine"),
        Some(&[mine][..]),
        "ours are untouched"
    );
}

#[test]
fn too_many_members_in_a_snapshot_close_the_connection() {
    let mut cfg = Config::new(NodeId::new("n").expect("id"), SECRET);
    cfg.limits.max_members_per_peer = 3;
    let node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&sync(&[("g", &[1, 2, 3, 4])], true));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::Members))
    );
    assert_eq!(p.node.members("g"), None);
}

#[test]
fn a_restarted_peer_replaces_its_old_incarnation_in_one_delta() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mut old = RawPeer::authenticated(node, "x");
    old.send(&sync(&[("g", &[1])], true));
    // The old connection stays half-open; the new incarnation connects.
    let mut fresh = RawPeer::connect_with(old.node, SECRET, 9001);
    fresh.events.clear();
    fresh.handshake(&hello("x", 10));
    assert_eq!(
        fresh.node.members("g"),
        Some(&[port("x", 9, 1)][..]),
        "until the new snapshot"
    );
    fresh.send(&sync(&[("g", &[1])], true));
    assert_eq!(fresh.node.members("g"), Some(&[port("x", 10, 1)][..]));
    let d = deltas(&fresh.events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].added, vec![port("x", 10, 1)]);
    assert_eq!(d[0].removed, vec![port("x", 9, 1)]);
    assert!(fresh.events.iter().any(|e| matches!(
        e,
        Event::ConnectionClosed {
            reason: CloseReason::Restarted,
            ..
        }
    )));
}

fn gossip(p: &mut RawPeer, names: &[&str]) {
    let nodes = names
        .iter()
        .map(|n| crate::wire::PeerInfo {
            node: super::wire_id(n),
            addrs: heapless::Vec::new(),
        })
        .collect();
    p.send(&Frame::Peers {
        nodes: BoundedVec::try_from_vec(nodes).expect("short"),
    });
}

#[test]
fn a_node_whose_greeting_arrived_is_not_dialled_across_it() {
    use crate::channel::Channel;
    use crate::event::Action;
    use crate::handshake::Psk;
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    let t = p.node.config().timeouts.clone();
    // x tells of a, whose id is smaller: n expects a to dial, and waits
    // `gossip_dial_delay` before it dials a itself.
    let a_addr = super::addr(7000);
    let mut addrs = heapless::Vec::new();
    addrs.push(a_addr.into()).expect("room");
    p.send(&Frame::Peers {
        nodes: BoundedVec::try_from_vec(vec![crate::wire::PeerInfo {
            node: super::wire_id("a"),
            addrs,
        }])
        .expect("short"),
    });
    // a's dial reaches n first: its greeting arrives.
    let at = Instant::from_millis(10);
    let conn = p.node.handle_inbound(at, super::addr(9500)).expect("room");
    let mut ch = Channel::new(true, &Psk::derive(SECRET), 1 << 24, [5; 32]);
    ch.start(&hello("a", 9));
    p.node.handle_bytes(at, conn, &ch.take_wire());
    let dials_to_a = |node: &mut Node, now: Instant| {
        node.handle_timeout(now);
        core::iter::from_fn(|| node.poll_action())
            .filter(|a| matches!(a, Action::Dial { addr, .. } if *addr == a_addr))
            .count()
    };
    // Past the delay, n does not dial a: two handshakes would cross for the
    // one connection the pair keeps.
    assert_eq!(dials_to_a(&mut p.node, at + t.gossip_dial_delay), 0);
    // a's handshake never finishes: once it has had its time, n dials a.
    assert_eq!(dials_to_a(&mut p.node, at + t.handshake_timeout), 1);
}

fn limited(max_known_nodes: usize) -> Node {
    let mut cfg = Config::new(NodeId::new("n").expect("id"), SECRET);
    cfg.limits.max_known_nodes = max_known_nodes;
    Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid")
}

#[test]
fn gossip_past_the_known_node_limit_evicts_unconnected_nodes_and_stays_bounded() {
    let mut p = RawPeer::authenticated(limited(2), "x");
    gossip(&mut p, &["m0", "m1", "m2"]);
    assert_eq!(p.close_reason(), None);
    assert_eq!(
        p.node.stats().known_nodes,
        2,
        "x and the latest gossiped node"
    );
}

#[test]
fn gossip_when_every_known_node_is_in_use_closes_the_connection() {
    let mut p = RawPeer::authenticated(limited(1), "x");
    gossip(&mut p, &["m0"]);
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::KnownNodes))
    );
}

/// Seen at N=200 on 2 cores: processes that did not run for seconds woke
/// up, found every peer silent past the keepalive timeout and closed them
/// all, though the peers' pings sat unread in the sockets.
#[test]
fn a_node_woken_late_gives_its_peers_a_ping_interval_before_calling_them_dead() {
    let mut live = RawPeer::authenticated(new_node("n"), "x");
    live.send(&sync(&[], true));
    let t = live.node.config().timeouts.clone();
    let due = live.node.poll_timeout().expect("a ping is due");
    // The node wakes 10 s after the deadline it asked for.
    let woke = due + core::time::Duration::from_secs(10);
    live.node.handle_timeout(woke);
    live.drain();
    assert_eq!(live.close_reason(), None, "spared: it may be our own stall");
    // The peer's ping, read from the socket now, keeps it.
    live.now = woke;
    live.send(&Frame::Ping);
    live.node.handle_timeout(woke + t.ping_interval);
    live.drain();
    assert_eq!(live.close_reason(), None);

    // A peer that is really gone is closed a ping interval after the wake-up,
    // and sparing it happens once: a node always late does not keep it.
    let mut gone = RawPeer::authenticated(new_node("n"), "x");
    gone.send(&sync(&[], true));
    let due = gone.node.poll_timeout().expect("a ping is due");
    let woke = due + core::time::Duration::from_secs(10);
    gone.node.handle_timeout(woke);
    gone.drain();
    assert_eq!(gone.close_reason(), None);
    let next = gone.node.poll_timeout().expect("a deadline");
    assert!(next <= woke + t.ping_interval, "{next:?}");
    gone.node
        .handle_timeout(woke + core::time::Duration::from_secs(10));
    gone.drain();
    assert_eq!(gone.close_reason(), Some(CloseReason::KeepaliveTimeout));
}

#[test]
fn a_node_on_time_closes_a_silent_peer_at_its_keepalive_timeout() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[], true));
    let t = p.node.config().timeouts.clone();
    let mut now = Instant::ZERO;
    while p.close_reason().is_none() {
        now = p.node.poll_timeout().expect("a deadline");
        p.node.handle_timeout(now);
        p.drain();
    }
    assert_eq!(p.close_reason(), Some(CloseReason::KeepaliveTimeout));
    assert_eq!(now, Instant::ZERO + t.keepalive_timeout);
}

#[test]
fn a_timeout_before_the_deadline_changes_nothing() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[], true));
    let next = p.node.poll_timeout().expect("keepalive scheduled");
    let before = p.got.len();
    p.node
        .handle_timeout(Instant::from_millis(next.as_millis() - 1));
    p.drain();
    assert_eq!(p.got.len(), before);
    assert_eq!(p.node.poll_timeout(), Some(next));
    p.node.handle_timeout(next);
    p.drain();
    assert_eq!(p.got.last(), Some(&Frame::Ping));
}

#[test]
fn a_silent_peer_is_dropped_after_the_keepalive_timeout() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[("g", &[1])], true));
    let timeout = p.node.config().timeouts.keepalive_timeout;
    let mut now = Instant::ZERO;
    while p.close_reason().is_none() {
        now = p.node.poll_timeout().expect("scheduled");
        p.node.handle_timeout(now);
        p.drain();
    }
    assert_eq!(now, Instant::ZERO + timeout);
    assert_eq!(p.close_reason(), Some(CloseReason::KeepaliveTimeout));
    assert_eq!(p.node.members("g"), None);
}

#[test]
fn a_peer_list_is_cut_to_the_receivers_frame_size_and_names_every_peer() {
    // 80 peers with long ids: their list is far over 1 KiB.
    let mut node = new_node("n");
    let names: Vec<String> = (0..80)
        .map(|i| format!("{i:02}-{}", "x".repeat(60)))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let mut p = RawPeer::connect_with(node, SECRET, 10_000 + i as u16);
        let mut h = hello(name, 9);
        h.addrs
            .push(crate::wire::WireAddr::from(super::addr(20_000 + i as u16)))
            .expect("room");
        p.handshake(&h);
        p.send(&sync(&[], true));
        node = p.node;
    }
    // A peer that takes frames of 1 KiB at most.
    let mut small = RawPeer::connect_with(node, SECRET, 9999);
    let mut h = hello("observer", 9);
    h.max_frame = 1024;
    small.handshake(&h);
    assert_eq!(small.close_reason(), None);
    let mut listed = Vec::new();
    for f in &small.got {
        if let Frame::Peers { nodes } = f {
            let len = super::framed(f).len() - crate::wire::LEN_PREFIX;
            assert!(len <= 1024, "a Peers frame of {len} bytes");
            listed.extend(nodes.iter().map(|i| String::from(i.node.as_str())));
        }
    }
    listed.sort();
    assert_eq!(listed, names, "every connected node, once");
}

#[test]
fn no_ping_goes_out_while_updates_flow() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[], true));
    let ping = p.node.config().timeouts.ping_interval;
    let port = p.node.open_port();
    let before = p.got.len();
    // A change every third of the ping interval, for three intervals.
    for step in 1..=9u64 {
        p.now = Instant::ZERO + ping * (step as u32) / 3;
        // The peer keeps talking too, so nothing times out.
        p.send(&update("g", &[step], &[]));
        let reg = p.node.register("g", &port).expect("valid");
        p.node.handle_timeout(p.now);
        p.drain();
        p.node.unregister(reg).expect("live");
        p.drain();
    }
    let sent = &p.got[before..];
    assert!(sent.iter().any(|f| matches!(f, Frame::Update { .. })));
    assert!(
        !sent.contains(&Frame::Ping),
        "a ping while updates flowed: {sent:?}"
    );
}

/// n with two peers up, x (returned) and y.
fn two_peers() -> RawPeer {
    let mut y = RawPeer::authenticated(new_node("n"), "y");
    y.send(&sync(&[], true));
    let mut x = RawPeer::connect_with(y.node, SECRET, 9001);
    x.handshake(&hello("x", 9));
    x.send(&sync(&[], true));
    assert_eq!(x.node.connected_nodes().count(), 2);
    x
}

#[test]
fn a_quiet_mesh_gossips_a_digest_not_its_peer_list() {
    let mut x = two_peers();
    x.got.clear();
    let round = x.node.config().timeouts.forget_after / 3;
    // The peers keep talking, so only the gossip is due.
    x.now = Instant::ZERO + round;
    x.send(&Frame::Ping);
    x.node.handle_timeout(x.now);
    x.drain();
    assert!(
        x.got.iter().any(|f| matches!(f, Frame::PeersDigest { .. })),
        "{:?}",
        x.got
    );
    assert!(!x.got.iter().any(|f| matches!(f, Frame::Peers { .. })));
}

#[test]
fn a_digest_that_differs_is_answered_with_the_peer_list() {
    let mut x = two_peers();
    x.got.clear();
    x.send(&Frame::PeersDigest { digest: [0; 16] });
    let listed: Vec<&str> = x
        .got
        .iter()
        .filter_map(|f| match f {
            Frame::Peers { nodes } => Some(nodes.iter().map(|i| i.node.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(listed, ["y"]);
}

#[test]
fn a_stream_shifted_by_one_byte_is_cut_by_the_keepalive_though_bytes_keep_coming() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&sync(&[], true));
    // One byte slipped in on the path: every record after it is misread.
    p.send_bytes(&[0]);
    let keepalive = p.node.config().timeouts.keepalive_timeout;
    let ping = p.node.config().timeouts.ping_interval;
    for step in 1..=4u32 {
        p.now = Instant::ZERO + ping * step;
        p.send(&Frame::Ping); // the peer still sends; nothing opens
        p.node.handle_timeout(p.now);
        p.drain();
    }
    assert!(Instant::ZERO + keepalive <= p.now);
    assert_eq!(p.close_reason(), Some(CloseReason::KeepaliveTimeout));
}

/// A frame whose later entry takes the peer past a limit, after an earlier
/// entry (or the same one) removed a port: the connection closes, and the
/// removed port is not left listed (the view and the group view stay one).
#[test]
fn a_peer_closed_past_a_limit_mid_frame_leaves_no_member_behind() {
    for same_entry in [false, true] {
        let mut cfg = Config::new(NodeId::new("n").expect("valid"), SECRET);
        cfg.limits.max_members_per_peer = 3;
        let node = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid");
        let mut p = RawPeer::authenticated(node, "x");
        p.send(&sync(&[("a", &[1, 2])], true));
        assert_eq!(p.node.members("a").map(<[_]>::len), Some(2));
        let frame = if same_entry {
            update("a", &[10, 11, 12], &[1])
        } else {
            let leave = update("a", &[], &[1]);
            let join = update("b", &[10, 11, 12], &[]);
            let (Frame::Update { groups: l }, Frame::Update { groups: j }) = (leave, join) else {
                unreachable!("updates")
            };
            let both = l.iter().chain(j.iter()).cloned().collect();
            Frame::Update {
                groups: BoundedVec::try_from_vec(both).expect("short"),
            }
        };
        p.send(&frame);
        assert_eq!(
            p.close_reason(),
            Some(CloseReason::LimitExceeded(Limit::Members)),
            "same entry: {same_entry}"
        );
        assert_eq!(p.node.members("a"), None, "same entry: {same_entry}");
        assert_eq!(p.node.members("b"), None, "same entry: {same_entry}");
    }
}
