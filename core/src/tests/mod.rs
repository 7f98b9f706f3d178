//! White-box tests of the protocol rules, one file per module under test.
//! A hand-driven peer (`RawPeer`) speaks bytes to a real node so hostile and
//! out-of-order input can be written down exactly.

mod framing;
mod fuzz_bodies;
mod groups;
mod handshake;
mod local_api;
mod messaging;
mod peer_input;
mod wire;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::event::{Action, Event};
use crate::framing::FrameReader;
use crate::ids::{ConnId, NodeId};
use crate::time::Instant;
use crate::wire::{Frame, Hello, WireNodeId, PROTOCOL_VERSION};
use crate::{Config, Node};

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

pub(crate) fn hello(node: &str, nonce: u8) -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        node: wire_id(node),
        incarnation: 9,
        addrs: heapless::Vec::new(),
        nonce: [nonce; 32],
        max_frame: 65536,
    }
}

pub(crate) fn framed(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

/// A peer written by hand, connected inbound to `node`.
pub(crate) struct RawPeer {
    pub(crate) node: Node,
    pub(crate) conn: ConnId,
    pub(crate) now: Instant,
    reader: FrameReader,
    /// Frames the node sent us.
    pub(crate) got: Vec<Frame>,
    pub(crate) closed: bool,
    pub(crate) events: Vec<Event>,
    pub(crate) node_hello: Option<Hello>,
}

impl RawPeer {
    pub(crate) fn connect(node: Node) -> RawPeer {
        let mut node = node;
        let conn = node
            .handle_inbound(Instant::ZERO, addr(9000))
            .expect("under the limits");
        let mut p = RawPeer {
            node,
            conn,
            now: Instant::ZERO,
            reader: FrameReader::new(1 << 24),
            got: Vec::new(),
            closed: false,
            events: Vec::new(),
            node_hello: None,
        };
        p.drain();
        p.node_hello = p.got.iter().find_map(|f| match f {
            Frame::Hello(h) => Some((**h).clone()),
            _ => None,
        });
        p
    }

    /// Connects and completes the handshake as node `id`.
    pub(crate) fn authenticated(node: Node, id: &str) -> RawPeer {
        let mut p = RawPeer::connect(node);
        let ours = hello(id, 42);
        p.send(&Frame::Hello(Box::new(ours.clone())));
        let theirs = p.node_hello.clone().expect("node greets first");
        let mac = crate::handshake::prove(SECRET, &ours, &theirs);
        p.send(&Frame::Auth { mac });
        p
    }

    pub(crate) fn send(&mut self, frame: &Frame) {
        let bytes = framed(frame);
        self.send_bytes(&bytes);
    }

    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        let (now, conn) = (self.now, self.conn);
        self.node.handle_bytes(now, conn, bytes);
        self.drain();
    }

    pub(crate) fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            if t.conn == self.conn {
                self.reader.push(&t.data);
                while let Ok(Some(f)) = self.reader.next_frame() {
                    self.got.push(f);
                }
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
    }

    /// The reason the node closed us with, if it did.
    pub(crate) fn close_reason(&self) -> Option<crate::CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::ConnectionClosed { conn, reason, .. } if *conn == self.conn => Some(*reason),
            _ => None,
        })
    }
}
