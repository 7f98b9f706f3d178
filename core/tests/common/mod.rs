//! A deterministic network simulator for `groupmesh-core`.
//!
//! [`Sim`] drives many [`Node`]s through a seeded virtual network: virtual time
//! in milliseconds, TCP-like connections with random latency (per-direction
//! FIFO), every transmit split into random chunks, dials that connect, fail or
//! hang, and faults: connections reset, partitions (reset, silent or stalled),
//! crashes (the peers see a reset or silence) and restarts with a new
//! incarnation. Node `i` listens on `10.0.0.i:7000`; nothing touches a real
//! socket.
//!
//! After every input to a node, all of its outputs are drained (transmits,
//! actions, events, timeout) and checked: every monitor's deltas are replayed
//! and must keep the rules of the design contract, and the replayed set must
//! equal the node's own view after every drain. A reference model of each live
//! node's registrations gives the membership every node must converge to
//! ([`Sim::check_converged`]).
//!
//! Port messages sent through [`Sim::send`] carry their number in the simulator's
//! ledger; every delivery is checked at once (right port and incarnation, port
//! alive, sender's address, at most once, in order per sender and port). Port
//! monitors started with [`Sim::monitor_port`] are checked at every notice (one
//! per monitor, never after it ended, a reason that fits) and, on a quiet
//! network, by [`Sim::check_port_monitors`] (a monitor still waiting watches a
//! live port).
//!
//! The whole run is a pure function of the seed: every collection is ordered,
//! every random draw comes from one `SmallRng`, and simultaneous deliveries are
//! ordered by a sequence number.
//!
//! Shared by several test crates, each of which uses only part of it.
#![allow(dead_code, unreachable_pub)]

mod adversary;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant as WallClock};

use groupmesh_core::{
    Action, ApiError, CloseReason, Config, ConnId, Event, GroupDelta, Instant, MonitorId, Node,
    NodeId, PortDownReason, PortId, PortMonitorId, RegId, Timeouts, Transmit, WireReason,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use adversary::{Adversary, Tap, ADVERSARY};

/// The port every simulated node listens on.
pub const LISTEN_PORT: u16 = 7000;
/// The mesh's shared secret.
pub const SECRET: &[u8] = b"simulated shared secret";

/// Most listen addresses a simulated node has.
pub const MAX_ADDRS: usize = 8;

/// The listen address of node `i`: `10.0.hi.lo:7000` (`10.0.0.i:7000` below 256).
pub fn addr_of(i: usize) -> SocketAddr {
    addr_k(i, 0)
}

/// Address `k` (`< MAX_ADDRS`) node `i` may listen on: `k = 0` is
/// [`addr_of`]; even `k`, IPv4 `10.k.hi.lo:7000+k`; odd `k`, IPv6
/// `[fd00::k:hi:lo]:7000+k`.
pub fn addr_k(i: usize, k: usize) -> SocketAddr {
    assert!(i < 1 << 16 && k < MAX_ADDRS, "node {i} address {k}");
    let [hi, lo] = u16::try_from(i).expect("checked").to_be_bytes();
    let kk = u8::try_from(k).expect("checked");
    let port = LISTEN_PORT + u16::from(kk);
    if k % 2 == 0 {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, kk, hi, lo)), port)
    } else {
        let ip = Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            u16::from(kk),
            u16::from(hi),
            u16::from(lo),
        );
        SocketAddr::new(IpAddr::V6(ip), port)
    }
}

/// The node `addr` is one of the [`addr_k`] of, if any (whether that node
/// listens there is for its configuration to say).
fn index_of(addr: SocketAddr) -> Option<usize> {
    let k = usize::from(addr.port().checked_sub(LISTEN_PORT)?);
    let i = match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            usize::from(u16::from_be_bytes([o[2], o[3]]))
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            (usize::from(s[6]) << 8) | usize::from(s[7])
        }
    };
    (k < MAX_ADDRS && addr_k(i, k) == addr).then_some(i)
}

/// The id of node `i`: `n00`, `n01`, ...
pub fn node_id(i: usize) -> NodeId {
    NodeId::new(&format!("n{i:02}")).expect("short id")
}

/// A long id for node `i`, up to 64 bytes: `n00-` and more bytes, some of
/// them two-byte characters.
fn long_node_id(i: usize, rng: &mut SmallRng) -> NodeId {
    let mut id = format!("n{i:02}-");
    let len = rng.random_range(id.len()..=64);
    while id.len() < len {
        let c = if rng.random_ratio(1, 4) { 'é' } else { 'x' };
        if id.len() + c.len_utf8() > 64 {
            break;
        }
        id.push(c);
    }
    NodeId::new(&id).expect("at most 64 bytes")
}

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
    /// `adversary.rs`): on at the start, moved by [`Sim::adversary_step`],
    /// ended by [`Sim::stop_adversary`].
    pub adversary: bool,
    /// Each node listens on 1..=`max_addrs` addresses (at most
    /// [`MAX_ADDRS`]), IPv4 and IPv6, in a random order.
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

/// What a node's registrations are, kept beside the core as the reference.
#[derive(Debug, Clone, Default)]
pub struct LocalModel {
    /// Live ports of the current incarnation.
    pub ports: BTreeSet<PortId>,
    /// Live registrations.
    pub regs: BTreeMap<RegId, (String, PortId)>,
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
    pub group: String,
    /// The members replayed from its deltas.
    pub members: BTreeSet<PortId>,
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

/// A message sent through [`Sim::send`]; its payload starts with its index
/// in [`Sim::sent`] (u64, little endian).
#[derive(Debug, Clone)]
pub struct SentMessage {
    /// The sending node and its incarnation then.
    pub node: usize,
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
    pub index: usize,
    pub id: NodeId,
    pub addr: SocketAddr,
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
    stale_wakes: u32,
    /// Every incarnation this node started, in the order it started them.
    pub history: Vec<u64>,
    /// Nodes the current incarnation saw go down as `Restarted`, with the
    /// incarnation that went: the one that comes up must be greater.
    replaced: BTreeMap<NodeId, u64>,
}

impl SimNode {
    pub fn alive(&self) -> bool {
        self.node.is_some()
    }

    /// The running core. Panics if the node is down.
    pub fn core(&self) -> &Node {
        self.node.as_ref().expect("node is alive")
    }
}

/// One endpoint of a connection: a node's incarnation and the core's id for it.
type EndKey = (usize, u64, ConnId);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Open,
    /// Reset: only the resets already queued are delivered.
    Cut,
    /// Everything vanishes.
    Blackholed,
}

/// A TCP connection between two ends; side 0 dialled.
#[derive(Debug)]
struct Link {
    ends: [EndKey; 2],
    /// Whether each side's core still has the connection.
    open: [bool; 2],
    state: LinkState,
}

#[derive(Debug)]
enum Segment {
    /// The dial connected (delivered to the dialler as `handle_dialed`).
    Connected,
    Bytes(Vec<u8>),
    /// The other side closed or reset (`handle_closed`).
    Fin,
}

/// One direction of a link: pipe `2 * link + s` carries from side `s` to side `1 - s`.
#[derive(Debug, Default)]
struct Pipe {
    queue: VecDeque<(Instant, Segment)>,
    /// Delivery time of the last segment pushed (keeps FIFO order).
    last: Instant,
    paused: bool,
    /// The key of its front segment in `Sim::heads`.
    head: Option<(Instant, u64)>,
    /// Bytes queued and not yet delivered: the sender's send buffer.
    unsent: usize,
    /// What the adversary knows of this direction.
    tap: Tap,
}

#[derive(Debug)]
enum Misc {
    /// A dial reaches the listener.
    Syn { from: EndKey, addr: SocketAddr },
    /// A dial fails.
    DialFailed(EndKey),
}

/// The simulator. See the module documentation.
pub struct Sim {
    pub now: Instant,
    pub rng: SmallRng,
    pub opts: SimOptions,
    pub nodes: Vec<SimNode>,
    links: Vec<Link>,
    pipes: Vec<Pipe>,
    /// Open ends: the link and side each is on.
    ends: BTreeMap<EndKey, (usize, usize)>,
    /// Dials requested and not yet at the listener.
    dials: BTreeSet<EndKey>,
    /// Dials that reached a partition and hang until the dialler gives up.
    hung: BTreeSet<EndKey>,
    /// Front segments of unpaused pipes: (time, seq, pipe).
    heads: BTreeSet<(Instant, u64, usize)>,
    misc: BTreeMap<(Instant, u64), Misc>,
    seq: u64,
    /// Pairs (smaller, larger) that cannot reach each other, and how.
    partitions: BTreeMap<(usize, usize), CutMode>,
    next_incarnation: u64,
    /// With `falling_incarnations`: the last incarnation handed out below
    /// every other.
    next_falling: u64,
    next_ephemeral: u16,
    /// Steps taken at the current instant (livelock guard).
    steps_at_now: u64,
    /// Nodes fed network input not drained yet (`lazy_drain`).
    undrained: BTreeSet<usize>,
    pub steps: u64,
    /// What happened in the run, to see that a scenario tests something.
    pub counts: Counts,
    /// Every message sent through [`Sim::send`], by number.
    pub sent: Vec<SentMessage>,
    /// The last message delivered per (sending node, its incarnation,
    /// sending port number, receiving port): order is kept per pair.
    last_delivered: BTreeMap<(usize, u64, Option<u64>, PortId), u64>,
    /// Every port ever opened, of every incarnation (stale ones included).
    pub port_history: Vec<PortId>,
    /// Every port ever registered, by group: no node may list another.
    pub registered: BTreeMap<String, BTreeSet<PortId>>,
    /// What each incarnation had registered when it died: (node, incarnation)
    /// -> group -> ports.
    ended_regs: BTreeMap<(usize, u64), BTreeMap<String, BTreeSet<PortId>>>,
    /// (group, port) whose registration was ever ended (unregistered or the
    /// port closed) by a live owner: a removal of it may be that Leave, even
    /// if the port was registered again, so it never counts as a loss.
    churned: BTreeSet<(String, PortId)>,
    /// Wall time spent inside the cores' calls (the simulator is one thread:
    /// in a release build, this is the cores' CPU time).
    pub core_time: Duration,
    adv: Adversary,
}

/// Counters of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub dials: u64,
    pub connects: u64,
    pub refused: u64,
    pub segments: u64,
    pub cuts: u64,
    pub partitions: u64,
    pub crashes: u64,
    pub silent_crashes: u64,
    pub restarts: u64,
    pub shutdowns: u64,
    pub api_calls: u64,
    pub deltas: u64,
    pub node_downs: u64,
    /// NodeDown events caused by the one-connection-per-pair rule (a flap:
    /// the node never went away).
    pub superseded_downs: u64,
    /// Messages sent through [`Sim::send`], and delivered.
    pub messages_sent: u64,
    pub messages_delivered: u64,
    /// Port monitors started, and notices.
    pub port_monitors: u64,
    pub port_downs: u64,
    /// Moves of the adversary, connections it opened, and connections that
    /// refused a record it made (altered, replayed, reordered, forged).
    pub adversary_acts: u64,
    pub adversary_conns: u64,
    pub adversary_refusals: u64,
    /// Connections whose stream it changed, still open (or the change on
    /// its way) when it stopped, reset then.
    pub adversary_stalls: u64,
    /// `handle_drained` reports to nodes that pace their snapshots.
    pub drain_reports: u64,
}

impl Sim {
    /// Adds an open link between two ends (with its two pipes); its index.
    pub(crate) fn push_link(&mut self, ends: [EndKey; 2], open: [bool; 2]) -> usize {
        let link = self.links.len();
        self.links.push(Link {
            ends,
            open,
            state: LinkState::Open,
        });
        self.pipes.push(Pipe::default());
        self.pipes.push(Pipe::default());
        link
    }

    /// A network of `opts.nodes` nodes, all started at time zero.
    pub fn new(opts: SimOptions, seed: u64) -> Sim {
        assert!(opts.nodes >= 1 && opts.nodes <= 1000);
        let falling = if opts.falling_incarnations {
            1 << 20
        } else {
            1
        };
        let mut sim = Sim {
            now: Instant::ZERO,
            rng: SmallRng::seed_from_u64(seed),
            nodes: Vec::new(),
            links: Vec::new(),
            pipes: Vec::new(),
            ends: BTreeMap::new(),
            dials: BTreeSet::new(),
            hung: BTreeSet::new(),
            heads: BTreeSet::new(),
            misc: BTreeMap::new(),
            seq: 0,
            partitions: BTreeMap::new(),
            next_incarnation: falling,
            next_falling: falling,
            next_ephemeral: 0,
            steps_at_now: 0,
            undrained: BTreeSet::new(),
            steps: 0,
            counts: Counts::default(),
            sent: Vec::new(),
            last_delivered: BTreeMap::new(),
            port_history: Vec::new(),
            registered: BTreeMap::new(),
            ended_regs: BTreeMap::new(),
            churned: BTreeSet::new(),
            core_time: Duration::ZERO,
            adv: Adversary::default(),
            opts,
        };
        sim.start_adversary();
        let n = sim.opts.nodes;
        let listen: Vec<Vec<SocketAddr>> = (0..n).map(|i| sim.draw_addrs(i)).collect();
        for i in 0..n {
            let id = if sim.opts.long_ids {
                long_node_id(i, &mut sim.rng)
            } else {
                node_id(i)
            };
            let mut cfg = Config::new(id.clone(), SECRET);
            cfg.listen_addrs = listen[i].clone();
            let per_seed = if sim.opts.double_seeds { 2 } else { 1 };
            cfg.seeds = sim
                .opts
                .seeds
                .iter()
                .flat_map(|&s| listen[s].iter().take(per_seed).copied())
                .collect();
            cfg.timeouts = sim.opts.timeouts.clone();
            if let Some(m) = sim.opts.max_unauthenticated {
                cfg.limits.max_unauthenticated = m;
            }
            if sim.opts.varied_limits {
                sim.draw_limits(&mut cfg);
            }
            cfg.paced_snapshots = sim.opts.paced_snapshots;
            if let Some((lo, hi)) = sim.opts.snapshot_chunk {
                cfg.snapshot_chunk = sim.rng.random_range(lo..=hi);
            }
            sim.nodes.push(SimNode {
                index: i,
                id,
                addr: addr_of(i),
                cfg,
                node: None,
                incarnation: 0,
                wake: None,
                events: Vec::new(),
                model: LocalModel::default(),
                monitors: BTreeMap::new(),
                port_monitors: BTreeMap::new(),
                stale_wakes: 0,
                history: Vec::new(),
                replaced: BTreeMap::new(),
            });
            sim.start(i);
        }
        sim
    }

    /// The addresses node `i` listens on: [`addr_of`] alone, or with
    /// `max_addrs` (and at least two for a seed with `double_seeds`) more
    /// [`addr_k`], in a random order.
    fn draw_addrs(&mut self, i: usize) -> Vec<SocketAddr> {
        let max = self.opts.max_addrs.clamp(1, MAX_ADDRS);
        let least = if self.opts.double_seeds && self.opts.seeds.contains(&i) {
            2
        } else {
            1
        };
        if max.max(least) == 1 {
            return vec![addr_of(i)];
        }
        let count = self.rng.random_range(least..=max.max(least));
        let mut ks = rand::seq::index::sample(&mut self.rng, MAX_ADDRS - 1, count - 1).into_vec();
        ks.iter_mut().for_each(|k| *k += 1);
        let at = self.rng.random_range(0..count);
        ks.insert(at, 0);
        ks.into_iter().map(|k| addr_k(i, k)).collect()
    }

    /// Limits of one node drawn for `varied_limits`: `max_frame` from 1 KiB to
    /// 1 MiB (each power of two alike), and for a third of the nodes fewer
    /// handshakes and dials at a time than the default.
    fn draw_limits(&mut self, cfg: &mut Config) {
        cfg.limits.max_frame = 1 << self.rng.random_range(10..=20);
        if self.rng.random_ratio(1, 3) {
            cfg.limits.max_dials = self.rng.random_range(1..=4);
            cfg.limits.max_unauthenticated = self.rng.random_range(2..=8);
        }
    }

    fn start(&mut self, i: usize) {
        let falling = self.opts.falling_incarnations
            && !self.nodes[i].history.is_empty()
            && self.rng.random_bool(0.5);
        self.start_run(i, falling);
    }

    /// Starts node `i` with the next incarnation, or (`falling`) with one
    /// smaller than every earlier one, as when its clock went back.
    fn start_run(&mut self, i: usize, falling: bool) {
        let inc = if falling {
            self.next_falling -= 1;
            self.next_falling
        } else {
            self.next_incarnation += 1;
            self.next_incarnation - 1
        };
        if !self.nodes[i].history.is_empty() {
            self.counts.restarts += 1;
        }
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed);
        let n = &mut self.nodes[i];
        let node = Node::new(n.cfg.clone(), inc, seed, self.now).expect("valid config");
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, inc, "node started");
        n.wake = node.poll_timeout();
        n.node = Some(node);
        n.incarnation = inc;
        n.history.push(inc);
        n.replaced.clear();
        n.model = LocalModel::default();
        n.monitors.clear();
        n.port_monitors.clear();
        n.stale_wakes = 0;
    }

    // ----- queries -----------------------------------------------------

    pub fn alive(&self, i: usize) -> bool {
        self.nodes[i].alive()
    }

    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive(i)).collect()
    }

    pub fn dead_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| !self.alive(i)).collect()
    }

    /// The running core of node `i`.
    pub fn core(&self, i: usize) -> &Node {
        self.nodes[i].core()
    }

    /// Node `i`'s view of `group`, as a sorted list (empty when `None`).
    pub fn members(&self, i: usize, group: &str) -> Vec<PortId> {
        self.core(i)
            .members(group)
            .map(<[PortId]>::to_vec)
            .unwrap_or_default()
    }

    /// What every live node of `among` should list: the union of their registrations.
    pub fn expected_among(&self, among: &[usize]) -> BTreeMap<String, BTreeSet<PortId>> {
        let mut all: BTreeMap<String, BTreeSet<PortId>> = BTreeMap::new();
        for &i in among {
            if !self.alive(i) {
                continue;
            }
            for (g, ports) in self.nodes[i].model.memberships() {
                all.entry(g).or_default().extend(ports);
            }
        }
        all
    }

    /// What every live node should list once converged.
    pub fn expected(&self) -> BTreeMap<String, BTreeSet<PortId>> {
        self.expected_among(&self.live_nodes())
    }

    /// Whether two nodes are partitioned.
    pub fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partitions.contains_key(&(a.min(b), a.max(b)))
    }

    /// Number of events node `i` has recorded so far (a mark for [`Sim::events_since`]).
    pub fn mark(&self, i: usize) -> usize {
        self.nodes[i].events.len()
    }

    /// Node `i`'s events after `mark`.
    pub fn events_since(&self, i: usize, mark: usize) -> Vec<Event> {
        self.nodes[i].events[mark..]
            .iter()
            .map(|(_, _, e)| e.clone())
            .collect()
    }

    /// Open connections (both ends still held) between live `a` and `b`, in any state.
    pub fn links_between(&self, a: usize, b: usize) -> usize {
        self.links
            .iter()
            .filter(|l| l.open == [true, true])
            .filter(|l| {
                let (x, y) = (l.ends[0].0, l.ends[1].0);
                (x, y) == (a, b) || (x, y) == (b, a)
            })
            .count()
    }

    // ----- running -------------------------------------------------------

    /// Does the next thing due at or before `deadline`: a delivery, a dial
    /// outcome or a node's timer. False when nothing is due by then.
    pub fn step(&mut self, deadline: Instant) -> bool {
        let pipe = self.heads.first().map(|&(t, s, p)| (t, s, p));
        let misc = self.misc.keys().next().copied();
        let net = match (pipe, misc) {
            (Some((t, s, _)), Some((mt, ms))) => Some(if (t, s) < (mt, ms) {
                (t, true)
            } else {
                (mt, false)
            }),
            (Some((t, _, _)), None) => Some((t, true)),
            (None, Some((mt, _))) => Some((mt, false)),
            (None, None) => None,
        };
        // Lazy draining: more network input at this instant joins the burst;
        // otherwise every node is drained before anything else (its timer
        // may have moved).
        if !self.undrained.is_empty() && net.is_none_or(|(t, _)| t > self.now) {
            for i in std::mem::take(&mut self.undrained) {
                self.drain(i);
            }
            return true;
        }
        let wake = self
            .nodes
            .iter()
            .filter_map(|n| n.wake.map(|w| (w, n.index)))
            .min();
        let net_first = match (net, wake) {
            (Some((t, _)), Some((w, _))) => t <= w,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let t = if net_first {
            net.map(|(t, _)| t)
        } else {
            wake.map(|(w, _)| w)
        };
        let Some(t) = t else {
            return false;
        };
        if t > deadline {
            return false;
        }
        self.advance_to(t);
        if net_first {
            if net.is_some_and(|(_, from_pipe)| from_pipe) {
                self.deliver_head();
            } else {
                self.run_misc();
            }
        } else if let Some((_, i)) = wake {
            self.fire_timer(i);
        }
        true
    }

    fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
            self.steps_at_now = 0;
        }
        self.steps += 1;
        self.steps_at_now += 1;
        assert!(
            self.steps_at_now < 1_000_000,
            "livelock: a million steps at {:?} without time moving",
            self.now
        );
    }

    /// Runs everything due up to `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.step(t) {}
        if t > self.now {
            self.now = t;
            self.steps_at_now = 0;
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    fn fire_timer(&mut self, i: usize) {
        let now = self.now;
        let Some(node) = self.nodes[i].node.as_mut() else {
            self.nodes[i].wake = None;
            return;
        };
        {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            let t0 = WallClock::now();
            node.handle_timeout(now);
            self.core_time += t0.elapsed();
        }
        self.drain(i);
        let n = &mut self.nodes[i];
        match n.wake {
            Some(w) if w <= now => {
                n.stale_wakes += 1;
                assert!(
                    n.stale_wakes < 50,
                    "livelock: node {i}: poll_timeout() = {w:?} <= now = {now:?} \
                     even after handle_timeout(now), {} times in a row",
                    n.stale_wakes
                );
            }
            _ => n.stale_wakes = 0,
        }
    }

    fn run_misc(&mut self) {
        let Some((_, m)) = self.misc.pop_first() else {
            return;
        };
        match m {
            Misc::Syn { from, addr } => self.syn(from, addr),
            Misc::DialFailed(end) => {
                self.hung.remove(&end);
                let (i, inc, conn) = end;
                if self.is_current(i, inc) {
                    tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, %conn, "dial failed");
                    self.input(i, |node, now| node.handle_dial_failed(now, conn));
                }
            }
        }
    }

    fn is_current(&self, i: usize, inc: u64) -> bool {
        self.nodes[i].alive() && self.nodes[i].incarnation == inc
    }

    fn latency(&mut self) -> u64 {
        let (lo, hi) = self.opts.latency_ms;
        self.rng.random_range(lo..=hi)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn schedule(&mut self, delay_ms: u64, m: Misc) {
        let t = self.now + Duration::from_millis(delay_ms);
        let s = self.next_seq();
        self.misc.insert((t, s), m);
    }

    /// A dial reaches its target (or does not).
    fn syn(&mut self, from: EndKey, addr: SocketAddr) {
        if !self.dials.remove(&from) {
            return; // the dialler gave up (or crashed) first
        }
        let target = index_of(addr)
            .filter(|&j| j < self.nodes.len() && self.nodes[j].cfg.listen_addrs.contains(&addr));
        let Some(j) = target.filter(|&j| self.alive(j)) else {
            // Nothing listens there: connection refused.
            let d = self.latency();
            self.schedule(d, Misc::DialFailed(from));
            return;
        };
        if self.partitioned(from.0, j) {
            // Unreachable: fails after a while, or hangs until the core gives up.
            if self.rng.random_bool(0.5) {
                let d = self.rng.random_range(50..=500);
                self.schedule(d, Misc::DialFailed(from));
            } else {
                self.hung.insert(from);
            }
            return;
        }
        if self.adversary_hijacks(from, j) {
            return;
        }
        self.next_ephemeral = self.next_ephemeral.wrapping_add(1);
        let src = SocketAddr::new(addr_of(from.0).ip(), 40_000 + self.next_ephemeral % 20_000);
        let now = self.now;
        self.counts.connects += 1;
        let accepted = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = j).entered();
            let t0 = WallClock::now();
            let c = self.nodes[j]
                .node
                .as_mut()
                .expect("alive")
                .handle_inbound(now, src);
            self.core_time += t0.elapsed();
            c
        };
        let inc_j = self.nodes[j].incarnation;
        let link = self.links.len();
        let (to_end, open) = match accepted {
            Some(c) => ((j, inc_j, c), true),
            None => {
                self.counts.refused += 1;
                ((j, inc_j, ConnId(u64::MAX)), false)
            }
        };
        tracing::debug!(target: "sim", t = now.as_millis(), from = from.0, to = j, accepted = open, "connected");
        self.push_link([from, to_end], [true, open]);
        self.ends.insert(from, (link, 0));
        if open {
            self.ends.insert(to_end, (link, 1));
        }
        // The SYN-ACK travels the listener-to-dialler direction, ahead of its greeting.
        let d = self.latency();
        self.push(2 * link + 1, Segment::Connected, d);
        if !open {
            let d = self.latency();
            self.push(2 * link + 1, Segment::Fin, d);
        }
        self.drain(j);
    }

    fn push(&mut self, pipe: usize, seg: Segment, delay_ms: u64) {
        let t = self.now + Duration::from_millis(delay_ms);
        let p = &mut self.pipes[pipe];
        if let Segment::Bytes(b) = &seg {
            p.tap.pushed += b.len() as u64;
            p.unsent += b.len();
        }
        let t = t.max(p.last);
        p.last = t;
        p.queue.push_back((t, seg));
        if p.queue.len() == 1 && !p.paused {
            self.set_head(pipe);
        }
    }

    fn set_head(&mut self, pipe: usize) {
        let Some(&(t, _)) = self.pipes[pipe].queue.front() else {
            return;
        };
        let t = t.max(self.now);
        let s = self.next_seq();
        self.pipes[pipe].head = Some((t, s));
        self.heads.insert((t, s, pipe));
    }

    fn clear_head(&mut self, pipe: usize) {
        if let Some((t, s)) = self.pipes[pipe].head.take() {
            self.heads.remove(&(t, s, pipe));
        }
    }

    fn clear_pipe(&mut self, pipe: usize) {
        self.clear_head(pipe);
        self.pipes[pipe].queue.clear();
        self.pipes[pipe].unsent = 0;
    }

    fn deliver_head(&mut self) {
        let Some((_, _, pipe)) = self.heads.pop_first() else {
            return;
        };
        self.pipes[pipe].head = None;
        let Some((_, seg)) = self.pipes[pipe].queue.pop_front() else {
            return;
        };
        self.counts.segments += 1;
        if !self.pipes[pipe].paused {
            self.set_head(pipe);
        }
        let (link, to) = (pipe / 2, 1 - pipe % 2);
        let emptied = match &seg {
            Segment::Bytes(b) => {
                self.pipes[pipe].unsent -= b.len();
                self.pipes[pipe].unsent == 0
            }
            _ => false,
        };
        self.receive(link, to, seg);
        if emptied {
            self.send_buffer_drained(link, 1 - to);
        }
    }

    /// The sender on `side` of `link` sees its send buffer empty: a node
    /// that paces its snapshots hears it drained (only while one of its
    /// snapshots is going out: otherwise the report changes nothing, and the
    /// drain and checks after it would only slow the simulator down).
    fn send_buffer_drained(&mut self, link: usize, side: usize) {
        let (i, inc, conn) = self.links[link].ends[side];
        if i == ADVERSARY || !self.links[link].open[side] || !self.is_current(i, inc) {
            return;
        }
        let n = &self.nodes[i];
        if n.cfg.paced_snapshots && n.core().stats().snapshots_sending > 0 {
            self.counts.drain_reports += 1;
            self.input(i, |node, now| node.handle_drained(now, conn));
        }
    }

    /// A segment reaches `side` of `link`.
    fn receive(&mut self, link: usize, to: usize, seg: Segment) {
        let pipe = 2 * link + (1 - to);
        if !self.links[link].open[to] {
            return;
        }
        let (i, inc, conn) = self.links[link].ends[to];
        if i == ADVERSARY {
            self.adversary_receives(link, seg);
            return;
        }
        debug_assert!(self.is_current(i, inc));
        match seg {
            Segment::Connected => self.input(i, |node, now| node.handle_dialed(now, conn)),
            Segment::Bytes(b) => {
                let watched = self.watch_delivery(pipe, b.len(), i);
                self.feed(i, |node, now| node.handle_bytes(now, conn, &b));
                self.delivered(pipe, b.len(), (i, inc, conn), watched);
                self.drain_after_input(i);
            }
            Segment::Fin => {
                self.links[link].open[to] = false;
                self.ends.remove(&(i, inc, conn));
                tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, %conn, "peer closed");
                self.input(i, |node, now| node.handle_closed(now, conn));
            }
        }
    }

    /// Feeds one input to live node `i`, then drains it.
    fn input(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant)) {
        self.feed(i, f);
        self.drain_after_input(i);
    }

    /// Feeds one input to node `i`, if it is live.
    fn feed(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant)) {
        let now = self.now;
        if let Some(node) = self.nodes[i].node.as_mut() {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            let t0 = WallClock::now();
            f(node, now);
            self.core_time += t0.elapsed();
        }
    }

    /// Drains node `i` after an input, or marks it for the burst's drain.
    fn drain_after_input(&mut self, i: usize) {
        if !self.alive(i) {
            return;
        }
        if self.opts.lazy_drain {
            self.undrained.insert(i);
        } else {
            self.drain(i);
        }
    }

    /// Drains every output of node `i` and checks its monitors.
    fn drain(&mut self, i: usize) {
        self.undrained.remove(&i);
        let mut comings_and_goings = Vec::new();
        // Per (monitor, node, incarnation): the deltas of this drain that
        // removed ports the node still held (so lost, not unregistered),
        // since the last one that added a port of it.
        let mut losses: BTreeMap<(MonitorId, NodeId, u64), Vec<Vec<PortId>>> = BTreeMap::new();
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else {
                return;
            };
            let t0 = WallClock::now();
            let mut transmits = Vec::new();
            while let Some(t) = node.poll_transmit() {
                transmits.push(t);
            }
            let mut actions = Vec::new();
            while let Some(a) = node.poll_action() {
                actions.push(a);
            }
            let mut events = Vec::new();
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            self.nodes[i].wake = node.poll_timeout();
            self.core_time += t0.elapsed();
            if transmits.is_empty() && actions.is_empty() && events.is_empty() {
                break;
            }
            for t in transmits {
                self.on_transmit(i, t);
            }
            for a in actions {
                self.on_action(i, a);
            }
            for e in events {
                match &e {
                    Event::NodeUp { node, incarnation } => {
                        comings_and_goings.push((node.clone(), *incarnation, true));
                    }
                    Event::NodeDown {
                        node, incarnation, ..
                    } => comings_and_goings.push((node.clone(), *incarnation, false)),
                    Event::Group(d) if !self.opts.light_checks => self.note_losses(d, &mut losses),
                    _ => {}
                }
                self.on_event(i, e);
            }
        }
        // A node that went down in this drain left each monitored group in
        // one delta, whether its NodeDown came before, between or after them.
        for ((mon, peer, inc), deltas) in &losses {
            let went_down = comings_and_goings
                .iter()
                .any(|(p, x, up)| !up && p == peer && x == inc);
            assert!(
                !went_down || deltas.len() == 1,
                "node {i} at {:?}: {peer}@{inc} went down and its ports left monitor {mon} \
                 in {} deltas: {deltas:?}",
                self.now,
                deltas.len()
            );
        }
        self.check_monitors(i);
        if self.opts.adversary {
            self.check_bad_records_closed(i);
            if let Err(e) = self.check_no_false_port(i) {
                panic!("{e}\n{}", self.dump());
            }
        }
        if self.opts.light_checks {
            return;
        }
        // A node that went down has no member left here; a node that came up
        // has no member of another incarnation left.
        let Some(core) = self.nodes[i].node.as_ref() else {
            return;
        };
        // Only the last of each node's comings and goings in this drain
        // holds at its end (with lazy draining, a burst may take a node down
        // and bring it up again, its snapshot already in).
        let mut last = BTreeMap::new();
        for (peer, inc, up) in comings_and_goings {
            last.insert(peer, (inc, up));
        }
        for (peer, (inc, up)) in last {
            for g in core.group_names() {
                for p in core.members(g).unwrap_or(&[]) {
                    let stale = p.node() == &peer && (p.incarnation() == inc) != up;
                    assert!(
                        !stale,
                        "node {i} at {:?}: {p:?} still in {g:?} after {} of {peer}@{inc}",
                        self.now,
                        if up { "NodeUp" } else { "NodeDown" }
                    );
                }
            }
        }
    }

    /// Records which ports of which node incarnation a delta removed although
    /// their owner still held them (or held them when it died), and never
    /// ended that registration: a loss. A delta that adds a port of that
    /// incarnation starts its count again.
    fn note_losses(
        &self,
        d: &GroupDelta,
        losses: &mut BTreeMap<(MonitorId, NodeId, u64), Vec<Vec<PortId>>>,
    ) {
        for p in &d.added {
            losses.remove(&(d.monitor, p.node().clone(), p.incarnation()));
        }
        let mut lost: BTreeMap<(NodeId, u64), Vec<PortId>> = BTreeMap::new();
        for p in d.removed.iter().filter(|p| self.held_by_owner(&d.group, p)) {
            lost.entry((p.node().clone(), p.incarnation()))
                .or_default()
                .push(p.clone());
        }
        for ((node, inc), ports) in lost {
            losses
                .entry((d.monitor, node, inc))
                .or_default()
                .push(ports);
        }
    }

    /// Whether `port`'s incarnation holds a registration of it in `group`
    /// (now, or when that incarnation died).
    fn held_by_owner(&self, group: &str, port: &PortId) -> bool {
        let Some(j) = self.owner_of(port) else {
            return false;
        };
        if self.churned.contains(&(group.to_owned(), port.clone())) {
            return false;
        }
        let o = &self.nodes[j];
        if o.alive() && o.incarnation == port.incarnation() {
            return o.model.regs.values().any(|(g, p)| g == group && p == port);
        }
        self.ended_regs
            .get(&(j, port.incarnation()))
            .and_then(|m| m.get(group))
            .is_some_and(|ports| ports.contains(port))
    }

    fn on_transmit(&mut self, i: usize, t: Transmit) {
        let key = (i, self.nodes[i].incarnation, t.conn);
        let Some(&(link, side)) = self.ends.get(&key) else {
            if self.opts.lazy_drain && !self.dials.contains(&key) {
                // Queued before the drain, and the network tore the
                // connection down meanwhile: a driver drops these bytes.
                return;
            }
            panic!(
                "node {i} transmitted on {} which is not connected (dialling: {})",
                t.conn,
                self.dials.contains(&key)
            );
        };
        if self.links[link].state != LinkState::Open || t.data.is_empty() {
            return;
        }
        let pipe = 2 * link + side;
        let data = self.on_path(pipe, t.data);
        let max = self.opts.max_chunks.clamp(1, data.len());
        let pieces = self.rng.random_range(1..=max);
        let mut cuts: Vec<usize> = (0..pieces - 1)
            .map(|_| self.rng.random_range(1..data.len()))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut start = 0;
        for end in cuts.into_iter().chain([data.len()]) {
            let d = self.latency();
            self.push(pipe, Segment::Bytes(data[start..end].to_vec()), d);
            start = end;
        }
    }

    fn on_action(&mut self, i: usize, a: Action) {
        let inc = self.nodes[i].incarnation;
        match a {
            Action::Dial { conn, addr } => {
                let key = (i, inc, conn);
                assert!(
                    !self.ends.contains_key(&key) && self.dials.insert(key),
                    "node {i} dialled with {conn} which it already uses"
                );
                tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, %conn, %addr, "dial");
                self.counts.dials += 1;
                let d = self.latency();
                self.schedule(d, Misc::Syn { from: key, addr });
            }
            Action::Close { conn } => {
                let key = (i, inc, conn);
                if self.dials.remove(&key) || self.hung.remove(&key) {
                    return; // connect aborted before it reached the listener
                }
                let Some((link, side)) = self.ends.remove(&key) else {
                    return; // a dial that never connected
                };
                self.links[link].open[side] = false;
                if self.links[link].state == LinkState::Open {
                    let d = self.latency();
                    self.push(2 * link + side, Segment::Fin, d);
                }
            }
            other => panic!("unknown action {other:?}"),
        }
    }

    fn on_event(&mut self, i: usize, e: Event) {
        let inc = self.nodes[i].incarnation;
        match &e {
            Event::NodeDown {
                node,
                incarnation,
                reason: CloseReason::Restarted,
            } => {
                self.nodes[i].replaced.insert(node.clone(), *incarnation);
            }
            Event::NodeUp { node, incarnation } => {
                if let Some(old) = self.nodes[i].replaced.remove(node) {
                    // Newer means started later, whatever the numbers.
                    let run = |inc: u64| {
                        self.nodes
                            .iter()
                            .find(|n| &n.cfg.node_id == node)
                            .and_then(|n| n.history.iter().position(|&h| h == inc))
                    };
                    assert!(
                        run(*incarnation) > run(old),
                        "node {i} at {:?}: {node}@{old}, connected, was replaced by the \
                         stale {node}@{incarnation}\n{}",
                        self.now,
                        self.dump()
                    );
                }
            }
            _ => {}
        }
        if let Event::NodeDown { reason, .. } = &e {
            self.counts.node_downs += 1;
            if matches!(
                reason,
                CloseReason::Superseded | CloseReason::Remote(WireReason::Superseded)
            ) {
                self.counts.superseded_downs += 1;
            }
        }
        if let Event::ConnectionClosed { conn, reason, .. } = &e {
            self.adversary_saw_close(i, *conn, *reason);
        }
        if let Event::Group(d) = &e {
            self.counts.deltas += 1;
            if let Some(p) = d
                .members
                .iter()
                .find(|p| !self.ever_registered(&d.group, p))
            {
                panic!(
                    "node {i} at {:?}: a monitor event of {:?} shows {p:?}, which its owner \
                     never registered there\n{d:?}\n{}",
                    self.now,
                    d.group,
                    self.dump()
                );
            }
            if let Err(msg) = check_delta(&mut self.nodes[i].monitors, d) {
                panic!(
                    "node {i} at {:?}: monitor rule broken: {msg}\n{d:?}",
                    self.now
                );
            }
        }
        if let Event::Message {
            to, from, payload, ..
        } = &e
        {
            self.counts.messages_delivered += 1;
            if let Err(msg) = self.check_message(i, to, from.as_ref(), payload) {
                panic!(
                    "node {i} at {:?}: message rule broken: {msg}\nto {to:?} from {from:?}\n{}",
                    self.now,
                    self.dump()
                );
            }
        }
        if let Event::PortDown {
            monitor,
            port,
            reason,
        } = &e
        {
            self.counts.port_downs += 1;
            if let Err(msg) = self.check_port_down(i, *monitor, port, *reason) {
                panic!(
                    "node {i} at {:?}: port monitor rule broken: {msg}\n{monitor} {port:?} {reason:?}\n{}",
                    self.now,
                    self.dump()
                );
            }
        }
        self.nodes[i].events.push((self.now, inc, e));
    }

    /// Whether `port` was ever registered in `group` (by its owner: only a
    /// node registers its own ports).
    fn ever_registered(&self, group: &str, port: &PortId) -> bool {
        self.registered.get(group).is_some_and(|r| r.contains(port))
    }

    /// Node `i` lists no port that was never registered in that group.
    pub fn check_no_false_port(&self, i: usize) -> Result<(), String> {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        for g in node.group_names() {
            for p in node.members(g).unwrap_or(&[]) {
                if !self.ever_registered(g, p) {
                    return Err(format!(
                        "node {i} at {:?}: {g:?} lists {p:?}, which its owner never registered there",
                        self.now
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every live monitor's replayed members equal the node's view.
    fn check_monitors(&self, i: usize) {
        let n = &self.nodes[i];
        let Some(node) = n.node.as_ref() else {
            return;
        };
        for (id, m) in &n.monitors {
            if m.ended {
                continue;
            }
            let view = node.members(&m.group).unwrap_or(&[]);
            if !m.members.iter().eq(view.iter()) {
                panic!(
                    "node {i} at {:?}: monitor {id} of {:?} replays to {:?} but members() is {view:?}",
                    self.now, m.group, m.members
                );
            }
        }
    }

    // ----- the local API, with the reference model --------------------

    fn api<T>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> T) -> T {
        let now = self.now;
        self.counts.api_calls += 1;
        let node = self.nodes[i]
            .node
            .as_mut()
            .expect("API call on a live node");
        let r = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            let t0 = WallClock::now();
            let r = f(node);
            self.core_time += t0.elapsed();
            r
        };
        self.drain(i);
        r
    }

    /// Opens a port on node `i`.
    pub fn open_port(&mut self, i: usize) -> PortId {
        let p = self.api(i, Node::open_port);
        assert_eq!(p.node(), &self.nodes[i].id);
        assert_eq!(p.incarnation(), self.nodes[i].incarnation);
        assert!(self.nodes[i].model.ports.insert(p.clone()), "port reused");
        self.port_history.push(p.clone());
        p
    }

    /// Registers `port` of node `i` in `group`; it must succeed.
    pub fn register(&mut self, i: usize, group: &str, port: &PortId) -> RegId {
        // Known before the drain that may already show it.
        self.registered
            .entry(group.to_owned())
            .or_default()
            .insert(port.clone());
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, group, ?port, "register");
        let r = self
            .api(i, |n| n.register(group, port))
            .expect("register a live local port");
        self.nodes[i]
            .model
            .regs
            .insert(r, (group.to_owned(), port.clone()));
        self.check_local(i);
        r
    }

    /// Tries a call that must be refused with `want` and change nothing.
    pub fn register_refused(&mut self, i: usize, group: &str, port: &PortId, want: ApiError) {
        let before = self.nodes[i].events.len();
        let r = self.api(i, |n| n.register(group, port));
        assert_eq!(r, Err(want), "node {i}: register({group:?}, {port:?})");
        assert_eq!(
            self.nodes[i].events.len(),
            before,
            "a refused call emitted events"
        );
        self.check_local(i);
    }

    /// Ends a registration of node `i`.
    pub fn unregister(&mut self, i: usize, reg: RegId) {
        let what = self.nodes[i].model.regs.get(&reg).cloned();
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, ?what, "unregister");
        self.churned.extend(what);
        self.api(i, |n| n.unregister(reg))
            .expect("unregister a live registration");
        self.nodes[i].model.regs.remove(&reg);
        assert_eq!(
            self.api(i, |n| n.unregister(reg)),
            Err(ApiError::UnknownRegistration),
            "a registration ends once"
        );
        self.check_local(i);
    }

    /// Closes a port of node `i`: all its registrations end.
    pub fn close_port(&mut self, i: usize, port: &PortId) {
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, ?port, "close port");
        let ended = self.nodes[i].model.regs.values().filter(|(_, p)| p == port);
        let ended: Vec<(String, PortId)> = ended.cloned().collect();
        self.churned.extend(ended);
        // The model first: the drain checks the port's monitors' notices.
        let now = self.now;
        self.counts.api_calls += 1;
        let node = self.nodes[i].node.as_mut().expect("live");
        {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.close_port(port).expect("close a live port");
        }
        let m = &mut self.nodes[i].model;
        m.ports.remove(port);
        m.regs.retain(|_, (_, p)| p != port);
        self.drain(i);
        assert_eq!(
            self.api(i, |n| n.close_port(port)),
            Err(ApiError::NotLocalPort)
        );
        self.check_local(i);
    }

    /// Starts a monitor on node `i`; checks its first event.
    pub fn monitor(&mut self, i: usize, group: &str) -> MonitorId {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("live");
        let id = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.monitor(group).expect("valid group")
        };
        let view = node.members(group).map(<[PortId]>::to_vec);
        self.nodes[i].monitors.insert(
            id,
            MonitorTrack {
                group: group.to_owned(),
                members: BTreeSet::new(),
                deltas: 0,
                ended: false,
            },
        );
        let mark = self.nodes[i].events.len();
        self.drain(i);
        let first: Vec<&GroupDelta> = self.nodes[i].events[mark..]
            .iter()
            .filter_map(|(_, _, e)| match e {
                Event::Group(d) if d.monitor == id => Some(d),
                _ => None,
            })
            .collect();
        match view {
            None => assert!(first.is_empty(), "first event of an empty group: {first:?}"),
            Some(m) => {
                assert_eq!(first.len(), 1, "one first event right away");
                assert_eq!(
                    (
                        &first[0].members,
                        &first[0].added,
                        first[0].removed.is_empty()
                    ),
                    (&m, &m, true),
                    "first event is (members, members, [])"
                );
            }
        }
        id
    }

    /// Ends a monitor of node `i`.
    pub fn unmonitor(&mut self, i: usize, mon: MonitorId) {
        self.api(i, |n| n.unmonitor(mon)).expect("live monitor");
        if let Some(m) = self.nodes[i].monitors.get_mut(&mon) {
            m.ended = true;
        }
        assert_eq!(
            self.api(i, |n| n.unmonitor(mon)),
            Err(ApiError::UnknownMonitor)
        );
    }

    /// Node `i`'s own ports in its view are exactly its model's.
    fn check_local(&self, i: usize) {
        let n = &self.nodes[i];
        let node = n.core();
        let want = n.model.memberships();
        let mut groups: BTreeSet<String> = want.keys().cloned().collect();
        groups.extend(node.group_names().map(str::to_owned));
        for g in groups {
            let mine: BTreeSet<PortId> = node
                .members(&g)
                .unwrap_or(&[])
                .iter()
                .filter(|p| p.node() == &n.id && p.incarnation() == n.incarnation)
                .cloned()
                .collect();
            let w = want.get(&g).cloned().unwrap_or_default();
            assert_eq!(mine, w, "node {i}: own ports in {g:?}");
        }
    }

    // ----- port messages and port monitors ------------------------------

    /// Sends a message from node `i` (from its port `from`, if given) to `to`
    /// and records it in [`Sim::sent`]; returns its number. The payload is the
    /// number and `pad` more bytes.
    pub fn send(&mut self, i: usize, from: Option<&PortId>, to: &PortId, pad: usize) -> u64 {
        let n = self.sent.len() as u64;
        let mut payload = n.to_le_bytes().to_vec();
        payload.resize(8 + pad, 0x5a);
        self.sent.push(SentMessage {
            node: i,
            incarnation: self.nodes[i].incarnation,
            from: from.cloned(),
            to: to.clone(),
            at: self.now,
            delivered: 0,
        });
        self.counts.messages_sent += 1;
        let r = self.api(i, |node| node.send(to, from, &payload));
        assert_eq!(r, Ok(()), "node {i}: send({to:?}, from {from:?})");
        n
    }

    /// A send that must be refused with `want`, sending and emitting nothing.
    pub fn send_refused(&mut self, i: usize, from: &PortId, to: &PortId, want: ApiError) {
        let before = self.nodes[i].events.len();
        let bytes = self.core(i).stats().bytes_out;
        let r = self.api(i, |node| node.send(to, Some(from), b"refused"));
        assert_eq!(r, Err(want), "node {i}: send({to:?}, from {from:?})");
        assert_eq!(
            self.nodes[i].events.len(),
            before,
            "a refused send emitted events"
        );
        assert_eq!(
            self.core(i).stats().bytes_out,
            bytes,
            "a refused send sent bytes"
        );
    }

    /// Starts a port monitor on node `i`; its notice may come at once.
    pub fn monitor_port(&mut self, i: usize, port: &PortId) -> PortMonitorId {
        let now = self.now;
        self.counts.api_calls += 1;
        self.counts.port_monitors += 1;
        let node = self.nodes[i].node.as_mut().expect("live");
        let id = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.monitor_port(port)
                .expect("a live node monitors any port")
        };
        let track = PortMonitorTrack {
            port: port.clone(),
            fired: None,
            ended: false,
        };
        assert!(
            self.nodes[i].port_monitors.insert(id, track).is_none(),
            "node {i}: port monitor id {id} reused"
        );
        self.drain(i);
        id
    }

    /// Ends a port monitor of node `i` that has not fired.
    pub fn unmonitor_port(&mut self, i: usize, id: PortMonitorId) {
        self.api(i, |n| n.unmonitor_port(id))
            .expect("a port monitor that has not fired");
        if let Some(t) = self.nodes[i].port_monitors.get_mut(&id) {
            t.ended = true;
        }
        assert_eq!(
            self.api(i, |n| n.unmonitor_port(id)),
            Err(ApiError::UnknownPortMonitor),
            "a port monitor ends once"
        );
    }

    /// The node that owns `port`'s node id, if simulated.
    fn owner_of(&self, port: &PortId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.id == port.node())
    }

    /// Whether `port` is a live port of its node's running incarnation.
    pub fn port_live(&self, port: &PortId) -> bool {
        self.owner_of(port).is_some_and(|j| {
            let o = &self.nodes[j];
            o.alive() && o.incarnation == port.incarnation() && o.model.ports.contains(port)
        })
    }

    /// Checks one delivery at node `i` against the ledger, and records it.
    fn check_message(
        &mut self,
        i: usize,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
    ) -> Result<(), String> {
        let n = payload
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or("a payload the simulator did not send")?;
        let sent = self
            .sent
            .get(n as usize)
            .ok_or_else(|| format!("message {n} was never sent"))?
            .clone();
        if payload.len() < 8 {
            return Err(format!("message {n}: payload cut"));
        }
        if *to != sent.to {
            return Err(format!(
                "message {n} addressed to {:?} delivered to {to:?}",
                sent.to
            ));
        }
        let me = &self.nodes[i];
        if to.node() != &me.id || to.incarnation() != me.incarnation {
            return Err(format!(
                "message {n} for {to:?} delivered at node {i} incarnation {}",
                me.incarnation
            ));
        }
        if !me.model.ports.contains(to) {
            return Err(format!("message {n}: {to:?} is not a live port here"));
        }
        if from != sent.from.as_ref() {
            return Err(format!(
                "message {n}: sender given as {from:?}, sent from {:?}",
                sent.from
            ));
        }
        let key = (
            sent.node,
            sent.incarnation,
            sent.from.as_ref().map(PortId::number),
            to.clone(),
        );
        if let Some(&last) = self.last_delivered.get(&key) {
            if last >= n {
                return Err(format!(
                    "message {n} delivered after message {last} of the same sender and port \
                     (sent at {:?})",
                    sent.at
                ));
            }
        }
        self.last_delivered.insert(key, n);
        let s = &mut self.sent[n as usize];
        s.delivered += 1;
        if s.delivered > 1 {
            return Err(format!("message {n} delivered {} times", s.delivered));
        }
        Ok(())
    }

    /// Checks a port monitor's notice at node `i`, and records it.
    fn check_port_down(
        &mut self,
        i: usize,
        monitor: PortMonitorId,
        port: &PortId,
        reason: PortDownReason,
    ) -> Result<(), String> {
        let live = self.port_live(port);
        // A later start of its node (whose incarnation may be smaller).
        let newer = self.owner_of(port).is_some_and(|j| {
            let h = &self.nodes[j].history;
            h.iter()
                .position(|&x| x == port.incarnation())
                .is_some_and(|k| k + 1 < h.len())
        });
        let strict = self.opts.strict_port_down_reasons;
        let t = self.nodes[i]
            .port_monitors
            .get_mut(&monitor)
            .ok_or("notice for a port monitor never started (or of an earlier incarnation)")?;
        if t.ended {
            return Err("notice after unmonitor_port".into());
        }
        if let Some(first) = t.fired {
            return Err(format!("second notice (the first said {first:?})"));
        }
        if *port != t.port {
            return Err(format!(
                "notice for {port:?}, the monitor watches {:?}",
                t.port
            ));
        }
        t.fired = Some(reason);
        match reason {
            PortDownReason::Closed if live => Err("says Closed, but the port is live".into()),
            PortDownReason::Restarted if !newer && strict => Err(format!(
                "says Restarted, but no later incarnation of its node exists (port live: {live})"
            )),
            _ => Ok(()),
        }
    }

    /// On a quiet network: every port monitor of a live node that has not
    /// fired (nor ended) watches a live port.
    pub fn check_port_monitors(&self) -> Result<(), String> {
        for n in &self.nodes {
            if !n.alive() {
                continue;
            }
            for (id, t) in &n.port_monitors {
                if t.fired.is_none() && !t.ended && !self.port_live(&t.port) {
                    return Err(format!(
                        "node {}: port monitor {id} of {:?} never fired, but the port is gone",
                        n.index, t.port
                    ));
                }
            }
        }
        Ok(())
    }

    /// Messages from number `from` on that were not delivered, with their sender.
    pub fn undelivered_since(&self, from: u64) -> Vec<(u64, &SentMessage)> {
        self.sent
            .iter()
            .enumerate()
            .skip(from as usize)
            .filter(|(_, m)| m.delivered == 0)
            .map(|(n, m)| (n as u64, m))
            .collect()
    }

    // ----- faults ------------------------------------------------------

    /// Open ends of node `i`'s current incarnation.
    fn ends_of(&self, i: usize) -> Vec<(EndKey, usize, usize)> {
        let inc = self.nodes[i].incarnation;
        self.ends
            .range((i, inc, ConnId(0))..=(i, inc, ConnId(u64::MAX)))
            .map(|(&k, &(l, s))| (k, l, s))
            .collect()
    }

    /// Links with an open end at both `a` and `b`... or at least one of them.
    fn links_of_pair(&self, a: usize, b: usize) -> Vec<usize> {
        let mut ls: Vec<usize> = self
            .ends_of(a)
            .into_iter()
            .map(|(_, l, _)| l)
            .filter(|&l| {
                let [x, y] = self.links[l].ends;
                (x.0, y.0) == (a, b) || (x.0, y.0) == (b, a)
            })
            .collect();
        if a != b {
            ls.extend(self.ends_of(b).into_iter().map(|(_, l, _)| l).filter(|&l| {
                let [x, y] = self.links[l].ends;
                (x.0, y.0) == (a, b) || (x.0, y.0) == (b, a)
            }));
        }
        ls.sort_unstable();
        ls.dedup();
        ls
    }

    /// Resets a link: what is in flight is lost, both sides see `handle_closed`.
    fn reset_link(&mut self, l: usize) {
        if self.links[l].state != LinkState::Open {
            return;
        }
        self.links[l].state = LinkState::Cut;
        self.clear_pipe(2 * l);
        self.clear_pipe(2 * l + 1);
        for to in 0..2 {
            if self.links[l].open[to] {
                let d = self.latency();
                self.push(2 * l + (1 - to), Segment::Fin, d);
            }
        }
    }

    /// Makes a link silent for good.
    fn blackhole_link(&mut self, l: usize) {
        self.links[l].state = LinkState::Blackholed;
        self.clear_pipe(2 * l);
        self.clear_pipe(2 * l + 1);
    }

    /// Loses the FINs (closes) in flight between `a` and `b`, as when a host
    /// vanishes right after writing its last bytes: the bytes arrive, the
    /// close never does.
    pub fn lose_fins(&mut self, a: usize, b: usize) {
        for l in 0..self.links.len() {
            let [x, y] = self.links[l].ends;
            if (x.0.min(y.0), x.0.max(y.0)) != (a.min(b), a.max(b)) {
                continue;
            }
            for p in [2 * l, 2 * l + 1] {
                let pipe = &mut self.pipes[p];
                pipe.queue.retain(|(_, s)| !matches!(s, Segment::Fin));
                if pipe.queue.is_empty() {
                    self.clear_head(p);
                }
            }
        }
    }

    /// Connection ends node `i` holds in the network (sockets its driver has open).
    pub fn open_ends(&self, i: usize) -> usize {
        self.ends_of(i).len()
    }

    /// Resets every connection between `a` and `b`.
    pub fn cut(&mut self, a: usize, b: usize) {
        tracing::debug!(target: "sim", t = self.now.as_millis(), a, b, "cut");
        self.counts.cuts += 1;
        for l in self.links_of_pair(a, b) {
            self.reset_link(l);
        }
    }

    /// `a` and `b` can no longer reach each other; their connections fail as `mode` says.
    pub fn partition(&mut self, a: usize, b: usize, mode: CutMode) {
        if a == b {
            return;
        }
        tracing::debug!(target: "sim", t = self.now.as_millis(), a, b, ?mode, "partition");
        let key = (a.min(b), a.max(b));
        if self.partitions.contains_key(&key) {
            return;
        }
        self.partitions.insert(key, mode);
        self.counts.partitions += 1;
        for l in self.links_of_pair(a, b) {
            match mode {
                CutMode::Reset => self.reset_link(l),
                CutMode::Silent => self.blackhole_link(l),
                CutMode::Stall => {
                    for p in [2 * l, 2 * l + 1] {
                        self.clear_head(p);
                        self.pipes[p].paused = true;
                    }
                }
            }
        }
    }

    /// Partitions every node of `side` from every node not in it.
    pub fn split(&mut self, side: &[usize], mode: CutMode) {
        for a in side.iter().copied() {
            for b in 0..self.nodes.len() {
                if !side.contains(&b) {
                    self.partition(a, b, mode);
                }
            }
        }
    }

    /// Ends the partition between `a` and `b`; stalled bytes flow again.
    pub fn heal(&mut self, a: usize, b: usize) {
        let key = (a.min(b), a.max(b));
        if self.partitions.remove(&key).is_none() {
            return;
        }
        tracing::debug!(target: "sim", t = self.now.as_millis(), a, b, "heal");
        for l in 0..self.links.len() {
            let [x, y] = self.links[l].ends;
            if (x.0.min(y.0), x.0.max(y.0)) != key {
                continue;
            }
            for p in [2 * l, 2 * l + 1] {
                if self.pipes[p].paused {
                    self.pipes[p].paused = false;
                    self.set_head(p);
                }
            }
        }
    }

    /// Ends every partition.
    pub fn heal_all(&mut self) {
        let keys: Vec<(usize, usize)> = self.partitions.keys().copied().collect();
        for (a, b) in keys {
            self.heal(a, b);
        }
    }

    /// The partitioned pairs.
    pub fn partitions(&self) -> Vec<(usize, usize)> {
        self.partitions.keys().copied().collect()
    }

    /// Node `i` dies at once. Its peers see a reset, or (`silent`) nothing at all.
    pub fn crash(&mut self, i: usize, silent: bool) {
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, silent, "crash");
        self.counts.crashes += 1;
        self.counts.silent_crashes += u64::from(silent);
        for (key, l, side) in self.ends_of(i) {
            self.ends.remove(&key);
            self.links[l].open[side] = false;
            if silent {
                self.blackhole_link(l);
            } else if self.links[l].state == LinkState::Open {
                let d = self.latency();
                self.push(2 * l + side, Segment::Fin, d);
            }
        }
        let inc = self.nodes[i].incarnation;
        self.dials.retain(|k| (k.0, k.1) != (i, inc));
        self.hung.retain(|k| (k.0, k.1) != (i, inc));
        if !self.opts.light_checks {
            let regs = self.nodes[i].model.memberships();
            self.ended_regs.insert((i, inc), regs);
        }
        let n = &mut self.nodes[i];
        n.node = None;
        n.wake = None;
        n.model = LocalModel::default();
        n.monitors.clear();
        n.port_monitors.clear();
    }

    /// Node `i` shuts down gracefully (its peers are told), then stops.
    pub fn shutdown(&mut self, i: usize) {
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, "shutdown");
        self.counts.shutdowns += 1;
        let now = self.now;
        self.api(i, |n| n.shutdown(now));
        let left = self.core(i).stats().connections;
        assert_eq!(left, 0, "node {i} keeps {left} connections after shutdown");
        assert_eq!(self.nodes[i].wake, None, "a shut down node wants no timer");
        self.crash(i, false);
    }

    /// Starts node `i` again: same id, address and seeds, a new incarnation.
    pub fn restart(&mut self, i: usize) {
        assert!(!self.alive(i), "restart of a live node");
        self.start(i);
    }

    /// Restarts a crashed node with an incarnation smaller than all of its
    /// earlier ones, as a node whose clock went back does.
    pub fn restart_with_clock_back(&mut self, i: usize) {
        assert!(!self.alive(i), "restart of a live node");
        self.start_run(i, true);
    }

    // ----- convergence -------------------------------------------------

    /// Whether the network is healed, every node alive, the mesh full with one
    /// connection per pair, and every node lists exactly the expected members.
    pub fn check_converged(&self) -> Result<(), String> {
        if let Some(d) = self.dead_nodes().first() {
            if !self.opts.allow_dead {
                return Err(format!("node {d} is down"));
            }
        }
        if !self.partitions.is_empty() {
            return Err("partitions remain".into());
        }
        self.check_mesh(&self.live_nodes())?;
        self.check_views(&self.live_nodes(), &self.expected())
    }

    /// Every node of `among` is connected to every other one of `among`
    /// over exactly one authenticated connection, and the core's connections
    /// are exactly those the network has for it. With `opts.strict_mesh`, no
    /// other connection exists at all and every link is whole.
    pub fn check_mesh(&self, among: &[usize]) -> Result<(), String> {
        for &i in among {
            let node = self.core(i);
            let inc = self.nodes[i].incarnation;
            let want: BTreeSet<&NodeId> = among
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| &self.nodes[j].id)
                .collect();
            let got: BTreeSet<&NodeId> = node.connected_nodes().collect();
            if got != want {
                return Err(format!("node {i} is connected to {got:?}, want {want:?}"));
            }
            let s = node.stats();
            if s.authenticated != want.len() {
                return Err(format!(
                    "node {i} has {} authenticated connections, want {}",
                    s.authenticated,
                    want.len()
                ));
            }
            let ends = self.ends_of(i);
            let failing = self.misc.values().filter_map(|m| match m {
                Misc::DialFailed(k) => Some(k),
                Misc::Syn { .. } => None,
            });
            let dialling = self
                .dials
                .iter()
                .chain(&self.hung)
                .chain(failing)
                .filter(|k| (k.0, k.1) == (i, inc))
                .count();
            if s.connections != ends.len() + dialling {
                return Err(format!(
                    "node {i} has {} connections, the network {} (and {dialling} dials)",
                    s.connections,
                    ends.len()
                ));
            }
            // Not quiet yet while a core holds a connection that was reset
            // (the reset is on its way) or went silent (keepalive will tell).
            if let Some((_, l, _)) = ends
                .iter()
                .find(|(_, l, _)| self.links[*l].state != LinkState::Open)
            {
                return Err(format!(
                    "node {i} holds a {:?} connection",
                    self.links[*l].state
                ));
            }
            if !self.opts.strict_mesh {
                continue;
            }
            if s.connections != want.len() {
                return Err(format!(
                    "node {i} has {} connections ({} authenticated), want {}",
                    s.connections,
                    s.authenticated,
                    want.len()
                ));
            }
            for (_, l, side) in ends {
                let link = &self.links[l];
                let other = link.ends[1 - side].0;
                if link.state != LinkState::Open || !link.open[1 - side] {
                    return Err(format!(
                        "node {i}'s connection to node {other} is half-open ({:?})",
                        link.state
                    ));
                }
            }
        }
        if self.opts.strict_mesh {
            for (x, &a) in among.iter().enumerate() {
                for &b in &among[x + 1..] {
                    let n = self.links_between(a, b);
                    if n != 1 {
                        return Err(format!("{n} connections between nodes {a} and {b}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every live node of `among` lists exactly `want` for every group, and no
    /// port of a node other than the current incarnations of `among`.
    pub fn check_views(
        &self,
        among: &[usize],
        want: &BTreeMap<String, BTreeSet<PortId>>,
    ) -> Result<(), String> {
        let owners: BTreeMap<&NodeId, &SimNode> = among
            .iter()
            .map(|&j| (&self.nodes[j].id, &self.nodes[j]))
            .collect();
        for &i in among {
            let node = self.core(i);
            let mut groups: BTreeSet<String> = want.keys().cloned().collect();
            groups.extend(node.group_names().map(str::to_owned));
            for g in &groups {
                let view = node.members(g);
                if view.is_some_and(|v| v.is_empty()) {
                    return Err(format!("node {i}: members({g:?}) is Some([])"));
                }
                let view = view.unwrap_or(&[]);
                if !view.windows(2).all(|w| w[0] < w[1]) {
                    return Err(format!("node {i}: members({g:?}) not sorted: {view:?}"));
                }
                for p in view {
                    match owners.get(p.node()) {
                        Some(o) if o.alive() && o.incarnation == p.incarnation() => {}
                        Some(o) => {
                            return Err(format!(
                                "node {i}: {g:?} lists {p:?} of a dead incarnation (now {})",
                                o.incarnation
                            ))
                        }
                        None => {
                            return Err(format!(
                                "node {i}: {g:?} lists {p:?} of an unreachable node"
                            ))
                        }
                    }
                }
                let w = want.get(g).cloned().unwrap_or_default();
                if !view.iter().eq(w.iter()) {
                    return Err(format!("node {i}: members({g:?}) = {view:?}, want {:?}", w));
                }
            }
        }
        Ok(())
    }

    /// Runs until converged (at most `max`), then `hold` longer, and checks
    /// again. Returns how long convergence took.
    pub fn settle_with(&mut self, max: Duration, hold: Duration) -> Result<Duration, String> {
        let start = self.now;
        loop {
            self.run_for(Duration::from_millis(100));
            if self.check_converged().is_ok() {
                let took = self.now - start;
                self.run_for(hold);
                return self.check_converged().map(|()| took).map_err(|e| {
                    format!("converged after {took:?}, then diverged within {hold:?}: {e}")
                });
            }
            if self.now - start > max {
                let e = self.check_converged().expect_err("not converged");
                return Err(format!("not converged after {max:?}: {e}"));
            }
        }
    }

    /// [`Sim::settle_with`] with a 60 s limit and the default hold.
    pub fn settle(&mut self) -> Result<Duration, String> {
        let hold = self.opts.hold();
        self.settle_with(Duration::from_secs(60), hold)
    }

    /// Settles, or panics with the reason and a dump of the network.
    pub fn settle_or_panic(&mut self) -> Duration {
        match self.settle() {
            Ok(d) => d,
            Err(e) => panic!("{e}\n{}", self.dump()),
        }
    }

    /// A readable picture of every node and connection, for failure reports.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- network at {:?} ---", self.now);
        for n in &self.nodes {
            let Some(node) = &n.node else {
                let _ = writeln!(
                    s,
                    "node {} ({}) DOWN (last incarnation {})",
                    n.index, n.id, n.incarnation
                );
                continue;
            };
            let st = node.stats();
            let connected: Vec<&NodeId> = node.connected_nodes().collect();
            let _ = writeln!(
                s,
                "node {} ({}) inc {} wake {:?}: {} conns ({} auth), known {}, connected {:?}",
                n.index,
                n.id,
                n.incarnation,
                n.wake,
                st.connections,
                st.authenticated,
                st.known_nodes,
                connected
            );
            for g in node.group_names() {
                let _ = writeln!(s, "    {g:?}: {:?}", node.members(g).unwrap_or(&[]));
            }
            let model = n.model.memberships();
            if !model.is_empty() {
                let _ = writeln!(s, "    own registrations: {model:?}");
            }
            let _ = writeln!(s, "    closes: {:?}", st.closed);
        }
        for (l, link) in self.links.iter().enumerate() {
            if link.open == [false, false] {
                continue;
            }
            let [a, b] = link.ends;
            let _ = writeln!(
                s,
                "link {l}: {}/{}:{} -> {}/{}:{} open {:?} {:?} queued {}/{}",
                a.0,
                a.1,
                a.2,
                b.0,
                b.1,
                b.2,
                link.open,
                link.state,
                self.pipes[2 * l].queue.len(),
                self.pipes[2 * l + 1].queue.len()
            );
        }
        let _ = writeln!(s, "partitions: {:?}", self.partitions);
        s
    }
}

/// Checks one monitor delta against the replayed state, and replays it.
fn check_delta(
    monitors: &mut BTreeMap<MonitorId, MonitorTrack>,
    d: &GroupDelta,
) -> Result<(), String> {
    let m = monitors
        .get_mut(&d.monitor)
        .ok_or("event for a monitor never started")?;
    if m.ended {
        return Err("event after unmonitor".into());
    }
    if *d.group != *m.group {
        return Err(format!(
            "event for group {:?}, monitor is of {:?}",
            d.group, m.group
        ));
    }
    for (name, list) in [
        ("members", &d.members),
        ("added", &d.added),
        ("removed", &d.removed),
    ] {
        if !list.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("{name} not sorted and unique"));
        }
    }
    if d.added.is_empty() && d.removed.is_empty() {
        return Err("empty delta".into());
    }
    let members: BTreeSet<PortId> = d.members.iter().cloned().collect();
    let added: BTreeSet<PortId> = d.added.iter().cloned().collect();
    let removed: BTreeSet<PortId> = d.removed.iter().cloned().collect();
    if !added.is_subset(&members) {
        return Err("added not a subset of members".into());
    }
    if !removed.is_disjoint(&members) {
        return Err("removed members still listed".into());
    }
    if !added.is_disjoint(&m.members) {
        return Err(format!(
            "added ports already members: {:?}",
            added.intersection(&m.members).collect::<Vec<_>>()
        ));
    }
    if !removed.is_subset(&m.members) {
        return Err(format!(
            "removed ports that were not members: {:?}",
            removed.difference(&m.members).collect::<Vec<_>>()
        ));
    }
    let replay: BTreeSet<PortId> = m
        .members
        .union(&added)
        .filter(|p| !removed.contains(*p))
        .cloned()
        .collect();
    if replay != members {
        return Err(format!("replay gives {replay:?}"));
    }
    m.members = replay;
    m.deltas += 1;
    Ok(())
}

/// Installs a tracing subscriber writing to the test output when `SIM_TRACE` is set.
pub fn init_tracing() {
    if std::env::var_os("SIM_TRACE").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .without_time()
            .try_init();
    }
}

/// Runs `run(seed)` for many seeds and reports the first failure with a replay
/// command. `SIM_SEED=n` runs only seed `n` (with `SIM_TRACE=1`, logging);
/// `<count_var>=k` (e.g. `SIM_SEEDS=100000`) runs seeds `0..k` instead of
/// `0..default_count` (from `SIM_SEED_START` if set); `SIM_KEEP_GOING=1` runs
/// them all and lists the failing ones with the first line of their failure.
pub fn run_seeds(test: &str, count_var: &str, default_count: u64, run: impl Fn(u64)) {
    init_tracing();
    let env = |k: &str| {
        std::env::var(k).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{k} is not a number"))
        })
    };
    let first = env("SIM_SEED_START").unwrap_or(0);
    let seeds: Vec<u64> = match env("SIM_SEED") {
        Some(s) => vec![s],
        None => (first..first + env(count_var).unwrap_or(default_count)).collect(),
    };
    // SIM_KEEP_GOING=1: run every seed, list the failures at the end.
    let keep_going = std::env::var_os("SIM_KEEP_GOING").is_some();
    if keep_going {
        panic::set_hook(Box::new(|_| {}));
    }
    let mut failed = Vec::new();
    for seed in seeds {
        let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| run(seed))) else {
            continue;
        };
        if keep_going {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            eprintln!("seed {seed}: {}", msg.lines().next().unwrap_or(""));
            failed.push(seed);
            continue;
        }
        eprintln!(
            "\n*** {test} failed with seed {seed}. Replay it with:\n\
             SIM_SEED={seed} cargo test -p groupmesh-core --test simulation {test} -- --nocapture\n\
             (add SIM_TRACE=1 for the core's debug log)\n"
        );
        panic::resume_unwind(e);
    }
    if keep_going {
        let _ = panic::take_hook();
    }
    assert!(
        failed.is_empty(),
        "{test}: {} seeds failed: {failed:?}",
        failed.len()
    );
}

/// The seeds a focused test loops over: `default`, or only `SIM_SEED` when set.
pub fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => default.collect(),
    }
}

/// The reason of node `i`'s `ConnectionClosed` events since `mark`.
pub fn close_reasons(events: &[Event]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionClosed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}
