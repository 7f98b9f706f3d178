//! Port messaging and port monitors over real TCP.

use std::time::Duration;

use futures_lite::{future, StreamExt};
use groupmesh_core::{CloseReason, NodeId, PortDownReason, PortId};

use super::{addr, config, eventually, next_within, start};
use crate::{Message, Node, NodeEvent, Port, PortMonitor, Runtime, SendError};

const WAIT: Duration = Duration::from_secs(5);

/// Starts `a` and `b`, connected.
async fn pair<R: Runtime + Default>(a_cfg: crate::NodeConfig, b_name: &str) -> (Node<R>, Node<R>) {
    let a = start::<R>(a_cfg).await;
    let b = start::<R>(config(b_name, &[addr(&a)])).await;
    connected(&[&a, &b]).await;
    (a, b)
}

async fn connected<R: Runtime + Default>(nodes: &[&Node<R>]) {
    eventually::<R>("the nodes are connected", WAIT, || {
        nodes
            .iter()
            .all(|n| n.connected_nodes().len() == nodes.len() - 1)
    })
    .await;
}

/// The next message on `port`, failing the test if none comes in time.
async fn recv<R: Runtime + Default>(port: &mut Port) -> Message {
    next_within::<R, _>(port, WAIT)
        .await
        .unwrap_or_else(|| panic!("no message reached {}", port.id()))
}

/// Whether `port` gets nothing for a while.
async fn quiet<R: Runtime + Default>(port: &mut Port) -> bool {
    next_within::<R, _>(port, Duration::from_millis(300))
        .await
        .is_none()
}

async fn fired<R: Runtime + Default>(monitor: PortMonitor) -> Option<PortDownReason> {
    let late = async {
        super::sleep::<R>(WAIT).await;
        panic!("the port monitor did not fire within {WAIT:?}")
    };
    future::or(monitor, late).await
}

pub async fn messages_reach_local_and_remote_ports_and_replies_go_back<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let mut pa = a.open_port();
    let mut pb = b.open_port();

    // From a node, to a remote port: no sender to reply to.
    a.send(pb.id(), b"anonymous").expect("fits");
    let m = recv::<R>(&mut pb).await;
    assert_eq!(
        (m.from, &m.to, &m.payload[..]),
        (None, pb.id(), &b"anonymous"[..])
    );

    // From a port: the receiver replies to the sender it names.
    pa.send(pb.id(), "ping").expect("fits");
    let m = pb.recv().await.expect("b is running");
    assert_eq!(m.payload, b"ping");
    let back = m.from.expect("a port send names its port");
    assert_eq!(&back, pa.id());
    pb.send(&back, "pong").expect("fits");
    let reply = recv::<R>(&mut pa).await;
    assert_eq!(
        (reply.from.as_ref(), &reply.payload[..]),
        (Some(pb.id()), &b"pong"[..])
    );

    // To a local port, from the node and from another local port.
    let pa2 = a.open_port();
    a.send(pa.id(), b"self").expect("fits");
    pa2.send(pa.id(), b"neighbour").expect("fits");
    let first = recv::<R>(&mut pa).await;
    let second = recv::<R>(&mut pa).await;
    assert_eq!((first.from, &first.payload[..]), (None, &b"self"[..]));
    assert_eq!(
        (second.from.as_ref(), &second.payload[..]),
        (Some(pa2.id()), &b"neighbour"[..])
    );

    // Typed values, postcard-encoded; a wrong type is a typed error.
    pa.send_value(pb.id(), &("job", 42u32))
        .expect("encodes and fits");
    let job = recv::<R>(&mut pb).await;
    assert_eq!(
        job.decode::<(String, u32)>().expect("a (str, u32)"),
        ("job".to_string(), 42)
    );
    b.send_value(pb.id(), &7u8).expect("encodes and fits");
    let seven = recv::<R>(&mut pb).await;
    assert_eq!(seven.decode::<u8>().expect("a u8"), 7);
    let wrong = seven
        .decode::<String>()
        .expect_err("7 is not a string length + bytes");
    assert!(wrong.to_string().contains("does not decode as"), "{wrong}");

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.messages_sent, 5, "{sa:?}");
    assert_eq!(sa.messages_received, 3, "{sa:?}");
    assert_eq!(sb.messages_sent, 2, "{sb:?}");
    assert_eq!(sb.messages_received, 4, "{sb:?}");
    assert_eq!(sa.messages_dropped + sb.messages_dropped, 0);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn messages_from_one_sender_to_one_port_arrive_in_order<R: Runtime + Default>() {
    const N: u32 = 1000;
    let a = start::<R>(config("a", &[])).await;
    let mut big = config("b", &[addr(&a)]);
    big.mailbox = 3 * N as usize;
    let b = start::<R>(big).await;
    let c = start::<R>(config("c", &[addr(&a)])).await;
    connected(&[&a, &b, &c]).await;
    let pa = a.open_port();
    let pc = c.open_port();
    let mut pb = b.open_port();
    let local = b.open_port();
    for i in 0..N {
        pa.send_value(pb.id(), &i).expect("fits");
        pc.send_value(pb.id(), &i).expect("fits");
        local.send_value(pb.id(), &i).expect("fits");
    }
    let mut next = [0u32; 3];
    for _ in 0..3 * N {
        let m = recv::<R>(&mut pb).await;
        let from = m.from.as_ref().expect("sent from ports");
        let k = [pa.id(), pc.id(), local.id()]
            .iter()
            .position(|p| *p == from)
            .expect("one of the three senders");
        let seq: u32 = m.decode().expect("a u32");
        assert_eq!(seq, next[k], "from {from}: out of order");
        next[k] += 1;
    }
    assert_eq!(next, [N; 3]);
    assert!(quiet::<R>(&mut pb).await, "each message arrives once");
    for n in [&a, &b, &c] {
        assert_eq!(n.stats().messages_dropped, 0);
    }
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

pub async fn messages_to_missing_ports_are_dropped_and_counted<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let mut pb = b.open_port();
    let missing_remote = PortId::new(b.id().clone(), b.incarnation(), 999);
    let unknown_node = PortId::new(NodeId::new("nowhere").expect("an id"), 1, 1);
    let closed_local = a.open_port().id().clone(); // dropped at once
    let old_incarnation = PortId::new(a.id().clone(), a.incarnation() - 1, 1);

    for to in [
        &missing_remote,
        &unknown_node,
        &closed_local,
        &old_incarnation,
    ] {
        a.send(to, b"lost").expect("a lost message is not an error");
    }
    // The remote drop is counted where the port was looked for: at b.
    eventually::<R>("b counts the message for its missing port", WAIT, || {
        b.stats().messages_dropped == 1
    })
    .await;
    let sa = a.stats();
    assert_eq!(sa.messages_dropped, 3, "{sa:?}");
    assert_eq!(sa.messages_sent, 1, "only the remote one went out: {sa:?}");
    // The connection and the other ports are untouched.
    a.send(pb.id(), b"found").expect("fits");
    assert_eq!(recv::<R>(&mut pb).await.payload, b"found");
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_payload_too_large_is_a_typed_error<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let pa = a.open_port();
    let mut pb = b.open_port();
    let huge = vec![0u8; 70_000];
    for to in [pb.id(), pa.id()] {
        match pa.send(to, &huge) {
            Err(e @ SendError::PayloadTooLarge { len: 70_000, max }) => {
                assert!(max < 64 * 1024, "{max}");
                assert!(e.to_string().contains("does not fit one frame"), "{e}");
            }
            other => panic!("a 70 000-byte message to {to}: {other:?}"),
        }
    }
    assert!(matches!(
        a.send_value(pb.id(), &huge),
        Err(SendError::PayloadTooLarge { .. })
    ));
    let s = a.stats();
    assert_eq!((s.messages_sent, s.messages_dropped), (0, 0), "{s:?}");
    // The largest payload that fits goes through.
    let Err(SendError::PayloadTooLarge { max, .. }) = a.send(pb.id(), &huge) else {
        panic!("too large")
    };
    a.send(pb.id(), vec![1u8; max])
        .expect("exactly the maximum fits");
    assert_eq!(recv::<R>(&mut pb).await.payload.len(), max);

    a.shutdown().await;
    assert!(matches!(a.send(pb.id(), b"x"), Err(SendError::ShutDown)));
    assert!(matches!(pa.send(pb.id(), b"x"), Err(SendError::ShutDown)));
    b.shutdown().await;
}

pub async fn a_full_mailbox_drops_new_messages_and_counts_them<R: Runtime + Default>() {
    let mut small = config("a", &[]);
    small.mailbox = 4;
    let a = start::<R>(small).await;
    let mut port = a.open_port();
    for i in 0..10u8 {
        a.send(port.id(), [i]).expect("fits");
    }
    let mut got = Vec::new();
    while let Some(m) = next_within::<R, _>(&mut port, Duration::from_millis(100)).await {
        got.extend(m.payload);
    }
    assert_eq!(got, vec![0, 1, 2, 3], "the oldest are kept, in order");
    assert_eq!(a.stats().messages_dropped, 6);
    a.send(port.id(), [10]).expect("fits");
    assert_eq!(
        recv::<R>(&mut port).await.payload,
        vec![10],
        "room again once read"
    );
    a.shutdown().await;
    assert!(
        port.recv().await.is_none(),
        "the mailbox ends with the node"
    );
}

pub async fn a_burst_past_the_mailbox_reaches_a_reader_that_keeps_up<R: Runtime + Default>() {
    // A burst 40 times the mailbox, sent while b reads: what does not fit
    // is held, and a's connection is not read until b's reader made room.
    // Nothing is lost.
    const N: u64 = 20_000;
    let a = start::<R>(config("a", &[])).await;
    let mut bcfg = config("b", &[addr(&a)]);
    bcfg.mailbox = 500;
    bcfg.timeouts = crate::Timeouts::default(); // holds for 250 ms at most
    let b = start::<R>(bcfg).await;
    connected(&[&a, &b]).await;
    let pa = a.open_port();
    let mut pb = b.open_port();
    let to = pb.id().clone();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            pa.send(&to, i.to_le_bytes()).expect("fits");
        }
        pa
    });
    for i in 0..N {
        let m = recv::<R>(&mut pb).await;
        assert_eq!(m.payload, i.to_le_bytes(), "in order, none missing");
    }
    let _pa = sender.join().expect("the sender thread ends");
    assert_eq!(a.stats().messages_dropped, 0);
    assert_eq!(b.stats().messages_dropped, 0);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_port_never_read_holds_its_senders_connection_only_briefly<R: Runtime + Default>() {
    let a = start::<R>(config("a", &[])).await;
    let mut bcfg = config("b", &[addr(&a)]);
    bcfg.mailbox = 10;
    let b = start::<R>(bcfg).await;
    connected(&[&a, &b]).await;
    let pa = a.open_port();
    let pb = b.open_port(); // never read
    for i in 0..1000u64 {
        pa.send(pb.id(), i.to_le_bytes()).expect("fits");
    }
    // b holds what does not fit while it stops reading a, then drops it
    // (counted) and reads again.
    eventually::<R>("b drops what it held for the unread port", WAIT, || {
        b.stats().messages_dropped == 990
    })
    .await;
    let _reg = a.register("after.hold", &pa).expect("a valid group");
    eventually::<R>("b reads a again", WAIT, || {
        b.members("after.hold").is_some()
    })
    .await;
    assert_eq!(a.connected_nodes().len(), 1, "the connection lives");
    drop(pb);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_message_flood_loses_messages_not_the_connection<R: Runtime + Default>() {
    const N: usize = 2000;
    let mut cfg = config("a", &[]);
    cfg.send_buffer = 256 * 1024;
    let (a, b) = {
        let a = start::<R>(cfg).await;
        let mut bcfg = config("b", &[addr(&a)]);
        bcfg.mailbox = N;
        let b = start::<R>(bcfg).await;
        connected(&[&a, &b]).await;
        (a, b)
    };
    let mut events = a.events();
    let pa = a.open_port();
    let mut pb = b.open_port();
    let mut payload = vec![0u8; 16 * 1024];
    for i in 0..N {
        payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
        pa.send(pb.id(), &payload).expect("fits");
    }
    let s = a.stats();
    assert_eq!(
        s.messages_sent + s.messages_dropped,
        N as u64,
        "every message is sent or dropped: {s:?}"
    );
    let mut last = None;
    let mut received = 0u64;
    while received < s.messages_sent {
        let m = recv::<R>(&mut pb).await;
        let seq = u64::from_le_bytes(m.payload[..8].try_into().expect("8 bytes"));
        assert!(last < Some(seq), "out of order: {seq} after {last:?}");
        last = Some(seq);
        received += 1;
    }
    assert!(quiet::<R>(&mut pb).await, "nothing more than was sent");
    eprintln!(
        "flood: {} sent, {} dropped at the sender",
        s.messages_sent, s.messages_dropped
    );
    // The connection survived and still carries group changes.
    while let Some(e) = next_within::<R, _>(&mut events, Duration::from_millis(10)).await {
        assert!(
            !matches!(
                e,
                NodeEvent::NodeDown { .. }
                    | NodeEvent::ConnectionClosed {
                        reason: CloseReason::LimitExceeded(_),
                        ..
                    }
            ),
            "{e:?}"
        );
    }
    assert_eq!(a.connected_nodes().len(), 1);
    let _reg = a.register("after.flood", &pa).expect("a valid group");
    eventually::<R>("b sees a's registration after the flood", WAIT, || {
        b.members("after.flood").is_some()
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_port_monitor_fires_when_the_port_is_dropped<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let pa = a.open_port();
    let remote = b.monitor_port(pa.id()).expect("b is running");
    let local = a.monitor_port(pa.id()).expect("a is running");
    assert_eq!(remote.port(), pa.id());
    assert_eq!(b.stats().port_monitors, 1);
    // Let b's request reach a before the port closes.
    super::sleep::<R>(Duration::from_millis(100)).await;
    drop(pa);
    assert_eq!(fired::<R>(local).await, Some(PortDownReason::Closed));
    assert_eq!(fired::<R>(remote).await, Some(PortDownReason::Closed));
    assert_eq!(b.stats().port_monitors, 0, "a fired monitor is over");

    // Already gone: at once, with why.
    let closed = a.open_port().id().clone();
    assert_eq!(
        fired::<R>(b.monitor_port(&closed).expect("running")).await,
        Some(PortDownReason::Closed)
    );
    assert_eq!(
        fired::<R>(a.monitor_port(&closed).expect("running")).await,
        Some(PortDownReason::Closed)
    );
    let nowhere = PortId::new(NodeId::new("nowhere").expect("an id"), 1, 1);
    assert_eq!(
        fired::<R>(a.monitor_port(&nowhere).expect("running")).await,
        Some(PortDownReason::Unreachable)
    );
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_port_monitor_fires_when_its_node_is_killed<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let pa = a.open_port();
    let watch = b.monitor_port(pa.id()).expect("b is running");
    let pending = b.monitor_port(pa.id()).expect("b is running");
    a.kill();
    match fired::<R>(watch).await {
        Some(PortDownReason::NodeDown(reason)) => {
            assert!(!reason.to_string().is_empty());
        }
        other => panic!("a killed node's port: {other:?}"),
    }
    assert!(matches!(
        fired::<R>(pending).await,
        Some(PortDownReason::NodeDown(_))
    ));
    drop(pa);
    b.shutdown().await;
}

pub async fn a_restarted_node_gets_no_mail_for_its_old_incarnation<R: Runtime + Default>() {
    let b = start::<R>(config("b", &[])).await;
    let a1 = start::<R>(config("a", &[addr(&b)])).await;
    connected(&[&a1, &b]).await;
    let p1 = a1.open_port();
    let watch = b.monitor_port(p1.id()).expect("b is running");
    super::sleep::<R>(Duration::from_millis(50)).await;

    a1.kill();
    assert!(matches!(
        fired::<R>(watch).await,
        Some(PortDownReason::NodeDown(_))
    ));
    let a2 = start::<R>(config("a", &[addr(&b)])).await;
    connected(&[&a2, &b]).await;
    let mut p2 = a2.open_port();
    assert_eq!(
        p1.id().number(),
        p2.id().number(),
        "same number, new incarnation"
    );
    assert_ne!(p1.id(), p2.id());

    // The old incarnation's port is gone for good, and its mail with it.
    assert_eq!(
        fired::<R>(b.monitor_port(p1.id()).expect("running")).await,
        Some(PortDownReason::Restarted)
    );
    let dropped = b.stats().messages_dropped;
    b.send(p1.id(), b"for the old one").expect("not an error");
    assert_eq!(b.stats().messages_dropped, dropped + 1);
    b.send(p2.id(), b"for the new one").expect("fits");
    assert_eq!(recv::<R>(&mut p2).await.payload, b"for the new one");
    assert!(
        quiet::<R>(&mut p2).await,
        "the old incarnation's mail never arrives"
    );

    // A monitor of the new port fires when the new incarnation restarts too.
    let watch2 = b.monitor_port(p2.id()).expect("running");
    super::sleep::<R>(Duration::from_millis(50)).await;
    a2.kill();
    let a3 = start::<R>(config("a", &[addr(&b)])).await;
    assert!(matches!(
        fired::<R>(watch2).await,
        Some(PortDownReason::NodeDown(_) | PortDownReason::Restarted)
    ));
    drop((p1, p2));
    a3.shutdown().await;
    b.shutdown().await;
}

pub async fn dropping_a_port_monitor_ends_it<R: Runtime + Default>() {
    let (a, b) = pair::<R>(config("a", &[]), "b").await;
    let pa = a.open_port();
    let dropped = b.monitor_port(pa.id()).expect("running");
    let kept = b.monitor_port(pa.id()).expect("running");
    let local = a.monitor_port(pa.id()).expect("running");
    assert_eq!(b.stats().port_monitors, 2);
    drop(dropped);
    assert_eq!(b.stats().port_monitors, 1, "a dropped monitor ends at once");
    drop(local);
    assert_eq!(a.stats().port_monitors, 0);
    super::sleep::<R>(Duration::from_millis(50)).await;
    drop(pa);
    assert_eq!(fired::<R>(kept).await, Some(PortDownReason::Closed));
    assert_eq!(b.stats().port_monitors, 0);

    // Still waiting when its own node stops: a graceful shutdown loses the
    // connections (remote ports), a kill just ends the monitor (None).
    let mut pa2 = a.open_port();
    let remote = b.monitor_port(pa2.id()).expect("running");
    let local = a.monitor_port(pa2.id()).expect("running");
    b.shutdown().await;
    assert_eq!(
        fired::<R>(remote).await,
        Some(PortDownReason::NodeDown(CloseReason::Shutdown))
    );
    a.kill();
    assert_eq!(fired::<R>(local).await, None);
    assert!(
        pa2.next().await.is_none(),
        "a stopped node's port reads nothing"
    );
}
