//! [`Node`]: the user's handle on a running node.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use groupmesh_core::{
    ApiError, Config as CoreConfig, Node as Core, NodeId, PortId, Stats, DEFAULT_SNAPSHOT_CHUNK,
};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::NodeConfig;
use crate::conn;
use crate::error::StartError;
use crate::events::Events;
use crate::member::{Member, MetaError};
use crate::message::{encode, encode_value, SendError};
use crate::monitor::Monitor;
use crate::port::{Port, Registration};
use crate::port_monitor::PortMonitor;
use crate::runtime::Runtime;
use crate::shared::{send_now, send_waiting, Control, Shared};
use crate::timer;

/// A running groupmesh node on runtime `R`.
///
/// The runtime crates name it for their runtime (`groupmesh_tokio::Node`,
/// `groupmesh_smol::Node`, `groupmesh_async_std::Node`). Every method but
/// [`start`](Self::start) and [`shutdown`](Self::shutdown) answers at once,
/// from this node's own view.
///
/// Dropping the node shuts it down gracefully in the background (as
/// [`shutdown`](Self::shutdown), without waiting). Its [`Port`]s,
/// [`Registration`]s, [`Monitor`]s and [`Events`] may outlive it: they then do
/// nothing, and the streams end.
pub struct Node<R: Runtime> {
    shared: Arc<Shared<R>>,
    id: NodeId,
    incarnation: u64,
    local_addrs: Vec<SocketAddr>,
}

impl<R: Runtime + Default> Node<R> {
    /// Binds the listeners, starts the node and begins dialling its seeds.
    ///
    /// # Errors
    /// [`StartError`] when the configuration is invalid or an address cannot
    /// be bound; nothing is left running then.
    pub async fn start(cfg: NodeConfig) -> Result<Self, StartError> {
        Self::start_on(R::default(), cfg).await
    }
}

impl<R: Runtime> Node<R> {
    /// [`start`](Self::start) on a given runtime value.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_on(rt: R, cfg: NodeConfig) -> Result<Self, StartError> {
        let id = NodeId::new(&cfg.node_id).map_err(|_| StartError::BadNodeId {
            len: cfg.node_id.len(),
        })?;
        if cfg.send_buffer < cfg.limits.max_frame {
            return Err(StartError::SendBufferTooSmall {
                send_buffer: cfg.send_buffer,
                max_frame: cfg.limits.max_frame,
            });
        }
        let mut listeners = Vec::with_capacity(cfg.bind.len());
        let mut local_addrs = Vec::with_capacity(cfg.bind.len());
        for &addr in &cfg.bind {
            let bind_err = |source| StartError::Bind { addr, source };
            let listener = rt.bind(addr).await.map_err(bind_err)?;
            local_addrs.push(R::local_addr(&listener).map_err(bind_err)?);
            listeners.push(listener);
        }

        let incarnation = new_incarnation();
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| StartError::Entropy(io::Error::from(e)))?;
        let mut core_cfg = CoreConfig::new(id.clone(), &cfg.secret);
        core_cfg.listen_addrs = local_addrs.clone();
        core_cfg.seeds = cfg.seeds.clone();
        core_cfg.timeouts = cfg.timeouts.clone();
        core_cfg.limits = cfg.limits.clone();
        // A snapshot streams as the connection drains (`Shared::drained`),
        // in chunks that never take more than a quarter of the send buffer.
        core_cfg.paced_snapshots = true;
        core_cfg.snapshot_chunk = DEFAULT_SNAPSHOT_CHUNK.min(cfg.send_buffer / 4).max(1);
        core_cfg.port_credit = u32::try_from(cfg.mailbox).unwrap_or(u32::MAX);
        let clock = Clock::start();
        let core = Core::new(core_cfg, incarnation, seed, clock.now())?;

        let shared = Shared::new(rt, clock, core, &cfg, conn::dial_task);
        for listener in listeners {
            shared.spawn_haltable(conn::accept_loop(shared.clone(), listener));
        }
        shared.spawn_haltable(timer::run(shared.clone()));
        tracing::info!(parent: &shared.span, incarnation, addrs = ?local_addrs, "node started");
        Ok(Node {
            shared,
            id,
            incarnation,
            local_addrs,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// This start's incarnation: nanoseconds since the UNIX epoch at start,
    /// so a restarted node is told apart from its past.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The addresses the node listens on, with their real ports; these are
    /// advertised to peers.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Opens a local port: an address other nodes can send to and list in
    /// groups, with a mailbox ([`Port::recv`]). Dropping the [`Port`] destroys it.
    pub fn open_port(&self) -> Port {
        let id = self.shared.open_port();
        Port {
            id,
            ctl: self.control(),
        }
    }

    /// Registers `port` in `group`: every node lists it until the
    /// [`Registration`] is dropped or ended, or the port is destroyed.
    ///
    /// # Errors
    /// [`ApiError::BadGroupName`] for a name outside 1..=255 bytes,
    /// [`ApiError::NotLocalPort`] for a port of another node,
    /// [`ApiError::ShutDown`] once the node stopped. Nothing changes then.
    pub fn register(&self, group: &str, port: &Port) -> Result<Registration, ApiError> {
        self.register_with_meta_bytes(group, port, &[])
    }

    /// Registers `port` in `group` with `meta`, encoded with postcard: every
    /// node lists the member with it ([`members_with_meta`](Self::members_with_meta),
    /// [`Member::meta_as`](crate::Member::meta_as)), and monitors get it
    /// with the join. A zone, a weight, a shard range, a version: keep it
    /// small, at most [`Limits::max_meta`](crate::Limits::max_meta) bytes
    /// encoded (1 KiB by default). Registering a port again in a group
    /// keeps one member, with the last registration's metadata.
    ///
    /// # Errors
    /// [`MetaError::Encode`] when `meta` does not encode, else as
    /// [`register_with_meta_bytes`](Self::register_with_meta_bytes).
    pub fn register_with_meta<T: Serialize + ?Sized>(
        &self,
        group: &str,
        port: &Port,
        meta: &T,
    ) -> Result<Registration, MetaError> {
        let meta = encode_value(meta).map_err(MetaError::Encode)?;
        Ok(self.register_with_meta_bytes(group, port, &meta)?)
    }

    /// Registers `port` in `group` with `meta` as raw bytes (empty: none).
    ///
    /// # Errors
    /// As [`register`](Self::register), and [`ApiError::MetaTooLarge`].
    /// Nothing changes then.
    pub fn register_with_meta_bytes(
        &self,
        group: &str,
        port: &Port,
        meta: &[u8],
    ) -> Result<Registration, ApiError> {
        let id = self.shared.register(group, &port.id, meta)?;
        Ok(Registration {
            id,
            port: port.id.clone(),
            group: Arc::from(group),
            ctl: self.control(),
        })
    }

    /// The members of `group`, sorted; `None` when it has none. Answered from
    /// this node's view, without any network round trip.
    pub fn members(&self, group: &str) -> Option<Vec<PortId>> {
        self.shared.lock().core.members(group).map(<[_]>::to_vec)
    }

    /// The members of `group` with their metadata, sorted by port; `None`
    /// when it has none. From this node's view, like [`members`](Self::members).
    pub fn members_with_meta(&self, group: &str) -> Option<Vec<Member>> {
        let members = self.members_where(group, |_| true);
        (!members.is_empty()).then_some(members)
    }

    /// The members of `group` whose metadata `filter` accepts, sorted by
    /// port (empty when none is). Pass them to [`pick_by_key`](crate::pick_by_key)
    /// or [`pick_random`](crate::pick_random) to choose among them:
    ///
    /// ```ignore
    /// let zone_a = node.members_where("workers", |m| {
    ///     m.meta_as::<Worker>().is_ok_and(|w| w.zone == "a")
    /// });
    /// let owner = groupmesh::pick_by_key(&zone_a, b"user-42");
    /// ```
    pub fn members_where(
        &self,
        group: &str,
        mut filter: impl FnMut(&Member) -> bool,
    ) -> Vec<Member> {
        let st = self.shared.lock();
        st.core
            .members_with_meta(group)
            .map(|(port, meta)| Member {
                port: port.clone(),
                meta: meta.clone(),
            })
            .filter(|m| filter(m))
            .collect()
    }

    /// The member of `group` that owns `key` by rendezvous hashing
    /// ([`pick_by_key`](crate::pick_by_key)): every node with the same view
    /// picks the same one, and a member joining or leaving moves only the
    /// keys it owns. `None` when the group has no members.
    pub fn pick_by_key(&self, group: &str, key: &[u8]) -> Option<PortId> {
        let st = self.shared.lock();
        groupmesh_core::pick_by_key(st.core.members(group)?, key).cloned()
    }

    /// Names of the groups that have members, sorted.
    pub fn groups(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.core.group_names().map(str::to_owned).collect()
    }

    /// Watches `group`: the [`Monitor`] stream yields every change, starting
    /// with `(members, members, [])` if the group has members.
    ///
    /// # Errors
    /// [`ApiError::BadGroupName`], [`ApiError::ShutDown`]; nothing changes.
    pub fn monitor(&self, group: &str) -> Result<Monitor, ApiError> {
        let id = self.shared.monitor(group)?;
        Ok(Monitor {
            id,
            group: Arc::from(group),
            ctl: self.control(),
        })
    }

    /// Sends `payload` to the port `to`, on this node or any other, without
    /// naming a sender (the receiver's [`Message::from`](crate::Message::from)
    /// is `None`; send from a [`Port`] with [`Port::send`] to get replies).
    ///
    /// Messages from one sender to one port arrive in the order sent, at most
    /// once, and none is lost while the port and its node live: when the
    /// port holds all it may from this node (its reader is behind, see
    /// [`NodeConfig::mailbox`]) or the connection to its node is congested
    /// (its unwritten bytes would pass half of [`NodeConfig::send_buffer`]),
    /// this waits until there is room. A message for a port that does not
    /// exist (or belongs to an earlier incarnation of its node), or whose
    /// node is not connected, is dropped and counted in
    /// [`Stats::messages_dropped`].
    ///
    /// # Errors
    /// [`SendError::PayloadTooLarge`] when the payload does not fit one frame
    /// (`limits.max_frame` less a small overhead, the peer's limit for a
    /// remote port); [`SendError::ShutDown`] once the node stopped;
    /// [`SendError::PortClosed`] or [`SendError::Unreachable`] when the
    /// port closed or its node was lost while this waited. Nothing is sent
    /// then.
    pub async fn send(&self, to: &PortId, payload: impl AsRef<[u8]>) -> Result<(), SendError> {
        send_waiting(&*self.shared, to, None, payload.as_ref()).await
    }

    /// Sends as [`send`](Self::send) if there is room now, without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] where `send` would wait (the message is then
    /// counted in [`Stats::messages_dropped`]: a drop the caller chose);
    /// otherwise as `send`. Nothing is sent then.
    pub fn try_send(&self, to: &PortId, payload: impl AsRef<[u8]>) -> Result<(), SendError> {
        send_now(&*self.shared, to, None, payload.as_ref())
    }

    /// Sends `value` encoded with postcard (`postcard::to_allocvec`); the
    /// receiver reads it with [`Message::decode`](crate::Message::decode).
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`SendError::Encode`] when the value
    /// cannot be encoded.
    pub async fn send_value<T: Serialize + ?Sized>(
        &self,
        to: &PortId,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(to, encode(value)?).await
    }

    /// Watches `port`, on this node or another: the [`PortMonitor`] future
    /// completes once, when the port is closed, its node is lost or
    /// restarted, or at once if it is already gone or its node is not
    /// connected. Dropping the monitor ends it.
    ///
    /// # Errors
    /// [`ApiError::ShutDown`] once the node stopped.
    pub fn monitor_port(&self, port: &PortId) -> Result<PortMonitor, ApiError> {
        let id = self.shared.monitor_port(port)?;
        Ok(PortMonitor {
            id,
            port: port.clone(),
            ctl: self.control(),
        })
    }

    /// Notices about the mesh from now on: nodes up and down, connections
    /// closed with their reason.
    pub fn events(&self) -> Events {
        Events {
            id: self.shared.subscribe(),
            ctl: self.control(),
        }
    }

    /// Nodes connected, authenticated and synchronised, sorted.
    pub fn connected_nodes(&self) -> Vec<NodeId> {
        self.shared.lock().core.connected_nodes().cloned().collect()
    }

    /// Nodes up (connected, authenticated, their memberships known) with
    /// their incarnations, sorted by id: the nodes of
    /// [`connected_nodes`](Self::connected_nodes), as reported by
    /// [`NodeEvent::NodeUp`](crate::NodeEvent::NodeUp).
    pub fn node_incarnations(&self) -> Vec<(NodeId, u64)> {
        self.shared.node_incarnations()
    }

    /// Nodes known, connected or not, with their addresses.
    pub fn known_nodes(&self) -> Vec<(NodeId, Vec<SocketAddr>)> {
        let st = self.shared.lock();
        st.core
            .known_nodes()
            .map(|(n, a)| (n.clone(), a.to_vec()))
            .collect()
    }

    /// Counters and sizes, cheap to take. `messages_dropped` counts
    /// messages for a port that is closed or a node not connected, and
    /// those `try_send` found no room for.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Adds a seed address, dialled from now on while no connection to the
    /// node behind it is up.
    pub fn add_seed(&self, addr: SocketAddr) {
        self.shared.with(|st, now| st.core.add_seed(now, addr));
    }

    /// Leaves the mesh gracefully: tells every peer (which drop this node's
    /// members at once), writes the last bytes, closes every connection and
    /// stops listening. Waits at most [`NodeConfig::linger`] for the peers to
    /// close. Afterwards the local API returns [`ApiError::ShutDown`] and the
    /// streams end. Calling it again does nothing.
    pub async fn shutdown(&self) {
        if self.shared.begin_shutdown() {
            self.shared.finish_shutdown().await;
            tracing::info!(parent: &self.shared.span, "node shut down");
        }
    }

    /// Stops the node at once without telling its peers, as a crash would:
    /// every socket is dropped, nothing more is sent. Peers notice the closed
    /// connections (or, for a lost host, the keepalive timeout). Meant for
    /// tests of failure handling; use [`shutdown`](Self::shutdown) otherwise.
    pub fn kill(&self) {
        self.shared.kill();
        tracing::info!(parent: &self.shared.span, "node killed");
    }

    fn control(&self) -> Arc<dyn Control> {
        self.shared.clone()
    }
}

impl<R: Runtime> Drop for Node<R> {
    fn drop(&mut self) {
        if self.shared.begin_shutdown() {
            let shared = self.shared.clone();
            self.shared.rt.spawn(async move {
                shared.finish_shutdown().await;
            });
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("incarnation", &self.incarnation)
            .field("local_addrs", &self.local_addrs)
            .finish()
    }
}

/// Nanoseconds since the UNIX epoch, made strictly increasing within this
/// process so that two nodes started in the same nanosecond differ too.
fn new_incarnation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}
