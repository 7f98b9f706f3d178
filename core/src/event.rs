//! What the core asks of its driver (transmits, actions) and tells its user (events).

use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ids::{ConnId, MonitorId, NodeId, PortId, PortMonitorId};
use crate::meta::Meta;

/// Bytes to write, in order, to a connection. From [`Node::poll_transmit`](crate::Node::poll_transmit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection to write to.
    pub conn: ConnId,
    /// The bytes, already framed.
    pub data: Vec<u8>,
}

/// Something the driver must do. From [`Node::poll_action`](crate::Node::poll_action).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Open a TCP connection to `addr`. Report the outcome with
    /// [`Node::handle_dialed`](crate::Node::handle_dialed) or
    /// [`Node::handle_dial_failed`](crate::Node::handle_dial_failed).
    Dial {
        /// The id the core gave this connection.
        conn: ConnId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Write what was transmitted for `conn`, then close it. The core has
    /// already forgotten it: do not report its closing. Asked for every
    /// connection the core ends itself (protocol errors, limits, timeouts,
    /// a peer's close frame, send overflow, shutdown); not for those the
    /// driver reported closed or failed.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

/// A limit that a peer went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum Limit {
    /// A frame longer than the maximum frame size.
    FrameSize,
    /// More groups than `max_groups_per_peer`.
    Groups,
    /// More memberships than `max_members_per_peer`.
    Members,
    /// More nodes than `max_known_nodes`.
    KnownNodes,
    /// More connections than `max_connections` / `max_unauthenticated`.
    Connections,
    /// The driver's per-connection send buffer filled up (a slow peer).
    SendBuffer,
    /// One member's metadata larger than `max_meta`.
    MetaSize,
    /// More metadata bytes than `max_meta_bytes_per_peer`.
    MetaBytes,
    /// Messages to one port beyond the credit granted
    /// ([`Config::port_credit`](crate::Config::port_credit)), or credit
    /// returned beyond what was used.
    PortCredit,
}

/// Why a connection ended. Sent to the peer in a close frame where it can be,
/// and reported to the user in [`Event::ConnectionClosed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum CloseReason {
    /// The socket was closed or reset without a reason (the driver reported it).
    Disconnected,
    /// The peer closed the connection and said why.
    Remote(RemoteReason),
    /// The dial did not connect.
    DialFailed,
    /// Bytes that do not decode as a frame.
    Malformed,
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// Ours.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The peer could not prove it knows the shared secret.
    AuthenticationFailed,
    /// We dialled ourselves.
    SelfConnection,
    /// The peer claims our own node id with another incarnation.
    DuplicateNodeId,
    /// A sealed record did not open: altered, injected, replayed, reordered
    /// or cut short on the way. The channel cannot be trusted past it.
    Decrypt,
    /// A frame that is not allowed in the connection's state (e.g. before authentication).
    UnexpectedFrame,
    /// The handshake did not finish in time.
    HandshakeTimeout,
    /// Nothing was received for longer than the keepalive timeout.
    KeepaliveTimeout,
    /// Another connection to the same node won (one connection per pair).
    Superseded,
    /// The peer restarted: a new incarnation replaced this connection.
    Restarted,
    /// A connection from an older incarnation of a node whose newer one is
    /// connected: the greater incarnation is the newer, and a stale one never
    /// replaces it.
    StaleIncarnation,
    /// The peer went past a limit.
    LimitExceeded(Limit),
    /// This node or the peer is shutting down.
    Shutdown,
}

/// The reasons a peer can give in its close frame.
pub type RemoteReason = WireReason;

/// A close reason as it travels on the wire (no nesting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum WireReason {
    /// See [`CloseReason::Malformed`].
    Malformed,
    /// See [`CloseReason::VersionMismatch`].
    VersionMismatch,
    /// See [`CloseReason::AuthenticationFailed`].
    AuthenticationFailed,
    /// See [`CloseReason::SelfConnection`].
    SelfConnection,
    /// See [`CloseReason::DuplicateNodeId`].
    DuplicateNodeId,
    /// See [`CloseReason::Decrypt`].
    Decrypt,
    /// See [`CloseReason::UnexpectedFrame`].
    UnexpectedFrame,
    /// See [`CloseReason::HandshakeTimeout`].
    HandshakeTimeout,
    /// See [`CloseReason::KeepaliveTimeout`].
    KeepaliveTimeout,
    /// See [`CloseReason::Superseded`].
    Superseded,
    /// See [`CloseReason::Restarted`].
    Restarted,
    /// See [`CloseReason::StaleIncarnation`].
    StaleIncarnation,
    /// See [`CloseReason::LimitExceeded`].
    LimitExceeded(Limit),
    /// See [`CloseReason::Shutdown`].
    Shutdown,
    /// Anything else.
    Other,
}

impl CloseReason {
    /// What to tell the peer, if anything.
    pub(crate) fn to_wire(self) -> Option<WireReason> {
        Some(match self {
            CloseReason::Disconnected | CloseReason::DialFailed | CloseReason::Remote(_) => {
                return None
            }
            CloseReason::Malformed => WireReason::Malformed,
            CloseReason::VersionMismatch { .. } => WireReason::VersionMismatch,
            CloseReason::AuthenticationFailed => WireReason::AuthenticationFailed,
            CloseReason::SelfConnection => WireReason::SelfConnection,
            CloseReason::DuplicateNodeId => WireReason::DuplicateNodeId,
            CloseReason::Decrypt => WireReason::Decrypt,
            CloseReason::UnexpectedFrame => WireReason::UnexpectedFrame,
            CloseReason::HandshakeTimeout => WireReason::HandshakeTimeout,
            CloseReason::KeepaliveTimeout => WireReason::KeepaliveTimeout,
            CloseReason::Superseded => WireReason::Superseded,
            CloseReason::Restarted => WireReason::Restarted,
            CloseReason::StaleIncarnation => WireReason::StaleIncarnation,
            CloseReason::LimitExceeded(l) => WireReason::LimitExceeded(l),
            CloseReason::Shutdown => WireReason::Shutdown,
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::FrameSize => "frame size",
            Limit::Groups => "groups per peer",
            Limit::Members => "members per peer",
            Limit::KnownNodes => "known nodes",
            Limit::Connections => "connections",
            Limit::SendBuffer => "send buffer",
            Limit::MetaSize => "metadata size",
            Limit::MetaBytes => "metadata bytes per peer",
            Limit::PortCredit => "port credit",
        })
    }
}

impl fmt::Display for WireReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireReason::Malformed => f.write_str("malformed frame"),
            WireReason::VersionMismatch => f.write_str("protocol version mismatch"),
            WireReason::AuthenticationFailed => {
                f.write_str("authentication failed (wrong secret?)")
            }
            WireReason::SelfConnection => f.write_str("connection to self"),
            WireReason::DuplicateNodeId => f.write_str("duplicate node id"),
            WireReason::Decrypt => {
                f.write_str("a sealed record did not open (altered, replayed or injected)")
            }
            WireReason::UnexpectedFrame => f.write_str("unexpected frame"),
            WireReason::HandshakeTimeout => f.write_str("handshake timeout"),
            WireReason::KeepaliveTimeout => f.write_str("keepalive timeout"),
            WireReason::Superseded => f.write_str("superseded by another connection"),
            WireReason::Restarted => f.write_str("node restarted"),
            WireReason::StaleIncarnation => {
                f.write_str("an older incarnation of a node whose newer one is connected")
            }
            WireReason::LimitExceeded(l) => write!(f, "limit exceeded: {l}"),
            WireReason::Shutdown => f.write_str("shutdown"),
            WireReason::Other => f.write_str("other"),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Disconnected => f.write_str("disconnected"),
            CloseReason::Remote(r) => write!(f, "peer closed: {r}"),
            CloseReason::DialFailed => f.write_str("dial failed"),
            CloseReason::VersionMismatch { ours, theirs } => {
                write!(
                    f,
                    "protocol version mismatch: we speak {ours}, peer speaks {theirs}"
                )
            }
            other => match other.to_wire() {
                Some(w) => fmt::Display::fmt(&w, f),
                None => f.write_str("closed"),
            },
        }
    }
}

/// A change of a monitored group: `(members, added, removed)`, and since
/// protocol version 3 the metadata and the reasons that go with it.
///
/// The first event of a monitor is `(members, members, [])` and comes only when
/// the group is non-empty. Later events never have `added`, `removed` and
/// `updated` all empty; a member whose metadata alone changed is in
/// `updated` only. `added ⊆ members`, `updated ⊆ members`, `removed ∩
/// members = ∅`, `added ∩ updated = ∅`. All are sorted. Replaying every
/// event (add `added`, remove `removed`, set the metadata in `meta`)
/// reproduces `members` and each member's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDelta {
    /// The monitor this event is for.
    pub monitor: MonitorId,
    /// The group.
    pub group: alloc::sync::Arc<str>,
    /// The group's members after the change.
    pub members: Vec<PortId>,
    /// Ports that joined.
    pub added: Vec<PortId>,
    /// Ports that left.
    pub removed: Vec<PortId>,
    /// Why each port of `removed` left, in the same order.
    pub reasons: Vec<Removal>,
    /// Members whose metadata changed (and that did not join in this event).
    pub updated: Vec<PortId>,
    /// The metadata of every port in `added` and `updated`, sorted by port
    /// (empty bytes: none).
    pub meta: Vec<(PortId, Meta)>,
}

impl GroupDelta {
    /// The metadata this event gives `port` (one of `added` or `updated`).
    pub fn meta_of(&self, port: &PortId) -> Option<&Meta> {
        crate::meta::meta_in(&self.meta, port)
    }
}

/// Why a port left a group, in [`GroupDelta::reasons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Removal {
    /// Its last registration in the group ended.
    Unregistered,
    /// Its port was closed.
    PortClosed,
    /// The connection to its node was lost, for this reason.
    NodeLost(CloseReason),
    /// Its node restarted: the port belonged to an earlier incarnation.
    NodeRestarted,
    /// It left while this node was taking its node's memberships over from
    /// a new connection: that connection's snapshot no longer lists it, and
    /// does not say whether it was unregistered or closed.
    Resynced,
}

impl From<crate::wire::LeaveReason> for Removal {
    fn from(why: crate::wire::LeaveReason) -> Self {
        match why {
            crate::wire::LeaveReason::Unregistered => Removal::Unregistered,
            crate::wire::LeaveReason::PortClosed => Removal::PortClosed,
        }
    }
}

impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removal::Unregistered => f.write_str("unregistered"),
            Removal::PortClosed => f.write_str("port closed"),
            Removal::NodeLost(r) => write!(f, "node lost: {r}"),
            Removal::NodeRestarted => f.write_str("node restarted"),
            Removal::Resynced => f.write_str("left while resyncing"),
        }
    }
}

/// What happened, for the user. From [`Node::poll_event`](crate::Node::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A monitored group changed.
    Group(GroupDelta),
    /// A node is connected and authenticated and its memberships are known.
    NodeUp {
        /// The node.
        node: NodeId,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A node is no longer connected; its members have left every group.
    NodeDown {
        /// The node.
        node: NodeId,
        /// The incarnation that went away.
        incarnation: u64,
        /// Why its connection ended.
        reason: CloseReason,
    },
    /// A connection ended (or was refused during its handshake).
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// The remote address (the dialled one, or the one accepted from).
        addr: SocketAddr,
        /// The peer, once its greeting was read.
        node: Option<NodeId>,
        /// Whether it had authenticated.
        authenticated: bool,
        /// Why.
        reason: CloseReason,
    },
    /// An inbound connection was turned away because of a connection limit.
    InboundRefused {
        /// Where it came from.
        addr: SocketAddr,
    },
    /// A message arrived for a local port.
    Message {
        /// The local port it is for.
        to: PortId,
        /// The sender's port, if it gave one.
        from: Option<PortId>,
        /// The bytes.
        payload: Vec<u8>,
        /// The connection it arrived on; `None` when sent from this node.
        /// The driver reports it read with
        /// [`Node::message_read`](crate::Node::message_read) once its user
        /// took it, which returns the sender's credit.
        conn: Option<ConnId>,
    },
    /// A monitored port is gone. Each port monitor gets exactly one, then ends.
    PortDown {
        /// The monitor.
        monitor: PortMonitorId,
        /// The port.
        port: PortId,
        /// Why.
        reason: PortDownReason,
    },
    /// A [`Node::send`](crate::Node::send) to `port` answered
    /// [`SendOutcome::Wait`](crate::SendOutcome::Wait) earlier: send it
    /// again now (credit came back, or the port or its node is gone and
    /// sending tells which).
    SendReady {
        /// The destination port.
        port: PortId,
    },
}

/// Why a monitored port is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortDownReason {
    /// Its owner closed it (or it did not exist when the monitor started).
    Closed,
    /// The connection to its node was lost.
    NodeDown(CloseReason),
    /// Its node restarted: the port belonged to an earlier incarnation.
    Restarted,
    /// Its node was not connected when the monitor started.
    Unreachable,
}

impl fmt::Display for PortDownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortDownReason::Closed => f.write_str("port closed"),
            PortDownReason::NodeDown(r) => write!(f, "node lost: {r}"),
            PortDownReason::Restarted => f.write_str("node restarted"),
            PortDownReason::Unreachable => f.write_str("node not connected"),
        }
    }
}
