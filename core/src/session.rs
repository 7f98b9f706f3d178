//! A connection's protocol, frame by frame: greeting, authentication, the one
//! connection per pair, the snapshot and incremental changes, and what losing
//! a connection does to the view.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::conn::{Conn, DialFor, Incoming, Phase, RemoteView};
use crate::event::{CloseReason, Direction, Event, Limit, PortDownReason, WireReason};
use crate::handshake;
use crate::ids::{group_name, ConnId, GroupName, NodeId, PortId};
use crate::mesh::{Dial, Known};
use crate::node::{Node, Peer};
use crate::time::Instant;
use crate::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, Hello, PeerInfo, WireAddr, WireNodeId,
    MAX_PEERS_PER_FRAME,
};

/// Smallest frame size a peer may ask us to keep to.
const MIN_PEER_FRAME: usize = 1024;

impl Node {
    /// Our greeting, as it goes into the handshake.
    fn hello(&self) -> Hello {
        let mut node = WireNodeId::new();
        node.push_str(self.cfg.node_id.as_str())
            .unwrap_or_else(|_| unreachable!("NodeId is at most MAX_NODE_ID bytes"));
        Hello {
            node,
            incarnation: self.incarnation,
            epoch: self.epoch,
            addrs: self
                .cfg
                .listen_addrs
                .iter()
                .map(|a| WireAddr::from(*a))
                .collect(),
            max_frame: u32::try_from(self.cfg.limits.max_frame).unwrap_or(u32::MAX),
        }
    }

    /// Starts the handshake on a freshly connected connection.
    pub(crate) fn greet(&mut self, now: Instant, id: ConnId) {
        let hello = self.hello();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.opened = now;
        c.last_recv = now;
        c.last_send = now;
        c.phase = Phase::Handshake;
        c.channel.start(&hello);
        tracing::debug!(conn = %id, addr = %c.addr, dir = ?c.dir, "connection opened");
        self.mark_dirty(id);
    }

    /// Responder: the initiator's greeting decrypted under the key, but may
    /// be a recording. Refuse what can never be right, or answer it; nothing
    /// else changes until the initiator proves the key on this connection.
    pub(crate) fn on_greeting(&mut self, now: Instant, id: ConnId, theirs: Hello) {
        if self.accept_hello(now, id, &theirs) {
            if let Some(c) = self.conns.get_mut(&id) {
                c.channel.answer();
            }
            self.mark_dirty(id);
            if let Ok(node) = NodeId::new(&theirs.node) {
                let until = now + self.cfg.timeouts.handshake_timeout;
                self.mesh.dialled_by(&node, until);
            }
        }
    }

    /// The peer proved the key on this connection, both ways.
    pub(crate) fn on_authenticated(&mut self, now: Instant, id: ConnId, theirs: Hello) {
        if self.accept_hello(now, id, &theirs) {
            // The initiator's key confirmation is already queued.
            self.mark_dirty(id);
            self.authenticated(now, id, theirs);
        }
    }

    /// Checks the peer's greeting (refusing ourselves and our id elsewhere)
    /// and takes its frame size; false when the connection was closed.
    fn accept_hello(&mut self, now: Instant, id: ConnId, theirs: &Hello) -> bool {
        let checked = handshake::check_hello(self.cfg.node_id.as_str(), self.incarnation, theirs);
        if let Err(reason) = checked {
            let seed = match (reason, self.conns.get(&id).map(|c| &c.dial_for)) {
                (CloseReason::SelfConnection, Some(DialFor::Seed(i))) => Some(*i),
                _ => None,
            };
            self.close(now, id, reason);
            if let Some(i) = seed {
                self.seed_leads_to_self(now, i);
            }
            return false;
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return false;
        };
        c.peer_max_frame =
            (theirs.max_frame as usize).clamp(MIN_PEER_FRAME, self.cfg.limits.max_frame);
        true
    }

    pub(crate) fn on_frame(&mut self, now: Instant, id: ConnId, frame: Frame) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        // The peer's first frame here: it has authenticated this connection,
        // so the one it replaces can go.
        if let Some(old) = c.supersedes.take() {
            self.close(now, old, CloseReason::Superseded);
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        match (&mut c.phase, frame) {
            // The peer said why it closes: forget the connection and have
            // the driver close the socket, without a close frame back.
            (_, Frame::Close { reason }) => {
                self.remove_conn(now, id, CloseReason::Remote(reason), true)
            }
            (Phase::Active { .. }, Frame::Ping) => {}
            (Phase::Active { .. }, Frame::Stale { epoch }) => self.on_stale(epoch),
            (Phase::Active { .. }, Frame::Peers { nodes }) => self.on_peers(now, id, nodes),
            (Phase::Active { node, .. }, Frame::PeersDigest { digest }) => {
                let node = node.clone();
                self.on_peers_digest(now, id, &node, digest);
            }
            (Phase::Active { .. }, Frame::Sync { groups, done }) => {
                self.on_sync(now, id, groups, done)
            }
            (Phase::Active { .. }, Frame::Update { groups }) => self.on_update(now, id, groups),
            (Phase::Active { .. }, Frame::Message { to, from, payload }) => {
                self.on_message(id, to, from, payload)
            }
            (Phase::Active { .. }, Frame::MonitorPort { port }) => {
                self.on_monitor_port(now, id, port)
            }
            (Phase::Active { .. }, Frame::DemonitorPort { port }) => {
                self.on_demonitor_port(id, port)
            }
            (
                Phase::Active {
                    node, incarnation, ..
                },
                Frame::PortDown { port },
            ) => {
                let (node, inc) = (node.clone(), *incarnation);
                self.on_port_down(&node, inc, port);
            }
            _ => self.close(now, id, CloseReason::UnexpectedFrame),
        }
    }

    /// A peer keeps an earlier run of our node id at `epoch`, at least ours
    /// (our clock went back since that run): move above it, so that our
    /// next connection to it is the newer.
    fn on_stale(&mut self, epoch: u64) {
        if epoch >= self.epoch {
            tracing::debug!(
                from = self.epoch,
                to = epoch.saturating_add(1),
                "epoch raised past an earlier run"
            );
            self.epoch = epoch.saturating_add(1);
        }
    }

    /// The peer proved the secret. Keep one connection per pair, then send it
    /// the nodes we are connected to and our snapshot.
    fn authenticated(&mut self, now: Instant, id: ConnId, hello: Hello) {
        let Ok(node) = NodeId::new(&hello.node) else {
            unreachable!("decoded node ids are 1..=MAX_NODE_ID bytes");
        };
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        let addrs = resolve_addrs(&hello, c.addr);
        let dir = c.dir;
        let dial_for = c.dial_for.clone();

        // The mesh: remember the node (it is authenticated, whichever of its
        // connections survives below) and settle the dial that found it.
        let news = !self.mesh.known().contains_key(&node);
        if news && !self.mesh.make_room(self.cfg.limits.max_known_nodes) {
            self.close(now, id, CloseReason::LimitExceeded(Limit::KnownNodes));
            return;
        }
        let known = self
            .mesh
            .known_mut()
            .entry(node.clone())
            .or_insert_with(|| Known {
                addrs: Vec::new(),
                dial: Dial::at(now),
                last_seen: now,
                connected: false,
            });
        known.connected = true;
        known.last_seen = now;
        known.dial.succeeded(id, now);
        if !addrs.is_empty() {
            known.addrs = addrs.clone();
        }
        if let DialFor::Seed(i) = dial_for {
            let seed = &mut self.mesh.seeds_mut()[i];
            seed.node = Some(node.clone());
            seed.dial.succeeded(id, now);
        }

        // One connection per pair.
        let old = self.peers.get(&node).map(|p| p.conn).filter(|c| *c != id);
        if let Some(old) = old {
            // A peer's connection is active, or (handed over) greeting.
            if let Some(o) = self.conns.get(&old).filter(|o| o.is_active()) {
                let Phase::Active {
                    incarnation: old_inc,
                    epoch: old_epoch,
                    ..
                } = o.phase
                else {
                    unreachable!("filtered on is_active")
                };
                let (keep_new, reason) = if hello.incarnation != old_inc {
                    // Two runs of the node: the greater epoch is the newer
                    // (the incarnation breaks a tie). A stale run never
                    // replaces it, however late it authenticates; it is told
                    // the epoch to move above, in case it is the live one
                    // and its clock went back.
                    if (hello.epoch, hello.incarnation) > (old_epoch, old_inc) {
                        (true, CloseReason::Restarted)
                    } else {
                        let stale = Frame::Stale { epoch: old_epoch };
                        self.send_frame(now, id, &stale);
                        (false, CloseReason::StaleIncarnation)
                    }
                } else if o.dir == dir {
                    // Same direction: the dialler only dials again once it
                    // considers the old one dead, so the newer one is right.
                    (true, CloseReason::Superseded)
                } else {
                    // Both dialled: keep the one the smaller id dialled.
                    let we_are_smaller = self.cfg.node_id < node;
                    let new_is_ours = dir == Direction::Outbound;
                    (we_are_smaller == new_is_ours, CloseReason::Superseded)
                };
                if !keep_new {
                    self.close(now, id, reason);
                    return;
                }
                // Hand the peer to the new connection first, so closing the
                // old one loses nothing: what the old one published stays
                // until the new snapshot replaces it.
                self.follow(&node, id);
                if reason == CloseReason::Superseded && dir == Direction::Outbound {
                    // The peer (the responder here) authenticates this one
                    // only on our key confirmation: told now, it could find
                    // the old one superseded by one it has not authenticated
                    // yet. Its first frame here says it has.
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.supersedes = Some(old);
                    }
                } else if reason == CloseReason::Restarted {
                    // Every connection of the earlier run goes, not only the
                    // one followed: none may take the node over later.
                    let earlier: Vec<ConnId> = self
                        .conns
                        .values()
                        .filter(|c| {
                            c.id != id && c.runs(&node).is_some_and(|i| i != hello.incarnation)
                        })
                        .map(|c| c.id)
                        .collect();
                    for c in earlier {
                        self.close(now, c, reason);
                    }
                } else {
                    self.close(now, old, reason);
                }
            }
        }
        tracing::debug!(conn = %id, %node, incarnation = hello.incarnation, "authenticated");
        if let Some(c) = self.conns.get_mut(&id) {
            c.phase = Phase::Active {
                node: node.clone(),
                incarnation: hello.incarnation,
                epoch: hello.epoch,
                incoming: Incoming::Syncing(RemoteView::default()),
            };
        }
        self.now_active(id);
        self.rewatch(now, id, &node, hello.incarnation);
        if self.peers.contains_key(&node) {
            self.follow(&node, id);
        } else {
            self.peers.insert(
                node.clone(),
                Peer {
                    conn: id,
                    incarnation: hello.incarnation,
                    view: RemoteView::default(),
                    up: false,
                },
            );
        }

        // Peers that already have our snapshot get our pending changes first,
        // so the snapshot below is exactly what they now know too.
        self.flush_local();
        let others: Vec<(ConnId, PeerInfo)> = self
            .peers
            .iter()
            .filter(|(n, p)| **n != node && p.conn != id)
            .filter(|(_, p)| self.conns.get(&p.conn).is_some_and(|c| c.is_active()))
            .filter_map(|(n, p)| {
                let k = self.mesh.known().get(n)?;
                Some((p.conn, peer_info(n, &k.addrs)))
            })
            .collect();
        self.send_peer_list(now, id, &node);
        self.start_snapshot(id);
        // A node we had not heard of is news for our peers; one we had was
        // announced by whoever told us (telling every peer of every new
        // connection would make forming a mesh cost N³ frames).
        if news && !addrs.is_empty() {
            let mut me = BoundedVec::new();
            let _ = me.try_push(peer_info(&node, &addrs));
            let announce = Frame::Peers { nodes: me };
            for (conn, _) in others {
                self.send_frame(now, conn, &announce);
            }
        }
    }

    /// Tells the peer on `id` (node `to`) which other nodes we are connected
    /// to: every one of them, in as many frames as the peer's frame size needs.
    pub(crate) fn send_peer_list(&mut self, now: Instant, id: ConnId, to: &NodeId) {
        let Some(budget) = self.conns.get(&id).map(|c| c.peer_max_frame) else {
            return;
        };
        let infos: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter(|(n, p)| *n != to && p.conn != id)
            .filter_map(|(n, _)| Some(peer_info(n, &self.mesh.known().get(n)?.addrs)))
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
    pub(crate) fn gossip(&mut self, now: Instant) {
        let targets: Vec<ConnId> = self
            .peers
            .values()
            .filter(|p| p.up)
            .filter(|p| self.conns.get(&p.conn).is_some_and(|c| c.is_active()))
            .map(|p| p.conn)
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
        let mut ids: Vec<&str> = self.peers.keys().map(NodeId::as_str).collect();
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
    fn on_peers_digest(&mut self, now: Instant, id: ConnId, node: &NodeId, digest: [u8; 16]) {
        if digest != self.peers_digest() {
            self.send_peer_list(now, id, node);
        }
    }

    /// A peer told us of nodes it is connected to.
    fn on_peers(
        &mut self,
        now: Instant,
        id: ConnId,
        nodes: BoundedVec<PeerInfo, MAX_PEERS_PER_FRAME>,
    ) {
        let from = self.conns.get(&id).map(|c| c.addr);
        for info in nodes.iter() {
            let Ok(node) = NodeId::new(&info.node) else {
                continue;
            };
            if node == self.cfg.node_id {
                continue;
            }
            if let Some(k) = self.mesh.known_mut().get_mut(&node) {
                k.last_seen = now;
                if k.addrs.is_empty() {
                    k.addrs = info.addrs.iter().map(|a| SocketAddr::from(*a)).collect();
                }
                continue;
            }
            if !self.mesh.make_room(self.cfg.limits.max_known_nodes) {
                self.close(now, id, CloseReason::LimitExceeded(Limit::KnownNodes));
                return;
            }
            // The smaller id dials first; the other waits to be dialled.
            let first = if self.cfg.node_id < node {
                now
            } else {
                now + self.cfg.timeouts.gossip_dial_delay
            };
            tracing::debug!(%node, from = ?from, "learned of node");
            self.mesh.known_mut().insert(
                node,
                Known {
                    addrs: info.addrs.iter().map(|a| SocketAddr::from(*a)).collect(),
                    dial: Dial::at(first),
                    last_seen: now,
                    connected: false,
                },
            );
        }
    }

    /// Part of the peer's snapshot.
    fn on_sync(
        &mut self,
        now: Instant,
        id: ConnId,
        groups: BoundedVec<GroupPorts, { crate::wire::MAX_GROUPS_PER_FRAME }>,
        done: bool,
    ) {
        let limits = self.cfg.limits.clone();
        let Some(Conn {
            phase: Phase::Active { incoming, .. },
            ..
        }) = self.conns.get_mut(&id)
        else {
            return;
        };
        let Incoming::Syncing(view) = incoming else {
            self.close(now, id, CloseReason::UnexpectedFrame);
            return;
        };
        let entries = groups
            .iter()
            .map(|g| (g.group.as_str(), &g.ports[..], &[][..]));
        if let Err(limit) = build_view(view, entries, &limits) {
            self.close(now, id, CloseReason::LimitExceeded(limit));
            return;
        }
        if done {
            self.finish_sync(id);
        }
    }

    /// The peer's snapshot on `id` is complete. If the peer table follows
    /// this connection, its view becomes what we know of the peer; otherwise
    /// the connection keeps it on standby.
    fn finish_sync(&mut self, id: ConnId) {
        let Some(Conn {
            phase:
                Phase::Active {
                    node,
                    incarnation,
                    incoming,
                    ..
                },
            ..
        }) = self.conns.get_mut(&id)
        else {
            return;
        };
        let Incoming::Syncing(view) = core::mem::replace(incoming, Incoming::Live) else {
            unreachable!("on_sync checked the connection is syncing")
        };
        let (node, inc) = (node.clone(), *incarnation);
        if self.peers.get(&node).is_some_and(|p| p.conn == id) {
            self.publish(&node, inc, view);
        } else if let Some(Conn {
            phase: Phase::Active { incoming, .. },
            ..
        }) = self.conns.get_mut(&id)
        {
            *incoming = Incoming::Standby(view);
        }
    }

    /// The peer table moves `node` to connection `id`. The connection it
    /// followed, if live and still open, goes stale: the new one's snapshot
    /// will carry what it would have said.
    fn follow(&mut self, node: &NodeId, id: ConnId) {
        let Some(p) = self.peers.get_mut(node) else {
            return;
        };
        let old = core::mem::replace(&mut p.conn, id);
        if old == id {
            return;
        }
        if let Some(Conn {
            phase: Phase::Active { incoming, .. },
            ..
        }) = self.conns.get_mut(&old)
        {
            if matches!(incoming, Incoming::Live) {
                *incoming = Incoming::Stale;
            }
        }
    }

    /// The connection `gone` (of the run `run`) the peer table followed for
    /// `node` has closed. Another of the same run whose stream is whole (the
    /// peer closed `gone` as superseded, say) takes over and the node never
    /// goes down; stale ones close, as they cannot, and so would any of
    /// another run. With none left, the node is lost.
    pub(crate) fn hand_over(
        &mut self,
        now: Instant,
        node: &NodeId,
        (gone, run): (ConnId, u64),
        reason: CloseReason,
    ) {
        let mut next = None;
        let mut stale = Vec::new();
        for c in self.conns.values() {
            let Some(inc) = c.runs(node) else {
                continue;
            };
            let is_stale = matches!(
                c.phase,
                Phase::Active {
                    incoming: Incoming::Stale,
                    ..
                }
            );
            if inc != run || is_stale {
                stale.push(c.id);
            } else {
                next = next.or(Some(c.id));
            }
        }
        for id in stale {
            self.close(now, id, CloseReason::Superseded);
        }
        let Some(next) = next else {
            self.conn_lost(now, node, gone, reason);
            return;
        };
        self.follow(node, next);
        let Some(Conn {
            phase:
                Phase::Active {
                    incarnation,
                    incoming,
                    ..
                },
            ..
        }) = self.conns.get_mut(&next)
        else {
            return;
        };
        // A complete stream is published now; a syncing one is when its
        // snapshot completes.
        match core::mem::replace(incoming, Incoming::Live) {
            Incoming::Standby(view) => {
                let inc = *incarnation;
                self.publish(node, inc, view);
            }
            other => *incoming = other,
        }
    }

    /// `new`, of the run `inc`, becomes what we know of the peer `node`,
    /// replacing its view in one delta per group.
    fn publish(&mut self, node: &NodeId, inc: u64, new: RemoteView) {
        let node = node.clone();
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        let old = core::mem::replace(&mut peer.view, new);
        let old_inc = core::mem::replace(&mut peer.incarnation, inc);
        let was_up = core::mem::replace(&mut peer.up, true);
        if was_up && old_inc != inc {
            self.events.push_back(Event::NodeDown {
                node: node.clone(),
                incarnation: old_inc,
                reason: CloseReason::Restarted,
            });
        }
        if old_inc != inc {
            self.node_ports_gone(&node, |p| p.incarnation() != inc, PortDownReason::Restarted);
        }
        let new = &self.peers[&node].view;
        let port = |inc: u64, n: u64| PortId::new(node.clone(), inc, n);
        let empty = BTreeSet::new();
        let names: BTreeSet<&GroupName> = old.groups.keys().chain(new.groups.keys()).collect();
        let mut deltas = Vec::new();
        for group in names {
            let before = old.groups.get(group).unwrap_or(&empty);
            let after = new.groups.get(group).unwrap_or(&empty);
            let (added, removed): (Vec<PortId>, Vec<PortId>) = if old_inc == inc {
                (
                    after.difference(before).map(|&n| port(inc, n)).collect(),
                    before.difference(after).map(|&n| port(inc, n)).collect(),
                )
            } else {
                (
                    after.iter().map(|&n| port(inc, n)).collect(),
                    before.iter().map(|&n| port(old_inc, n)).collect(),
                )
            };
            deltas.push((group.clone(), added, removed));
        }
        for (group, added, removed) in deltas {
            self.groups
                .apply(&group, &added, &removed, &mut self.events);
        }
        // Up comes after the deltas: whoever reacts to it sees the node's
        // ports, and none of an earlier incarnation's.
        if !was_up || old_inc != inc {
            tracing::debug!(%node, incarnation = inc, "node up");
            self.events.push_back(Event::NodeUp {
                node,
                incarnation: inc,
            });
        }
    }

    /// Incremental changes from the peer.
    fn on_update(
        &mut self,
        now: Instant,
        id: ConnId,
        groups: BoundedVec<GroupChange, { crate::wire::MAX_GROUPS_PER_FRAME }>,
    ) {
        let limits = self.cfg.limits.clone();
        let Some(Conn {
            phase:
                Phase::Active {
                    node,
                    incarnation,
                    incoming,
                    ..
                },
            ..
        }) = self.conns.get_mut(&id)
        else {
            return;
        };
        let inc = *incarnation;
        match incoming {
            // The stream's own view: changes apply to it.
            Incoming::Syncing(view) | Incoming::Standby(view) => {
                let entries = groups
                    .iter()
                    .map(|g| (g.group.as_str(), &g.joined[..], &g.left[..]));
                if let Err(limit) = build_view(view, entries, &limits) {
                    self.close(now, id, CloseReason::LimitExceeded(limit));
                }
                return;
            }
            Incoming::Stale => return,
            Incoming::Live => {}
        }
        let node = node.clone();
        let Some(peer) = self.peers.get_mut(&node).filter(|p| p.conn == id) else {
            return;
        };
        for entry in groups.iter() {
            let group = group_name(&entry.group);
            let mut added = BTreeSet::new();
            let mut removed = Vec::new();
            for &p in entry.joined.iter() {
                if peer.view.join(&group, p) {
                    added.insert(p);
                }
            }
            for &p in entry.left.iter() {
                if peer.view.leave(&group, p) && !added.remove(&p) {
                    removed.push(p);
                }
            }
            if let Err(limit) = check_limits(&peer.view, &limits) {
                self.close(now, id, CloseReason::LimitExceeded(limit));
                return;
            }
            removed.sort_unstable();
            let added: Vec<PortId> = added
                .into_iter()
                .map(|n| PortId::new(node.clone(), inc, n))
                .collect();
            let removed: Vec<PortId> = removed
                .into_iter()
                .map(|n| PortId::new(node.clone(), inc, n))
                .collect();
            self.groups
                .apply(&group, &added, &removed, &mut self.events);
        }
    }

    /// The peer's one connection is gone: its members leave, one delta per group.
    pub(crate) fn conn_lost(
        &mut self,
        now: Instant,
        node: &NodeId,
        id: ConnId,
        reason: CloseReason,
    ) {
        if self.peers.get(node).is_none_or(|p| p.conn != id) {
            return;
        }
        let Some(peer) = self.peers.remove(node) else {
            return;
        };
        if peer.up {
            tracing::debug!(%node, %reason, "node down");
            self.events.push_back(Event::NodeDown {
                node: node.clone(),
                incarnation: peer.incarnation,
                reason,
            });
        }
        self.node_ports_gone(node, |_| true, PortDownReason::NodeDown(reason));
        for (group, ports) in &peer.view.groups {
            let removed: Vec<PortId> = ports
                .iter()
                .map(|&n| PortId::new(node.clone(), peer.incarnation, n))
                .collect();
            self.groups.apply(group, &[], &removed, &mut self.events);
        }
        if let Some(k) = self.mesh.known_mut().get_mut(node) {
            k.connected = false;
            k.last_seen = now;
            if k.dial.in_flight.is_none() {
                k.dial.back_off(now, &self.cfg.timeouts, &mut self.rng);
            }
        }
        // A seed that led to it waits as long (it would otherwise dial the
        // node again at once).
        for seed in self.mesh.seeds_mut() {
            if seed.node.as_ref() == Some(node) && seed.dial.in_flight.is_none() {
                seed.dial.back_off(now, &self.cfg.timeouts, &mut self.rng);
            }
        }
    }

    /// Dialling seed `i` reached our own greeting of another connection. If
    /// the seed is one of our listen addresses it is never dialled again;
    /// otherwise the claim is unauthenticated (whoever answers there may be
    /// forwarding our greeting), so the seed is only set aside for
    /// `forget_after`.
    fn seed_leads_to_self(&mut self, now: Instant, i: usize) {
        let ours = self.seed_is_ours(i);
        let Some(seed) = self.mesh.seeds_mut().get_mut(i) else {
            return;
        };
        if ours {
            seed.is_self = true;
        } else {
            seed.dial.next = now + self.cfg.timeouts.forget_after;
        }
    }

    /// Seed `i` is one of our own listen addresses.
    fn seed_is_ours(&self, i: usize) -> bool {
        let Some(seed) = self.mesh.seeds().get(i) else {
            return false;
        };
        self.cfg.listen_addrs.iter().any(|l| {
            l.port() == seed.addr.port()
                && (l.ip() == seed.addr.ip()
                    || (l.ip().is_unspecified() && seed.addr.ip().is_loopback()))
        })
    }

    /// A connection we dialled ended: back off its target.
    pub(crate) fn dial_ended(&mut self, now: Instant, c: &Conn, reason: CloseReason) {
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
        let dial = match &c.dial_for {
            DialFor::Nothing => return,
            DialFor::Seed(i) => self.mesh.seeds_mut().get_mut(*i).map(|s| &mut s.dial),
            DialFor::Node(n) => self.mesh.known_mut().get_mut(n).map(|k| &mut k.dial),
        };
        if let Some(dial) = dial.filter(|d| d.in_flight == Some(c.id)) {
            dial.back_off(now, &self.cfg.timeouts, &mut self.rng);
        }
    }
}

/// A peer's advertised addresses, with an unspecified IP replaced by the one
/// the connection sees.
fn resolve_addrs(hello: &Hello, seen: SocketAddr) -> Vec<SocketAddr> {
    hello
        .addrs
        .iter()
        .map(|a| {
            let mut a = SocketAddr::from(*a);
            if a.ip().is_unspecified() {
                a.set_ip(seen.ip());
            }
            a
        })
        .collect()
}

fn peer_info(node: &NodeId, addrs: &[SocketAddr]) -> PeerInfo {
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

/// Applies `(group, joined, left)` entries to a snapshot being received,
/// checking the per-peer limits after each entry.
fn build_view<'a>(
    view: &mut RemoteView,
    entries: impl Iterator<Item = (&'a str, &'a [u64], &'a [u64])>,
    limits: &crate::config::Limits,
) -> Result<(), Limit> {
    for (group, joined, left) in entries {
        let group = group_name(group);
        for &p in joined {
            view.join(&group, p);
        }
        for &p in left {
            view.leave(&group, p);
        }
        check_limits(view, limits)?;
    }
    Ok(())
}

fn check_limits(view: &RemoteView, limits: &crate::config::Limits) -> Result<(), Limit> {
    if view.groups.len() > limits.max_groups_per_peer {
        Err(Limit::Groups)
    } else if view.members > limits.max_members_per_peer {
        Err(Limit::Members)
    } else {
        Ok(())
    }
}
