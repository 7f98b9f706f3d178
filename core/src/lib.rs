//! # groupmesh-core
//!
//! The sans-IO protocol core of groupmesh: a fully meshed network of nodes and
//! a network-global registry of named port groups, in the manner of Erlang's
//! `pg` and the Perl module `AnyEvent::MP::Global`.
//!
//! This crate is fully deterministic. It contains no networking code, reads no
//! clock, spawns no thread, draws no randomness of its own and has no async:
//! a driver feeds it events with the time they happened and carries out what
//! it asks (write bytes, dial, close, wake me at). The same inputs always give
//! the same outputs, which is what lets it be simulated, fuzzed and replayed.
//! It is `no_std` (with `alloc`).
//!
//! ## Run loop
//!
//! ```no_run
//! use groupmesh_core::{Action, Config, Instant, Node, NodeId};
//!
//! let cfg = Config::new(NodeId::new("a").unwrap(), b"shared secret");
//! let mut node = Node::new(cfg, /* incarnation */ 1, /* rng seed */ [7; 32], Instant::ZERO).unwrap();
//! let port = node.open_port();
//! node.register("workers", &port).unwrap();
//! loop {
//!     // 1. feed one input: node.handle_bytes(now, conn, &buf), handle_inbound,
//!     //    handle_dialed, handle_closed, handle_timeout(now), handle_drained
//!     //    (with Config::paced_snapshots), or a local API call.
//!     // 2. drain every output, in this order:
//!     while let Some(t) = node.poll_transmit() { /* write t.data to t.conn */ }
//!     while let Some(a) = node.poll_action() {
//!         match a {
//!             Action::Dial { conn, addr } => { /* connect, then handle_dialed(now, conn) */ }
//!             Action::Close { conn } => { /* close the socket */ }
//!             _ => {}
//!         }
//!     }
//!     while let Some(e) = node.poll_event() { /* group deltas, node up/down, closes */ }
//!     let _wake_at = node.poll_timeout(); // sleep until then or until the next input
//!     # break;
//! }
//! ```
//!
//! ## Panics, errors
//!
//! Nothing a peer sends can make the node panic or return an error: a peer that
//! breaks the protocol or a limit has its connection closed with a
//! [`CloseReason`], reported as [`Event::ConnectionClosed`]. Local API misuse
//! returns an [`ApiError`] and changes nothing. A panic is a bug.

#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(fuzzing), warn(missing_docs))]

extern crate alloc;
// `arbitrary` (tests and the `fuzzing` feature only) needs std.
#[cfg(any(test, feature = "fuzzing"))]
extern crate std;

mod batch;
mod channel;
mod config;
mod conn;
mod credit;
mod error;
mod event;
mod framing;
mod groups;
pub mod handshake;
mod ids;
mod local;
mod mesh;
mod meta;
mod node;
mod outputs;
mod port_monitors;
mod remote;
mod select;
mod sessions;
mod snapshot;
mod stats;
mod time;
mod timers;
pub mod wire;

pub use channel::{Channel, Input};
pub use config::{Config, Limits, Timeouts, DEFAULT_PORT_CREDIT, DEFAULT_SNAPSHOT_CHUNK};
pub use error::{ApiError, ConfigError};
pub use event::{
    Action, CloseReason, Direction, Event, GroupDelta, Limit, PortDownReason, RemoteReason,
    Removal, Transmit, WireReason,
};
pub use framing::{FrameReader, RecordReader};
pub use handshake::Psk;
pub use ids::{
    ConnId, MonitorId, NodeId, PortId, PortMonitorId, RegId, MAX_GROUP_NAME, MAX_NODE_ID,
};
pub use meta::{meta_in, Meta, MAX_MEMBER_OVERHEAD};
pub use node::{Node, SendOutcome};
pub use select::{pick_by_key, pick_random, rendezvous_score};
pub use stats::Stats;
pub use time::Instant;

#[cfg(test)]
mod tests;
