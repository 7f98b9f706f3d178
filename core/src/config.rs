//! Node configuration: identity, secret, addresses, timeouts and limits.

use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::error::ConfigError;
use crate::ids::NodeId;
use crate::meta::MAX_MEMBER_OVERHEAD;
use crate::wire::MAX_ADDRS;

/// Everything a [`Node`](crate::Node) needs to start. Its `Debug` never
/// shows the secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// This node's id, unique in the mesh.
    pub node_id: NodeId,
    /// The shared secret every node of the mesh proves it knows, of any
    /// non-zero length. The handshake's key is derived from it (HKDF-SHA256
    /// with a domain label); it never travels.
    pub secret: Vec<u8>,
    /// Addresses peers can dial this node at (the driver's bound addresses).
    /// An unspecified IP (`0.0.0.0`, `::`) is replaced by peers with the IP
    /// they see this node at.
    pub listen_addrs: Vec<SocketAddr>,
    /// Addresses dialled at start and whenever no connection to the node behind
    /// them is up, with capped exponential backoff.
    pub seeds: Vec<SocketAddr>,
    /// Timeouts and intervals.
    pub timeouts: Timeouts,
    /// Limits on what peers may make this node hold.
    pub limits: Limits,
    /// A snapshot goes out to a new peer in chunks of about this many bytes
    /// of frames (at least one membership each), each made from the
    /// registrations as they are when it is made. Default
    /// [`DEFAULT_SNAPSHOT_CHUNK`] (64 KiB).
    pub snapshot_chunk: usize,
    /// Each chunk of a snapshot after the first waits until the driver
    /// reports the connection drained with
    /// [`Node::handle_drained`](crate::Node::handle_drained). Set it only if
    /// the driver does (the bundled one does). Default `false`: the next
    /// chunk comes with the next [`Node::poll_transmit`](crate::Node::poll_transmit)
    /// after the last was taken, so a driver that writes each transmit before
    /// it polls the next holds one chunk at a time.
    pub paced_snapshots: bool,
    /// Messages each sender (each peer, and this node's own senders
    /// together) may have delivered to one of our ports and not yet read:
    /// its credit (see [`Node::message_read`](crate::Node::message_read)).
    /// A sender out of credit waits; a peer that sends beyond it is closed
    /// with [`Limit::PortCredit`](crate::Limit::PortCredit). Default
    /// [`DEFAULT_PORT_CREDIT`].
    pub port_credit: u32,
}

/// Default [`Config::port_credit`]: 256 messages.
pub const DEFAULT_PORT_CREDIT: u32 = 256;

/// Default [`Config::snapshot_chunk`]: 64 KiB.
pub const DEFAULT_SNAPSHOT_CHUNK: usize = 64 * 1024;

impl Config {
    /// A configuration with default timeouts and limits, no addresses and no seeds.
    pub fn new(node_id: NodeId, secret: &[u8]) -> Self {
        Config {
            node_id,
            secret: secret.to_vec(),
            listen_addrs: Vec::new(),
            seeds: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            snapshot_chunk: DEFAULT_SNAPSHOT_CHUNK,
            paced_snapshots: false,
            port_credit: DEFAULT_PORT_CREDIT,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() {
            return Err(ConfigError::BadSecret {
                len: self.secret.len(),
            });
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.limits.max_frame) {
            return Err(ConfigError::BadMaxFrame {
                max_frame: self.limits.max_frame,
            });
        }
        let max = self.limits.max_frame - MAX_MEMBER_OVERHEAD;
        if self.limits.max_meta > max {
            return Err(ConfigError::BadMaxMeta {
                max_meta: self.limits.max_meta,
                max,
            });
        }
        let t = &self.timeouts;
        if t.ping_interval.is_zero() || t.keepalive_timeout <= t.ping_interval {
            return Err(ConfigError::BadKeepalive);
        }
        if self.listen_addrs.len() > MAX_ADDRS {
            return Err(ConfigError::TooManyAddresses {
                count: self.listen_addrs.len(),
                max: MAX_ADDRS,
            });
        }
        let l = &self.limits;
        for (name, v) in [
            ("max_groups_per_peer", l.max_groups_per_peer),
            ("max_members_per_peer", l.max_members_per_peer),
            ("max_meta_bytes_per_peer", l.max_meta_bytes_per_peer),
            ("max_known_nodes", l.max_known_nodes),
            ("max_connections", l.max_connections),
            ("max_unauthenticated", l.max_unauthenticated),
            ("max_dials", l.max_dials),
            ("snapshot_chunk", self.snapshot_chunk),
            ("port_credit", self.port_credit as usize),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroLimit { name });
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("node_id", &self.node_id)
            .field(
                "secret",
                &format_args!("<redacted, {} bytes>", self.secret.len()),
            )
            .field("listen_addrs", &self.listen_addrs)
            .field("seeds", &self.seeds)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .field("snapshot_chunk", &self.snapshot_chunk)
            .field("paced_snapshots", &self.paced_snapshots)
            .field("port_credit", &self.port_credit)
            .finish()
    }
}

/// Timeouts and intervals. Defaults are in the seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// A connection that has sent nothing for this long sends a ping. Default 1 s.
    pub ping_interval: Duration,
    /// A connection that has received nothing for this long is closed. Default 3 s.
    pub keepalive_timeout: Duration,
    /// From dial (or accept) to authenticated, at most this long. Default 5 s.
    pub handshake_timeout: Duration,
    /// First re-dial delay; doubles on each failure. Default 100 ms.
    pub backoff_min: Duration,
    /// Re-dial delays never exceed this. Default 5 s.
    pub backoff_max: Duration,
    /// A node that cannot be reached and that no peer has mentioned for this
    /// long is forgotten. Default 60 s.
    pub forget_after: Duration,
    /// How long a node that learned of a peer from gossip waits before dialling
    /// it, when that peer has the smaller id and is expected to dial first. Default 500 ms.
    pub gossip_dial_delay: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            ping_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            forget_after: Duration::from_secs(60),
            gossip_dial_delay: Duration::from_millis(500),
        }
    }
}

/// Limits on what peers may make this node hold. Past a limit, the offending
/// connection is closed with [`CloseReason::LimitExceeded`](crate::CloseReason::LimitExceeded);
/// the node and its other peers are untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame accepted or sent, in bytes, checked before decoding. Default 64 KiB.
    pub max_frame: usize,
    /// Most groups one peer may announce members in. Default 10 000.
    pub max_groups_per_peer: usize,
    /// Most (group, port) memberships one peer may announce. Default 1 000 000.
    pub max_members_per_peer: usize,
    /// Most bytes of metadata one member may carry, ours when registering
    /// and a peer's when it announces one. `max_meta` plus
    /// [`MAX_MEMBER_OVERHEAD`](crate::MAX_MEMBER_OVERHEAD) must fit
    /// `max_frame`. Default 1 KiB.
    pub max_meta: usize,
    /// Most bytes of metadata one peer may announce over all its members.
    /// Default 64 MiB.
    pub max_meta_bytes_per_peer: usize,
    /// Most nodes this node keeps track of. Default 1024.
    pub max_known_nodes: usize,
    /// Most open connections, authenticated or not. Default 1024.
    pub max_connections: usize,
    /// Most inbound connections still in their handshake. Past it a new one
    /// takes the slot of the oldest that has not greeted under the key, or
    /// has run a quarter of `handshake_timeout`; else it is refused (see
    /// [`Node::handle_inbound`](crate::Node::handle_inbound)). Default 64.
    pub max_unauthenticated: usize,
    /// Most of this node's own dials in their handshake at a time (connecting
    /// included); past it, further dials wait. Default 32.
    pub max_dials: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 64 * 1024,
            max_groups_per_peer: 10_000,
            max_members_per_peer: 1_000_000,
            max_meta: 1024,
            max_meta_bytes_per_peer: 64 << 20,
            max_known_nodes: 1024,
            max_connections: 1024,
            max_unauthenticated: 64,
            max_dials: 32,
        }
    }
}
