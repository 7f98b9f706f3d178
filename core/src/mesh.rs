//! Who to dial and when: seeds, known nodes, backoff, forgetting.
//!
//! Rules kept here:
//! - a seed is dialled whenever no connection to the node behind it is up,
//!   with capped exponential backoff and jitter; a seed that leads back to
//!   this node (it answers with this node's greeting of another connection)
//!   is never dialled again if it is one of our listen addresses, and
//!   otherwise only after `forget_after` (that answer is unauthenticated:
//!   whoever holds the address may forward our greeting); one that merely
//!   reflects the greeting sent on that connection is only backed off;
//! - every known node with an address is dialled while not connected;
//!   one learned from gossip is dialled at once by the side with the smaller
//!   id, and after `gossip_dial_delay` by the other (which expects to be dialled);
//! - a node whose greeting arrived on an inbound connection is not dialled
//!   (unless a dial is already under way) until that handshake has had
//!   `handshake_timeout`: two crossing handshakes would make one connection;
//! - a lost node is re-dialled with backoff; the backoff starts over only
//!   after a connection stayed up for `keepalive_timeout`, so a peer that
//!   closes right after the handshake is re-dialled ever more slowly, not in
//!   a storm;
//! - a node that is not connected, and that no peer has mentioned, for
//!   `forget_after` is forgotten (seeds keep being dialled by address).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;
use core::net::SocketAddr;
use core::time::Duration;

use rand_core::RngCore;

use crate::config::Timeouts;
use crate::ids::{ConnId, NodeId};
use crate::time::Instant;

/// Dial state of one target.
#[derive(Debug, Clone)]
struct Dial {
    /// The connection being dialled or greeted, if any.
    in_flight: Option<ConnId>,
    /// Failures since a connection last stayed up.
    failures: u32,
    /// Earliest time of the next attempt.
    next: Instant,
    /// When the connection it made authenticated, while it is up.
    up_since: Option<Instant>,
}

impl Dial {
    fn at(next: Instant) -> Self {
        Dial {
            in_flight: None,
            failures: 0,
            next,
            up_since: None,
        }
    }

    /// Connection `id` authenticated. Its failures are forgiven only once it
    /// has stayed up (see [`back_off`](Self::back_off)); a dial of another
    /// connection still under way stays recorded.
    fn succeeded(&mut self, id: ConnId, now: Instant) {
        self.in_flight = self.in_flight.filter(|c| *c != id);
        self.next = now;
        self.up_since = Some(now);
    }

    /// After a failed or lost connection: wait before the next attempt,
    /// starting over if the connection had stayed up for `keepalive_timeout`.
    fn back_off(&mut self, now: Instant, t: &Timeouts, rng: &mut impl RngCore) {
        if let Some(up) = self.up_since.take() {
            if now.saturating_since(up) >= t.keepalive_timeout {
                self.failures = 0;
            }
        }
        self.in_flight = None;
        self.next = now + backoff(t, self.failures, rng);
        self.failures = self.failures.saturating_add(1);
    }
}

/// Capped exponential backoff with "equal jitter": half the delay fixed, half random.
pub(crate) fn backoff(t: &Timeouts, failures: u32, rng: &mut impl RngCore) -> Duration {
    let base = t.backoff_min.as_millis() as u64;
    let cap = (t.backoff_max.as_millis() as u64).max(base);
    let delay = base
        .saturating_mul(1u64 << failures.min(32))
        .min(cap)
        .max(1);
    let half = delay / 2;
    Duration::from_millis(half + rng.next_u64() % (delay - half + 1))
}

/// A node this one knows of.
#[derive(Debug, Clone)]
struct Known {
    addrs: Vec<SocketAddr>,
    dial: Dial,
    /// Last time a peer mentioned it, or it was connected.
    last_seen: Instant,
    connected: bool,
}

/// A seed address.
#[derive(Debug, Clone)]
struct Seed {
    addr: SocketAddr,
    /// The node behind it, once a handshake told.
    node: Option<NodeId>,
    /// It is one of our own listen addresses and answered with our own
    /// greeting of another connection: never dialled again.
    is_self: bool,
    dial: Dial,
}

/// Seeds and known nodes. Changed only through `seeds_mut` and `known_mut`,
/// so that the next deadline, a scan of
/// every entry, is computed once per change and not at every input.
#[derive(Debug, Default)]
pub(crate) struct Mesh {
    seeds: Vec<Seed>,
    known: BTreeMap<NodeId, Known>,
    /// [`next_timeout`](Self::next_timeout)'s answer until the mesh changes.
    next: Cell<Option<Option<Instant>>>,
}

/// What a dial was for, so its outcome updates the right backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialFor {
    /// Accepted, not dialled.
    Nothing,
    /// A seed address, by index in the seed list.
    Seed(usize),
    /// A known node.
    Node(NodeId),
}

/// A dial the node should start now: its target and the address to dial.
#[derive(Debug)]
pub(crate) struct DueDial {
    pub(crate) target: DialFor,
    pub(crate) addr: SocketAddr,
}

impl Mesh {
    /// The known nodes with their addresses.
    pub(crate) fn known_nodes(&self) -> impl Iterator<Item = (&NodeId, &[SocketAddr])> {
        self.known.iter().map(|(n, k)| (n, k.addrs.as_slice()))
    }

    pub(crate) fn known_count(&self) -> usize {
        self.known.len()
    }

    pub(crate) fn knows(&self, node: &NodeId) -> bool {
        self.known.contains_key(node)
    }

    /// The addresses of a known node.
    pub(crate) fn addrs(&self, node: &NodeId) -> Option<&[SocketAddr]> {
        self.known.get(node).map(|k| k.addrs.as_slice())
    }

    /// The address of seed `i`.
    pub(crate) fn seed_addr(&self, i: usize) -> Option<SocketAddr> {
        self.seeds.get(i).map(|s| s.addr)
    }

    /// The seeds, to change.
    fn seeds_mut(&mut self) -> &mut Vec<Seed> {
        self.next.set(None);
        &mut self.seeds
    }

    /// The known nodes, to change.
    fn known_mut(&mut self) -> &mut BTreeMap<NodeId, Known> {
        self.next.set(None);
        &mut self.known
    }

    /// The dial state of a dial's target.
    fn dial_mut(&mut self, target: &DialFor) -> Option<&mut Dial> {
        match target {
            DialFor::Nothing => None,
            DialFor::Seed(i) => self.seeds_mut().get_mut(*i).map(|s| &mut s.dial),
            DialFor::Node(n) => self.known_mut().get_mut(n).map(|k| &mut k.dial),
        }
    }

    /// A due dial waits: no dial slot is free. It is due again at `until`.
    pub(crate) fn postpone(&mut self, target: &DialFor, until: Instant) {
        if let Some(dial) = self.dial_mut(target) {
            dial.next = until;
        }
    }

    /// `id` is dialling us (its greeting arrived): each of our dials to it
    /// not under way waits `until` that handshake has had its time, so that
    /// two handshakes do not cross for the one connection the pair keeps.
    pub(crate) fn dialled_by(&mut self, id: &NodeId, until: Instant) {
        let seeds = self.seeds.iter().enumerate();
        let targets: Vec<DialFor> = seeds
            .filter(|(_, s)| s.node.as_ref() == Some(id))
            .map(|(i, _)| DialFor::Seed(i))
            .chain(
                self.known
                    .contains_key(id)
                    .then(|| DialFor::Node(id.clone())),
            )
            .collect();
        for target in &targets {
            if let Some(dial) = self.dial_mut(target).filter(|d| d.in_flight.is_none()) {
                dial.next = dial.next.max(until);
            }
        }
    }

    /// Connection `id` dials `target`.
    pub(crate) fn dialling(&mut self, target: &DialFor, id: ConnId) {
        if let Some(dial) = self.dial_mut(target) {
            dial.in_flight = Some(id);
        }
    }

    /// Connection `id`, dialled for `target`, ended before it authenticated
    /// or was lost: back off the target, if that dial was its latest.
    pub(crate) fn dial_ended(
        &mut self,
        target: &DialFor,
        id: ConnId,
        now: Instant,
        t: &Timeouts,
        rng: &mut impl RngCore,
    ) {
        if let Some(dial) = self.dial_mut(target).filter(|d| d.in_flight == Some(id)) {
            dial.back_off(now, t, rng);
        }
    }

    /// Seed `i` led back to this node: never dialled again if it is one of
    /// our listen addresses (`ours`), else only after `forget_after`.
    pub(crate) fn seed_is_self(&mut self, i: usize, ours: bool, now: Instant, t: &Timeouts) {
        let Some(seed) = self.seeds_mut().get_mut(i) else {
            return;
        };
        if ours {
            seed.is_self = true;
        } else {
            seed.dial.next = now + t.forget_after;
        }
    }

    /// `node` authenticated on connection `id` (dialled for seed `seed`, if
    /// one), with its advertised `addrs`: it is known, connected, and its
    /// dials (and the seed's) succeeded. False, changing nothing, when it is
    /// news and there is no room for one more known node (`max`).
    pub(crate) fn authenticated(
        &mut self,
        node: &NodeId,
        addrs: &[SocketAddr],
        seed: Option<usize>,
        id: ConnId,
        now: Instant,
        max: usize,
    ) -> bool {
        if !self.knows(node) && !self.make_room(max) {
            return false;
        }
        let known = self
            .known_mut()
            .entry(node.clone())
            .or_insert_with(|| Known {
                addrs: Vec::new(),
                dial: Dial::at(now),
                last_seen: now,
                connected: false,
            });
        known.connected = true;
        known.last_seen = now;
        known.dial.succeeded(id, now);
        if !addrs.is_empty() {
            known.addrs = addrs.to_vec();
        }
        if let Some(seed) = seed.and_then(|i| self.seeds_mut().get_mut(i)) {
            seed.node = Some(node.clone());
            seed.dial.succeeded(id, now);
        }
        true
    }

    /// A peer mentioned `node`, at `addrs`. A known node is seen now (and
    /// takes the addresses if it had none); a new one is dialled from
    /// `first`. False, changing nothing, when it is news and there is no
    /// room for one more known node (`max`).
    pub(crate) fn mentioned(
        &mut self,
        node: &NodeId,
        addrs: impl Iterator<Item = SocketAddr>,
        now: Instant,
        first: Instant,
        max: usize,
    ) -> bool {
        if let Some(k) = self.known_mut().get_mut(node) {
            k.last_seen = now;
            if k.addrs.is_empty() {
                k.addrs = addrs.collect();
            }
            return true;
        }
        if !self.make_room(max) {
            return false;
        }
        self.known_mut().insert(
            node.clone(),
            Known {
                addrs: addrs.collect(),
                dial: Dial::at(first),
                last_seen: now,
                connected: false,
            },
        );
        true
    }

    /// The connection to `node` was lost: it is dialled again after a
    /// backoff, and so is a seed that led to it (it would otherwise dial the
    /// node again at once).
    pub(crate) fn lost(
        &mut self,
        node: &NodeId,
        now: Instant,
        t: &Timeouts,
        rng: &mut impl RngCore,
    ) {
        if let Some(k) = self.known_mut().get_mut(node) {
            k.connected = false;
            k.last_seen = now;
            if k.dial.in_flight.is_none() {
                k.dial.back_off(now, t, rng);
            }
        }
        for seed in self.seeds_mut() {
            if seed.node.as_ref() == Some(node) && seed.dial.in_flight.is_none() {
                seed.dial.back_off(now, t, rng);
            }
        }
    }

    pub(crate) fn add_seed(&mut self, addr: SocketAddr, now: Instant) {
        if self.seeds.iter().all(|s| s.addr != addr) {
            self.seeds_mut().push(Seed {
                addr,
                node: None,
                is_self: false,
                dial: Dial::at(now),
            });
        }
    }

    fn seed_wanted(&self, s: &Seed) -> bool {
        if s.is_self || s.dial.in_flight.is_some() {
            return false;
        }
        match &s.node {
            None => true,
            Some(n) => self
                .known
                .get(n)
                .is_none_or(|k| !k.connected && k.dial.in_flight.is_none()),
        }
    }

    fn node_wanted(k: &Known) -> bool {
        !k.connected && k.dial.in_flight.is_none() && !k.addrs.is_empty()
    }

    /// Wanted, and no seed dial is under way to one of its addresses (that
    /// dial may be reaching this very node: one dial to a node at a time).
    fn node_dial_wanted(&self, k: &Known) -> bool {
        Self::node_wanted(k)
            && !self
                .seeds
                .iter()
                .any(|s| s.dial.in_flight.is_some() && k.addrs.contains(&s.addr))
    }

    /// Dials that are due at `now`.
    pub(crate) fn due(&self, now: Instant) -> Vec<DueDial> {
        let mut due = Vec::new();
        for (i, s) in self.seeds.iter().enumerate() {
            if s.dial.next <= now && self.seed_wanted(s) {
                due.push(DueDial {
                    target: DialFor::Seed(i),
                    addr: s.addr,
                });
            }
        }
        for (id, k) in &self.known {
            if k.dial.next <= now && self.node_dial_wanted(k) {
                let addr = k.addrs[k.dial.failures as usize % k.addrs.len()];
                due.push(DueDial {
                    target: DialFor::Node(id.clone()),
                    addr,
                });
            }
        }
        due
    }

    /// Earliest time a dial or a forgetting is due.
    pub(crate) fn next_timeout(&self, t: &Timeouts) -> Option<Instant> {
        if let Some(next) = self.next.get() {
            return next;
        }
        let next = self.scan_next_timeout(t);
        self.next.set(Some(next));
        next
    }

    fn scan_next_timeout(&self, t: &Timeouts) -> Option<Instant> {
        let seeds = self
            .seeds
            .iter()
            .filter(|s| self.seed_wanted(s))
            .map(|s| s.dial.next);
        let nodes = self
            .known
            .values()
            .filter(|k| !k.connected && k.dial.in_flight.is_none())
            .map(|k| {
                let forget = k.last_seen + t.forget_after;
                if self.node_dial_wanted(k) {
                    k.dial.next.min(forget)
                } else {
                    forget
                }
            });
        seeds.chain(nodes).min()
    }

    /// Makes room for one more known node, evicting the one seen longest ago
    /// among those not connected, not being dialled and not behind a seed.
    /// False when every entry is in use.
    fn make_room(&mut self, max: usize) -> bool {
        if self.known.len() < max {
            return true;
        }
        let victim = self
            .known
            .iter()
            .filter(|(_, k)| !k.connected && k.dial.in_flight.is_none())
            .filter(|(id, _)| self.seeds.iter().all(|s| s.node.as_ref() != Some(*id)))
            .min_by_key(|(_, k)| k.last_seen)
            .map(|(id, _)| id.clone());
        match victim {
            Some(id) => {
                self.known_mut().remove(&id);
                true
            }
            None => false,
        }
    }

    /// Forgets nodes unreachable and unmentioned for `forget_after`.
    /// Returns the forgotten ones.
    pub(crate) fn forget(&mut self, now: Instant, t: &Timeouts) -> Vec<NodeId> {
        let gone: Vec<NodeId> = self
            .known
            .iter()
            .filter(|(_, k)| !k.connected && k.dial.in_flight.is_none())
            .filter(|(_, k)| now.saturating_since(k.last_seen) >= t.forget_after)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.known_mut().remove(id);
        }
        gone
    }
}
