//! Moving bytes through the network: dials reaching listeners, transmits
//! cut into random chunks and delivered after a latency, closes, and the
//! actions a node asks of its driver.

use std::net::SocketAddr;
use std::time::{Duration, Instant as WallClock};

use groupmesh_core::{Action, ConnId, Transmit};
use rand::Rng;

use crate::ids::{addr_of, index_of, EndKey, ADVERSARY};
use crate::network::{Link, LinkState, Misc, Pipe, Segment};
use crate::sim::Sim;

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

    /// A dial reaches its target (or does not).
    pub(crate) fn syn(&mut self, from: EndKey, addr: SocketAddr) {
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

    pub(crate) fn push(&mut self, pipe: usize, seg: Segment, delay_ms: u64) {
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

    pub(crate) fn set_head(&mut self, pipe: usize) {
        let Some(&(t, _)) = self.pipes[pipe].queue.front() else {
            return;
        };
        let t = t.max(self.now);
        let s = self.next_seq();
        self.pipes[pipe].head = Some((t, s));
        self.heads.insert((t, s, pipe));
    }

    pub(crate) fn clear_head(&mut self, pipe: usize) {
        if let Some((t, s)) = self.pipes[pipe].head.take() {
            self.heads.remove(&(t, s, pipe));
        }
    }

    pub(crate) fn clear_pipe(&mut self, pipe: usize) {
        self.clear_head(pipe);
        self.pipes[pipe].queue.clear();
        self.pipes[pipe].unsent = 0;
    }

    pub(crate) fn deliver_head(&mut self) {
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
    pub(crate) fn send_buffer_drained(&mut self, link: usize, side: usize) {
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
    pub(crate) fn receive(&mut self, link: usize, to: usize, seg: Segment) {
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

    pub(crate) fn on_transmit(&mut self, i: usize, t: Transmit) {
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

    pub(crate) fn on_action(&mut self, i: usize, a: Action) {
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
}
