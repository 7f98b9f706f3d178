//! A node with many memberships reaches a fresh peer over real TCP through a
//! send buffer far smaller than its snapshot: the snapshot streams as the
//! connection drains, and the sender holds a chunk or two of it at a time.
//! The kernel's buffers on the way are cut to a few KiB and the peer stops
//! reading for a while, so that the sender's driver holds what the socket
//! does not take, and its writer reports the connection drained.
//!
//! `cargo test -p groupmesh-tests --test snapshot` runs 20,000 memberships
//! through 8 KiB; the million (docs/BENCHMARKS.md, "Snapshots"):
//! `cargo test --release -p groupmesh-tests --test snapshot -- --ignored --nocapture`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

mod hooked_smol;

use groupmesh_smol::{NodeConfig, Registration, Runtime, Smol};
use hooked_smol::{HookedSmol, Hooks};
use smol::Timer;
use socket2::{Domain, SockRef, Socket, Type};

/// The kernel buffers on the way, in bytes (Linux doubles them): the
/// sender's send buffer and the proxy's receive buffer.
const SOCKET_BUFFER: usize = 4096;

/// The kernel's send buffer of every accepted connection cut to
/// [`SOCKET_BUFFER`]: what the socket does not take, the driver holds.
struct SmallSendBuffers;

impl Hooks for SmallSendBuffers {
    fn accepted(stream: &<Smol as Runtime>::Stream) -> std::io::Result<()> {
        SockRef::from(stream).set_send_buffer_size(SOCKET_BUFFER)
    }
}

type Node<R> = groupmesh_driver::Node<R>;

/// A node on 127.0.0.1 (a free port) joining through `seeds`. Pings are
/// rare: a snapshot that stalled would not be woken by one within a test.
fn config(name: &str, seeds: &[SocketAddr]) -> NodeConfig {
    let mut cfg = NodeConfig::new(name, b"groupmesh snapshot test secret");
    cfg.bind.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.seeds = seeds.to_vec();
    cfg.timeouts.ping_interval = Duration::from_secs(60);
    cfg.timeouts.keepalive_timeout = Duration::from_secs(180);
    cfg
}

async fn start<R: Runtime + Default>(cfg: NodeConfig) -> Node<R> {
    let name = cfg.node_id.clone();
    Node::<R>::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("node {name} did not start: {e}"))
}

/// A proxy to `target` on 127.0.0.1: bytes go through as they come,
/// except that once `after` bytes came back from `target`, it reads nothing
/// more from it for `pause` (a peer that stops reading for a while, so that
/// the kernel's buffers fill and the driver holds the rest).
fn pausing_proxy(target: SocketAddr, after: usize, pause: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("bound");
    std::thread::spawn(move || {
        for dialler in listener.incoming() {
            let Ok(dialler) = dialler else { return };
            let Ok(upstream) = connect_with_small_window(target) else {
                return;
            };
            let (Ok(mut d), Ok(mut u)) = (dialler.try_clone(), upstream.try_clone()) else {
                return;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut d, &mut u);
            });
            let (mut from, mut to) = (upstream, dialler);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut moved = 0;
                let mut paused = false;
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 || to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    moved += n;
                    if moved >= after && !paused {
                        paused = true;
                        std::thread::sleep(pause);
                    }
                }
            });
        }
    });
    addr
}

/// A connection to `target` whose receive buffer stays at [`SOCKET_BUFFER`]
/// (set before connecting, the kernel's autotuning leaves it alone).
fn connect_with_small_window(target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

/// A field of this process's `/proc/self/status` (e.g. `VmHWM`), in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Node `a` registers `ports` ports in each of `groups` groups; then a fresh
/// node `b` dials it through a proxy that stops reading for `pause` once
/// the snapshot is under way, and must list every one of them within
/// `limit`, with `a`'s send buffer at `send_buffer` bytes all along.
fn snapshot_reaches_a_fresh_peer(
    groups: usize,
    ports: usize,
    send_buffer: usize,
    pause: Duration,
    limit: Duration,
) {
    smol::block_on(async {
        let mut cfg = config("a", &[]);
        cfg.send_buffer = send_buffer;
        cfg.limits.max_frame = cfg.limits.max_frame.min(send_buffer);
        let a = start::<HookedSmol<SmallSendBuffers>>(cfg).await;
        let names: Vec<String> = (0..groups).map(|g| format!("group-{g:05}")).collect();
        let started = Instant::now();
        let mut regs: Vec<Registration> = Vec::with_capacity(groups * ports);
        let mut held = Vec::with_capacity(ports);
        for _ in 0..ports {
            let port = a.open_port();
            for name in &names {
                regs.push(a.register(name, &port).expect("a valid group"));
            }
            held.push(port);
        }
        let memberships = groups * ports;
        let registered = started.elapsed();
        let before = a.stats();
        let rss_before = status_kib("VmRSS:");

        let started = Instant::now();
        let proxy = pausing_proxy(a.local_addrs()[0], 16 * 1024, pause);
        let b = start::<Smol>(config("b", &[proxy])).await;
        while b.stats().members < memberships {
            assert!(
                started.elapsed() < limit,
                "b lists {} of {memberships} memberships after {limit:?}",
                b.stats().members
            );
            Timer::after(Duration::from_millis(5)).await;
        }
        let took = started.elapsed();

        let after = a.stats();
        assert!(after.closed.is_empty(), "a closed a connection: {after:?}");
        assert_eq!(after.snapshots_sending, 0);
        for name in &names {
            let listed = b.members(name).map_or(0, |m| m.len());
            assert_eq!(listed, ports, "b lists {listed} of {ports} ports in {name}");
        }
        // The driver's chunks are a quarter of the send buffer at most (64
        // KiB at most), and the next one waits until its writer holds no
        // more than that.
        let chunk = (send_buffer / 4).min(64 * 1024);
        assert!(
            after.largest_transmit <= chunk + 1024,
            "a transmit of {} bytes, chunks of {chunk}",
            after.largest_transmit
        );
        assert!(
            after.send_buffer_peak <= send_buffer / 2 + 1024,
            "a held {} bytes for a connection, of {send_buffer}",
            after.send_buffer_peak
        );
        assert!(
            pause.is_zero() || after.send_buffer_peak > 0,
            "the peer's pause filled the kernel's buffers: the driver held some"
        );
        eprintln!(
            "{memberships} memberships ({groups} groups x {ports} ports, registered in \
             {registered:?}): a {} byte snapshot reached a fresh peer in {took:?} ({pause:?} \
             of it the peer not reading) through a {send_buffer} byte send buffer; largest \
             transmit {} bytes, most held for one connection {} bytes; process RSS {:?} KiB \
             before the peer, peak {:?} KiB",
            after.bytes_out - before.bytes_out,
            after.largest_transmit,
            after.send_buffer_peak,
            rss_before,
            status_kib("VmHWM:"),
        );
        drop(regs);
        drop(held);
        b.shutdown().await;
        a.shutdown().await;
    });
}

#[test]
fn twenty_thousand_memberships_reach_a_fresh_peer_through_a_send_buffer_a_fifth_of_their_snapshot()
{
    // About 38 KB of snapshot through 8 KiB.
    let pause = Duration::from_millis(200);
    snapshot_reaches_a_fresh_peer(20, 1000, 8 * 1024, pause, Duration::from_secs(15));
}

#[test]
#[ignore = "a million memberships take seconds in release and minutes in debug: run it in release"]
fn a_million_memberships_reach_a_fresh_peer_through_a_one_mib_send_buffer() {
    // SNAPSHOT_PAUSE_MS=0 times the snapshot alone.
    let pause_ms = std::env::var("SNAPSHOT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let pause = Duration::from_millis(pause_ms);
    snapshot_reaches_a_fresh_peer(1000, 1000, 1024 * 1024, pause, Duration::from_secs(60));
}
