//! The operations the fuzzer chooses: what a hostile peer, an on-path
//! attacker and the local application do to the node under test.

use arbitrary::Arbitrary;
use groupmesh_core::wire::Frame;

/// What an on-path attacker does to an authenticated session's records.
#[derive(Debug, Arbitrary)]
pub(crate) enum RecordOp {
    /// A frame, sealed by the honest peer and delivered.
    Sealed(Frame),
    /// Sealed by the peer, then lost on the way (the next one will not open).
    Dropped(Frame),
    /// One of the records delivered so far, again.
    Replay(u8),
    /// The next sealed record with one bit flipped.
    Flip(Frame, u16),
    /// A record nobody sealed.
    Forged(Vec<u8>),
    /// Bytes as they are.
    Raw(Vec<u8>),
}

/// Which peer a greeting claims to be.
#[derive(Debug, Arbitrary)]
pub(crate) enum Who {
    Peer(u8),
    Target,
    Empty,
}

/// Which key a peer's channel holds.
#[derive(Debug, Arbitrary)]
pub(crate) enum Key {
    Right,
    Wrong,
}

#[derive(Debug, Arbitrary)]
pub(crate) enum HandshakeOp {
    Inbound,
    Dialed(u8),
    /// Starts the handshake on a connection, as someone, with some key (the
    /// harness answers the node's greeting and confirms as the protocol says).
    Start {
        conn: u8,
        who: Who,
        incarnation: u8,
        key: Key,
    },
    /// Bytes recorded earlier on any connection, either way, replayed.
    Replay {
        conn: u8,
        which: u8,
    },
    /// A frame, sealed if the harness's channel is keyed, plain if not.
    Frame(u8, Frame),
    /// Bytes as they are.
    Raw(u8, Vec<u8>),
    Closed(u8),
    Timeout(u16),
}

#[derive(Debug, Arbitrary)]
pub(crate) enum Op {
    Handshake(HandshakeOp),
    /// A full, correct handshake and snapshot as a new peer.
    Join(u8),
    Bytes(u8, Vec<u8>),
    DialFailed(u8),
    Overflow(u8),
    OpenPort,
    ClosePort(u8),
    Register(u8, u8),
    Unregister(u8),
    Monitor(u8),
    Unmonitor(u8),
    AddSeed(u16),
    Shutdown,
    Send {
        to: PortChoice,
        from: Option<u8>,
        len: u16,
    },
    MonitorPort(PortChoice),
    UnmonitorPort(u8),
    /// Drain only after a burst: `true` stops draining until `false` (as a
    /// driver that batches inputs does).
    Cork(bool),
    /// The driver wrote what it held for a connection: our snapshot to it
    /// goes on.
    Drained(u8),
    /// The user read this many messages of one of our ports: their
    /// senders' credit comes back.
    Read(u8, u8),
    /// A registration with metadata (maybe past `max_meta`: refused).
    RegisterWithMeta(u8, u8, Vec<u8>),
    /// New metadata for one of our registrations.
    UpdateMeta(u8, Vec<u8>),
}

/// A port to send to or watch: one of ours, or a peer's (maybe stale).
#[derive(Debug, Arbitrary)]
pub(crate) enum PortChoice {
    Local(u8),
    Remote {
        peer: u8,
        incarnation: u8,
        number: u8,
    },
}

impl From<HandshakeOp> for Op {
    fn from(op: HandshakeOp) -> Op {
        Op::Handshake(op)
    }
}
