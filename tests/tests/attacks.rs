//! Hostile input over real TCP against a real node (groupmesh-smol).
//!
//! Every test starts an attacked node `a` with an honest peer `b` (both with
//! a port registered in one group), attacks `a` with a raw client that speaks
//! bytes, and checks that:
//! - the offending connection is closed, with the reason the user sees in
//!   `a`'s events (and, where the node can still tell the peer, in the close
//!   frame it sends back);
//! - no node panics (panics on the runtime's threads fail the test);
//! - `a` and `b` stay connected, every honest port stays listed on both and
//!   `a`'s monitor never sees one leave;
//! - a new honest node can still join afterwards.
//!
//! `docs/SECURITY.md` maps every attack to its test.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::AsyncWriteExt;
use groupmesh_core::wire::{Frame, Hello, PROTOCOL_VERSION};
use groupmesh_core::WireReason;
use groupmesh_smol::{CloseReason, Limit, NodeEvent, NodeId, PortId};
use smol::Timer;

use common::raw_client::{
    encode, fresh_nonce, hello, peers, sync, update, RawClient, Read, IO_LIMIT,
};
use common::{addr, config, eventually, run, start, Mesh, Recorder, GROUP, SECRET};

/// A well-formed length prefix around a body that is no frame.
fn garbage_frame() -> Vec<u8> {
    let mut bytes = 8u32.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0xff; 8]);
    bytes
}

/// A length prefix and `body`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len())
        .expect("a short body")
        .to_le_bytes()
        .to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn node_id(name: &str) -> NodeId {
    NodeId::new(name).expect("a valid node id")
}

/// Waits for `a`'s notice that `name` is up.
async fn node_up(mesh: &mut Mesh, name: &str) {
    mesh.a_events
        .expect(
            &format!("{name} is up"),
            |e| matches!(e, NodeEvent::NodeUp { node, .. } if node.as_str() == name),
        )
        .await;
}

/// Waits for `a`'s notice that `name` is down, and returns why.
async fn node_down(mesh: &mut Mesh, name: &str) -> CloseReason {
    match mesh
        .a_events
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

#[test]
fn garbage_before_the_handshake_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);

        let mut junk = RawClient::connect(a).await;
        junk.send_bytes(&garbage_frame())
            .await
            .expect("the node reads what it is sent");
        let (reason, ended) = junk.expect_closed().await;
        assert_eq!(reason, WireReason::Malformed);
        assert!(
            matches!(
                ended.frames.as_slice(),
                [Frame::Hello(_), Frame::Close { .. }]
            ),
            "nothing but the greeting and the close: {ended:?}"
        );
        let (reason, authenticated, node) = mesh.a_events.closed_from(junk.addr()).await;
        assert_eq!(reason, CloseReason::Malformed);
        assert_eq!(reason.to_string(), "malformed frame");
        assert!(!authenticated);
        assert_eq!(node, None);

        // Another protocol: its first four bytes read as a length far past
        // the frame size, refused before anything more is buffered.
        let mut http = RawClient::connect(a).await;
        http.send_bytes(b"GET / HTTP/1.1\r\nHost: groupmesh\r\n\r\n")
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = http.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::FrameSize));
        let (reason, _, _) = mesh.a_events.closed_from(http.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::FrameSize));

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn garbage_after_authentication_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let mut mallory = RawClient::connect(addr(&mesh.a)).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        let theirs = PortId::new(node_id("mallory"), 1, 1);
        assert!(
            mesh.a.members(GROUP).is_some_and(|m| m.contains(&theirs)),
            "an authenticated peer's own port is listed"
        );

        mallory
            .send_bytes(&garbage_frame())
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

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn frames_in_the_wrong_state_are_refused_as_unexpected() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let b_number = mesh.b_port.id().number();
        let before_auth: [(&str, Vec<Frame>); 4] = [
            (
                "memberships before any greeting",
                vec![sync(&[(GROUP, &[b_number])], true)],
            ),
            (
                "a proof before any greeting",
                vec![Frame::Auth { mac: [0; 32] }],
            ),
            (
                "a second greeting",
                vec![
                    Frame::Hello(Box::new(hello("twice", 1))),
                    Frame::Hello(Box::new(hello("twice", 1))),
                ],
            ),
            ("a ping before authentication", vec![Frame::Ping]),
        ];
        for (what, frames) in before_auth {
            let mut c = RawClient::connect(a).await;
            for f in &frames {
                c.send(f).await;
            }
            let (reason, _) = c.expect_closed().await;
            assert_eq!(reason, WireReason::UnexpectedFrame, "{what}");
            let (reason, authenticated, _) = mesh.a_events.closed_from(c.addr()).await;
            assert_eq!(reason, CloseReason::UnexpectedFrame, "{what}");
            assert!(!authenticated, "{what}");
        }

        // After authentication: a greeting again.
        let mut late = RawClient::connect(a).await;
        late.join("late", SECRET, &[]).await;
        late.send(&Frame::Hello(Box::new(hello("late", 1)))).await;
        let (reason, _) = late.expect_closed().await;
        assert_eq!(reason, WireReason::UnexpectedFrame);
        let (reason, authenticated, _) = mesh.a_events.closed_from(late.addr()).await;
        assert_eq!(reason, CloseReason::UnexpectedFrame);
        assert!(authenticated);

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_truncated_frame_then_end_of_stream_closes_only_that_connection() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);

        // During the handshake: ten bytes of a hundred-byte frame, then EOF.
        let mut cut = RawClient::connect(a).await;
        cut.read_hello().await;
        let mut partial = 100u32.to_le_bytes().to_vec();
        partial.extend_from_slice(&[0; 10]);
        cut.send_bytes(&partial)
            .await
            .expect("the node reads what it is sent");
        cut.shutdown_write();
        let ended = cut.until_end(IO_LIMIT).await;
        assert!(
            ended.frames.is_empty() && matches!(ended.end, Read::Eof),
            "the node just closes (the peer is gone): {ended:?}"
        );
        let (reason, authenticated, _) = mesh.a_events.closed_from(cut.addr()).await;
        assert_eq!(reason, CloseReason::Disconnected);
        assert_eq!(reason.to_string(), "disconnected");
        assert!(!authenticated);

        // Authenticated: half a membership frame, then EOF.
        let mut mallory = RawClient::connect(a).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        let frame = encode(&update(&[(GROUP, &[2, 3, 4], &[1])]));
        let half = frame.get(..frame.len() / 2).expect("a non-empty frame");
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

#[test]
fn an_oversized_length_prefix_is_refused_before_the_body_arrives() {
    run(async {
        let cfg = config("a", &[]);
        let max_frame = cfg.limits.max_frame;
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let too_long = u32::try_from(max_frame + 1).expect("max_frame fits the prefix");

        // Only the four bytes of the prefix: no body ever follows.
        let mut big = RawClient::connect(a).await;
        big.read_hello().await;
        big.send_bytes(&too_long.to_le_bytes())
            .await
            .expect("the node reads what it is sent");
        let (reason, ended) = big.expect_closed().await;
        assert_eq!(reason, WireReason::LimitExceeded(Limit::FrameSize));
        assert_eq!(ended.frames.len(), 1, "just the close: {ended:?}");
        let (reason, authenticated, _) = mesh.a_events.closed_from(big.addr()).await;
        assert_eq!(reason, CloseReason::LimitExceeded(Limit::FrameSize));
        assert_eq!(reason.to_string(), "limit exceeded: frame size");
        assert!(!authenticated);

        // The largest frame allowed is awaited, not refused.
        let mut at_limit = RawClient::connect(a).await;
        at_limit.read_hello().await;
        let exactly = u32::try_from(max_frame).expect("max_frame fits the prefix");
        at_limit
            .send_bytes(&exactly.to_le_bytes())
            .await
            .expect("the node reads what it is sent");
        assert!(
            at_limit
                .next_within(Duration::from_millis(300))
                .await
                .is_none(),
            "a frame of exactly max_frame bytes is awaited"
        );
        let waiting = at_limit.addr();
        drop(at_limit);
        let (reason, _, _) = mesh.a_events.closed_from(waiting).await;
        assert_eq!(reason, CloseReason::Disconnected);

        // Authenticated, the same.
        let mut mallory = RawClient::connect(a).await;
        mallory.join("mallory", SECRET, &[(GROUP, &[1])]).await;
        node_up(&mut mesh, "mallory").await;
        mallory
            .send_bytes(&u32::MAX.to_le_bytes())
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
        let v1_shaped = Hello {
            version: PROTOCOL_VERSION + 1,
            ..hello("future", 1)
        };
        let greetings = [
            (
                "a version-2 greeting shaped like version 1's",
                encode(&Frame::Hello(Box::new(v1_shaped))),
            ),
            (
                "a version-2 greeting of another shape",
                framed(&[0x00, 0x02, 0xab, 0xcd, 0xef, 0x01]),
            ),
        ];
        for (what, bytes) in greetings {
            let mut c = RawClient::connect(a).await;
            c.send_bytes(&bytes)
                .await
                .expect("the node reads what it is sent");
            let (reason, _) = c.expect_closed().await;
            assert_eq!(reason, WireReason::VersionMismatch, "{what}");
            let (reason, authenticated, _) = mesh.a_events.closed_from(c.addr()).await;
            assert_eq!(
                reason,
                CloseReason::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: PROTOCOL_VERSION + 1
                },
                "{what}"
            );
            assert_eq!(
                reason.to_string(),
                "protocol version mismatch: we speak 1, peer speaks 2"
            );
            assert!(!authenticated);
        }

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn a_wrong_secret_is_refused_as_an_authentication_failure() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        for (what, secret) in [
            ("a wrong secret", &b"not the mesh secret"[..]),
            ("an empty secret", &b""[..]),
        ] {
            let mut eve = RawClient::connect(a).await;
            eve.send_hello(hello("eve", 1)).await;
            eve.read_hello().await;
            let mac = eve.mac(secret);
            eve.send(&Frame::Auth { mac }).await;
            let (reason, ended) = eve.expect_closed().await;
            assert_eq!(reason, WireReason::AuthenticationFailed, "{what}");
            // Nothing but the node's proof and the close crossed: no gossip,
            // no memberships.
            assert!(
                matches!(
                    ended.frames.as_slice(),
                    [Frame::Auth { .. }, Frame::Close { .. }]
                ),
                "{what}: {ended:?}"
            );
            let (reason, authenticated, node) = mesh.a_events.closed_from(eve.addr()).await;
            assert_eq!(reason, CloseReason::AuthenticationFailed, "{what}");
            assert_eq!(reason.to_string(), "authentication failed (wrong secret?)");
            assert!(!authenticated);
            assert_eq!(node, Some(node_id("eve")));
        }
        // A guessed proof.
        let mut guess = RawClient::connect(a).await;
        guess.send_hello(hello("eve", 2)).await;
        guess.send(&Frame::Auth { mac: [0; 32] }).await;
        let (reason, _) = guess.expect_closed().await;
        assert_eq!(reason, WireReason::AuthenticationFailed);
        let (reason, _, _) = mesh.a_events.closed_from(guess.addr()).await;
        assert_eq!(reason, CloseReason::AuthenticationFailed);

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
fn a_replayed_handshake_is_refused() {
    run(async {
        // b joins through a proxy that records what b sends: a real, honest
        // greeting and proof.
        let mut recorder = None;
        let mut mesh = Mesh::start_with(config("a", &[]), |a| {
            let r = Recorder::start(a);
            let via = r.addr;
            recorder = Some(r);
            via
        })
        .await;
        let recorder = recorder.expect("the recorder started");
        let a = addr(&mesh.a);
        let captured = recorder.client_bytes();
        let prefix = |at: usize| -> usize {
            let bytes: [u8; 4] = captured
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .expect("a recorded length prefix");
            4 + u32::from_le_bytes(bytes) as usize
        };
        let hello_len = prefix(0);
        let handshake_len = hello_len + prefix(hello_len);
        let handshake = captured
            .get(..handshake_len)
            .expect("b's greeting and proof were recorded");
        let mut reader = groupmesh_core::FrameReader::new(1 << 20);
        reader.push(handshake);
        let Ok(Some(Frame::Hello(b_hello))) = reader.next_frame() else {
            panic!("b's first frame is its greeting");
        };
        let Ok(Some(Frame::Auth { mac: b_mac })) = reader.next_frame() else {
            panic!("b's second frame is its proof");
        };
        assert_eq!(b_hello.node.as_str(), "b");

        // 1. Byte for byte, on a new connection.
        let mut replay = RawClient::connect(a).await;
        replay
            .send_bytes(handshake)
            .await
            .expect("the node reads what it is sent");
        let (reason, _) = replay.expect_closed().await;
        assert_eq!(reason, WireReason::ReplayedNonce);
        let (reason, authenticated, _) = mesh.a_events.closed_from(replay.addr()).await;
        assert_eq!(reason, CloseReason::ReplayedNonce);
        assert_eq!(reason.to_string(), "replayed or reflected nonce");
        assert!(!authenticated);

        // 2. A fresh nonce with the recorded proof: the proof covers both
        //    nonces, so it no longer verifies.
        let mut fresh = RawClient::connect(a).await;
        fresh
            .send_hello(Hello {
                nonce: fresh_nonce(),
                ..(*b_hello).clone()
            })
            .await;
        fresh.send(&Frame::Auth { mac: b_mac }).await;
        let (reason, _) = fresh.expect_closed().await;
        assert_eq!(reason, WireReason::AuthenticationFailed);
        let (reason, _, node) = mesh.a_events.closed_from(fresh.addr()).await;
        assert_eq!(reason, CloseReason::AuthenticationFailed);
        assert_eq!(node, Some(node_id("b")));

        // 3. a's own greeting sent back to it: its own nonce gives it away.
        let mut echo = RawClient::connect(a).await;
        let theirs = echo.read_hello().await;
        echo.send_hello(theirs).await;
        let (reason, _) = echo.expect_closed().await;
        assert_eq!(reason, WireReason::ReplayedNonce);
        let (reason, _, _) = mesh.a_events.closed_from(echo.addr()).await;
        assert_eq!(reason, CloseReason::ReplayedNonce);

        // 4. a's greeting sent back under another name: its nonce is a's own.
        let mut mirror = RawClient::connect(a).await;
        let mut reflected = mirror.read_hello().await;
        reflected.node.clear();
        reflected.node.push_str("mirror").expect("a short node id");
        mirror.send_hello(reflected).await;
        let (reason, _) = mirror.expect_closed().await;
        assert_eq!(reason, WireReason::ReplayedNonce);
        let (reason, _, _) = mesh.a_events.closed_from(mirror.addr()).await;
        assert_eq!(reason, CloseReason::ReplayedNonce);

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
        drop(recorder);
    });
}

#[test]
fn a_connection_claiming_an_honest_node_id_without_the_secret_does_not_evict_it() {
    run(async {
        let mut mesh = Mesh::start(config("a", &[])).await;
        let a = addr(&mesh.a);
        let b_inc = mesh.b.incarnation();
        // As b itself, and as a restarted b (which, authenticated, would
        // replace b's ports).
        for incarnation in [b_inc, b_inc + 1] {
            let mut imposter = RawClient::connect(a).await;
            imposter.send_hello(hello("b", incarnation)).await;
            imposter.read_hello().await;
            let _ = imposter.next_frame().await; // the node's proof
                                                 // Mid-handshake, the real b is untouched.
            assert!(mesh.a.connected_nodes().contains(mesh.b.id()));
            assert_eq!(mesh.honest_members(&mesh.a), mesh.honest);
            let mac = imposter.mac(b"a guess at the secret");
            imposter.send(&Frame::Auth { mac }).await;
            let (reason, _) = imposter.expect_closed().await;
            assert_eq!(reason, WireReason::AuthenticationFailed);
            let (reason, authenticated, node) = mesh.a_events.closed_from(imposter.addr()).await;
            assert_eq!(reason, CloseReason::AuthenticationFailed);
            assert!(!authenticated);
            assert_eq!(node, Some(node_id("b")), "the claim shows in the event");
        }

        // Claiming b and sending b's memberships without authenticating.
        let mut forger = RawClient::connect(a).await;
        forger.send_hello(hello("b", b_inc + 2)).await;
        let b_number = mesh.b_port.id().number();
        forger.send(&sync(&[(GROUP, &[b_number, 99])], true)).await;
        let (reason, _) = forger.expect_closed().await;
        assert_eq!(reason, WireReason::UnexpectedFrame);
        let (reason, _, _) = mesh.a_events.closed_from(forger.addr()).await;
        assert_eq!(reason, CloseReason::UnexpectedFrame);

        // Claiming a's own id.
        let mut twin = RawClient::connect(a).await;
        twin.send_hello(hello("a", mesh.a.incarnation() + 1)).await;
        let (reason, _) = twin.expect_closed().await;
        assert_eq!(reason, WireReason::DuplicateNodeId);
        let (reason, _, _) = mesh.a_events.closed_from(twin.addr()).await;
        assert_eq!(reason, CloseReason::DuplicateNodeId);

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

        // Trickles a valid greeting one byte every 100 ms: bytes arriving do
        // not extend the handshake.
        let trickler = RawClient::connect(a).await;
        let mut writer = trickler.stream();
        let greeting = encode(&Frame::Hello(Box::new(hello("trickler", 1))));
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
        // Greets and never proves.
        let mut greeter = RawClient::connect(a).await;
        greeter.send_hello(hello("greeter", 1)).await;
        // Sends part of a frame.
        let mut partial = RawClient::connect(a).await;
        let mut bytes = 100u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        partial
            .send_bytes(&bytes)
            .await
            .expect("the node reads what it is sent");

        for mut slow in [trickler, silent, greeter, partial] {
            let (reason, ended) = slow.expect_closed().await;
            assert_eq!(reason, WireReason::HandshakeTimeout, "{ended:?}");
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
        let waited = started.elapsed();
        assert!(
            waited < limit + Duration::from_millis(1500),
            "closed late: {waited:?}"
        );

        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
        mesh.shutdown().await;
    });
}

#[test]
fn clients_past_max_unauthenticated_are_refused_and_honest_nodes_still_connect() {
    run(async {
        let mut cfg = config("a", &[]);
        let limit = Duration::from_secs(2);
        cfg.timeouts.handshake_timeout = limit;
        cfg.limits.max_unauthenticated = 4;
        // a dials nobody and b is authenticated: the slow clients below are
        // the only connections in their handshake.
        let mut mesh = Mesh::start(cfg).await;
        let a = addr(&mesh.a);
        let started = Instant::now();

        let mut slow = Vec::new();
        for _ in 0..4 {
            let mut c = RawClient::connect(a).await;
            c.read_hello().await; // accepted and greeted: one slot taken
            slow.push(c);
        }
        for _ in 0..4 {
            let mut c = RawClient::connect(a).await;
            let ended = c.until_end(IO_LIMIT).await;
            assert!(
                ended.frames.is_empty(),
                "refused before any greeting: {ended:?}"
            );
            let addr = c.addr();
            mesh.a_events
                .expect(
                    "the connection is refused",
                    |e| matches!(e, NodeEvent::InboundRefused { addr: a } if *a == addr),
                )
                .await;
        }
        assert!(mesh.a.stats().inbound_refused >= 4);

        // a can still reach an honest node: its own dials are not refused.
        let d = start(config("d", &[])).await;
        mesh.a.add_seed(addr(&d));
        eventually("a connects to d", || {
            mesh.a.connected_nodes().contains(d.id())
        })
        .await;
        let stats = mesh.a.stats();
        assert!(
            stats
                .closed
                .iter()
                .all(|(r, _)| *r != CloseReason::HandshakeTimeout),
            "the slow clients still held every slot when d connected: {stats:?}"
        );

        for mut c in slow {
            let (reason, _) = c.expect_closed().await;
            assert_eq!(reason, WireReason::HandshakeTimeout);
            let (reason, _, _) = mesh.a_events.closed_from(c.addr()).await;
            assert_eq!(reason, CloseReason::HandshakeTimeout);
        }
        assert!(started.elapsed() >= limit - Duration::from_millis(50));

        // Once the handshake timeout freed the slots, a new node dials in.
        mesh.assert_intact().await;
        mesh.assert_new_node_joins().await;
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
            if c.try_authenticate(&name, 1, SECRET).await {
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

/// A listener on a free loopback port: whoever answers at a's seed address.
fn seed_listener() -> (std::net::SocketAddr, smol::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let seed = listener
        .local_addr()
        .expect("a bound listener has an address");
    let listener = smol::net::TcpListener::try_from(listener).expect("an async listener");
    (seed, listener)
}

/// Starts the honest node `s` at a's seed address, and waits until a dials
/// its seed again and reaches it.
async fn honest_node_at(seed: std::net::SocketAddr, mesh: &Mesh) -> groupmesh_smol::Node {
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
fn a_greeting_reflected_from_a_seed_address_does_not_disable_the_seed() {
    run(async {
        // Whoever answers at a's seed address first (here: the attacker)
        // sends a's own greeting back.
        let (seed, listener) = seed_listener();
        let mut mesh = Mesh::start(config("a", &[seed])).await;
        let (stream, _) = common::raw_client::timeout(IO_LIMIT, listener.accept())
            .await
            .expect("a dials its seed")
            .expect("accepting a's dial");
        let mut mirror = RawClient::accepted(stream);
        let greeting = mirror.read_hello().await;
        mirror.send_hello(greeting).await;
        let (reason, _) = mirror.expect_closed().await;
        assert_eq!(reason, WireReason::ReplayedNonce);
        let (reason, _, _) = mesh.a_events.closed_from(seed).await;
        assert_eq!(reason, CloseReason::ReplayedNonce);
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
fn a_greeting_forwarded_from_a_seed_address_sets_the_seed_aside_only_for_forget_after() {
    run(async {
        // The attacker answers at a's seed address and, on a connection of
        // its own to a, forwards a's greeting of that other connection: to a
        // it looks exactly as if the seed address led back to itself.
        let (seed, listener) = seed_listener();
        let mut cfg = config("a", &[seed]);
        cfg.timeouts.forget_after = Duration::from_secs(2);
        let mut mesh = Mesh::start(cfg).await;
        let (stream, _) = common::raw_client::timeout(IO_LIMIT, listener.accept())
            .await
            .expect("a dials its seed")
            .expect("accepting a's dial");
        let mut at_seed = RawClient::accepted(stream);
        let mut to_a = RawClient::connect(addr(&mesh.a)).await;
        let other = to_a.read_hello().await;
        at_seed.read_hello().await;
        at_seed.send_hello(other).await;
        let (reason, _) = at_seed.expect_closed().await;
        assert_eq!(reason, WireReason::SelfConnection);
        let (reason, _, _) = mesh.a_events.closed_from(seed).await;
        assert_eq!(reason, CloseReason::SelfConnection);
        let set_aside = Instant::now();
        drop(at_seed);
        drop(to_a);
        drop(listener);

        // The seed address is not one a listens on, so the unauthenticated
        // claim only sets it aside: a dials it again after `forget_after`.
        let s = honest_node_at(seed, &mesh).await;
        assert!(
            set_aside.elapsed() >= Duration::from_millis(1500),
            "the seed was set aside for forget_after, not only backed off"
        );

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
        if !c.try_authenticate(&name, 1, SECRET).await {
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
        assert!(mesh.a.stats().inbound_refused >= refused as u64);
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
                    ..
                } if n.as_str().starts_with("flood-") => {
                    assert_eq!(*reason, CloseReason::Disconnected, "{e:?}");
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
