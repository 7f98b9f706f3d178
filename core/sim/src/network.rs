//! The simulated TCP network's parts: links between two connection ends,
//! each carrying segments in two FIFO pipes, and dial outcomes on their way.

use std::collections::VecDeque;
use std::net::SocketAddr;

use groupmesh_core::Instant;

use crate::ids::EndKey;
use crate::tap::Tap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    Open,
    /// Reset: only the resets already queued are delivered.
    Cut,
    /// Everything vanishes.
    Blackholed,
}

/// A TCP connection between two ends; side 0 dialled.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) ends: [EndKey; 2],
    /// Whether each side's core still has the connection.
    pub(crate) open: [bool; 2],
    pub(crate) state: LinkState,
}

#[derive(Debug)]
pub(crate) enum Segment {
    /// The dial connected (delivered to the dialler as `handle_dialed`).
    Connected,
    Bytes(Vec<u8>),
    /// The other side closed or reset (`handle_closed`).
    Fin,
}

/// One direction of a link: pipe `2 * link + s` carries from side `s` to side `1 - s`.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    pub(crate) queue: VecDeque<(Instant, Segment)>,
    /// Delivery time of the last segment pushed (keeps FIFO order).
    pub(crate) last: Instant,
    pub(crate) paused: bool,
    /// The key of its front segment in `Sim::heads`.
    pub(crate) head: Option<(Instant, u64)>,
    /// Bytes queued and not yet delivered: the sender's send buffer.
    pub(crate) unsent: usize,
    /// What the adversary knows of this direction.
    pub(crate) tap: Tap,
}

#[derive(Debug)]
pub(crate) enum Misc {
    /// A dial reaches the listener.
    Syn { from: EndKey, addr: SocketAddr },
    /// A dial fails.
    DialFailed(EndKey),
}
