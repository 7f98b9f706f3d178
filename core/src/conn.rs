//! One connection's state: where it is in its life, its secure channel, its
//! clocks, and the frames waiting to be sealed and sent on it.

use alloc::vec::Vec;
use core::net::SocketAddr;

use crate::channel::Channel;
use crate::config::Timeouts;
use crate::event::Direction;
use crate::event::WireReason;
use crate::handshake::Psk;
use crate::ids::{ConnId, NodeId};
use crate::mesh::DialFor;
use crate::remote::RemoteView;
use crate::snapshot::Outgoing;
use crate::time::Instant;
use crate::wire::Frame;

#[derive(Debug)]
pub(crate) enum Phase {
    /// Waiting for the driver to connect.
    Dialing,
    /// The handshake is under way.
    Handshake,
    /// Authenticated. `incoming` is what its stream of the peer's
    /// memberships has built.
    Active {
        node: NodeId,
        incarnation: u64,
        /// The peer's epoch when it authenticated.
        epoch: u64,
        incoming: Incoming,
    },
}

/// What one authenticated connection's stream (the peer's snapshot, then its
/// changes, in order) has told us. Each connection's stream is whole in
/// itself, so the peer table can follow any one of them without losing a
/// change; it follows exactly one, the peer's `conn`.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The snapshot is still arriving; changes apply to it.
    Syncing(RemoteView),
    /// Complete, while the peer table follows another connection: kept
    /// whole (changes apply to it) so that this one can take over.
    Standby(RemoteView),
    /// The peer table's view is this stream's: changes apply there.
    Live,
    /// Was live, and the peer table moved to a newer connection before this
    /// one closed: its changes are no longer kept, so it never takes over.
    Stale,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) dir: Direction,
    pub(crate) addr: SocketAddr,
    pub(crate) dial_for: DialFor,
    pub(crate) phase: Phase,
    pub(crate) channel: Channel,
    /// Frames queued, not yet sealed.
    pub(crate) out: Vec<u8>,
    /// In the node's list of connections with output.
    pub(crate) dirty: bool,
    pub(crate) opened: Instant,
    pub(crate) last_recv: Instant,
    /// Kept past its keepalive timeout until then, once, because this node
    /// itself woke up late (see `Node::handle_timeout`); cleared by any record.
    pub(crate) spared: Option<Instant>,
    pub(crate) last_send: Instant,
    /// Largest frame the peer accepts (ours until its greeting says).
    pub(crate) peer_max_frame: usize,
    /// The older connection to the same peer this one replaces, closed once
    /// the peer shows it has authenticated this one (its first frame here).
    pub(crate) supersedes: Option<ConnId>,
    /// Our snapshot, while it is going out on this connection.
    pub(crate) snapshot: Option<Outgoing>,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: ConnId,
        dir: Direction,
        addr: SocketAddr,
        dial_for: DialFor,
        now: Instant,
        max_frame: usize,
        psk: &Psk,
        seed: [u8; 32],
    ) -> Self {
        let initiator = dir == Direction::Outbound;
        Conn {
            id,
            dir,
            addr,
            dial_for,
            phase: Phase::Dialing,
            channel: Channel::new(initiator, psk, max_frame, seed),
            out: Vec::new(),
            dirty: false,
            opened: now,
            last_recv: now,
            spared: None,
            last_send: now,
            peer_max_frame: max_frame,
            supersedes: None,
            snapshot: None,
        }
    }

    pub(crate) fn send(&mut self, frame: &Frame, now: Instant) {
        frame.encode(&mut self.out);
        self.last_send = now;
    }

    pub(crate) fn is_active(&self) -> bool {
        matches!(self.phase, Phase::Active { .. })
    }

    /// A record from the peer was accepted: it is alive.
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_recv = now;
        self.spared = None;
    }

    /// Whether the keepalive timeout closes this connection at `now`. When
    /// this node woke up late (`stalled`: it was not running, so it could
    /// not read what its peers sent meanwhile), a connection past its
    /// timeout is spared once, for a ping interval, in which the bytes
    /// waiting in its socket are read; a peer that is really gone is closed
    /// then. Sparing only once keeps a driver that is always late from
    /// keeping dead peers forever.
    pub(crate) fn keepalive_expired(&mut self, now: Instant, stalled: bool, t: &Timeouts) -> bool {
        if now.saturating_since(self.last_recv) < t.keepalive_timeout {
            return false;
        }
        match self.spared {
            None if stalled => {
                self.spared = Some(now + t.ping_interval);
                false
            }
            Some(until) => now >= until,
            None => true,
        }
    }

    /// Inbound, in its handshake: the peer's greeting decrypted under the key
    /// (a node of the mesh wrote it, maybe long ago on another connection).
    pub(crate) fn greeted(&self) -> bool {
        self.channel.theirs().is_some()
    }

    /// A handshake keeps its slot against newcomers while it is greeted and
    /// has run for less than a quarter of the handshake timeout: a burst of
    /// honest dials then cannot take each other's slots in turn, and a
    /// socket that never greeted (or a replayed greeting gone quiet) gives
    /// its slot up.
    pub(crate) fn keeps_handshake_slot(&self, now: Instant, t: &Timeouts) -> bool {
        self.greeted() && now.saturating_since(self.opened) < t.handshake_timeout / 4
    }

    /// When this connection must next be looked at: its handshake timeout,
    /// or once authenticated its keepalive timeout or ping, whichever is
    /// first. Receiving and sending only move it later.
    pub(crate) fn deadline(&self, t: &Timeouts) -> Instant {
        if self.is_active() {
            let silent = self.spared.unwrap_or(self.last_recv + t.keepalive_timeout);
            silent.min(self.last_send + t.ping_interval)
        } else {
            self.opened + t.handshake_timeout
        }
    }

    /// Has bytes to hand to the driver.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty() || self.channel.unsent() > 0
    }

    /// Bytes queued, sealed or not.
    pub(crate) fn unsent(&self) -> usize {
        self.out.len() + self.channel.unsent()
    }

    /// Everything to write, in order: handshake records, then the queued
    /// frames, sealed.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        self.channel.seal(&mut self.out);
        self.channel.take_wire()
    }

    /// Tells the peer why we close, the way the channel's state allows.
    pub(crate) fn say_close(&mut self, reason: WireReason) {
        self.channel.refuse(reason, &mut self.out);
    }

    /// The incarnation of `node` this connection is authenticated to.
    pub(crate) fn runs(&self, node: &NodeId) -> Option<u64> {
        match &self.phase {
            Phase::Active {
                node: n,
                incarnation,
                ..
            } if n == node => Some(*incarnation),
            _ => None,
        }
    }

    /// Once authenticated: the peer, its run, and what this connection's
    /// stream of its memberships has built.
    pub(crate) fn stream_mut(&mut self) -> Option<(&NodeId, u64, &mut Incoming)> {
        match &mut self.phase {
            Phase::Active {
                node,
                incarnation,
                incoming,
                ..
            } => Some((node, *incarnation, incoming)),
            _ => None,
        }
    }

    /// The authenticated peer, or the one its greeting names.
    pub(crate) fn peer(&self) -> Option<NodeId> {
        match &self.phase {
            Phase::Active { node, .. } => Some(node.clone()),
            _ => NodeId::new(&self.channel.theirs()?.node).ok(),
        }
    }
}
