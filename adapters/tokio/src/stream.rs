//! [`Stream`]: a tokio TCP stream as the driver wants it, a `futures-io`
//! stream that clones into another handle on the same socket.

use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use socket2::SockRef;
use std::io::Read;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// A tokio TCP stream shared by its clones. Reads and writes go through
/// tokio's readiness (`poll_read_ready` + `try_read`, as tokio's own
/// `poll_read` does), so one task may read while another writes and a third
/// handle writes directly ([`Runtime::try_write`](groupmesh_driver::Runtime::try_write)).
/// Closing shuts down the write half (sends FIN).
#[derive(Debug, Clone)]
pub struct Stream(Arc<TcpStream>);

impl Stream {
    pub(crate) fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Stream(Arc::new(stream)))
    }

    /// The tokio stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.0
    }
}

impl AsyncRead for Stream {
    /// One read per wake-up: a read that fills less than `buf` emptied the
    /// socket, so the readiness is cleared with it (as tokio's own
    /// `poll_read` does on Unix) and the next read waits for the reactor
    /// instead of making a syscall that would only say `WouldBlock`.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let mut short = None;
            let read = self.0.try_io(Interest::READABLE, || {
                let n = (&*SockRef::from(&*self.0)).read(buf)?;
                if cfg!(unix) && n > 0 && n < buf.len() {
                    // `try_io` clears the readiness on `WouldBlock`, unless
                    // an event came meanwhile (tokio compares its tick).
                    short = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match (read, short) {
                (_, Some(n)) => return Poll::Ready(Ok(n)),
                // The readiness was stale; tokio cleared it: wait again.
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => {}
                (done, None) => return Poll::Ready(done),
            }
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here: a write is a syscall.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(&*self.0).shutdown(Shutdown::Write))
    }
}
