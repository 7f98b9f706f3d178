//! White-box tests of the protocol rules, one file per module under test.
//! A hand-driven peer (`RawPeer`) speaks bytes to a real node so hostile and
//! out-of-order input can be written down exactly.

mod credit;
mod formation;
mod framing;
mod groups;
mod handshake;
mod local_api;
mod mesh;
mod messaging;
mod meta;
mod peer_input;
mod select;
mod snapshot;
mod wire;

use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::channel::{Channel, Input};
use crate::event::{Action, Event};
use crate::handshake::Psk;
use crate::ids::{ConnId, NodeId};
use crate::time::Instant;
use crate::wire::{
    BoundedVec, Frame, GroupChange, Hello, LeaveReason, WireLeave, WireNodeId, WirePort,
};
use crate::{CloseReason, Config, Node};

pub(crate) const SECRET: &[u8] = b"test secret";

pub(crate) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(crate) fn new_node(id: &str) -> Node {
    let mut cfg = Config::new(NodeId::new(id).expect("valid id"), SECRET);
    cfg.listen_addrs = alloc::vec![addr(7000)];
    Node::new(cfg, 1, [1; 32], Instant::ZERO).expect("valid config")
}

pub(crate) fn wire_id(s: &str) -> WireNodeId {
    let mut id = WireNodeId::new();
    id.push_str(s).expect("short id");
    id
}

/// A greeting from `node` at `incarnation`, with no addresses.
pub(crate) fn hello(node: &str, incarnation: u64) -> Hello {
    Hello {
        node: wire_id(node),
        incarnation,
        epoch: incarnation,
        addrs: heapless::Vec::new(),
        max_frame: 65536,
        port_credit: 64,
    }
}

pub(crate) fn framed(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

/// The port `n` of run `inc` of node `node`.
pub(crate) fn port(node: &str, inc: u64, n: u64) -> crate::PortId {
    crate::PortId::new(crate::NodeId::new(node).expect("a valid id"), inc, n)
}

/// The group deltas among `events`, in order.
pub(crate) fn deltas(events: &[Event]) -> Vec<&crate::GroupDelta> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Group(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// An update whose joined ports carry metadata and whose leaves say why.
pub(crate) fn update_with_meta(
    name: &str,
    joined: &[(u64, &[u8])],
    left: &[(u64, LeaveReason)],
) -> Frame {
    let left = left
        .iter()
        .map(|&(number, reason)| WireLeave { number, reason })
        .collect();
    Frame::Update {
        groups: BoundedVec::try_from_vec(vec![GroupChange {
            group: wire_group(name),
            joined: wire_ports(joined),
            left: BoundedVec::try_from_vec(left).expect("short"),
        }])
        .expect("short"),
    }
}

pub(crate) fn wire_ports(ports: &[(u64, &[u8])]) -> BoundedVec<WirePort, 65536> {
    let port = |&(number, meta): &(u64, &[u8])| WirePort {
        number,
        meta: meta.to_vec().into(),
    };
    BoundedVec::try_from_vec(ports.iter().map(port).collect()).expect("short")
}

/// A group name on the wire.
pub(crate) fn wire_group(name: &str) -> crate::wire::WireGroup {
    let mut s = crate::wire::WireGroup::new();
    s.push_str(name).expect("a short name");
    s
}

/// A peer written by hand, connected inbound to `node`: it speaks the
/// protocol through its own [`Channel`] (the initiator), or any bytes at all.
pub(crate) struct RawPeer {
    pub(crate) node: Node,
    pub(crate) conn: ConnId,
    pub(crate) now: Instant,
    pub(crate) channel: Channel,
    /// Frames the node sent us.
    pub(crate) got: Vec<Frame>,
    /// Every byte the node sent us.
    pub(crate) raw: Vec<u8>,
    /// Every byte we sent the node.
    pub(crate) sent: Vec<u8>,
    /// Why our channel ended, if it did (e.g. the node refused us).
    pub(crate) ended: Option<CloseReason>,
    pub(crate) closed: bool,
    pub(crate) events: Vec<Event>,
    /// The node's greeting, once it proved the key.
    pub(crate) node_hello: Option<Hello>,
    /// What the node sent before our channel started.
    early: Option<Vec<u8>>,
}

impl RawPeer {
    /// Connects inbound to `node`; no handshake yet.
    pub(crate) fn connect(node: Node) -> RawPeer {
        RawPeer::connect_with(node, SECRET, 9000)
    }

    /// Connects from `port`, keyed by `secret`.
    pub(crate) fn connect_with(mut node: Node, secret: &[u8], port: u16) -> RawPeer {
        let now = Instant::ZERO;
        let conn = node
            .handle_inbound(now, addr(port))
            .expect("under the limits");
        let mut p = RawPeer {
            node,
            conn,
            now,
            channel: Channel::new(true, &Psk::derive(secret), 1 << 24, [port as u8; 32]),
            got: Vec::new(),
            raw: Vec::new(),
            sent: Vec::new(),
            ended: None,
            closed: false,
            events: Vec::new(),
            node_hello: None,
            early: Some(Vec::new()),
        };
        p.drain();
        p
    }

    /// Connects and completes the handshake as node `id` (incarnation 9).
    pub(crate) fn authenticated(node: Node, id: &str) -> RawPeer {
        let mut p = RawPeer::connect(node);
        p.handshake(&hello(id, 9));
        p
    }

    /// Runs the handshake as `ours`.
    pub(crate) fn handshake(&mut self, ours: &Hello) {
        self.channel.start(ours);
        let early = self.early.take().unwrap_or_default();
        self.read(&early);
        self.flush();
    }

    /// Sends a frame, sealed.
    pub(crate) fn send(&mut self, frame: &Frame) {
        let mut plain = framed(frame);
        self.channel.seal(&mut plain);
        self.flush();
    }

    /// Sends what our channel wrote.
    pub(crate) fn flush(&mut self) {
        let bytes = self.channel.take_wire();
        if !bytes.is_empty() {
            self.send_bytes(&bytes);
        }
    }

    /// Sends bytes as they are.
    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        self.sent.extend_from_slice(bytes);
        let (now, conn) = (self.now, self.conn);
        self.node.handle_bytes(now, conn, bytes);
        self.drain();
    }

    pub(crate) fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            if t.conn == self.conn {
                self.raw.extend_from_slice(&t.data);
                self.read(&t.data);
            }
        }
        while let Some(a) = self.node.poll_action() {
            if a == (Action::Close { conn: self.conn }) {
                self.closed = true;
            }
        }
        while let Some(e) = self.node.poll_event() {
            self.events.push(e);
        }
        // Our key confirmation, once the node answered.
        if self.channel.unsent() > 0 && !self.closed {
            self.flush();
        }
    }

    fn read(&mut self, mut bytes: &[u8]) {
        if let Some(early) = self.early.as_mut() {
            early.extend_from_slice(bytes);
            return;
        }
        loop {
            match self.channel.next(&mut bytes) {
                Ok(Some(Input::Frame(f))) => self.got.push(f),
                Ok(Some(Input::Authenticated(h) | Input::Greeting(h))) => self.node_hello = Some(h),
                Ok(None) => return,
                Err(reason) => {
                    self.ended = Some(reason);
                    return;
                }
            }
        }
    }

    /// The reason the node closed us with, if it did.
    pub(crate) fn close_reason(&self) -> Option<crate::CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::ConnectionClosed { conn, reason, .. } if *conn == self.conn => Some(*reason),
            _ => None,
        })
    }
}
