//! Deterministic simulation of whole meshes (the simulator is `groupmesh-sim`, `core/sim/`).
//!
//! `random_faults_keep_views_consistent` runs 1,000 seeds (0..1000) of random
//! faults and API calls, then heals the network, restarts every node (but,
//! on some seeds, a few that stay dead) and checks the contract's
//! consistency, mesh and monitor rules. Half of the seeds each draw the
//! harsher options (see `Run::harsh`): up to 8 addresses per node, IPv4 and
//! IPv6; ids up to 64 bytes; `max_frame` from 1 KiB to 1 MiB and lower
//! handshake and dial limits per node; nodes dead when the run is judged. A failing seed
//! is printed with its replay command; every run is a pure function of its seed.
//! Odd seeds drain each node only after a burst of network input (all input
//! at one instant), as the bundled driver does; even seeds after every input.
//!
//! `messages_are_delivered_at_most_once_in_order_to_the_right_incarnation`
//! does the same with port messages and port monitors mixed in: every
//! delivery is checked as it happens (see `groupmesh_sim::Sim::send`), and once the
//! network is healed and quiet, messages between live ports must all arrive
//! and every port monitor still waiting must watch a live port. Its seeds are
//! counted by the same `SIM_SEEDS` (default 150).
//!
//! ```text
//! SIM_SEED=1234 cargo test -p groupmesh-core --test simulation random_faults -- --nocapture
//! SIM_SEED=1234 SIM_TRACE=1 ...       # the same, with the core's and the simulator's debug log
//! SIM_SEEDS=100000 ...                # seeds 0..100000 (SIM_SEED_START=n to start elsewhere)
//! SIM_KEEP_GOING=1 ...                # run them all, list the failing seeds at the end
//! SIM_VERBOSE=1 ...                   # one line per seed: size, steps, faults, deltas
//! SIM_FORGET_MS=600000 ...            # fix forget_after (search past a forgetting bug)
//! cargo test --release -p groupmesh-core --test simulation long_random -- --ignored   # bigger runs
//! SIM_SEED=1234 cargo test -p groupmesh-core --test simulation messages_are -- --nocapture
//! ```
//!
//! The other tests are focused scenarios, named after what they show. The
//! focused tests that loop over seeds also take `SIM_SEED` to run one of them.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::time::Duration;

use groupmesh_core::{
    ApiError, CloseReason, Event, Instant, Limit, MonitorId, PortDownReason, PortId, PortMonitorId,
    RegId, Timeouts,
};
use groupmesh_sim::{close_reasons, init_tracing, run_seeds, CutMode, Sim, SimOptions};
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

const GROUPS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One random local API call on live node `i`, on the first `groups` groups.
/// Metadata for a registration or an update: none for a third, else a few
/// bytes from a small alphabet (so updates often repeat what a member has).
fn random_meta(rng: &mut impl Rng) -> Vec<u8> {
    if rng.random_ratio(1, 3) {
        return Vec::new();
    }
    let len = rng.random_range(1..=3);
    (0..len).map(|_| b"ab"[rng.random_range(0..2)]).collect()
}

fn random_api_call(sim: &mut Sim, i: usize, groups: usize) {
    let group = GROUPS[sim.rng.random_range(0..groups)];
    let n = &sim.nodes[i];
    let ports: Vec<PortId> = n.model.ports.iter().cloned().collect();
    let regs: Vec<RegId> = n.model.regs.keys().copied().collect();
    let monitors: Vec<MonitorId> = n
        .monitors
        .iter()
        .filter(|(_, m)| !m.ended)
        .map(|(id, _)| *id)
        .collect();
    match sim.rng.random_range(0..100) {
        0..34 => {
            let port = match ports.choose(&mut sim.rng) {
                Some(p) if sim.rng.random_ratio(2, 3) => p.clone(),
                _ => sim.open_port(i),
            };
            let meta = random_meta(&mut sim.rng);
            sim.register_with_meta(i, group, &port, &meta);
        }
        34..40 => {
            if let Some(&r) = regs.choose(&mut sim.rng) {
                let meta = random_meta(&mut sim.rng);
                sim.update_meta(i, r, &meta);
            }
        }
        40..60 => {
            if let Some(&r) = regs.choose(&mut sim.rng) {
                sim.unregister(i, r);
            }
        }
        60..68 => {
            if let Some(p) = ports.choose(&mut sim.rng) {
                sim.close_port(i, p);
            }
        }
        68..83 => {
            sim.monitor(i, group);
        }
        83..90 => {
            if let Some(&m) = monitors.choose(&mut sim.rng) {
                sim.unmonitor(i, m);
            }
        }
        90..95 => {
            sim.open_port(i);
        }
        _ => {
            // Misuse: a port of another node or of an earlier incarnation, a
            // bad group name. Refused, and nothing changes.
            let remote: Vec<PortId> = sim
                .core(i)
                .group_names()
                .flat_map(|g| sim.core(i).members(g).unwrap_or(&[]).to_vec())
                .filter(|p| p.node() != &sim.nodes[i].id)
                .collect();
            if let Some(p) = remote.choose(&mut sim.rng) {
                sim.register_refused(i, group, p, ApiError::NotLocalPort);
            }
            let me = &sim.nodes[i];
            let stale = PortId::new(me.id.clone(), me.incarnation - 1, 1);
            sim.register_refused(i, group, &stale, ApiError::NotLocalPort);
            if let Some(p) = ports.first() {
                sim.register_refused(i, "", p, ApiError::BadGroupName { len: 0 });
            }
        }
    }
}

/// A port to send to or watch: mostly a live port of any node, else any port
/// ever opened (closed, or of an earlier incarnation).
fn random_target(sim: &mut Sim) -> Option<PortId> {
    if sim.rng.random_ratio(3, 4) {
        let live: Vec<PortId> = sim
            .nodes
            .iter()
            .filter(|n| n.alive())
            .flat_map(|n| n.model.ports.iter().cloned())
            .collect();
        live.choose(&mut sim.rng).cloned()
    } else {
        sim.port_history.choose(&mut sim.rng).cloned()
    }
}

/// One random messaging call on live node `i`: a burst of messages from one
/// of its ports to one port, a port monitor started or ended, a port opened,
/// or a send from a port that is not its own (refused).
fn random_message_call(sim: &mut Sim, i: usize) {
    let mine: Vec<PortId> = sim.nodes[i].model.ports.iter().cloned().collect();
    match sim.rng.random_range(0..100) {
        0..60 => {
            let Some(to) = random_target(sim) else {
                return;
            };
            let from = if sim.rng.random_ratio(9, 10) {
                mine.choose(&mut sim.rng).cloned()
            } else {
                None
            };
            for _ in 0..sim.rng.random_range(1..=4) {
                let pad = sim.rng.random_range(0..=16);
                sim.send(i, from.as_ref(), &to, pad);
            }
        }
        60..80 => {
            if let Some(p) = random_target(sim) {
                sim.monitor_port(i, &p);
            }
        }
        80..90 => {
            let waiting: Vec<PortMonitorId> = sim.nodes[i]
                .port_monitors
                .iter()
                .filter(|(_, t)| t.fired.is_none() && !t.ended)
                .map(|(id, _)| *id)
                .collect();
            if let Some(&m) = waiting.choose(&mut sim.rng) {
                sim.unmonitor_port(i, m);
            }
        }
        90..95 => {
            sim.open_port(i);
        }
        _ => {
            let not_mine: Vec<PortId> = sim
                .port_history
                .iter()
                .filter(|p| !mine.contains(p))
                .cloned()
                .collect();
            let to = random_target(sim);
            if let (Some(from), Some(to)) = (not_mine.choose(&mut sim.rng), to) {
                sim.send_refused(i, from, &to, ApiError::NotLocalPort);
            }
        }
    }
}

fn random_mode(rng: &mut SmallRng) -> CutMode {
    *[CutMode::Reset, CutMode::Silent, CutMode::Stall]
        .choose(rng)
        .expect("non-empty")
}

/// One random fault, API call or pause; with `msgs`, also messaging calls.
fn random_step(sim: &mut Sim, groups: usize, msgs: bool) {
    let n = sim.nodes.len();
    let live = sim.live_nodes();
    let dead = sim.dead_nodes();
    if msgs && sim.rng.random_ratio(3, 10) {
        if let Some(&i) = live.choose(&mut sim.rng) {
            random_message_call(sim, i);
        }
        return;
    }
    match sim.rng.random_range(0..100) {
        0..55 => {
            if let Some(&i) = live.choose(&mut sim.rng) {
                random_api_call(sim, i, groups);
            }
        }
        55..62 => {
            let (a, b) = (sim.rng.random_range(0..n), sim.rng.random_range(0..n));
            sim.cut(a, b);
        }
        62..68 => {
            let mode = random_mode(&mut sim.rng);
            if sim.rng.random_bool(0.5) {
                let (a, b) = (sim.rng.random_range(0..n), sim.rng.random_range(0..n));
                sim.partition(a, b, mode);
            } else {
                let side: Vec<usize> = (0..n).filter(|_| sim.rng.random_bool(0.5)).collect();
                sim.split(&side, mode);
            }
        }
        68..74 => {
            let parts = sim.partitions();
            if sim.rng.random_bool(0.5) {
                if let Some(&(a, b)) = parts.choose(&mut sim.rng) {
                    sim.heal(a, b);
                }
            } else {
                sim.heal_all();
            }
        }
        74..79 => {
            if let Some(&i) = live.choose(&mut sim.rng) {
                let silent = sim.rng.random_bool(0.5);
                sim.crash(i, silent);
            }
        }
        79..86 => {
            if let Some(&i) = dead.choose(&mut sim.rng) {
                sim.restart(i);
            }
        }
        86..88 => {
            if let Some(&i) = live.choose(&mut sim.rng) {
                sim.shutdown(i);
            }
        }
        88..93 => {
            let d = sim.rng.random_range(500..=2000);
            sim.run_for(ms(d));
        }
        _ => {}
    }
}

/// What a random run varies beyond its seed.
#[derive(Debug, Clone)]
struct Run {
    nodes: RangeInclusive<usize>,
    /// The phase of faults lasts this long (virtual ms) ...
    fault_ms: RangeInclusive<u64>,
    /// ... or, if set, this many random steps.
    steps: Option<RangeInclusive<usize>>,
    /// Port messages and port monitors mixed in.
    msgs: bool,
    adversary: bool,
    /// The harsher options, each on for about half of the seeds (drawn from
    /// a second generator, so that the rest of the run is what it was
    /// without them): up to 8 addresses per node (IPv4 and IPv6), ids up to
    /// 64 bytes, per-node limits (`max_frame` 1 KiB to 1 MiB, fewer
    /// handshakes and dials), and nodes that stay dead when the run is judged.
    harsh: bool,
    /// Every seed at two addresses of its node (concurrent dials of one
    /// node), for half of the seeds.
    double_seeds: bool,
    /// Restarts may pick an incarnation smaller than every earlier one.
    falling: bool,
}

impl Run {
    /// `nodes` nodes, faults for `fault_ms`, nothing else.
    fn new(nodes: RangeInclusive<usize>, fault_ms: RangeInclusive<u64>) -> Run {
        Run {
            nodes,
            fault_ms,
            steps: None,
            msgs: false,
            adversary: false,
            harsh: false,
            double_seeds: false,
            falling: false,
        }
    }
}

/// A random run of the usual tests: harsh options drawn from the seed, and
/// a third of the seeds (those `% 3 == 2`) with the adversary.
fn random_run(seed: u64, nodes: RangeInclusive<usize>, fault_ms: RangeInclusive<u64>) -> Sim {
    let run = Run {
        adversary: seed % 3 == 2,
        harsh: true,
        double_seeds: true,
        ..Run::new(nodes, fault_ms)
    };
    random_run_with(seed, &run)
}

/// Draws the harsh options of `opts` (see [`Run::harsh`]); returns whether
/// some nodes may stay dead.
fn draw_harsh(seed: u64, opts: &mut SimOptions, double_seeds: bool) -> bool {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x4a52_5348_4152_5348);
    if rng.random_bool(0.5) {
        opts.max_addrs = rng.random_range(2..=groupmesh_sim::MAX_ADDRS);
    }
    opts.double_seeds = rng.random_bool(0.5) && double_seeds;
    opts.long_ids = rng.random_bool(0.5);
    opts.varied_limits = rng.random_bool(0.5);
    rng.random_bool(0.5)
}

/// A random run: options drawn from the seed, a phase of random faults and API
/// calls, then everything healed and restarted (but, with `leave_dead`, some
/// nodes that are no seed), and the network must converge.
///
/// With `run.msgs`, port messages and port monitors are mixed in: once
/// converged, messages between live ports must all arrive, a monitored port
/// that closes must give exactly one notice, and every port monitor still
/// waiting must watch a live port. Without it, the very same run as before
/// messaging existed (no extra random draws).
///
/// With `run.adversary`, an adversary without the secret acts on the network
/// during the faults (see `core/sim/src/adversary.rs`) and stops before the heal;
/// a record nobody sealed must close its connection at once, and no node may
/// ever list a port its owner never registered. Without it, the very same
/// run as before the adversary existed.
fn random_run_with(seed: u64, run: &Run) -> Sim {
    let (msgs, adversary) = (run.msgs, run.adversary);
    let mut rng = SmallRng::seed_from_u64(seed);
    let n = rng.random_range(run.nodes.clone());
    let mut opts = SimOptions::new(n);
    // Odd seeds drain after bursts of network input, as the bundled driver
    // does; even seeds after every input.
    opts.lazy_drain = seed % 2 == 1;
    opts.max_chunks = rng.random_range(1..=8);
    opts.timeouts.forget_after = ms(rng.random_range(2_000..=20_000));
    // SIM_FORGET_MS=n fixes forget_after (to search past a forgetting bug).
    if let Some(f) = std::env::var("SIM_FORGET_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.timeouts.forget_after = ms(f);
    }
    if rng.random_ratio(1, 10) {
        opts.max_unauthenticated = Some(rng.random_range(2..=4));
    }
    if rng.random_ratio(1, 5) {
        let k = rng.random_range(1..=n.min(3));
        opts.seeds = rand::seq::index::sample(&mut rng, n, k).into_vec();
    }
    opts.adversary = adversary;
    // Snapshots stream in chunks of a few memberships, paced by drain
    // reports on three seeds in four (as the bundled driver), polled out
    // at once on the rest. Drawn apart, so that the rest of a seed's run is
    // drawn as before snapshots streamed.
    let mut snap = SmallRng::seed_from_u64(seed ^ 0x5eed_c4a2);
    opts.snapshot_chunk = snap.random_ratio(7, 8).then_some((1, 24));
    opts.paced_snapshots = snap.random_ratio(3, 4);
    let leave_dead =
        run.harsh && draw_harsh(seed, &mut opts, run.double_seeds) && n > opts.seeds.len() + 1;
    // Live nodes keep dialling the dead ones until they forget them (and
    // dead seeds for good): the network is never free of dials.
    opts.allow_dead = leave_dead;
    opts.strict_mesh = !leave_dead;
    opts.falling_incarnations = run.falling;
    if std::env::var_os("SIM_VERBOSE").is_some() {
        let o = &opts;
        eprintln!(
            "seed {seed}: {n} nodes; addrs {} double_seeds {} long_ids {} varied_limits {} \
             falling {} dead {leave_dead} lazy {} adversary {} seeds {:?} \
             snapshot chunk {:?} paced {}",
            o.max_addrs,
            o.double_seeds,
            o.long_ids,
            o.varied_limits,
            o.falling_incarnations,
            o.lazy_drain,
            o.adversary,
            o.seeds,
            o.snapshot_chunk,
            o.paced_snapshots
        );
    }
    let groups = rng.random_range(1..=GROUPS.len());
    let fault_end = Instant::from_millis(rng.random_range(run.fault_ms.clone()));
    let mut sim = Sim::new(opts, rng.random());
    // Monitors and members from the start, so that faults move them.
    for i in 0..n {
        for _ in 0..sim.rng.random_range(0..=2) {
            let g = GROUPS[sim.rng.random_range(0..groups)];
            sim.monitor(i, g);
        }
        for _ in 0..sim.rng.random_range(0..=2) {
            let g = GROUPS[sim.rng.random_range(0..groups)];
            let p = sim.open_port(i);
            let meta = random_meta(&mut sim.rng);
            sim.register_with_meta(i, g, &p, &meta);
        }
        if msgs {
            for _ in 0..sim.rng.random_range(1..=2) {
                sim.open_port(i);
            }
        }
    }

    let steps = run
        .steps
        .clone()
        .map_or(usize::MAX, |r| sim.rng.random_range(r));
    let mut step = 0;
    while step < steps && (run.steps.is_some() || sim.now < fault_end) {
        step += 1;
        let gap = sim.rng.random_range(0..=120);
        sim.run_for(ms(gap));
        random_step(&mut sim, groups, msgs);
        if adversary {
            for _ in 0..sim.rng.random_range(0..=2) {
                sim.adversary_step();
            }
        }
        if msgs {
            // Messages between the faults, not only instead of them.
            for _ in 0..sim.rng.random_range(0..=2) {
                if let Some(&i) = sim.live_nodes().choose(&mut sim.rng) {
                    random_message_call(&mut sim, i);
                }
            }
        }
    }
    sim.stop_adversary();
    sim.heal_all();
    for i in sim.dead_nodes() {
        if leave_dead && !sim.opts.seeds.contains(&i) && sim.rng.random_bool(0.5) {
            continue;
        }
        let d = sim.rng.random_range(0..=100);
        sim.run_for(ms(d));
        sim.restart(i);
    }
    // A few calls on the healed network before it goes quiet (without the
    // harsh options, drawn as they were before them: the same runs).
    for _ in 0..sim.rng.random_range(0..4) {
        let i = if run.harsh {
            sim.live_nodes().choose(&mut sim.rng).copied()
        } else {
            Some(sim.rng.random_range(0..n))
        };
        if let Some(i) = i {
            random_api_call(&mut sim, i, groups);
        }
    }
    let took = sim.settle_or_panic();
    if msgs {
        quiet_messages(&mut sim);
    }
    if std::env::var_os("SIM_VERBOSE").is_some() {
        eprintln!(
            "seed {seed}: {n} nodes ({} live), {step} random steps, converged in {took:?}, \
             {} sim steps, {:?}\n  options: addrs {} double_seeds {} long_ids {} \
             varied_limits {} falling {} dead {} lazy {} adversary {} seeds {:?}",
            sim.live_nodes().len(),
            sim.steps,
            sim.counts,
            sim.opts.max_addrs,
            sim.opts.double_seeds,
            sim.opts.long_ids,
            sim.opts.varied_limits,
            sim.opts.falling_incarnations,
            sim.opts.allow_dead,
            sim.opts.lazy_drain,
            sim.opts.adversary,
            sim.opts.seeds
        );
    }
    sim
}

/// On the converged, quiet network (no fault from here on): every port
/// monitor still waiting watches a live port; messages between live ports,
/// local and remote, all arrive; a watched remote port that closes gives its
/// monitor exactly one notice, `Closed`.
fn quiet_messages(sim: &mut Sim) {
    let fail = |sim: &Sim, e: String| -> ! { panic!("{e}\n{}", sim.dump()) };
    if let Err(e) = sim.check_port_monitors() {
        fail(sim, e);
    }
    let live = sim.live_nodes();
    for &i in &live {
        if sim.nodes[i].model.ports.is_empty() {
            sim.open_port(i);
        }
    }
    let ports =
        |sim: &Sim, i: usize| -> Vec<PortId> { sim.nodes[i].model.ports.iter().cloned().collect() };
    let first = sim.sent.len() as u64;
    for _ in 0..sim.rng.random_range(1..=20) {
        let (a, b) = (
            live[sim.rng.random_range(0..live.len())],
            live[sim.rng.random_range(0..live.len())],
        );
        let from = ports(sim, a).choose(&mut sim.rng).cloned();
        let to = ports(sim, b).choose(&mut sim.rng).cloned();
        let (Some(from), Some(to)) = (from, to) else {
            continue;
        };
        for _ in 0..sim.rng.random_range(1..=3) {
            let pad = sim.rng.random_range(0..=16);
            sim.send(a, Some(&from), &to, pad);
        }
    }
    // A watched remote port closes.
    let watched = if live.len() > 1 {
        let (a, b) = (live[0], live[sim.rng.random_range(1..live.len())]);
        let p = ports(sim, b).choose(&mut sim.rng).cloned();
        p.map(|p| (a, b, sim.monitor_port(a, &p), p))
    } else {
        None
    };
    sim.run_for(ms(200));
    if let Some((_, b, _, p)) = &watched {
        sim.close_port(*b, p);
    }
    sim.run_for(ms(200));
    let lost = sim.undelivered_since(first);
    if !lost.is_empty() {
        fail(
            sim,
            format!(
                "{} of {} messages between live ports lost on a quiet network, first: {:?}",
                lost.len(),
                sim.sent.len() as u64 - first,
                lost[0]
            ),
        );
    }
    if let Some((a, _, m, p)) = watched {
        let fired = sim.nodes[a].port_monitors[&m].fired;
        if fired != Some(PortDownReason::Closed) {
            fail(
                sim,
                format!("node {a}'s monitor of {p:?}, closed on a quiet network: {fired:?}"),
            );
        }
    }
    if let Err(e) = sim.check_port_monitors() {
        fail(sim, e);
    }
}

#[test]
fn random_faults_keep_views_consistent() {
    run_seeds(
        "random_faults_keep_views_consistent",
        "SIM_SEEDS",
        1000,
        |seed| {
            random_run(seed, 2..=12, 1_000..=4_000);
        },
    );
}

/// Seeds of a release search in which a node's view of a peer stayed behind
/// for good (4 of 13,885): while two authenticated connections to a peer
/// overlapped, the snapshot of the one the peer table did not follow
/// replaced the view, and the changes after it on that connection were
/// ignored. Each connection's stream now builds its own view, and the table
/// follows exactly one.
#[test]
fn a_member_its_owner_unregistered_never_stays_listed() {
    for seed in [5884, 10349, 10872, 11857] {
        random_run(seed, 2..=12, 1_000..=4_000);
    }
}

/// Seed 701927 of a release search (1 of 6,000): a node took a peer over
/// through a new connection whose snapshot was older than a change the old
/// connection had just brought, so that port left (`Resynced`); a record
/// on the new connection then failed to open and the peer was lost, its
/// last port in a delta of its own. The loss's own removals are still one
/// delta; the check now tells them from the takeover's.
#[test]
fn a_port_resynced_away_just_before_its_node_is_lost_is_not_part_of_the_loss() {
    random_run(701_927, 2..=12, 1_000..=4_000);
}

/// Seed 4652 of a release search: a connection of a node's earlier run,
/// still syncing when the newer run replaced the one the table followed, was
/// handed the node when the newer run's connection closed. Every connection
/// of the earlier run now closes with the replacement, and a handover only
/// goes to a connection of the same run.
#[test]
fn an_earlier_runs_connection_never_takes_its_node_over() {
    random_run(4652, 2..=12, 1_000..=4_000);
}

#[test]
fn random_faults_in_a_fifty_node_mesh_keep_views_consistent() {
    run_seeds(
        "random_faults_in_a_fifty_node_mesh",
        "SIM_SEEDS_50",
        1,
        |seed| {
            random_run(seed, 50..=50, 1_000..=2_000);
        },
    );
}

#[test]
fn messages_are_delivered_at_most_once_in_order_to_the_right_incarnation() {
    run_seeds(
        "messages_are_delivered_at_most_once_in_order_to_the_right_incarnation",
        "SIM_SEEDS",
        150,
        |seed| {
            let run = Run {
                msgs: true,
                ..Run::new(2..=8, 1_000..=4_000)
            };
            let sim = random_run_with(seed, &run);
            assert!(sim.counts.messages_sent > 0, "seed {seed}: no message sent");
        },
    );
}

/// An adversary anywhere on the network, without the secret, records,
/// replays, splices, reorders, alters and makes up bytes, and opens and
/// hijacks connections (see `core/sim/src/adversary.rs`). No node ever lists, and no
/// monitor event ever shows, a port its owner never registered; a record
/// nobody sealed closes its connection at once; and once it stops and the
/// network heals, the usual
/// convergence, one-delta and monitor rules hold. Odd seeds mix in port
/// messages. Seeds counted by `SIM_SEEDS` (default 120).
#[test]
fn an_adversary_without_the_secret_never_makes_a_node_list_a_false_port() {
    run_seeds(
        "an_adversary_without_the_secret_never_makes_a_node_list_a_false_port",
        "SIM_SEEDS",
        120,
        adversary_run,
    );
}

/// One run of the adversary test.
fn adversary_run(seed: u64) {
    let run = Run {
        msgs: seed % 2 == 1,
        adversary: true,
        ..Run::new(2..=8, 1_000..=4_000)
    };
    let sim = random_run_with(seed, &run);
    assert!(
        sim.counts.adversary_acts > 0,
        "seed {seed}: the adversary did nothing"
    );
}

/// Found by the adversary test (seed 75): node 0 kept listing `n03#1@4` for
/// good after n03 unregistered it. While node 0's new dial to n03 waited for
/// n03 to confirm it, n03's changes on the old connection were ignored; the
/// adversary broke the new one, and node 0 went back to the old one with a
/// stale view. Now a replacement that fails takes the old connection with it
/// (the node is lost, and a fresh snapshot follows the reconnect).
#[test]
fn an_update_sent_during_a_handover_is_not_lost_when_the_adversary_breaks_that_connection() {
    adversary_run(75);
}

/// Meshes of up to 40 nodes through 100 to 400 random steps, every harsh
/// option drawn per seed (addresses, long ids, per-node limits, nodes that
/// stay dead), port messages on odd seeds and the adversary on a third.
/// Seeds counted by `SIM_SEEDS_40` (default 4: a 40-node run takes minutes in
/// a debug build; search in release).
#[test]
fn meshes_of_up_to_forty_nodes_through_hundreds_of_steps_keep_views_consistent() {
    run_seeds(
        "meshes_of_up_to_forty_nodes_through_hundreds_of_steps_keep_views_consistent",
        "SIM_SEEDS_40",
        4,
        |seed| {
            random_run_with(seed, &hundreds_of_steps(seed));
        },
    );
}

/// The run of [`meshes_of_up_to_forty_nodes_through_hundreds_of_steps_keep_views_consistent`].
fn hundreds_of_steps(seed: u64) -> Run {
    Run {
        steps: Some(100..=400),
        msgs: seed % 2 == 1,
        adversary: seed % 3 == 2,
        harsh: true,
        ..Run::new(2..=40, 0..=0)
    }
}

/// Restarts that pick, half of the time, an incarnation smaller than every
/// earlier one (a host whose clock went back), with the harsh options: a
/// stale incarnation never replaces a connected newer one (checked at every
/// `NodeUp`), and once healed every live node lists the live nodes'
/// registrations with their current incarnations. Seeds counted by
/// `SIM_SEEDS` (default 200).
#[test]
fn restarts_with_smaller_incarnations_keep_views_consistent() {
    run_seeds(
        "restarts_with_smaller_incarnations_keep_views_consistent",
        "SIM_SEEDS",
        200,
        |seed| {
            random_run_with(seed, &falling_incarnations(seed, false));
        },
    );
}

/// [`restarts_with_smaller_incarnations_keep_views_consistent`] with port
/// messages and port monitors. Seed 29 found that node 0, watching a port of
/// n05 at incarnation 1048581 after n05 came back at 1048575, waited forever
/// for the port's "newer" incarnation: a port lives only while its node runs
/// the port's own incarnation, whatever the numbers.
#[test]
fn a_port_monitor_fires_when_its_node_restarts_with_a_smaller_incarnation() {
    run_seeds(
        "a_port_monitor_fires_when_its_node_restarts_with_a_smaller_incarnation",
        "SIM_SEEDS",
        100,
        |seed| {
            random_run_with(seed, &falling_incarnations(seed, true));
        },
    );
}

/// The runs of the smaller-incarnation tests.
fn falling_incarnations(seed: u64, msgs: bool) -> Run {
    Run {
        msgs: msgs && seed % 2 == 1,
        falling: true,
        harsh: true,
        ..Run::new(2..=12, 1_000..=4_000)
    }
}

/// An on-path adversary slips one byte into an authenticated stream: the
/// receiver then reads a record length from inside a record, mostly under
/// the record limit, and waits for up to 64 KiB while every ping counts as
/// traffic. The connection, which can never carry a frame again, should end
/// within the keepalive timeout (then the pair reconnects).
#[test]
fn a_byte_slipped_into_a_stream_does_not_keep_a_dead_connection_open() {
    let mut sim = Sim::new(SimOptions::new(2), 1);
    sim.settle_or_panic();
    let mark = sim.mark(1);
    sim.slip_byte(0, 1);
    let timeout = sim.opts.timeouts.keepalive_timeout;
    sim.run_for(timeout * 3);
    let closed = close_reasons(&sim.events_since(1, mark));
    assert!(
        !closed.is_empty(),
        "the connection with a shifted stream is still open after {:?}\n{}",
        timeout * 3,
        sim.dump()
    );
}

/// Longer and larger runs, for searching many seeds in release builds:
/// `SIM_SEEDS=10000 SIM_KEEP_GOING=1 cargo test --release -p groupmesh-core
/// --test simulation long_random -- --ignored --nocapture`.
#[test]
#[ignore = "long: run explicitly with --ignored, in release builds"]
fn long_random_faults_keep_views_consistent() {
    run_seeds(
        "long_random_faults_keep_views_consistent",
        "SIM_SEEDS",
        200,
        |seed| {
            random_run(seed, 2..=20, 5_000..=20_000);
        },
    );
}

#[test]
fn replaying_a_seed_gives_the_same_run() {
    let fingerprint = |sim: &Sim| {
        let events: Vec<_> = sim
            .nodes
            .iter()
            .map(|n| format!("{:?}", n.events))
            .collect();
        (sim.now, sim.steps, events)
    };
    let a = random_run(7, 5..=5, 2_000..=2_000);
    let b = random_run(7, 5..=5, 2_000..=2_000);
    assert!(
        fingerprint(&a) == fingerprint(&b),
        "same seed, different runs"
    );
}

#[test]
fn mesh_of_fifty_nodes_becomes_full() {
    init_tracing();
    let mut sim = Sim::new(SimOptions::new(50), 50);
    for i in 0..50 {
        let p = sim.open_port(i);
        sim.register(i, "all", &p);
        sim.register(i, &format!("g{}", i % 5), &p);
    }
    sim.monitor(7, "all");
    let took = sim.settle_or_panic();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    for i in 0..50 {
        assert_eq!(sim.core(i).connected_nodes().count(), 49);
        assert_eq!(sim.members(i, "all").len(), 50);
        assert_eq!(sim.members(i, "g3").len(), 10);
    }
}

#[test]
fn own_address_in_the_seed_list_is_harmless() {
    init_tracing();
    let mut opts = SimOptions::new(1);
    opts.seeds = vec![0];
    let mut sim = Sim::new(opts, 1);
    sim.run_for(Duration::from_secs(30));
    let node = sim.core(0);
    let st = node.stats();
    let closes: u64 = st.closed.iter().map(|(_, n)| n).sum();
    assert!(
        closes <= 2,
        "dialled itself more than once: {:?}",
        st.closed
    );
    assert_eq!(st.connections, 0);
    assert_eq!(sim.nodes[0].wake, None, "a lone node goes idle");

    // And in a mesh where every node seeds every node (itself included).
    let mut opts = SimOptions::new(4);
    opts.seeds = (0..4).collect();
    let mut sim = Sim::new(opts, 2);
    sim.settle_or_panic();
}

/// Node 3 has ports in "a" (one registered twice) and "b"; node 0 one in "a".
/// When node 3 is lost, each other node's monitors get exactly one delta per
/// group, removing all of node 3's ports at once.
#[test]
fn lost_node_members_vanish_in_one_delta() {
    init_tracing();
    for silent in [false, true] {
        for seed in 0..5 {
            let mut sim = Sim::new(SimOptions::new(4), seed);
            let p: Vec<PortId> = (0..3).map(|_| sim.open_port(3)).collect();
            sim.register(3, "a", &p[0]);
            sim.register(3, "a", &p[0]);
            sim.register(3, "a", &p[1]);
            sim.register(3, "b", &p[1]);
            sim.register(3, "b", &p[2]);
            let q = sim.open_port(0);
            sim.register(0, "a", &q);
            let mut monitors = Vec::new();
            for i in 0..3 {
                for g in ["a", "b", "c"] {
                    monitors.push((i, g, sim.monitor(i, g)));
                }
            }
            sim.settle_or_panic();
            let marks: Vec<usize> = (0..3).map(|i| sim.mark(i)).collect();
            sim.crash(3, silent);
            let t = sim.opts.timeouts.keepalive_timeout * 2;
            sim.run_for(t);
            for (i, g, mon) in monitors {
                let deltas: Vec<_> = sim
                    .events_since(i, marks[i])
                    .into_iter()
                    .filter_map(|e| match e {
                        Event::Group(d) if d.monitor == mon => Some(d),
                        _ => None,
                    })
                    .collect();
                let (members, removed) = match g {
                    "a" => (vec![q.clone()], vec![p[0].clone(), p[1].clone()]),
                    "b" => (vec![], vec![p[1].clone(), p[2].clone()]),
                    _ => {
                        assert!(deltas.is_empty(), "node {i} {g}: {deltas:?}");
                        continue;
                    }
                };
                assert_eq!(
                    deltas.len(),
                    1,
                    "node {i} {g} (silent {silent}): {deltas:?}"
                );
                assert_eq!(deltas[0].members, members);
                assert_eq!(deltas[0].removed, removed);
                assert!(deltas[0].added.is_empty());
            }
            for (i, &mark) in marks.iter().enumerate() {
                let downs = sim
                    .events_since(i, mark)
                    .into_iter()
                    .filter(|e| matches!(e, Event::NodeDown { .. }))
                    .count();
                assert_eq!(downs, 1, "node {i}: one node down");
                assert_eq!(sim.core(i).connected_nodes().count(), 2);
            }
        }
    }
}

/// Node 2 crashes silently, so nodes 0 and 1 keep a half-open connection to
/// it (keepalive 60 s), and restarts at once. Its new incarnation replaces the
/// old one everywhere as soon as it connects: no old port survives NodeUp.
#[test]
fn restarted_node_replaces_its_old_incarnation_even_with_half_open_connection() {
    restart_replaces_the_half_open_run(false);
}

/// [`restarted_node_replaces_its_old_incarnation_even_with_half_open_connection`]
/// with node 2's clock gone back: its new incarnation is smaller than the one
/// nodes 0 and 1 keep. They refuse it as stale and tell it their epoch; it
/// moves above, and replaces its earlier run as soon, not a keepalive later.
#[test]
fn a_restarted_node_whose_clock_went_back_replaces_its_earlier_run_at_once() {
    restart_replaces_the_half_open_run(true);
}

fn restart_replaces_the_half_open_run(clock_back: bool) {
    init_tracing();
    for seed in 0..5 {
        let mut opts = SimOptions::new(3);
        opts.timeouts.ping_interval = Duration::from_secs(1);
        opts.timeouts.keepalive_timeout = Duration::from_secs(60);
        opts.falling_incarnations = clock_back;
        let mut sim = Sim::new(opts, seed);
        let old = sim.open_port(2);
        sim.register(2, "svc", &old);
        let mons = [sim.monitor(0, "svc"), sim.monitor(1, "svc")];
        sim.settle_with(Duration::from_secs(30), Duration::from_secs(2))
            .expect("converges");
        let marks: Vec<usize> = (0..2).map(|i| sim.mark(i)).collect();
        let crashed_at = sim.now;
        sim.crash(2, true);
        sim.run_for(ms(100));
        assert_eq!(
            sim.members(0, "svc"),
            vec![old.clone()],
            "half-open: still listed"
        );
        let old_inc = sim.nodes[2].incarnation;
        if clock_back {
            sim.restart_with_clock_back(2);
        } else {
            sim.restart(2);
        }
        let new_inc = sim.nodes[2].incarnation;
        assert_eq!(new_inc < old_inc, clock_back);
        let new = sim.open_port(2);
        sim.register(2, "svc", &new);
        sim.settle_with(Duration::from_secs(10), Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", sim.dump()));
        assert!(
            sim.now - crashed_at < Duration::from_secs(30),
            "replaced before any keepalive timeout"
        );
        for i in 0..2 {
            assert_eq!(sim.members(i, "svc"), vec![new.clone()]);
            let events = sim.events_since(i, marks[i]);
            assert!(
                close_reasons(&events).contains(&CloseReason::Restarted),
                "node {i}: {events:?}"
            );
            // Replay the monitor up to the step of the new incarnation's
            // NodeUp: the old port is gone by then.
            let timed = &sim.nodes[i].events[marks[i]..];
            let up_at = timed
                .iter()
                .find_map(|(t, _, e)| match e {
                    Event::NodeUp { incarnation, .. } if *incarnation == new_inc => Some(*t),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("node {i} saw the new incarnation come up"));
            let mut view: BTreeSet<PortId> = BTreeSet::from([old.clone()]);
            for (_, _, e) in timed.iter().take_while(|(t, _, _)| *t <= up_at) {
                if let Event::Group(d) = e {
                    if d.monitor == mons[i] {
                        view.extend(d.added.iter().cloned());
                        for p in &d.removed {
                            view.remove(p);
                        }
                    }
                }
            }
            assert!(
                !view.contains(&old),
                "node {i}: old port after NodeUp: {events:?}"
            );
            // Registered before it connected, so in its snapshot: the
            // restart is one delta, the old port swapped for the new.
            let swap = timed.iter().find_map(|(_, _, e)| match e {
                Event::Group(d) if d.monitor == mons[i] && d.added.contains(&new) => Some(d),
                _ => None,
            });
            assert!(
                swap.is_some_and(|d| d.removed.contains(&old)),
                "node {i}: the restart is not one delta: {events:?}"
            );
        }
    }
}

/// Six nodes split 3/3 (connections reset, silent or stalled). Each side ends
/// up listing exactly its own side's members, keeps working, and after the
/// heal every node lists everything again.
#[test]
fn partition_heals_and_views_converge() {
    init_tracing();
    let (left, right) = ([0, 1, 2], [3, 4, 5]);
    for (k, mode) in [CutMode::Reset, CutMode::Silent, CutMode::Stall]
        .into_iter()
        .enumerate()
    {
        for seed in 0..3 {
            let mut sim = Sim::new(SimOptions::new(6), 10 * seed + k as u64);
            for i in 0..6 {
                let p = sim.open_port(i);
                sim.register(i, "all", &p);
                sim.register(i, if i < 3 { "left" } else { "right" }, &p);
                sim.monitor(i, "all");
            }
            sim.settle_or_panic();
            sim.split(&left, mode);
            let t = sim.opts.timeouts.keepalive_timeout * 2;
            sim.run_for(t);
            for i in 0..6 {
                let p = sim.open_port(i);
                sim.register(i, "all", &p);
                sim.register(i, "during", &p);
            }
            sim.run_for(Duration::from_secs(2));
            for side in [&left[..], &right[..]] {
                let want = sim.expected_among(side);
                sim.check_views(side, &want)
                    .unwrap_or_else(|e| panic!("{mode:?}/{seed}: {e}\n{}", sim.dump()));
                for &i in side {
                    assert_eq!(sim.core(i).connected_nodes().count(), 2);
                }
            }
            sim.heal_all();
            sim.settle_or_panic();
            assert_eq!(sim.members(0, "all").len(), 12);
        }
    }
}

/// Every node seeds every node, so all dial each other at once. One
/// connection per pair survives.
#[test]
fn simultaneous_dials_leave_one_connection_per_pair() {
    init_tracing();
    let mut superseded = 0;
    for seed in 0..20 {
        let n = 2 + (seed as usize) % 4;
        let mut opts = SimOptions::new(n);
        opts.seeds = (0..n).collect();
        let mut sim = Sim::new(opts, seed);
        for i in 0..n {
            let p = sim.open_port(i);
            sim.register(i, "g", &p);
        }
        sim.settle_or_panic();
        superseded += (0..n)
            .flat_map(|i| sim.core(i).stats().closed)
            .filter(|(r, _)| {
                matches!(
                    r,
                    CloseReason::Superseded
                        | CloseReason::Remote(groupmesh_core::WireReason::Superseded)
                )
            })
            .map(|(_, c)| c)
            .sum::<u64>();
    }
    assert!(superseded > 0, "no dials crossed: the test tested nothing");
}

/// A node that shuts down tells its peers: its members are gone at once,
/// long before any keepalive timeout, in one delta per group.
#[test]
fn graceful_shutdown_removes_members_without_timeout() {
    init_tracing();
    for seed in 0..5 {
        let mut opts = SimOptions::new(3);
        opts.timeouts.ping_interval = Duration::from_secs(1);
        opts.timeouts.keepalive_timeout = Duration::from_secs(60);
        let mut sim = Sim::new(opts, seed);
        let p = sim.open_port(2);
        sim.register(2, "svc", &p);
        let mons = [sim.monitor(0, "svc"), sim.monitor(1, "svc")];
        sim.settle_with(Duration::from_secs(30), Duration::from_secs(2))
            .expect("converges");
        let marks: Vec<usize> = (0..2).map(|i| sim.mark(i)).collect();
        sim.shutdown(2);
        sim.run_for(ms(100));
        for i in 0..2 {
            assert_eq!(sim.members(i, "svc"), Vec::<PortId>::new());
            let events = sim.events_since(i, marks[i]);
            let deltas: Vec<_> = events
                .iter()
                .filter(|e| matches!(e, Event::Group(d) if d.monitor == mons[i]))
                .collect();
            assert_eq!(deltas.len(), 1, "node {i}: {events:?}");
            assert!(
                events.iter().any(|e| matches!(
                    e,
                    Event::NodeDown {
                        reason: CloseReason::Remote(groupmesh_core::WireReason::Shutdown),
                        ..
                    }
                )),
                "node {i}: {events:?}"
            );
        }
    }
}

/// Once the mesh is full and quiet, nobody dials anybody: in particular a seed
/// whose dial lost the one-connection-per-pair rule is known to be connected.
#[test]
fn connected_seeds_are_not_redialled() {
    init_tracing();
    for seed in 0..5 {
        let n = 2 + seed as usize;
        let mut opts = SimOptions::new(n);
        opts.seeds = (0..n).collect();
        opts.strict_mesh = true;
        let mut sim = Sim::new(opts, seed);
        sim.settle_or_panic();
        let marks: Vec<usize> = (0..n).map(|i| sim.mark(i)).collect();
        sim.run_for(Duration::from_secs(10));
        for (i, &mark) in marks.iter().enumerate() {
            let events = sim.events_since(i, mark);
            assert!(events.is_empty(), "seed {seed} node {i}: {events:?}");
        }
    }
}

/// While a mesh forms without any fault, connections may be superseded (both
/// sides dialled), but no node ever goes down and no member ever leaves.
/// Found at N=200 on loopback, where every node dials the one seed at once
/// and handshakes are slow: each dial past the handshake table took the slot
/// of a handshake still under way, whose dialer then retried and took
/// another's. The cold start became a reconnect storm (120 s, not formed).
/// A handshake whose peer has greeted under the key now keeps its slot for a
/// quarter of the handshake timeout; a newcomer is refused meanwhile and
/// comes back after its backoff.
#[test]
fn a_cold_start_through_one_seed_with_slow_handshakes_is_not_a_reconnect_storm() {
    init_tracing();
    let n = 40;
    let mut opts = SimOptions::new(n);
    opts.seeds = vec![0];
    opts.max_unauthenticated = Some(4);
    opts.latency_ms = (60, 90);
    opts.timeouts = Timeouts::default();
    let mut sim = Sim::new(opts, 7);
    for i in 0..n {
        let p = sim.open_port(i);
        sim.register(i, "all", &p);
    }
    let took = match sim.settle_with(Duration::from_secs(60), Duration::from_secs(1)) {
        Ok(took) => took,
        Err(e) => panic!("{e}"),
    };
    let closed = |reason: CloseReason| -> usize {
        (0..n)
            .map(|i| {
                close_reasons(&sim.events_since(i, 0))
                    .into_iter()
                    .filter(|r| *r == reason)
                    .count()
            })
            .sum()
    };
    let evicted = closed(CloseReason::LimitExceeded(Limit::Connections));
    let crossed = closed(CloseReason::Superseded);
    eprintln!(
        "{n} nodes formed in {took:?}; {evicted} handshakes lost their slot, {crossed} connections superseded"
    );
    // Before: 3,153 slots lost and 17.8 s; with every handshake in a slot of
    // its own (no limit) 1.5 s. What is left are dials still ungreeted when a
    // burst arrives: they cost no key exchange, and come back.
    assert!(evicted < 20 * n, "{evicted} handshakes lost their slot");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn forming_a_mesh_never_takes_a_node_down() {
    init_tracing();
    let mut downs = Vec::new();
    for seed in groupmesh_sim::seeds(0..40) {
        let n = 2 + (seed as usize) % 6;
        let mut opts = SimOptions::new(n);
        if seed % 2 == 0 {
            opts.seeds = (0..n).collect();
        }
        let mut sim = Sim::new(opts, seed);
        for i in 0..n {
            let p = sim.open_port(i);
            sim.register(i, "g", &p);
            sim.monitor(i, "g");
        }
        sim.settle_or_panic();
        for i in 0..n {
            for e in sim.events_since(i, 0) {
                match e {
                    Event::NodeDown { .. } => downs.push((seed, i, e)),
                    Event::Group(d) if !d.removed.is_empty() => {
                        downs.push((seed, i, Event::Group(d)))
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(
        downs.is_empty(),
        "{} flaps: {:?}",
        downs.len(),
        &downs[..downs.len().min(5)]
    );
}

/// The peer says why it closes (here: it shuts down), but its FIN is lost. The
/// core forgets the connection; it must also ask its driver to close the
/// socket, or the socket stays open for good.
#[test]
fn a_close_frame_from_the_peer_closes_the_socket() {
    init_tracing();
    let mut sim = Sim::new(SimOptions::new(2), 3);
    sim.settle_or_panic();
    sim.shutdown(1);
    sim.lose_fins(0, 1);
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.core(0).stats().connections, 0);
    assert_eq!(
        sim.open_ends(0),
        0,
        "node 0's driver still holds the socket"
    );
}

/// Nodes 3 and 4 cannot reach each other (the rest of the mesh can reach
/// both) for longer than `forget_after`. Their common peers keep mentioning
/// each to the other (periodic peer lists), so neither is forgotten, and once
/// the link is back the mesh becomes full again.
#[test]
fn nodes_cut_from_each_other_stay_known_and_reconnect_after_the_heal() {
    init_tracing();
    for seed in groupmesh_sim::seeds(0..5) {
        let mut opts = SimOptions::new(5);
        opts.seeds = vec![0];
        opts.timeouts.forget_after = Duration::from_secs(2);
        let mut sim = Sim::new(opts, seed);
        for i in 0..5 {
            let p = sim.open_port(i);
            sim.register(i, "g", &p);
        }
        sim.settle_or_panic();
        sim.partition(3, 4, CutMode::Reset);
        sim.run_for(Duration::from_secs(6));
        assert!(
            sim.core(3)
                .known_nodes()
                .any(|(n, _)| n == &sim.nodes[4].id),
            "node 3 forgot node 4 although its peers still reach it"
        );
        sim.heal(3, 4);
        sim.settle_or_panic();
    }
}

/// Node 0 watches three ports: `p` on node 2, which is closed; `q` on node
/// 2, whose node then crashes (reset or silent) and restarts; `r` on node 1,
/// whose node crashes silently and restarts at once (half-open connection,
/// long keepalive). Each monitor gets exactly one notice (the simulator
/// refuses a second), with a reason that fits, and a monitor of a port of an
/// earlier incarnation fires at once.
#[test]
fn a_remote_port_monitor_gets_exactly_one_notice_when_its_port_closes_or_its_node_crashes_or_restarts(
) {
    init_tracing();
    for seed in groupmesh_sim::seeds(0..10) {
        let mut opts = SimOptions::new(3);
        opts.timeouts.keepalive_timeout = Duration::from_secs(30);
        opts.timeouts.ping_interval = Duration::from_secs(1);
        let mut sim = Sim::new(opts, seed);
        let p = sim.open_port(2);
        let q = sim.open_port(2);
        let r = sim.open_port(1);
        sim.settle_with(Duration::from_secs(60), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let mp = sim.monitor_port(0, &p);
        let mq = sim.monitor_port(0, &q);
        let mr = sim.monitor_port(0, &r);
        let fired = |sim: &Sim, m: PortMonitorId| sim.nodes[0].port_monitors[&m].fired;
        sim.run_for(ms(200));
        assert_eq!(fired(&sim, mp), None, "seed {seed}: live port");

        sim.close_port(2, &p);
        sim.run_for(ms(200));
        assert_eq!(fired(&sim, mp), Some(PortDownReason::Closed), "seed {seed}");
        assert_eq!(fired(&sim, mq), None, "seed {seed}: q is still live");

        let silent = seed % 2 == 1;
        sim.crash(2, silent);
        sim.run_for(ms(500));
        sim.restart(2);
        sim.crash(1, true);
        sim.restart(1);
        sim.settle_with(Duration::from_secs(60), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", sim.dump()));
        for (m, port) in [(mq, &q), (mr, &r)] {
            match fired(&sim, m) {
                Some(PortDownReason::NodeDown(_) | PortDownReason::Restarted) => {}
                other => panic!("seed {seed}: monitor of {port:?}: {other:?}"),
            }
        }
        // A port of an earlier incarnation: at once.
        let stale = sim.monitor_port(0, &q);
        assert_eq!(
            fired(&sim, stale),
            Some(PortDownReason::Restarted),
            "seed {seed}"
        );
        sim.run_for(Duration::from_secs(5));
        sim.check_port_monitors()
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(sim.counts.port_downs, 4, "seed {seed}: one notice each");
    }
}

/// Node 1 crashes silently (node 0 keeps a half-open connection to it) and
/// restarts: its new incarnation opens ports with the same numbers. Messages
/// node 0 sends to the old ports, before and after the new incarnation is
/// connected, never reach the new ports (the simulator checks every
/// delivery's incarnation); messages to the new ports arrive.
#[test]
fn a_message_for_a_restarted_nodes_old_port_never_reaches_its_new_incarnation() {
    init_tracing();
    for seed in groupmesh_sim::seeds(0..10) {
        let mut opts = SimOptions::new(2);
        opts.timeouts.keepalive_timeout = Duration::from_secs(30);
        opts.timeouts.ping_interval = Duration::from_secs(1);
        let mut sim = Sim::new(opts, seed);
        let me = sim.open_port(0);
        let old: Vec<PortId> = (0..3).map(|_| sim.open_port(1)).collect();
        sim.settle_with(Duration::from_secs(60), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let delivered_before = sim.send(0, Some(&me), &old[0], 0);
        sim.run_for(ms(100));
        sim.crash(1, true);
        sim.restart(1);
        let new: Vec<PortId> = (0..3).map(|_| sim.open_port(1)).collect();
        assert_eq!(
            new.iter().map(PortId::number).collect::<Vec<_>>(),
            old.iter().map(PortId::number).collect::<Vec<_>>(),
            "the new incarnation reuses the numbers"
        );
        let first_stale = sim.sent.len() as u64;
        let mut to_new = Vec::new();
        for step in 0..40 {
            for p in &old {
                sim.send(0, Some(&me), p, step % 5);
            }
            let new_inc = sim.nodes[1].incarnation;
            let new_is_up = sim.nodes[0].events.iter().any(|(_, _, e)| {
                matches!(e, Event::NodeUp { incarnation, .. } if *incarnation == new_inc)
            });
            if new_is_up {
                for p in &new {
                    to_new.push(sim.send(0, Some(&me), p, 0));
                }
            }
            sim.run_for(ms(25));
        }
        sim.settle_with(Duration::from_secs(60), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(sim.sent[delivered_before as usize].delivered, 1);
        let stale_delivered = sim.sent[first_stale as usize..]
            .iter()
            .filter(|m| old.contains(&m.to) && m.delivered > 0)
            .count();
        assert_eq!(stale_delivered, 0, "seed {seed}");
        assert!(
            !to_new.is_empty(),
            "seed {seed}: node 0 never saw the new incarnation"
        );
        let late = to_new
            .iter()
            .filter(|&&n| sim.sent[n as usize].delivered == 0)
            .count();
        assert_eq!(late, 0, "seed {seed}: messages to the new ports lost");
    }
}

/// Every node has every seed at two of its addresses, so it dials the same
/// node twice at once (and is dialled by it, twice): one connection per
/// pair survives. (Found with seed 2: crossing dials left two authenticated
/// connections for good; the side with the smaller id now closes a stray.)
#[test]
fn a_node_seeded_at_two_addresses_keeps_one_connection_per_pair() {
    init_tracing();
    for seed in groupmesh_sim::seeds(0..20) {
        let n = 2 + (seed as usize) % 4;
        let mut opts = SimOptions::new(n);
        opts.seeds = (0..n).collect();
        opts.max_addrs = 2;
        opts.double_seeds = true;
        let mut sim = Sim::new(opts, seed);
        sim.settle()
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", sim.dump()));
    }
}
