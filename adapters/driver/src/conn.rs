//! The task of one TCP connection: dial it (or take it accepted), then read
//! into the core and write what the core sent, until one side closes. Also
//! the accept loop that feeds the listeners' connections in.
//!
//! These tasks call into the node ([`Shared`]); the node starts them
//! without naming this module: an accepted connection's task is handed to
//! [`Shared::inbound`], a dialled one's is [`dial_task`], which
//! `Node::start_on` gives the node.
//!
//! Generic over any `AsyncRead + AsyncWrite` stream: only the runtime's
//! `connect`/`accept` produce it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;
use futures_lite::{future, io as fio, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use groupmesh_core::ConnId;

use crate::runtime::Runtime;
use crate::shared::{Shared, Wire};

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// Queued bytes gathered into one write, at most (a single larger one is
/// written as it is).
const WRITE_CHUNK: usize = 256 * 1024;

/// Removes the connection's slot when its task ends, however it ends
/// (finished, aborted or killed).
struct SlotGuard<'a, R: Runtime> {
    shared: &'a Shared<R>,
    id: ConnId,
}

impl<R: Runtime> Drop for SlotGuard<'_, R> {
    fn drop(&mut self) {
        tracing::trace!(conn = %self.id, "connection task ended");
        self.shared.task_ended(self.id);
    }
}

/// The task of connection `id`, dialling `addr`: the node's [`DialTask`](crate::shared::DialTask).
pub(crate) fn dial_task<R: Runtime>(
    shared: Arc<Shared<R>>,
    id: ConnId,
    addr: SocketAddr,
    wire: Wire,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(dial(shared, id, addr, wire))
}

/// Dials `addr` for connection `id`, then runs it.
async fn dial<R: Runtime>(shared: Arc<Shared<R>>, id: ConnId, addr: SocketAddr, wire: Wire) {
    let shared = &*shared;
    let _guard = SlotGuard { shared, id };
    match shared.rt.connect(addr).await {
        Ok(stream) => {
            if shared.dialed(id, &stream) {
                tracing::debug!(conn = %id, %addr, "tcp connection established");
                serve(shared, id, stream, wire).await;
            }
        }
        Err(e) => {
            tracing::debug!(conn = %id, %addr, error = %e, "dial failed");
            shared.dial_failed(id, e.kind());
        }
    }
}

/// Runs an accepted connection.
async fn accepted<R: Runtime>(shared: Arc<Shared<R>>, id: ConnId, stream: R::Stream, wire: Wire) {
    let shared = &*shared;
    let _guard = SlotGuard { shared, id };
    serve(shared, id, stream, wire).await;
}

/// How a connection's reading and writing ended.
enum End {
    /// The peer closed (or the socket failed while reading).
    Read,
    /// Our side closed it: the writer wrote everything and shut its half.
    Written,
    /// Writing failed.
    WriteFailed(io::Error),
}

async fn serve<R: Runtime, S>(shared: &Shared<R>, id: ConnId, stream: S, wire: Wire)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Wire { out, queued } = wire;
    let (mut reader, mut writer) = fio::split(stream);
    let reading = async {
        read_loop(shared, id, &mut reader).await;
        End::Read
    };
    let writing = async {
        match write_loop(shared, id, &mut writer, &out, &queued).await {
            Ok(()) => End::Written,
            Err(e) => End::WriteFailed(e),
        }
    };
    match future::or(reading, writing).await {
        End::Read => shared.closed(id),
        End::WriteFailed(e) => {
            tracing::debug!(conn = %id, error = %e, "write failed");
            shared.closed(id);
        }
        End::Written => {
            tracing::trace!(conn = %id, "written and closed, waiting for the peer to close");
            // Let the peer read our last bytes and close its side, so that
            // closing ours does not reset the connection under them.
            future::or(discard_to_eof(&mut reader), shared.sleep(shared.linger)).await;
        }
    }
}

/// Feeds everything read to the core, until end of stream or an error.
/// It never pauses: flow control is per port, by credit (a sender never
/// sends more than a port will hold), so group changes and pings behind a
/// slow port's messages are read at once.
async fn read_loop<R: Runtime>(
    shared: &Shared<R>,
    id: ConnId,
    reader: &mut (impl AsyncRead + Unpin),
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                shared.bytes(id, buf.get(..n).unwrap_or_default());
                if n == buf.len() {
                    // More is likely waiting: let the tasks this woke (port
                    // and monitor readers) run before the next chunk, so a
                    // burst does not overrun a mailbox whose reader keeps up.
                    future::yield_now().await;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(conn = %id, error = %e, "read failed");
                return;
            }
        }
    }
}

/// Writes what the core sends until the connection is closed on our side
/// (the channel's sender dropped), then shuts the write half. Whatever is
/// queued when the writer gets to it goes out in one write (up to
/// [`WRITE_CHUNK`]), so a writer that lags makes one syscall per burst.
/// When what it holds falls to the low-water mark, the core hears the
/// connection drained (a snapshot going out on it goes on).
async fn write_loop<R: Runtime>(
    shared: &Shared<R>,
    id: ConnId,
    writer: &mut (impl AsyncWrite + Unpin),
    out: &Receiver<Vec<u8>>,
    queued: &AtomicUsize,
) -> io::Result<()> {
    while let Ok(mut data) = out.recv().await {
        while data.len() < WRITE_CHUNK {
            match out.try_recv() {
                Ok(more) => data.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        writer.write_all(&data).await?;
        let held = queued.fetch_sub(data.len(), Ordering::AcqRel);
        if held > shared.low_water && held - data.len() <= shared.low_water {
            shared.drained(id);
        }
        if out.is_empty() {
            writer.flush().await?;
        }
    }
    writer.close().await
}

async fn discard_to_eof(reader: &mut (impl AsyncRead + Unpin)) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Accepts connections until the node halts. Accept errors (e.g. out of
/// file descriptors) are logged and retried after a pause.
pub(crate) async fn accept_loop<R: Runtime>(shared: Arc<Shared<R>>, listener: R::Listener) {
    loop {
        match R::accept(&listener).await {
            Ok((stream, addr)) => shared.inbound(stream, addr, accepted),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                shared.sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
