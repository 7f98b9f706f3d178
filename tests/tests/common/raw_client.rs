//! A raw groupmesh client that speaks bytes over TCP, for attack tests.
//!
//! It writes whatever it is told (frames built with [`Frame::encode`], or any
//! bytes at all) and reads the node's frames back with the core's own
//! [`FrameReader`]. It can also do the honest handshake, for attacks by a peer
//! that knows the secret. Every read and connect is bounded in time.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use groupmesh_core::handshake::{prove, verify};
use groupmesh_core::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, Hello, PeerInfo, WireGroup, WireNodeId, MAC_LEN,
    NONCE_LEN, PROTOCOL_VERSION,
};
use groupmesh_core::{FrameReader, WireReason};
use smol::net::TcpStream;
use smol::Timer;

/// The longest any single network wait of a raw client may take.
pub(crate) const IO_LIMIT: Duration = Duration::from_secs(5);

/// Largest frame the raw client accepts from the node (and says it accepts).
const CLIENT_MAX_FRAME: usize = 1024 * 1024;

/// What one read from the node gave.
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole frame.
    Frame(Frame),
    /// The node closed its side (end of stream).
    Eof,
    /// The socket failed (e.g. reset by the node).
    Failed(#[expect(dead_code, reason = "shown by Debug in failure messages")] io::ErrorKind),
}

/// How a connection ended, as the raw client saw it.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Every frame read before the end.
    pub(crate) frames: Vec<Frame>,
    /// The last read: end of stream or a socket error.
    pub(crate) end: Read,
}

impl Ended {
    /// The reason of the close frame the node sent last, if it sent one.
    pub(crate) fn close_reason(&self) -> Option<WireReason> {
        match self.frames.last() {
            Some(Frame::Close { reason }) => Some(*reason),
            _ => None,
        }
    }
}

/// A raw TCP client of a groupmesh node.
pub(crate) struct RawClient {
    stream: TcpStream,
    reader: FrameReader,
    eof: bool,
    local: SocketAddr,
    /// The greeting this client sent, if any.
    pub(crate) ours: Option<Hello>,
    /// The node's greeting, once read.
    pub(crate) theirs: Option<Hello>,
}

/// Waits for `fut` at most `limit`; `None` if it did not finish in time.
pub(crate) async fn timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// 32 bytes no other greeting of this process uses: a process-wide counter
/// (uniqueness) followed by randomly keyed hashes (unpredictability).
pub(crate) fn fresh_nonce() -> [u8; NONCE_LEN] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut nonce = [0u8; NONCE_LEN];
    let mut chunks = nonce.chunks_mut(8);
    if let Some(first) = chunks.next() {
        first.copy_from_slice(&n.to_le_bytes());
    }
    for (i, chunk) in chunks.enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    nonce
}

/// A version-1 greeting from `node` with a fresh nonce and no addresses
/// (so the node never dials the raw client back).
pub(crate) fn hello(node: &str, incarnation: u64) -> Hello {
    let mut id = WireNodeId::new();
    id.push_str(node)
        .expect("test node ids are at most 64 bytes");
    Hello {
        version: PROTOCOL_VERSION,
        node: id,
        incarnation,
        addrs: Default::default(),
        nonce: fresh_nonce(),
        max_frame: u32::try_from(CLIENT_MAX_FRAME).expect("a small frame size"),
    }
}

/// The encoding of `frame`, length prefix included.
pub(crate) fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

fn wire_group(name: &str) -> WireGroup {
    let mut g = WireGroup::new();
    g.push_str(name)
        .expect("test group names are at most 255 bytes");
    g
}

fn bounded<T, const N: usize>(v: Vec<T>) -> BoundedVec<T, N> {
    BoundedVec::try_from_vec(v).unwrap_or_else(|v| panic!("{} items, more than {N}", v.len()))
}

/// A snapshot frame: the sender's port numbers in each group.
pub(crate) fn sync(groups: &[(&str, &[u64])], done: bool) -> Frame {
    Frame::Sync {
        groups: bounded(
            groups
                .iter()
                .map(|(g, ports)| GroupPorts {
                    group: wire_group(g),
                    ports: bounded(ports.to_vec()),
                })
                .collect(),
        ),
        done,
    }
}

/// A gossip frame naming `nodes`, without addresses (so nothing is dialled).
pub(crate) fn peers(nodes: &[String]) -> Frame {
    Frame::Peers {
        nodes: bounded(
            nodes
                .iter()
                .map(|n| {
                    let mut node = WireNodeId::new();
                    node.push_str(n)
                        .expect("test node ids are at most 64 bytes");
                    PeerInfo {
                        node,
                        addrs: Default::default(),
                    }
                })
                .collect(),
        ),
    }
}

/// An incremental frame: per group, the sender's port numbers that joined and left.
pub(crate) fn update(groups: &[(&str, &[u64], &[u64])]) -> Frame {
    Frame::Update {
        groups: bounded(
            groups
                .iter()
                .map(|(g, joined, left)| GroupChange {
                    group: wire_group(g),
                    joined: bounded(joined.to_vec()),
                    left: bounded(left.to_vec()),
                })
                .collect(),
        ),
    }
}

impl RawClient {
    /// Connects to `addr`, panicking if that takes longer than [`IO_LIMIT`].
    pub(crate) async fn connect(addr: SocketAddr) -> RawClient {
        let stream = timeout(IO_LIMIT, TcpStream::connect(addr))
            .await
            .expect("connecting to the node timed out")
            .expect("the node listens on 127.0.0.1");
        stream
            .set_nodelay(true)
            .expect("TCP_NODELAY on a fresh socket");
        RawClient::accepted(stream)
    }

    /// Takes over a connection: one the node dialled (accepted by the test),
    /// or one [`connect`](Self::connect) opened.
    pub(crate) fn accepted(stream: TcpStream) -> RawClient {
        let local = stream
            .local_addr()
            .expect("a connected socket has an address");
        RawClient {
            stream,
            reader: FrameReader::new(CLIENT_MAX_FRAME),
            eof: false,
            local,
            ours: None,
            theirs: None,
        }
    }

    /// This client's address, as the node sees it in its events.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.local
    }

    /// A second handle on the same socket (e.g. to write from another task).
    pub(crate) fn stream(&self) -> TcpStream {
        self.stream.clone()
    }

    /// Writes `bytes` as they are. Fails only if the node already closed.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        timeout(IO_LIMIT, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
        .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Writes one frame, panicking if the node already closed.
    pub(crate) async fn send(&mut self, frame: &Frame) {
        let bytes = encode(frame);
        self.send_bytes(&bytes)
            .await
            .unwrap_or_else(|e| panic!("writing {frame:?}: {e}"));
    }

    /// Ends this client's sending side (the node reads end of stream).
    pub(crate) fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutting down a connected socket");
    }

    /// The next thing the node sent, or `None` if nothing came within `limit`.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<Read> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.reader.next_frame() {
                Ok(Some(frame)) => return Some(Read::Frame(frame)),
                Ok(None) => {}
                Err(e) => panic!("the node sent bytes that are not a frame: {e:?}"),
            }
            if self.eof {
                return Some(Read::Eof);
            }
            match timeout(limit, self.stream.read(&mut buf)).await {
                None => return None,
                Some(Ok(0)) => self.eof = true,
                Some(Ok(n)) => self.reader.push(buf.get(..n).unwrap_or_default()),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Some(Read::Failed(e.kind())),
            }
        }
    }

    /// The next frame the node sent, panicking on anything else.
    pub(crate) async fn next_frame(&mut self) -> Frame {
        match self.next_within(IO_LIMIT).await {
            Some(Read::Frame(f)) => f,
            other => panic!("expected a frame from the node, got {other:?}"),
        }
    }

    /// Reads everything until the node ends the connection.
    pub(crate) async fn until_end(&mut self, limit: Duration) -> Ended {
        let started = std::time::Instant::now();
        let mut frames = Vec::new();
        loop {
            let left = limit.saturating_sub(started.elapsed());
            match self.next_within(left).await {
                Some(Read::Frame(f)) => frames.push(f),
                Some(end) => return Ended { frames, end },
                None => panic!("the node did not close within {limit:?}; it sent {frames:?}"),
            }
        }
    }

    /// Reads until the node ends the connection, and checks that its last
    /// frame says why: returns that reason.
    pub(crate) async fn expect_closed(&mut self) -> (WireReason, Ended) {
        let ended = self.until_end(IO_LIMIT).await;
        let reason = ended
            .close_reason()
            .unwrap_or_else(|| panic!("the node closed without a close frame: {ended:?}"));
        (reason, ended)
    }

    /// Sends `hello` as this client's greeting.
    pub(crate) async fn send_hello(&mut self, hello: Hello) {
        self.send(&Frame::Hello(Box::new(hello.clone()))).await;
        self.ours = Some(hello);
    }

    /// Reads the node's greeting (the first frame it sends).
    pub(crate) async fn read_hello(&mut self) -> Hello {
        match self.next_frame().await {
            Frame::Hello(h) => {
                self.theirs = Some((*h).clone());
                *h
            }
            other => panic!("expected the node's greeting, got {other:?}"),
        }
    }

    /// The MAC this client would send with `secret`, over both greetings.
    pub(crate) fn mac(&self, secret: &[u8]) -> [u8; MAC_LEN] {
        let ours = self.ours.as_ref().expect("our greeting was sent");
        let theirs = self.theirs.as_ref().expect("their greeting was read");
        prove(secret, ours, theirs)
    }

    /// The whole honest handshake as `node`: the node's greeting, ours, our
    /// proof, and the node's proof checked with `secret`. False if the node
    /// turned the connection away before greeting (a connection limit).
    pub(crate) async fn try_authenticate(
        &mut self,
        node: &str,
        incarnation: u64,
        secret: &[u8],
    ) -> bool {
        match self.next_within(IO_LIMIT).await {
            Some(Read::Frame(Frame::Hello(h))) => self.theirs = Some(*h),
            Some(Read::Eof | Read::Failed(_)) => return false,
            other => panic!("expected the node's greeting, got {other:?}"),
        }
        self.send_hello(hello(node, incarnation)).await;
        let mac = self.mac(secret);
        self.send(&Frame::Auth { mac }).await;
        match self.next_frame().await {
            Frame::Auth { mac } => {
                let ours = self.ours.as_ref().expect("sent above");
                let theirs = self.theirs.as_ref().expect("read above");
                assert!(
                    verify(secret, ours, theirs, &mac),
                    "the node's proof does not verify"
                );
            }
            other => panic!("expected the node's proof, got {other:?}"),
        }
        true
    }

    /// [`try_authenticate`](Self::try_authenticate), panicking if refused.
    pub(crate) async fn authenticate(&mut self, node: &str, incarnation: u64, secret: &[u8]) {
        assert!(
            self.try_authenticate(node, incarnation, secret).await,
            "the node refused the connection"
        );
    }

    /// Authenticates as `node` and sends a complete snapshot of `groups`:
    /// the node then lists these ports as `node`'s.
    pub(crate) async fn join(&mut self, node: &str, secret: &[u8], groups: &[(&str, &[u64])]) {
        self.authenticate(node, 1, secret).await;
        self.send(&sync(groups, true)).await;
    }
}
