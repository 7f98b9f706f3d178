//! What is refused, and how the refusal shows: wrong secrets, slow peers,
//! bad configurations, API misuse.

use std::io;
use std::time::Duration;

use groupmesh_core::{CloseReason, ConfigError, Limit, RemoteReason};

use super::{addr, config, eventually, next_within, small_buffer_config, start};
use crate::{Error, Node, NodeEvent, Runtime, StartError};

/// Whether `event` is a connection closed because a secret did not match,
/// on either side.
fn auth_failed(event: &NodeEvent) -> bool {
    matches!(
        event,
        NodeEvent::ConnectionClosed {
            reason: CloseReason::AuthenticationFailed
                | CloseReason::Remote(RemoteReason::AuthenticationFailed),
            authenticated: false,
            ..
        }
    )
}

pub async fn a_wrong_secret_is_refused_with_a_visible_reason<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let mut wrong = config("b", &[]);
    wrong.secret = b"not the mesh secret".to_vec();
    let b = start::<R>(wrong).await;
    let mut a_events = a.events();
    let mut b_events = b.events();
    let pa = a.open_port();
    let _ra = a.register("g", &pa).expect("a valid group");
    b.add_seed(addr(&a));

    for (name, events) in [("b", &mut b_events), ("a", &mut a_events)] {
        let mut refused = None;
        while let Some(e) = next_within::<R, _>(events, Duration::from_secs(3)).await {
            if auth_failed(&e) {
                refused = Some(e);
                break;
            }
        }
        let refused = refused.unwrap_or_else(|| panic!("{name} saw no authentication failure"));
        if let NodeEvent::ConnectionClosed { reason, .. } = refused {
            assert!(
                reason.to_string().contains("authentication failed"),
                "{reason}"
            );
        }
    }
    assert!(a.connected_nodes().is_empty());
    assert!(b.connected_nodes().is_empty());
    assert!(
        b.members("g").is_none(),
        "nothing crosses an unauthenticated connection"
    );
    assert!(b.stats().closed.iter().any(|(r, _)| matches!(
        r,
        CloseReason::AuthenticationFailed | CloseReason::Remote(RemoteReason::AuthenticationFailed)
    )));
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_connection_past_its_send_buffer_limit_is_closed_with_a_visible_reason<
    R: Runtime + Default,
>() {
    // A burst of changes bigger than a's send buffer: a port in 20 groups
    // of 200-byte names leaves them all at once when it is dropped, one
    // batch of about 4 KiB (its joins overflow already if they went out
    // together).
    let a = start::<R>(small_buffer_config("a")).await;
    let mut events = a.events();
    let b = start::<R>(config("b", &[addr(&a)])).await;
    let wait = Duration::from_secs(3);
    eventually::<R>("b is up at a", wait, || !a.connected_nodes().is_empty()).await;
    let port = a.open_port();
    let regs: Vec<_> = (0..20)
        .map(|i| {
            let group = format!("{i:0>200}");
            a.register(&group, &port).expect("a valid group")
        })
        .collect();
    // The joins go out before the port is dropped (unsent, they would net
    // away with its leaves).
    super::sleep::<R>(Duration::from_millis(100)).await;
    drop(port);

    let mut reason = None;
    while let Some(e) = next_within::<R, _>(&mut events, wait).await {
        if let NodeEvent::ConnectionClosed { reason: r, .. } = e {
            reason = Some(r);
            break;
        }
    }
    assert_eq!(reason, Some(CloseReason::LimitExceeded(Limit::SendBuffer)));
    eventually::<R>("b lists none of a's ports", wait, || {
        b.members(&format!("{:0>200}", 0)).is_none()
    })
    .await;
    drop(regs);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_silent_peer_is_cut_off_by_the_handshake_timeout<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let mut events = a.events();
    // Connects, then neither reads nor writes: only a's timer can end it.
    let silent = R::default()
        .connect(addr(&a))
        .await
        .expect("a listens on 127.0.0.1");
    let started = std::time::Instant::now();
    let mut reason = None;
    while let Some(e) = next_within::<R, _>(&mut events, Duration::from_secs(3)).await {
        if let NodeEvent::ConnectionClosed { reason: r, .. } = e {
            reason = Some(r);
            break;
        }
    }
    assert_eq!(reason, Some(CloseReason::HandshakeTimeout));
    let waited = started.elapsed();
    let limit = super::fast_timeouts().handshake_timeout;
    assert!(
        waited >= limit - Duration::from_millis(50),
        "closed early: {waited:?}"
    );
    assert!(
        waited < limit + Duration::from_millis(500),
        "closed late: {waited:?}"
    );
    drop(silent);
    a.shutdown().await;
}

pub async fn start_errors_say_what_to_do<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;

    let mut taken = config("b", &[]);
    taken.bind = vec![addr(&a)];
    match Node::<R>::start(taken).await {
        Err(e @ StartError::Bind { .. }) => {
            let StartError::Bind { source, .. } = &e else {
                unreachable!()
            };
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
            assert!(e.to_string().contains("already in use"), "{e}");
        }
        other => panic!("binding a used address: {other:?}"),
    }

    let long = "n".repeat(65);
    match Node::<R>::start(config(&long, &[])).await {
        Err(e @ StartError::BadNodeId { len: 65 }) => {
            assert!(e.to_string().contains("1 to 64 bytes"), "{e}")
        }
        other => panic!("a 65-byte node id: {other:?}"),
    }

    let mut no_secret = config("c", &[]);
    no_secret.secret.clear();
    match Node::<R>::start(no_secret).await {
        Err(e @ StartError::Config(ConfigError::BadSecret { len: 0 })) => {
            assert!(e.to_string().contains("secret"), "{e}")
        }
        other => panic!("an empty secret: {other:?}"),
    }

    let mut tiny = config("d", &[]);
    tiny.send_buffer = 10;
    assert!(matches!(
        Node::<R>::start(tiny).await,
        Err(StartError::SendBufferTooSmall {
            send_buffer: 10,
            ..
        })
    ));
    a.shutdown().await;
}

pub async fn local_api_misuse_is_a_typed_error<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let b = start::<R>(config("b", &[])).await;
    let pa = a.open_port();
    let pb = b.open_port();
    assert!(a.members("g").is_none());
    assert!(matches!(
        a.register("", &pa),
        Err(Error::BadGroupName { len: 0 })
    ));
    assert!(matches!(
        a.register(&"g".repeat(256), &pa),
        Err(Error::BadGroupName { len: 256 })
    ));
    assert!(matches!(a.monitor(""), Err(Error::BadGroupName { len: 0 })));
    let foreign = a.register("g", &pb).expect_err("b's port is not a's");
    assert_eq!(foreign, Error::NotLocalPort);
    assert!(
        foreign.to_string().contains("open it on this node"),
        "{foreign}"
    );
    assert!(a.members("g").is_none(), "a refused call changes nothing");
    let reg = a.register("g", &pa).expect("a valid group");
    assert_eq!(a.members("g"), Some(vec![pa.id().clone()]));
    eventually::<R>(
        "a lists its own port at once",
        Duration::from_millis(1),
        || a.members("g").is_some(),
    )
    .await;
    drop(reg);
    assert!(a.members("g").is_none());
    a.shutdown().await;
    assert_eq!(a.register("g", &pa).err(), Some(Error::ShutDown));
    assert_eq!(a.monitor("g").err(), Some(Error::ShutDown));
    b.shutdown().await;
}
