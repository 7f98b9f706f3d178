//! Errors of [`Node::start`](crate::Node::start). Errors of the local API are
//! the core's [`ApiError`](groupmesh_core::ApiError), re-exported as [`Error`](crate::Error).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use groupmesh_core::{ConfigError, MAX_NODE_ID};

/// A node could not start. Nothing was left running.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The node id is empty or longer than 64 bytes.
    BadNodeId {
        /// Its length in bytes.
        len: usize,
    },
    /// The configuration breaks a rule of the core (secret length, timeouts, limits).
    Config(ConfigError),
    /// The send buffer limit is smaller than the largest frame.
    SendBufferTooSmall {
        /// The configured send buffer limit.
        send_buffer: usize,
        /// The configured maximum frame size.
        max_frame: usize,
    },
    /// A bind address could not be listened on.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The operating system's random number generator failed; the node
    /// needs it for unpredictable handshake nonces.
    Entropy(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::BadNodeId { len } => write!(
                f,
                "node id is {len} bytes; choose one of 1 to {MAX_NODE_ID} bytes of UTF-8"
            ),
            StartError::Config(e) => write!(f, "invalid configuration: {e}"),
            StartError::SendBufferTooSmall {
                send_buffer,
                max_frame,
            } => write!(
                f,
                "send buffer limit {send_buffer} is smaller than the largest frame \
                 ({max_frame} bytes); raise it to at least the frame size"
            ),
            StartError::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {addr}: the address is already in use; stop what \
                     holds it or choose another port (port 0 picks a free one)"
                )
            }
            StartError::Entropy(e) => write!(
                f,
                "the system random number generator failed ({e}); a node needs it \
                 for handshake nonces: check the OS entropy source"
            ),
            StartError::Bind { addr, source } => write!(
                f,
                "cannot listen on {addr}: {source}; check that the address belongs \
                 to this machine and that the port is allowed"
            ),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Bind { source, .. } | StartError::Entropy(source) => Some(source),
            _ => None,
        }
    }
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}
