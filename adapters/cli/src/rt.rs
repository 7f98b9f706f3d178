//! `--runtime`: the async runtime the node runs on, and the little the
//! commands need of it beyond the driver's seam (run the command, spawn a
//! task that ends when its handle drops, sleep).

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::{future, StreamExt};
use groupmesh_async_std::AsyncStd;
use groupmesh_driver::Runtime;
use groupmesh_smol::Smol;
use groupmesh_tokio::Tokio;

/// The runtimes a command can run on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum RuntimeName {
    /// tokio's multi-thread runtime, one worker per core (the default:
    /// see the README's runtime table).
    #[default]
    Tokio,
    /// smol's global executor.
    Smol,
    /// async-std (discontinued upstream).
    AsyncStd,
}

/// A runtime a command runs on.
pub(crate) trait Rt: Runtime + Default {
    /// Runs `future` to completion on this runtime, from `main`.
    fn block_on<T>(future: impl Future<Output = T>) -> T;

    /// Watches for SIGINT and SIGTERM from now on: the future yields the
    /// first one's name (`None` if signals can no longer be watched).
    ///
    /// # Errors
    /// When signals cannot be watched.
    fn stop_signal() -> Result<impl Future<Output = Option<&'static str>> + Send + 'static, String>
    {
        use async_signal::{Signal, Signals};
        let mut signals = Signals::new([Signal::Int, Signal::Term])
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

impl Rt for Smol {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

impl Rt for AsyncStd {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
}

impl Rt for Tokio {
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
            .block_on(future)
    }

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

/// Completes after `d`, on `R`'s timer.
pub(crate) async fn sleep<R: Rt>(d: Duration) {
    R::default().sleep_until(Instant::now() + d).await;
}

/// A task spawned on `R` that ends when this handle is dropped (as a smol
/// `Task`).
pub(crate) struct Task {
    // Nothing is sent: dropping it closes the channel, which ends the task.
    _abort: async_channel::Sender<()>,
}

/// Spawns `future` on `R`, ended when the returned [`Task`] drops.
pub(crate) fn spawn<R: Rt>(future: impl Future<Output = ()> + Send + 'static) -> Task {
    let (abort, aborted) = async_channel::bounded::<()>(1);
    let stop = async move {
        let _ = aborted.recv().await;
    };
    R::default().spawn(future::or(future, stop));
    Task { _abort: abort }
}
