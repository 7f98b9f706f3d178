//! # groupmesh-driver
//!
//! The shared async driver of groupmesh, and its user API. It runs the
//! sans-IO [`groupmesh_core`] over TCP on any runtime that can spawn a task,
//! connect and accept (the [`Runtime`] seam), with streams that are
//! `futures-io` [`AsyncRead`](futures_lite::AsyncRead) +
//! [`AsyncWrite`](futures_lite::AsyncWrite) and timers from `async-io`.
//!
//! Applications use a runtime crate, which re-exports this API with its
//! runtime filled in: `groupmesh-smol` (recommended) or `groupmesh-async-std`.
//!
//! ## What it does
//!
//! A [`Node`] listens on its bind addresses, dials its seeds, and keeps a full
//! mesh with every node it learns of. Each node registers its own [`Port`]s in
//! named groups; every node lists a group's members locally
//! ([`Node::members`]) and [`Monitor`]s are told of every change.
//!
//! ```no_run
//! # async fn demo<R: groupmesh_driver::Runtime + Default>() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_lite::StreamExt;
//! use groupmesh_driver::{Node, NodeConfig};
//!
//! let mut cfg = NodeConfig::new("worker-1", b"shared secret");
//! cfg.bind.push("0.0.0.0:0".parse()?);
//! cfg.seeds.push("10.0.0.1:4369".parse()?);
//! let node = Node::<R>::start(cfg).await?;
//!
//! let port = node.open_port();
//! let _reg = node.register("workers", &port)?; // listed everywhere until dropped
//! let mut changes = node.monitor("workers")?;
//! while let Some(change) = changes.next().await {
//!     println!("{:?} (+{:?} -{:?})", change.members, change.added, change.removed);
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## How it drives the core
//!
//! The core sits behind a mutex (as in quinn's `ConnectionDriver`). Every
//! input, whether bytes read by a connection task, an accepted or dialled
//! connection, a timer, or a local API call, locks it, reads the clock (core time is
//! milliseconds since the node started), feeds the input and drains every
//! output before unlocking: bytes go to the connection's writer task, dials
//! are spawned, closes shut the socket after its last bytes, group changes go
//! to monitor mailboxes, and the timer task is woken if the next deadline
//! moved closer. Nothing awaits with the lock held.
//!
//! ## Memory bounds
//!
//! - Each connection's unwritten bytes are capped by
//!   [`NodeConfig::send_buffer`]; a peer that does not read past it has its
//!   connection closed with [`CloseReason::LimitExceeded`]`(`[`Limit::SendBuffer`]`)`.
//! - A [`Monitor`] holds at most one pending change: changes that arrive
//!   before the reader takes the last one are merged into it (so a slow
//!   reader sees fewer, larger changes, which still obey every rule).
//! - An [`Events`] stream holds at most [`NodeConfig::event_buffer`] notices,
//!   then drops the oldest and reports [`NodeEvent::Lagged`].
//!
//! ## Logging
//!
//! `tracing` events at `debug` for connections opened and closed (with the
//! reason) and nodes up and down; `info` for node start and stop; `warn` for
//! send buffer overflows and accept failures.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod conn;
mod error;
mod events;
mod monitor;
mod node;
mod port;
mod runtime;
mod shared;
mod stop;
mod timer;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{NodeConfig, DEFAULT_EVENT_BUFFER, DEFAULT_SEND_BUFFER};
pub use error::StartError;
pub use events::{Events, NodeEvent};
pub use monitor::{GroupChange, Monitor};
pub use node::Node;
pub use port::{Port, Registration};
pub use runtime::Runtime;

/// Errors of the local API (`register`, `monitor`): the core's
/// [`ApiError`](groupmesh_core::ApiError). Each says what to do.
pub use groupmesh_core::ApiError as Error;
pub use groupmesh_core::{
    CloseReason, Limit, Limits, NodeId, PortId, RemoteReason, Stats, Timeouts, MAX_GROUP_NAME,
    MAX_NODE_ID,
};

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_can_move_between_threads() {
        send_sync::<crate::Port>();
        send_sync::<crate::Registration>();
        send_sync::<crate::Monitor>();
        send_sync::<crate::Events>();
        send_sync::<crate::StartError>();
    }

    #[allow(dead_code)]
    fn nodes_can_move_between_threads<R: crate::Runtime>() {
        send_sync::<crate::Node<R>>();
    }
}
