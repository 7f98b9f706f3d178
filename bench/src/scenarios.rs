//! The scenarios: converge, latency, loss, memory, messages.
//!
//! Times that span processes are taken from CLOCK_REALTIME stamps made in
//! the processes themselves (the coordinator's `t0` just before its first
//! command, a worker's stamp when its poll saw the condition or its monitor
//! yielded the change): every process reads the same kernel clock. Latency
//! also reports the coordinator-clock round trip, raw and corrected by the
//! measured pipe round trip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use groupmesh_driver::DEFAULT_MAILBOX;
use serde_json::{json, Value};

use crate::baseline;
use crate::cluster::{Cluster, Msg, WorkerOpts};
use crate::report::{ms, ms_between, p50_p99_us, quantile, sorted, summary, us, Report};
use crate::worker::{memory_kib, sys_ns};
use crate::{Common, ConvergeArgs, LatencyArgs, LossArgs, MemoryArgs, MessagesArgs};

const DEFAULT_PING_MS: u64 = 1000;
pub(crate) const DEFAULT_KEEPALIVE_MS: u64 = 3000;

fn opts(c: &Common, ping_ms: u64, keepalive_ms: u64) -> WorkerOpts {
    WorkerOpts {
        ping_ms,
        keepalive_ms,
        poll_us: c.poll_us,
        mailbox: None,
        max_frame: None,
        runtime: c.runtime,
    }
}

fn timeout(c: &Common) -> Duration {
    Duration::from_secs(c.timeout_s.max(1))
}

/// Milliseconds from `t0` to each stamp.
fn since(t0: u64, stamps: &[u64]) -> Vec<f64> {
    stamps.iter().map(|&t| ms_between(t0, t)).collect()
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

fn median(xs: &[f64]) -> f64 {
    quantile(&sorted(xs), 0.5)
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn sum(stats: &[Value], k: &str) -> f64 {
    stats.iter().map(|s| num(s, k)).sum()
}

// ----- converge ---------------------------------------------------------

/// One cold/warm/drop run on a fresh cluster.
fn converge_once(a: &ConvergeArgs) -> Result<Value, String> {
    let n = usize::from(a.nodes);
    let (m, g) = (a.members, a.groups.max(1));
    let nm = n * m;
    let mut c = Cluster::start(
        n,
        &opts(&a.common, DEFAULT_PING_MS, a.keepalive_ms),
        timeout(&a.common),
    )?;
    let all: Vec<usize> = (0..n).collect();
    let seed_addr = c.workers[0].addr.clone();

    let stats_ready = c.stats(&all)?;

    // Cold: every node registers while the mesh forms.
    c.watch(&all, "cold", Some(nm), Some(n - 1))?;
    let meta = a.meta_bytes;
    let reg = |tag: &str| json!({"cmd": "register", "tag": tag, "ports": m, "groups": g, "prefix": "g", "meta": meta});
    let t0 = sys_ns();
    for i in 0..n {
        if i > 0 {
            c.send(i, &json!({"cmd": "seed", "addr": seed_addr}))?;
        }
        c.send(i, &reg("cold"))?;
    }
    let cold_members = since(t0, &c.reached(&all, "cold", "members")?);
    let cold_mesh = since(t0, &c.reached(&all, "cold", "peers")?);
    let cold_calls = c.wait_each(&all, "registered", |m| {
        m.ev() == "registered" && m.str("tag") == "cold"
    })?;
    let stats_cold = c.stats(&all)?;
    if a.cold_only {
        return Ok(json!({
            "cold_members_ms": max(&cold_members),
            "cold_mesh_ms": max(&cold_mesh),
            "cold_cpu_ms": (sum(&stats_cold, "cpu_ns") - sum(&stats_ready, "cpu_ns")) / 1e6,
        }));
    }

    // Warm: M more per node on the formed mesh.
    c.watch(&all, "warm", Some(2 * nm), None)?;
    let t1 = sys_ns();
    c.send_each(&all, &reg("warm"))?;
    let warm = since(t1, &c.reached(&all, "warm", "members")?);
    let warm_calls = c.wait_each(&all, "registered", |m| {
        m.ev() == "registered" && m.str("tag") == "warm"
    })?;
    let stats_warm = c.stats(&all)?;

    // Drop the warm registrations (and their ports).
    c.watch(&all, "drop", Some(nm), None)?;
    let t2 = sys_ns();
    c.send_each(&all, &json!({"cmd": "unregister", "tag": "warm"}))?;
    let dropped = since(t2, &c.reached(&all, "drop", "members")?);
    let drop_calls = c.wait_each(&all, "unregistered", |m| m.ev() == "unregistered")?;
    let stats_drop = c.stats(&all)?;

    // Every node lists exactly the N*M cold members through `members()`.
    c.send_each(&all, &json!({"cmd": "count", "prefix": "g", "groups": g}))?;
    let counts = c.wait_each(&all, "count", |m| m.ev() == "count")?;
    if let Some(bad) = counts.iter().find(|m| m.u64("total") != nm as u64) {
        return Err(format!(
            "node {} lists {} members, expected {nm}",
            bad.from,
            bad.u64("total")
        ));
    }
    let call_ms = |msgs: &[Msg]| -> f64 {
        #[allow(clippy::cast_precision_loss)]
        msgs.iter()
            .map(|m| m.u64("us") as f64 / 1000.0)
            .fold(0.0, f64::max)
    };
    let frames =
        |before: &[Value], after: &[Value]| sum(after, "frames_out") - sum(before, "frames_out");
    let bytes =
        |before: &[Value], after: &[Value]| sum(after, "bytes_out") - sum(before, "bytes_out");
    let cpu =
        |before: &[Value], after: &[Value]| (sum(after, "cpu_ns") - sum(before, "cpu_ns")) / 1e6;
    Ok(json!({
        "cold_members_ms": max(&cold_members),
        "cold_members_median_ms": median(&cold_members),
        "cold_mesh_ms": max(&cold_mesh),
        "cold_register_calls_ms": call_ms(&cold_calls),
        "cold_frames_out": sum(&stats_cold, "frames_out"),
        "cold_bytes_out": sum(&stats_cold, "bytes_out"),
        "cold_cpu_ms": cpu(&stats_ready, &stats_cold),
        "cold_closed": closes(&stats_cold),
        "warm_ms": max(&warm),
        "warm_median_ms": median(&warm),
        "warm_register_calls_ms": call_ms(&warm_calls),
        "warm_frames_out": frames(&stats_cold, &stats_warm),
        "warm_bytes_out": bytes(&stats_cold, &stats_warm),
        "warm_cpu_ms": cpu(&stats_cold, &stats_warm),
        "drop_ms": max(&dropped),
        "drop_median_ms": median(&dropped),
        "drop_calls_ms": call_ms(&drop_calls),
        "drop_frames_out": frames(&stats_warm, &stats_drop),
        "drop_bytes_out": bytes(&stats_warm, &stats_drop),
        "drop_cpu_ms": cpu(&stats_warm, &stats_drop),
    }))
}

/// Connections closed on every node, by reason, counted on the side that
/// closed them: "keepalive timeout 3, superseded by another connection 12".
fn closes(stats: &[Value]) -> String {
    let mut by_reason = std::collections::BTreeMap::<String, u64>::new();
    for line in stats
        .iter()
        .flat_map(|s| s["closed"].as_array().into_iter().flatten())
    {
        let Some((reason, n)) = line.as_str().and_then(|l| l.rsplit_once(": ")) else {
            continue;
        };
        if !reason.starts_with("peer closed") {
            *by_reason.entry(reason.to_owned()).or_default() += n.parse::<u64>().unwrap_or(0);
        }
    }
    let list: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

pub(crate) fn converge(a: &ConvergeArgs) -> Result<(), String> {
    let n = usize::from(a.nodes);
    let nm = n * a.members;
    let mut runs = Vec::new();
    for _ in 0..a.runs.max(1) {
        runs.push(converge_once(a)?);
    }
    let pick = |k: &str| -> f64 { median(&runs.iter().map(|r| num(r, k)).collect::<Vec<_>>()) };
    let spread = |k: &str| -> String {
        let xs = sorted(&runs.iter().map(|r| num(r, k)).collect::<Vec<_>>());
        if xs.len() > 1 {
            format!(
                "{} (runs {}..{})",
                ms(quantile(&xs, 0.5)),
                ms(xs[0]),
                ms(xs[xs.len() - 1])
            )
        } else {
            ms(quantile(&xs, 0.5))
        }
    };
    let mut r = Report::on(
        a.common.runtime,
        "converge",
        json!({"nodes": n, "members": a.members, "groups": a.groups, "runs": runs.len(),
               "poll_us": a.common.poll_us, "meta_bytes": a.meta_bytes}),
    );
    r.target(
        format!("cold: every node lists all {nm} members (slowest node)"),
        spread("cold_members_ms"),
        "< 150 ms",
        pick("cold_members_ms") < 150.0,
    );
    r.row("cold: median node", ms(pick("cold_members_median_ms")));
    r.row(
        format!("cold: mesh full ({} peers everywhere)", n - 1),
        spread("cold_mesh_ms"),
    );
    r.row(
        format!("cold: {} register calls on a node", a.members),
        ms(pick("cold_register_calls_ms")),
    );
    #[allow(clippy::cast_precision_loss)]
    let per = |k: &str| pick(k) / nm.max(1) as f64;
    r.row(
        "cold: CPU time of all node processes",
        ms(pick("cold_cpu_ms")),
    );
    r.row(
        "cold: connections closed, by the closing side (first run)",
        runs[0]["cold_closed"].as_str().unwrap_or("?").to_owned(),
    );
    r.row(
        "cold: frames / bytes sent, mesh total",
        format!(
            "{:.0} / {:.0} ({:.2} frames, {:.1} B per membership)",
            pick("cold_frames_out"),
            pick("cold_bytes_out"),
            per("cold_frames_out"),
            per("cold_bytes_out")
        ),
    );
    r.target(
        format!("warm: {nm} more registrations, every node agrees"),
        spread("warm_ms"),
        "< 300 ms",
        pick("warm_ms") < 300.0,
    );
    r.row("warm: median node", ms(pick("warm_median_ms")));
    r.row(
        format!("warm: {} register calls on a node", a.members),
        ms(pick("warm_register_calls_ms")),
    );
    r.row(
        "warm: CPU time of all node processes",
        ms(pick("warm_cpu_ms")),
    );
    r.row(
        "warm: frames / bytes sent, mesh total",
        format!(
            "{:.0} / {:.0} ({:.2} frames, {:.1} B per membership)",
            pick("warm_frames_out"),
            pick("warm_bytes_out"),
            per("warm_frames_out"),
            per("warm_bytes_out")
        ),
    );
    r.row(
        format!("drop: the {nm} warm registrations, every node agrees"),
        spread("drop_ms"),
    );
    r.row("drop: median node", ms(pick("drop_median_ms")));
    r.row(
        format!(
            "drop: {} registrations + ports dropped on a node",
            a.members
        ),
        ms(pick("drop_calls_ms")),
    );
    r.row(
        "drop: CPU time of all node processes",
        ms(pick("drop_cpu_ms")),
    );
    r.row(
        "drop: frames / bytes sent, mesh total",
        format!(
            "{:.0} / {:.0}",
            pick("drop_frames_out"),
            pick("drop_bytes_out")
        ),
    );
    r.note(format!(
        "times from the coordinator's first command to each worker's own poll seeing the count \
         (poll every {} µs; CLOCK_REALTIME stamps, same kernel clock); figures are the median of {} fresh clusters",
        a.common.poll_us,
        runs.len()
    ));
    r.set("runs", json!(runs));
    r.print(a.common.json);
    Ok(())
}

// ----- latency ----------------------------------------------------------

struct Op {
    name: &'static str,
    oneway_us: Vec<f64>,
    raw_us: Vec<f64>,
    /// How long the call took on A (with `--runner-on-a`).
    call_us: Vec<f64>,
}

impl Op {
    fn new(name: &'static str) -> Self {
        Op {
            name,
            oneway_us: Vec::new(),
            raw_us: Vec::new(),
            call_us: Vec::new(),
        }
    }
}

/// One change A made: its stamp, the port's number, whether the port was
/// added (else removed), B's stamp when its monitor got it, and whether the
/// change is measured (not warm-up).
#[derive(Clone, Copy)]
struct Made {
    t: u64,
    port: u64,
    added: bool,
    at_b: u64,
    measured: bool,
}

/// Sends `cmd` to A, waits for A's `done` and B's change; returns
/// (one-way µs from A's stamp to B's, coordinator round trip µs, the change).
fn roundtrip(
    c: &mut Cluster,
    (a, b): (usize, usize),
    cmd: &Value,
    want_added: bool,
) -> Result<(f64, f64, Made), String> {
    let key = cmd.get("key").and_then(Value::as_u64).unwrap_or(0);
    let sent = Instant::now();
    c.send(a, cmd)?;
    let done = c.wait("A's call", |m| {
        m.from == a && m.ev() == "done" && m.u64("key") == key
    })?;
    let change = c.wait("B's delta", |m| m.from == b && m.ev() == "change")?;
    let ok = if want_added {
        change.u64("added") == 1 && change.u64("removed") == 0
    } else {
        change.u64("added") == 0 && change.u64("removed") == 1
    };
    if !ok {
        return Err(format!("unexpected delta at B: {}", change.v));
    }
    let oneway = ms_between(done.u64("t"), change.u64("t")) * 1000.0;
    let raw = change.at.duration_since(sent).as_secs_f64() * 1e6;
    let made = Made {
        t: done.u64("t"),
        port: done.u64("n"),
        added: want_added,
        at_b: change.u64("t"),
        measured: true,
    };
    Ok((oneway, raw, made))
}

/// Keys of the rounds under a flood (and of its sink), apart from the others.
const FLOOD_KEY: u64 = 1 << 40;

/// `rounds` of register, unregister, drop (idle), register, drop on A, each
/// timed to B's delta; the first `warmup` are not kept. Keys from `base`.
/// Also returns every change A made, warm-up rounds included.
fn notify_rounds(
    c: &mut Cluster,
    ab: (usize, usize),
    rounds: usize,
    warmup: usize,
    base: u64,
) -> Result<([Op; 3], Vec<Made>), String> {
    let na = ab.0;
    let (mut reg, mut unreg, mut dropped) = (
        Op::new("register"),
        Op::new("unregister"),
        Op::new("port dropped"),
    );
    let mut made = Vec::with_capacity(4 * rounds);
    for k in 0..rounds {
        let key = base + 2 * k as u64;
        let r1 = roundtrip(
            c,
            ab,
            &json!({"cmd": "reg1", "key": key, "group": "lat"}),
            true,
        )?;
        let u1 = roundtrip(c, ab, &json!({"cmd": "unreg1", "key": key}), false)?;
        // The now unregistered port goes too (no change for B).
        c.send(na, &json!({"cmd": "drop1", "key": key}))?;
        c.wait("drop of an idle port", |m| {
            m.from == na && m.ev() == "done" && m.u64("key") == key
        })?;
        let r2 = roundtrip(
            c,
            ab,
            &json!({"cmd": "reg1", "key": key + 1, "group": "lat"}),
            true,
        )?;
        let d2 = roundtrip(c, ab, &json!({"cmd": "drop1", "key": key + 1}), false)?;
        let measured = k >= warmup;
        made.extend([r1, u1, r2, d2].map(|(_, _, m)| Made { measured, ..m }));
        if k >= warmup {
            for (op, (ow, raw, _)) in [(0, r1), (1, u1), (0, r2), (2, d2)] {
                let op = match op {
                    0 => &mut reg,
                    1 => &mut unreg,
                    _ => &mut dropped,
                };
                op.oneway_us.push(ow);
                op.raw_us.push(raw);
            }
        }
    }
    Ok(([reg, unreg, dropped], made))
}

/// `rounds` of register and unregister run inside A (`lat_loop`), each
/// timed to B's reporting monitor; the first `warmup` are not kept.
fn runner_rounds(
    c: &mut Cluster,
    na: usize,
    rounds: usize,
    warmup: usize,
) -> Result<([Op; 3], Vec<Made>), String> {
    c.send(
        na,
        &json!({"cmd": "lat_loop", "group": "lat", "iters": rounds, "warmup": 0}),
    )?;
    let done = c.wait("A's rounds", |m| m.from == na && m.ev() == "lat_loop")?;
    let (mut reg, mut unreg) = (Op::new("register"), Op::new("unregister"));
    let mut made = Vec::with_capacity(2 * rounds);
    let list = done.v.get("made").and_then(Value::as_array);
    for (i, m) in list.into_iter().flatten().enumerate() {
        let at = |k: usize| m.get(k).and_then(Value::as_u64).unwrap_or(0);
        let added = m.get(2).and_then(Value::as_bool).unwrap_or(false);
        let measured = i / 2 >= warmup;
        if measured {
            let op = if added { &mut reg } else { &mut unreg };
            op.oneway_us.push(ms_between(at(0), at(3)) * 1000.0);
            op.call_us.push(ms_between(at(0), at(4)) * 1000.0);
        }
        made.push(Made {
            t: at(0),
            port: at(1),
            added,
            at_b: at(3),
            measured,
        });
    }
    if made.len() != 2 * rounds {
        return Err(format!("A ran {} changes of {}", made.len(), 2 * rounds));
    }
    Ok(([reg, unreg, Op::new("port dropped")], made))
}

/// A row each for the first, second, middle and last of `samples`: p50 / p99.
fn by_position(r: &mut Report, samples: &[Vec<f64>], what: impl Fn(&str) -> String) {
    let last = samples.len().saturating_sub(1);
    for (i, name) in [
        (0, "first"),
        (1.min(last), "second"),
        (last / 2, "middle"),
        (last, "last"),
    ] {
        if let Some(xs) = samples.get(i) {
            r.row(what(name), p50_p99_us(&sorted(xs)));
        }
    }
}

/// With `--every-node`: each change's one-way time to every node but A (B
/// from its own monitor, the others from their quiet monitors' records),
/// sorted per change, so `[k]` holds the samples of the (k+1)-th node to
/// know (µs, measured changes only). A quiet monitor read late gets a
/// register and its unregister netted into no change at all: such a node
/// counts as the last to know (∞). Also returns how many (change, node)
/// pairs were netted so.
fn arrival_ranks(
    c: &mut Cluster,
    quiet: &[usize],
    made: &[Made],
) -> Result<(Vec<Vec<f64>>, usize), String> {
    let mut per_node = Vec::with_capacity(quiet.len());
    for &w in quiet {
        c.send(w, &json!({"cmd": "recorded", "group": "lat"}))?;
        let m = c.wait("recorded", |m| m.from == w && m.ev() == "recorded")?;
        // (port, added) -> when this node's monitor yielded it.
        let mut seen = HashMap::new();
        let changes = m.v.get("changes").and_then(Value::as_array);
        for change in changes.into_iter().flatten() {
            let t = change.get(0).and_then(Value::as_u64).unwrap_or(0);
            for (k, added) in [(1, true), (2, false)] {
                let ports = change.get(k).and_then(Value::as_array);
                for p in ports.into_iter().flatten().filter_map(Value::as_u64) {
                    seen.entry((p, added)).or_insert(t);
                }
            }
        }
        per_node.push(seen);
    }
    let mut ranks = vec![Vec::new(); quiet.len() + 1];
    let mut netted = 0;
    for m in made.iter().filter(|m| m.measured) {
        let quiet_times = per_node.iter().map(|seen| seen.get(&(m.port, m.added)));
        let arrivals: Vec<f64> = std::iter::once(Some(&m.at_b))
            .chain(quiet_times)
            .map(|t| t.map_or(f64::INFINITY, |&t| ms_between(m.t, t) * 1000.0))
            .collect();
        netted += arrivals.iter().filter(|x| x.is_infinite()).count();
        for (rank, x) in sorted(&arrivals).into_iter().enumerate() {
            ranks[rank].push(x);
        }
    }
    Ok((ranks, netted))
}

pub(crate) fn latency(a: &LatencyArgs) -> Result<(), String> {
    let n = usize::from(a.nodes);
    let mut c = Cluster::start(
        n,
        &opts(&a.common, DEFAULT_PING_MS, DEFAULT_KEEPALIVE_MS),
        timeout(&a.common),
    )?;
    c.form_mesh()?;
    let nb = a.b.unwrap_or(n - 1);
    if nb == 0 || nb >= n {
        return Err(format!("--b must be in 1..{n}"));
    }
    let na = 0;
    if a.runner_on_a {
        c.send(na, &json!({"cmd": "report_port"}))?;
        let p = c.wait("A's report port", |m| {
            m.from == na && m.ev() == "report_port"
        })?;
        let to = p.v.get("port").cloned().unwrap_or_default();
        c.send(
            nb,
            &json!({"cmd": "monitor", "group": "lat", "report_to": to}),
        )?;
    } else {
        c.send(nb, &json!({"cmd": "monitor", "group": "lat"}))?;
    }
    let others: Vec<usize> = (1..n).filter(|&w| w != nb).collect();
    if a.every_node {
        for &w in &others {
            c.send(w, &json!({"cmd": "monitor", "group": "lat", "quiet": true}))?;
        }
    }
    c.clear_backlog()?;

    // The pipe round trip coordinator -> worker -> coordinator.
    let mut pipe_us = Vec::new();
    for k in 0..(a.iters + a.warmup) {
        let w = if k % 2 == 0 { na } else { nb };
        let sent = Instant::now();
        c.send(w, &json!({"cmd": "ping"}))?;
        let pong = c.wait("pong", |m| m.from == w && m.ev() == "pong")?;
        if k >= a.warmup {
            pipe_us.push(pong.at.duration_since(sent).as_secs_f64() * 1e6);
        }
    }

    let ab = (na, nb);
    let before = c.stats(&[nb])?;
    let rounds = a.iters + a.warmup;
    let ([reg, unreg, dropped], made) = if a.runner_on_a {
        runner_rounds(&mut c, na, rounds, a.warmup)?
    } else {
        notify_rounds(&mut c, ab, rounds, a.warmup, 0)?
    };
    let after = c.stats(&[nb])?;
    let (ranks, netted) = if a.every_node {
        arrival_ranks(&mut c, &others, &made)?
    } else {
        (Vec::new(), 0)
    };
    // Every change A made reached B's monitor, warm-up rounds included.
    #[allow(clippy::cast_precision_loss)]
    let changes = made.len() as f64;
    let cpu_per_change_us = delta(&before[0], &after[0], "cpu_ns") / 1e3 / changes;

    // The floor under it all, in the same sitting: one change's bytes (a
    // register's `Update` is 34 B on the wire) written over blocking TCP to
    // n - 1 sleeping threads in turn, no runtime, no encryption, no core.
    let fan = baseline::fan_out(n - 1, a.iters, a.warmup, 34, Duration::from_millis(1))?;

    // Again, while A floods a slow port on B (its reader sleeps after each
    // message) over the same connection: A's sender waits for credit all
    // along, and the group changes must not wait behind it.
    c.send(
        nb,
        &json!({"cmd": "sink", "key": FLOOD_KEY, "delay_us": a.flood_delay_us}),
    )?;
    let ready = c.wait("B's slow sink", |m| {
        m.from == nb && m.ev() == "sink_ready" && m.u64("key") == FLOOD_KEY
    })?;
    let to = ready.v.get("port").cloned().unwrap_or_default();
    c.send(
        na,
        &json!({"cmd": "blast", "to": to, "count": u64::MAX, "size": 16, "background": true}),
    )?;
    c.wait("A's flood", |m| m.from == na && m.ev() == "blast_started")?;
    let ([flooded, ..], _) = if a.runner_on_a {
        runner_rounds(&mut c, na, rounds, a.warmup)?
    } else {
        notify_rounds(&mut c, ab, rounds, a.warmup, FLOOD_KEY)?
    };

    let pipe = sorted(&pipe_us);
    let pipe_p50 = quantile(&pipe, 0.5);
    let mut r = Report::on(
        a.common.runtime,
        "latency",
        json!({"nodes": n, "iters": a.iters, "warmup": a.warmup, "a": "n00", "b": format!("n{nb:02}")}),
    );
    r.row(
        "pipe round trip coordinator→worker→coordinator (p50 / p99)",
        format!("{} / {}", us(pipe_p50), us(quantile(&pipe, 0.99))),
    );
    let mut ops_json = Vec::new();
    for op in [&reg, &unreg, &dropped] {
        if op.oneway_us.is_empty() {
            continue;
        }
        let ow = sorted(&op.oneway_us);
        let raw = sorted(&op.raw_us);
        let (p50, p99) = (quantile(&ow, 0.5), quantile(&ow, 0.99));
        if op.name == "register" {
            r.target(
                format!("{}: call on A → delta at B, p50", op.name),
                us(p50),
                "< 100 µs",
                p50 < 100.0,
            );
            r.target(
                format!("{}: call on A → delta at B, p99", op.name),
                us(p99),
                "< 1 ms",
                p99 < 1000.0,
            );
        } else {
            r.row(
                format!("{}: call on A → delta at B, p50 / p99", op.name),
                format!("{} / {}", us(p50), us(p99)),
            );
        }
        if !op.call_us.is_empty() {
            r.row(
                format!("{}: the call on A itself, p50 / p99", op.name),
                p50_p99_us(&sorted(&op.call_us)),
            );
        }
        if !raw.is_empty() {
            r.row(
                format!("{}: coordinator round trip raw, p50 / p99", op.name),
                p50_p99_us(&raw),
            );
            r.row(
                format!("{}: round trip − pipe p50, p50 / p99", op.name),
                format!(
                    "{} / {}",
                    us(quantile(&raw, 0.5) - pipe_p50),
                    us(quantile(&raw, 0.99) - pipe_p50)
                ),
            );
        }
        ops_json.push(json!({
            "op": op.name,
            "oneway_us": summary(&op.oneway_us),
            "raw_us": summary(&op.raw_us),
            "corrected_us": {"p50": quantile(&raw, 0.5) - pipe_p50, "p99": quantile(&raw, 0.99) - pipe_p50},
        }));
    }
    let (calm, busy) = (sorted(&reg.oneway_us), sorted(&flooded.oneway_us));
    r.row(
        "register: call on A → delta at B while A floods a slow port on B, p50 / p99",
        format!(
            "{} / {} ({:.2}× / {:.2}× without the flood)",
            us(quantile(&busy, 0.5)),
            us(quantile(&busy, 0.99)),
            quantile(&busy, 0.5) / quantile(&calm, 0.5),
            quantile(&busy, 0.99) / quantile(&calm, 0.99)
        ),
    );
    let readers = fan.arrivals.len();
    by_position(&mut r, &fan.arrivals, |name| {
        format!("floor: blocking TCP fan-out to {readers} threads, {name} written, p50 / p99")
    });
    if !ranks.is_empty() {
        let nodes = ranks.len();
        by_position(&mut r, &ranks, |name| {
            format!("every change: the {name} of {nodes} nodes to know, p50 / p99")
        });
        r.row(
            "every change: (change, node) pairs a late monitor read netted away (counted last, ∞)",
            netted.to_string(),
        );
        r.set(
            "arrival_ranks_us",
            json!(ranks.iter().map(|f| summary(f)).collect::<Vec<_>>()),
        );
    }
    r.set(
        "fanout_floor_us",
        json!(fan.arrivals.iter().map(|f| summary(f)).collect::<Vec<_>>()),
    );
    r.row(
        "floor: CPU of a blocking TCP reader per message it read",
        us(fan.reader_cpu_us),
    );
    r.set("fanout_reader_cpu_us", json!(fan.reader_cpu_us));
    r.row(
        "CPU of B (the receiving process, every thread) per delivered change",
        us(cpu_per_change_us),
    );
    r.set("b_cpu_per_change_us", json!(cpu_per_change_us));
    r.set("flooded_register_oneway_us", summary(&flooded.oneway_us));
    r.set("pipe_us", summary(&pipe_us));
    r.set("ops", json!(ops_json));
    r.note(format!(
        "one-way: CLOCK_REALTIME read in A just before the call, and in B when its monitor stream \
         yields the change (same kernel clock); {} samples each ({} for register: two per iteration)",
        a.iters,
        2 * a.iters
    ));
    r.note(format!(
        "under a flood: B's sink port reads one message, then sleeps {} µs; A sends 16 B \
         messages to it in a loop of Port::send(..).await on a task of its runtime (it waits \
         for credit), over the connection the group changes take",
        a.flood_delay_us
    ));
    r.note(
        "CPU per change: B's CPU time over the calm rounds (schedstat of all its threads: \
         socket, core, monitor task and the line it prints, or with --runner-on-a the message \
         it sends, per change) divided by the changes its monitor got",
    );
    r.note("raw: the coordinator's clock from writing the command to A until reading B's line; corrected: raw minus the pipe round trip's p50");
    r.print(a.common.json);
    Ok(())
}

// ----- loss -------------------------------------------------------------

struct LossCase {
    name: String,
    sigstop: bool,
    ping_ms: u64,
    keepalive_ms: u64,
}

fn loss_once(a: &LossArgs, case: &LossCase) -> Result<Value, String> {
    let n = usize::from(a.nodes);
    let (m, g) = (a.members, a.groups.max(1));
    let mut c = Cluster::start(
        n,
        &opts(&a.common, case.ping_ms, case.keepalive_ms),
        timeout(&a.common),
    )?;
    c.form_mesh()?;
    let all: Vec<usize> = (0..n).collect();
    c.watch(&all, "base", Some(n * m), None)?;
    c.send_each(
        &all,
        &json!({"cmd": "register", "tag": "base", "ports": m, "groups": g, "prefix": "g"}),
    )?;
    c.reached(&all, "base", "members")?;
    let victim = n - 1;
    let survivors: Vec<usize> = (0..victim).collect();
    c.watch(&survivors, "loss", Some((n - 1) * m), Some(n - 2))?;
    // Let the watch threads start and a ping round pass.
    std::thread::sleep(Duration::from_millis(50));
    let t0 = sys_ns();
    if case.sigstop {
        c.signal(victim, "STOP")?;
    } else {
        c.kill(victim)?;
    }
    let signalled = ms_between(t0, sys_ns());
    let members = since(t0, &c.reached(&survivors, "loss", "members")?);
    let peers = since(t0, &c.reached(&survivors, "loss", "peers")?);
    Ok(json!({
        "case": case.name,
        "members_dropped_ms": max(&members),
        "members_dropped_median_ms": median(&members),
        "node_down_ms": max(&peers),
        "signal_call_ms": signalled,
        "keepalive_ms": case.keepalive_ms,
        "ping_ms": case.ping_ms,
    }))
}

pub(crate) fn loss(a: &LossArgs) -> Result<(), String> {
    let n = usize::from(a.nodes);
    let cases = [
        (false, DEFAULT_PING_MS, DEFAULT_KEEPALIVE_MS),
        (false, a.short_ping_ms, a.short_keepalive_ms),
        (true, DEFAULT_PING_MS, DEFAULT_KEEPALIVE_MS),
        (true, a.short_ping_ms, a.short_keepalive_ms),
    ];
    let mut r = Report::on(
        a.common.runtime,
        "loss",
        json!({"nodes": n, "members": a.members, "groups": a.groups}),
    );
    let mut results = Vec::new();
    for (sigstop, ping_ms, keepalive_ms) in cases {
        let name = format!(
            "{} (ping {ping_ms} ms, keepalive {keepalive_ms} ms)",
            if sigstop { "SIGSTOP" } else { "kill -9" }
        );
        let case = LossCase {
            name: name.clone(),
            sigstop,
            ping_ms,
            keepalive_ms,
        };
        let v = loss_once(a, &case)?;
        let t = num(&v, "members_dropped_ms");
        #[allow(clippy::cast_precision_loss)]
        let limit = keepalive_ms as f64 * 1.2;
        if sigstop {
            r.target(
                format!("{name}: every survivor dropped its members"),
                ms(t),
                format!("< {}", ms(limit)),
                t < limit,
            );
        } else {
            r.target(
                format!("{name}: every survivor dropped its members"),
                ms(t),
                "< 10 ms",
                t < 10.0,
            );
        }
        r.row(
            "    median survivor / node down everywhere",
            format!(
                "{} / {}",
                ms(num(&v, "members_dropped_median_ms")),
                ms(num(&v, "node_down_ms"))
            ),
        );
        results.push(v);
    }
    r.note(format!(
        "{} survivors each watch for {} members ({} ports × {} nodes); t0 is read just before \
         Child::kill (SIGKILL) or before spawning `kill -STOP` (which takes ~1 ms: counted against the figure)",
        n - 1,
        (n - 1) * a.members,
        a.members,
        n - 1
    ));
    r.set("cases", json!(results));
    r.print(a.common.json);
    Ok(())
}

// ----- memory -----------------------------------------------------------

fn kib(v: &Value, k: &str) -> f64 {
    num(v, k)
}

pub(crate) fn memory(a: &MemoryArgs) -> Result<(), String> {
    let n = usize::from(a.nodes);
    let (m, g) = (a.members, a.groups.max(1));
    let nm = n * m;
    let settle = Duration::from_millis(300);
    let o = opts(&a.common, DEFAULT_PING_MS, DEFAULT_KEEPALIVE_MS);

    // One node alone, listening, nothing registered.
    let idle = {
        let c = Cluster::start(1, &o, timeout(&a.common))?;
        std::thread::sleep(settle);
        memory_kib(&c.workers[0].pid.to_string())
    };

    // N registering nodes plus one observer that registers nothing: the
    // observer's growth is the pure cost of a view.
    let mut c = Cluster::start(n + 1, &o, timeout(&a.common))?;
    let all: Vec<usize> = (0..=n).collect();
    let registering: Vec<usize> = (0..n).collect();
    let observer = n;
    c.form_mesh()?;
    std::thread::sleep(settle);
    let formed: Vec<Value> = c
        .workers
        .iter()
        .map(|w| memory_kib(&w.pid.to_string()))
        .collect();
    c.watch(&all, "mem", Some(nm), None)?;
    c.send_each(
        &registering,
        &json!({"cmd": "register", "tag": "mem", "ports": m, "groups": g, "prefix": "g", "meta": a.meta_bytes}),
    )?;
    c.reached(&all, "mem", "members")?;
    std::thread::sleep(settle);
    let loaded: Vec<Value> = c
        .workers
        .iter()
        .map(|w| memory_kib(&w.pid.to_string()))
        .collect();

    #[allow(clippy::cast_precision_loss)]
    let per_member = |i: usize, k: &str| -> f64 {
        (kib(&loaded[i], k) - kib(&formed[i], k)) * 1024.0 / nm.max(1) as f64
    };
    let col = |vs: &[Value], k: &str| -> Vec<f64> {
        registering.iter().map(|&i| kib(&vs[i], k)).collect()
    };
    let mib = |k: f64| format!("{:.2} MiB", k / 1024.0);
    let idle_rss = kib(&idle, "rss_kib");
    let bpm: Vec<f64> = registering
        .iter()
        .map(|&i| per_member(i, "rss_kib"))
        .collect();
    let obs = per_member(observer, "rss_kib");

    let mut r = Report::on(
        a.common.runtime,
        "memory",
        json!({"nodes": n, "members": m, "groups": g, "meta_bytes": a.meta_bytes}),
    );
    r.target(
        "idle node process, VmRSS",
        mib(idle_rss),
        "< 5 MiB",
        idle_rss < 5.0 * 1024.0,
    );
    r.row(
        "    of which anonymous / file-backed; threads",
        format!(
            "{} / {}; {}",
            mib(kib(&idle, "anon_kib")),
            mib(kib(&idle, "file_kib")),
            kib(&idle, "threads")
        ),
    );
    r.row(
        format!("mesh of {} formed, no members: VmRSS median / max", n + 1),
        format!(
            "{} / {}",
            mib(median(&col(&formed, "rss_kib"))),
            mib(max(&col(&formed, "rss_kib")))
        ),
    );
    r.row(
        format!("with {nm} members in every view: VmRSS median / max"),
        format!(
            "{} / {}",
            mib(median(&col(&loaded, "rss_kib"))),
            mib(max(&col(&loaded, "rss_kib")))
        ),
    );
    r.target(
        "bytes per member in a view: observer (registers nothing)",
        format!("{obs:.0} B"),
        "< 100 B",
        obs < 100.0,
    );
    r.row(
        format!("    registering nodes ({m} own registrations each), median / max"),
        format!("{:.0} B / {:.0} B", median(&bpm), max(&bpm)),
    );
    r.row(
        "    observer, anonymous memory only",
        format!("{:.0} B", per_member(observer, "anon_kib")),
    );
    r.note(format!(
        "VmRSS from /proc/<pid>/status of each worker process (the bench worker: node + runtime + \
         the JSON line protocol); bytes per member = VmRSS growth from the formed mesh to the \
         loaded one / {nm} members; it includes allocator slack and buffers touched while the \
         snapshots arrived; settled {} ms before reading",
        settle.as_millis()
    ));
    r.set("idle", idle);
    r.set("formed", json!(formed));
    r.set("loaded", json!(loaded));
    r.set("bytes_per_member_registering", summary(&bpm));
    r.set("bytes_per_member_observer", json!(obs));
    r.print(a.common.json);
    Ok(())
}

// ----- messages ---------------------------------------------------------

/// Worker A (the sender) and B (the receiver) of the messages scenario.
const A: usize = 0;
const B: usize = 1;

/// Bytes a message adds to its payload on the wire, at most (the core's
/// `wire::MESSAGE_OVERHEAD`): `max_frame` must hold payload + this.
const MESSAGE_OVERHEAD: u64 = 32;

/// The `max_frame` a payload of `size` bytes needs, if more than the default 64 KiB.
fn frame_for(size: u64) -> Option<usize> {
    let need = size + MESSAGE_OVERHEAD;
    (need > 64 * 1024).then(|| usize::try_from(need.next_power_of_two()).unwrap_or(usize::MAX))
}

/// Two workers, A and B, connected.
fn pair(
    a: &MessagesArgs,
    mailbox: Option<usize>,
    max_frame: Option<usize>,
) -> Result<Cluster, String> {
    let o = WorkerOpts {
        mailbox,
        max_frame,
        ..opts(&a.common, DEFAULT_PING_MS, DEFAULT_KEEPALIVE_MS)
    };
    let mut c = Cluster::start(2, &o, timeout(&a.common))?;
    c.form_mesh()?;
    c.clear_backlog()?;
    Ok(c)
}

/// A stats counter, as a number.
fn delta(before: &Value, after: &Value, k: &str) -> f64 {
    num(after, k) - num(before, k)
}

/// A floods a new sink port on B with `count` messages of `size` bytes, in
/// a loop of `Port::send(..).await`; B's sink reads them. Only messages the
/// sink read count.
fn flood(
    c: &mut Cluster,
    key: u64,
    (count, size): (u64, u64),
    idle_ms: u64,
) -> Result<Value, String> {
    c.send(B, &json!({"cmd": "sink", "key": key}))?;
    let ready = c.wait("B's sink", |m| {
        m.from == B && m.ev() == "sink_ready" && m.u64("key") == key
    })?;
    let to = ready.v.get("port").cloned().unwrap_or_default();
    let before = c.stats(&[A, B])?;
    c.send(
        A,
        &json!({"cmd": "blast", "to": to, "count": count, "size": size}),
    )?;
    let blasted = c.wait("A's sends", |m| m.from == A && m.ev() == "blasted")?;
    if blasted.u64("errors") > 0 {
        return Err(format!("A's sends failed: {}", blasted.v));
    }
    c.send(
        B,
        &json!({"cmd": "sink_wait", "key": key, "expect": count, "idle_ms": idle_ms}),
    )?;
    let sunk = c.wait("B's sink", |m| {
        m.from == B && m.ev() == "sunk" && m.u64("key") == key
    })?;
    let after = c.stats(&[A, B])?;
    let (t_start, last_t) = (blasted.u64("t_start"), sunk.u64("last_t"));
    let received = sunk.u64("received");
    #[allow(clippy::cast_precision_loss)]
    let (received_f, bytes_f, count_f) = (received as f64, sunk.u64("bytes") as f64, count as f64);
    let secs = if received > 0 {
        ms_between(t_start, last_t) / 1e3
    } else {
        f64::NAN
    };
    Ok(json!({
        "count": count,
        "size": size,
        "received": received,
        "lost": count_f - received_f,
        "received_bytes": sunk.u64("bytes"),
        "out_of_order": sunk.u64("out_of_order"),
        "seconds": secs,
        "msgs_per_s": received_f / secs,
        "mb_per_s": bytes_f / secs / 1e6,
        "dropped_at_a": delta(&before[0], &after[0], "messages_dropped"),
        "dropped_at_b": delta(&before[1], &after[1], "messages_dropped"),
        "frames_out_a": delta(&before[0], &after[0], "frames_out"),
        "bytes_out_a": delta(&before[0], &after[0], "bytes_out"),
        "cpu_ms_a": delta(&before[0], &after[0], "cpu_ns") / 1e6,
        "cpu_ms_b": delta(&before[1], &after[1], "cpu_ns") / 1e6,
    }))
}

/// Round trips from A to a new echo port on B; the samples are taken in A
/// with `std::time::Instant`.
fn round_trips(
    c: &mut Cluster,
    key: u64,
    iters: usize,
    warmup: usize,
    size: u64,
) -> Result<(Vec<f64>, u64), String> {
    c.send(B, &json!({"cmd": "echo", "key": key}))?;
    let ready = c.wait("B's echo port", |m| {
        m.from == B && m.ev() == "echo_ready" && m.u64("key") == key
    })?;
    let to = ready.v.get("port").cloned().unwrap_or_default();
    c.send(
        A,
        &json!({"cmd": "rtt", "to": to, "iters": iters, "warmup": warmup, "size": size,
                "limit_ms": c.timeout.as_millis() * 3 / 4}),
    )?;
    let r = c.wait("A's round trips", |m| m.from == A && m.ev() == "rtt")?;
    let samples =
        r.v.get("samples_us")
            .and_then(Value::as_array)
            .map(|xs| xs.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
    Ok((samples, r.u64("lost")))
}

/// The rows of one flood, beside the blocking-TCP baseline `(msgs/s, MB/s)`.
/// With a `target` (MB/s), it is met only if B read every message too.
fn flood_rows(r: &mut Report, name: &str, f: &Value, tcp: (f64, f64), target: Option<f64>) {
    let (rate, mbs, lost) = (num(f, "msgs_per_s"), num(f, "mb_per_s"), num(f, "lost"));
    r.target(
        format!("{name}: lost (sent − read by B's port)"),
        format!("{lost:.0}"),
        "0",
        lost == 0.0 && num(f, "out_of_order") == 0.0,
    );
    let what = format!("{name}: read by B's port");
    let value = format!(
        "{rate:.0} /s, {mbs:.1} MB/s ({:.2}× blocking TCP: {:.0} /s, {:.1} MB/s)",
        rate / tcp.0,
        tcp.0,
        tcp.1
    );
    match target {
        Some(t) => {
            r.target(
                what,
                value,
                format!(">= {t:.0} MB/s"),
                mbs >= t && lost == 0.0,
            );
        }
        None => r.row(what, value),
    }
    r.row(
        "    first send on A → last read on B; CPU time A / B; out-of-order reads",
        format!(
            "{}; {} / {}; {}",
            ms(num(f, "seconds") * 1e3),
            ms(num(f, "cpu_ms_a")),
            ms(num(f, "cpu_ms_b")),
            num(f, "out_of_order"),
        ),
    );
}

pub(crate) fn messages(a: &MessagesArgs) -> Result<(), String> {
    let mut r = Report::on(
        a.common.runtime,
        "messages",
        json!({"count": a.count, "size": a.size, "big_count": a.big_count, "big_size": a.big_size,
               "iters": a.iters, "warmup": a.warmup, "mailbox": a.mailbox}),
    );
    let mailbox = a
        .mailbox
        .map_or_else(|| format!("{DEFAULT_MAILBOX} (default)"), |m| m.to_string());
    let size = usize::try_from(a.size).map_err(|e| e.to_string())?;
    let big_size = usize::try_from(a.big_size).map_err(|e| e.to_string())?;

    // Default configuration: small flood, small round trips.
    let mut c = pair(a, a.mailbox, None)?;
    let small = flood(&mut c, 1, (a.count, a.size), a.idle_ms)?;
    let (rtt, lost) = round_trips(&mut c, 3, a.iters, a.warmup, a.size)?;
    drop(c);

    // max_frame raised to hold the large payload: large flood and round trips.
    let max_frame = frame_for(a.big_size);
    let mut c = pair(a, a.mailbox, max_frame)?;
    let big = flood(&mut c, 1, (a.big_count, a.big_size), a.idle_ms)?;
    let big_iters = (a.iters / 10).max(1);
    let (big_rtt, big_lost) = round_trips(&mut c, 3, big_iters, a.warmup / 10, a.big_size)?;
    drop(c);

    // The same traffic over blocking TCP, in this run.
    let tcp_small = baseline::flood(a.count, size)?;
    let tcp_big = baseline::flood(a.big_count, big_size)?;
    let tcp_rtt = baseline::ping_pong(a.iters, a.warmup, size)?;

    flood_rows(
        &mut r,
        &format!(
            "{} × {} B, A → B, send().await, mailbox {mailbox}",
            a.count, a.size
        ),
        &small,
        tcp_small,
        None,
    );
    flood_rows(
        &mut r,
        &format!(
            "{} × {} B, A → B, send().await, max_frame {}",
            a.big_count,
            a.big_size,
            max_frame.map_or_else(|| "64 KiB".to_owned(), |f| format!("{} KiB", f / 1024))
        ),
        &big,
        tcp_big,
        Some(500.0),
    );
    let s = sorted(&rtt);
    let t = sorted(&tcp_rtt);
    let (p50, tcp_p50) = (quantile(&s, 0.5), quantile(&t, 0.5));
    r.target(
        format!("round trip A → B's echo port → A, {} B, p50", a.size),
        format!(
            "{} ({:.2}× blocking TCP ping-pong: {})",
            us(p50),
            p50 / tcp_p50,
            us(tcp_p50)
        ),
        "<= 1.5× TCP",
        p50 <= 1.5 * tcp_p50,
    );
    r.row(
        "    p90 / p99 / max; lost",
        format!(
            "{} / {} / {}; {lost}",
            us(quantile(&s, 0.9)),
            us(quantile(&s, 0.99)),
            us(s.last().copied().unwrap_or(0.0))
        ),
    );
    let b = sorted(&big_rtt);
    r.row(
        format!("round trip, {} B, p50 / p99; lost", a.big_size),
        format!(
            "{} / {}; {big_lost}",
            us(quantile(&b, 0.5)),
            us(quantile(&b, 0.99))
        ),
    );
    r.note(format!(
        "two worker processes on 127.0.0.1; A sends from one port with Port::send(..).await in a \
         loop (it waits while B's port holds its credit, the mailbox, or the connection is \
         congested), B's port is read by a task on the runtime; a rate counts only messages B's \
         port read, from A's CLOCK_REALTIME before its first send to B's after its last read \
         (same kernel clock); B's sink waits until all arrived or none came for {} ms",
        a.idle_ms
    ));
    r.note(format!(
        "round trips: one at a time from a port on A to an echo port on B (a task that \
         sends each message back to its sender), timed in A with std::time::Instant; {} measured \
         after {} unmeasured ({} / {} for the large payload); lost 1 = a reply never came \
         (the rounds stop there)",
        a.iters,
        a.warmup,
        big_iters,
        a.warmup / 10
    ));
    r.note(
        "blocking TCP: two threads of this process on 127.0.0.1, std::net with TCP_NODELAY, no \
         encryption; floods through a 64 KiB BufWriter/BufReader with a 4-byte length per \
         message; ping-pong writes the payload and reads it back, one round at a time",
    );
    r.set("small", small);
    r.set("big", big);
    r.set(
        "tcp_small",
        json!({"msgs_per_s": tcp_small.0, "mb_per_s": tcp_small.1}),
    );
    r.set(
        "tcp_big",
        json!({"msgs_per_s": tcp_big.0, "mb_per_s": tcp_big.1}),
    );
    r.set("rtt_us", summary(&rtt));
    r.set("rtt_lost", json!(lost));
    r.set("tcp_rtt_us", summary(&tcp_rtt));
    r.set("big_rtt_us", summary(&big_rtt));
    r.set("big_rtt_lost", json!(big_lost));
    r.print(a.common.json);
    Ok(())
}
