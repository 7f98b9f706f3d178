//! # groupmesh-async-std
//!
//! groupmesh on the [async-std](https://docs.rs/async-std) runtime.
//!
//! **async-std is discontinued upstream** (its last release, 1.13, is marked
//! "Deprecated in favor of `smol`", and RUSTSEC-2025-0052 records it as
//! unmaintained; expect `cargo audit`/`cargo deny` to flag it). Use
//! `groupmesh-tokio` or `groupmesh-smol` for new code; this crate is kept thin so existing
//! async-std programs can run a node.
//!
//! The whole API comes from `groupmesh-driver` and is re-exported unchanged;
//! this crate only supplies [`AsyncStd`] (async-std's spawn and sockets,
//! async-io's timers, which async-std runs on) and names [`Node`] for it.
//!
//! ```no_run
//! use groupmesh_async_std::{Node, NodeConfig};
//!
//! async_std::task::block_on(async {
//!     let mut cfg = NodeConfig::new("worker-1", b"shared secret");
//!     cfg.bind.push("127.0.0.1:0".parse().unwrap());
//!     let node = Node::start(cfg).await.unwrap();
//!     let port = node.open_port();
//!     let _reg = node.register("workers", &port).unwrap();
//!     node.shutdown().await;
//! });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use async_std::io::{Read, Write};
use async_std::net::{TcpListener, TcpStream};

pub use groupmesh_driver::*;

/// A groupmesh node on async-std.
pub type Node = groupmesh_driver::Node<AsyncStd>;

/// The async-std runtime: `async_std::task::spawn`, `async_std::net` sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    type Stream = Stream;
    type Listener = TcpListener;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        // Dropping an async-std JoinHandle detaches the task.
        async_std::task::spawn(future);
    }

    async fn sleep_until(&self, deadline: Instant) {
        async_io::Timer::at(deadline).await;
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Stream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Stream(stream))
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &TcpListener) -> io::Result<(Stream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((Stream(stream), addr))
    }

    #[cfg(unix)]
    fn try_write(stream: &Stream, buf: &[u8]) -> io::Result<usize> {
        // async-io made the socket non-blocking; never raise SIGPIPE.
        rustix::net::send(&stream.0, buf, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
    }
}

/// An async-std TCP stream whose `close` shuts down the write half (sends
/// FIN), as [`Runtime::Stream`] requires; async-std's own only flushes.
/// A clone is another handle on the same socket.
#[derive(Debug, Clone)]
pub struct Stream(TcpStream);

impl Read for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.0).poll_flush(cx))?;
        Poll::Ready(self.0.shutdown(Shutdown::Write))
    }
}
