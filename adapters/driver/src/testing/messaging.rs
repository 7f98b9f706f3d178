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
    a.send(pb.id(), b"anonymous").await.expect("fits");
    let m = recv::<R>(&mut pb).await;
    assert_eq!(
        (m.from, &m.to, &m.payload[..]),
        (None, pb.id(), &b"anonymous"[..])
    );

    // From a port: the receiver replies to the sender it names.
    pa.send(pb.id(), "ping").await.expect("fits");
    let m = pb.recv().await.expect("b is running");
    assert_eq!(m.payload, b"ping");
    let back = m.from.expect("a port send names its port");
    assert_eq!(&back, pa.id());
    pb.send(&back, "pong").await.expect("fits");
    let reply = recv::<R>(&mut pa).await;
    assert_eq!(
        (reply.from.as_ref(), &reply.payload[..]),
        (Some(pb.id()), &b"pong"[..])
    );

    // To a local port, from the node and from another local port.
    let pa2 = a.open_port();
    a.send(pa.id(), b"self").await.expect("fits");
    pa2.send(pa.id(), b"neighbour").await.expect("fits");
    let first = recv::<R>(&mut pa).await;
    let second = recv::<R>(&mut pa).await;
    assert_eq!((first.from, &first.payload[..]), (None, &b"self"[..]));
    assert_eq!(
        (second.from.as_ref(), &second.payload[..]),
        (Some(pa2.id()), &b"neighbour"[..])
    );

    // Typed values, postcard-encoded; a wrong type is a typed error.
    pa.send_value(pb.id(), &("job", 42u32))
        .await
        .expect("encodes and fits");
    let job = recv::<R>(&mut pb).await;
    assert_eq!(
        job.decode::<(String, u32)>().expect("a (str, u32)"),
        ("job".to_string(), 42)
    );
    b.send_value(pb.id(), &7u8).await.expect("encodes and fits");
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
        pa.send_value(pb.id(), &i).await.expect("fits");
        pc.send_value(pb.id(), &i).await.expect("fits");
        local.send_value(pb.id(), &i).await.expect("fits");
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
        a.send(to, b"lost")
            .await
            .expect("a lost message is not an error");
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
    a.send(pb.id(), b"found").await.expect("fits");
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
        match pa.send(to, &huge).await {
            Err(e @ SendError::PayloadTooLarge { len: 70_000, max }) => {
                assert!(max < 64 * 1024, "{max}");
                assert!(e.to_string().contains("does not fit one frame"), "{e}");
            }
            other => panic!("a 70 000-byte message to {to}: {other:?}"),
        }
    }
    assert!(matches!(
        a.send_value(pb.id(), &huge).await,
        Err(SendError::PayloadTooLarge { .. })
    ));
    let s = a.stats();
    assert_eq!((s.messages_sent, s.messages_dropped), (0, 0), "{s:?}");
    // The largest payload that fits goes through.
    let Err(SendError::PayloadTooLarge { max, .. }) = a.try_send(pb.id(), &huge) else {
        panic!("too large")
    };
    a.send(pb.id(), vec![1u8; max])
        .await
        .expect("exactly the maximum fits");
    assert_eq!(recv::<R>(&mut pb).await.payload.len(), max);

    a.shutdown().await;
    assert!(matches!(
        a.send(pb.id(), b"x").await,
        Err(SendError::ShutDown)
    ));
    assert!(matches!(
        pa.try_send(pb.id(), b"x"),
        Err(SendError::ShutDown)
    ));
    b.shutdown().await;
}

/// Sends from `from` to `to` with `try_send` until the port has no room
/// for it; how many went.
fn fill(from: &Port, to: &PortId) -> u64 {
    let mut sent = 0u64;
    loop {
        match from.try_send(to, sent.to_le_bytes()) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => return sent,
            Err(e) => panic!("after {sent}: {e}"),
        }
    }
}

pub async fn a_local_sender_waits_while_the_mailbox_is_full<R: Runtime + Default>() {
    let mut small = config("a", &[]);
    small.mailbox = 4;
    let a = start::<R>(small).await;
    let mut port = a.open_port();
    for i in 0..4u8 {
        a.try_send(port.id(), [i]).expect("room in the mailbox");
    }
    assert!(matches!(a.try_send(port.id(), [4]), Err(SendError::Full)));
    assert_eq!(a.stats().messages_dropped, 1, "a drop the caller chose");
    let to = port.id().clone();
    let sender = async {
        for i in 4..10u8 {
            a.send(&to, [i]).await.expect("the port lives");
        }
    };
    let reader = async {
        let mut got = Vec::new();
        for _ in 0..10 {
            got.extend(recv::<R>(&mut port).await.payload);
        }
        got
    };
    let ((), got) = future::zip(sender, reader).await;
    assert_eq!(got, (0..10).collect::<Vec<u8>>(), "all of them, in order");
    assert_eq!(a.stats().messages_dropped, 1, "send().await drops nothing");
    a.shutdown().await;
    assert!(
        port.recv().await.is_none(),
        "the mailbox ends with the node"
    );
}

pub async fn a_flood_to_a_port_whose_reader_sleeps_loses_nothing_and_ends_in_order<
    R: Runtime + Default,
>() {
    const N: u64 = 5_000;
    let (a, b) = pair_with_mailbox::<R>(16).await;
    let remote = a.open_port();
    let local = b.open_port();
    let mut pb = b.open_port();
    let to = pb.id().clone();
    let flood = async {
        for i in 0..N {
            remote
                .send(&to, i.to_le_bytes())
                .await
                .expect("the port lives");
            local
                .send(&to, i.to_le_bytes())
                .await
                .expect("the port lives");
        }
    };
    let reader = async {
        // The reader sleeps first: both senders run out of credit and wait.
        super::sleep::<R>(Duration::from_millis(200)).await;
        let mut next = [0u64; 2];
        for _ in 0..2 * N {
            let m = recv::<R>(&mut pb).await;
            let k = usize::from(m.from.as_ref() == Some(local.id()));
            assert_eq!(m.payload, next[k].to_le_bytes(), "in order, none missing");
            next[k] += 1;
        }
        next
    };
    let ((), next) = future::zip(flood, reader).await;
    assert_eq!(next, [N; 2]);
    assert!(quiet::<R>(&mut pb).await, "each message arrives once");
    assert_eq!(a.stats().messages_dropped + b.stats().messages_dropped, 0);
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn group_changes_and_other_ports_pass_while_a_sender_waits_on_a_slow_port<
    R: Runtime + Default,
>() {
    let (a, b) = pair_with_mailbox::<R>(8).await;
    let pa = a.open_port();
    let mut slow = b.open_port();
    let mut other = b.open_port();
    let sent = fill(&pa, slow.id());
    assert_eq!(sent, 8, "the port's credit");
    let mut monitor = b.monitor("during.flood").expect("a valid group");
    let to = slow.id().clone();
    // The slow port is not read until the end: this send waits all along.
    let waiting = pa.send(&to, sent.to_le_bytes());
    let meanwhile = async {
        let reg = a.register("during.flood", &pa).expect("a valid group");
        let change = next_within::<R, _>(&mut monitor, WAIT)
            .await
            .expect("the group change arrives while the sender waits");
        assert_eq!(change.added, [pa.id().clone()]);
        a.send(other.id(), b"other port").await.expect("room there");
        assert_eq!(recv::<R>(&mut other).await.payload, b"other port");
        for i in 0..=sent {
            assert_eq!(recv::<R>(&mut slow).await.payload, i.to_le_bytes());
        }
        reg
    };
    let (sent_late, _reg) = future::zip(waiting, meanwhile).await;
    sent_late.expect("delivered once the reader made room");
    let dropped = a.stats().messages_dropped + b.stats().messages_dropped;
    assert_eq!(
        dropped, 1,
        "only the try_send that found no room, by choice"
    );
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_sender_waiting_in_send_wakes_with_port_closed_when_the_port_closes<
    R: Runtime + Default,
>() {
    let mut acfg = config("a", &[]);
    acfg.mailbox = 4;
    let a = start::<R>(acfg).await;
    let mut bcfg = config("b", &[addr(&a)]);
    bcfg.mailbox = 4;
    let b = start::<R>(bcfg).await;
    connected(&[&a, &b]).await;
    // A remote sender.
    let pa = a.open_port();
    let pb = b.open_port();
    let to = pb.id().clone();
    fill(&pa, &to);
    let close = async { drop(pb) };
    let (woken, ()) = future::zip(pa.send(&to, b"late"), close).await;
    assert!(matches!(woken, Err(SendError::PortClosed)), "{woken:?}");
    // A local sender.
    let local = a.open_port();
    let to = local.id().clone();
    fill(&pa, &to);
    let close = async { drop(local) };
    let (woken, ()) = future::zip(pa.send(&to, b"late"), close).await;
    assert!(matches!(woken, Err(SendError::PortClosed)), "{woken:?}");
    a.shutdown().await;
    b.shutdown().await;
}

pub async fn a_sender_waiting_in_send_wakes_with_unreachable_when_the_node_is_lost<
    R: Runtime + Default,
>() {
    let (a, b) = pair_with_mailbox::<R>(4).await;
    let pa = a.open_port();
    let pb = b.open_port();
    let to = pb.id().clone();
    fill(&pa, &to);
    let lose = async { b.kill() };
    let (woken, ()) = future::zip(pa.send(&to, b"late"), lose).await;
    assert!(matches!(woken, Err(SendError::Unreachable)), "{woken:?}");
    drop(pb);
    a.shutdown().await;
}

pub async fn a_burst_past_the_mailbox_reaches_a_reader_that_keeps_up<R: Runtime + Default>() {
    // A burst 40 times the mailbox, sent from another thread while b
    // reads: the sender waits whenever the mailbox holds its credit.
    const N: u64 = 20_000;
    let (a, b) = pair_with_mailbox::<R>(500).await;
    let pa = a.open_port();
    let mut pb = b.open_port();
    let to = pb.id().clone();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            future::block_on(pa.send(&to, i.to_le_bytes())).expect("the port lives");
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

pub async fn a_message_flood_loses_nothing_and_keeps_the_connection<R: Runtime + Default>() {
    // 2000 messages of 16 KiB through a 256 KiB send buffer: the sender
    // waits for the connection to drain, never past half of it.
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
        pa.send(pb.id(), &payload).await.expect("the port lives");
    }
    let s = a.stats();
    assert_eq!(
        (s.messages_sent, s.messages_dropped),
        (N as u64, 0),
        "{s:?}"
    );
    assert!(s.send_buffer_peak <= 256 * 1024, "{s:?}");
    for i in 0..N as u64 {
        let m = recv::<R>(&mut pb).await;
        assert_eq!(m.payload[..8], i.to_le_bytes(), "in order, none missing");
    }
    assert!(quiet::<R>(&mut pb).await, "nothing more than was sent");
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
    b.send(p1.id(), b"for the old one")
        .await
        .expect("not an error");
    assert_eq!(b.stats().messages_dropped, dropped + 1);
    b.send(p2.id(), b"for the new one").await.expect("fits");
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

/// Nodes a and b, connected, b's ports holding at most `mailbox` messages
/// from each sending node.
async fn pair_with_mailbox<R: Runtime + Default>(mailbox: usize) -> (Node<R>, Node<R>) {
    let a = start::<R>(config("a", &[])).await;
    let mut bcfg = config("b", &[addr(&a)]);
    bcfg.mailbox = mailbox;
    let b = start::<R>(bcfg).await;
    connected(&[&a, &b]).await;
    (a, b)
}
