//! Hostile input over real TCP against a real node (groupmesh-smol).
//!
//! Every test starts an attacked node `a` with an honest peer `b` (both with
//! a port registered in one group), attacks `a` with a raw client that speaks
//! bytes, or from the path between `a` and `b`, and checks that:
//! - the offending connection is closed, with the reason the user sees in
//!   `a`'s events (and, where the node can still tell the peer, in the
//!   refusal or close frame it sends back);
//! - no node panics (panics on the runtime's threads fail the test);
//! - no monitor ever lists a port nobody registered, every honest port stays
//!   listed, and `a` and `b` stay connected unless the attack was on their
//!   own connection (then it closes with a reason, and they reconnect);
//! - a new honest node can still join afterwards.
//!
//! The channel is the one protocol version 2 brought in (version 4 seals with AES-256-GCM): a Noise handshake keyed by
//! the secret, then every frame sealed. `docs/SECURITY.md` maps every attack
//! to its test.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use groupmesh_core::wire::{
    Frame, HandshakeRecord, Payload, MAX_HANDSHAKE_RECORD, MAX_RECORD, PROTOCOL_VERSION,
};
use groupmesh_core::WireReason;
use groupmesh_smol::{CloseReason, Limit, Node, NodeEvent, NodeId, PortId};
use smol::Timer;

use common::proxy::{self, Proxy, Tamper, Way};
use common::raw_client::{
    encode, first_message, hello, peers, prefixed, record, sync, sync_with_meta, update,
    NotAuthenticated, RawClient, Read, IO_LIMIT,
};
use common::{addr, config, eventually, run, start, Mesh, Watch, GROUP, SECRET};

/// A well-formed length prefix around a body that is no record.
fn garbage_record() -> Vec<u8> {
    prefixed(&[0xff; 8])
}

/// Bytes shaped like a Noise message that no key wrote.
fn guessed_noise() -> Vec<u8> {
    record(&HandshakeRecord::Noise(Payload::from(vec![0x42; 48])))
}

/// The greeting of protocol version 1 (`Frame::Hello`, variant 0, version 1
/// first; then node id, incarnation, addresses, nonce and frame size).
fn version_1_greeting() -> Vec<u8> {
    let mut body = vec![0u8, 1, 1, b'x', 5, 0];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0x80, 0x80, 0x04]);
    prefixed(&body)
}

/// What a node tells the peer when it closes for `reason` (the reasons
/// these tests expect).
fn wire(reason: CloseReason) -> WireReason {
    match reason {
        CloseReason::Malformed => WireReason::Malformed,
        CloseReason::UnexpectedFrame => WireReason::UnexpectedFrame,
        CloseReason::SelfConnection => WireReason::SelfConnection,
        CloseReason::DuplicateNodeId => WireReason::DuplicateNodeId,
        CloseReason::AuthenticationFailed => WireReason::AuthenticationFailed,
        CloseReason::HandshakeTimeout => WireReason::HandshakeTimeout,
        CloseReason::Decrypt => WireReason::Decrypt,
        other => panic!("no test expects a node to close with {other:?}"),
    }
}

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).expect("a valid node id")
}

/// Waits for `a`'s notice that `name` is up.
async fn node_up(mesh: &mut Mesh, name: &str) {
    up(&mut mesh.a_events, name).await;
}

/// Waits for the watched node's notice that `name` is up.
async fn up(events: &mut Watch, name: &str) {
    events
        .expect(
            &format!("{name} is up"),
            |e| matches!(e, NodeEvent::NodeUp { node, .. } if node.as_str() == name),
        )
        .await;
}

/// Waits for `a`'s notice that `name` is down, and returns why.
async fn node_down(mesh: &mut Mesh, name: &str) -> CloseReason {
    down(&mut mesh.a_events, name).await
}

/// Waits for the watched node's notice that `name` is down, and returns why.
async fn down(events: &mut Watch, name: &str) -> CloseReason {
    match events
        .expect(
            &format!("{name} is down"),
            |e| matches!(e, NodeEvent::NodeDown { node, .. } if node.as_str() == name),
        )
        .await
    {
        NodeEvent::NodeDown { reason, .. } => reason,
        _ => unreachable!("matched a NodeDown above"),
    }
}

/// `a` lists exactly the honest members again.
async fn only_honest_members_left(mesh: &Mesh) {
    eventually("a lists only the honest members", || {
        mesh.a.members(GROUP).as_ref() == Some(&mesh.honest)
    })
    .await;
}

/// Checks how `a` saw the connection from `from` close: `reason`, before
/// authentication, with no peer known (its greeting never opened).
async fn refused_unauthenticated(mesh: &mut Mesh, from: SocketAddr, reason: CloseReason) {
    let (r, authenticated, node) = mesh.a_events.closed_from(from).await;
    assert_eq!(r, reason, "the connection from {from}");
    assert!(!authenticated, "the connection from {from}");
    assert_eq!(node, None, "the connection from {from}");
}

#[test]
fn garbage_before_the_handshake_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);

        let mut junk = RawClient::connect(a).await;
        junk.send_bytes(&garbage_record())
            .await
            .expect("the node reads what it is sent");
        let (reason, ended) = junk.expect_closed().await;
        assert_eq!(reason, WireReason::Malformed);
        assert_eq!(
            ended.reads,
            [
                Read::Version(PROTOCOL_VERSION),
                Read::Refused(WireReason::Malformed)
            ],
            "nothing but the version and the refusal"
        );
        refused_unauthenticated(&mut mesh, junk.addr(), CloseReason::Malformed).await;
        assert_eq!(CloseReason::Malformed.to_string(), "malformed frame");

        // Another protocol: its first four bytes read as a length far past
        // the handshake record size, refused before anything more is buffered.
        let mut http = RawClient::connect(a).await;
        http.send_bytes(b"GET / HTTP/1.1\r\nHost: groupmesh\r\n\r\n")
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = http.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::FrameSize));
        let frame_size = CloseReason::LimitExceeded(Limit::FrameSize);
        refused_unauthenticated(&mut mesh, http.addr(), frame_size).await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn garbage_after_authentication_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let theirs = PortId::new(node_id("mallory"), 1, 1);

        // Sealed garbage: the record opens, the frame inside does not decode.
        let mut mallory = RawClient::connect(a).await;
        let greeting = mallory
            .try_authenticate("mallory", 1, SECRET)
            .await
            .expect("an insider authenticates");
        assert_eq!(
            greeting.node.as_str(),
            "a",
            "a's greeting, inside the handshake"
        );
        assert_eq!(greeting.incarnation, mesh.a.incarnation());
        mallory.send(&sync(&[(GROUP, &[1])], true)).await;
        node_up(&mut mesh, "mallory").await;
        assert!(
            mesh.a.members(GROUP).is_some_and(|m| m.contains(&theirs)),
            "an authenticated peer's own port is listed"
        );
        let sealed = mallory.seal_bytes(&garbage_record());
        mallory
            .send_bytes(&sealed)
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = mallory.expect_closed().await;
        assert_eq!(reason, WireReason::Malformed);
        let (reason, authenticated, node) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, CloseReason::Malformed);
        assert!(authenticated);
        assert_eq!(node, Some(node_id("mallory")));
        assert_eq!(
            node_down(&mut mesh, "mallory").await,
            CloseReason::Malformed
        );
        only_honest_members_left(&mesh).await;

        // Unsealed garbage in the channel: a record that does not open.
        let mut mallory = RawClient::connect(a).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        mallory
            .send_bytes(&garbage_record())
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = mallory.expect_closed().await;
        assert_eq!(reason, WireReason::Decrypt);
        let (reason, authenticated, _) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, CloseReason::Decrypt);
        assert_eq!(
            reason.to_string(),
            "a sealed record did not open (altered, replayed or injected)"
        );
        assert!(authenticated);
        assert_eq!(node_down(&mut mesh, "mallory").await, CloseReason::Decrypt);
        only_honest_members_left(&mesh).await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn records_out_of_order_and_frames_outside_the_channel_are_refused() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let b_number = mesh.b_port.id().number();
        let version = record(&HandshakeRecord::Version(PROTOCOL_VERSION));
        let before_auth: [(&str, Vec<u8>, CloseReason); 5] = [
            (
                "memberships in the clear before any handshake",
                encode(&sync(&[(GROUP, &[b_number])], true)),
                CloseReason::Malformed,
            ),
            (
                "a ping in the clear before any handshake",
                encode(&Frame::Ping),
                CloseReason::Malformed,
            ),
            (
                "a Noise message before the version record",
                guessed_noise(),
                CloseReason::UnexpectedFrame,
            ),
            (
                "a second version record",
                [version.clone(), version.clone()].concat(),
                CloseReason::UnexpectedFrame,
            ),
            (
                "memberships in the clear after the version record",
                [
                    version.clone(),
                    encode(&sync(&[(GROUP, &[b_number, 99])], true)),
                ]
                .concat(),
                CloseReason::Malformed,
            ),
        ];
        for (what, bytes, expected) in before_auth {
            let mut c = RawClient::connect(a).await;
            c.send_bytes(&bytes)
                .await
                .expect("the node reads what it is sent");
            let (reason, _) = c.expect_closed().await;
            assert_eq!(reason, wire(expected), "{what}");
            let (reason, authenticated, node) = mesh.a_events.closed_from(c.addr()).await;
            assert_eq!(reason, expected, "{what}");
            assert!(!authenticated, "{what}");
            assert_eq!(node, None, "{what}");
        }
        assert_eq!(
            mesh.honest_members(&mesh.a),
            mesh.honest,
            "nothing sent in the clear was applied"
        );

        // After authentication, anything in the clear (a handshake record
        // again, a frame) is a record that does not open.
        for (what, bytes) in [
            ("a version record again", version.clone()),
            (
                "a frame in the clear",
                encode(&sync(&[("late", &[1])], true)),
            ),
        ] {
            let mut late = RawClient::connect(a).await;
            late.join("late", SECRET, &[]).await;
            node_up(&mut mesh, "late").await;
            late.send_bytes(&bytes)
                .await
                .expect("the node reads what it is sent");
            let (reason, _) = late.expect_closed().await;
            assert_eq!(reason, WireReason::Decrypt, "{what}");
            let (reason, authenticated, _) = mesh.a_events.closed_from(late.addr()).await;
            assert_eq!(reason, CloseReason::Decrypt, "{what}");
            assert!(authenticated, "{what}");
            assert_eq!(node_down(&mut mesh, "late").await, CloseReason::Decrypt);
        }
        assert_eq!(mesh.a.members("late"), None);

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_truncated_record_then_end_of_stream_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);

        // During the handshake: ten bytes of a hundred-byte record, then EOF.
        let mut cut = RawClient::connect(a).await;
        assert_eq!(cut.read_version().await, PROTOCOL_VERSION);
        let mut partial = 100u32.to_le_bytes().to_vec();
        partial.extend_from_slice(&[0; 10]);
        cut.send_bytes(&partial)
            .await
            .expect("the node reads what it is sent");
        cut.shutdown_write();
        let ended = cut.until_end(IO_LIMIT).await;
        assert!(
            ended.reads.is_empty() && matches!(ended.end, Read::Eof),
            "the node just closes (the peer is gone): {ended:?}"
        );
        refused_unauthenticated(&mut mesh, cut.addr(), CloseReason::Disconnected).await;
        assert_eq!(CloseReason::Disconnected.to_string(), "disconnected");

        // Authenticated: half a sealed membership record, then EOF.
        let mut mallory = RawClient::connect(a).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        let sealed = mallory.seal(&update(&[(GROUP, &[2, 3, 4], &[1])]));
        let half = sealed.get(..sealed.len() / 2).expect("a non-empty record");
        mallory
            .send_bytes(half)
            .await
            .expect("the node reads what it is sent");
        mallory.shutdown_write();
        let (reason, authenticated, _) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, CloseReason::Disconnected);
        assert!(authenticated);
        assert_eq!(
            node_down(&mut mesh, "mallory").await,
            CloseReason::Disconnected
        );
        only_honest_members_left(&mesh).await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

/// Sends `len` as a length prefix alone and checks the node refuses it as
/// over the frame size, before any body (returns how `a` saw it close).
async fn refused_from_length(
    mesh: &mut Mesh,
    c: &mut RawClient,
    len: u32,
) -> (CloseReason, bool, Option<NodeId>) {
    c.send_bytes(&len.to_le_bytes())
        .await
        .expect("the node reads what it is sent");
    let (reason, _) = c.expect_closed().await;
    assert_eq!(reason, WireReason::LimitExceeded(Limit::FrameSize), "{len}");
    let seen = mesh.a_events.closed_from(c.addr()).await;
    assert_eq!(
        seen.0,
        CloseReason::LimitExceeded(Limit::FrameSize),
        "{len}"
    );
    seen
}

/// Sends `len` as a length prefix alone and checks the node awaits its body:
/// for half a second it neither refuses nor closes (its frames, if any, are
/// read and set aside).
async fn awaited(mesh: &mut Mesh, mut c: RawClient, len: u32) {
    c.send_bytes(&len.to_le_bytes())
        .await
        .expect("the node reads what it is sent");
    let started = Instant::now();
    let window = Duration::from_millis(500);
    while let Some(read) = c
        .next_within(window.saturating_sub(started.elapsed()))
        .await
    {
        assert!(
            matches!(read, Read::Frame(_)),
            "a length of exactly {len} bytes is awaited, not {read:?}"
        );
    }
    let waiting = c.addr();
    drop(c);
    let (reason, _, _) = mesh.a_events.closed_from(waiting).await;
    assert_eq!(reason, CloseReason::Disconnected);
}

#[test]
fn an_oversized_length_prefix_is_refused_before_the_body_arrives() {
    run(async {
        let cfg = config("a", &[]);
        let max_frame = u32::try_from(cfg.limits.max_frame).expect("max_frame fits the prefix");
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let handshake_max = u32::try_from(MAX_HANDSHAKE_RECORD).expect("a small size");
        let record_max = u32::try_from(MAX_RECORD).expect("a small size");

        // Before authentication: a record past the handshake record size.
        let mut big = RawClient::connect(a).await;
        assert_eq!(big.read_version().await, PROTOCOL_VERSION);
        let (_, authenticated, _) =
            refused_from_length(&mut mesh, &mut big, handshake_max + 1).await;
        assert!(!authenticated);
        assert_eq!(
            CloseReason::LimitExceeded(Limit::FrameSize).to_string(),
            "limit exceeded: frame size"
        );
        // The largest handshake record allowed is awaited, not refused.
        let mut patient = RawClient::connect(a).await;
        assert_eq!(patient.read_version().await, PROTOCOL_VERSION);
        awaited(&mut mesh, patient, handshake_max).await;

        // Authenticated: a record past the record size, and the largest length.
        for len in [record_max + 1, u32::MAX] {
            let mut mallory = RawClient::connect(a).await;
            mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
            node_up(&mut mesh, "mallory").await;
            let (_, authenticated, _) = refused_from_length(&mut mesh, &mut mallory, len).await;
            assert!(authenticated);
            node_down(&mut mesh, "mallory").await;
            only_honest_members_left(&mesh).await;
        }
        // The largest record allowed is awaited.
        let mut patient = RawClient::connect(a).await;
        patient.authenticate("patient", 1, SECRET).await;
        awaited(&mut mesh, patient, record_max).await;

        // Inside the channel, a frame's own length past max_frame, sealed:
        // refused from the length alone too.
        let mut mallory = RawClient::connect(a).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        let sealed = mallory.seal_bytes(&(max_frame + 1).to_le_bytes());
        mallory
            .send_bytes(&sealed)
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = mallory.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::FrameSize));
        let (reason, authenticated, _) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::FrameSize));
        assert!(authenticated);
        only_honest_members_left(&mesh).await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn an_unknown_protocol_version_is_refused_as_a_version_mismatch() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let greetings = [
            ("version 1's greeting", version_1_greeting(), 1),
            (
                "a version record of version 2 (the secure channel without metadata)",
                record(&HandshakeRecord::Version(2)),
                2,
            ),
            (
                "a version record of version 3 (records sealed with ChaCha20-Poly1305)",
                record(&HandshakeRecord::Version(3)),
                3,
            ),
            (
                "a version record of version 5",
                record(&HandshakeRecord::Version(5)),
                5,
            ),
            (
                "a version-5 greeting of another shape",
                prefixed(&[0x00, 0x05, 0xab, 0xcd, 0xef, 0x01]),
                5,
            ),
        ];
        for (what, bytes, theirs) in greetings {
            let mut c = RawClient::connect(a).await;
            c.send_bytes(&bytes)
                .await
                .expect("the node reads what it is sent");
            let (reason, ended) = c.expect_closed().await;
            assert_eq!(reason, WireReason::VersionMismatch, "{what}");
            // The node's first record reads, to a node of another version,
            // as a greeting of our version: variant 0, the version first.
            assert_eq!(
                c.received().get(4..6),
                Some(&[0u8, PROTOCOL_VERSION as u8][..]),
                "{what}: {ended:?}"
            );
            let ours = PROTOCOL_VERSION;
            let expected = CloseReason::VersionMismatch { ours, theirs };
            refused_unauthenticated(&mut mesh, c.addr(), expected).await;
            assert_eq!(
                expected.to_string(),
                format!("protocol version mismatch: we speak {ours}, peer speaks {theirs}")
            );
        }

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_wrong_secret_is_refused_as_an_authentication_failure_and_never_answered() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let b_inc = mesh.b.incarnation();
        for (what, node, incarnation, secret) in [
            ("a wrong secret", "eve", 1, &b"not the mesh secret"[..]),
            ("an empty secret", "eve", 1, &b""[..]),
            // Claiming an honest node's id, as it is and as a restart of it
            // (which, authenticated, would replace its ports).
            ("b's id, without the secret", "b", b_inc, &b"a guess"[..]),
            ("a restarted b's id", "b", b_inc + 1, &b"a guess"[..]),
        ] {
            let mut eve = RawClient::connect(a).await;
            let refused = eve.try_authenticate(node, incarnation, secret).await;
            assert_eq!(
                refused,
                Err(NotAuthenticated::Refused(WireReason::AuthenticationFailed)),
                "{what}"
            );
            let ended = eve.until_end(IO_LIMIT).await;
            assert!(ended.reads.is_empty(), "{what}: {ended:?}");
            // The node never answered: its version and its refusal are all
            // it sent, and a greeting that did not open names nobody.
            let records = [
                record(&HandshakeRecord::Version(PROTOCOL_VERSION)),
                record(&HandshakeRecord::Refuse(WireReason::AuthenticationFailed)),
            ]
            .concat();
            assert_eq!(eve.received(), records, "{what}");
            refused_unauthenticated(&mut mesh, eve.addr(), CloseReason::AuthenticationFailed).await;
            assert!(mesh.a.connected_nodes().contains(mesh.b.id()), "{what}");
        }
        assert_eq!(
            CloseReason::AuthenticationFailed.to_string(),
            "authentication failed (wrong secret?)"
        );

        // A guessed Noise message.
        let mut guess = RawClient::connect(a).await;
        guess
            .send_bytes(
                &[
                    record(&HandshakeRecord::Version(PROTOCOL_VERSION)),
                    guessed_noise(),
                ]
                .concat(),
            )
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = guess.expect_closed().await;
        assert_eq!(reason, WireReason::AuthenticationFailed);
        refused_unauthenticated(&mut mesh, guess.addr(), CloseReason::AuthenticationFailed).await;

        assert!(mesh
            .a
            .known_nodes()
            .iter()
            .all(|(n, _)| n.as_str() != "eve"));
        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn an_insider_claiming_the_nodes_own_id_is_refused_before_it_is_answered() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let a_inc = mesh.a.incarnation();
        for (what, incarnation, expected) in [
            ("a's id and incarnation", a_inc, CloseReason::SelfConnection),
            (
                "a's id, another incarnation",
                a_inc + 1,
                CloseReason::DuplicateNodeId,
            ),
        ] {
            let mut twin = RawClient::connect(a).await;
            let refused = twin.try_authenticate("a", incarnation, SECRET).await;
            assert_eq!(
                refused,
                Err(NotAuthenticated::Refused(wire(expected))),
                "{what}"
            );
            let (reason, authenticated, node) = mesh.a_events.closed_from(twin.addr()).await;
            assert_eq!(reason, expected, "{what}");
            assert!(!authenticated, "{what}");
            assert_eq!(node, Some(node_id("a")), "{what}: the greeting opened");
        }
        assert_eq!(
            CloseReason::DuplicateNodeId.to_string(),
            "duplicate node id"
        );

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn ports_a_peer_announces_are_always_its_own_and_never_an_honest_nodes() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a_number = mesh.a_port.id().number();
        let b_number = mesh.b_port.id().number();
        let theirs = |n: u64| PortId::new(node_id("mallory"), 1, n);
        // The numbers of a's and b's ports (the same number when both are
        // their node's first port), and one of its own.
        let announced: Vec<u64> = BTreeSet::from([a_number, b_number, 7])
            .into_iter()
            .collect();

        // An insider announces the port numbers of a's and b's ports, in
        // their group and in a group of its own.
        let mut mallory = RawClient::connect(addr(&mesh.a)).await;
        mallory
            .join(
                "mallory",
                SECRET,
                &[(GROUP, &announced), ("mallory's", &[b_number])],
            )
            .await;
        node_up(&mut mesh, "mallory").await;
        let mut with_mallory = mesh.honest.clone();
        with_mallory.extend(announced.iter().map(|&n| theirs(n)));
        with_mallory.sort();
        eventually("a lists mallory's ports as mallory's", || {
            mesh.a.members(GROUP).as_ref() == Some(&with_mallory)
        })
        .await;
        assert_eq!(mesh.a.members("mallory's"), Some(vec![theirs(b_number)]));
        assert_eq!(mesh.honest_members(&mesh.a), mesh.honest);
        assert_eq!(
            mesh.b.members(GROUP),
            Some(mesh.honest.clone()),
            "a never relays a peer's memberships"
        );

        // It announces that a's and b's port numbers (and one it never had)
        // leave, and that b's port is down.
        mallory
            .send(&update(&[(GROUP, &[], &[a_number, b_number, 999])]))
            .await;
        mallory.send(&Frame::PortDown { port: b_number }).await;
        mallory.send(&Frame::Ping).await;
        let mut left = mesh.honest.clone();
        left.push(theirs(7));
        left.sort();
        eventually("only mallory's own ports left", || {
            mesh.a.members(GROUP).as_ref() == Some(&left)
        })
        .await;
        assert_eq!(mesh.honest_members(&mesh.a), mesh.honest);

        drop(mallory);
        assert_eq!(
            node_down(&mut mesh, "mallory").await,
            CloseReason::Disconnected
        );
        only_honest_members_left(&mesh).await;
        assert_eq!(mesh.a.members("mallory's"), None);

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_client_that_never_finishes_the_handshake_is_closed_after_the_handshake_timeout() {
    run(async {
        let mut cfg = config("a", &[]);
        let limit = Duration::from_secs(1);
        cfg.timeouts.handshake_timeout = limit;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let started = Instant::now();

        // Trickles a valid first message one byte every 100 ms: bytes
        // arriving do not extend the handshake.
        let trickler = RawClient::connect(a).await;
        let mut writer = trickler.stream();
        let greeting = first_message(&hello("trickler", 1), SECRET);
        let trickle = smol::spawn(async move {
            for byte in greeting {
                if writer.write_all(&[byte]).await.is_err() {
                    break;
                }
                Timer::after(Duration::from_millis(100)).await;
            }
        });
        // Connects and says nothing.
        let silent = RawClient::connect(a).await;
        // Sends its version and never its Noise message.
        let mut versioned = RawClient::connect(a).await;
        versioned
            .send_record(&HandshakeRecord::Version(PROTOCOL_VERSION))
            .await;
        // Sends part of a record.
        let mut partial = RawClient::connect(a).await;
        let mut bytes = 100u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        partial
            .send_bytes(&bytes)
            .await
            .expect("the node reads what it is sent");
        // Knows the secret, is answered, and never confirms the key.
        let mut unconfirmed = RawClient::connect(a).await;
        unconfirmed
            .send_bytes(&first_message(&hello("unconfirmed", 1), SECRET))
            .await
            .expect("the node reads what it is sent");

        for mut slow in [trickler, silent, versioned, partial, unconfirmed] {
            let ended = slow.until_end(IO_LIMIT).await;
            match ended.reads.as_slice() {
                // Answered: the node says why in a sealed close frame.
                [Read::Version(PROTOCOL_VERSION), Read::Noise, Read::Sealed] => {}
                _ => assert_eq!(
                    ended.close_reason(),
                    Some(WireReason::HandshakeTimeout),
                    "{ended:?}"
                ),
            }
            let (reason, authenticated, _) = mesh.a_events.closed_from(slow.addr()).await;
            assert_eq!(reason, CloseReason::HandshakeTimeout);
            assert_eq!(reason.to_string(), "handshake timeout");
            assert!(!authenticated);
            let waited = started.elapsed();
            assert!(
                waited >= limit - Duration::from_millis(50),
                "closed early: {waited:?}"
            );
        }
        drop(trickle);
        assert!(
            mesh.a_events.history.iter().all(
                |e| !matches!(e, NodeEvent::NodeUp { node, .. } if node.as_str() == "unconfirmed")
            ),
            "answered is not authenticated"
        );

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn silent_sockets_holding_every_handshake_slot_never_keep_an_honest_node_out() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.limits.max_unauthenticated = 4;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);

        // A client holds every slot, and keeps opening more silent sockets
        // (each past the table takes the oldest one's slot) while an honest
        // node joins through a.
        let mut silent = Vec::new();
        for _ in 0..4 {
            let mut c = RawClient::connect(a).await;
            c.read_version().await; // accepted and greeted: one slot taken
            silent.push(c);
        }
        let holding = Arc::new(AtomicUsize::new(0));
        let held = holding.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let churn = smol::spawn(async move {
            let mut open = Vec::new();
            while !stopped.load(Ordering::Relaxed) && open.len() < 200 {
                open.push(RawClient::connect(a).await);
                held.fetch_add(1, Ordering::Relaxed);
                Timer::after(Duration::from_millis(2)).await;
            }
            open
        });
        eventually("the churn is under way", || {
            holding.load(Ordering::Relaxed) >= 8
        })
        .await;
        let started = Instant::now();
        let d = start(config("d", &[a])).await;
        eventually("d joins through a", || {
            mesh.a.connected_nodes().contains(d.id()) && d.connected_nodes().contains(mesh.a.id())
        })
        .await;
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let churned = churn.await;
        eprintln!(
            "d joined in {took:?} while {} silent sockets churned",
            churned.len() + silent.len()
        );

        // The slots went to the newest: the oldest silent ones were closed
        // with a reason, nobody was refused outright, nobody authenticated.
        let (reason, _, _) = mesh.a_events.closed_from(silent[0].addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::Connections));
        let stats = mesh.a.stats();
        assert_eq!(stats.inbound_refused, 0, "{stats:?}");
        assert!(stats.connections - stats.authenticated <= 4, "{stats:?}");
        drop(churned);
        drop(silent);
        mesh.assert_intact().await;
        d.shutdown().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_flood_of_groups_past_max_groups_per_peer_is_closed_as_limit_exceeded() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.limits.max_groups_per_peer = 8;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let names: Vec<String> = (0..9).map(|i| format!("flood-{i}")).collect();
        let groups: Vec<(&str, &[u64])> = names.iter().map(|n| (n.as_str(), &[1u64][..])).collect();

        // Nine groups in the snapshot.
        let mut m1 = RawClient::connect(a).await;
        m1.authenticate("mallory-1", 1, SECRET).await;
        m1.send(&sync(&groups, false)).await;
        let (reason, _) = m1.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::Groups));
        let (reason, authenticated, node) = mesh.a_events.closed_from(m1.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::Groups));
        assert_eq!(reason.to_string(), "limit exceeded: groups per peer");
        assert!(authenticated);
        assert_eq!(node, Some(node_id("mallory-1")));

        // Eight groups listed, then a ninth.
        let mut m2 = RawClient::connect(a).await;
        m2.join("mallory-2", SECRET, groups.get(..8).expect("nine groups"))
            .await;
        node_up(&mut mesh, "mallory-2").await;
        assert_eq!(mesh.a.groups().len(), 9, "g and eight of mallory-2's");
        m2.send(&update(&[(names[8].as_str(), &[1], &[])])).await;
        let (reason, _) = m2.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::Groups));
        let (reason, _, _) = mesh.a_events.closed_from(m2.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::Groups));
        assert_eq!(
            node_down(&mut mesh, "mallory-2").await,
            CloseReason::LimitExceeded(Limit::Groups)
        );
        eventually("mallory-2's groups are gone", || {
            mesh.a.groups() == vec![GROUP.to_owned()]
        })
        .await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_flood_of_members_past_max_members_per_peer_is_closed_as_limit_exceeded() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.limits.max_members_per_peer = 16;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let seventeen: Vec<u64> = (0..17).collect();

        // Seventeen ports in the snapshot.
        let mut m1 = RawClient::connect(a).await;
        m1.authenticate("mallory-1", 1, SECRET).await;
        m1.send(&sync(&[("many", &seventeen)], true)).await;
        let (reason, _) = m1.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::Members));
        let (reason, authenticated, _) = mesh.a_events.closed_from(m1.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::Members));
        assert_eq!(reason.to_string(), "limit exceeded: members per peer");
        assert!(authenticated);
        assert_eq!(
            mesh.a.members("many"),
            None,
            "an over-limit snapshot is never applied"
        );

        // Sixteen listed (one group), then one more in another group.
        let mut m2 = RawClient::connect(a).await;
        m2.join("mallory-2", SECRET, &[("many", &seventeen[..16])])
            .await;
        node_up(&mut mesh, "mallory-2").await;
        assert_eq!(mesh.a.members("many").map(|m| m.len()), Some(16));
        m2.send(&update(&[("more", &[100], &[])])).await;
        let (reason, _) = m2.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::Members));
        let (reason, _, _) = mesh.a_events.closed_from(m2.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::Members));
        assert_eq!(
            node_down(&mut mesh, "mallory-2").await,
            CloseReason::LimitExceeded(Limit::Members)
        );
        eventually("mallory-2's members are gone", || {
            mesh.a.members("many").is_none() && mesh.a.members("more").is_none()
        })
        .await;

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn metadata_past_max_meta_or_max_meta_bytes_per_peer_is_closed_as_limit_exceeded() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.limits.max_meta = 64;
        cfg.limits.max_meta_bytes_per_peer = 256;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);

        // One member with 65 bytes of metadata.
        let mut m1 = RawClient::connect(a).await;
        m1.authenticate("mallory-1", 1, SECRET).await;
        m1.send(&sync_with_meta(&[("fat", &[1], &[7; 65])], true))
            .await;
        let (reason, _) = m1.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::MetaSize));
        let (reason, _, _) = mesh.a_events.closed_from(m1.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::MetaSize));
        assert_eq!(reason.to_string(), "limit exceeded: metadata size");
        assert_eq!(mesh.a.members("fat"), None);

        // Five members of 64 bytes each: 320 bytes, past 256 per peer.
        let mut m2 = RawClient::connect(a).await;
        m2.authenticate("mallory-2", 1, SECRET).await;
        m2.send(&sync_with_meta(
            &[("fat", &[1, 2, 3, 4, 5], &[7; 64])],
            true,
        ))
        .await;
        let (reason, _) = m2.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::MetaBytes));
        let (reason, _, _) = mesh.a_events.closed_from(m2.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::MetaBytes));
        assert_eq!(
            mesh.a.members("fat"),
            None,
            "an over-limit snapshot is never applied"
        );

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

/// a (knowing at most `max_known` nodes) meshed with b, and mallory
/// authenticated to a.
async fn mesh_and_mallory(max_known: usize) -> (Mesh, RawClient) {
    let mut cfg = config("a", &[]);
    cfg.limits.max_known_nodes = max_known;
    let mut mesh = Mesh::start(cfg).await;
    let mut mallory = RawClient::connect(addr(&mesh.a)).await;
    mallory.join("mallory", SECRET, &[]).await;
    node_up(&mut mesh, "mallory").await;
    (mesh, mallory)
}

#[test]
fn gossip_of_more_nodes_than_max_known_nodes_keeps_the_table_bounded() {
    run(async {
        let (mut mesh, mut mallory) = mesh_and_mallory(4).await;
        assert_eq!(mesh.a.known_nodes().len(), 2, "b and mallory");

        // Names without addresses are never dialled: each new one evicts the
        // unconnected entry seen longest ago, so the table stays bounded and
        // the connected nodes stay in it.
        let ghosts: Vec<String> = (0..50).map(|i| format!("ghost-{i}")).collect();
        mallory.send(&peers(&ghosts)).await;
        // A frame sent after the gossip is still read: mallory was not closed.
        mallory.send(&update(&[("after-gossip", &[1], &[])])).await;
        eventually("mallory's later registration arrives", || {
            mesh.a.members("after-gossip").is_some()
        })
        .await;
        let known: Vec<_> = mesh.a.known_nodes().into_iter().map(|(n, _)| n).collect();
        assert!(known.len() <= 4, "{known:?}");
        for node in ["b", "mallory"] {
            assert!(known.contains(&node_id(node)), "{node} in {known:?}");
        }

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn gossip_when_every_known_node_is_connected_is_closed_as_limit_exceeded() {
    run(async {
        let (mut mesh, mut mallory) = mesh_and_mallory(2).await;

        // b and mallory fill the table and are both connected: no room.
        mallory.send(&peers(&["ghost".to_string()])).await;
        let (reason, _) = mallory.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::KnownNodes));
        let (reason, authenticated, _) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::KnownNodes));
        assert_eq!(reason.to_string(), "limit exceeded: known nodes");
        assert!(authenticated);
        assert!(mesh
            .a
            .known_nodes()
            .iter()
            .all(|(n, _)| *n != node_id("ghost")));

        mesh.assert_intact().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_peer_that_never_reads_is_closed_when_its_send_buffer_fills() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.send_buffer = 1024 * 1024;
        let mut mesh = Mesh::start(cfg).await;
        let mut mallory = RawClient::connect(addr(&mesh.a)).await;
        mallory.join("mallory", SECRET, &[]).await;
        node_up(&mut mesh, "mallory").await;

        // From now on mallory reads nothing, while a sends every peer its
        // changes: a port joins 64 groups, then closes (ending all 64), over
        // and over; each round ends with a marker port b must see.
        let names: Vec<String> = (0..64)
            .map(|i| format!("{i:x>width$}", width = groupmesh_smol::MAX_GROUP_NAME))
            .collect();
        let overflowed = CloseReason::LimitExceeded(Limit::SendBuffer);
        let started = Instant::now();
        let mut rounds = 0;
        while !mesh.a.stats().closed.iter().any(|(r, _)| *r == overflowed) {
            for _ in 0..8 {
                let port = mesh.a.open_port();
                let regs: Vec<_> = names
                    .iter()
                    .map(|n| mesh.a.register(n, &port).expect("a valid group"))
                    .collect();
                // Let each join go out before the port closes, so that the
                // changes are not merged away before they are sent.
                Timer::after(Duration::from_millis(1)).await;
                drop(port); // ends every registration
                drop(regs); // already ended: sends nothing
            }
            // Paced to b, which reads (changes reach a peer in order: once b
            // lists the marker, it read the round): only mallory's backlog grows.
            let marker = mesh.a.open_port();
            let _on = mesh.a.register("marker", &marker).expect("a valid group");
            eventually("b reads a's changes", || {
                mesh.b.members("marker").as_deref() == Some(std::slice::from_ref(marker.id()))
            })
            .await;
            rounds += 1;
            // Some 5 MB fill the kernel's buffers on loopback and the
            // send buffer: about 1.5 s on an idle machine.
            assert!(
                started.elapsed() < Duration::from_secs(9),
                "mallory's connection outlived {rounds} rounds of changes"
            );
        }
        let (reason, authenticated, node) = mesh.a_events.closed_from(mallory.addr()).await;
        assert_eq!(reason, overflowed);
        assert_eq!(reason.to_string(), "limit exceeded: send buffer");
        assert!(authenticated);
        assert_eq!(node, Some(node_id("mallory")));
        assert_eq!(node_down(&mut mesh, "mallory").await, overflowed);
        eprintln!(
            "send buffer full after {rounds} rounds of changes in {:?}",
            started.elapsed()
        );
        drop(mallory);

        // b read every change in time: still connected, and agrees.
        eventually("b has seen the last change", || {
            names.iter().all(|n| mesh.b.members(n).is_none())
        })
        .await;
        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn authenticated_peers_with_new_ids_cannot_grow_known_nodes_past_max_known_nodes() {
    run(async {
        let mut cfg = config("a", &[]);
        let max_known = 4;
        cfg.limits.max_known_nodes = max_known;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        for i in 0..6 {
            let name = format!("drifter-{i}");
            let mut c = RawClient::connect(a).await;
            if c.try_authenticate(&name, 1, SECRET).await.is_ok() {
                // Fails if the node already closed the connection: fine.
                let _ = c.send_bytes(&encode(&sync(&[], true))).await;
            }
            // Either it is up or refused; either way it leaves again.
            mesh.a_events
                .expect(&format!("{name} is up or refused"), |e| match e {
                    NodeEvent::NodeUp { node, .. } => node.as_str() == name,
                    NodeEvent::ConnectionClosed { addr, .. } => *addr == c.addr(),
                    _ => false,
                })
                .await;
            drop(c);
            let known = mesh.a.stats().known_nodes;
            assert!(
                known <= max_known,
                "a knows {known} nodes, more than max_known_nodes = {max_known}: {:?}",
                mesh.a.known_nodes()
            );
        }
        mesh.assert_intact().await;
        mesh.shutdown().await;
    });
}

/// Starts the honest node `s` at a's seed address, and waits until a dials
/// its seed again and reaches it.
async fn honest_node_at(seed: SocketAddr, mesh: &Mesh) -> Node {
    let mut cfg = config("s", &[]);
    cfg.bind = vec![seed];
    let s = start(cfg).await;
    eventually("a dials its seed again and reaches s", || {
        mesh.a.connected_nodes().contains(s.id())
    })
    .await;
    s
}

#[test]
fn a_first_message_reflected_from_a_seed_address_does_not_disable_the_seed() {
    run(async {
        // Whoever answers at a's seed address first (here: the attacker)
        // sends a's own version record and Noise message back.
        let (seed, listener) = proxy::bind();
        let mut mesh = Mesh::start(config("a", &[seed])).await;
        let (stream, _) = common::raw_client::timeout(IO_LIMIT, listener.accept())
            .await
            .expect("a dials its seed")
            .expect("accepting a's dial");
        let mut mirror = RawClient::accepted(stream);
        assert_eq!(mirror.read_version().await, PROTOCOL_VERSION);
        assert_eq!(mirror.next().await, Read::Noise, "a's first message");
        let reflected = mirror.received().to_vec();
        mirror
            .send_bytes(&reflected)
            .await
            .expect("a reads what it is sent");
        let (reason, _) = mirror.expect_closed().await;
        assert_eq!(reason, WireReason::AuthenticationFailed);
        let (reason, authenticated, node) = mesh.a_events.closed_from(seed).await;
        assert_eq!(reason, CloseReason::AuthenticationFailed);
        assert!(!authenticated);
        assert_eq!(node, None);
        drop(mirror);
        drop(listener);

        // The honest node that belongs at that address starts: a must still
        // dial it (with backoff), as it does for a seed that failed.
        let s = honest_node_at(seed, &mesh).await;

        mesh.assert_intact().await;
        s.shutdown().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_seed_address_that_relays_the_node_to_itself_is_refused_and_only_backed_off() {
    run(async {
        // The attacker answers at a's seed address and relays a's dial,
        // byte for byte both ways, to a's own listener: to a it looks
        // exactly as if the seed address led back to itself.
        let (seed, listener) = proxy::bind();
        let mut cfg = config("a", &[seed]);
        cfg.timeouts.forget_after = Duration::from_secs(60);
        let mut mesh = Mesh::start(cfg).await;
        let relay = Proxy::start_on(listener, addr(&mesh.a));
        let (reason, authenticated, node) = mesh.a_events.closed_from(seed).await;
        // a's listener read a's own greeting and refused it before
        // answering; a's dial read that refusal: a hint, never proof.
        assert_eq!(reason, CloseReason::Remote(WireReason::SelfConnection));
        assert_eq!(reason.to_string(), "peer closed: connection to self");
        assert!(!authenticated);
        assert_eq!(node, None);
        let stats = mesh.a.stats();
        assert!(
            stats
                .closed
                .iter()
                .any(|(r, _)| *r == CloseReason::SelfConnection),
            "a refused its own greeting: {stats:?}"
        );
        drop(relay);
        eventually("the relay no longer listens", || {
            std::net::TcpStream::connect(seed).is_err()
        })
        .await;

        // The refusal is unauthenticated: the seed is only backed off, and
        // a reaches the honest node at that address long before forget_after.
        let s = honest_node_at(seed, &mesh).await;

        mesh.assert_intact().await;
        s.shutdown().await;
        mesh.shutdown().await;
    });
}

/// How one flooding client fared.
struct Flooded {
    served: bool,
    refused: usize,
}

/// Connects until served (or 4 s pass), then as `flood-{i}` announces the
/// most groups and members allowed and churns them for a while, within
/// every limit, then leaves.
async fn flood_client(
    target: std::net::SocketAddr,
    i: usize,
    groups: usize,
    ports: u64,
) -> Flooded {
    let name = format!("flood-{i}");
    let names: Vec<String> = (0..groups).map(|g| format!("{name}-{g}")).collect();
    let numbers: Vec<u64> = (0..ports / groups as u64).collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut refused = 0;
    loop {
        let mut c = RawClient::connect(target).await;
        if c.try_authenticate(&name, 1, SECRET).await.is_err() {
            refused += 1;
            if Instant::now() > deadline {
                return Flooded {
                    served: false,
                    refused,
                };
            }
            Timer::after(Duration::from_millis(10)).await;
            continue;
        }
        let snapshot: Vec<(&str, &[u64])> =
            names.iter().map(|n| (n.as_str(), &numbers[..])).collect();
        c.send(&sync(&snapshot, true)).await;
        for round in 0..40 {
            let g = names[round % names.len()].as_str();
            c.send(&update(&[(g, &[], &numbers), (g, &numbers, &[])]))
                .await;
            if round % 10 == 0 {
                c.send(&Frame::Ping).await;
            }
            Timer::after(Duration::from_millis(5)).await;
        }
        return Flooded {
            served: true,
            refused,
        };
    }
}

#[test]
fn a_flood_of_connections_and_frames_within_the_limits_keeps_memory_bounded() {
    run(async {
        let mut cfg = config("a", &[]);
        cfg.limits.max_connections = 10;
        cfg.limits.max_unauthenticated = 4;
        cfg.limits.max_groups_per_peer = 4;
        cfg.limits.max_members_per_peer = 16;
        cfg.event_buffer = 1 << 16;
        let limits = cfg.limits.clone();
        let mut mesh = Mesh::start(cfg).await;
        let target = addr(&mesh.a);
        let honest = mesh.honest.len();
        let max_members = honest + limits.max_connections * limits.max_members_per_peer;
        let max_groups = 1 + limits.max_connections * limits.max_groups_per_peer;

        let clients: Vec<_> = (0..24)
            .map(|i| {
                smol::spawn(flood_client(
                    target,
                    i,
                    limits.max_groups_per_peer,
                    limits.max_members_per_peer as u64,
                ))
            })
            .collect();
        let peak_members = Arc::new(AtomicUsize::new(0));
        let peak_connections = Arc::new(AtomicUsize::new(0));
        let peak_pending = Arc::new(AtomicUsize::new(0));
        let sample = || {
            let s = mesh.a.stats();
            let pending = s.connections - s.authenticated;
            assert!(s.connections <= limits.max_connections, "{s:?}");
            assert!(pending <= limits.max_unauthenticated, "{s:?}");
            assert!(s.members <= max_members, "{s:?}");
            assert!(s.groups <= max_groups, "{s:?}");
            peak_members.fetch_max(s.members, Ordering::Relaxed);
            peak_connections.fetch_max(s.connections, Ordering::Relaxed);
            peak_pending.fetch_max(pending, Ordering::Relaxed);
        };
        let sampling = async {
            loop {
                sample();
                Timer::after(Duration::from_millis(2)).await;
            }
        };
        let flooding = async {
            let mut results = Vec::new();
            for c in clients {
                results.push(c.await);
            }
            results
        };
        let results = futures_lite::future::or(flooding, sampling).await;
        sample();
        let served = results.iter().filter(|r| r.served).count();
        let refused: usize = results.iter().map(|r| r.refused).sum();
        eprintln!(
            "flood: {served} clients served, {refused} connections refused; peak {} connections ({} in handshake), {} members",
            peak_connections.load(Ordering::Relaxed),
            peak_pending.load(Ordering::Relaxed),
            peak_members.load(Ordering::Relaxed),
        );
        assert!(
            served > limits.max_connections,
            "connections turned over: {served} served"
        );
        assert!(refused > 0, "the flood went past the connection limits");
        // Each was refused at accept, or gave its handshake slot to a newer one.
        mesh.a_events.settle().await;
        let evicted = mesh
            .a_events
            .history
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    NodeEvent::ConnectionClosed {
                        reason: CloseReason::LimitExceeded(Limit::Connections),
                        authenticated: false,
                        ..
                    }
                )
            })
            .count() as u64;
        assert!(mesh.a.stats().inbound_refused + evicted >= refused as u64);
        assert!(peak_members.load(Ordering::Relaxed) > honest + limits.max_members_per_peer);

        eventually("every flooding connection is gone", || {
            let s = mesh.a.stats();
            s.connections == 1 && s.members == honest && s.groups == 1
        })
        .await;
        mesh.a_events.settle().await;
        let flooders: BTreeSet<String> = mesh
            .a_events
            .history
            .iter()
            .filter_map(|e| match e {
                NodeEvent::ConnectionClosed {
                    node: Some(n),
                    reason,
                    authenticated,
                    ..
                } if n.as_str().starts_with("flood-") => {
                    let evicted =
                        !authenticated && *reason == CloseReason::LimitExceeded(Limit::Connections);
                    assert!(*reason == CloseReason::Disconnected || evicted, "{e:?}");
                    Some(n.to_string())
                }
                _ => None,
            })
            .collect();
        assert!(flooders.len() <= 24);

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn an_outsider_splicing_two_honest_nodes_authenticates_neither_connection_and_invents_no_member() {
    run(async {
        // a and b, connected, each with a port in the group; both monitor it.
        let mut cfg = config("a", &[]);
        cfg.timeouts.handshake_timeout = Duration::from_secs(1);
        let mut mesh = Mesh::start(cfg).await;
        // The outsider, without the secret, opens a connection to a and one
        // to b and forwards every byte each sends to the other, both ways.
        let (splice, at_a, at_b) = Proxy::splice(addr(&mesh.a), addr(&mesh.b)).await;

        // Both accepted an inbound connection, so both are responders: each
        // sends its version and waits for an initiator's Noise message that
        // only a dialler could write. Neither authenticates; the handshake
        // timeout ends both.
        let ends = [
            CloseReason::HandshakeTimeout,
            CloseReason::Remote(WireReason::HandshakeTimeout),
        ];
        let (reason, authenticated, node) = mesh.a_events.closed_from(at_a).await;
        assert!(ends.contains(&reason), "a: {reason:?}");
        assert!(
            !authenticated && node.is_none(),
            "a authenticated the splice"
        );
        let (reason, authenticated, node) = mesh.b_events.closed_from(at_b).await;
        assert!(ends.contains(&reason), "b: {reason:?}");
        assert!(
            !authenticated && node.is_none(),
            "b authenticated the splice"
        );
        let recorded = splice.recorded(0).expect("the splice's connection");
        for way in [Way::ToTarget, Way::ToDialler] {
            let records = recorded.way(way);
            assert_eq!(
                records.first(),
                Some(&record(&HandshakeRecord::Version(PROTOCOL_VERSION))),
                "{way:?}: {records:?}"
            );
            assert!(
                records.len() <= 2,
                "{way:?}: a version and at most a refusal crossed: {records:?}"
            );
        }

        // No monitor ever listed a port nobody registered, and the a–b
        // connection never went down.
        mesh.a_changes.assert_only(&mesh.honest, "a");
        mesh.b_changes.assert_only(&mesh.honest, "b");
        mesh.assert_intact().await;
        mesh.shutdown().await;
    });
}

/// An on-path attacker between a and b: b dials a through the proxy, which
/// does `tamper` to one sealed record going `way` once both are up. The
/// receiving side closes that connection as `Decrypt`; the pair
/// reconnects; views converge; no monitor lists a port nobody registered.
async fn on_path(way: Way, tamper: Tamper) {
    let (mut mesh, proxy) = Mesh::start_via_proxy(config("a", &[])).await;
    mesh.a_events.skip_pending().await;
    mesh.b_events.skip_pending().await;
    let (a_name, b_name) = (mesh.a.id().to_string(), mesh.b.id().to_string());
    // The records going `way` are read by a (b dialled: b → a is "to target").
    let (receiver, sender, receiving, sending) = match way {
        Way::ToTarget => (&mesh.a, &mesh.b, &mut mesh.a_events, &mut mesh.b_events),
        Way::ToDialler => (&mesh.b, &mesh.a, &mut mesh.b_events, &mut mesh.a_events),
    };
    let (receiver_name, sender_name) = match way {
        Way::ToTarget => (&a_name, &b_name),
        Way::ToDialler => (&b_name, &a_name),
    };

    // Keepalive pings flow both ways: the next sealed record comes soon.
    proxy.arm(way, tamper);
    let what = format!("{receiver_name} closes the connection to {sender_name}");
    let closed = receiving
        .expect(&what, |e| {
            matches!(e, NodeEvent::ConnectionClosed { node: Some(n), authenticated: true, .. }
                if n.as_str() == sender_name)
        })
        .await;
    let NodeEvent::ConnectionClosed { reason, .. } = closed else {
        unreachable!("matched a ConnectionClosed above")
    };
    assert_eq!(reason, CloseReason::Decrypt, "{tamper:?} {way:?}");
    assert_eq!(down(receiving, sender_name).await, CloseReason::Decrypt);
    assert!(
        receiver.stats().closed.contains(&(CloseReason::Decrypt, 1)),
        "{:?}",
        receiver.stats()
    );
    // The sender hears why, sealed, or sees the connection end.
    let lost = down(sending, receiver_name).await;
    assert!(
        [
            CloseReason::Remote(WireReason::Decrypt),
            CloseReason::Disconnected
        ]
        .contains(&lost),
        "{sender_name} lost {receiver_name} with {lost:?}"
    );
    let done = proxy.done();
    assert!(
        matches!(done.as_slice(), [d] if d.conn == 0 && d.way == way && d.tamper == tamper && d.record >= 2),
        "the proxy did it once, to a sealed record: {done:?}"
    );

    // The pair reconnects (the proxy now forwards honestly) and agrees again.
    up(receiving, sender_name).await;
    up(sending, receiver_name).await;
    let honest = mesh.honest.clone();
    eventually("a and b list both honest ports again", || {
        [receiver, sender]
            .iter()
            .all(|n| n.members(GROUP).as_ref() == Some(&honest))
    })
    .await;
    mesh.a_changes.assert_only(&honest, "a");
    mesh.b_changes.assert_only(&honest, "b");
    mesh.shutdown().await;
    drop(proxy);
}

/// [`on_path`] each way, each on a new pair.
fn on_path_both_ways(tamper: Tamper) {
    run(async {
        on_path(Way::ToTarget, tamper).await;
        on_path(Way::ToDialler, tamper).await;
    });
}

#[test]
fn a_bit_flipped_on_the_path_closes_the_connection_as_decrypt_and_the_pair_reconnects() {
    on_path_both_ways(Tamper::FlipBit);
}

#[test]
fn a_record_injected_on_the_path_closes_the_connection_as_decrypt_and_the_pair_reconnects() {
    on_path_both_ways(Tamper::Inject);
}

#[test]
fn a_record_replayed_on_the_path_closes_the_connection_as_decrypt_and_the_pair_reconnects() {
    on_path_both_ways(Tamper::Replay);
}

#[test]
fn a_record_dropped_on_the_path_closes_the_connection_as_decrypt_and_the_pair_reconnects() {
    on_path_both_ways(Tamper::Drop);
}

#[test]
fn two_records_reordered_on_the_path_close_the_connection_as_decrypt_and_the_pair_reconnects() {
    on_path_both_ways(Tamper::Reorder);
}

#[test]
fn a_recorded_first_message_replayed_on_a_new_connection_never_authenticates_nor_touches_the_live_one(
) {
    run(async {
        // b joins a through an on-path proxy that records every record:
        // b's version and first Noise message, a real and honest greeting.
        let mut cfg = config("a", &[]);
        cfg.timeouts.handshake_timeout = Duration::from_secs(1);
        let (mut mesh, proxy) = Mesh::start_via_proxy(cfg).await;
        let a = addr(&mesh.a);
        let recorded = proxy.recorded(0).expect("b's connection was recorded");
        let first = recorded
            .to_target
            .get(..2)
            .expect("b's version and first Noise message were recorded")
            .concat();
        let rest = recorded.to_target.get(2..).unwrap_or_default().concat();
        assert!(!rest.is_empty(), "b's key confirmation was recorded");
        mesh.a_events.skip_pending().await;
        let since = mesh.a_events.history.len();
        let authenticated_before = mesh.a.stats().authenticated;

        for (what, then, expected) in [
            ("then silence", Vec::new(), CloseReason::HandshakeTimeout),
            (
                "then b's recorded key confirmation and frames",
                rest.clone(),
                CloseReason::AuthenticationFailed,
            ),
            (
                "then a guessed key confirmation",
                garbage_record(),
                CloseReason::AuthenticationFailed,
            ),
        ] {
            let mut replay = RawClient::connect(a).await;
            replay
                .send_bytes(&first)
                .await
                .expect("the node reads what it is sent");
            // The greeting opens under the key, so the node answers: it
            // cannot tell a recording yet, and nothing else changes.
            assert_eq!(replay.read_version().await, PROTOCOL_VERSION, "{what}");
            assert_eq!(replay.next().await, Read::Noise, "{what}: the answer");
            assert!(mesh.a.connected_nodes().contains(mesh.b.id()), "{what}");
            assert_eq!(mesh.a.stats().authenticated, authenticated_before);
            if !then.is_empty() {
                replay
                    .send_bytes(&then)
                    .await
                    .expect("the node reads what it is sent");
            }
            // Nobody can use the answer: the key depends on a's fresh
            // ephemeral key, which the recording never saw. The node says
            // why in a sealed close frame.
            let ended = replay.until_end(IO_LIMIT).await;
            assert_eq!(ended.reads, [Read::Sealed], "{what}");
            let (reason, authenticated, node) = mesh.a_events.closed_from(replay.addr()).await;
            assert_eq!(reason, expected, "{what}");
            assert!(!authenticated, "{what}");
            assert_eq!(node, Some(node_id("b")), "{what}: the greeting names b");
        }

        mesh.a_events.settle().await;
        assert!(
            mesh.a_events.history[since..]
                .iter()
                .all(|e| !matches!(e, NodeEvent::NodeUp { .. })),
            "a replay made a report a node up"
        );
        assert_eq!(proxy.recorded(1).map(|_| ()), None, "b never re-dialled");
        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
        drop(proxy);
    });
}
