//! `--runtime`: the async runtime a worker's node runs on, and the little the
//! worker needs of it beyond the driver's seam (run the worker, spawn a task
//! that ends when its handle drops, sleep). As `groupmesh`'s `rt.rs`.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::future;
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

impl RuntimeName {
    /// Its name on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            RuntimeName::Tokio => "tokio",
            RuntimeName::Smol => "smol",
            RuntimeName::AsyncStd => "async-std",
        }
    }
}

/// A runtime a worker runs on.
pub(crate) trait Rt: Runtime + Default {
    /// Runs `future` to completion on this runtime, from the worker's `main`.
    fn block_on<T>(future: impl Future<Output = T>) -> T;
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
}

/// Completes after `d`, on `R`'s timer.
pub(crate) async fn sleep<R: Rt>(d: Duration) {
    R::default().sleep_until(Instant::now() + d).await;
}

/// A task spawned on `R` that ends when this handle is dropped (as a smol
/// `Task`); [`join`](Self::join) waits for its result.
pub(crate) struct Task<T> {
    result: async_channel::Receiver<T>,
    // Nothing is sent: dropping it closes the channel, which ends the task.
    _abort: async_channel::Sender<()>,
}

impl<T> Task<T> {
    /// Its result; `None` if it panicked.
    pub(crate) async fn join(self) -> Option<T> {
        self.result.recv().await.ok()
    }
}

/// Spawns `future` on `R`, ended when the returned [`Task`] drops.
pub(crate) fn spawn<R: Rt, T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Task<T> {
    let (tx, result) = async_channel::bounded(1);
    let (abort, aborted) = async_channel::bounded::<()>(1);
    let run = async move {
        let _ = tx.send(future.await).await;
    };
    let stop = async move {
        let _ = aborted.recv().await;
    };
    R::default().spawn(future::or(run, stop));
    Task {
        result,
        _abort: abort,
    }
}
