//! The runtime choice shared by the `groupmesh` CLI and `groupmesh-bench`:
//! their `--runtime` flag ([`RuntimeName`]) and the little they need of a
//! runtime beyond the driver's seam ([`Rt`]: run `main`'s future; [`spawn`] a
//! task that ends when its handle drops; [`sleep`]).
//!
//! Not a user-facing API: applications pick a runtime crate
//! (`groupmesh-tokio`, `groupmesh-smol`, `groupmesh-async-std`) directly.
//! Signals stay in the CLI, the only one that watches them.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_lite::future;
use groupmesh_async_std::AsyncStd;
use groupmesh_driver::Runtime;
use groupmesh_smol::Smol;
use groupmesh_tokio::Tokio;

/// The runtimes a command can run on.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeName {
    /// tokio's current-thread runtime (the default): reactor and executor
    /// on the one thread, so a wake-up never crosses threads.
    #[default]
    Tokio,
    /// tokio's multi-thread runtime, one worker per core.
    TokioMultiThread,
    /// smol's global executor.
    Smol,
    /// async-std (discontinued upstream).
    AsyncStd,
}

impl RuntimeName {
    /// Its name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RuntimeName::Tokio => "tokio",
            RuntimeName::TokioMultiThread => "tokio-multi-thread",
            RuntimeName::Smol => "smol",
            RuntimeName::AsyncStd => "async-std",
        }
    }
}

/// A runtime a command runs on.
pub trait Rt: Runtime + Default {
    /// Runs `future` to completion on this runtime, from `main`, in the
    /// flavour `name` picks (tokio's current-thread or multi-thread; the
    /// other runtimes have one).
    fn block_on<T>(name: RuntimeName, future: impl Future<Output = T>) -> T;
}

impl Rt for Smol {
    fn block_on<T>(_: RuntimeName, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

impl Rt for AsyncStd {
    fn block_on<T>(_: RuntimeName, future: impl Future<Output = T>) -> T {
        async_std::task::block_on(future)
    }
}

impl Rt for Tokio {
    fn block_on<T>(name: RuntimeName, future: impl Future<Output = T>) -> T {
        let mut builder = if name == RuntimeName::TokioMultiThread {
            tokio::runtime::Builder::new_multi_thread()
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        builder
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
            .block_on(future)
    }
}

/// Completes after `d`, on `R`'s timer.
pub async fn sleep<R: Rt>(d: Duration) {
    R::default().sleep_until(Instant::now() + d).await;
}

/// A task spawned on `R` that ends when this handle is dropped (as a smol
/// `Task`); [`join`](Self::join) waits for its result.
#[must_use = "the task ends when its handle drops"]
pub struct Task<T> {
    result: async_channel::Receiver<T>,
    // Nothing is sent: dropping it closes the channel, which ends the task.
    _abort: async_channel::Sender<()>,
}

impl<T> Task<T> {
    /// Its result; `None` if it panicked.
    pub async fn join(self) -> Option<T> {
        self.result.recv().await.ok()
    }
}

/// Spawns `future` on `R`, ended when the returned [`Task`] drops.
pub fn spawn<R: Rt, T: Send + 'static>(
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
