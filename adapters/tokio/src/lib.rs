//! # groupmesh-tokio
//!
//! groupmesh on the [tokio](https://docs.rs/tokio) runtime: a fully meshed
//! network of nodes over TCP with a network-global registry of named port
//! groups, in the manner of Erlang's `pg`.
//!
//! The whole API comes from `groupmesh-driver` and is re-exported unchanged;
//! this crate only supplies [`Tokio`] (`tokio::spawn`, `tokio::time` and
//! `tokio::net`) and names [`Node`] for it. Nothing of another runtime runs
//! beside tokio: no second reactor, no timer thread.
//!
//! It works on the multi-thread and the current-thread runtime; the
//! runtime needs its I/O and time drivers (`enable_all`, as
//! `#[tokio::main]` does). A [`Node`] is `Send + Sync` and may be used from
//! any task or thread, in the runtime or not: it keeps a handle on the
//! runtime it was started in.
//!
//! ```no_run
//! use futures_lite::StreamExt; // or tokio_stream's, or futures'
//! use groupmesh_tokio::{Node, NodeConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut cfg = NodeConfig::new("worker-1", b"shared secret");
//!     cfg.bind.push("127.0.0.1:0".parse()?);
//!     let node = Node::start(cfg).await?;
//!     let port = node.open_port();
//!     let _reg = node.register("workers", &port)?;
//!     let mut workers = node.monitor("workers")?; // a futures `Stream`
//!     let first = workers.next().await;
//!     assert_eq!(first.map(|c| c.members), Some(vec![port.id().clone()]));
//!     node.shutdown().await;
//!     Ok(())
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod stream;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::runtime::Handle;

pub use groupmesh_driver::*;
pub use stream::Stream;

/// A groupmesh node on tokio.
pub type Node = groupmesh_driver::Node<Tokio>;

/// The tokio runtime: tasks, timers and sockets of the runtime whose
/// [`Handle`] it holds.
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: Handle,
}

impl Tokio {
    /// Runs nodes on the runtime behind `handle` (for
    /// [`Node::start_on`](groupmesh_driver::Node::start_on) from outside it).
    pub fn new(handle: Handle) -> Self {
        Tokio { handle }
    }
}

impl Default for Tokio {
    /// The current runtime: [`Node::start`](groupmesh_driver::Node::start)
    /// called (awaited) in a tokio task takes that task's runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, as [`Handle::current`]; use [`Tokio::new`] there.
    fn default() -> Self {
        Tokio::new(Handle::current())
    }
}

impl Runtime for Tokio {
    type Stream = Stream;
    type Listener = TcpListener;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        // Dropping a tokio JoinHandle detaches the task.
        drop(self.handle.spawn(future));
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        // A tokio timer finds its runtime when made: make it in ours, so
        // that a handle used from any thread works.
        let _in_runtime = self.handle.enter();
        tokio::time::sleep_until(deadline.into())
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Stream> {
        // Called in the driver's tasks, which run in the runtime.
        Stream::new(tokio::net::TcpStream::connect(addr).await?)
    }

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<TcpListener>> + Send {
        // Bound here, in our runtime, whatever task awaits it.
        let bound = std::net::TcpListener::bind(addr).and_then(|listener| {
            listener.set_nonblocking(true)?;
            let _in_runtime = self.handle.enter();
            TcpListener::from_std(listener)
        });
        std::future::ready(bound)
    }

    fn local_addr(listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    async fn accept(listener: &TcpListener) -> io::Result<(Stream, SocketAddr)> {
        let (stream, addr) = listener.accept().await?;
        Ok((Stream::new(stream)?, addr))
    }

    fn try_write(stream: &Stream, buf: &[u8]) -> io::Result<usize> {
        stream.get_ref().try_write(buf)
    }
}
