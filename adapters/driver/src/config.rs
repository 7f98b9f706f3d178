//! [`NodeConfig`]: what a node is started with.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use groupmesh_core::{Limits, Timeouts};

/// Default per-connection send buffer limit: 8 MiB.
pub const DEFAULT_SEND_BUFFER: usize = 8 * 1024 * 1024;
/// Default number of notices an [`Events`](crate::Events) stream holds for a
/// slow reader before it drops the oldest.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;
/// Default number of messages a [`Port`](crate::Port)'s mailbox holds unread
/// from each sending node before that node's senders wait (see
/// [`NodeConfig::mailbox`]).
pub const DEFAULT_MAILBOX: usize = 256;

/// Everything [`Node::start`](crate::Node::start) needs.
///
/// ```
/// use groupmesh_driver::NodeConfig;
///
/// let mut cfg = NodeConfig::new("worker-1", b"32 random bytes, shared by all nodes");
/// cfg.bind.push("127.0.0.1:0".parse().unwrap());
/// cfg.seeds.push("127.0.0.1:4369".parse().unwrap());
/// ```
///
/// Its `Debug` never shows the secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's id: UTF-8, 1..=64 bytes, unique in the mesh.
    pub node_id: String,
    /// The shared secret every node of the mesh proves it knows: any non-empty
    /// bytes (32 random bytes recommended). The handshake key is derived from
    /// it; it never travels.
    pub secret: Vec<u8>,
    /// Addresses to listen on; port 0 picks a free port. The bound addresses
    /// ([`Node::local_addrs`](crate::Node::local_addrs)) are advertised to
    /// peers. Empty: the node only dials out.
    pub bind: Vec<SocketAddr>,
    /// Addresses of nodes to join through, dialled until a connection is up.
    pub seeds: Vec<SocketAddr>,
    /// Keepalive, handshake, backoff and forgetting times.
    pub timeouts: Timeouts,
    /// Limits on what peers may make this node hold.
    pub limits: Limits,
    /// Most bytes queued for one connection and not yet written to its socket.
    /// Past it the peer is too slow: its connection is closed with
    /// [`CloseReason::LimitExceeded`](crate::CloseReason::LimitExceeded)`(`[`Limit::SendBuffer`](crate::Limit::SendBuffer)`)`.
    /// Must be at least `limits.max_frame`, and should exceed the largest burst
    /// this node sends at once (the changes made between two drains: a port
    /// closed ends all its registrations at once). The snapshot of all its
    /// registrations, whatever its size, never takes more than about half of it: it
    /// streams as the connection drains, in chunks of a quarter of it (64 KiB
    /// at most). Default [`DEFAULT_SEND_BUFFER`].
    ///
    /// Messages ([`Node::send`](crate::Node::send)) never fill it past half:
    /// a sender whose message would take a connection's unwritten bytes
    /// past half of it waits until the connection drained (unless nothing
    /// is queued at all), so a message flood never gets the connection
    /// closed and group traffic keeps flowing.
    pub send_buffer: usize,
    /// Notices an [`Events`](crate::Events) stream keeps for a slow reader;
    /// past it the oldest are dropped and counted in
    /// [`NodeEvent::Lagged`](crate::NodeEvent::Lagged). Default [`DEFAULT_EVENT_BUFFER`].
    pub event_buffer: usize,
    /// Messages a [`Port`](crate::Port)'s mailbox holds unread from each
    /// sending node (this one included): its credit, the core's
    /// `Config::port_credit`. Past it, that node's senders wait until the
    /// reader made room (flow control per port: other ports, group changes
    /// and pings on the same connection go on), and a peer that sends
    /// beyond it is closed with
    /// [`CloseReason::LimitExceeded`](crate::CloseReason::LimitExceeded)`(`[`Limit::PortCredit`](crate::Limit::PortCredit)`)`.
    /// At least 1, at most `u32::MAX`. Default [`DEFAULT_MAILBOX`].
    pub mailbox: usize,
    /// How long a closing connection may take to write its last bytes and see
    /// the peer close, and so how long [`Node::shutdown`](crate::Node::shutdown)
    /// waits at most. Default 2 s.
    pub linger: Duration,
}

impl fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeConfig")
            .field("node_id", &self.node_id)
            .field(
                "secret",
                &format_args!("<redacted, {} bytes>", self.secret.len()),
            )
            .field("bind", &self.bind)
            .field("seeds", &self.seeds)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .field("send_buffer", &self.send_buffer)
            .field("event_buffer", &self.event_buffer)
            .field("mailbox", &self.mailbox)
            .field("linger", &self.linger)
            .finish()
    }
}

impl NodeConfig {
    /// A configuration with default timeouts and limits, no bind address and no seeds.
    pub fn new(node_id: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        NodeConfig {
            node_id: node_id.into(),
            secret: secret.as_ref().to_vec(),
            bind: Vec::new(),
            seeds: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            send_buffer: DEFAULT_SEND_BUFFER,
            event_buffer: DEFAULT_EVENT_BUFFER,
            mailbox: DEFAULT_MAILBOX,
            linger: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NodeConfig;

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = NodeConfig::new("a", b"hunter2-very-secret");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }
}
