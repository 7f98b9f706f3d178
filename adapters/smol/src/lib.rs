//! # groupmesh-smol
//!
//! groupmesh on the [smol](https://docs.rs/smol) runtime: a fully meshed
//! network of nodes over TCP with a network-global registry of named port
//! groups, in the manner of Erlang's `pg`, for programs that run on smol
//! (`groupmesh-tokio` is the same for tokio programs).
//!
//! The whole API comes from `groupmesh-driver` and is re-exported unchanged;
//! this crate only supplies [`Smol`] (smol's spawn, timers and sockets) and
//! names [`Node`] for it.
//!
//! ```no_run
//! use smol::stream::StreamExt;
//! use groupmesh_smol::{Node, NodeConfig};
//!
//! smol::block_on(async {
//!     let mut cfg = NodeConfig::new("worker-1", b"shared secret");
//!     cfg.bind.push("127.0.0.1:0".parse().unwrap());
//!     let node = Node::start(cfg).await.unwrap();
//!     let port = node.open_port();
//!     let _reg = node.register("workers", &port).unwrap();
//!     let mut workers = node.monitor("workers").unwrap();
//!     let first = workers.next().await.unwrap();
//!     assert_eq!(first.members, vec![port.id().clone()]);
//!     node.shutdown().await;
//! });
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use smol::net::{TcpListener, TcpStream};

pub use groupmesh_driver::*;

/// A groupmesh node on smol.
pub type Node = groupmesh_driver::Node<Smol>;

/// The smol runtime: tasks on smol's global executor, `smol::net` sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    type Stream = TcpStream;
    type Listener = TcpListener;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        // A smol task is cancelled when its handle drops: detach it.
        smol::spawn(future).detach();
    }

    async fn sleep_until(&self, deadline: Instant) {
        smol::Timer::at(deadline).await;
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn bind(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        TcpListener::bind(addr).await
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, addr))
    }

    #[cfg(unix)]
    fn try_write(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
        // async-io made the socket non-blocking; never raise SIGPIPE.
        rustix::net::send(stream, buf, rustix::net::SendFlags::NOSIGNAL).map_err(io::Error::from)
    }
}
