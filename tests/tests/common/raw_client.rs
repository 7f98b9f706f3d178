//! A raw groupmesh client that speaks bytes over TCP, for attack tests.
//!
//! It writes whatever it is told: any bytes at all, plaintext handshake
//! records or frames, or frames sealed in its own secure channel (the core's
//! [`Channel`], the initiator) once it did the handshake with the right or a
//! wrong secret. It reads back what the node sent: before its handshake
//! starts, the node's plaintext records; after, through its channel. Every
//! byte read is kept, for recording and replay. Every read and
//! connect is bounded in time.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use groupmesh_core::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, HandshakeRecord, Hello, LeaveReason, PeerInfo,
    WireGroup, WireLeave, WireNodeId, WirePort, MAX_HANDSHAKE_RECORD, MAX_RECORD,
};
use groupmesh_core::{Channel, CloseReason, Input, Psk, RecordReader, WireReason};
use smol::net::TcpStream;
use smol::Timer;

/// The longest any single network wait of a raw client may take.
pub(crate) const IO_LIMIT: Duration = Duration::from_secs(5);

/// Largest frame the raw client accepts from the node (and says it accepts).
const CLIENT_MAX_FRAME: usize = 1024 * 1024;

/// What one read from the node gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Read {
    /// Before our handshake: the node's plaintext version record.
    Version(u16),
    /// Before our handshake: a Noise message of the node's (its answer to a
    /// greeting this client replayed, or its own first message when it
    /// dialled), which this client cannot read.
    Noise,
    /// Before our handshake, after the node's Noise message: a sealed
    /// record, which this client has no key to open (e.g. the close frame
    /// of a node that answered a replayed greeting). Never a refusal,
    /// which is shorter than any sealed record.
    Sealed,
    /// The node proved the key: its greeting. Our key confirmation is sent.
    Authenticated(Box<Hello>),
    /// A frame, sealed by the node.
    Frame(Frame),
    /// The node ends the connection and says why: a plaintext refusal
    /// before the channel is keyed, a sealed close frame after.
    Refused(WireReason),
    /// What the node sent does not read under our channel (e.g. its answer
    /// does not open under our key).
    Unreadable(CloseReason),
    /// The node closed its side (end of stream).
    Eof,
    /// The socket failed (e.g. reset by the node).
    Failed(io::ErrorKind),
}

impl Read {
    /// The node ended the connection: nothing follows.
    fn is_end(&self) -> bool {
        matches!(self, Read::Eof | Read::Failed(_))
    }
}

/// How a connection ended, as the raw client saw it.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Every read before the end.
    pub(crate) reads: Vec<Read>,
    /// The last read: end of stream or a socket error.
    pub(crate) end: Read,
}

impl Ended {
    /// The reason the node gave last, if it gave one.
    pub(crate) fn close_reason(&self) -> Option<WireReason> {
        self.reads.iter().rev().find_map(|r| match r {
            Read::Refused(reason) => Some(*reason),
            _ => None,
        })
    }
}

/// Why [`RawClient::try_authenticate`] did not authenticate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NotAuthenticated {
    /// The node refused, and said why.
    Refused(WireReason),
    /// The node's answer did not open under our key.
    Unreadable(CloseReason),
    /// The node closed or reset the connection without a reason (e.g. a
    /// connection limit turned it away).
    Closed,
}

/// A raw TCP client of a groupmesh node.
pub(crate) struct RawClient {
    stream: TcpStream,
    /// The node's plaintext records, read before our handshake starts.
    records: RecordReader,
    /// Our secure channel, once our handshake started.
    channel: Option<Channel>,
    /// Reads not yet returned.
    pending: std::collections::VecDeque<Read>,
    /// Our channel stopped reading (it failed, or the node refused).
    unreadable: bool,
    /// Before our handshake, the node sent a Noise message: what follows
    /// is sealed, or a refusal.
    answered: bool,
    eof: bool,
    local: SocketAddr,
    /// Every byte read from the node, in order.
    received: Vec<u8>,
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

/// 32 bytes no other call in this process returns: a process-wide counter
/// (uniqueness) followed by randomly keyed hashes (unpredictability). Seeds
/// a raw client's ephemeral key.
pub(crate) fn fresh_seed() -> [u8; 32] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut seed = [0u8; 32];
    let mut chunks = seed.chunks_mut(8);
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
    seed
}

/// A greeting from `node` with no addresses (so the node never dials the
/// raw client back).
pub(crate) fn hello(node: &str, incarnation: u64) -> Hello {
    let mut id = WireNodeId::new();
    id.push_str(node)
        .expect("test node ids are at most 64 bytes");
    Hello {
        node: id,
        incarnation,
        epoch: incarnation,
        addrs: Default::default(),
        max_frame: u32::try_from(CLIENT_MAX_FRAME).expect("a small frame size"),
        port_credit: 64,
    }
}

/// What an initiator keyed by `secret` sends first: its version record and
/// its first Noise message, with `ours` inside.
pub(crate) fn first_message(ours: &Hello, secret: &[u8]) -> Vec<u8> {
    let mut channel = Channel::new(true, &Psk::derive(secret), CLIENT_MAX_FRAME, fresh_seed());
    channel.start(ours);
    channel.take_wire()
}

/// The encoding of `frame`, length prefix included (plaintext).
pub(crate) fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

/// The encoding of a plaintext handshake record, length prefix included.
pub(crate) fn record(rec: &HandshakeRecord) -> Vec<u8> {
    let mut out = Vec::new();
    rec.encode(&mut out);
    out
}

/// A 4-byte little-endian length prefix and `body`: one record (or frame)
/// on the wire, whatever the body.
pub(crate) fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut bytes = u32::try_from(body.len())
        .expect("a short body")
        .to_le_bytes()
        .to_vec();
    bytes.extend_from_slice(body);
    bytes
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

/// A snapshot frame: the sender's port numbers in each group, without metadata.
pub(crate) fn sync(groups: &[(&str, &[u64])], done: bool) -> Frame {
    let groups: Vec<(&str, &[u64], &[u8])> =
        groups.iter().map(|(g, p)| (*g, *p, &[][..])).collect();
    sync_with_meta(&groups, done)
}

/// A snapshot frame: the sender's port numbers in each group, each port
/// with the group's `meta`.
pub(crate) fn sync_with_meta(groups: &[(&str, &[u64], &[u8])], done: bool) -> Frame {
    Frame::Sync {
        groups: bounded(
            groups
                .iter()
                .map(|(g, ports, meta)| GroupPorts {
                    group: wire_group(g),
                    ports: bounded(
                        ports
                            .iter()
                            .map(|&number| WirePort {
                                number,
                                meta: meta.to_vec().into(),
                            })
                            .collect(),
                    ),
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
                    joined: bounded(
                        joined
                            .iter()
                            .map(|&number| WirePort {
                                number,
                                meta: Default::default(),
                            })
                            .collect(),
                    ),
                    left: bounded(
                        left.iter()
                            .map(|&number| WireLeave {
                                number,
                                reason: LeaveReason::Unregistered,
                            })
                            .collect(),
                    ),
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
            records: RecordReader::new(MAX_HANDSHAKE_RECORD),
            channel: None,
            pending: Default::default(),
            unreadable: false,
            answered: false,
            eof: false,
            local,
            received: Vec::new(),
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

    /// Every byte read from the node so far.
    pub(crate) fn received(&self) -> &[u8] {
        &self.received
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

    /// Writes bytes, panicking if the node already closed.
    async fn write(&mut self, bytes: &[u8], what: &(dyn std::fmt::Debug + Sync)) {
        self.send_bytes(bytes)
            .await
            .unwrap_or_else(|e| panic!("writing {what:?}: {e}"));
    }

    /// Writes one plaintext handshake record.
    pub(crate) async fn send_record(&mut self, rec: &HandshakeRecord) {
        self.write(&record(rec), rec).await;
    }

    /// Writes one frame sealed in our channel, panicking if it is not keyed
    /// or the node already closed.
    pub(crate) async fn send(&mut self, frame: &Frame) {
        let sealed = self.seal(frame);
        self.write(&sealed, frame).await;
    }

    /// The records that carry `frame` sealed in our channel (advancing its
    /// nonce), not written: the caller sends them, altered or not.
    pub(crate) fn seal(&mut self, frame: &Frame) -> Vec<u8> {
        self.seal_bytes(&encode(frame))
    }

    /// The records that carry `plain` (any bytes, not necessarily frames)
    /// sealed in our channel, not written.
    pub(crate) fn seal_bytes(&mut self, plain: &[u8]) -> Vec<u8> {
        let channel = self
            .channel
            .as_mut()
            .filter(|c| c.is_keyed())
            .expect("sealing needs a keyed channel: authenticate first");
        let mut plain = plain.to_vec();
        channel.seal(&mut plain);
        channel.take_wire()
    }

    /// Ends this client's sending side (the node reads end of stream).
    pub(crate) fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutting down a connected socket");
    }

    /// Starts our handshake as the initiator, keyed by `secret`: our version
    /// record and first Noise message, with `ours` inside, are sent. What the
    /// node sent so far is read again through the channel.
    pub(crate) async fn start_handshake(&mut self, ours: &Hello, secret: &[u8]) {
        assert!(self.channel.is_none(), "one handshake per connection");
        let mut channel = Channel::new(true, &Psk::derive(secret), CLIENT_MAX_FRAME, fresh_seed());
        channel.start(ours);
        // The plaintext reader may hold part of a record: the channel reads
        // everything from the first byte.
        self.records = RecordReader::new(MAX_HANDSHAKE_RECORD);
        let received = std::mem::take(&mut self.received);
        self.channel = Some(channel);
        self.pending.retain(|r| {
            !matches!(
                r,
                Read::Version(_) | Read::Noise | Read::Sealed | Read::Refused(_)
            )
        });
        self.absorb(&received);
        self.flush().await;
    }

    /// Sends whatever our channel wrote (our handshake, our key confirmation).
    async fn flush(&mut self) {
        let wire = self
            .channel
            .as_mut()
            .map(Channel::take_wire)
            .unwrap_or_default();
        if !wire.is_empty() {
            // The node may have closed already: what it sent says why.
            let _ = self.send_bytes(&wire).await;
        }
    }

    /// Reads `bytes` from the node into `pending`.
    fn absorb(&mut self, bytes: &[u8]) {
        self.received.extend_from_slice(bytes);
        let mut input = bytes;
        match self.channel.as_mut() {
            Some(channel) => {
                while !self.unreadable {
                    match channel.next(&mut input) {
                        Ok(Some(Input::Authenticated(h))) => {
                            self.pending.push_back(Read::Authenticated(Box::new(h)));
                        }
                        Ok(Some(Input::Frame(Frame::Close { reason }))) => {
                            self.pending.push_back(Read::Refused(reason));
                        }
                        Ok(Some(Input::Frame(f))) => self.pending.push_back(Read::Frame(f)),
                        Ok(Some(Input::Greeting(h))) => {
                            panic!("an initiator's channel read a greeting: {h:?}")
                        }
                        Ok(None) => break,
                        Err(CloseReason::Remote(reason)) => {
                            self.unreadable = true;
                            self.pending.push_back(Read::Refused(reason));
                        }
                        Err(reason) => {
                            self.unreadable = true;
                            self.pending.push_back(Read::Unreadable(reason));
                        }
                    }
                }
            }
            None => {
                while !self.unreadable {
                    match self.records.fill(&mut input) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => panic!("the node sent a record over the handshake size: {e:?}"),
                    }
                    let read = match HandshakeRecord::decode(self.records.record()) {
                        // A refusal is shorter than any sealed record's tag.
                        Ok(HandshakeRecord::Refuse(reason)) => {
                            self.unreadable = true;
                            Read::Refused(reason)
                        }
                        _ if self.answered => Read::Sealed,
                        Ok(HandshakeRecord::Version(v)) => Read::Version(v),
                        Ok(HandshakeRecord::Noise(_)) => {
                            self.answered = true;
                            self.records.set_max(MAX_RECORD);
                            Read::Noise
                        }
                        Err(e) => panic!("the node sent a record that is none: {e:?}"),
                    };
                    self.records.consume();
                    self.pending.push_back(read);
                }
            }
        }
    }

    /// The next thing the node sent, or `None` if nothing came within `limit`.
    pub(crate) async fn next_within(&mut self, limit: Duration) -> Option<Read> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(read) = self.pending.pop_front() {
                if matches!(read, Read::Authenticated(_)) {
                    self.flush().await;
                }
                return Some(read);
            }
            if self.eof {
                return Some(Read::Eof);
            }
            match timeout(limit, self.stream.read(&mut buf)).await {
                None => return None,
                Some(Ok(0)) => self.eof = true,
                Some(Ok(n)) => self.absorb(buf.get(..n).unwrap_or_default()),
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(e)) => return Some(Read::Failed(e.kind())),
            }
        }
    }

    /// The next thing the node sent, panicking if nothing came in time.
    pub(crate) async fn next(&mut self) -> Read {
        self.next_within(IO_LIMIT)
            .await
            .unwrap_or_else(|| panic!("the node sent nothing within {IO_LIMIT:?}"))
    }

    /// Reads the node's version record, the first thing it sends.
    pub(crate) async fn read_version(&mut self) -> u16 {
        match self.next().await {
            Read::Version(v) => v,
            other => panic!("expected the node's version record, got {other:?}"),
        }
    }

    /// Reads everything until the node ends the connection.
    pub(crate) async fn until_end(&mut self, limit: Duration) -> Ended {
        let started = std::time::Instant::now();
        let mut reads = Vec::new();
        loop {
            let left = limit.saturating_sub(started.elapsed());
            match self.next_within(left).await {
                Some(end) if end.is_end() => return Ended { reads, end },
                Some(read) => reads.push(read),
                None => panic!("the node did not close within {limit:?}; it sent {reads:?}"),
            }
        }
    }

    /// Reads until the node ends the connection, and checks that it said
    /// why: returns that reason.
    pub(crate) async fn expect_closed(&mut self) -> (WireReason, Ended) {
        let ended = self.until_end(IO_LIMIT).await;
        let reason = ended
            .close_reason()
            .unwrap_or_else(|| panic!("the node closed without saying why: {ended:?}"));
        (reason, ended)
    }

    /// The whole honest handshake as `node`, keyed by `secret`: the node's
    /// greeting, once it proved the key (our key confirmation is then sent;
    /// the node authenticates us when it opens), or why not.
    pub(crate) async fn try_authenticate(
        &mut self,
        node: &str,
        incarnation: u64,
        secret: &[u8],
    ) -> Result<Hello, NotAuthenticated> {
        self.start_handshake(&hello(node, incarnation), secret)
            .await;
        match self.next().await {
            Read::Authenticated(h) => Ok(*h),
            Read::Refused(reason) => Err(NotAuthenticated::Refused(reason)),
            Read::Unreadable(reason) => Err(NotAuthenticated::Unreadable(reason)),
            Read::Eof | Read::Failed(_) => Err(NotAuthenticated::Closed),
            Read::Version(_) | Read::Noise | Read::Sealed | Read::Frame(_) => {
                panic!("the channel reads the version and no frame before authentication")
            }
        }
    }

    /// [`try_authenticate`](Self::try_authenticate), panicking if refused.
    pub(crate) async fn authenticate(&mut self, node: &str, incarnation: u64, secret: &[u8]) {
        if let Err(e) = self.try_authenticate(node, incarnation, secret).await {
            panic!("the node did not authenticate {node}: {e:?}");
        }
    }

    /// Authenticates as `node` and sends a complete snapshot of `groups`:
    /// the node then lists these ports as `node`'s.
    pub(crate) async fn join(&mut self, node: &str, secret: &[u8], groups: &[(&str, &[u64])]) {
        self.authenticate(node, 1, secret).await;
        self.send(&sync(groups, true)).await;
    }
}
