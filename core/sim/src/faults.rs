//! Faults: connections reset, partitions (reset, silent or stalled) and their
//! healing, lost closes, crashes, shutdowns and restarts.

use groupmesh_core::ConnId;

use crate::ids::EndKey;
use crate::network::{LinkState, Segment};
use crate::options::CutMode;
use crate::records::LocalModel;
use crate::sim::Sim;

impl Sim {
    /// Open ends of node `i`'s current incarnation.
    pub(crate) fn ends_of(&self, i: usize) -> Vec<(EndKey, usize, usize)> {
        let inc = self.nodes[i].incarnation;
        self.ends
            .range((i, inc, ConnId(0))..=(i, inc, ConnId(u64::MAX)))
            .map(|(&k, &(l, s))| (k, l, s))
            .collect()
    }

    /// Links with an open end at both `a` and `b`... or at least one of them.
    pub(crate) fn links_of_pair(&self, a: usize, b: usize) -> Vec<usize> {
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
    pub(crate) fn reset_link(&mut self, l: usize) {
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
    pub(crate) fn blackhole_link(&mut self, l: usize) {
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
}
