//! An on-path attacker without the secret: a TCP proxy on 127.0.0.1 in
//! front of a node. It forwards every connection to the node record by
//! record (each a 4-byte little-endian length and a body), keeps every
//! record it forwarded, and, when armed, does one thing to the next sealed
//! record going one way: flips a bit, injects a forged record, replays an
//! earlier one, drops it, or swaps it with the one after.
//!
//! The first two records each way are the plaintext handshake (version,
//! Noise message); every record after them is sealed, the initiator's
//! third being its key confirmation.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};

use super::raw_client::{timeout, IO_LIMIT};

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// From the dialling node (the initiator) to the node behind the proxy.
    ToTarget,
    /// From the node behind the proxy (the responder) back to the dialler.
    ToDialler,
}

/// What the proxy does to the next sealed record going one way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tamper {
    /// Flips the lowest bit of its last byte (in the AEAD tag).
    FlipBit,
    /// Sends a record nobody sealed before it: a valid length, random bytes.
    Inject,
    /// Forwards it, then the sealed record before it again.
    Replay,
    /// Never forwards it.
    Drop,
    /// Holds it and forwards it after the next one.
    Reorder,
}

/// Records of the plaintext handshake at the start of each way.
const PLAINTEXT_RECORDS: usize = 2;

/// One proxied connection: every record forwarded each way, in order
/// (length prefix included), as the proxy received them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorded {
    pub(crate) to_target: Vec<Vec<u8>>,
    pub(crate) to_dialler: Vec<Vec<u8>>,
}

impl Recorded {
    /// The records forwarded `way`.
    pub(crate) fn way(&self, way: Way) -> &[Vec<u8>] {
        match way {
            Way::ToTarget => &self.to_target,
            Way::ToDialler => &self.to_dialler,
        }
    }

    fn way_mut(&mut self, way: Way) -> &mut Vec<Vec<u8>> {
        match way {
            Way::ToTarget => &mut self.to_target,
            Way::ToDialler => &mut self.to_dialler,
        }
    }
}

/// What the proxy did, for the test to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done {
    /// Which connection (in accept order, from 0).
    pub(crate) conn: usize,
    pub(crate) way: Way,
    pub(crate) tamper: Tamper,
    /// Index of the record it was done to, in that way's records.
    pub(crate) record: usize,
}

#[derive(Default)]
struct Shared {
    conns: Vec<Recorded>,
    armed: Option<(Way, Tamper)>,
    done: Vec<Done>,
}

/// Locks `shared`, a panic elsewhere notwithstanding (the data stays valid).
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP proxy in front of one node.
pub(crate) struct Proxy {
    /// Where to dial instead of the node (for a [`splice`](Self::splice):
    /// the address its connection to `x` comes from).
    pub(crate) addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    /// The accepting task, if it listens.
    _task: Option<smol::Task<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("addr", &self.addr).finish()
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 and forwards every connection to `target`,
    /// honestly until [`arm`](Self::arm)ed.
    pub(crate) fn start(target: SocketAddr) -> Proxy {
        let (_, listener) = bind();
        Proxy::start_on(listener, target)
    }

    /// As [`start`](Self::start), on a listener bound already (e.g. at an
    /// address a node was told to dial before its target started).
    pub(crate) fn start_on(listener: TcpListener, target: SocketAddr) -> Proxy {
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let accepting = shared.clone();
        let task = smol::spawn(async move {
            while let Ok((dialler, _)) = listener.accept().await {
                let Ok(target) = TcpStream::connect(target).await else {
                    continue;
                };
                join(dialler, target, &accepting);
            }
        });
        Proxy {
            addr,
            shared,
            _task: Some(task),
        }
    }

    /// An outsider's splice: connects to `x` and to `y` and forwards every
    /// byte each sends to the other, both ways ("dialler" is the connection
    /// to `x`, "target" the one to `y`). Returns the proxy's view and the
    /// addresses `x` and `y` see the two connections come from.
    pub(crate) async fn splice(x: SocketAddr, y: SocketAddr) -> (Proxy, SocketAddr, SocketAddr) {
        let connect = |addr| async move {
            timeout(IO_LIMIT, TcpStream::connect(addr))
                .await
                .expect("connecting to a node timed out")
                .expect("the node listens on 127.0.0.1")
        };
        let (to_x, to_y) = (connect(x).await, connect(y).await);
        let from = |s: &TcpStream| s.local_addr().expect("a connected socket has an address");
        let (seen_by_x, seen_by_y) = (from(&to_x), from(&to_y));
        let shared = Arc::new(Mutex::new(Shared::default()));
        join(to_x, to_y, &shared);
        let proxy = Proxy {
            addr: seen_by_x,
            shared,
            _task: None,
        };
        (proxy, seen_by_x, seen_by_y)
    }

    /// Does `tamper` to the next sealed record going `way`, on any connection.
    pub(crate) fn arm(&self, way: Way, tamper: Tamper) {
        lock(&self.shared).armed = Some((way, tamper));
    }

    /// What the proxy did when armed, so far.
    pub(crate) fn done(&self) -> Vec<Done> {
        lock(&self.shared).done.clone()
    }

    /// The records of connection `conn` (in accept order) so far.
    pub(crate) fn recorded(&self, conn: usize) -> Option<Recorded> {
        lock(&self.shared).conns.get(conn).cloned()
    }
}

/// A listener on a free port of 127.0.0.1, and its address.
pub(crate) fn bind() -> (SocketAddr, TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let listener = TcpListener::try_from(listener).expect("an async listener");
    (addr, listener)
}

/// Forwards between `dialler` and `target`, both ways, as a new connection
/// of the proxy.
fn join(dialler: TcpStream, target: TcpStream, shared: &Arc<Mutex<Shared>>) {
    let _ = target.set_nodelay(true);
    let _ = dialler.set_nodelay(true);
    let conn = {
        let mut s = lock(shared);
        s.conns.push(Recorded::default());
        s.conns.len() - 1
    };
    let (up, down) = (shared.clone(), shared.clone());
    smol::spawn(async move {
        futures_lite::future::zip(
            forward(dialler.clone(), target.clone(), up, conn, Way::ToTarget),
            forward(target, dialler, down, conn, Way::ToDialler),
        )
        .await;
    })
    .detach();
}

/// Bytes that stand for a record nobody sealed: a plausible sealed record
/// (a frame of a few bytes and a 16-byte tag), of fixed noise.
fn forged_record() -> Vec<u8> {
    let body: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let mut rec = u32::try_from(body.len())
        .expect("a short body")
        .to_le_bytes()
        .to_vec();
    rec.extend_from_slice(&body);
    rec
}

/// The length of the first whole record in `buf`, prefix included.
fn whole_record(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = 4 + usize::try_from(u32::from_le_bytes(prefix)).ok()?;
    (buf.len() >= len).then_some(len)
}

/// Copies `from` to `to` record by record until either ends, keeping each
/// record and doing what the proxy is armed to do to the first sealed one.
async fn forward(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: Arc<Mutex<Shared>>,
    conn: usize,
    way: Way,
) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // Index of the next record this way, and a record held back to reorder.
    let mut index = 0;
    let mut held: Option<Vec<u8>> = None;
    'read: while let Ok(n) = from.read(&mut chunk).await {
        let Some(bytes) = chunk.get(..n).filter(|b| !b.is_empty()) else {
            break;
        };
        buf.extend_from_slice(bytes);
        while let Some(len) = whole_record(&buf) {
            let rec: Vec<u8> = buf.drain(..len).collect();
            let out = {
                let mut s = lock(&shared);
                let tamper = match s.armed {
                    Some((w, t)) if w == way && index >= PLAINTEXT_RECORDS => {
                        s.armed = None;
                        s.done.push(Done {
                            conn,
                            way,
                            tamper: t,
                            record: index,
                        });
                        Some(t)
                    }
                    _ => None,
                };
                let earlier = index
                    .checked_sub(1)
                    .filter(|i| *i >= PLAINTEXT_RECORDS)
                    .and_then(|i| s.conns.get(conn)?.way(way).get(i).cloned());
                if let Some(r) = s.conns.get_mut(conn) {
                    r.way_mut(way).push(rec.clone());
                }
                index += 1;
                let mut out = Vec::new();
                match tamper {
                    None => out.extend_from_slice(&rec),
                    Some(Tamper::FlipBit) => {
                        let mut flipped = rec.clone();
                        if let Some(last) = flipped.last_mut() {
                            *last ^= 1;
                        }
                        out.extend_from_slice(&flipped);
                    }
                    Some(Tamper::Inject) => {
                        out.extend_from_slice(&forged_record());
                        out.extend_from_slice(&rec);
                    }
                    Some(Tamper::Replay) => {
                        out.extend_from_slice(&rec);
                        out.extend_from_slice(earlier.as_deref().unwrap_or(&rec));
                    }
                    Some(Tamper::Drop) => {}
                    Some(Tamper::Reorder) => held = Some(rec.clone()),
                }
                if tamper.is_none() {
                    if let Some(h) = held.take() {
                        out.extend_from_slice(&h);
                    }
                }
                out
            };
            if !out.is_empty() && to.write_all(&out).await.is_err() {
                break 'read;
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
