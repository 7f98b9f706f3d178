//! The mesh at the node: peer lists and digests to and from peers, and the
//! dials the mesh asks for and their outcome (the rules are in `mesh.rs`).

use alloc::vec::Vec;
use core::net::SocketAddr;

use super::Node;
use crate::config::Timeouts;
use crate::conn::Conn;
use crate::event::{CloseReason, Direction, Limit, WireReason};
use crate::ids::{ConnId, NodeId};
use crate::mesh::{DialFor, DueDial};
use crate::time::Instant;
use crate::wire::{BoundedVec, Frame, PeerInfo, WireAddr, WireNodeId, MAX_PEERS_PER_FRAME};

impl Node {
    /// Tells the peer on `id` (node `to`) which other nodes we are connected
    /// to: every one of them, in as many frames as the peer's frame size needs.
    pub(super) fn send_peer_list(&mut self, now: Instant, id: ConnId, to: &NodeId) {
        let Some(budget) = self.sessions.get(id).map(|c| c.peer_max_frame) else {
            return;
        };
        let infos: Vec<PeerInfo> = self
            .sessions
            .peers()
            .filter(|(n, p)| *n != to && p.conn() != id)
            .filter_map(|(n, _)| Some(peer_info(n, self.mesh.addrs(n)?)))
            .collect();
        for nodes in peer_frames(infos, budget) {
            self.send_frame(now, id, &Frame::Peers { nodes });
        }
    }

    /// Every peer hears a digest of the nodes we are connected to, so a node
    /// that two nodes forgot while they could not reach each other (and
    /// that a third still reaches) is found again: where digests differ,
    /// peer lists follow. In a quiet full mesh that is one small frame per
    /// peer. Due every `forget_after / 3`.
    pub(super) fn gossip(&mut self, now: Instant) {
        let targets: Vec<ConnId> = self
            .sessions
            .peers()
            .map(|(_, p)| p)
            .filter(|p| p.is_up())
            .filter(|p| self.sessions.get(p.conn()).is_some_and(|c| c.is_active()))
            .map(|p| p.conn())
            .collect();
        let digest = Frame::PeersDigest {
            digest: self.peers_digest(),
        };
        for conn in targets {
            self.send_frame(now, conn, &digest);
        }
        self.next_gossip = now + self.cfg.timeouts.forget_after / 3;
    }

    /// The digest of the nodes we are connected to, ourselves included.
    fn peers_digest(&self) -> [u8; 16] {
        use sha2::Digest;
        let mut ids: Vec<&str> = self.sessions.peers().map(|(n, _)| n.as_str()).collect();
        ids.push(self.cfg.node_id.as_str());
        ids.sort_unstable();
        let mut h = sha2::Sha256::new();
        for id in ids {
            h.update([id.len() as u8]);
            h.update(id.as_bytes());
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&h.finalize()[..16]);
        digest
    }

    /// A peer's digest of its connections: if ours differs, one of us knows
    /// a node the other does not, and our list tells it (the peer does the
    /// same on its own round).
    pub(super) fn on_peers_digest(
        &mut self,
        now: Instant,
        id: ConnId,
        node: &NodeId,
        digest: [u8; 16],
    ) {
        if digest != self.peers_digest() {
            self.send_peer_list(now, id, node);
        }
    }

    /// A peer told us of nodes it is connected to.
    pub(super) fn on_peers(
        &mut self,
        now: Instant,
        id: ConnId,
        nodes: BoundedVec<PeerInfo, MAX_PEERS_PER_FRAME>,
    ) {
        let from = self.sessions.get(id).map(|c| c.addr);
        for info in nodes.iter() {
            let Ok(node) = NodeId::new(&info.node) else {
                continue;
            };
            if node == self.cfg.node_id {
                continue;
            }
            // The smaller id dials first; the other waits to be dialled.
            let first = if self.cfg.node_id < node {
                now
            } else {
                now + self.cfg.timeouts.gossip_dial_delay
            };
            let news = !self.mesh.knows(&node);
            let addrs = info.addrs.iter().map(|a| SocketAddr::from(*a));
            let max = self.cfg.limits.max_known_nodes;
            if !self.mesh.mentioned(&node, addrs, now, first, max) {
                self.close(now, id, CloseReason::LimitExceeded(Limit::KnownNodes));
                return;
            }
            if news {
                tracing::debug!(%node, from = ?from, "learned of node");
            }
        }
    }

    /// Starts the dials due at `now` and forgets the nodes unheard of for
    /// too long.
    pub(super) fn mesh_due(&mut self, now: Instant, t: &Timeouts) {
        // Dials count against the connection limit, and have at most
        // `max_dials` handshakes of their own at a time: past either, wait.
        let mut dialling = self
            .sessions
            .iter()
            .filter(|c| c.dir == Direction::Outbound && !c.is_active())
            .count();
        for DueDial { target, addr } in self.mesh.due(now) {
            if self.sessions.len() >= self.cfg.limits.max_connections
                || dialling >= self.cfg.limits.max_dials
            {
                self.mesh.postpone(&target, now + t.backoff_min);
                continue;
            }
            dialling += 1;
            let id = self.dial(now, addr, target.clone());
            self.mesh.dialling(&target, id);
        }
        for node in self.mesh.forget(now, t) {
            tracing::debug!(%node, "forgot unreachable node");
        }
    }

    /// Dialling seed `i` reached our own greeting of another connection. If
    /// the seed is one of our listen addresses it is never dialled again;
    /// otherwise the claim is unauthenticated (whoever answers there may be
    /// forwarding our greeting), so the seed is only set aside for
    /// `forget_after`.
    pub(super) fn seed_leads_to_self(&mut self, now: Instant, i: usize) {
        let ours = self.seed_is_ours(i);
        self.mesh.seed_is_self(i, ours, now, &self.cfg.timeouts);
    }

    /// Seed `i` is one of our own listen addresses.
    fn seed_is_ours(&self, i: usize) -> bool {
        let Some(seed) = self.mesh.seed_addr(i) else {
            return false;
        };
        self.cfg.listen_addrs.iter().any(|l| {
            l.port() == seed.port()
                && (l.ip() == seed.ip() || (l.ip().is_unspecified() && seed.ip().is_loopback()))
        })
    }

    /// A connection we dialled ended: back off its target.
    pub(super) fn dial_ended(&mut self, now: Instant, c: &Conn, reason: CloseReason) {
        // The node at a seed refused our greeting as its own: if the seed is
        // one of our listen addresses, it is us (no outsider can answer
        // there); the unauthenticated refusal is trusted for nothing else.
        if let (CloseReason::Remote(WireReason::SelfConnection), DialFor::Seed(i)) =
            (reason, &c.dial_for)
        {
            if self.seed_is_ours(*i) {
                self.seed_leads_to_self(now, *i);
            }
        }
        let t = &self.cfg.timeouts;
        self.mesh
            .dial_ended(&c.dial_for, c.id, now, t, &mut self.rng);
    }
}

pub(super) fn peer_info(node: &NodeId, addrs: &[SocketAddr]) -> PeerInfo {
    let mut id = WireNodeId::new();
    id.push_str(node.as_str())
        .unwrap_or_else(|_| unreachable!("NodeId is at most MAX_NODE_ID bytes"));
    PeerInfo {
        node: id,
        addrs: addrs
            .iter()
            .take(crate::wire::MAX_ADDRS)
            .map(|a| WireAddr::from(*a))
            .collect(),
    }
}

/// Cuts a peer list into `Peers` frames of at most `max_frame` bytes each
/// (and at most `MAX_PEERS_PER_FRAME` entries).
fn peer_frames(
    infos: Vec<PeerInfo>,
    max_frame: usize,
) -> Vec<BoundedVec<PeerInfo, MAX_PEERS_PER_FRAME>> {
    // Variant tag and list length (a varint of at most 1024).
    const FRAME_OVERHEAD: usize = 1 + 2;
    let mut frames = Vec::new();
    let mut list = BoundedVec::new();
    let mut size = FRAME_OVERHEAD;
    for info in infos {
        let len = info_len(&info);
        if !list.is_empty() && (size + len > max_frame || list.len() == MAX_PEERS_PER_FRAME) {
            frames.push(core::mem::take(&mut list));
            size = FRAME_OVERHEAD;
        }
        size += len;
        // Never full here: the list was just cut if it was.
        let _ = list.try_push(info);
    }
    if !list.is_empty() {
        frames.push(list);
    }
    frames
}

/// The encoded size of a peer entry, at most: the id with its length, the
/// address count, each address with its tag, IP and port varint.
fn info_len(info: &PeerInfo) -> usize {
    let addr = |a: &WireAddr| match a {
        WireAddr::V4(..) => 1 + 4 + 3,
        WireAddr::V6(..) => 1 + 16 + 3,
    };
    1 + info.node.len() + 1 + info.addrs.iter().map(addr).sum::<usize>()
}
