//! Running the simulation: the next thing due (a delivery, a dial outcome
//! or a node's timer), virtual time, and the livelock guards.

use std::time::{Duration, Instant as WallClock};

use groupmesh_core::Instant;
use rand::Rng;

use crate::network::Misc;
use crate::sim::Sim;

impl Sim {
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

    pub(crate) fn advance_to(&mut self, t: Instant) {
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

    pub(crate) fn fire_timer(&mut self, i: usize) {
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

    pub(crate) fn run_misc(&mut self) {
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

    pub(crate) fn is_current(&self, i: usize, inc: u64) -> bool {
        self.nodes[i].alive() && self.nodes[i].incarnation == inc
    }

    pub(crate) fn latency(&mut self) -> u64 {
        let (lo, hi) = self.opts.latency_ms;
        self.rng.random_range(lo..=hi)
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(crate) fn schedule(&mut self, delay_ms: u64, m: Misc) {
        let t = self.now + Duration::from_millis(delay_ms);
        let s = self.next_seq();
        self.misc.insert((t, s), m);
    }
}
