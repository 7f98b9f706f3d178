//! What the simulated network and its nodes look like: [`SimOptions`] and
//! the ways a connection fails ([`CutMode`]).

use std::time::Duration;

use groupmesh_core::Timeouts;

/// Short timeouts so that a simulated run covers many keepalive periods.
pub fn sim_timeouts() -> Timeouts {
    let mut t = Timeouts::default();
    t.ping_interval = Duration::from_millis(400);
    t.keepalive_timeout = Duration::from_millis(1200);
    t.handshake_timeout = Duration::from_millis(1000);
    t.backoff_min = Duration::from_millis(20);
    t.backoff_max = Duration::from_millis(400);
    t.forget_after = Duration::from_secs(10);
    t.gossip_dial_delay = Duration::from_millis(100);
    t
}

/// What the simulated network and its nodes look like.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// The nodes every node has as seeds (its own address included, if listed).
    pub seeds: Vec<usize>,
    /// Every node's timeouts.
    pub timeouts: Timeouts,
    /// Every node's `max_unauthenticated` limit (`None`: the default).
    pub max_unauthenticated: Option<usize>,
    /// One-way latency of each delivery, in ms (inclusive range).
    pub latency_ms: (u64, u64),
    /// Each transmit is cut into 1..=max_chunks pieces.
    pub max_chunks: usize,
    /// Convergence also requires that no connection is open beyond the one
    /// authenticated connection per pair (no dial or handshake under way), and
    /// checks every link in the network. Off by default: a quiet network
    /// keeps re-dialling seeds whose dial lost the one-connection-per-pair
    /// rule (see `connected_seeds_are_not_redialled` in simulation.rs).
    pub strict_mesh: bool,
    /// A port monitor's `Restarted` notice is refused unless its node
    /// started again after the port's incarnation. On by default (it once failed
    /// during a connection handover and for a port of a newer incarnation
    /// than the connected one: replayed in `messaging_sim.rs`).
    pub strict_port_down_reasons: bool,
    /// Drain a node after a burst of network inputs rather than after each
    /// (as the bundled driver does): bytes and dial outcomes at the same
    /// instant are fed first, and every node is drained before time moves.
    pub lazy_drain: bool,
    /// An adversary without the secret acts on the network (see
    /// `adversary.rs`): on at the start, moved by [`Sim::adversary_step`](crate::Sim::adversary_step),
    /// ended by [`Sim::stop_adversary`](crate::Sim::stop_adversary).
    pub adversary: bool,
    /// Each node listens on 1..=`max_addrs` addresses (at most
    /// [`MAX_ADDRS`](crate::MAX_ADDRS)), IPv4 and IPv6, in a random order.
    pub max_addrs: usize,
    /// Each seed is given at two of its node's addresses (it listens on at
    /// least two): a node dials the same node twice at once.
    pub double_seeds: bool,
    /// Node ids of 4 to 64 bytes, some characters of two bytes.
    pub long_ids: bool,
    /// Limits differ per node: `max_frame` from 1 KiB to 1 MiB, and some
    /// nodes take fewer handshakes and dials at a time than their peers.
    pub varied_limits: bool,
    /// A restart picks, half of the time, an incarnation smaller than every
    /// earlier one of any node (a host whose clock went back).
    pub falling_incarnations: bool,
    /// Convergence is judged among the live nodes: dead nodes may stay dead
    /// (and their ports must be gone from every view).
    pub allow_dead: bool,
    /// Skips the checks that scan a node's whole view at every drain (the
    /// monitor replays and the checks of every delivery stay): for runs of
    /// hundreds of nodes that measure rather than search.
    pub light_checks: bool,
    /// Nodes pace their snapshots by drain reports (`paced_snapshots`), as
    /// the bundled driver does: a node hears `handle_drained` for a
    /// connection whenever everything it sent on it has been delivered (its
    /// simulated send buffer is empty). On by default.
    pub paced_snapshots: bool,
    /// Each node's `snapshot_chunk` is drawn from this range (inclusive),
    /// so that snapshots stream in many chunks; `None`: the default.
    pub snapshot_chunk: Option<(usize, usize)>,
}

impl SimOptions {
    /// `nodes` nodes seeded with nodes 0, 1 and 2, short timeouts, 1-20 ms latency.
    pub fn new(nodes: usize) -> Self {
        SimOptions {
            nodes,
            seeds: (0..nodes.min(3)).collect(),
            timeouts: sim_timeouts(),
            max_unauthenticated: None,
            latency_ms: (1, 20),
            max_chunks: 4,
            strict_mesh: true,
            strict_port_down_reasons: true,
            lazy_drain: false,
            adversary: false,
            max_addrs: 1,
            double_seeds: false,
            long_ids: false,
            varied_limits: false,
            falling_incarnations: false,
            allow_dead: false,
            light_checks: false,
            paced_snapshots: true,
            snapshot_chunk: None,
        }
    }

    /// How long the network must stay converged before a run is judged:
    /// long enough for a keepalive timeout and a re-dial.
    pub fn hold(&self) -> Duration {
        self.timeouts.keepalive_timeout + self.timeouts.backoff_max
    }
}

/// How the connections between two nodes fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Reset: both sides see `handle_closed` after a latency.
    Reset,
    /// Silent: every byte (and the close) vanishes, for good; only the
    /// keepalive timeout can tell.
    Silent,
    /// Stalled: bytes are held in the network and delivered, in order, when the
    /// partition heals (TCP retransmission). Only for partitions.
    Stall,
}
