//! A connection's protocol, frame by frame: greeting, authentication, the
//! peer's snapshot and incremental changes, and what losing a peer does to
//! the view. Which connection per pair survives is in `pair.rs`; peer lists
//! and dials in `gossip.rs`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::gossip::peer_info;
use super::Node;
use crate::conn::{Conn, Incoming, Phase};
use crate::event::{CloseReason, Event, Limit, PortDownReason, Removal};
use crate::groups::Batch;
use crate::handshake;
use crate::ids::{group_name, ConnId, GroupName, NodeId, PortId};
use crate::mesh::DialFor;
use crate::remote::RemoteView;
use crate::sessions::Published;
use crate::time::Instant;
use crate::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, Hello, WireAddr, WireLeave, WireNodeId, WirePort,
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
            port_credit: self.cfg.port_credit,
        }
    }

    /// Starts the handshake on a freshly connected connection.
    pub(super) fn greet(&mut self, now: Instant, id: ConnId) {
        let hello = self.hello();
        let Some(c) = self.sessions.get_mut(id) else {
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
    pub(super) fn on_greeting(&mut self, now: Instant, id: ConnId, theirs: Hello) {
        if self.accept_hello(now, id, &theirs) {
            if let Some(c) = self.sessions.get_mut(id) {
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
    pub(super) fn on_authenticated(&mut self, now: Instant, id: ConnId, theirs: Hello) {
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
            let seed = match (reason, self.sessions.get(id).map(|c| &c.dial_for)) {
                (CloseReason::SelfConnection, Some(DialFor::Seed(i))) => Some(*i),
                _ => None,
            };
            self.close(now, id, reason);
            if let Some(i) = seed {
                self.seed_leads_to_self(now, i);
            }
            return false;
        }
        let Some(c) = self.sessions.get_mut(id) else {
            return false;
        };
        c.peer_max_frame =
            (theirs.max_frame as usize).clamp(MIN_PEER_FRAME, self.cfg.limits.max_frame);
        self.credits.open(id, theirs.port_credit);
        true
    }

    pub(super) fn on_frame(&mut self, now: Instant, id: ConnId, frame: Frame) {
        let Some(c) = self.sessions.get_mut(id) else {
            return;
        };
        // The peer's first frame here: it has authenticated this connection,
        // so the one it replaces can go.
        if let Some(old) = c.supersedes.take() {
            self.close(now, old, CloseReason::Superseded);
        }
        let Some(c) = self.sessions.get_mut(id) else {
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
                self.port_monitors.unwatched_by(port, id)
            }
            (
                Phase::Active {
                    node, incarnation, ..
                },
                Frame::PortDown { port },
            ) => {
                let (node, inc) = (node.clone(), *incarnation);
                self.on_port_down(&node, inc, port);
                self.credit_port_down(id, port);
            }
            (Phase::Active { .. }, Frame::Credit { port, n }) => self.on_credit(now, id, port, n),
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
        let Some(c) = self.sessions.get(id) else {
            return;
        };
        let addrs = resolve_addrs(&hello, c.addr);
        let seed = match c.dial_for {
            DialFor::Seed(i) => Some(i),
            _ => None,
        };

        // The mesh: remember the node (it is authenticated, whichever of its
        // connections survives below) and settle the dial that found it.
        let news = !self.mesh.knows(&node);
        let max = self.cfg.limits.max_known_nodes;
        if !self.mesh.authenticated(&node, &addrs, seed, id, now, max) {
            self.close(now, id, CloseReason::LimitExceeded(Limit::KnownNodes));
            return;
        }

        if !self.keep_one_per_pair(now, id, &node, &hello) {
            return;
        }
        tracing::debug!(conn = %id, %node, incarnation = hello.incarnation, "authenticated");
        self.now_active(id);
        self.rewatch(now, id, &node, hello.incarnation);

        // Peers that already have our snapshot get our pending changes first,
        // so the snapshot below is exactly what they now know too.
        self.flush_local();
        let others: Vec<ConnId> = self
            .sessions
            .peers()
            .filter(|(n, p)| **n != node && p.conn() != id)
            .filter(|(_, p)| self.sessions.get(p.conn()).is_some_and(|c| c.is_active()))
            .filter(|(n, _)| self.mesh.knows(n))
            .map(|(_, p)| p.conn())
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
            for conn in others {
                self.send_frame(now, conn, &announce);
            }
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
        let Some((node, inc, incoming)) = self.sessions.get_mut(id).and_then(Conn::stream_mut)
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
        if !done {
            return;
        }
        // The snapshot is complete. If the peer table follows this
        // connection, its view becomes what we know of the peer; otherwise
        // the connection keeps it on standby.
        let view = core::mem::take(view);
        *incoming = Incoming::Live;
        let node = node.clone();
        if self.sessions.follows(&node, id) {
            self.publish(&node, inc, view);
        } else if let Some((_, _, incoming)) = self.sessions.get_mut(id).and_then(Conn::stream_mut)
        {
            *incoming = Incoming::Standby(view);
        }
    }

    /// `new`, of the run `inc`, becomes what we know of the peer `node`,
    /// replacing its view in one delta per group.
    pub(super) fn publish(&mut self, node: &NodeId, inc: u64, new: RemoteView) {
        let node = node.clone();
        let Some(Published {
            view: old,
            incarnation: old_inc,
            was_up,
        }) = self.sessions.publish(&node, inc, new)
        else {
            return;
        };
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
        let Some(new) = self.sessions.peer(&node).map(|p| p.view()) else {
            unreachable!("published above")
        };
        let port = |inc: u64, n: u64| PortId::new(node.clone(), inc, n);
        let empty = BTreeMap::new();
        let names: BTreeSet<&GroupName> = old.groups.keys().chain(new.groups.keys()).collect();
        let mut deltas = Vec::new();
        for group in names {
            let before = old.groups.get(group).unwrap_or(&empty);
            let after = new.groups.get(group).unwrap_or(&empty);
            let mut batch = Batch::default();
            if old_inc == inc {
                for (&n, meta) in after {
                    match before.get(&n) {
                        None => batch.added.push((port(inc, n), meta.clone())),
                        Some(was) if was != meta => {
                            batch.updated.push((port(inc, n), meta.clone()))
                        }
                        Some(_) => {}
                    }
                }
                batch.removed = before
                    .keys()
                    .filter(|n| !after.contains_key(n))
                    .map(|&n| (port(inc, n), Removal::Resynced))
                    .collect();
            } else {
                batch.added = after
                    .iter()
                    .map(|(&n, m)| (port(inc, n), m.clone()))
                    .collect();
                batch.removed = before
                    .keys()
                    .map(|&n| (port(old_inc, n), Removal::NodeRestarted))
                    .collect();
            }
            deltas.push((group.clone(), batch));
        }
        for (group, batch) in deltas {
            self.groups.apply(&group, batch, &mut self.events);
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
        let Some((node, inc, incoming)) = self.sessions.get_mut(id).and_then(Conn::stream_mut)
        else {
            return;
        };
        let entries = groups
            .iter()
            .map(|g| (g.group.as_str(), &g.joined[..], &g.left[..]));
        match incoming {
            // The stream's own view: changes apply to it.
            Incoming::Syncing(view) | Incoming::Standby(view) => {
                if let Err(limit) = build_view(view, entries, &limits) {
                    self.close(now, id, CloseReason::LimitExceeded(limit));
                }
                return;
            }
            Incoming::Stale => return,
            Incoming::Live => {}
        }
        let node = node.clone();
        let Some(view) = self.sessions.live_view_mut(&node, id) else {
            return;
        };
        let port = |n: u64| PortId::new(node.clone(), inc, n);
        for (group, joined, left) in entries {
            let group = group_name(group);
            let (changed, verdict) = view.apply(&group, joined, left, &limits);
            let batch = Batch {
                added: changed
                    .added
                    .into_iter()
                    .map(|(n, m)| (port(n), m))
                    .collect(),
                updated: changed
                    .updated
                    .into_iter()
                    .map(|(n, m)| (port(n), m))
                    .collect(),
                removed: changed
                    .removed
                    .into_iter()
                    .map(|(n, why)| (port(n), Removal::from(why)))
                    .collect(),
            };
            // Even from an entry past a limit: the group view follows the
            // peer's view, which the close then empties.
            self.groups.apply(&group, batch, &mut self.events);
            if let Err(limit) = verdict {
                self.close(now, id, CloseReason::LimitExceeded(limit));
                return;
            }
        }
    }

    /// The peer's one connection is gone and none takes over (see
    /// `pair.rs`): its members leave, one delta per group.
    pub(super) fn conn_lost(&mut self, now: Instant, node: &NodeId, reason: CloseReason) {
        let Some(peer) = self.sessions.follow(node, None) else {
            return;
        };
        if peer.is_up() {
            tracing::debug!(%node, %reason, "node down");
            self.events.push_back(Event::NodeDown {
                node: node.clone(),
                incarnation: peer.incarnation(),
                reason,
            });
        }
        self.node_ports_gone(node, |_| true, PortDownReason::NodeDown(reason));
        for (group, ports) in &peer.view().groups {
            let batch = Batch {
                removed: ports
                    .keys()
                    .map(|&n| {
                        let port = PortId::new(node.clone(), peer.incarnation(), n);
                        (port, Removal::NodeLost(reason))
                    })
                    .collect(),
                ..Batch::default()
            };
            self.groups.apply(group, batch, &mut self.events);
        }
        let t = &self.cfg.timeouts;
        self.mesh.lost(node, now, t, &mut self.rng);
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
/// Applies `(group, joined, left)` entries to a stream's own view (a
/// snapshot being received, or a connection on standby).
fn build_view<'a>(
    view: &mut RemoteView,
    entries: impl Iterator<Item = (&'a str, &'a [WirePort], &'a [WireLeave])>,
    limits: &crate::config::Limits,
) -> Result<(), Limit> {
    for (group, joined, left) in entries {
        view.apply(&group_name(group), joined, left, limits).1?;
    }
    Ok(())
}
