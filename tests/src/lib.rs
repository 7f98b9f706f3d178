//! # groupmesh-tests
//!
//! Black-box tests of groupmesh over real TCP on 127.0.0.1. The library is
//! empty; the tests live in `tests/`:
//!
//! - `tests/attacks.rs`: hostile input against a real node started with
//!   `groupmesh-smol`, sent by a raw client that speaks bytes or the protocol
//!   through the core's own secure channel (`tests/common/raw_client.rs`),
//!   or done on the path between two honest nodes by a proxy without the
//!   secret that records, splices, flips, injects, replays, drops and
//!   reorders records (`tests/common/proxy.rs`). Each test shows that the
//!   offending connection is closed with a reason the user sees, that
//!   nothing panics, that no monitor lists a port nobody registered, that no
//!   honest registration is lost and that honest nodes still connect.
//!   `docs/SECURITY.md` maps every attack to its test.
//!
//! Run them with `cargo test -p groupmesh-tests`.

#![forbid(unsafe_code)]
