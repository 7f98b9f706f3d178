//! The harness of the node targets: one core, and the harness acting as
//! every peer it talks to, checking the core's promises as it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use groupmesh_core::wire::{Frame, Hello, WireAddr, WireNodeId};
use groupmesh_core::{
    Action, Channel, Config, ConnId, Event, Input, Instant, MonitorId, Node, NodeId, PortId,
    PortMonitorId, Psk, RegId,
};

use super::ops::{HandshakeOp, Key, Op, PortChoice, Who};

pub(crate) const SECRET: &[u8] = b"fuzz secret";
pub(crate) const NODE_ID: &str = "target";

pub(crate) fn framed(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

pub(crate) fn small_limits() -> Config {
    let mut cfg = Config::new(NodeId::new(NODE_ID).expect("valid id"), SECRET);
    cfg.listen_addrs = vec![addr(7000)];
    cfg.seeds = vec![addr(7001)];
    cfg.limits.max_frame = 4096;
    cfg.limits.max_groups_per_peer = 4;
    cfg.limits.max_members_per_peer = 32;
    cfg.limits.max_known_nodes = 6;
    cfg.limits.max_connections = 8;
    cfg.limits.max_unauthenticated = 4;
    // Snapshots of more than a membership or two stream, a chunk per
    // `Op::Drained`.
    cfg.snapshot_chunk = 32;
    cfg.paced_snapshots = true;
    cfg
}

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) const GROUPS: [&str; 4] = ["a", "b", "c", "a-group-name-of-some-length"];

/// What the harness knows of one connection, as the remote side.
#[derive(Debug, Default)]
pub(crate) struct Remote {
    /// Our end of the channel, once the harness started it.
    pub(crate) channel: Option<Channel>,
    /// The node dialled (the harness is the responder).
    pub(crate) dialled: bool,
    /// What the node sent before our channel existed.
    pub(crate) early: Vec<u8>,
    /// Our channel holds the right key.
    pub(crate) right_key: bool,
    /// The node id our greeting claimed.
    pub(crate) claimed: Option<String>,
    pub(crate) open: bool,
}

impl Remote {
    /// The harness proved the key on this connection (it could be authenticated).
    pub(crate) fn proved(&self) -> bool {
        self.right_key && self.channel.as_ref().is_some_and(|c| c.is_keyed())
    }
}

/// A node and the harness acting as every peer it talks to.
pub(crate) struct Harness {
    pub(crate) node: Node,
    pub(crate) now: Instant,
    pub(crate) conns: BTreeMap<ConnId, Remote>,
    pub(crate) order: Vec<ConnId>,
    pub(crate) ports: Vec<PortId>,
    pub(crate) regs: Vec<RegId>,
    pub(crate) monitors: BTreeMap<MonitorId, (String, Option<BTreeSet<PortId>>)>,
    pub(crate) port_monitors: BTreeSet<PortMonitorId>,
    pub(crate) events: Vec<Event>,
    /// Bytes seen on any connection, either way, for replays (the first few).
    pub(crate) recorded: Vec<Vec<u8>>,
    pub(crate) shut_down: bool,
    /// Draining is held back (see `Op::Cork`).
    pub(crate) corked: bool,
    /// Monitors ended while events for them may still be undrained.
    pub(crate) ended_monitors: BTreeSet<MonitorId>,
    pub(crate) ended_port_monitors: BTreeSet<PortMonitorId>,
}

impl Harness {
    pub(crate) fn new(cfg: Config) -> Harness {
        let node = Node::new(cfg, 1, [7; 32], Instant::ZERO).expect("valid config");
        let mut h = Harness {
            node,
            now: Instant::ZERO,
            conns: BTreeMap::new(),
            order: Vec::new(),
            ports: Vec::new(),
            regs: Vec::new(),
            monitors: BTreeMap::new(),
            port_monitors: BTreeSet::new(),
            events: Vec::new(),
            recorded: Vec::new(),
            shut_down: false,
            corked: false,
            ended_monitors: BTreeSet::new(),
            ended_port_monitors: BTreeSet::new(),
        };
        h.drain();
        h
    }

    pub(crate) fn pick(&self, i: u8) -> Option<ConnId> {
        (!self.order.is_empty()).then(|| self.order[usize::from(i) % self.order.len()])
    }

    pub(crate) fn inbound(&mut self) -> Option<ConnId> {
        let id = self.node.handle_inbound(self.now, addr(9000))?;
        self.track(id);
        self.drain();
        Some(id)
    }

    /// Starts playing the remote side of a new connection.
    pub(crate) fn track(&mut self, id: ConnId) {
        self.conns.insert(
            id,
            Remote {
                open: true,
                ..Remote::default()
            },
        );
        self.order.push(id);
    }

    /// A peer that completed the handshake and sent an empty snapshot.
    pub(crate) fn authenticated_peer(&mut self) -> ConnId {
        let id = self.inbound().expect("room for one connection");
        self.join(id, 0);
        id
    }

    pub(crate) fn join(&mut self, id: ConnId, peer: u8) {
        self.start(id, Who::Peer(peer), 1, Key::Right);
        self.frame(
            id,
            &Frame::Sync {
                groups: Default::default(),
                done: true,
            },
        );
    }

    /// Starts our end of the handshake on `id`.
    pub(crate) fn start(&mut self, id: ConnId, who: Who, incarnation: u8, key: Key) {
        let Some(r) = self.conns.get_mut(&id).filter(|r| r.channel.is_none()) else {
            return;
        };
        let mut node = WireNodeId::new();
        match who {
            Who::Peer(p) => {
                let _ = node.push_str(["p0", "p1", "p2", "p3"][usize::from(p) % 4]);
            }
            Who::Target => {
                let _ = node.push_str(NODE_ID);
            }
            Who::Empty => {}
        }
        let mut addrs = heapless::Vec::new();
        let _ = addrs.push(WireAddr::from(addr(8000 + u16::from(incarnation % 4))));
        let hello = Hello {
            node,
            incarnation: u64::from(incarnation),
            epoch: u64::from(incarnation),
            addrs,
            max_frame: 4096,
            port_credit: 4,
        };
        r.right_key = matches!(key, Key::Right);
        r.claimed = Some(String::from(hello.node.as_str()));
        let psk = Psk::derive(if r.right_key { SECRET } else { b"wrong" });
        let seed = [id.0 as u8; 32];
        let mut channel = Channel::new(!r.dialled, &psk, 1 << 24, seed);
        channel.start(&hello);
        r.channel = Some(channel);
        let early = std::mem::take(&mut r.early);
        self.read(id, &early);
        self.flush(id);
    }

    /// Feeds what the node sent into our end of `id`, answering a greeting.
    pub(crate) fn read(&mut self, id: ConnId, mut bytes: &[u8]) {
        let Some(r) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(channel) = r.channel.as_mut() else {
            r.early.extend_from_slice(bytes);
            return;
        };
        while let Ok(Some(input)) = channel.next(&mut bytes) {
            if let Input::Greeting(_) = input {
                channel.answer();
            }
        }
    }

    /// Sends what our end of `id` wrote.
    pub(crate) fn flush(&mut self, id: ConnId) {
        let bytes = self
            .conns
            .get_mut(&id)
            .and_then(|r| r.channel.as_mut())
            .map(|c| c.take_wire())
            .unwrap_or_default();
        if !bytes.is_empty() {
            self.bytes(id, &bytes);
        }
    }

    /// `plain` sealed by our end of `id` (empty if it is not keyed).
    pub(crate) fn seal(&mut self, id: ConnId, plain: &mut Vec<u8>) -> Vec<u8> {
        let Some(c) = self.conns.get_mut(&id).and_then(|r| r.channel.as_mut()) else {
            return Vec::new();
        };
        c.seal(plain);
        c.take_wire()
    }

    pub(crate) fn frame(&mut self, id: ConnId, frame: &Frame) {
        let mut plain = framed(frame);
        let keyed = self
            .conns
            .get(&id)
            .and_then(|r| r.channel.as_ref())
            .is_some_and(|c| c.is_keyed());
        let bytes = if keyed {
            self.seal(id, &mut plain)
        } else {
            plain
        };
        self.bytes(id, &bytes);
    }

    pub(crate) fn bytes(&mut self, id: ConnId, bytes: &[u8]) {
        self.record(bytes);
        self.node.handle_bytes(self.now, id, bytes);
        self.drain();
    }

    pub(crate) fn record(&mut self, bytes: &[u8]) {
        if self.recorded.len() < 16 && !bytes.is_empty() {
            self.recorded.push(bytes.to_vec());
        }
    }

    pub(crate) fn apply(&mut self, op: Op) {
        match op {
            Op::Handshake(op) => self.apply_handshake(op),
            Op::Join(p) => {
                if let Some(id) = self.inbound() {
                    self.join(id, p);
                }
            }
            Op::Bytes(c, bytes) => {
                if let Some(id) = self.pick(c) {
                    self.bytes(id, &bytes);
                }
            }
            Op::DialFailed(c) => {
                if let Some(id) = self.pick(c) {
                    self.node.handle_dial_failed(self.now, id);
                    self.drain();
                }
            }
            Op::Overflow(c) => {
                if let Some(id) = self.pick(c) {
                    self.node.handle_send_overflow(self.now, id);
                    self.drain();
                }
            }
            Op::Drained(c) => {
                if let Some(id) = self.pick(c) {
                    self.node.handle_drained(self.now, id);
                    self.drain();
                }
            }
            Op::OpenPort => {
                let p = self.node.open_port();
                self.ports.push(p);
            }
            Op::ClosePort(i) => {
                if let Some(p) = pick(&self.ports, i) {
                    let _ = self.node.close_port(&p);
                    self.drain();
                }
            }
            Op::Register(g, i) => self.register(g, i, &[]),
            Op::RegisterWithMeta(g, i, meta) => self.register(g, i, &meta),
            Op::UpdateMeta(i, meta) => {
                if let Some(r) = pick(&self.regs, i) {
                    let _ = self.node.update_meta(r, &meta);
                    self.drain();
                }
            }
            Op::Unregister(i) => {
                if let Some(r) = pick(&self.regs, i) {
                    let _ = self.node.unregister(r);
                    self.drain();
                }
            }
            Op::Monitor(g) => {
                let group = GROUPS[usize::from(g) % 4];
                if let Ok(m) = self.node.monitor(group) {
                    self.monitors.insert(m, (String::from(group), None));
                }
                self.drain();
            }
            Op::Unmonitor(i) => {
                let ids: Vec<MonitorId> = self.monitors.keys().copied().collect();
                if let Some(m) = pick(&ids, i) {
                    self.node
                        .unmonitor(m)
                        .expect("the harness only ends live monitors");
                    self.monitors.remove(&m);
                    if self.corked {
                        self.ended_monitors.insert(m);
                    }
                }
            }
            Op::AddSeed(p) => {
                self.node.add_seed(self.now, addr(p));
            }
            Op::Shutdown => {
                self.node.shutdown(self.now);
                self.shut_down = true;
                self.drain();
            }
            Op::Send { to, from, len } => {
                let Some(to) = self.port(to) else {
                    return;
                };
                let from = from.and_then(|i| pick(&self.ports, i));
                let payload = vec![0x5a; usize::from(len)];
                let _ = self.node.send(&to, from.as_ref(), &payload);
                self.drain();
            }
            Op::MonitorPort(choice) => {
                if let Some(port) = self.port(choice) {
                    if let Ok(id) = self.node.monitor_port(&port) {
                        self.port_monitors.insert(id);
                    }
                    self.drain();
                }
            }
            Op::Cork(corked) => {
                self.corked = corked;
                self.drain();
            }
            Op::Read(i, n) => {
                if let Some(p) = pick(&self.ports, i) {
                    self.node.message_read(&p, usize::from(n));
                    self.drain();
                }
            }
            Op::UnmonitorPort(i) => {
                let ids: Vec<PortMonitorId> = self.port_monitors.iter().copied().collect();
                if let Some(id) = pick(&ids, i) {
                    let ended = self.node.unmonitor_port(id);
                    if self.corked {
                        // It may have fired already, its notice undrained.
                        self.ended_port_monitors.insert(id);
                    } else {
                        ended.expect("the harness only ends live port monitors");
                    }
                    self.port_monitors.remove(&id);
                    self.drain();
                }
            }
        }
    }

    pub(crate) fn port(&self, choice: PortChoice) -> Option<PortId> {
        match choice {
            PortChoice::Local(i) => pick(&self.ports, i),
            PortChoice::Remote {
                peer,
                incarnation,
                number,
            } => Some(PortId::new(
                NodeId::new(["p0", "p1", "p2", "p3"][usize::from(peer) % 4]).expect("valid id"),
                u64::from(incarnation % 4),
                u64::from(number % 4),
            )),
        }
    }

    pub(crate) fn apply_handshake(&mut self, op: HandshakeOp) {
        match op {
            HandshakeOp::Inbound => {
                let _ = self.inbound();
            }
            HandshakeOp::Dialed(c) => {
                if let Some(id) = self.pick(c) {
                    self.node.handle_dialed(self.now, id);
                    self.drain();
                }
            }
            HandshakeOp::Start {
                conn,
                who,
                incarnation,
                key,
            } => {
                if let Some(id) = self.pick(conn) {
                    self.start(id, who, incarnation, key);
                }
            }
            HandshakeOp::Replay { conn, which } => {
                if let (Some(id), Some(bytes)) = (self.pick(conn), pick(&self.recorded, which)) {
                    self.node.handle_bytes(self.now, id, &bytes);
                    self.drain();
                }
            }
            HandshakeOp::Frame(c, frame) => {
                if let Some(id) = self.pick(c) {
                    self.frame(id, &frame);
                }
            }
            HandshakeOp::Raw(c, bytes) => {
                if let Some(id) = self.pick(c) {
                    self.bytes(id, &bytes);
                }
            }
            HandshakeOp::Closed(c) => {
                if let Some(id) = self.pick(c) {
                    self.node.handle_closed(self.now, id);
                    if let Some(r) = self.conns.get_mut(&id) {
                        r.open = false;
                    }
                    self.drain();
                }
            }
            HandshakeOp::Timeout(ms) => {
                self.now = self.now + Duration::from_millis(u64::from(ms));
                self.node.handle_timeout(self.now);
                self.drain();
                if let Some(t) = self.node.poll_timeout() {
                    assert!(
                        t > self.now,
                        "a fired timer must not stay due ({t:?} <= {:?})",
                        self.now
                    );
                }
            }
        }
    }

    /// Drains every output (capped: a node that keeps producing is a bug),
    /// then sends what our ends of the channels wrote in answer.
    /// Registers our port `i` in a group with `meta` (refused past
    /// `max_meta`, changing nothing).
    fn register(&mut self, g: u8, i: u8, meta: &[u8]) {
        if let Some(p) = pick(&self.ports, i) {
            if let Ok(r) = self
                .node
                .register_with_meta(GROUPS[usize::from(g) % 4], &p, meta)
            {
                self.regs.push(r);
            }
            self.drain();
        }
    }

    pub(crate) fn drain(&mut self) {
        if self.corked {
            return;
        }
        let mut answered = BTreeSet::new();
        for _ in 0..100_000 {
            if let Some(t) = self.node.poll_transmit() {
                assert!(!t.data.is_empty(), "no empty transmits");
                self.record(&t.data);
                self.read(t.conn, &t.data);
                answered.insert(t.conn);
                continue;
            }
            if let Some(a) = self.node.poll_action() {
                match a {
                    Action::Dial { conn, .. } => {
                        assert!(!self.shut_down, "no dials after shutdown");
                        self.track(conn);
                        if let Some(r) = self.conns.get_mut(&conn) {
                            r.dialled = true;
                        }
                    }
                    Action::Close { conn } => {
                        if let Some(r) = self.conns.get_mut(&conn) {
                            r.open = false;
                        }
                    }
                    // `Action` is `#[non_exhaustive]`: a new kind needs handling here.
                    other => panic!("unknown action {other:?}"),
                }
                continue;
            }
            if let Some(e) = self.node.poll_event() {
                self.observe(&e);
                self.events.push(e);
                continue;
            }
            for id in answered {
                if self.conns.get(&id).is_some_and(|r| r.open) {
                    self.flush(id);
                }
            }
            return;
        }
        panic!("the node kept producing output");
    }

    /// Replays a monitor's deltas and checks the delta rules; checks each
    /// port monitor fires once.
    pub(crate) fn observe(&mut self, e: &Event) {
        if let Event::PortDown { monitor, .. } = e {
            if self.ended_port_monitors.remove(monitor) {
                return; // fired before it ended, drained after
            }
            assert!(
                self.port_monitors.remove(monitor),
                "a port monitor fired twice, or after it ended: {e:?}"
            );
        }
        let Event::Group(d) = e else {
            return;
        };
        if self.ended_monitors.contains(&d.monitor) {
            return; // queued before it ended, drained after
        }
        let Some((group, seen)) = self.monitors.get_mut(&d.monitor) else {
            panic!("event for a monitor that was ended or never made: {d:?}");
        };
        assert_eq!(&**group, &*d.group);
        let members: BTreeSet<PortId> = d.members.iter().cloned().collect();
        assert_eq!(members.len(), d.members.len(), "members listed once");
        assert!(d.members.windows(2).all(|w| w[0] < w[1]), "members sorted");
        assert_eq!(d.reasons.len(), d.removed.len(), "a reason per removal");
        assert!(
            d.updated
                .iter()
                .all(|p| members.contains(p) && !d.added.contains(p)),
            "updated ⊆ members, disjoint from added"
        );
        let mut given: Vec<&PortId> = d.added.iter().chain(&d.updated).collect();
        given.sort();
        assert!(
            d.meta.iter().map(|(p, _)| p).eq(given.iter().copied()),
            "meta is that of added and updated, sorted"
        );
        match seen {
            None => {
                assert!(!d.members.is_empty(), "first event only when non-empty");
                assert_eq!(d.added, d.members, "first event adds every member");
                assert!(d.removed.is_empty(), "first event removes nothing");
            }
            Some(prev) => {
                assert!(
                    !d.added.is_empty() || !d.removed.is_empty() || !d.updated.is_empty(),
                    "empty delta"
                );
                let mut next = prev.clone();
                for p in &d.added {
                    assert!(members.contains(p), "added ⊆ members");
                    next.insert(p.clone());
                }
                for p in &d.removed {
                    assert!(!members.contains(p), "removed ∩ members = ∅");
                    next.remove(p);
                }
                assert_eq!(next, members, "replaying deltas reproduces members");
            }
        }
        *seen = Some(members);
    }

    /// Every group and its members.
    pub(crate) fn view(&self) -> Vec<(String, Vec<PortId>)> {
        self.node
            .group_names()
            .map(|g| {
                (
                    String::from(g),
                    self.node.members(g).unwrap_or_default().to_vec(),
                )
            })
            .collect()
    }

    /// The promises that hold after any input.
    pub(crate) fn check(&self) {
        let limits = &self.node.config().limits;
        let stats = self.node.stats();
        for (group, members) in self.view() {
            assert!(!members.is_empty(), "a listed group has members");
            assert!(
                members.windows(2).all(|w| w[0] < w[1]),
                "{group}: sorted, once"
            );
        }
        for (group, seen) in self.monitors.values() {
            let now: BTreeSet<PortId> = self
                .node
                .members(group)
                .unwrap_or_default()
                .iter()
                .cloned()
                .collect();
            assert_eq!(
                seen.clone().unwrap_or_default(),
                now,
                "monitor of {group} is current"
            );
        }
        assert!(
            stats.connections <= limits.max_connections + 1,
            "connections bounded"
        );
        let remote = stats.members.saturating_sub(self.regs.len());
        assert!(
            remote <= limits.max_members_per_peer * stats.authenticated.max(1),
            "memory bounded by the limits: {remote} remote members"
        );
        assert!(
            stats.known_nodes <= limits.max_known_nodes + limits.max_connections,
            "known nodes bounded"
        );
        assert!(
            stats.snapshots_sending <= stats.authenticated,
            "a snapshot goes out only to an authenticated peer"
        );
        let proved = self.conns.values().filter(|r| r.proved() && r.open).count();
        assert!(
            stats.authenticated <= proved,
            "{} authenticated connections but only {proved} proofs of the secret",
            stats.authenticated
        );
        // Per identity: every node connected was claimed on a connection
        // still open where the harness proved the key.
        for peer in self.node.connected_nodes() {
            assert!(
                self.conns
                    .values()
                    .any(|r| r.open && r.proved() && r.claimed.as_deref() == Some(peer.as_str())),
                "{peer} is connected, but no open connection proved the key as {peer}"
            );
        }
    }
}

pub(crate) fn pick<T: Clone>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()].clone())
}
