//! Runtime-independent tests over real TCP on 127.0.0.1, written once and
//! instantiated for each runtime crate by [`runtime_tests!`](crate::runtime_tests).
//!
//! Every test runs under a time limit ([`TEST_LIMIT`]) with short keepalive
//! timeouts. Set `GROUPMESH_TEST_LOG=debug` to see the driver's and core's logs.

#![allow(missing_docs, clippy::expect_used, clippy::panic)]

mod groups;
mod mesh;
mod messaging;
mod meta;
mod refusals;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_lite::{future, Stream, StreamExt};
use groupmesh_core::{PortId, Timeouts};

pub use groups::*;
pub use mesh::*;
pub use messaging::*;
pub use meta::*;
pub use refusals::*;

use crate::{GroupChange, Node, NodeConfig, Runtime};

/// The most one test may take.
pub const TEST_LIMIT: Duration = Duration::from_secs(10);

/// The secret of the test mesh.
pub const SECRET: &[u8] = b"groupmesh test secret";

/// Instantiates every shared test for a runtime: `runtime_tests!(Runtime, block_on)`,
/// where `block_on` runs a future to completion on that runtime (and `Runtime::default()`
/// works inside it).
#[macro_export]
macro_rules! runtime_tests {
    ($rt:ty, $block_on:path) => {
        $crate::runtime_tests!(@each $rt, $block_on;
            five_nodes_converge_until_every_node_lists_every_registration,
            registrations_ending_and_ports_dropping_propagate_to_every_node,
            monitors_report_every_change_by_the_delta_rules,
            a_monitor_on_an_empty_group_stays_silent_until_a_join,
            a_slow_monitor_reader_gets_changes_merged_not_queued,
            every_node_picks_the_same_member_for_a_key,
            metadata_reaches_every_node_and_a_change_of_it_is_a_change_of_its_own,
            a_snapshot_forty_times_the_send_buffer_streams_to_a_fresh_peer,
            a_killed_node_loses_its_members_on_the_other_nodes,
            a_restarted_node_leaves_no_stale_ports,
            a_wrong_secret_is_refused_with_a_visible_reason,
            a_graceful_shutdown_removes_members_at_once,
            a_connection_past_its_send_buffer_limit_is_closed_with_a_visible_reason,
            a_silent_peer_is_cut_off_by_the_handshake_timeout,
            start_errors_say_what_to_do,
            local_api_misuse_is_a_typed_error,
            messages_reach_local_and_remote_ports_and_replies_go_back,
            messages_from_one_sender_to_one_port_arrive_in_order,
            messages_to_missing_ports_are_dropped_and_counted,
            a_payload_too_large_is_a_typed_error,
            a_local_sender_waits_while_the_mailbox_is_full,
            a_flood_to_a_port_whose_reader_sleeps_loses_nothing_and_ends_in_order,
            group_changes_and_other_ports_pass_while_a_sender_waits_on_a_slow_port,
            a_sender_waiting_in_send_wakes_with_port_closed_when_the_port_closes,
            a_sender_waiting_in_send_wakes_with_unreachable_when_the_node_is_lost,
            a_burst_past_the_mailbox_reaches_a_reader_that_keeps_up,
            a_message_flood_loses_nothing_and_keeps_the_connection,
            a_port_monitor_fires_when_the_port_is_dropped,
            a_port_monitor_fires_when_its_node_is_killed,
            a_restarted_node_gets_no_mail_for_its_old_incarnation,
            dropping_a_port_monitor_ends_it,
        );
    };
    (@each $rt:ty, $block_on:path; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                $crate::testing::init_logging();
                $block_on($crate::testing::within::<$rt>(
                    stringify!($name),
                    $crate::testing::$name::<$rt>(),
                ));
            }
        )*
    };
}

/// Logs to the test output when `GROUPMESH_TEST_LOG` names a level.
pub fn init_logging() {
    let Ok(level) = std::env::var("GROUPMESH_TEST_LOG") else {
        return;
    };
    let level = level.parse().unwrap_or(tracing::Level::DEBUG);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_test_writer()
        .try_init();
}

/// Completes `d` from now, on `R`'s timer.
pub async fn sleep<R: Runtime + Default>(d: Duration) {
    R::default()
        .sleep_until(std::time::Instant::now() + d)
        .await;
}

/// Runs `test`, failing it if it takes longer than [`TEST_LIMIT`].
pub async fn within<R: Runtime + Default>(name: &str, test: impl Future<Output = ()>) {
    let started = std::time::Instant::now();
    let timeout = async {
        sleep::<R>(TEST_LIMIT).await;
        panic!("{name} took longer than {TEST_LIMIT:?}");
    };
    future::or(test, timeout).await;
    eprintln!("{name}: {:?}", started.elapsed());
}

/// Short timeouts, so that failures show within the test limit.
pub fn fast_timeouts() -> Timeouts {
    let mut t = Timeouts::default();
    t.ping_interval = Duration::from_millis(200);
    t.keepalive_timeout = Duration::from_millis(1000);
    t.handshake_timeout = Duration::from_millis(1000);
    t.backoff_min = Duration::from_millis(20);
    t.backoff_max = Duration::from_millis(300);
    t.gossip_dial_delay = Duration::from_millis(50);
    t
}

/// A node on 127.0.0.1 (free port) with fast timeouts, joining through `seeds`.
pub fn config(name: &str, seeds: &[SocketAddr]) -> NodeConfig {
    let mut cfg = NodeConfig::new(name, SECRET);
    cfg.bind.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.seeds = seeds.to_vec();
    cfg.timeouts = fast_timeouts();
    cfg
}

/// [`config`] of a node with no seeds whose frames and send buffer are
/// 1 KiB, the smallest allowed (its members' metadata is bounded to fit):
/// what it sends at once overflows easily.
pub fn small_buffer_config(name: &str) -> NodeConfig {
    let mut cfg = config(name, &[]);
    cfg.limits.max_frame = 1024;
    cfg.limits.max_meta = 1024 - crate::MAX_MEMBER_OVERHEAD;
    cfg.send_buffer = 1024;
    cfg
}

/// Starts a node, panicking if it cannot.
pub async fn start<R: Runtime + Default>(cfg: NodeConfig) -> Node<R> {
    let name = cfg.node_id.clone();
    match Node::start(cfg).await {
        Ok(node) => node,
        Err(e) => panic!("node {name} did not start: {e}"),
    }
}

/// The first address of a node.
pub fn addr<R: Runtime>(node: &Node<R>) -> SocketAddr {
    *node
        .local_addrs()
        .first()
        .expect("test nodes bind one address")
}

/// Waits until `cond` holds, checking every 10 ms, for at most `limit`.
pub async fn eventually<R: Runtime + Default>(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) {
    let started = std::time::Instant::now();
    while !cond() {
        if started.elapsed() > limit {
            panic!("not within {limit:?}: {what}");
        }
        sleep::<R>(Duration::from_millis(10)).await;
    }
}

/// The next item of `stream`, or `None` if none comes within `limit`.
pub async fn next_within<R: Runtime + Default, S: Stream + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<S::Item> {
    let next = async { stream.next().await };
    let late = async {
        sleep::<R>(limit).await;
        None
    };
    future::or(next, late).await
}

/// Everything `stream` yields until it is quiet for `quiet`.
pub async fn drain<R: Runtime + Default, S: Stream + Unpin>(
    stream: &mut S,
    quiet: Duration,
) -> Vec<S::Item> {
    let mut items = Vec::new();
    while let Some(item) = next_within::<R, _>(stream, quiet).await {
        items.push(item);
    }
    items
}

/// Checks a monitor's changes against the delta rules and returns the
/// members they replay to.
pub fn check_delta_rules(changes: &[GroupChange]) -> BTreeSet<PortId> {
    let mut view = BTreeSet::new();
    for (i, c) in changes.iter().enumerate() {
        let members: BTreeSet<&PortId> = c.members.iter().collect();
        assert!(
            c.members.is_sorted(),
            "change {i}: members not sorted: {c:?}"
        );
        assert!(c.added.is_sorted(), "change {i}: added not sorted: {c:?}");
        assert!(
            c.removed.is_sorted(),
            "change {i}: removed not sorted: {c:?}"
        );
        if i == 0 {
            assert!(
                !c.members.is_empty(),
                "first change of an empty group: {c:?}"
            );
            assert_eq!(c.added, c.members, "first change is not (m, m, []): {c:?}");
            assert!(
                c.removed.is_empty(),
                "first change is not (m, m, []): {c:?}"
            );
        }
        assert!(
            !(c.added.is_empty() && c.removed.is_empty() && c.updated.is_empty()),
            "change {i} changes nothing: {c:?}"
        );
        assert_eq!(
            c.reasons.len(),
            c.removed.len(),
            "change {i}: reasons: {c:?}"
        );
        assert!(
            c.updated.iter().all(|p| members.contains(p)),
            "change {i}: updated ⊄ members: {c:?}"
        );
        assert!(
            c.added.iter().all(|p| members.contains(p)),
            "change {i}: added ⊄ members: {c:?}"
        );
        assert!(
            c.removed.iter().all(|p| !members.contains(p)),
            "change {i}: removed ∩ members ≠ ∅: {c:?}"
        );
        view.extend(c.added.iter().cloned());
        for p in &c.removed {
            view.remove(p);
        }
        assert_eq!(
            view.iter().collect::<BTreeSet<_>>(),
            members,
            "change {i}: replaying the deltas does not give its members"
        );
    }
    view
}
