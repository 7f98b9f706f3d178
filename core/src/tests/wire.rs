//! Frames: round trips, bounds, trailing bytes, versions.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{framed, hello};
use crate::event::{Limit, WireReason};
use crate::wire::{
    BoundedVec, DecodeError, Frame, GroupChange, GroupPorts, HandshakeRecord, LeaveReason,
    PeerInfo, WireAddr, WireGroup, WireLeave, WireNodeId, WirePort, LEN_PREFIX, PROTOCOL_VERSION,
};

fn wire_str<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    out.push_str(s).expect("strategy keeps names short enough");
    out
}

fn node_id() -> impl Strategy<Value = WireNodeId> {
    "[a-z0-9:.-]{1,64}".prop_map(|s| wire_str(&s))
}

fn group() -> impl Strategy<Value = WireGroup> {
    "\\PC{1,40}".prop_filter_map("fits 255 bytes", |s: String| {
        (s.len() <= 255).then(|| wire_str(&s))
    })
}

fn addr() -> impl Strategy<Value = WireAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| WireAddr::V4(ip, p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| WireAddr::V6(ip, p)),
    ]
}

fn addrs() -> impl Strategy<Value = heapless::Vec<WireAddr, 8>> {
    proptest::collection::vec(addr(), 0..=8).prop_map(|v| v.into_iter().collect())
}

fn ports() -> impl Strategy<Value = BoundedVec<WirePort, 65536>> {
    let port =
        (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(number, meta)| {
            WirePort {
                number,
                meta: meta.into(),
            }
        });
    proptest::collection::vec(port, 0..20).prop_map(|v| BoundedVec::try_from_vec(v).expect("short"))
}

fn leaves() -> impl Strategy<Value = BoundedVec<WireLeave, 65536>> {
    let reason = prop_oneof![
        Just(LeaveReason::Unregistered),
        Just(LeaveReason::PortClosed)
    ];
    let leave = (any::<u64>(), reason).prop_map(|(number, reason)| WireLeave { number, reason });
    proptest::collection::vec(leave, 0..20)
        .prop_map(|v| BoundedVec::try_from_vec(v).expect("short"))
}

fn bounded<T: core::fmt::Debug, const N: usize>(v: Vec<T>) -> BoundedVec<T, N> {
    BoundedVec::try_from_vec(v).expect("short")
}

fn reason() -> impl Strategy<Value = WireReason> {
    prop_oneof![
        Just(WireReason::Malformed),
        Just(WireReason::AuthenticationFailed),
        Just(WireReason::Shutdown),
        Just(WireReason::LimitExceeded(Limit::Groups)),
        Just(WireReason::Other),
    ]
}

pub(crate) fn frame() -> impl Strategy<Value = Frame> {
    let peers = proptest::collection::vec(
        (node_id(), addrs()).prop_map(|(node, addrs)| PeerInfo { node, addrs }),
        0..5,
    )
    .prop_map(|v| Frame::Peers { nodes: bounded(v) });
    let sync = (
        proptest::collection::vec(
            (group(), ports()).prop_map(|(group, ports)| GroupPorts { group, ports }),
            0..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(v, done)| Frame::Sync {
            groups: bounded(v),
            done,
        });
    let update = proptest::collection::vec(
        (group(), ports(), leaves()).prop_map(|(group, joined, left)| GroupChange {
            group,
            joined,
            left,
        }),
        0..5,
    )
    .prop_map(|v| Frame::Update { groups: bounded(v) });
    prop_oneof![
        any::<[u8; 16]>().prop_map(|digest| Frame::PeersDigest { digest }),
        peers,
        sync,
        update,
        Just(Frame::Ping),
        reason().prop_map(|reason| Frame::Close { reason }),
        (
            any::<u64>(),
            any::<Option<u64>>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(to, from, payload)| Frame::Message {
                to,
                from,
                payload: crate::wire::Payload::from(payload),
            }),
        any::<u64>().prop_map(|port| Frame::MonitorPort { port }),
        any::<u64>().prop_map(|port| Frame::DemonitorPort { port }),
        any::<u64>().prop_map(|port| Frame::PortDown { port }),
        (any::<u64>(), any::<u32>()).prop_map(|(port, n)| Frame::Credit { port, n }),
    ]
}

proptest! {
    #[test]
    fn every_frame_round_trips(f in frame()) {
        let bytes = framed(&f);
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        prop_assert_eq!(len, bytes.len() - LEN_PREFIX);
        prop_assert_eq!(Frame::decode(&bytes[LEN_PREFIX..]), Ok(f));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Frame::decode(&bytes);
    }

    #[test]
    fn any_trailing_byte_makes_a_frame_malformed(f in frame(), extra in any::<u8>()) {
        let mut bytes = framed(&f);
        bytes.push(extra);
        prop_assert_eq!(Frame::decode(&bytes[LEN_PREFIX..]), Err(DecodeError::Malformed));
    }
}

#[test]
fn a_group_name_over_255_bytes_does_not_decode() {
    // Encode by hand: a Sync with one group whose name is 256 bytes.
    let long = "g".repeat(256);
    let body = postcard::to_allocvec(&(1u8, 1u8, long.as_str(), 0u8, true)).expect("encodes");
    assert_eq!(Frame::decode(&body), Err(DecodeError::Malformed));
    let ok = "g".repeat(255);
    let body = postcard::to_allocvec(&(1u8, 1u8, ok.as_str(), 0u8, true)).expect("encodes");
    assert!(Frame::decode(&body).is_ok());
}

#[test]
fn an_empty_node_id_is_malformed() {
    let mut h = hello("x", 1);
    h.node = WireNodeId::new();
    assert_eq!(
        crate::wire::Hello::from_bytes(&h.to_bytes()),
        Err(DecodeError::Malformed)
    );
}

#[test]
fn a_first_record_of_another_version_is_told_apart_from_garbage() {
    // A later version with a body this version cannot parse.
    let later = PROTOCOL_VERSION + 1;
    let body = postcard::to_allocvec(&(0u8, later, [0xffu8; 3])).expect("encodes");
    assert_eq!(
        HandshakeRecord::decode(&body),
        Err(DecodeError::Version(later))
    );
    assert_eq!(
        HandshakeRecord::decode(&[0xff, 0xff, 0xff]),
        Err(DecodeError::Malformed)
    );
    let mut ours = Vec::new();
    HandshakeRecord::Version(PROTOCOL_VERSION).encode(&mut ours);
    assert_eq!(
        HandshakeRecord::decode(&ours[LEN_PREFIX..]),
        Ok(HandshakeRecord::Version(PROTOCOL_VERSION))
    );
}

#[test]
fn a_list_claiming_more_elements_than_bytes_allocates_nothing_and_fails() {
    // Update with a group list claiming 2^28 entries.
    let body = [2u8, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(Frame::decode(&body), Err(DecodeError::Malformed));
}
