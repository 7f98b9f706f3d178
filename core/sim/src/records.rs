//! What the simulator records beside each core: the reference model of a
//! node's registrations, monitors replayed from their deltas, port monitors,
//! the ledger of sent messages, and a run's counters.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use groupmesh_core::{
    Config, Event, Instant, MonitorId, Node, NodeId, PortDownReason, PortId, PortMonitorId, RegId,
};

/// What a node's registrations are, kept beside the core as the reference.
#[derive(Debug, Clone, Default)]
pub struct LocalModel {
    /// Live ports of the current incarnation.
    pub ports: BTreeSet<PortId>,
    /// Live registrations.
    pub regs: BTreeMap<RegId, (String, PortId)>,
    /// The metadata each (group, port) was last given (by a registration or
    /// an update); only that of current memberships counts.
    pub meta: BTreeMap<(String, PortId), Vec<u8>>,
}

impl LocalModel {
    /// group -> ports with at least one registration.
    pub fn memberships(&self) -> BTreeMap<String, BTreeSet<PortId>> {
        let mut m: BTreeMap<String, BTreeSet<PortId>> = BTreeMap::new();
        for (g, p) in self.regs.values() {
            m.entry(g.clone()).or_default().insert(p.clone());
        }
        m
    }
}

/// A monitor as replayed from its deltas.
#[derive(Debug, Clone)]
pub struct MonitorTrack {
    /// The group it watches.
    pub group: String,
    /// The members replayed from its deltas.
    pub members: BTreeSet<PortId>,
    /// Their metadata replayed from its deltas (members with some only).
    pub meta: BTreeMap<PortId, Vec<u8>>,
    /// Deltas received.
    pub deltas: usize,
    /// Unmonitored: no event may come any more.
    pub ended: bool,
}

/// A port monitor as the simulator saw it.
#[derive(Debug, Clone)]
pub struct PortMonitorTrack {
    /// The port watched.
    pub port: PortId,
    /// Its notice, once it came.
    pub fired: Option<PortDownReason>,
    /// Ended with `unmonitor_port` before any notice.
    pub ended: bool,
}

/// A message sent through [`Sim::send`](crate::Sim::send); its payload starts with its index
/// in [`Sim::sent`](crate::Sim::sent) (u64, little endian).
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// The sending node.
    pub node: usize,
    /// The sending node's incarnation then.
    pub incarnation: u64,
    /// The sending port, if one was named.
    pub from: Option<PortId>,
    /// The port it was addressed to.
    pub to: PortId,
    /// When it was sent.
    pub at: Instant,
    /// How many times it was delivered (at most once).
    pub delivered: u32,
}

/// One simulated node: its configuration, the running core (if alive), and
/// what the simulator recorded about it.
#[derive(Debug)]
pub struct SimNode {
    /// Its index in [`Sim::nodes`](crate::Sim::nodes).
    pub index: usize,
    /// Its node id ([`node_id`](crate::node_id) of its index, or a long one).
    pub id: NodeId,
    /// Its first listen address, [`addr_of`](crate::addr_of) its index.
    pub addr: SocketAddr,
    /// The configuration every start of it uses.
    pub cfg: Config,
    /// The running core; `None` while crashed or after a shutdown.
    pub node: Option<Node>,
    /// The incarnation of the current (or last) core.
    pub incarnation: u64,
    /// The core's last `poll_timeout`.
    pub wake: Option<Instant>,
    /// Every event, with when it was polled and the incarnation that emitted it.
    pub events: Vec<(Instant, u64, Event)>,
    /// The current incarnation's registrations.
    pub model: LocalModel,
    /// The current incarnation's monitors.
    pub monitors: BTreeMap<MonitorId, MonitorTrack>,
    /// The current incarnation's port monitors.
    pub port_monitors: BTreeMap<PortMonitorId, PortMonitorTrack>,
    /// `handle_timeout` calls in a row after which `poll_timeout` was still <= now.
    pub(crate) stale_wakes: u32,
    /// Every incarnation this node started, in the order it started them.
    pub history: Vec<u64>,
    /// Nodes the current incarnation saw go down as `Restarted`, with the
    /// incarnation that went: the one that comes up must be greater.
    pub(crate) replaced: BTreeMap<NodeId, u64>,
}

impl SimNode {
    /// Whether it runs.
    pub fn alive(&self) -> bool {
        self.node.is_some()
    }

    /// The running core. Panics if the node is down.
    pub fn core(&self) -> &Node {
        self.node.as_ref().expect("node is alive")
    }
}
/// Counters of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Dials the nodes asked for.
    pub dials: u64,
    /// Dials that reached a listening node.
    pub connects: u64,
    /// Of those, the ones the listener refused (`handle_inbound` gave `None`).
    pub refused: u64,
    /// Segments delivered (connects, chunks of bytes, closes).
    pub segments: u64,
    /// [`Sim::cut`](crate::Sim::cut) calls.
    pub cuts: u64,
    /// Pairs partitioned.
    pub partitions: u64,
    /// Crashes (shutdowns included).
    pub crashes: u64,
    /// Crashes whose peers saw nothing at all.
    pub silent_crashes: u64,
    /// Starts after the first one of a node.
    pub restarts: u64,
    /// Graceful shutdowns.
    pub shutdowns: u64,
    /// Local API calls made through the simulator.
    pub api_calls: u64,
    /// Monitor deltas the nodes emitted.
    pub deltas: u64,
    /// `NodeDown` events the nodes emitted.
    pub node_downs: u64,
    /// NodeDown events caused by the one-connection-per-pair rule (a flap:
    /// the node never went away).
    pub superseded_downs: u64,
    /// Messages sent through [`Sim::send`](crate::Sim::send).
    pub messages_sent: u64,
    /// Messages delivered (each one checked against the ledger).
    pub messages_delivered: u64,
    /// Port monitors started, and notices.
    pub port_monitors: u64,
    /// Port monitor notices (`PortDown`).
    pub port_downs: u64,
    /// Moves of the adversary.
    pub adversary_acts: u64,
    /// Connections the adversary opened.
    pub adversary_conns: u64,
    /// Connections that refused a record the adversary made (altered,
    /// replayed, reordered, forged).
    pub adversary_refusals: u64,
    /// Connections whose stream it changed, still open (or the change on
    /// its way) when it stopped, reset then.
    pub adversary_stalls: u64,
    /// `handle_drained` reports to nodes that pace their snapshots.
    pub drain_reports: u64,
}
