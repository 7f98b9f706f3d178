//! The simulator's adversary: anywhere on the network, without the secret.
//!
//! When [`SimOptions::adversary`] is on and [`Sim::adversary_step`] is called,
//! it acts through the same network model as the nodes: it records the bytes
//! of every link; replays recorded records on the same link later or on
//! other links; reorders queued chunks; flips bits in records and swaps them
//! as they pass; injects forged records and raw bytes; opens connections of
//! its own to nodes (`handle_inbound`) and replays recorded openings on them,
//! or greets with a key of its own guessing and claims ports nobody
//! registered; splices two of its connections (each node's bytes forwarded to
//! the other); and hijacks dials, answering with a recorded greeting or
//! relaying to the node dialled. Every draw comes from the simulator's RNG.
//!
//! What it must never achieve, checked as the run goes:
//! - a whole record nobody sealed for that direction (altered, replayed,
//!   reordered or forged), on a stream it had not touched before, closes the
//!   receiving connection in the very input that completes it;
//! - no node lists, and no monitor event shows, a port its owner never
//!   registered (checked for every run, see `Sim::check_no_false_port`).
//!
//! [`Sim::stop_adversary`] ends it (its connections are reset) before the
//! network heals; the usual convergence checks follow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use groupmesh_core::wire::{BoundedVec, Frame, GroupPorts, Hello, WireAddr, WireNodeId, WirePort};
use groupmesh_core::{Channel, CloseReason, ConnId, Limit, Psk};
use rand::seq::IndexedRandom;
use rand::Rng;

use crate::ids::{EndKey, ADVERSARY, LISTEN_PORT};
use crate::network::{LinkState, Segment};
use crate::sim::Sim;
use crate::tap::{Own, KEPT_RECORDS, LEN_PREFIX, ON_PATH_ODDS};

/// What a connection may close with when it takes in a record nobody sealed
/// for it: the record's own failure, or a decision on an earlier record of
/// the same input (the peer authenticated and lost the one-connection rule,
/// or the peer's close).
fn closes_on_a_bad_record(reason: CloseReason) -> bool {
    integrity_reason(reason)
        || matches!(
            reason,
            CloseReason::Remote(_)
                | CloseReason::Superseded
                | CloseReason::Restarted
                | CloseReason::StaleIncarnation
                | CloseReason::DuplicateNodeId
                | CloseReason::SelfConnection
        )
}

/// The reasons that say the bad record itself was refused.
fn integrity_reason(reason: CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::Decrypt
            | CloseReason::AuthenticationFailed
            | CloseReason::Malformed
            | CloseReason::VersionMismatch { .. }
            | CloseReason::UnexpectedFrame
            | CloseReason::LimitExceeded(Limit::FrameSize)
    )
}

/// The group the adversary claims a port in, and the port number it claims.
const GROUP_CLAIMED: &str = "alpha";
const MADE_UP_PORT: u64 = 666_000;

impl Sim {
    /// Starts the adversary (with `opts.adversary`).
    pub(crate) fn start_adversary(&mut self) {
        self.adv.active = self.opts.adversary;
    }

    /// Whether `link` has an end of the adversary's.
    pub(crate) fn adversarial(&self, link: usize) -> bool {
        self.links[link].ends.iter().any(|e| e.0 == ADVERSARY)
    }

    /// A node transmits `data` on `pipe`: the adversary records it and, while
    /// active, sometimes alters it on the way. Returns what travels on.
    pub(crate) fn on_path(&mut self, pipe: usize, data: Vec<u8>) -> Vec<u8> {
        let tap = &mut self.pipes[pipe].tap;
        let at = tap.pushed;
        let boundary_records = tap.at_boundary().then_some(tap.records);
        let whole = tap.parse(&data);
        if !self.opts.adversary {
            return data;
        }
        // Kept after the move: a record slipped in ahead of itself would be
        // no forgery.
        let seen: Vec<Vec<u8>> = whole.iter().map(|&(s, e, _)| data[s..e].to_vec()).collect();
        let data = self.alter(pipe, at, boundary_records, &whole, data);
        for rec in seen {
            self.keep_record(&rec);
        }
        data
    }

    /// Sometimes alters a transmit on its way (see [`Sim::on_path`]).
    pub(crate) fn alter(
        &mut self,
        pipe: usize,
        at: u64,
        boundary_records: Option<u64>,
        whole: &[(usize, usize, u64)],
        mut data: Vec<u8>,
    ) -> Vec<u8> {
        if !self.adv.active || self.adversarial(pipe / 2) || !self.rng.random_ratio(1, ON_PATH_ODDS)
        {
            return data;
        }
        self.counts.adversary_acts += 1;
        match self.rng.random_range(0..3) {
            // A bit of a record's body flipped: any record, the handshake's too.
            0 => {
                let Some(&(s, e, _)) = whole.choose(&mut self.rng) else {
                    return data;
                };
                if e - s <= LEN_PREFIX {
                    return data;
                }
                let bit = self.rng.random_range((s + LEN_PREFIX) * 8..e * 8);
                data[bit / 8] ^= 1 << (bit % 8);
                tracing::debug!(target: "sim", t = self.now.as_millis(), pipe, at, s, e, "adversary flips a bit");
                let tap = &mut self.pipes[pipe].tap;
                tap.taint(at + s as u64, Some(at + e as u64));
            }
            // Two records swapped, once the channel is keyed.
            1 => {
                let pairs: Vec<usize> = (1..whole.len())
                    .filter(|&k| whole[k - 1].2 >= 2 && whole[k - 1].1 == whole[k].0)
                    .collect();
                let Some(&k) = pairs.choose(&mut self.rng) else {
                    return data;
                };
                let ((s, m, _), (_, e, _)) = (whole[k - 1], whole[k]);
                let (first, second) = (data[s..m].to_vec(), data[m..e].to_vec());
                if first == second {
                    return data;
                }
                data.splice(s..e, second.iter().chain(&first).copied());
                tracing::debug!(target: "sim", t = self.now.as_millis(), pipe, at, s, e, "adversary swaps records");
                let end = at + (s + second.len()) as u64;
                self.pipes[pipe].tap.taint(at + s as u64, Some(end));
            }
            // A recorded record slipped in ahead, once the channel is keyed.
            _ => {
                let Some(rec) = self.adv.records.choose(&mut self.rng).cloned() else {
                    return data;
                };
                if boundary_records.is_none_or(|r| r < 2) {
                    return data;
                }
                let end = at + rec.len() as u64;
                self.pipes[pipe].tap.taint(at, Some(end));
                tracing::debug!(target: "sim", t = self.now.as_millis(), pipe, at, len = rec.len(), "adversary slips a record in");
                data.splice(0..0, rec);
            }
        }
        data
    }

    pub(crate) fn keep_record(&mut self, rec: &[u8]) {
        if self.adv.records.len() < KEPT_RECORDS {
            self.adv.records.push(rec.to_vec());
        } else if self.rng.random_ratio(1, 8) {
            let k = self.rng.random_range(0..KEPT_RECORDS);
            self.adv.records[k] = rec.to_vec();
        }
    }

    /// Before `b` from `pipe` is delivered to node end `end`: whether to watch
    /// the input (the stream is tainted up to there), and the core's byte count.
    pub(crate) fn watch_delivery(&self, pipe: usize, len: usize, i: usize) -> Option<u64> {
        let tap = &self.pipes[pipe].tap;
        let after = tap.delivered + len as u64;
        let tainted = tap.tainted_from.is_some_and(|t| t < after);
        tainted.then(|| {
            self.nodes[i]
                .node
                .as_ref()
                .map_or(0, |n| n.stats().bytes_in)
        })
    }

    /// After `len` bytes from `pipe` were fed to node end `end` (watched
    /// with `bytes_in` before): notes what the core must do about them.
    pub(crate) fn delivered(
        &mut self,
        pipe: usize,
        len: usize,
        end: EndKey,
        bytes_in: Option<u64>,
    ) {
        let tap = &mut self.pipes[pipe].tap;
        let before = tap.delivered;
        tap.delivered += len as u64;
        let Some(was) = bytes_in else {
            return;
        };
        let held = self.nodes[end.0]
            .node
            .as_ref()
            .is_some_and(|n| n.stats().bytes_in > was);
        if !held {
            return; // the core had already let the connection go
        }
        if tap
            .checkpoint
            .is_some_and(|c| before < c && c <= tap.delivered)
        {
            self.adv.must_close.insert(end);
        }
    }

    /// Node `i` closed `conn` with `reason`: judged if it had to.
    pub(crate) fn adversary_saw_close(&mut self, i: usize, conn: ConnId, reason: CloseReason) {
        let end = (i, self.nodes[i].incarnation, conn);
        if !self.adv.must_close.remove(&end) {
            return;
        }
        assert!(
            closes_on_a_bad_record(reason),
            "node {i} at {:?}: {conn} took in a record nobody sealed for it and closed with {reason:?}\n{}",
            self.now,
            self.dump()
        );
        self.counts.adversary_refusals += u64::from(integrity_reason(reason));
    }

    /// After a drain of node `i`: every connection that took in a whole bad
    /// record is closed.
    pub(crate) fn check_bad_records_closed(&self, i: usize) {
        let inc = self.nodes[i].incarnation;
        let open: Vec<&EndKey> = self
            .adv
            .must_close
            .iter()
            .filter(|e| (e.0, e.1) == (i, inc))
            .collect();
        assert!(
            open.is_empty(),
            "node {i} at {:?}: {open:?} took in a whole record nobody sealed for it \
             (altered, replayed, reordered or forged) and stayed open\n{}",
            self.now,
            self.dump()
        );
    }

    /// The adversary's end of `link` got `seg`.
    pub(crate) fn adversary_receives(&mut self, link: usize, seg: Segment) {
        let Some(own) = self.adv.own.get(&link) else {
            return;
        };
        let forward = own.forward;
        match seg {
            Segment::Bytes(b) => {
                if let Some(m) = forward {
                    self.adversary_send(m, b);
                }
            }
            Segment::Fin => {
                self.adv.own.remove(&link);
                if let Some(m) = forward {
                    self.adversary_close(m);
                }
            }
            Segment::Connected => {}
        }
    }

    /// Sends `bytes` from the adversary's end of `link`.
    pub(crate) fn adversary_send(&mut self, link: usize, bytes: Vec<u8>) {
        let Some(own) = self.adv.own.get(&link) else {
            return;
        };
        if bytes.is_empty() || self.links[link].state != LinkState::Open {
            return;
        }
        let pipe = 2 * link + own.side;
        let d = self.latency();
        self.push(pipe, Segment::Bytes(bytes), d);
    }

    /// Resets the adversary's connection `link`.
    pub(crate) fn adversary_close(&mut self, link: usize) {
        if let Some(own) = self.adv.own.remove(&link) {
            self.links[link].open[own.side] = false;
            self.reset_link(link);
        }
    }

    /// Opens a connection of the adversary's own to node `j`; its link.
    pub(crate) fn adversary_connect(&mut self, j: usize) -> Option<usize> {
        if !self.alive(j) {
            return None;
        }
        self.adv.next_conn += 1;
        let n = self.adv.next_conn;
        let src = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            30_000 + (n % 30_000) as u16,
        );
        let now = self.now;
        let accepted = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = j).entered();
            self.nodes[j]
                .node
                .as_mut()
                .and_then(|node| node.handle_inbound(now, src))
        };
        let inc = self.nodes[j].incarnation;
        let ours = (ADVERSARY, 0, ConnId(n));
        let theirs = (j, inc, accepted.unwrap_or(ConnId(u64::MAX)));
        let link = self.push_link([ours, theirs], [true, accepted.is_some()]);
        if accepted.is_some() {
            self.ends.insert(theirs, (link, 1));
            self.adv.own.insert(
                link,
                Own {
                    side: 0,
                    forward: None,
                },
            );
            self.counts.adversary_conns += 1;
        }
        self.drain(j);
        accepted.map(|_| link)
    }

    /// A dial from `from` to node `j` is answered by the adversary instead:
    /// it relays to `j` (both honest nodes talk through it) or answers with
    /// a recorded responder's opening. True if it took the dial.
    pub(crate) fn adversary_hijacks(&mut self, from: EndKey, j: usize) -> bool {
        if !self.adv.active || !self.rng.random_ratio(1, 10) {
            return false;
        }
        self.counts.adversary_acts += 1;
        self.adv.next_conn += 1;
        let link = self.push_link(
            [from, (ADVERSARY, 0, ConnId(self.adv.next_conn))],
            [true, true],
        );
        self.ends.insert(from, (link, 0));
        self.adv.own.insert(
            link,
            Own {
                side: 1,
                forward: None,
            },
        );
        let d = self.latency();
        self.push(2 * link + 1, Segment::Connected, d);
        if self.rng.random_bool(0.5) {
            if let Some(m) = self.adversary_connect(j) {
                self.splice(link, m);
                return true;
            }
        }
        let opening = self.recorded_opening(1);
        self.adversary_send(link, opening);
        true
    }

    pub(crate) fn splice(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(own) = self.adv.own.get_mut(&x) {
                own.forward = Some(y);
            }
        }
    }

    /// A recorded opening of a dialler (`side` 0) or a responder (1), cut
    /// after a random number of bytes.
    pub(crate) fn recorded_opening(&mut self, side: usize) -> Vec<u8> {
        let openings: Vec<usize> = (0..self.links.len())
            .filter(|&l| self.links[l].ends[side].0 != ADVERSARY)
            .map(|l| 2 * l + side)
            .filter(|&p| !self.pipes[p].tap.opening.is_empty())
            .collect();
        let Some(&p) = openings.choose(&mut self.rng) else {
            return Vec::new();
        };
        let opening = &self.pipes[p].tap.opening;
        let len = self.rng.random_range(1..=opening.len());
        opening[..len].to_vec()
    }

    /// An honest link's pipe that both ends hold, at random.
    pub(crate) fn honest_pipe(&mut self) -> Option<usize> {
        let links: Vec<usize> = (0..self.links.len())
            .filter(|&l| {
                let link = &self.links[l];
                link.state == LinkState::Open && link.open == [true, true] && !self.adversarial(l)
            })
            .collect();
        let l = *links.choose(&mut self.rng)?;
        Some(2 * l + self.rng.random_range(0..2))
    }

    /// Appends `bytes` to `pipe`'s stream; a whole record if `record`.
    pub(crate) fn inject(&mut self, pipe: usize, bytes: Vec<u8>, record: bool) {
        let tap = &mut self.pipes[pipe].tap;
        let at = tap.pushed;
        let exact = record && tap.at_boundary() && tap.records >= 2;
        tap.taint(at, exact.then_some(at + bytes.len() as u64));
        tracing::debug!(target: "sim", t = self.now.as_millis(), pipe, at, exact, len = bytes.len(), "adversary injects");
        let d = self.latency();
        self.push(pipe, Segment::Bytes(bytes), d);
    }

    /// A greeting under a key of the adversary's guessing, claiming to be
    /// node `who` (or a node that does not exist), then the claim of a port
    /// nobody registered, in plain frames.
    pub(crate) fn forged_greeting(&mut self, who: Option<usize>) -> Vec<u8> {
        let mut node = WireNodeId::new();
        let name = who.map_or_else(|| "mallory".to_owned(), |j| self.nodes[j].id.to_string());
        let _ = node.push_str(&name);
        let mut addrs = heapless::Vec::new();
        let _ = addrs.push(WireAddr::from(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            LISTEN_PORT,
        )));
        let incarnation = self.rng.random_range(1..=self.next_incarnation + 2);
        let hello = Hello {
            node,
            incarnation,
            epoch: u64::MAX - incarnation,
            addrs,
            max_frame: 1 << 20,
            port_credit: 64,
        };
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed);
        let guess = format!("guess {}", self.rng.random::<u32>());
        let mut channel = Channel::new(true, &Psk::derive(guess.as_bytes()), 1 << 20, seed);
        channel.start(&hello);
        let mut out = channel.take_wire();
        let mut group = heapless::String::new();
        let _ = group.push_str(GROUP_CLAIMED);
        let claim = Frame::Sync {
            groups: BoundedVec::try_from_vec(vec![GroupPorts {
                group,
                ports: BoundedVec::try_from_vec(vec![WirePort {
                    number: MADE_UP_PORT,
                    meta: b"forged".to_vec().into(),
                }])
                .unwrap_or_default(),
            }])
            .unwrap_or_default(),
            done: true,
        };
        claim.encode(&mut out);
        out
    }

    /// One active move of the adversary, if it is active.
    pub fn adversary_step(&mut self) {
        if !self.adv.active {
            return;
        }
        self.counts.adversary_acts += 1;
        let live = self.live_nodes();
        let Some(&j) = live.choose(&mut self.rng) else {
            return;
        };
        match self.rng.random_range(0..100) {
            // A recorded dialler's opening, on a connection of its own.
            0..20 => {
                let opening = self.recorded_opening(0);
                if let Some(l) = self.adversary_connect(j) {
                    self.adversary_send(l, opening);
                }
            }
            // A greeting under a guessed key, as a node of the mesh or not.
            20..32 => {
                let who = self
                    .rng
                    .random_bool(0.7)
                    .then(|| self.rng.random_range(0..self.nodes.len()));
                let bytes = self.forged_greeting(who);
                if let Some(l) = self.adversary_connect(j) {
                    self.adversary_send(l, bytes);
                }
            }
            // Two nodes spliced through it, one handed a recorded opening.
            32..42 => {
                let k = self.rng.random_range(0..self.nodes.len());
                let opening = self.recorded_opening(0);
                if let (Some(a), Some(b)) = (self.adversary_connect(j), self.adversary_connect(k)) {
                    self.splice(a, b);
                    self.adversary_send(a, opening);
                }
            }
            // A recorded record, again or elsewhere.
            42..60 => {
                let rec = self.adv.records.choose(&mut self.rng).cloned();
                if let (Some(p), Some(rec)) = (self.honest_pipe(), rec) {
                    self.inject(p, rec, true);
                }
            }
            // A record nobody sealed.
            60..72 => {
                if let Some(p) = self.honest_pipe() {
                    let len = self.rng.random_range(17..=200);
                    let mut rec = (len as u32).to_le_bytes().to_vec();
                    rec.extend((0..len).map(|_| self.rng.random::<u8>()));
                    self.inject(p, rec, true);
                }
            }
            // Bytes made up, or a piece of a recorded record, anywhere in a stream.
            72..82 => {
                if let Some(p) = self.honest_pipe() {
                    let bytes = match self.adv.records.choose(&mut self.rng) {
                        Some(rec) if self.rng.random_bool(0.5) => {
                            let cut = self.rng.random_range(1..=rec.len());
                            rec[..cut].to_vec()
                        }
                        _ => (0..self.rng.random_range(1..=40))
                            .map(|_| self.rng.random::<u8>())
                            .collect(),
                    };
                    self.inject(p, bytes, false);
                }
            }
            // Two chunks in flight swapped.
            82..92 => {
                if let Some(p) = self.honest_pipe() {
                    self.reorder(p);
                }
            }
            // One of its connections closed.
            _ => {
                let own: Vec<usize> = self.adv.own.keys().copied().collect();
                if let Some(&l) = own.choose(&mut self.rng) {
                    self.adversary_close(l);
                }
            }
        }
    }

    /// Swaps two neighbouring chunks queued on `pipe` (their times stay).
    pub(crate) fn reorder(&mut self, pipe: usize) {
        let q = &self.pipes[pipe].queue;
        let pairs: Vec<usize> = (1..q.len())
            .filter(|&k| match (&q[k - 1].1, &q[k].1) {
                (Segment::Bytes(a), Segment::Bytes(b)) => {
                    [&a[..], b].concat() != [&b[..], a].concat()
                }
                _ => false,
            })
            .collect();
        let Some(&k) = pairs.choose(&mut self.rng) else {
            return;
        };
        let q = &mut self.pipes[pipe].queue;
        let before: usize = q
            .iter()
            .take(k - 1)
            .map(|(_, s)| match s {
                Segment::Bytes(b) => b.len(),
                _ => 0,
            })
            .sum();
        let a = std::mem::replace(&mut q[k - 1].1, Segment::Connected);
        let b = std::mem::replace(&mut q[k].1, a);
        q[k - 1].1 = b;
        let tap = &mut self.pipes[pipe].tap;
        let from = tap.delivered + before as u64;
        tap.taint(from, None);
        tracing::debug!(target: "sim", t = self.now.as_millis(), pipe, from, "adversary reorders");
    }

    /// Ends the adversary: its connections are reset, and it does nothing
    /// more. So are the connections whose stream it changed and that are
    /// still open, or whose changed bytes are still on the way (counted in
    /// `Counts::adversary_stalls`): a byte slipped in
    /// or a chunk moved mid-record shifts the stream, and the receiver reads
    /// a record length from the middle of a record (mostly under the record
    /// limit) and waits for that many bytes; every ping counts as traffic, so
    /// the keepalive timeout does not end it (see
    /// `a_byte_slipped_into_a_stream_does_not_keep_a_dead_connection_open`).
    pub fn stop_adversary(&mut self) {
        self.adv.active = false;
        let own: Vec<usize> = self.adv.own.keys().copied().collect();
        for l in own {
            self.adversary_close(l);
        }
        let changed: Vec<usize> = (0..self.links.len())
            .filter(|&l| {
                let link = &self.links[l];
                link.state == LinkState::Open
                    && link.open != [false, false]
                    && [2 * l, 2 * l + 1]
                        .iter()
                        .any(|&p| self.pipes[p].tap.tainted_from.is_some())
            })
            .collect();
        for l in changed {
            self.counts.adversary_stalls += 1;
            self.reset_link(l);
        }
    }

    /// Slips one byte into the stream from node `a` to node `b` (on every
    /// connection between them), as an adversary on the path.
    pub fn slip_byte(&mut self, a: usize, b: usize) {
        for l in self.links_of_pair(a, b) {
            let side = usize::from(self.links[l].ends[0].0 != a);
            self.inject(2 * l + side, vec![0x2a], false);
        }
    }
}
