//! [`Node`]: the state machine's façade, its inputs (`handle_*`, local API)
//! and its outputs (`poll_*`).
//!
//! # Who owns what
//!
//! Each concern is a type of its own, in its own file, with private fields
//! and a small API; `Node` holds one of each and orchestrates: a part never
//! reaches into another, and where two must act together a `Node` method
//! does it, in this module or its children.
//!
//! - [`Sessions`] (`sessions.rs`): the open connections by id and the peer
//!   table, each peer followed through exactly one authenticated connection.
//!   [`Sessions::follow`] is the one function that changes the table;
//!   `pair.rs` decides which of a pair's connections survives and hands a
//!   peer over when its connection closes.
//! - [`Conn`] (`conn.rs`): one connection's phase, channel, clocks and output.
//! - [`Mesh`] (`mesh.rs`): known nodes, seeds, and when each is dialled.
//! - [`Groups`] (`groups.rs`): the group view and its monitors; every delta.
//! - [`Local`] (`local.rs`): our ports, registrations and unsent changes.
//! - [`PortMonitors`] (`port_monitors.rs`): our port monitors and the peers
//!   watching our ports.
//! - [`Credits`] (`credit.rs`): flow control of port messages, credit per
//!   (sender, port), both ways.
//! - [`Deadlines`] (`timers.rs`): when each connection is next looked at.
//! - `snapshot::Outgoing` (`snapshot.rs`): our snapshot's cursor on one connection.
//! - [`Outputs`] (`outputs.rs`): transmits and actions queued for the driver.
//! - `Node` itself: the configuration, our run (incarnation, epoch), the RNG,
//!   the clock the driver last gave, the event queue and the stats.
//!
//! The `Node` methods are spread over this module's children by topic:
//! `session.rs` (greeting, authentication, frames, the peer's memberships),
//! `pair.rs` (one connection per pair), `gossip.rs` (peer lists, digests,
//! dials), `messages.rs` (port messaging), `flow.rs` (its credit), `port_monitors.rs` (port
//! monitors) and `snapshot.rs` (our snapshot going out).

mod flow;
mod gossip;
mod messages;
mod pair;
mod port_monitors;
mod session;
mod snapshot;

pub use messages::SendOutcome;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::net::SocketAddr;

use rand_chacha::ChaCha12Rng;
use rand_core::SeedableRng;

use crate::batch::{self, BatchKind};
use crate::channel::Input;
use crate::config::Config;
use crate::conn::{Conn, Phase};
use crate::credit::Credits;
use crate::error::{ApiError, ConfigError};
use crate::event::{Action, CloseReason, Direction, Event, Limit, Removal, Transmit};
use crate::groups::{Batch, Groups};
use crate::handshake::Psk;
use crate::ids::{check_group, group_name, ConnId, GroupName, MonitorId, NodeId, PortId, RegId};
use crate::local::{Effect, Local};
use crate::mesh::{DialFor, Mesh};
use crate::meta::{self, Meta};
use crate::outputs::Outputs;
use crate::port_monitors::PortMonitors;
use crate::sessions::Sessions;
use crate::stats::Stats;
use crate::time::Instant;
use crate::timers::Deadlines;
use crate::wire::Frame;

/// One groupmesh node: the whole protocol, without I/O.
///
/// The node never reads a clock, opens a socket, spawns or blocks. Its driver
/// feeds it what happens (`handle_*`), calls the local API, and drains its
/// outputs after every such call, or after a burst of them but always before
/// it waits for anything again, in this order, until each returns `None`:
///
/// 1. [`poll_transmit`](Self::poll_transmit): bytes to write to a connection;
/// 2. [`poll_action`](Self::poll_action): connections to dial or close;
/// 3. [`poll_event`](Self::poll_event): what happened, for the user;
/// 4. [`poll_timeout`](Self::poll_timeout): when to call
///    [`handle_timeout`](Self::handle_timeout) next.
///
/// Transmits come before actions so that a connection's last frame (the reason
/// it is closed) is written before the close. Time passed in must never go back.
/// Draining after a burst batches: whatever was queued for a connection since
/// the last drain comes out as one [`Transmit`], and local membership changes
/// as one frame per peer.
///
/// Our snapshot to a new peer never comes out whole: a chunk of about
/// [`Config::snapshot_chunk`] bytes at a time, the next one with the next
/// `poll_transmit` after the last was handed out, or, with
/// [`Config::paced_snapshots`], after the driver reported the connection
/// drained ([`handle_drained`](Self::handle_drained)).
///
/// Peer misbehaviour is never an `Err`: it closes that peer's connection with a
/// [`CloseReason`] reported in [`Event::ConnectionClosed`], and leaves every
/// other connection and every local registration untouched. Local API misuse is
/// an [`ApiError`] that changes nothing. A panic is a bug.
#[derive(Debug)]
pub struct Node {
    cfg: Config,
    incarnation: u64,
    /// Orders our runs against earlier ones of our node id (see
    /// [`Hello::epoch`](crate::wire::Hello::epoch)): starts at the
    /// incarnation, raised past any a peer still keeps.
    epoch: u64,
    rng: ChaCha12Rng,
    shut_down: bool,
    /// Open connections and the peer table.
    sessions: Sessions,
    next_monitor: u64,
    mesh: Mesh,
    groups: Groups,
    local: Local,
    port_monitors: PortMonitors,
    /// Flow control of port messages, both ways.
    credits: Credits,
    /// The latest time the driver gave; local API calls act at it.
    now: Instant,
    /// When peers next hear our peer list again (see `gossip`).
    next_gossip: Instant,
    /// When each connection is next looked at.
    deadlines: Deadlines,
    /// A connection authenticated or closed since strays were last looked
    /// for (see `pair.rs`): the next timeout looks.
    sweep: bool,
    /// Rotates the order peers get local changes in (see `flush_local`).
    flush_turn: usize,
    /// The key derived from the configured secret.
    psk: Psk,
    /// Connections whose next snapshot chunk is due (see `snapshot.rs`).
    snapshots_due: VecDeque<ConnId>,
    /// Transmits and actions for the driver.
    outputs: Outputs,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Node {
    /// A node from its configuration.
    ///
    /// `incarnation` must differ on every start of the same node id (a start
    /// time in nanoseconds does). It need not grow: a run whose clock went
    /// back is told by a peer that still keeps the earlier run and moves its
    /// epoch above that one (see [`epoch`](Self::epoch)). `seed` feeds the
    /// handshakes' ephemeral keys and the jitter and should come from the OS
    /// in production (tests fix it to replay runs).
    ///
    /// Seeds are dialled on the first [`handle_timeout`](Self::handle_timeout)
    /// (`poll_timeout` returns `now` at once).
    ///
    /// # Errors
    /// [`ConfigError`] when the configuration breaks a rule; nothing is started.
    pub fn new(
        cfg: Config,
        incarnation: u64,
        seed: [u8; 32],
        now: Instant,
    ) -> Result<Node, ConfigError> {
        cfg.validate()?;
        let next_gossip = now + cfg.timeouts.forget_after / 3;
        let mut mesh = Mesh::default();
        for &addr in &cfg.seeds {
            mesh.add_seed(addr, now);
        }
        let psk = Psk::derive(&cfg.secret);
        Ok(Node {
            cfg,
            incarnation,
            epoch: incarnation,
            rng: ChaCha12Rng::from_seed(seed),
            shut_down: false,
            sessions: Sessions::default(),
            next_monitor: 0,
            mesh,
            groups: Groups::default(),
            local: Local::default(),
            port_monitors: PortMonitors::default(),
            credits: Credits::default(),
            now,
            next_gossip,
            deadlines: Deadlines::default(),
            sweep: false,
            flush_turn: 0,
            psk,
            snapshots_due: VecDeque::new(),
            outputs: Outputs::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.cfg.node_id
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// This node's epoch: which of two runs of one node id is the newer is
    /// decided by the greater epoch. It starts at the incarnation and is
    /// raised past a peer's when that peer still keeps an earlier run of
    /// our node id with a greater one (this run's clock went back).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ----- (A) queries -------------------------------------------------

    /// The members of `group`, sorted; `None` when it has none. Answered from
    /// this node's view, without any network round trip.
    pub fn members(&self, group: &str) -> Option<&[PortId]> {
        self.groups.members(group)
    }

    /// The members of `group` with their metadata (empty: none), sorted by
    /// port; nothing when it has none. From this node's view, like
    /// [`members`](Self::members).
    pub fn members_with_meta<'a>(
        &'a self,
        group: &str,
    ) -> impl Iterator<Item = (&'a PortId, &'a Meta)> + 'a {
        self.groups.members_with_meta(group)
    }

    /// Names of the groups that have members, sorted.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.names().map(|g| &**g)
    }

    /// Nodes with an authenticated connection whose memberships are known.
    pub fn connected_nodes(&self) -> impl Iterator<Item = &NodeId> {
        self.sessions
            .peers()
            .filter(|(_, p)| p.is_up())
            .map(|(n, _)| n)
    }

    /// Nodes this node knows of (connected or not), with their addresses.
    pub fn known_nodes(&self) -> impl Iterator<Item = (&NodeId, &[SocketAddr])> {
        self.mesh.known_nodes()
    }

    /// Counters and sizes, cheap to take.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.connections = self.sessions.len();
        s.authenticated = self.sessions.iter().filter(|c| c.is_active()).count();
        s.known_nodes = self.mesh.known_count();
        s.groups = self.groups.group_count();
        s.members = self.groups.member_count();
        s.monitors = self.groups.monitor_count();
        s.local_ports = self.local.port_count();
        s.port_monitors = self.port_monitors.count();
        s.snapshots_sending = self
            .sessions
            .iter()
            .filter(|c| c.snapshot.is_some())
            .count();
        s
    }

    // ----- (B) inputs from the driver ----------------------------------

    /// A peer connected to one of our listeners from `addr`.
    ///
    /// When `max_unauthenticated` inbound connections are already in their
    /// handshake (or `max_connections` are open), one of them is closed to
    /// make room ([`Limit::Connections`](crate::Limit::Connections)): the
    /// oldest whose peer has not greeted under the key (a silent or garbage
    /// socket), else the oldest whose handshake has run for a quarter of
    /// `handshake_timeout`. Whoever holds slots open without the key cannot
    /// keep an honest peer out, and a burst of honest dials (a cluster's cold
    /// start through one seed) cannot take each other's slots in turn: the
    /// newcomer is refused and dials again after its backoff. The node's own
    /// dials have slots of their own (`max_dials`).
    ///
    /// Returns the connection's id, or `None` when there is no room (every
    /// connection authenticated or in a young greeted handshake, or the node
    /// shut down): then close the socket (an [`Event::InboundRefused`] is
    /// queued).
    pub fn handle_inbound(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnId> {
        self.now = self.now.max(now);
        let limits = &self.cfg.limits;
        let unfinished = || {
            self.sessions
                .iter()
                .filter(|c| c.dir == Direction::Inbound && !c.is_active())
        };
        let full = self.sessions.len() >= limits.max_connections
            || unfinished().count() >= limits.max_unauthenticated;
        let t = &self.cfg.timeouts;
        let evict = full
            .then(|| {
                unfinished()
                    .filter(|c| !c.keeps_handshake_slot(now, t))
                    .min_by_key(|c| (c.greeted(), c.opened, c.id))
                    .map(|c| c.id)
            })
            .flatten();
        if self.shut_down || (full && evict.is_none()) {
            self.stats.inbound_refused += 1;
            tracing::debug!(%addr, "inbound connection refused: connection limit");
            self.events.push_back(Event::InboundRefused { addr });
            return None;
        }
        if let Some(old) = evict {
            tracing::debug!(conn = %old, "handshake slot given to a new connection");
            self.close(now, old, CloseReason::LimitExceeded(Limit::Connections));
        }
        let id = self.new_conn(now, Direction::Inbound, addr, DialFor::Nothing);
        self.greet(now, id);
        Some(id)
    }

    /// The dial requested by [`Action::Dial`] for `conn` connected.
    pub fn handle_dialed(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        if matches!(self.sessions.get(conn), Some(c) if matches!(c.phase, Phase::Dialing)) {
            self.greet(now, conn);
        }
    }

    /// The dial requested by [`Action::Dial`] for `conn` failed.
    pub fn handle_dial_failed(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        if self.sessions.contains(conn) {
            self.remove_conn(now, conn, CloseReason::DialFailed, false);
        }
    }

    /// Bytes arrived on `conn`, split anywhere. Unknown connections are ignored.
    pub fn handle_bytes(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        self.now = self.now.max(now);
        let Some(c) = self.sessions.get_mut(conn) else {
            return;
        };
        self.stats.bytes_in += bytes.len() as u64;
        let mut accepted = c.channel.accepted();
        let mut input = bytes;
        loop {
            let Some(c) = self.sessions.get_mut(conn) else {
                return;
            };
            let read = c.channel.next(&mut input);
            // Only records that were accepted count as the peer being alive.
            if c.channel.accepted() > accepted {
                accepted = c.channel.accepted();
                c.heard(now);
            }
            match read {
                Ok(Some(Input::Frame(frame))) => {
                    self.stats.frames_in += 1;
                    self.on_frame(now, conn, frame);
                }
                Ok(Some(Input::Greeting(hello))) => self.on_greeting(now, conn, hello),
                Ok(Some(Input::Authenticated(hello))) => self.on_authenticated(now, conn, hello),
                Ok(None) => return,
                Err(reason) => {
                    self.close(now, conn, reason);
                    return;
                }
            }
        }
    }

    /// The connection was closed or reset by the peer or the network.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        if self.sessions.contains(conn) {
            self.remove_conn(now, conn, CloseReason::Disconnected, false);
        }
    }

    /// The driver's send buffer for `conn` is over its limit: the peer does
    /// not read. The connection is forgotten with
    /// [`Limit::SendBuffer`](crate::Limit::SendBuffer) and an [`Action::Close`]
    /// follows (no close frame: the peer is not reading).
    pub fn handle_send_overflow(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        if self.sessions.contains(conn) {
            self.remove_conn(
                now,
                conn,
                CloseReason::LimitExceeded(crate::event::Limit::SendBuffer),
                true,
            );
        }
    }

    /// What the driver held for `conn` has been written to the socket (or
    /// is below its low-water mark): with
    /// [`Config::paced_snapshots`](crate::Config::paced_snapshots), the next
    /// chunk of our snapshot to that peer comes out with the next
    /// [`poll_transmit`](Self::poll_transmit). It paces nothing else, and
    /// calling it at any time is harmless.
    ///
    /// A driver that sets `paced_snapshots` calls it whenever, after it was
    /// handed bytes for `conn`, what it holds for `conn` falls to its
    /// low-water mark or below, including at once when it wrote a whole
    /// [`Transmit`] straight away: a snapshot waits for it, and without it
    /// stays unfinished ([`Stats::snapshots_sending`]). A report that comes
    /// while the node still holds output for `conn` waits for the next.
    /// Without `paced_snapshots` a snapshot never waits for it.
    pub fn handle_drained(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        self.release_chunk(conn);
    }

    /// Time passed. Fires everything due at `now`; calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.shut_down {
            return;
        }
        let t = self.cfg.timeouts.clone();
        // Woken a ping interval or more after the deadline it asked for, this
        // node was not running (a paused VM, an overloaded host): its peers'
        // silence meanwhile may be its own.
        let stalled = self
            .poll_timeout()
            .is_some_and(|due| now.saturating_since(due) >= t.ping_interval);
        while let Some(id) = self.deadlines.pop_due(now) {
            let Some(c) = self.sessions.get_mut(id) else {
                continue;
            };
            if !c.is_active() {
                if now.saturating_since(c.opened) >= t.handshake_timeout {
                    self.close(now, id, CloseReason::HandshakeTimeout);
                }
            } else if c.keepalive_expired(now, stalled, &t) {
                self.close(now, id, CloseReason::KeepaliveTimeout);
            } else if now.saturating_since(c.last_send) >= t.ping_interval {
                self.send_frame(now, id, &Frame::Ping);
            }
            if let Some(c) = self.sessions.get(id) {
                self.deadlines.set(id, c.deadline(&t));
            }
        }
        if core::mem::take(&mut self.sweep) {
            for id in self.strays() {
                self.close(now, id, CloseReason::Superseded);
            }
        }
        if self.mesh.next_timeout(&t).is_some_and(|at| at <= now) {
            self.mesh_due(now, &t);
        }
        if now >= self.next_gossip {
            self.gossip(now);
        }
    }

    // ----- (C) local API -----------------------------------------------

    /// Creates a local port. Its number is never reused by this incarnation.
    pub fn open_port(&mut self) -> PortId {
        let n = self.local.open_port();
        PortId::new(self.cfg.node_id.clone(), self.incarnation, n)
    }

    /// Destroys a local port: all its registrations end, everywhere.
    ///
    /// # Errors
    /// [`ApiError::NotLocalPort`] if it is not a live port of this node.
    pub fn close_port(&mut self, port: &PortId) -> Result<(), ApiError> {
        self.live()?;
        let n = self.local_number(port)?;
        let left = self.local.close_port(n).ok_or(ApiError::NotLocalPort)?;
        for group in left {
            let batch = Batch::leave(port.clone(), Removal::PortClosed);
            self.groups.apply(&group, batch, &mut self.events);
        }
        self.local_port_closed(port);
        Ok(())
    }

    /// Registers a local port in `group`, without metadata. The port is a
    /// member until its last registration in the group ends or the port is
    /// closed. The same as [`register_with_meta`](Self::register_with_meta)
    /// with empty metadata.
    ///
    /// # Errors
    /// [`ApiError::BadGroupName`], [`ApiError::NotLocalPort`]; nothing changes.
    pub fn register(&mut self, group: &str, port: &PortId) -> Result<RegId, ApiError> {
        self.register_with_meta(group, port, &[])
    }

    /// Registers a local port in `group` with `meta`: opaque bytes every
    /// node lists with the member (see [`members_with_meta`](Self::members_with_meta)).
    /// A port registered again in a group stays one member; the last
    /// registration or [`update_meta`](Self::update_meta) sets its metadata.
    ///
    /// # Errors
    /// [`ApiError::BadGroupName`], [`ApiError::NotLocalPort`],
    /// [`ApiError::MetaTooLarge`]; nothing changes.
    pub fn register_with_meta(
        &mut self,
        group: &str,
        port: &PortId,
        meta: &[u8],
    ) -> Result<RegId, ApiError> {
        self.live()?;
        check_group(group)?;
        let meta = meta::check(meta, self.cfg.limits.max_meta)?;
        let n = self.local_number(port)?;
        let group = group_name(group);
        let (id, effect) = self
            .local
            .register(group.clone(), n, meta)
            .ok_or(ApiError::NotLocalPort)?;
        self.local_effect(&group, port.clone(), effect);
        Ok(id)
    }

    /// Sets the metadata of the registration's port in its group; it
    /// travels to every node with the next batch of changes, and monitors
    /// see the member in `updated`.
    ///
    /// # Errors
    /// [`ApiError::UnknownRegistration`], [`ApiError::MetaTooLarge`];
    /// nothing changes.
    pub fn update_meta(&mut self, reg: RegId, meta: &[u8]) -> Result<(), ApiError> {
        self.live()?;
        let meta = meta::check(meta, self.cfg.limits.max_meta)?;
        let (group, n, effect) = self
            .local
            .update_meta(reg, meta)
            .ok_or(ApiError::UnknownRegistration)?;
        let port = PortId::new(self.cfg.node_id.clone(), self.incarnation, n);
        self.local_effect(&group, port, effect);
        Ok(())
    }

    /// What a registration or update of ours did, into the group view.
    fn local_effect(&mut self, group: &GroupName, port: PortId, effect: Effect) {
        let batch = match effect {
            Effect::Joined(meta) => Batch::join(port, meta),
            Effect::Updated(meta) => Batch::update(port, meta),
            Effect::Unchanged => return,
        };
        self.groups.apply(group, batch, &mut self.events);
    }

    /// Ends a registration.
    ///
    /// # Errors
    /// [`ApiError::UnknownRegistration`] if it already ended; nothing changes.
    pub fn unregister(&mut self, reg: RegId) -> Result<(), ApiError> {
        self.live()?;
        let (group, n, left) = self
            .local
            .unregister(reg)
            .ok_or(ApiError::UnknownRegistration)?;
        if left {
            let port = PortId::new(self.cfg.node_id.clone(), self.incarnation, n);
            let batch = Batch::leave(port, Removal::Unregistered);
            self.groups.apply(&group, batch, &mut self.events);
        }
        Ok(())
    }

    /// Starts monitoring `group`. If it has members, the first event
    /// `(members, members, [])` is queued at once.
    ///
    /// # Errors
    /// [`ApiError::BadGroupName`]; nothing changes.
    pub fn monitor(&mut self, group: &str) -> Result<MonitorId, ApiError> {
        self.live()?;
        check_group(group)?;
        self.next_monitor += 1;
        let id = MonitorId(self.next_monitor);
        self.groups.monitor(id, group_name(group), &mut self.events);
        Ok(id)
    }

    /// Stops a monitor: no more events for it are queued.
    ///
    /// # Errors
    /// [`ApiError::UnknownMonitor`] if it already ended.
    pub fn unmonitor(&mut self, monitor: MonitorId) -> Result<(), ApiError> {
        if self.groups.unmonitor(monitor) {
            Ok(())
        } else {
            Err(ApiError::UnknownMonitor)
        }
    }

    /// Adds a seed address, dialled at the next [`handle_timeout`](Self::handle_timeout).
    pub fn add_seed(&mut self, now: Instant, addr: SocketAddr) {
        self.now = self.now.max(now);
        self.mesh.add_seed(addr, now);
    }

    /// Tells every peer this node is leaving and closes every connection, so
    /// peers drop its members at once. Afterwards the node does nothing.
    pub fn shutdown(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.shut_down {
            return;
        }
        self.flush_local();
        let ids: Vec<ConnId> = self.sessions.ids();
        for id in ids {
            self.close(now, id, CloseReason::Shutdown);
        }
        self.shut_down = true;
    }

    // ----- (D) outputs -------------------------------------------------

    /// Bytes to write to a connection, or `None` when there are none.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.outputs.next_closing() {
            self.stats.bytes_out += t.data.len() as u64;
            return Some(t);
        }
        self.flush_local();
        self.feed_snapshots();
        while let Some(id) = self.outputs.next_marked() {
            let Some(c) = self.sessions.get_mut(id) else {
                continue;
            };
            c.dirty = false;
            let data = c.take_output();
            if data.is_empty() {
                continue;
            }
            self.stats.bytes_out += data.len() as u64;
            self.stats.largest_transmit = self.stats.largest_transmit.max(data.len());
            self.snapshot_taken(id);
            return Some(Transmit { conn: id, data });
        }
        None
    }

    /// A connection to dial or close, or `None`.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outputs.next_action()
    }

    /// An event for the user, or `None`.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called;
    /// `None` when nothing is scheduled. Changes after every input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        let t = &self.cfg.timeouts;
        let gossip = self.sessions.has_peers().then_some(self.next_gossip);
        [self.deadlines.next(), self.mesh.next_timeout(t), gossip]
            .into_iter()
            .flatten()
            .min()
    }

    // ----- internals shared by this module's children -----------------

    fn live(&self) -> Result<(), ApiError> {
        if self.shut_down {
            Err(ApiError::ShutDown)
        } else {
            Ok(())
        }
    }

    fn local_number(&self, port: &PortId) -> Result<u64, ApiError> {
        if port.node() == &self.cfg.node_id
            && port.incarnation() == self.incarnation
            && self.local.is_live(port.number())
        {
            Ok(port.number())
        } else {
            Err(ApiError::NotLocalPort)
        }
    }

    fn new_conn(
        &mut self,
        now: Instant,
        dir: Direction,
        addr: SocketAddr,
        dial_for: DialFor,
    ) -> ConnId {
        let id = self.sessions.next_id();
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut self.rng, &mut seed);
        let max_frame = self.cfg.limits.max_frame;
        let conn = Conn::new(id, dir, addr, dial_for, now, max_frame, &self.psk, seed);
        self.deadlines.set(id, conn.deadline(&self.cfg.timeouts));
        self.sessions.insert(conn);
        id
    }

    fn dial(&mut self, now: Instant, addr: SocketAddr, dial_for: DialFor) -> ConnId {
        let id = self.new_conn(now, Direction::Outbound, addr, dial_for);
        tracing::debug!(conn = %id, %addr, "dialling");
        self.outputs.dial(id, addr);
        id
    }

    /// Queues on connection `id` what `write` appends to it (and returns the
    /// number of frames of): the one place a connection's output grows.
    /// Anything sent counts as a sign of life: no ping while frames flow.
    fn queue(&mut self, id: ConnId, write: impl FnOnce(&mut Conn) -> usize) {
        let now = self.now;
        if let Some(c) = self.sessions.get_mut(id) {
            self.stats.frames_out += write(c) as u64;
            c.last_send = c.last_send.max(now);
        }
        self.mark_dirty(id);
    }

    /// Connection `id` authenticated: its deadline may now be earlier than
    /// the one queued (a ping is due sooner than the handshake timeout), and
    /// another connection to its peer may have become a stray.
    fn now_active(&mut self, id: ConnId) {
        if let Some(c) = self.sessions.get(id) {
            self.deadlines.set(id, c.deadline(&self.cfg.timeouts));
        }
        self.sweep = true;
    }

    /// Puts a connection with output in the list `poll_transmit` drains.
    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(c) = self
            .sessions
            .get_mut(id)
            .filter(|c| !c.dirty && c.has_output())
        {
            c.dirty = true;
            self.outputs.mark(id);
        }
    }

    /// Queues one frame on a connection.
    fn send_frame(&mut self, now: Instant, id: ConnId, frame: &Frame) {
        self.queue(id, |c| {
            c.send(frame, now);
            1
        });
    }

    /// Sends local changes not yet sent to every peer that has our snapshot.
    fn flush_local(&mut self) {
        if !self.local.has_pending() {
            return;
        }
        let changes = self.local.take_pending();
        let mut active: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(|c| c.is_active())
            .map(|c| c.id)
            .collect();
        // Peers are written in this order: start one further each time, so
        // that no peer is always the last to hear.
        if !active.is_empty() {
            let turn = self.flush_turn % active.len();
            active.rotate_left(turn);
            self.flush_turn = self.flush_turn.wrapping_add(1);
        }
        // Encoded once per frame size (peers nearly always share one):
        // (frame size, bytes, frames).
        let mut encoded: Vec<(usize, Vec<u8>, usize)> = Vec::new();
        for id in active {
            let Some(max) = self.sessions.get(id).map(|c| c.peer_max_frame) else {
                continue;
            };
            if !encoded.iter().any(|(m, ..)| *m == max) {
                let mut bytes = Vec::new();
                let frames =
                    batch::encode(BatchKind::Update, changes.iter().cloned(), max, &mut bytes);
                encoded.push((max, bytes, frames));
            }
            if let Some((_, bytes, frames)) = encoded.iter().find(|(m, ..)| *m == max) {
                self.queue(id, |c| {
                    c.out.extend_from_slice(bytes);
                    *frames
                });
            }
        }
    }

    /// Closes a connection from our side: tell the peer why, ask the driver
    /// to close it, forget it.
    fn close(&mut self, now: Instant, id: ConnId, reason: CloseReason) {
        let Some(c) = self.sessions.get_mut(id) else {
            return;
        };
        if let Some(wire) = reason.to_wire() {
            c.say_close(wire);
            self.stats.frames_out += 1;
        }
        self.remove_conn(now, id, reason, true);
    }

    /// Forgets a connection and everything that hangs on it.
    fn remove_conn(&mut self, now: Instant, id: ConnId, reason: CloseReason, ours: bool) {
        let Some(mut c) = self.sessions.remove(id) else {
            return;
        };
        self.deadlines.remove(id);
        self.sweep |= c.is_active();
        if ours {
            self.outputs.closed(id, c.take_output());
        }
        let authenticated = c.is_active();
        let node = c.peer();
        self.stats.count_close(reason);
        tracing::debug!(conn = %id, addr = %c.addr, node = ?node, %reason, authenticated, "connection closed");
        self.events.push_back(Event::ConnectionClosed {
            conn: id,
            addr: c.addr,
            node: node.clone(),
            authenticated,
            reason,
        });
        self.dial_ended(now, &c, reason);
        self.port_monitors.forget_watcher(id);
        self.credit_conn_closed(id);
        self.followed_closed(now, &c, reason);
    }
}
