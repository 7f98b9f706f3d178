//! Fuzz harness bodies, shared by the cargo-fuzz targets (`fuzz/`) and by
//! proptest in the normal test run. Each takes raw bytes, never panics on any
//! input unless the core breaks one of its promises, and checks those promises
//! as it goes:
//!
//! - [`decode`]: bytes → frame; whatever decodes re-encodes to the same frame.
//! - [`stream`]: bytes on an authenticated connection, split at fuzzer-chosen
//!   points, give exactly the same node state and events as the same bytes in one piece.
//! - [`node`]: a whole node driven by an arbitrary sequence of inputs (peers
//!   connecting, hostile or valid frames in any state, timeouts, local API
//!   calls); the view, the monitors, the limits and the timers stay sound.
//! - [`handshake`]: hostile greetings and proofs; no connection ever
//!   authenticates without the secret.
//!
//! Only built with the `fuzzing` feature (and in this crate's own tests).

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::event::{Action, Event};
use crate::framing::FrameReader;
use crate::ids::{ConnId, MonitorId, NodeId, PortId, PortMonitorId, RegId};
use crate::time::Instant;
use crate::wire::{Frame, Hello, WireAddr, WireNodeId, LEN_PREFIX, PROTOCOL_VERSION};
use crate::{Config, Node};

const SECRET: &[u8] = b"fuzz secret";
const NODE_ID: &str = "target";

/// Bytes → frame. Whatever decodes must re-encode to a frame that decodes equal.
pub fn decode(data: &[u8]) {
    if let Ok(frame) = Frame::decode(data) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        assert_eq!(
            Frame::decode(&out[LEN_PREFIX..]),
            Ok(frame),
            "a decoded frame re-encodes to itself"
        );
    }
}

/// Bytes on an authenticated connection, in fuzzer-chosen chunks, against the
/// same bytes in one piece: same events, same view.
pub fn stream(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cuts) = Vec::<u16>::arbitrary(&mut u) else {
        return;
    };
    let bytes = u.take_rest();
    let mut whole = Harness::new(small_limits());
    let mut split = Harness::new(small_limits());
    let (a, b) = (whole.authenticated_peer(), split.authenticated_peer());
    whole.bytes(a, bytes);
    let mut rest = bytes;
    for cut in cuts {
        let at = usize::from(cut).min(rest.len());
        let (chunk, tail) = rest.split_at(at);
        split.bytes(b, chunk);
        rest = tail;
    }
    split.bytes(b, rest);
    assert_eq!(whole.events, split.events, "chunking changed the events");
    assert_eq!(whole.view(), split.view(), "chunking changed the view");
    whole.check();
    split.check();
}

/// A whole node driven by arbitrary inputs.
pub fn node(data: &[u8]) {
    run(data, false);
}

/// Hostile handshakes: the node never authenticates a peer without the secret.
pub fn handshake(data: &[u8]) {
    run(data, true);
}

fn run(data: &[u8], handshake_only: bool) {
    let mut u = Unstructured::new(data);
    let mut h = Harness::new(small_limits());
    for _ in 0..256 {
        let op = if handshake_only {
            HandshakeOp::arbitrary(&mut u).map(Op::from)
        } else {
            Op::arbitrary(&mut u)
        };
        let Ok(op) = op else {
            break;
        };
        h.apply(op);
        if !h.corked {
            h.check();
        }
    }
    // Whatever a burst left undrained comes out now, and must add up.
    h.corked = false;
    h.drain();
    h.check();
}

fn small_limits() -> Config {
    let mut cfg = Config::new(NodeId::new(NODE_ID).expect("valid id"), SECRET);
    cfg.listen_addrs = alloc::vec![addr(7000)];
    cfg.seeds = alloc::vec![addr(7001)];
    cfg.limits.max_frame = 4096;
    cfg.limits.max_groups_per_peer = 4;
    cfg.limits.max_members_per_peer = 32;
    cfg.limits.max_known_nodes = 6;
    cfg.limits.max_connections = 8;
    cfg.limits.max_unauthenticated = 4;
    cfg
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const GROUPS: [&str; 4] = ["a", "b", "c", "a-group-name-of-some-length"];

/// Which peer a greeting claims to be.
#[derive(Debug, Arbitrary)]
enum Who {
    Peer(u8),
    Target,
    Empty,
}

/// Which nonce a greeting carries.
#[derive(Debug, Arbitrary)]
enum NonceChoice {
    Fresh,
    /// The node's own nonce on this connection (a reflection).
    Echo,
    /// One this harness already used.
    Replay,
}

/// Which proof a peer sends.
#[derive(Debug, Arbitrary)]
enum Proof {
    Correct,
    WrongSecret,
    /// The MAC the node itself would send (a reflection).
    Reflected,
    Garbage([u8; 32]),
}

#[derive(Debug, Arbitrary)]
enum HandshakeOp {
    Inbound,
    Dialed(u8),
    Hello {
        conn: u8,
        who: Who,
        nonce: NonceChoice,
        incarnation: u8,
        other_version: bool,
    },
    Auth(u8, Proof),
    Frame(u8, Frame),
    Closed(u8),
    Timeout(u16),
}

#[derive(Debug, Arbitrary)]
enum Op {
    Handshake(HandshakeOp),
    /// A full, correct handshake and snapshot as a new peer.
    Join(u8),
    Bytes(u8, Vec<u8>),
    DialFailed(u8),
    Overflow(u8),
    OpenPort,
    ClosePort(u8),
    Register(u8, u8),
    Unregister(u8),
    Monitor(u8),
    Unmonitor(u8),
    AddSeed(u16),
    Shutdown,
    Send {
        to: PortChoice,
        from: Option<u8>,
        len: u16,
    },
    MonitorPort(PortChoice),
    UnmonitorPort(u8),
    /// Drain only after a burst: `true` stops draining until `false` (as a
    /// driver that batches inputs does).
    Cork(bool),
}

/// A port to send to or watch: one of ours, or a peer's (maybe stale).
#[derive(Debug, Arbitrary)]
enum PortChoice {
    Local(u8),
    Remote {
        peer: u8,
        incarnation: u8,
        number: u8,
    },
}

impl From<HandshakeOp> for Op {
    fn from(op: HandshakeOp) -> Op {
        Op::Handshake(op)
    }
}

/// What the harness knows of one connection, as the remote side.
#[derive(Debug, Default)]
struct Remote {
    reader: Option<FrameReader>,
    node_hello: Option<Hello>,
    our_hello: Option<Hello>,
    /// We sent a correct proof over a greeting the node could accept.
    proved: bool,
    open: bool,
}

/// A node and the harness acting as every peer it talks to.
struct Harness {
    node: Node,
    now: Instant,
    conns: BTreeMap<ConnId, Remote>,
    order: Vec<ConnId>,
    ports: Vec<PortId>,
    regs: Vec<RegId>,
    monitors: BTreeMap<MonitorId, (String, Option<BTreeSet<PortId>>)>,
    port_monitors: BTreeSet<PortMonitorId>,
    events: Vec<Event>,
    used_nonces: Vec<[u8; 32]>,
    next_nonce: u8,
    shut_down: bool,
    /// Draining is held back (see `Op::Cork`).
    corked: bool,
    /// Monitors ended while events for them may still be undrained.
    ended_monitors: BTreeSet<MonitorId>,
    ended_port_monitors: BTreeSet<PortMonitorId>,
}

impl Harness {
    fn new(cfg: Config) -> Harness {
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
            used_nonces: Vec::new(),
            next_nonce: 0,
            shut_down: false,
            corked: false,
            ended_monitors: BTreeSet::new(),
            ended_port_monitors: BTreeSet::new(),
        };
        h.drain();
        h
    }

    fn pick(&self, i: u8) -> Option<ConnId> {
        (!self.order.is_empty()).then(|| self.order[usize::from(i) % self.order.len()])
    }

    fn inbound(&mut self) -> Option<ConnId> {
        let id = self.node.handle_inbound(self.now, addr(9000))?;
        self.track(id);
        self.drain();
        Some(id)
    }

    /// Starts playing the remote side of a new connection.
    fn track(&mut self, id: ConnId) {
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
    fn authenticated_peer(&mut self) -> ConnId {
        let id = self.inbound().expect("room for one connection");
        self.join(id, 0);
        id
    }

    fn join(&mut self, id: ConnId, peer: u8) {
        self.hello(id, Who::Peer(peer), NonceChoice::Fresh, 1, false);
        self.auth(id, Proof::Correct);
        self.frame(
            id,
            &Frame::Sync {
                groups: Default::default(),
                done: true,
            },
        );
    }

    fn hello(&mut self, id: ConnId, who: Who, nonce: NonceChoice, incarnation: u8, other: bool) {
        let Some(r) = self.conns.get(&id) else {
            return;
        };
        let nonce = match nonce {
            NonceChoice::Fresh => {
                self.next_nonce = self.next_nonce.wrapping_add(1);
                let mut n = [0xA5; 32];
                n[0] = self.next_nonce;
                n
            }
            NonceChoice::Echo => r.node_hello.as_ref().map_or([0; 32], |h| h.nonce),
            NonceChoice::Replay => self.used_nonces.first().copied().unwrap_or([1; 32]),
        };
        self.used_nonces.push(nonce);
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
            version: if other {
                PROTOCOL_VERSION + 1
            } else {
                PROTOCOL_VERSION
            },
            node,
            incarnation: u64::from(incarnation),
            addrs,
            nonce,
            max_frame: 4096,
        };
        if let Some(r) = self.conns.get_mut(&id) {
            r.our_hello = Some(hello.clone());
        }
        self.frame(id, &Frame::Hello(Box::new(hello)));
    }

    fn auth(&mut self, id: ConnId, proof: Proof) {
        let Some(r) = self.conns.get_mut(&id) else {
            return;
        };
        let (Some(ours), Some(theirs)) = (r.our_hello.clone(), r.node_hello.clone()) else {
            return;
        };
        let mac = match proof {
            Proof::Correct => {
                r.proved = true;
                crate::handshake::prove(SECRET, &ours, &theirs)
            }
            Proof::WrongSecret => crate::handshake::prove(b"wrong", &ours, &theirs),
            Proof::Reflected => crate::handshake::prove(SECRET, &theirs, &ours),
            Proof::Garbage(m) => m,
        };
        self.frame(id, &Frame::Auth { mac });
    }

    fn frame(&mut self, id: ConnId, frame: &Frame) {
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        self.bytes(id, &bytes);
    }

    fn bytes(&mut self, id: ConnId, bytes: &[u8]) {
        self.node.handle_bytes(self.now, id, bytes);
        self.drain();
    }

    fn apply(&mut self, op: Op) {
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
            Op::Register(g, i) => {
                if let Some(p) = pick(&self.ports, i) {
                    if let Ok(r) = self.node.register(GROUPS[usize::from(g) % 4], &p) {
                        self.regs.push(r);
                    }
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
                let payload = alloc::vec![0x5a; usize::from(len)];
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

    fn port(&self, choice: PortChoice) -> Option<PortId> {
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

    fn apply_handshake(&mut self, op: HandshakeOp) {
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
            HandshakeOp::Hello {
                conn,
                who,
                nonce,
                incarnation,
                other_version,
            } => {
                if let Some(id) = self.pick(conn) {
                    self.hello(id, who, nonce, incarnation, other_version);
                }
            }
            HandshakeOp::Auth(c, proof) => {
                if let Some(id) = self.pick(c) {
                    self.auth(id, proof);
                }
            }
            HandshakeOp::Frame(c, frame) => {
                if let Some(id) = self.pick(c) {
                    self.frame(id, &frame);
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

    /// Drains every output (capped: a node that keeps producing is a bug).
    fn drain(&mut self) {
        if self.corked {
            return;
        }
        for _ in 0..100_000 {
            if let Some(t) = self.node.poll_transmit() {
                assert!(!t.data.is_empty(), "no empty transmits");
                let r = self.conns.entry(t.conn).or_default();
                let reader = r.reader.get_or_insert_with(|| FrameReader::new(1 << 24));
                reader.push(&t.data);
                while let Ok(Some(f)) = reader.next_frame() {
                    if let Frame::Hello(h) = f {
                        r.node_hello = Some(*h);
                    }
                }
                continue;
            }
            if let Some(a) = self.node.poll_action() {
                match a {
                    Action::Dial { conn, .. } => {
                        assert!(!self.shut_down, "no dials after shutdown");
                        self.track(conn);
                    }
                    Action::Close { conn } => {
                        if let Some(r) = self.conns.get_mut(&conn) {
                            r.open = false;
                        }
                    }
                }
                continue;
            }
            if let Some(e) = self.node.poll_event() {
                self.observe(&e);
                self.events.push(e);
                continue;
            }
            return;
        }
        panic!("the node kept producing output");
    }

    /// Replays a monitor's deltas and checks the delta rules; checks each
    /// port monitor fires once.
    fn observe(&mut self, e: &Event) {
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
        match seen {
            None => {
                assert!(!d.members.is_empty(), "first event only when non-empty");
                assert_eq!(d.added, d.members, "first event adds every member");
                assert!(d.removed.is_empty(), "first event removes nothing");
            }
            Some(prev) => {
                assert!(!d.added.is_empty() || !d.removed.is_empty(), "empty delta");
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
    fn view(&self) -> Vec<(String, Vec<PortId>)> {
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
    fn check(&self) {
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
        let proved = self.conns.values().filter(|r| r.proved && r.open).count();
        assert!(
            stats.authenticated <= proved,
            "{} authenticated connections but only {proved} proofs of the secret",
            stats.authenticated
        );
    }
}

fn pick<T: Clone>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()].clone())
}
