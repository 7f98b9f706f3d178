//! Smol as a node's runtime, with hooks on the sockets: the tests that need
//! to see or change what the driver does with a socket (`snapshot.rs` cuts
//! each accepted connection's send buffer, `fan_out.rs` counts the writes
//! made from the calling thread) share this one delegation.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Instant;

use groupmesh_smol::{Runtime, Smol};

type Stream = <Smol as Runtime>::Stream;

/// What a test adds to smol's sockets. Each hook's default does nothing.
pub(crate) trait Hooks: Send + Sync + 'static {
    /// Called on every connection the node accepts, before it is used.
    fn accepted(stream: &Stream) -> io::Result<()> {
        let _ = stream;
        Ok(())
    }

    /// Called on every write the driver makes without waiting
    /// (`Runtime::try_write`), on the thread that makes it.
    fn writing(buf: &[u8]) {
        let _ = buf;
    }
}

/// Smol, with `H`'s hooks on the sockets.
#[derive(Debug)]
pub(crate) struct HookedSmol<H>(PhantomData<fn() -> H>);

impl<H> Default for HookedSmol<H> {
    fn default() -> Self {
        HookedSmol(PhantomData)
    }
}

impl<H: Hooks> Runtime for HookedSmol<H> {
    type Stream = Stream;
    type Listener = <Smol as Runtime>::Listener;

    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        Smol.spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        Smol.sleep_until(deadline)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        Smol.connect(addr)
    }

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        Smol.bind(addr)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        Smol::local_addr(listener)
    }

    async fn accept(listener: &Self::Listener) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, addr) = Smol::accept(listener).await?;
        H::accepted(&stream)?;
        Ok((stream, addr))
    }

    fn try_write(stream: &Self::Stream, buf: &[u8]) -> io::Result<usize> {
        H::writing(buf);
        Smol::try_write(stream, buf)
    }
}
