//! The runtime seam: everything that differs between async runtimes.
//!
//! Sockets, timers, spawning and the non-blocking direct write come from the
//! runtime; everything else (framing the core's I/O, backpressure, the user
//! API) is in this crate and shared, and depends on no runtime. Modelled on
//! quinn's `Runtime` trait (`quinn/src/runtime/mod.rs`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite};

/// An async runtime that can run a groupmesh node.
///
/// Implemented by the runtime crates (`groupmesh-tokio`, `groupmesh-smol`,
/// `groupmesh-async-std`); implement it yourself to run on another executor
/// or transport.
///
/// Every method may be called from any thread, inside the runtime or not:
/// a node's handles are used from anywhere, and each call may spawn a task
/// or start a timer. A runtime that needs a context to do so (tokio) keeps a
/// handle on it in `self`.
pub trait Runtime: Send + Sync + 'static {
    /// A connected byte stream (a TCP connection), as a `futures-io`
    /// stream. Its `poll_close` must shut down the write half (send FIN) so
    /// the peer reads end of stream, as `smol::net::TcpStream` does
    /// (`async_std::net::TcpStream` only flushes: `groupmesh-async-std`
    /// wraps it).
    ///
    /// A clone is another handle on the same socket: the driver keeps one
    /// for [`try_write`](Self::try_write) while a task reads and writes.
    type Stream: AsyncRead + AsyncWrite + Clone + Unpin + Send + Sync + 'static;
    /// A bound listener.
    type Listener: Send + Sync + 'static;

    /// Runs `future` in the background until it completes. The driver never
    /// joins or cancels what it spawns through this: every future it spawns
    /// ends by itself when the node stops, so a detached task is right.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static);

    /// Completes at `deadline` (at once if it has passed). The driver's
    /// timers are all this: the core's next deadline, a read paused for a
    /// full mailbox, the linger of a closing connection.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;

    /// Opens a connection to `addr`.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Binds a listener to `addr` (port 0 picks a free port).
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// The address `listener` is bound to, with the real port.
    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Waits for the next inbound connection and the address it came from.
    fn accept(
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    /// Writes what the socket takes of `buf` at once, without waiting, and
    /// returns how much (`Err` of kind `WouldBlock` when it takes nothing
    /// now). The driver calls it only while the connection's writer task has
    /// nothing queued, so that bytes go out from the thread that produced
    /// them, without a task hop (a call writes to a few connections at
    /// most; a change for a larger mesh goes to the others from a task);
    /// the rest goes to the writer task. The default takes nothing: every
    /// byte goes through the writer task.
    fn try_write(stream: &Self::Stream, buf: &[u8]) -> io::Result<usize> {
        let _ = (stream, buf);
        Err(io::ErrorKind::WouldBlock.into())
    }
}
