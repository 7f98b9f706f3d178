//! Member metadata and removal reasons: what registrations and updates
//! send, what a peer's frames do to the view, and what monitors see.

use alloc::vec;
use alloc::vec::Vec;

use super::{deltas, new_node, port, update_with_meta, RawPeer};
use crate::error::ApiError;
use crate::event::{CloseReason, Event, Limit, Removal};
use crate::ids::PortId;
use crate::wire::{BoundedVec, Frame, LeaveReason};
use crate::Meta;

fn meta(bytes: &[u8]) -> Meta {
    Meta::from(bytes)
}

/// A port that joined, with its metadata.
type Joined = (u64, Vec<u8>);

/// The `Update` entries the node sent for `group`: (port, meta) joined and
/// (port, reason) left, over every frame.
fn sent_updates(p: &RawPeer, group: &str) -> (Vec<Joined>, Vec<(u64, LeaveReason)>) {
    let mut joined = Vec::new();
    let mut left = Vec::new();
    for f in &p.got {
        if let Frame::Update { groups } = f {
            for g in groups.iter().filter(|g| g.group.as_str() == group) {
                joined.extend(g.joined.iter().map(|w| (w.number, w.meta.to_vec())));
                left.extend(g.left.iter().map(|l| (l.number, l.reason)));
            }
        }
    }
    (joined, left)
}

fn update(group: &str, joined: &[(u64, &[u8])], left: &[(u64, LeaveReason)]) -> Frame {
    update_with_meta(group, joined, left)
}

fn empty_sync() -> Frame {
    Frame::Sync {
        groups: BoundedVec::new(),
        done: true,
    }
}

#[test]
fn a_metadata_only_change_is_one_event_with_only_updated() {
    let mut n = new_node("n");
    let p = n.open_port();
    let reg = n.register_with_meta("g", &p, b"zone=a").expect("live");
    let m = n.monitor("g").expect("valid");
    let _ = core::iter::from_fn(|| n.poll_event()).count();
    n.update_meta(reg, b"zone=b").expect("live");
    let events: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    let d = deltas(&events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].monitor, m);
    assert!(d[0].added.is_empty() && d[0].removed.is_empty());
    assert_eq!(d[0].updated, vec![p.clone()]);
    assert_eq!(d[0].meta_of(&p), Some(&meta(b"zone=b")));
    let listed: Vec<(PortId, Meta)> = n
        .members_with_meta("g")
        .map(|(p, m)| (p.clone(), m.clone()))
        .collect();
    assert_eq!(listed, vec![(p, meta(b"zone=b"))]);

    // The same metadata again changes nothing, and says nothing.
    n.update_meta(reg, b"zone=b").expect("live");
    assert!(n.poll_event().is_none());
}

#[test]
fn a_monitors_first_event_carries_every_members_metadata() {
    let mut n = new_node("n");
    let (a, b) = (n.open_port(), n.open_port());
    n.register_with_meta("g", &a, b"A").expect("live");
    n.register("g", &b).expect("live");
    n.monitor("g").expect("valid");
    let events: Vec<Event> = core::iter::from_fn(|| n.poll_event()).collect();
    let d = deltas(&events);
    assert_eq!(d[0].added, vec![a.clone(), b.clone()]);
    assert_eq!(d[0].meta, vec![(a, meta(b"A")), (b, meta(b""))]);
}

#[test]
fn metadata_past_max_meta_is_refused_and_changes_nothing() {
    let mut n = new_node("n");
    let p = n.open_port();
    let big = vec![0u8; n.config().limits.max_meta + 1];
    assert_eq!(
        n.register_with_meta("g", &p, &big),
        Err(ApiError::MetaTooLarge {
            len: big.len(),
            max: 1024
        })
    );
    assert_eq!(n.members("g"), None);
    let reg = n.register_with_meta("g", &p, b"ok").expect("live");
    assert!(n.update_meta(reg, &big).is_err());
    assert_eq!(
        n.members_with_meta("g").next().map(|(_, m)| m.clone()),
        Some(meta(b"ok"))
    );
}

#[test]
fn changes_between_two_drains_go_out_as_each_ports_last_state() {
    let mut p = RawPeer::authenticated(new_node("n"), "x");
    p.send(&empty_sync());
    p.got.clear();
    // A join then an update goes out as one join with the last metadata.
    let a = p.node.open_port();
    let ra = p.node.register_with_meta("g", &a, b"1").expect("live");
    p.node.update_meta(ra, b"2").expect("live");
    // A member that changes its metadata and leaves goes out as the leave.
    let b = p.node.open_port();
    let rb = p.node.register("g", &b).expect("live");
    p.drain();
    p.node.update_meta(rb, b"3").expect("live");
    p.node.close_port(&b).expect("live");
    // A join and a leave before peers heard of it go out not at all.
    let c = p.node.open_port();
    let rc = p.node.register_with_meta("g", &c, b"4").expect("live");
    p.node.unregister(rc).expect("live");
    p.drain();
    let (joined, left) = sent_updates(&p, "g");
    assert_eq!(
        joined,
        vec![(a.number(), b"2".to_vec()), (b.number(), Vec::new())]
    );
    assert_eq!(left, vec![(b.number(), LeaveReason::PortClosed)]);
}

#[test]
fn a_peers_metadata_change_is_one_event_with_only_updated() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&empty_sync());
    p.send(&update("g", &[(1, b"a"), (2, b"")], &[]));
    p.events.clear();
    p.send(&update("g", &[(1, b"b"), (2, b"")], &[]));
    let d = deltas(&p.events);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].added.is_empty() && d[0].removed.is_empty());
    assert_eq!(d[0].updated, vec![port("x", 9, 1)]);
    assert_eq!(d[0].meta, vec![(port("x", 9, 1), meta(b"b"))]);
    p.events.clear();
    p.send(&update("g", &[(1, b"b")], &[]));
    assert!(
        deltas(&p.events).is_empty(),
        "nothing changed, nothing said"
    );
}

#[test]
fn removals_say_why_each_port_left() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mine = node.open_port();
    let reg = node.register("g", &mine).expect("live");
    let closed = node.open_port();
    node.register("g", &closed).expect("live");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&empty_sync());
    p.send(&update("g", &[(1, b""), (2, b""), (3, b"")], &[]));
    p.events.clear();

    p.node.unregister(reg).expect("live");
    p.node.close_port(&closed).expect("live");
    p.send(&update(
        "g",
        &[],
        &[(1, LeaveReason::Unregistered), (2, LeaveReason::PortClosed)],
    ));
    let (now, conn) = (p.now, p.conn);
    p.node.handle_closed(now, conn);
    p.drain();
    let reasons: Vec<(PortId, Removal)> = deltas(&p.events)
        .iter()
        .flat_map(|d| d.removed.iter().cloned().zip(d.reasons.iter().copied()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (mine, Removal::Unregistered),
            (closed, Removal::PortClosed),
            (port("x", 9, 1), Removal::Unregistered),
            (port("x", 9, 2), Removal::PortClosed),
            (
                port("x", 9, 3),
                Removal::NodeLost(CloseReason::Disconnected)
            ),
        ]
    );
}

#[test]
fn a_peers_member_past_max_meta_closes_it_and_changes_nothing() {
    let mut node = new_node("n");
    node.monitor("g").expect("valid");
    let mut p = RawPeer::authenticated(node, "x");
    p.send(&empty_sync());
    p.send(&update("g", &[(1, &[0; 1025])], &[]));
    assert_eq!(
        p.close_reason(),
        Some(CloseReason::LimitExceeded(Limit::MetaSize))
    );
    assert_eq!(p.node.members("g"), None);
}
