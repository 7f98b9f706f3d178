//! Our snapshot goes out a chunk at a time: paced by the driver's drained
//! reports, or as fast as transmits are polled; the peer's view is exact
//! however the registrations change while it streams.

use alloc::vec::Vec;

use super::{addr, SECRET};
use crate::{Action, Config, ConnId, Event, Instant, Node, NodeId, PortId, RegId};

/// Bytes a transmit may carry beyond the chunk: the membership that crossed
/// it, record and frame headers, and the few changes riding along.
const SLACK: usize = 128;

const GROUPS: [&str; 3] = ["g1", "g2", "g3"];

/// `a` (holding the memberships) and `b`, connected by hand; bytes are
/// delivered whole, and `a` never hears its connection drained unless a
/// test says so.
struct Pair {
    a: Node,
    b: Node,
    /// `a`'s end and `b`'s end of their connection.
    ends: (ConnId, ConnId),
    now: Instant,
    /// Sizes of the transmits `a` made on the connection.
    a_sent: Vec<usize>,
    b_events: Vec<Event>,
}

impl Pair {
    /// `a` with `ports` ports, each in every one of `groups`, then
    /// connected to `b`.
    fn new(
        chunk: usize,
        paced: bool,
        groups: &[&str],
        ports: usize,
    ) -> (Pair, Vec<(PortId, Vec<RegId>)>) {
        let mut cfg = Config::new(NodeId::new("a").expect("id"), SECRET);
        cfg.seeds = alloc::vec![addr(7001)];
        cfg.snapshot_chunk = chunk;
        cfg.paced_snapshots = paced;
        let mut a = Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid config");
        let mut cfg = Config::new(NodeId::new("b").expect("id"), SECRET);
        cfg.listen_addrs = alloc::vec![addr(7001)];
        let mut b = Node::new(cfg, 1, [2; 32], Instant::ZERO).expect("valid config");
        let regs = (0..ports)
            .map(|_| {
                let p = a.open_port();
                let r = groups.iter().map(|g| a.register(g, &p).expect("valid"));
                (p.clone(), r.collect())
            })
            .collect();
        let now = Instant::ZERO;
        a.handle_timeout(now);
        let Some(Action::Dial { conn: ca, .. }) = a.poll_action() else {
            panic!("a dials its seed");
        };
        let cb = b.handle_inbound(now, addr(9000)).expect("room");
        a.handle_dialed(now, ca);
        let mut pair = Pair {
            a,
            b,
            ends: (ca, cb),
            now,
            a_sent: Vec::new(),
            b_events: Vec::new(),
        };
        pair.pump();
        (pair, regs)
    }

    /// Moves bytes both ways until neither node has any; returns how many
    /// transmits `a` made.
    fn pump(&mut self) -> usize {
        let before = self.a_sent.len();
        let (ca, cb) = self.ends;
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                assert_eq!(t.conn, ca);
                self.a_sent.push(t.data.len());
                self.b.handle_bytes(self.now, cb, &t.data);
                moved = true;
            }
            while let Some(t) = self.b.poll_transmit() {
                self.a.handle_bytes(self.now, ca, &t.data);
                moved = true;
            }
            while let Some(e) = self.b.poll_event() {
                self.b_events.push(e);
            }
            while self.a.poll_event().is_some() {}
            assert!(self.a.poll_action().is_none() && self.b.poll_action().is_none());
            if !moved {
                return self.a_sent.len() - before;
            }
        }
    }

    fn drained(&mut self) {
        self.a.handle_drained(self.now, self.ends.0);
    }

    /// `b` lists exactly `a`'s memberships.
    fn assert_exact(&self) {
        let ours: Vec<&str> = self.a.group_names().collect();
        let theirs: Vec<&str> = self.b.group_names().collect();
        assert_eq!(ours, theirs, "the same groups");
        for g in ours {
            assert_eq!(self.a.members(g), self.b.members(g), "members of {g}");
        }
    }
}

#[test]
fn a_paced_snapshot_goes_out_a_chunk_per_drain_and_the_peer_ends_exact_though_registrations_change_midway(
) {
    let chunk = 64;
    let (mut p, mut regs) = Pair::new(chunk, true, &GROUPS, 200);
    assert_eq!(p.a.stats().snapshots_sending, 1, "the first chunk is out");
    assert_eq!(p.pump(), 0, "nothing more until the connection drains");
    assert_eq!(p.b.members("g1"), None, "b lists none of a part of it");

    let mut rounds = 0;
    let mut extra: Vec<RegId> = Vec::new();
    while p.a.stats().snapshots_sending == 1 {
        rounds += 1;
        // Changes behind the cursor, ahead of it and around it, before
        // the drain report and between it and the chunk it releases.
        match rounds % 4 {
            0 => {
                let q = p.a.open_port();
                extra.push(p.a.register("g0", &q).expect("valid"));
                extra.push(p.a.register("g2", &q).expect("valid"));
                p.drained();
            }
            1 => {
                let (_, first) = regs.remove(0);
                p.a.unregister(first[0]).expect("live");
                let (_, last) = regs.pop().expect("ports left");
                p.a.unregister(last[2]).expect("live");
                p.drained();
            }
            2 => {
                let (port, _) = regs.remove(regs.len() / 2);
                p.a.close_port(&port).expect("live");
                p.drained();
            }
            _ => {
                // Registered and ended before the chunk is made: a chunk
                // made before the change went out would list it for good.
                let q = p.a.open_port();
                let r = p.a.register("g3", &q).expect("valid");
                p.drained();
                p.a.unregister(r).expect("live");
                if let Some(r) = extra.pop() {
                    p.a.unregister(r).expect("live");
                }
            }
        }
        assert_eq!(p.pump(), 1, "one transmit per drain report");
        assert!(
            p.a_sent.iter().all(|&n| n <= chunk + SLACK),
            "{:?}",
            p.a_sent
        );
        assert_eq!(p.pump(), 0, "and nothing more until the next");
        if p.a.stats().snapshots_sending == 1 {
            assert_eq!(p.b.members("g1"), None, "round {rounds}: still none of it");
        }
    }
    assert!(
        rounds >= 10,
        "a snapshot of 600 memberships took {rounds} chunks"
    );
    p.assert_exact();
    let ups = p
        .b_events
        .iter()
        .filter(|e| matches!(e, Event::NodeUp { .. }))
        .count();
    assert_eq!(ups, 1, "a is up at b once its snapshot is whole");

    // Drain reports with nothing to release are harmless.
    p.drained();
    assert_eq!(p.pump(), 0);
    p.assert_exact();
}

#[test]
fn a_registration_made_and_ended_between_two_chunks_is_never_left_listed() {
    // One membership per chunk and one port in each group: after chunk `j`
    // the cursor sits at the end of group `j`, so a port registered there
    // now is the very next membership. Ended before the chunk is made, it
    // must not be in it: its join and leave net away before either is
    // sent, so a chunk that listed it would leave it listed for good.
    let groups: Vec<alloc::string::String> = (0..20).map(|j| alloc::format!("g{j:02}")).collect();
    let names: Vec<&str> = groups.iter().map(|g| g.as_str()).collect();
    let (mut p, _regs) = Pair::new(1, true, &names, 1);
    let mut j = 0;
    while p.a.stats().snapshots_sending == 1 {
        let q = p.a.open_port();
        let r = p.a.register(&groups[j % groups.len()], &q).expect("valid");
        p.drained();
        p.a.unregister(r).expect("live");
        assert_eq!(p.pump(), 1);
        j += 1;
        assert!(j < 100, "the snapshot never ended");
    }
    p.assert_exact();
    assert_eq!(j, groups.len() - 1, "one chunk per group");
}

#[test]
fn an_unpaced_snapshot_comes_out_in_chunks_as_fast_as_transmits_are_polled() {
    let chunk = 64;
    let (p, _regs) = Pair::new(chunk, false, &GROUPS, 200);
    assert_eq!(
        p.a.stats().snapshots_sending,
        0,
        "done without a drain report"
    );
    assert!(p.a_sent.len() >= 10, "{} transmits", p.a_sent.len());
    assert!(
        p.a_sent.iter().all(|&n| n <= chunk + SLACK),
        "{:?}",
        p.a_sent
    );
    assert!(p.a.stats().largest_transmit <= chunk + SLACK);
    p.assert_exact();
}

#[test]
fn an_empty_snapshot_is_one_done_frame_without_a_drain_report() {
    let (p, _) = Pair::new(64, true, &GROUPS, 0);
    assert_eq!(p.a.stats().snapshots_sending, 0);
    assert_eq!(p.b.connected_nodes().count(), 1, "a is up at b");
}
