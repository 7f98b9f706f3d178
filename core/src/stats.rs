//! A cheap snapshot of what a node holds and has done.

use alloc::vec::Vec;

use crate::event::CloseReason;

/// Counters and sizes from [`Node::stats`](crate::Node::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Open connections, in any phase.
    pub connections: usize,
    /// Authenticated connections.
    pub authenticated: usize,
    /// Nodes known (connected or not).
    pub known_nodes: usize,
    /// Groups with members.
    pub groups: usize,
    /// (group, port) memberships in the view, local and remote.
    pub members: usize,
    /// Live monitors.
    pub monitors: usize,
    /// Live local ports.
    pub local_ports: usize,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes handed to the driver to send.
    pub bytes_out: u64,
    /// Inbound connections turned away by a connection limit.
    pub inbound_refused: u64,
    /// Messages handed to a connection or delivered locally.
    pub messages_sent: u64,
    /// Messages received for a live local port.
    pub messages_received: u64,
    /// Messages dropped: for a port that does not exist, or a node not connected.
    pub messages_dropped: u64,
    /// Live port monitors.
    pub port_monitors: usize,
    /// Connections closed, by reason.
    pub closed: Vec<(CloseReason, u64)>,
    /// Connections our snapshot is still going out on.
    pub snapshots_sending: usize,
    /// The largest [`Transmit`](crate::Transmit) handed out, in bytes: a
    /// snapshot goes out in chunks of about
    /// [`Config::snapshot_chunk`](crate::Config::snapshot_chunk).
    pub largest_transmit: usize,
    /// The most bytes a driver held for one connection, unwritten, at a
    /// time: filled by the bundled driver (at most its `send_buffer`), 0
    /// from the core alone.
    pub send_buffer_peak: usize,
}

impl Stats {
    pub(crate) fn count_close(&mut self, reason: CloseReason) {
        match self.closed.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.closed.push((reason, 1)),
        }
    }
}
