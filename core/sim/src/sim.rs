//! The simulator itself: [`Sim`], its construction, and what can be asked of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use groupmesh_core::{CloseReason, Config, Event, Instant, Node, PortId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::ids::{addr_k, addr_of, long_node_id, node_id, EndKey, MAX_ADDRS, SECRET};
use crate::network::{Link, Misc, Pipe};
use crate::options::{CutMode, SimOptions};
use crate::records::{Counts, LocalModel, SentMessage, SimNode};
use crate::tap::Adversary;

/// The simulator: nodes on a seeded virtual network. See the crate documentation.
pub struct Sim {
    /// Virtual time: when the last thing happened (or the last `run_*` ended).
    pub now: Instant,
    /// The run's one source of randomness, seeded by [`Sim::new`]. A test may
    /// draw from it too (its draws then belong to the run).
    pub rng: SmallRng,
    /// What the network and its nodes look like.
    pub opts: SimOptions,
    /// Every node, by index, alive or not.
    pub nodes: Vec<SimNode>,
    /// The simulated TCP connections, by index (two pipes each in `pipes`).
    pub(crate) links: Vec<Link>,
    pub(crate) pipes: Vec<Pipe>,
    /// Open ends: the link and side each is on.
    pub(crate) ends: BTreeMap<EndKey, (usize, usize)>,
    /// Dials requested and not yet at the listener.
    pub(crate) dials: BTreeSet<EndKey>,
    /// Dials that reached a partition and hang until the dialler gives up.
    pub(crate) hung: BTreeSet<EndKey>,
    /// Front segments of unpaused pipes: (time, seq, pipe).
    pub(crate) heads: BTreeSet<(Instant, u64, usize)>,
    /// Dial outcomes on their way, by (time, sequence number).
    pub(crate) misc: BTreeMap<(Instant, u64), Misc>,
    /// The last sequence number handed out (orders simultaneous happenings).
    pub(crate) seq: u64,
    /// Pairs (smaller, larger) that cannot reach each other, and how.
    pub(crate) partitions: BTreeMap<(usize, usize), CutMode>,
    /// The incarnation of the next start.
    pub(crate) next_incarnation: u64,
    /// With `falling_incarnations`: the last incarnation handed out below
    /// every other.
    pub(crate) next_falling: u64,
    /// The last dialler's source port handed out (`40_000 + n % 20_000`).
    pub(crate) next_ephemeral: u16,
    /// Steps taken at the current instant (livelock guard).
    pub(crate) steps_at_now: u64,
    /// Nodes fed network input not drained yet (`lazy_drain`).
    pub(crate) undrained: BTreeSet<usize>,
    /// Steps taken (deliveries, dial outcomes and timers).
    pub steps: u64,
    /// What happened in the run, to see that a scenario tests something.
    pub counts: Counts,
    /// Every message sent through [`Sim::send`], by number.
    pub sent: Vec<SentMessage>,
    /// The last message delivered per (sending node, its incarnation,
    /// sending port number, receiving port): order is kept per pair.
    pub(crate) last_delivered: BTreeMap<(usize, u64, Option<u64>, PortId), u64>,
    /// Every port ever opened, of every incarnation (stale ones included).
    pub port_history: Vec<PortId>,
    /// Every port ever registered, by group: no node may list another.
    pub registered: BTreeMap<String, BTreeSet<PortId>>,
    /// What each incarnation had registered when it died: (node, incarnation)
    /// -> group -> ports.
    pub(crate) ended_regs: BTreeMap<(usize, u64), BTreeMap<String, BTreeSet<PortId>>>,
    /// (group, port) whose registration was ever ended (unregistered or the
    /// port closed) by a live owner: a removal of it may be that Leave, even
    /// if the port was registered again, so it never counts as a loss.
    pub(crate) churned: BTreeSet<(String, PortId)>,
    /// Wall time spent inside the cores' calls (the simulator is one thread:
    /// in a release build, this is the cores' CPU time).
    pub core_time: Duration,
    /// The adversary's state (see `adversary.rs`).
    pub(crate) adv: Adversary,
}

impl Sim {
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
    pub(crate) fn draw_addrs(&mut self, i: usize) -> Vec<SocketAddr> {
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
    /// 1 MiB (each power of two alike), `max_meta` as large as the frame
    /// allows up to the default, and for a third of the nodes fewer
    /// handshakes and dials at a time than the default.
    pub(crate) fn draw_limits(&mut self, cfg: &mut Config) {
        cfg.limits.max_frame = 1 << self.rng.random_range(10..=20);
        cfg.limits.max_meta = cfg
            .limits
            .max_meta
            .min(cfg.limits.max_frame - groupmesh_core::MAX_MEMBER_OVERHEAD);
        if self.rng.random_ratio(1, 3) {
            cfg.limits.max_dials = self.rng.random_range(1..=4);
            cfg.limits.max_unauthenticated = self.rng.random_range(2..=8);
        }
    }

    pub(crate) fn start(&mut self, i: usize) {
        let falling = self.opts.falling_incarnations
            && !self.nodes[i].history.is_empty()
            && self.rng.random_bool(0.5);
        self.start_run(i, falling);
    }

    /// Starts node `i` with the next incarnation, or (`falling`) with one
    /// smaller than every earlier one, as when its clock went back.
    pub(crate) fn start_run(&mut self, i: usize, falling: bool) {
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

    /// Whether node `i` runs.
    pub fn alive(&self, i: usize) -> bool {
        self.nodes[i].alive()
    }

    /// The nodes that run.
    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.alive(i)).collect()
    }

    /// The nodes that are down (crashed or shut down).
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
    /// The node that owns `port`'s node id, if simulated.
    pub(crate) fn owner_of(&self, port: &PortId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.id == port.node())
    }

    /// Whether `port` is a live port of its node's running incarnation.
    pub fn port_live(&self, port: &PortId) -> bool {
        self.owner_of(port).is_some_and(|j| {
            let o = &self.nodes[j];
            o.alive() && o.incarnation == port.incarnation() && o.model.ports.contains(port)
        })
    }
}

/// The reasons of the `ConnectionClosed` events among `events` (for
/// example a node's [`Sim::events_since`] a mark).
pub fn close_reasons(events: &[Event]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ConnectionClosed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}
