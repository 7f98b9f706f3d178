//! # groupmesh-driver
//!
//! The shared async driver of groupmesh, and its user API. It runs the
//! sans-IO [`groupmesh_core`] over TCP on any runtime that can spawn a task,
//! sleep until an instant, connect and accept (the [`Runtime`] seam), with
//! streams that are `futures-io` [`AsyncRead`](futures_lite::AsyncRead) +
//! [`AsyncWrite`](futures_lite::AsyncWrite). It depends on no runtime: no
//! reactor, no executor, no timer of its own.
//!
//! Applications use a runtime crate, which re-exports this API with its
//! runtime filled in: `groupmesh-tokio`, `groupmesh-smol` or
//! `groupmesh-async-std`.
//!
//! ## What it does
//!
//! A [`Node`] listens on its bind addresses, dials its seeds, and keeps a full
//! mesh with every node it learns of. Each node registers its own [`Port`]s in
//! named groups; every node lists a group's members locally
//! ([`Node::members`]) and [`Monitor`]s are told of every change.
//!
//! A port is also a mailbox: any node can [`send`](Node::send) bytes (or a
//! postcard-encoded value, [`send_value`](Node::send_value)) to any port it
//! knows of, in order per sender and port, at most once; a [`Port::send`]
//! names the sending port, so the receiver can reply. A [`PortMonitor`]
//! says once when a port is gone, and why.
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
//! Request and response between group members:
//!
//! ```no_run
//! # async fn demo<R: groupmesh_driver::Runtime + Default>(node: groupmesh_driver::Node<R>) -> Result<(), Box<dyn std::error::Error>> {
//! // A worker answers every request on its port.
//! let mut worker = node.open_port();
//! let _reg = node.register("workers", &worker)?;
//! while let Some(msg) = worker.recv().await {
//!     let n: u64 = msg.decode()?;
//!     if let Some(client) = &msg.from {
//!         worker.send_value(client, &(n * 2)).await?;
//!     }
//! }
//! # Ok(()) }
//! # async fn client<R: groupmesh_driver::Runtime + Default>(node: groupmesh_driver::Node<R>) -> Result<(), Box<dyn std::error::Error>> {
//! // A client asks one of them, and notices if it goes away.
//! let mut me = node.open_port();
//! let workers = node.members("workers").unwrap_or_default();
//! let Some(worker) = workers.first() else { return Ok(()) };
//! let gone = node.monitor_port(worker)?;
//! me.send_value(worker, &21u64).await?;
//! let reply = futures_lite::future::or(
//!     async { me.recv().await.map(|m| m.decode::<u64>()) },
//!     async { gone.await; None },
//! ).await;
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
//! ## Modules
//!
//! In layers, each naming only modules below it (no two modules name each
//! other, and no longer cycle either):
//!
//! 1. User handles: `node` ([`Node`]: start, the local API, shutdown; it
//!    alone puts the layers together), `port` ([`Port`], [`Registration`]),
//!    `monitor` ([`Monitor`]), `events` ([`Events`]) and `port_monitor`
//!    ([`PortMonitor`]). They read their mailboxes and call into the node
//!    only through its methods (the handles not generic over the runtime
//!    through one trait, `shared::Control`).
//! 2. Tasks: `conn` (a connection's dial, reader and writer, and the accept
//!    loop) and `timer` (the task that fires the core's timers). They feed
//!    the node their inputs.
//! 3. The node under its lock: `shared` (the core and the driver's
//!    bookkeeping: connections, backpressure, counters, which only it
//!    changes; the drain of the core's outputs into writers and
//!    mailboxes). It starts a connection's task only as it is handed one:
//!    by the accept loop, or the dial task `node` gives it at start.
//! 4. Mailboxes: `mailbox` (the bounded queues that carry group changes,
//!    notices, messages and port monitors' notices to the handles, and
//!    [`GroupChange`] and [`NodeEvent`]).
//! 5. Leaves, naming no other module: `message` ([`Message`], [`SendError`],
//!    [`CodecError`]), `config`, `error`, `runtime` (the [`Runtime`] seam),
//!    `clock` (core time from the OS clock) and `stop` (the signals that
//!    end tasks).
//!
//! ```text
//! node ──► port, monitor, events, port_monitor ──► shared ──► mailbox ──► message
//!   └────► conn, timer ─────────────────────────────┘
//! ```
//!
//! ## Memory bounds
//!
//! - Each connection's unwritten bytes are capped by
//!   [`NodeConfig::send_buffer`]; a peer that does not read past it has its
//!   connection closed with [`CloseReason::LimitExceeded`]`(`[`Limit::SendBuffer`]`)`.
//! - The node's snapshot to a peer streams as the connection drains: chunks
//!   of a quarter of the send buffer (64 KiB at most), each once the
//!   connection's writer holds no more than that again, so a snapshot of
//!   any size takes at most about half of the send buffer and a peer that reads
//!   slowly only slows it down.
//! - A [`Monitor`] holds at most one pending change: changes that arrive
//!   before the reader takes the last one are merged into it (so a slow
//!   reader sees fewer, larger changes, which still obey every rule).
//! - An [`Events`] stream holds at most [`NodeConfig::event_buffer`] notices,
//!   then drops the oldest and reports [`NodeEvent::Lagged`].
//! - A [`Port`]'s mailbox holds at most [`NodeConfig::mailbox`] unread
//!   messages from each sending node (its credit, per port): past it the
//!   senders wait in [`Port::send`] / [`Node::send`] until the reader made
//!   room, or get [`SendError::Full`] from `try_send`. Nothing is dropped
//!   while the port and its node live; other ports, group changes and pings
//!   on the same connection are not held up.
//! - Messages never fill a connection's send buffer past half: a sender
//!   whose message would waits until the connection drained (unless
//!   nothing is queued), so a message flood never closes the connection and
//!   group traffic flows.
//!
//! ## Logging
//!
//! `tracing` events at `debug` for connections opened and closed (with the
//! reason) and nodes up and down; `info` for node start and stop; `warn` for
//! send buffer overflows and accept failures.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod config;
mod conn;
mod error;
mod events;
mod mailbox;
mod member;
mod message;
mod monitor;
mod node;
mod port;
mod port_monitor;
mod runtime;
mod shared;
mod stop;
mod timer;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{NodeConfig, DEFAULT_EVENT_BUFFER, DEFAULT_MAILBOX, DEFAULT_SEND_BUFFER};
pub use error::StartError;
pub use events::Events;
pub use mailbox::{GroupChange, NodeEvent};
pub use member::{Member, MetaError};
pub use message::{CodecError, Message, SendError};
pub use monitor::Monitor;
pub use node::Node;
pub use port::{Port, Registration};
pub use port_monitor::PortMonitor;
pub use runtime::Runtime;

/// Errors of the local API (`register`, `monitor`): the core's
/// [`ApiError`](groupmesh_core::ApiError). Each says what to do.
pub use groupmesh_core::ApiError as Error;
pub use groupmesh_core::{
    pick_by_key, pick_random, rendezvous_score, CloseReason, Limit, Limits, Meta, NodeId,
    PortDownReason, PortId, RemoteReason, Removal, Stats, Timeouts, MAX_GROUP_NAME,
    MAX_MEMBER_OVERHEAD, MAX_NODE_ID,
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
        send_sync::<crate::PortMonitor>();
        send_sync::<crate::Message>();
        send_sync::<crate::SendError>();
        send_sync::<crate::StartError>();
    }

    #[allow(dead_code)]
    fn nodes_can_move_between_threads<R: crate::Runtime>() {
        send_sync::<crate::Node<R>>();
    }
}
