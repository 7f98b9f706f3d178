//! Errors of the local API and of configuration. Peer misbehaviour is never an
//! error here: it closes that peer's connection with a [`CloseReason`](crate::CloseReason).

use core::fmt;

/// A local API call was refused. Each variant says whether state changed: none does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// The group name is empty or longer than 255 bytes. Nothing changed.
    BadGroupName {
        /// Length of the rejected name, in bytes.
        len: usize,
    },
    /// The node id is empty or longer than 64 bytes. Nothing changed.
    BadNodeId {
        /// Length of the rejected id, in bytes.
        len: usize,
    },
    /// The port is not a live port of this node (remote, closed, or of an
    /// earlier incarnation): only a node's own ports can be registered. Nothing changed.
    NotLocalPort,
    /// The registration was already ended (or never existed). Nothing changed.
    UnknownRegistration,
    /// The monitor was already ended (or never existed). Nothing changed.
    UnknownMonitor,
    /// This node has been shut down. Nothing changed.
    ShutDown,
    /// The message does not fit one frame. Nothing was sent.
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload the connection takes.
        max: usize,
    },
    /// The port monitor was already ended (or never existed). Nothing changed.
    UnknownPortMonitor,
    /// The metadata is larger than [`Limits::max_meta`](crate::Limits::max_meta).
    /// Nothing changed.
    MetaTooLarge {
        /// The metadata's length.
        len: usize,
        /// The most a member may carry.
        max: usize,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadGroupName { len } => write!(
                f,
                "group name is {len} bytes; it must be 1 to {} bytes of UTF-8",
                crate::MAX_GROUP_NAME
            ),
            ApiError::BadNodeId { len } => write!(
                f,
                "node id is {len} bytes; it must be 1 to {} bytes of UTF-8",
                crate::MAX_NODE_ID
            ),
            ApiError::NotLocalPort => f.write_str(
                "only a live port of this node can be registered; open it on this node first",
            ),
            ApiError::UnknownRegistration => f.write_str("that registration has already ended"),
            ApiError::UnknownMonitor => f.write_str("that monitor has already ended"),
            ApiError::UnknownPortMonitor => f.write_str("that port monitor has already ended"),
            ApiError::PayloadTooLarge { len, max } => write!(
                f,
                "a {len}-byte message does not fit one frame (at most {max} bytes); \
                 split it or raise limits.max_frame on every node"
            ),
            ApiError::MetaTooLarge { len, max } => write!(
                f,
                "{len} bytes of metadata is more than the {max} a member may carry; \
                 keep it small or raise limits.max_meta on every node"
            ),
            ApiError::ShutDown => {
                f.write_str("the node has been shut down; start a new node to rejoin the mesh")
            }
        }
    }
}

impl core::error::Error for ApiError {}

/// A configuration was refused by [`Node::new`](crate::Node::new).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The shared secret is empty or longer than 1024 bytes.
    BadSecret {
        /// Length of the rejected secret, in bytes.
        len: usize,
    },
    /// The maximum frame size is outside 1 KiB..=16 MiB.
    BadMaxFrame {
        /// The rejected size.
        max_frame: usize,
    },
    /// The keepalive timeout must be longer than the ping interval, and both non-zero.
    BadKeepalive,
    /// More listen addresses than a hello can carry.
    TooManyAddresses {
        /// How many were given.
        count: usize,
        /// The most a hello carries.
        max: usize,
    },
    /// `max_meta` plus a member's overhead does not fit `max_frame`.
    BadMaxMeta {
        /// The rejected `max_meta`.
        max_meta: usize,
        /// The most `max_frame` allows.
        max: usize,
    },
    /// A limit (or `snapshot_chunk`) is zero.
    ZeroLimit {
        /// Which limit.
        name: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadSecret { len } => write!(
                f,
                "the shared secret is {len} bytes; it must not be empty (32 random bytes recommended)"
            ),
            ConfigError::BadMaxFrame { max_frame } => write!(
                f,
                "max_frame {max_frame} is out of range; use 1024 to 16777216 bytes"
            ),
            ConfigError::BadKeepalive => f.write_str(
                "keepalive timeout must be longer than the ping interval, and both above zero",
            ),
            ConfigError::TooManyAddresses { count, max } => {
                write!(f, "{count} listen addresses given; a node advertises at most {max}")
            }
            ConfigError::BadMaxMeta { max_meta, max } => write!(
                f,
                "max_meta {max_meta} does not fit one frame with its group entry; \
                 use at most {max} bytes or raise max_frame"
            ),
            ConfigError::ZeroLimit { name } => write!(f, "limit {name} must be above zero"),
        }
    }
}

impl core::error::Error for ConfigError {}
