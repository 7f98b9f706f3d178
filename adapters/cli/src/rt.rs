//! `--runtime`: the async runtime the node runs on (`groupmesh-runtimes`,
//! shared with the bench), and what only the commands need of it beyond that:
//! watching for stop signals.

use std::future::Future;

use futures_lite::StreamExt;
use groupmesh_async_std::AsyncStd;
use groupmesh_smol::Smol;
use groupmesh_tokio::Tokio;

pub(crate) use groupmesh_runtimes::{sleep, spawn, Rt, RuntimeName, Task};

/// A runtime a command runs on that can also watch for stop signals.
pub(crate) trait Signals: Rt {
    /// Watches for SIGINT and SIGTERM from now on: the future yields the
    /// first one's name (`None` if signals can no longer be watched).
    ///
    /// # Errors
    /// When signals cannot be watched.
    fn stop_signal() -> Result<impl Future<Output = Option<&'static str>> + Send + 'static, String>
    {
        use async_signal::Signal;
        let mut signals = async_signal::Signals::new([Signal::Int, Signal::Term])
            .map_err(|e| format!("cannot watch for signals: {e}"))?;
        Ok(async move {
            match signals.next().await? {
                Ok(Signal::Int) => Some("SIGINT"),
                Ok(_) => Some("SIGTERM"),
                Err(_) => None,
            }
        })
    }
}

impl Signals for Smol {}

impl Signals for AsyncStd {}

impl Signals for Tokio {
    /// tokio's own signal handling: no second reactor for it.
    #[cfg(unix)]
    fn stop_signal() -> Result<impl Future<Output = Option<&'static str>> + Send + 'static, String>
    {
        use tokio::signal::unix::{signal, SignalKind};
        let watch = |kind| signal(kind).map_err(|e| format!("cannot watch for signals: {e}"));
        let (mut int, mut term) = (
            watch(SignalKind::interrupt())?,
            watch(SignalKind::terminate())?,
        );
        Ok(async move {
            tokio::select! {
                Some(()) = int.recv() => Some("SIGINT"),
                Some(()) = term.recv() => Some("SIGTERM"),
                else => None,
            }
        })
    }
}
