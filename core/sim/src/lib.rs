//! # groupmesh-sim
//!
//! A deterministic network simulator for [`groupmesh_core`], and the bodies of
//! its fuzz targets. It is how the core is tested, and how an application that
//! drives the core from its own event loop can test its use of the core under
//! seeded faults, with no socket, no thread and no clock.
//!
//! ## What it simulates
//!
//! [`Sim`] drives many [`Node`](groupmesh_core::Node)s through a seeded
//! virtual network: virtual time in milliseconds, TCP-like connections with
//! random latency (per-direction FIFO), every transmit split into random
//! chunks, dials that connect, fail or hang, and faults: connections reset
//! ([`Sim::cut`]), partitions that reset, go silent or stall
//! ([`Sim::partition`], [`Sim::split`], [`CutMode`]) and heal ([`Sim::heal`]),
//! crashes where the peers see a reset or silence ([`Sim::crash`]), graceful
//! shutdowns, and restarts with a new incarnation ([`Sim::restart`]). An
//! optional adversary without the secret ([`SimOptions::adversary`]) records,
//! replays, splices and tampers with bytes. Node `i` is [`node_id`]`(i)`
//! (`n00`, `n01`, ...) and listens on [`addr_of`]`(i)` (`10.0.0.i:7000`).
//!
//! ## What it checks
//!
//! After every input to a node, all of its outputs are drained (transmits,
//! actions, events, timeout) and checked: every monitor's deltas are replayed
//! and must keep the rules of the design contract, and the replayed set must
//! equal the node's own view after every drain. The local API goes through the
//! simulator ([`Sim::register`], [`Sim::monitor`], [`Sim::send`], ...) so that
//! a reference model of each live node's registrations gives the membership
//! every node must converge to ([`Sim::check_converged`], [`Sim::settle`]).
//!
//! Port messages sent through [`Sim::send`] carry their number in the
//! simulator's ledger ([`Sim::sent`]); every delivery is checked at once (right
//! port and incarnation, port alive, sender's address, at most once, in order
//! per sender and port). Port monitors started with [`Sim::monitor_port`] are
//! checked at every notice and, on a quiet network, by
//! [`Sim::check_port_monitors`]. A broken rule panics with the node, the time
//! and, for most rules, a [`Sim::dump`] of the network.
//!
//! Calls the model does not follow go through [`Sim::api`], which drains and
//! checks the node afterwards like any other input. Registrations made there
//! are unknown to the reference model (convergence would then be judged
//! wrong), and every delivered message must be one [`Sim::send`] sent.
//!
//! ## Seeds and replays
//!
//! The whole run is a pure function of [`Sim::new`]'s seed: every collection
//! is ordered, every random draw comes from one seeded RNG, and simultaneous
//! deliveries are ordered by a sequence number. [`run_seeds`] runs a scenario
//! for many seeds and, on a failure, prints the seed and the command that
//! replays it. Environment variables:
//!
//! - `SIM_SEED=n`: only seed `n` (also for [`seeds`], the loop of focused tests);
//! - `SIM_TRACE=1`: the core's and the simulator's `debug` log in the test
//!   output ([`init_tracing`]);
//! - `SIM_SEEDS=k` (the variable a test names): seeds `0..k`, from
//!   `SIM_SEED_START` if set;
//! - `SIM_KEEP_GOING=1`: every seed, then a list of the failing ones.
//!
//! For example, the core's own simulation tests replay with
//! `SIM_SEED=4652 cargo test --release -p groupmesh-core --test simulation an_earlier_runs_connection -- --nocapture`.
//!
//! ## Example
//!
//! Three nodes; a service registers, a client monitors its group; the two
//! are partitioned (silently: only the keepalive can tell), then healed, and
//! every view converges. `examples/three_nodes_under_faults.rs` tests a small
//! application (workers, a client that sends them messages) through a reset,
//! a silent partition, a crash and a restart, over many seeds.
//!
//! ```
//! use std::time::Duration;
//!
//! use groupmesh_sim::{CutMode, Sim, SimOptions};
//!
//! let mut sim = Sim::new(SimOptions::new(3), /* seed */ 7);
//! sim.settle_or_panic(); // the full mesh forms
//! let port = sim.open_port(0);
//! sim.register(0, "workers", &port);
//! let mon = sim.monitor(2, "workers");
//! sim.settle_or_panic();
//! assert_eq!(sim.members(2, "workers"), vec![port.clone()]);
//!
//! sim.partition(0, 2, CutMode::Silent);
//! sim.run_for(Duration::from_secs(5)); // past the keepalive timeout
//! assert!(sim.members(2, "workers").is_empty());
//!
//! sim.heal(0, 2);
//! sim.settle_or_panic();
//! assert_eq!(sim.members(2, "workers"), vec![port]);
//! assert!(sim.nodes[2].monitors[&mon].deltas >= 3); // first, removed, back
//! ```
//!
//! ## Fuzz harness bodies
//!
//! [`fuzzing`] holds the bodies of the cargo-fuzz targets in `fuzz/`: each
//! takes raw bytes and checks the core's promises as it feeds them. This
//! crate's tests run them on random bytes and on every past crash.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod adversary;
mod api;
mod checks;
mod convergence;
mod delivery;
mod drain;
mod dump;
mod faults;
pub mod fuzzing;
mod ids;
mod network;
mod options;
mod records;
mod run;
mod seeds;
mod sim;
mod tap;
mod trace;

pub use ids::{addr_k, addr_of, node_id, LISTEN_PORT, MAX_ADDRS, SECRET};
pub use options::{sim_timeouts, CutMode, SimOptions};
pub use records::{Counts, LocalModel, MonitorTrack, PortMonitorTrack, SentMessage, SimNode};
pub use seeds::{run_seeds, seeds};
pub use sim::{close_reasons, Sim};
pub use trace::init_tracing;
