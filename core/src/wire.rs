//! The wire protocol: every frame two nodes exchange, and its encoding.
//!
//! A frame on the byte stream is a 4-byte little-endian length followed by that
//! many bytes of a postcard-encoded [`Frame`]. The length is checked against the
//! maximum frame size before anything is buffered or decoded, and a body with
//! trailing bytes is rejected. Every variable-length field is bounded by its type.
//!
//! Frames travel inside the secure channel (see `channel.rs`): before it is
//! keyed, only [`HandshakeRecord`]s cross the wire, each in a record with the
//! same 4-byte length prefix. The first record either side sends is
//! [`HandshakeRecord::Version`]: variant 0 with the version as its first field,
//! in every version (version 1's greeting began the same way), so a peer of
//! another version is told apart from a broken one and refused with
//! [`CloseReason::VersionMismatch`](crate::CloseReason::VersionMismatch).

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::WireReason;
use crate::ids::{MAX_GROUP_NAME, MAX_NODE_ID};

/// The protocol version this core speaks: 2 brought the secure channel, 3
/// member metadata, removal reasons and port credit, 4 records sealed with
/// AES-256-GCM.
pub const PROTOCOL_VERSION: u16 = 4;
/// Most listen addresses a node advertises.
pub const MAX_ADDRS: usize = 8;
/// Bytes of the length prefix in front of every frame and every record.
pub const LEN_PREFIX: usize = 4;
/// Largest record body before the peer has proved the key: handshake records
/// and the initiator's first sealed record.
pub const MAX_HANDSHAKE_RECORD: usize = 1024;
/// Largest record body once the peer has proved the key (a Noise message).
pub const MAX_RECORD: usize = 65_535;
/// Bytes of the AEAD tag at the end of every sealed record.
pub const TAG_LEN: usize = 16;
/// Most nodes in one [`Frame::Peers`].
pub const MAX_PEERS_PER_FRAME: usize = 1024;
/// Most groups in one [`Frame::Sync`] or [`Frame::Update`].
pub const MAX_GROUPS_PER_FRAME: usize = 4096;
/// Most ports in one group entry of a frame.
pub const MAX_PORTS_PER_ENTRY: usize = 65_536;

/// A node id on the wire.
pub type WireNodeId = heapless::String<MAX_NODE_ID>;
/// A group name on the wire.
pub type WireGroup = heapless::String<MAX_GROUP_NAME>;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub enum Frame {
    /// Nodes the sender is connected to, with their addresses.
    Peers {
        /// The nodes.
        nodes: BoundedVec<PeerInfo, MAX_PEERS_PER_FRAME>,
    },
    /// Part of the sender's snapshot of its own memberships; `done` on the last part.
    Sync {
        /// Groups and the sender's ports in them.
        groups: BoundedVec<GroupPorts, MAX_GROUPS_PER_FRAME>,
        /// This is the last part of the snapshot.
        done: bool,
    },
    /// Incremental changes of the sender's memberships, after its snapshot.
    Update {
        /// Groups and the ports that joined and left them.
        groups: BoundedVec<GroupChange, MAX_GROUPS_PER_FRAME>,
    },
    /// Keepalive: sent when nothing else was sent for the ping interval.
    Ping,
    /// The sender closes the connection, and says why.
    Close {
        /// Why.
        reason: WireReason,
    },
    /// A message for one of the receiver's ports.
    Message {
        /// The receiver's port number.
        to: u64,
        /// The sender's port number, if it gave one (for replies).
        from: Option<u64>,
        /// The bytes, bounded by the frame size.
        #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_payload))]
        payload: Payload,
    },
    /// Tell me with [`Frame::PortDown`] when this port of yours is closed.
    MonitorPort {
        /// The receiver's port number.
        port: u64,
    },
    /// Forget a [`Frame::MonitorPort`] of mine.
    DemonitorPort {
        /// The receiver's port number.
        port: u64,
    },
    /// This port of mine is closed (or never existed).
    PortDown {
        /// The sender's port number.
        port: u64,
    },
    /// A digest of the set of nodes the sender is connected to, itself
    /// included: in a full mesh every node's is the same, so the periodic
    /// gossip costs one small frame per peer; a receiver whose own digest
    /// differs answers with its peer list.
    PeersDigest {
        /// The first 16 bytes of SHA-256 over the sorted node ids.
        digest: [u8; 16],
    },
    /// Sent before closing as stale: the sender's node id runs at epoch
    /// `epoch` on a connection the receiver keeps, newer than the sender's
    /// own. The sender's node then moves its epoch above it (its clock may
    /// have gone back since that run), so its next connection is newer.
    Stale {
        /// The epoch of the run the receiver keeps.
        epoch: u64,
    },
    /// The sender's port `port` has read `n` of the receiver's messages:
    /// the receiver may send it `n` more (flow control, see `credit.rs`).
    Credit {
        /// The sender's port number.
        port: u64,
        /// Messages read, returned as credit.
        n: u32,
    },
}

/// Message bytes on the wire (encoded as one length and the bytes).
pub type Payload = serde_bytes::ByteBuf;

/// Largest encoding of a [`Frame::Message`] besides its payload bytes.
pub const MESSAGE_OVERHEAD: usize = 32;

/// What travels before the channel is keyed, one per record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub enum HandshakeRecord {
    /// The protocol version of the sender, the first record of each side.
    /// Must stay variant 0 with the version first.
    Version(u16),
    /// A Noise handshake message; its payload is the sender's [`Hello`].
    Noise(#[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_payload))] Payload),
    /// The sender refuses the connection before it is keyed, and says why.
    /// Unauthenticated: a hint for the user, never a reason to change state.
    Refuse(WireReason),
}

impl HandshakeRecord {
    /// Appends this record, length prefix included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_prefixed(self, out);
    }

    /// Decodes one record body. The whole body must be one record.
    pub fn decode(body: &[u8]) -> Result<HandshakeRecord, DecodeError> {
        match postcard::take_from_bytes::<HandshakeRecord>(body) {
            Ok((HandshakeRecord::Version(v), [])) if v != PROTOCOL_VERSION => {
                Err(DecodeError::Version(v))
            }
            Ok((record, [])) => Ok(record),
            // Another version's first record: variant 0, the version first,
            // maybe more fields after it (version 1's greeting).
            _ => match postcard::take_from_bytes::<(u8, u16)>(body) {
                Ok(((0, version), _)) if version != PROTOCOL_VERSION => {
                    Err(DecodeError::Version(version))
                }
                _ => Err(DecodeError::Malformed),
            },
        }
    }
}

/// The payload of each side's Noise handshake message: who the sender is.
/// It travels encrypted under the key derived from the shared secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct Hello {
    /// The sender's node id.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_str))]
    pub node: WireNodeId,
    /// The sender's incarnation: one run of its node id, in its port ids.
    pub incarnation: u64,
    /// The sender's epoch: orders runs of one node id, the greater the
    /// newer. Starts at the incarnation; raised by [`Frame::Stale`].
    pub epoch: u64,
    /// Where the sender can be dialled.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_vec))]
    pub addrs: heapless::Vec<WireAddr, MAX_ADDRS>,
    /// Largest frame the sender accepts.
    pub max_frame: u32,
    /// Messages the sender holds per port for each peer before it returns
    /// credit ([`Frame::Credit`]); a peer sends no more than that.
    pub port_credit: u32,
}

impl Hello {
    /// The greeting's bytes, as they go into a Noise message.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding into a Vec cannot fail")
    }

    /// A greeting from the bytes of a Noise message: one whole, valid greeting.
    pub fn from_bytes(bytes: &[u8]) -> Result<Hello, DecodeError> {
        match postcard::take_from_bytes::<Hello>(bytes) {
            Ok((hello, [])) if !hello.node.is_empty() => Ok(hello),
            _ => Err(DecodeError::Malformed),
        }
    }
}

/// A node and its addresses, in [`Frame::Peers`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct PeerInfo {
    /// The node.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_str))]
    pub node: WireNodeId,
    /// Its addresses.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_vec))]
    pub addrs: heapless::Vec<WireAddr, MAX_ADDRS>,
}

/// A group and the sender's ports in it, in [`Frame::Sync`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct GroupPorts {
    /// The group.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_str))]
    pub group: WireGroup,
    /// The sender's ports in it, with their metadata.
    pub ports: BoundedVec<WirePort, MAX_PORTS_PER_ENTRY>,
}

/// A group and how the sender's ports in it changed, in [`Frame::Update`].
///
/// Each port's entry is its whole state, never a step: in `joined` it is a
/// member with this metadata (it joined, or only its metadata changed), in
/// `left` it is not a member. So the receiver's view of a port is the last
/// entry it got, whatever came before (`snapshot.rs` relies on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct GroupChange {
    /// The group.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_heapless_str))]
    pub group: WireGroup,
    /// Ports that are members, with their metadata.
    pub joined: BoundedVec<WirePort, MAX_PORTS_PER_ENTRY>,
    /// Ports that left, and why.
    pub left: BoundedVec<WireLeave, MAX_PORTS_PER_ENTRY>,
}

/// A member port of the sender and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct WirePort {
    /// The port number.
    pub number: u64,
    /// Its metadata in this group; empty for none.
    #[cfg_attr(any(test, feature = "fuzzing"), arbitrary(with = arb_payload))]
    pub meta: Payload,
}

/// A port of the sender that left a group, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub struct WireLeave {
    /// The port number.
    pub number: u64,
    /// Why it left.
    pub reason: LeaveReason,
}

/// Why a port left a group, as its own node says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub enum LeaveReason {
    /// Its last registration in the group ended.
    Unregistered,
    /// The port was closed.
    PortClosed,
}

/// A socket address on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
pub enum WireAddr {
    /// IPv4 address and port.
    V4([u8; 4], u16),
    /// IPv6 address and port.
    V6([u8; 16], u16),
}

impl From<SocketAddr> for WireAddr {
    fn from(a: SocketAddr) -> Self {
        match a.ip() {
            IpAddr::V4(ip) => WireAddr::V4(ip.octets(), a.port()),
            IpAddr::V6(ip) => WireAddr::V6(ip.octets(), a.port()),
        }
    }
}

impl From<WireAddr> for SocketAddr {
    fn from(a: WireAddr) -> Self {
        match a {
            WireAddr::V4(ip, port) => SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port),
            WireAddr::V6(ip, port) => SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port),
        }
    }
}

/// A `Vec` that refuses to decode more than `N` elements.
///
/// Unlike `heapless::Vec` it does not reserve `N` elements inline, so frames
/// nest lists of lists without huge stack frames; postcard checks each claimed
/// length against the bytes left, so a lying length allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct BoundedVec<T, const N: usize>(Vec<T>);

impl<T, const N: usize> BoundedVec<T, N> {
    /// An empty list.
    pub const fn new() -> Self {
        BoundedVec(Vec::new())
    }
    /// Wraps `v`, or gives it back if it is longer than `N`.
    pub fn try_from_vec(v: Vec<T>) -> Result<Self, Vec<T>> {
        if v.len() > N {
            Err(v)
        } else {
            Ok(BoundedVec(v))
        }
    }
    /// Appends `item`, or gives it back when the list is full.
    pub fn try_push(&mut self, item: T) -> Result<(), T> {
        if self.0.len() >= N {
            return Err(item);
        }
        self.0.push(item);
        Ok(())
    }
    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
    /// The elements, owned.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        BoundedVec::new()
    }
}

impl<T, const N: usize> core::ops::Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for BoundedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedVec<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedVec<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = BoundedVec<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Never trust the claimed length beyond N, nor beyond a modest
                // preallocation: the elements themselves must be present.
                let hint = seq.size_hint().unwrap_or(0).min(N).min(1024);
                let mut v = Vec::with_capacity(hint);
                while let Some(item) = seq.next_element()? {
                    if v.len() == N {
                        return Err(serde::de::Error::invalid_length(N + 1, &self));
                    }
                    v.push(item);
                }
                Ok(BoundedVec(v))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl<'a, T: arbitrary::Arbitrary<'a>, const N: usize> arbitrary::Arbitrary<'a>
    for BoundedVec<T, N>
{
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut v = Vec::new();
        for item in u.arbitrary_iter()? {
            if v.len() == N {
                break;
            }
            v.push(item?);
        }
        Ok(BoundedVec(v))
    }
}

#[cfg(any(test, feature = "fuzzing"))]
fn arb_payload(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Payload> {
    Ok(Payload::from(<Vec<u8> as arbitrary::Arbitrary>::arbitrary(
        u,
    )?))
}

#[cfg(any(test, feature = "fuzzing"))]
fn arb_heapless_str<const N: usize>(
    u: &mut arbitrary::Unstructured<'_>,
) -> arbitrary::Result<heapless::String<N>> {
    let s: &str = u.arbitrary()?;
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    Ok(out)
}

#[cfg(any(test, feature = "fuzzing"))]
fn arb_heapless_vec<'a, T: arbitrary::Arbitrary<'a>, const N: usize>(
    u: &mut arbitrary::Unstructured<'a>,
) -> arbitrary::Result<heapless::Vec<T, N>> {
    let mut out = heapless::Vec::new();
    for item in u.arbitrary_iter()? {
        if out.push(item?).is_err() {
            break;
        }
    }
    Ok(out)
}

/// Appends `value` postcard-encoded, after its 4-byte little-endian length.
fn encode_prefixed<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_PREFIX]);
    let mut buf = core::mem::take(out);
    buf = postcard::to_extend(value, buf).expect("encoding into a Vec cannot fail");
    *out = buf;
    let len = u32::try_from(out.len() - start - LEN_PREFIX)
        .expect("frames are built below max_frame, far under 4 GiB");
    out[start..start + LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
}

/// Why bytes did not decode as a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid frame (bad encoding, a bound exceeded, an empty name, trailing bytes).
    Malformed,
    /// A first record of another protocol version.
    Version(u16),
    /// The length prefix exceeds the maximum frame size.
    TooLarge {
        /// The announced length.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

impl Frame {
    /// Appends this frame, length prefix included, to `out`.
    ///
    /// # Panics
    /// Never for frames this crate builds: postcard only fails to encode into a
    /// full fixed buffer, and `out` grows.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_prefixed(self, out);
    }

    /// Decodes one frame body (without the length prefix). The whole body must
    /// be one frame: trailing bytes are an error.
    pub fn decode(body: &[u8]) -> Result<Frame, DecodeError> {
        match postcard::take_from_bytes::<Frame>(body) {
            Ok((frame, [])) if frame.is_valid() => Ok(frame),
            _ => Err(DecodeError::Malformed),
        }
    }

    /// Checks what types cannot: names are non-empty.
    fn is_valid(&self) -> bool {
        match self {
            Frame::Peers { nodes } => nodes.iter().all(|p| !p.node.is_empty()),
            Frame::Sync { groups, .. } => groups.iter().all(|g| !g.group.is_empty()),
            Frame::Update { groups } => groups.iter().all(|g| !g.group.is_empty()),
            Frame::Ping
            | Frame::Close { .. }
            | Frame::Message { .. }
            | Frame::MonitorPort { .. }
            | Frame::DemonitorPort { .. }
            | Frame::PortDown { .. }
            | Frame::PeersDigest { .. }
            | Frame::Stale { .. }
            | Frame::Credit { .. } => true,
        }
    }
}
