//! The runtime seam: the little that differs between async runtimes.
//!
//! Everything else (framing the core's I/O, timers, backpressure, the user
//! API) is in this crate and shared. Modelled on quinn's `Runtime` trait
//! (`quinn/src/runtime/mod.rs`); the timer is not part of the seam because
//! `async_io::Timer` works under every runtime built on `async-io`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures_lite::{AsyncRead, AsyncWrite};

/// An async runtime that can run a groupmesh node.
///
/// Implemented by the runtime crates (`groupmesh-smol`, `groupmesh-async-std`);
/// implement it yourself to run on another executor or transport.
pub trait Runtime: Send + Sync + 'static {
    /// A connected byte stream (a TCP connection). Its `poll_close` must shut
    /// down the write half (send FIN) so the peer reads end of stream, as
    /// `smol::net::TcpStream` does (`async_std::net::TcpStream` only flushes:
    /// `groupmesh-async-std` wraps it).
    ///
    /// A clone is another handle on the same socket (as for `smol`'s and
    /// `async-std`'s streams): the driver keeps one for [`try_write`](Self::try_write).
    type Stream: AsyncRead + AsyncWrite + Clone + Unpin + Send + Sync + 'static;
    /// A bound listener.
    type Listener: Send + Sync + 'static;

    /// Runs `future` in the background until it completes. The driver never
    /// joins or cancels what it spawns through this: every future it spawns
    /// ends by itself when the node stops, so a detached task is right.
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static);

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
    /// them, without a task hop; the rest goes to the writer task. The
    /// default takes nothing: every byte goes through the writer task.
    /// On Unix, [`try_send`](crate::try_send) implements it for any socket.
    fn try_write(stream: &Self::Stream, buf: &[u8]) -> io::Result<usize> {
        let _ = (stream, buf);
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// A non-blocking `send(2)` on a socket the runtime already made
/// non-blocking (as `async-io` does): what [`Runtime::try_write`] needs.
/// Never raises `SIGPIPE`.
///
/// # Errors
/// The socket's error; `WouldBlock` when its send buffer is full.
#[cfg(unix)]
pub fn try_send(socket: &impl std::os::fd::AsFd, buf: &[u8]) -> io::Result<usize> {
    rustix::net::send(socket, buf, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
}
