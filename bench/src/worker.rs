//! The hidden `worker` subcommand: one groupmesh node (on `--runtime`) in its own
//! process, driven by the coordinator over a line protocol.
//!
//! Every line on stdin is one JSON command `{"cmd": ..., ...}`; every line on
//! stdout is one JSON event `{"ev": ..., ...}`. Times a worker reports (`"t"`)
//! are CLOCK_REALTIME nanoseconds since the UNIX epoch, read in this process:
//! every process on the machine reads the same kernel clock, so the
//! coordinator can subtract them across processes.
//!
//! | command | reply |
//! | --- | --- |
//! | `seed {addr}` | none (dials `addr` from now on) |
//! | `register {tag, ports, groups, prefix}` | `registered {tag, n, us}`: `ports` new ports, port `i` in group `prefix{i % groups}` |
//! | `unregister {tag}` | `unregistered {tag, n, us}`: the batch's registrations and ports dropped |
//! | `reg1 {key, group}` | `done {key, t, n}`: one new port (number `n`) registered; `t` read just before the call |
//! | `unreg1 {key}` | `done {key, t, n}`: that registration dropped (the port stays) |
//! | `drop1 {key}` | `done {key, t, n}`: that port dropped (ending its registrations) |
//! | `monitor {group, quiet?}` | then `change {group, members, added, removed, t}` for every change; with `quiet`, nothing: each change is kept for `recorded` |
//! | `report_port` | `report_port {port}`: A's port that a reporting monitor tells, and `lat_loop` reads |
//! | `monitor {group, report_to}` | nothing: each change goes as a message `[t, [added n..], [removed n..]]` (JSON) to `report_to` |
//! | `lat_loop {group, iters, warmup, limit_ms?}` | `lat_loop {made: [[t, n, added, t_b, t_ret]..]}`: in this process, `iters + warmup` rounds of a new port registered in `group` then unregistered, each waiting for the reporting monitor's message of it (`t` just before the call, `t_ret` when it returned, `t_b` the monitor's) |
//! | `recorded {group}` | `recorded {group, changes: [[t, [added n..], [removed n..]]..]}`: the changes a quiet monitor of `group` kept, oldest first, each port by its number alone (then forgotten) |
//! | `watch {tag, members?, peers?, timeout_ms}` | `reached {tag, what, t}` once per condition (`members` = memberships in the view, `peers` = connected nodes), or `watch_timeout {tag, members, peers}` |
//! | `count {prefix, groups}` | `count {total}`: Σ `members(prefix{i}).len()` |
//! | `sink {key, ack_every?}` | `sink_ready {key, port}`: a new port whose task reads and counts every message (checking the sequence numbers), and acknowledges every `ack_every` to the sender |
//! | `sink_wait {key, expect, idle_ms}` | `sunk {key, received, bytes, first_t, last_t, out_of_order}` once `expect` messages were read, or none for `idle_ms` |
//! | `blast {to, count, size, window?}` | `blasted {calls, errors, stalled, t_start, t_end, us}`: `count` messages of `size` bytes sent from a new port to `to`, in a loop of `Port::send`; with `window`, at most that many not yet acknowledged |
//! | `echo {key}` | `echo_ready {key, port}`: a new port whose task sends every message back to its sender |
//! | `rtt {to, iters, warmup, size, limit_ms?}` | `rtt {samples_us, lost}`: from a new port, send to `to` and wait for the reply, one at a time (µs, `std::time::Instant`); `lost` is 1 if a reply did not come before `limit_ms` (default 20 s) for all rounds |
//! | `stats` | `stats {...}`: the node's counters and this process's memory |
//! | `ping` | `pong` |
//! | `exit` | the node shuts down and the process exits |
//!
//! A `port` is `{node, inc, n}`. A message payload of `sink`, `blast` and `rtt`
//! starts with its sequence number (u64, little endian).
//!
//! End of stdin (the coordinator is gone) exits at once.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::{future, StreamExt};
use groupmesh_async_std::AsyncStd;
use groupmesh_driver::{Node, NodeConfig, NodeId, Port, PortId, Registration, Stats};
use groupmesh_runtimes::{self as rt, Rt, RuntimeName};
use groupmesh_smol::Smol;
use groupmesh_tokio::Tokio;
use serde_json::{json, Value};

use crate::WorkerArgs;

/// The secret every bench node shares.
pub(crate) const SECRET: &[u8] = b"groupmesh bench secret";

/// Nanoseconds since the UNIX epoch (CLOCK_REALTIME).
pub(crate) fn sys_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Writes one event line (stdout is line-buffered: one write per line).
fn emit(v: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the coordinator is gone: stdin ends too.
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` of a process, in KiB, from
/// `/proc/<pid>/status`.
pub(crate) fn memory_kib(pid: &str) -> Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    json!({
        "rss_kib": field("VmRSS:"),
        "anon_kib": field("RssAnon:"),
        "file_kib": field("RssFile:"),
        "hwm_kib": field("VmHWM:"),
        "threads": field("Threads:"),
    })
}

/// The node's closed connections by reason, as "reason: count" lines.
fn closed(s: &Stats) -> Vec<String> {
    s.closed.iter().map(|(r, n)| format!("{r}: {n}")).collect()
}

/// CPU time of this process's live threads, in ns, from
/// `/proc/self/task/*/schedstat`.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| schedstat_ns(&t.path().join("schedstat")))
        .sum()
}

/// A thread's time on CPU (ns, nanosecond precision) from its `schedstat`
/// file; `None` if it cannot be read.
pub(crate) fn schedstat_ns(path: &std::path::Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn get_str<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn get_u64(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn get_usize(v: &Value, k: &str) -> usize {
    get_u64(v, k)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

/// A port as JSON: `{node, inc, n}`.
fn port_json(p: &PortId) -> Value {
    json!({"node": p.node().as_str(), "inc": p.incarnation(), "n": p.number()})
}

/// The port `v[k]` names (`{node, inc, n}`).
fn port_of(v: &Value, k: &str) -> Result<PortId, String> {
    let p = v.get(k).ok_or_else(|| format!("no {k:?}"))?;
    let node = NodeId::new(get_str(p, "node")).map_err(|e| format!("{k}: {e}"))?;
    let (Some(inc), Some(n)) = (get_u64(p, "inc"), get_u64(p, "n")) else {
        return Err(format!("{k}: not a port: {p}"));
    };
    Ok(PortId::new(node, inc, n))
}

/// The sequence number a payload starts with.
fn seq_of(payload: &[u8]) -> Option<u64> {
    let b: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// What a sink's task has read so far.
#[derive(Default)]
struct SinkCounts {
    received: AtomicU64,
    bytes: AtomicU64,
    /// CLOCK_REALTIME ns of the first and the last message read.
    first_t: AtomicU64,
    last_t: AtomicU64,
    /// Messages whose sequence number was not above the previous one's.
    out_of_order: AtomicU64,
}

/// Opens a port whose task reads and counts every message; with a
/// `delay`, it sleeps that long after each (a slow reader: its senders
/// wait for it).
fn sink<R: Rt>(node: &Node<R>, delay: Duration) -> (PortId, Arc<SinkCounts>, rt::Task<()>) {
    let mut port = node.open_port();
    let id = port.id().clone();
    let counts = Arc::new(SinkCounts::default());
    let c = counts.clone();
    let task = rt::spawn::<R, _>(async move {
        let mut last: Option<u64> = None;
        while let Some(m) = port.recv().await {
            let t = sys_ns();
            if c.received.load(Ordering::Relaxed) == 0 {
                c.first_t.store(t, Ordering::Relaxed);
            }
            c.last_t.store(t, Ordering::Relaxed);
            c.bytes.fetch_add(m.payload.len() as u64, Ordering::Relaxed);
            let seq = seq_of(&m.payload);
            if seq.is_none() || seq <= last {
                c.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
            last = last.max(seq);
            c.received.fetch_add(1, Ordering::Relaxed);
            if !delay.is_zero() {
                rt::sleep::<R>(delay).await;
            }
        }
    });
    (id, counts, task)
}

/// Waits until `expect` messages were read, or none came for `idle`, on a
/// thread of its own: no timer in the node's reactor while it floods, and
/// the runtime (maybe a single thread, the one serving commands) runs on.
async fn sink_wait(counts: Arc<SinkCounts>, expect: u64, idle: Duration) {
    let (done, waited) = async_channel::bounded::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("sink_wait".into())
        .spawn(move || {
            poll_sink(&counts, expect, idle);
            let _ = done.send_blocking(());
        });
    if spawned.is_ok() {
        // Err only if the thread died: nothing more to wait for.
        let _ = waited.recv().await;
    }
}

/// Polls `counts` every millisecond until `expect` were read, or none came
/// for `idle`.
fn poll_sink(counts: &SinkCounts, expect: u64, idle: Duration) {
    let mut seen = counts.received.load(Ordering::Relaxed);
    let mut progress = Instant::now();
    loop {
        let now = counts.received.load(Ordering::Relaxed);
        if now >= expect {
            return;
        }
        if now != seen {
            seen = now;
            progress = Instant::now();
        } else if progress.elapsed() >= idle {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends `count` messages of `size` bytes from `port` to `to` in a loop of
/// `Port::send(..).await`: each waits while B has no room for it.
async fn blast(port: &Port, to: &PortId, count: u64, size: usize) -> Value {
    let mut buf = payload(size, 0);
    let mut errors = 0u64;
    let mut first_error = None;
    let t_start = sys_ns();
    let start = Instant::now();
    for seq in 0..count {
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        if let Err(e) = port.send(to, &buf).await {
            errors += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
    let us = start.elapsed().as_micros();
    json!({
        "ev": "blasted", "calls": count, "errors": errors,
        "first_error": first_error, "t_start": t_start, "t_end": sys_ns(), "us": us,
    })
}

/// A payload of `size` bytes starting with `seq`.
fn payload(size: usize, seq: u64) -> Vec<u8> {
    let mut p = vec![0xA5; size.max(8)];
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p
}

/// Round trips from a new port to the echo port `to`: send, wait for the
/// reply, `warmup + iters` times. Returns the measured ones (µs), and 1 lost
/// if a reply did not come within `limit` (the rounds stop there). One timer
/// for the whole run: a timer per round would add reactor work to each.
async fn rtt<R: Rt>(
    node: Arc<Node<R>>,
    to: PortId,
    (iters, warmup): (usize, usize),
    size: usize,
    limit: Duration,
) -> Value {
    let mut port = node.open_port();
    let mut buf = payload(size, 0);
    let mut samples = Vec::with_capacity(iters);
    let rounds = async {
        for k in 0..(warmup + iters) as u64 {
            buf[..8].copy_from_slice(&k.to_le_bytes());
            let start = Instant::now();
            port.send(&to, &buf)
                .await
                .map_err(|e| format!("rtt send: {e}"))?;
            // Late replies of earlier rounds are skipped.
            loop {
                let m = port.recv().await.ok_or("the node stopped")?;
                if seq_of(&m.payload) == Some(k) {
                    break;
                }
            }
            if k >= warmup as u64 {
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
        Ok::<bool, String>(false)
    };
    let late = async {
        rt::sleep::<R>(limit).await;
        Ok(true)
    };
    match future::or(rounds, late).await {
        Ok(lost) => json!({"ev": "rtt", "samples_us": samples, "lost": u64::from(lost)}),
        Err(e) => json!({"ev": "error", "error": e}),
    }
}

/// A change as the quiet and reporting monitors keep it: `[t, [added n..],
/// [removed n..]]`, `t` read now, each port by its number alone.
fn stamped(added: &[PortId], removed: &[PortId]) -> Value {
    let t = sys_ns();
    let numbers = |ps: &[PortId]| ps.iter().map(PortId::number).collect::<Vec<_>>();
    json!([t, numbers(added), numbers(removed)])
}

/// Erlang's bench's way, inside this process: `rounds` of a new port
/// registered in `group` and then unregistered, each call stamped just
/// before it and waiting for the reporting monitor's message that it
/// arrived. Returns `lat_loop {made: [[t, n, added, t_b, t_ret]..]}`, and the
/// port, for the next loop.
async fn lat_loop<R: Rt>(
    node: Arc<Node<R>>,
    mut reports: Port,
    group: String,
    rounds: usize,
    limit: Duration,
) -> (Value, Port) {
    let mut made = Vec::with_capacity(2 * rounds);
    let run = async {
        for _ in 0..rounds {
            let port = node.open_port();
            let n = port.id().number();
            let t = sys_ns();
            let reg = node
                .register(&group, &port)
                .map_err(|e| format!("register: {e}"))?;
            let returned = sys_ns();
            made.push(json!([
                t,
                n,
                true,
                reported(&mut reports, n, 1).await?,
                returned
            ]));
            let t = sys_ns();
            drop(reg);
            let returned = sys_ns();
            made.push(json!([
                t,
                n,
                false,
                reported(&mut reports, n, 2).await?,
                returned
            ]));
        }
        Ok::<(), String>(())
    };
    let late = async {
        rt::sleep::<R>(limit).await;
        Err("a change did not reach the reporting monitor in time".to_owned())
    };
    let v = match future::or(run, late).await {
        Ok(()) => json!({"ev": "lat_loop", "made": made}),
        Err(e) => json!({"ev": "error", "error": e}),
    };
    (v, reports)
}

/// The time the reporting monitor saw port `n` in its change's list `k`
/// (1: added, 2: removed); reports of anything else are skipped.
async fn reported(reports: &mut Port, n: u64, k: usize) -> Result<u64, String> {
    loop {
        let m = reports.recv().await.ok_or("the node stopped")?;
        let v: Value = serde_json::from_slice(&m.payload).map_err(|e| e.to_string())?;
        let listed = v
            .get(k)
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(|p| p.as_u64() == Some(n)));
        if listed {
            return v
                .get(0)
                .and_then(Value::as_u64)
                .ok_or("a report without its time".into());
        }
    }
}

/// A port and, until it is ended, its registration.
struct Single {
    port: Port,
    reg: Option<Registration>,
}

pub(crate) fn run(args: &WorkerArgs) -> Result<(), String> {
    match args.runtime {
        RuntimeName::Tokio | RuntimeName::TokioMultiThread => serve::<Tokio>(args),
        RuntimeName::Smol => serve::<Smol>(args),
        RuntimeName::AsyncStd => serve::<AsyncStd>(args),
    }
}

/// Runs the worker's node on `R` until `exit` or the end of stdin.
fn serve<R: Rt>(args: &WorkerArgs) -> Result<(), String> {
    let mut cfg = NodeConfig::new(args.id.clone(), SECRET);
    cfg.bind.push(([127, 0, 0, 1], 0).into());
    cfg.timeouts.ping_interval = Duration::from_millis(args.ping_ms);
    cfg.timeouts.keepalive_timeout = Duration::from_millis(args.keepalive_ms);
    if let Some(m) = args.mailbox {
        cfg.mailbox = m;
    }
    if let Some(f) = args.max_frame {
        cfg.limits.max_frame = f;
    }
    let poll = Duration::from_micros(args.poll_us.max(10));

    // Commands are read by a plain thread; end of input ends the process.
    let (tx, rx) = async_channel::unbounded::<Value>();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send_blocking(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => emit(&json!({"ev": "error", "error": format!("bad command: {e}")})),
                }
            }
            std::process::exit(0);
        })
        .map_err(|e| e.to_string())?;

    R::block_on(args.runtime, async move {
        let node = Arc::new(Node::<R>::start(cfg).await.map_err(|e| e.to_string())?);
        emit(&json!({
            "ev": "ready",
            "id": args.id,
            "addr": node.local_addrs().first().map(ToString::to_string),
            "pid": std::process::id(),
        }));

        let mut batches: HashMap<String, Vec<(Port, Registration)>> = HashMap::new();
        let mut singles: HashMap<u64, Single> = HashMap::new();
        let mut monitors = Vec::new();
        let mut quiet: HashMap<String, Arc<std::sync::Mutex<Vec<Value>>>> = HashMap::new();
        let mut report_port: Option<Port> = None;
        let mut sinks: HashMap<u64, Arc<SinkCounts>> = HashMap::new();
        // Sink and echo tasks, ended (and their ports closed) at exit.
        let mut tasks = Vec::new();
        let mut senders = Vec::new();

        while let Ok(cmd) = rx.recv().await {
            match get_str(&cmd, "cmd") {
                "seed" => match get_str(&cmd, "addr").parse() {
                    Ok(addr) => node.add_seed(addr),
                    Err(e) => emit(&json!({"ev": "error", "error": format!("seed: {e}")})),
                },
                "register" => {
                    let tag = get_str(&cmd, "tag").to_owned();
                    let ports = get_usize(&cmd, "ports");
                    let groups = get_usize(&cmd, "groups").max(1);
                    let prefix = get_str(&cmd, "prefix");
                    let meta_len = get_usize(&cmd, "meta");
                    let names: Vec<String> = (0..groups).map(|g| format!("{prefix}{g}")).collect();
                    let start = Instant::now();
                    let batch = batches.entry(tag.clone()).or_default();
                    batch.reserve(ports);
                    for i in 0..ports {
                        let port = node.open_port();
                        // Each port's own bytes, as a zone or a shard range would be.
                        let meta: Vec<u8> = (0..meta_len).map(|k| (i + k) as u8).collect();
                        let reg = node
                            .register_with_meta_bytes(&names[i % groups], &port, &meta)
                            .map_err(|e| format!("register: {e}"))?;
                        batch.push((port, reg));
                    }
                    let us = start.elapsed().as_micros();
                    emit(&json!({"ev": "registered", "tag": tag, "n": ports, "us": us}));
                }
                "unregister" => {
                    let tag = get_str(&cmd, "tag");
                    let start = Instant::now();
                    let batch = batches.remove(tag).unwrap_or_default();
                    let n = batch.len();
                    // Registrations first, then their ports, as an application would.
                    let (ports, regs): (Vec<Port>, Vec<Registration>) = batch.into_iter().unzip();
                    drop(regs);
                    drop(ports);
                    let us = start.elapsed().as_micros();
                    emit(&json!({"ev": "unregistered", "tag": tag, "n": n, "us": us}));
                }
                "reg1" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let group = get_str(&cmd, "group");
                    let port = node.open_port();
                    let t = sys_ns();
                    let reg = node
                        .register(group, &port)
                        .map_err(|e| format!("register: {e}"))?;
                    let n = port.id().number();
                    singles.insert(
                        key,
                        Single {
                            port,
                            reg: Some(reg),
                        },
                    );
                    emit(&json!({"ev": "done", "key": key, "t": t, "n": n}));
                }
                "unreg1" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let single = singles.get_mut(&key);
                    let n = single.as_ref().map(|s| s.port.id().number());
                    let reg = single.and_then(|s| s.reg.take());
                    let t = sys_ns();
                    drop(reg);
                    emit(&json!({"ev": "done", "key": key, "t": t, "n": n}));
                }
                "drop1" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let single = singles.remove(&key);
                    // The registration handle outlives the port: dropping the
                    // port alone is what ends the membership.
                    let (port, reg) = match single {
                        Some(s) => (Some(s.port), s.reg),
                        None => (None, None),
                    };
                    let n = port.as_ref().map(|p| p.id().number());
                    let t = sys_ns();
                    drop(port);
                    emit(&json!({"ev": "done", "key": key, "t": t, "n": n}));
                    drop(reg);
                }
                "report_port" => {
                    let port = report_port.get_or_insert_with(|| node.open_port());
                    emit(&json!({"ev": "report_port", "port": port_json(port.id())}));
                }
                "monitor" if cmd.get("report_to").is_some() => {
                    let to = port_of(&cmd, "report_to")?;
                    let group = get_str(&cmd, "group");
                    let mut monitor = node.monitor(group).map_err(|e| format!("monitor: {e}"))?;
                    let from = node.open_port();
                    monitors.push(rt::spawn::<R, _>(async move {
                        while let Some(c) = monitor.next().await {
                            let change = stamped(&c.added, &c.removed);
                            if from.send(&to, change.to_string().as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    }));
                }
                "lat_loop" => {
                    let Some(port) = report_port.take() else {
                        emit(&json!({"ev": "error", "error": "lat_loop before report_port"}));
                        continue;
                    };
                    let group = get_str(&cmd, "group").to_owned();
                    let rounds = get_usize(&cmd, "iters") + get_usize(&cmd, "warmup");
                    let limit = Duration::from_millis(get_u64(&cmd, "limit_ms").unwrap_or(20_000));
                    let run = lat_loop(node.clone(), port, group, rounds, limit);
                    match rt::spawn::<R, _>(run).join().await {
                        Some((v, port)) => {
                            report_port = Some(port);
                            emit(&v);
                        }
                        None => {
                            emit(&json!({"ev": "error", "error": "the lat_loop task panicked"}))
                        }
                    }
                }
                "monitor" if cmd.get("quiet").and_then(Value::as_bool) == Some(true) => {
                    let group = get_str(&cmd, "group").to_owned();
                    let mut monitor = node.monitor(&group).map_err(|e| format!("monitor: {e}"))?;
                    let times = Arc::clone(quiet.entry(group).or_default());
                    monitors.push(rt::spawn::<R, _>(async move {
                        while let Some(c) = monitor.next().await {
                            let change = stamped(&c.added, &c.removed);
                            times.lock().unwrap_or_else(|p| p.into_inner()).push(change);
                        }
                    }));
                }
                "recorded" => {
                    let group = get_str(&cmd, "group");
                    let changes = quiet.get(group).map_or_else(Vec::new, |times| {
                        std::mem::take(&mut *times.lock().unwrap_or_else(|p| p.into_inner()))
                    });
                    emit(&json!({"ev": "recorded", "group": group, "changes": changes}));
                }
                "monitor" => {
                    let group = get_str(&cmd, "group").to_owned();
                    let mut monitor = node.monitor(&group).map_err(|e| format!("monitor: {e}"))?;
                    monitors.push(rt::spawn::<R, _>(async move {
                        while let Some(c) = monitor.next().await {
                            let t = sys_ns();
                            emit(&json!({
                                "ev": "change", "group": group, "t": t,
                                "members": c.members.len(),
                                "added": c.added.len(), "removed": c.removed.len(),
                            }));
                        }
                    }));
                }
                "watch" => watch(&node, &cmd, poll)?,
                "count" => {
                    let prefix = get_str(&cmd, "prefix");
                    let total: usize = (0..get_usize(&cmd, "groups"))
                        .map(|g| node.members(&format!("{prefix}{g}")).map_or(0, |m| m.len()))
                        .sum();
                    emit(&json!({"ev": "count", "total": total}));
                }
                "stats" => {
                    let s = node.stats();
                    let mut v = json!({
                        "ev": "stats",
                        "connections": s.connections, "authenticated": s.authenticated,
                        "peers": node.connected_nodes().len(), "known_nodes": s.known_nodes,
                        "groups": s.groups, "members": s.members, "local_ports": s.local_ports,
                        "frames_in": s.frames_in, "frames_out": s.frames_out,
                        "bytes_in": s.bytes_in, "bytes_out": s.bytes_out, "cpu_ns": cpu_ns(),
                        "messages_sent": s.messages_sent, "messages_received": s.messages_received,
                        "messages_dropped": s.messages_dropped,
                        "closed": closed(&s),
                    });
                    if let (Some(o), Value::Object(m)) = (v.as_object_mut(), memory_kib("self")) {
                        o.extend(m);
                    }
                    emit(&v);
                }
                "sink" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let delay = Duration::from_micros(get_u64(&cmd, "delay_us").unwrap_or(0));
                    let (id, counts, task) = sink(&node, delay);
                    sinks.insert(key, counts);
                    tasks.push(task);
                    emit(&json!({"ev": "sink_ready", "key": key, "port": port_json(&id)}));
                }
                "sink_wait" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let counts = sinks.get(&key).cloned().unwrap_or_default();
                    let expect = get_u64(&cmd, "expect").unwrap_or(0);
                    let idle = Duration::from_millis(get_u64(&cmd, "idle_ms").unwrap_or(1000));
                    sink_wait(counts.clone(), expect, idle).await;
                    let c = &counts;
                    emit(&json!({
                        "ev": "sunk", "key": key,
                        "received": c.received.load(Ordering::Relaxed),
                        "bytes": c.bytes.load(Ordering::Relaxed),
                        "first_t": c.first_t.load(Ordering::Relaxed),
                        "last_t": c.last_t.load(Ordering::Relaxed),
                        "out_of_order": c.out_of_order.load(Ordering::Relaxed),
                    }));
                }
                "blast" => {
                    let to = port_of(&cmd, "to")?;
                    let count = get_u64(&cmd, "count").unwrap_or(0);
                    let size = get_usize(&cmd, "size");
                    let port = node.open_port();
                    if cmd.get("background").and_then(Value::as_bool) == Some(true) {
                        // Sends on while commands are served; reports
                        // when done (ended at exit).
                        tasks.push(rt::spawn::<R, _>(async move {
                            emit(&blast(&port, &to, count, size).await);
                        }));
                        emit(&json!({"ev": "blast_started"}));
                    } else {
                        emit(&blast(&port, &to, count, size).await);
                        // Kept open until exit, like the sinks.
                        senders.push(port);
                    }
                }
                "echo" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let mut port = node.open_port();
                    let id = port.id().clone();
                    tasks.push(rt::spawn::<R, _>(async move {
                        while let Some(m) = port.recv().await {
                            if let Some(from) = &m.from {
                                // A failed reply shows as a lost round trip.
                                let _ = port.send(from, &m.payload).await;
                            }
                        }
                    }));
                    emit(&json!({"ev": "echo_ready", "key": key, "port": port_json(&id)}));
                }
                "rtt" => {
                    let to = port_of(&cmd, "to")?;
                    let iters = get_usize(&cmd, "iters");
                    let warmup = get_usize(&cmd, "warmup");
                    let size = get_usize(&cmd, "size");
                    let limit = Duration::from_millis(get_u64(&cmd, "limit_ms").unwrap_or(20_000));
                    let round = rtt(node.clone(), to, (iters, warmup), size, limit);
                    let v = rt::spawn::<R, _>(round).join().await.unwrap_or_else(
                        || json!({"ev": "error", "error": "the rtt task panicked"}),
                    );
                    emit(&v);
                }
                "ping" => emit(&json!({"ev": "pong", "t": sys_ns()})),
                "exit" => break,
                other => {
                    emit(&json!({"ev": "error", "error": format!("unknown command {other:?}")}))
                }
            }
        }
        drop(monitors);
        drop(tasks);
        drop(senders);
        node.shutdown().await;
        Ok(())
    })
}

/// Starts a thread that polls the node's view every `poll` until each asked
/// condition holds (reported once each) or the watch times out.
fn watch<R: Rt>(node: &Arc<Node<R>>, cmd: &Value, poll: Duration) -> Result<(), String> {
    let tag = get_str(cmd, "tag").to_owned();
    let mut want_members = get_u64(cmd, "members").and_then(|n| usize::try_from(n).ok());
    let mut want_peers = get_u64(cmd, "peers").and_then(|n| usize::try_from(n).ok());
    let timeout = Duration::from_millis(get_u64(cmd, "timeout_ms").unwrap_or(30_000));
    let node = node.clone();
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(want) = want_members {
                    if node.stats().members == want {
                        emit(
                            &json!({"ev": "reached", "tag": tag, "what": "members", "t": sys_ns()}),
                        );
                        want_members = None;
                    }
                }
                if let Some(want) = want_peers {
                    if node.connected_nodes().len() == want {
                        emit(&json!({"ev": "reached", "tag": tag, "what": "peers", "t": sys_ns()}));
                        want_peers = None;
                    }
                }
                if want_members.is_none() && want_peers.is_none() {
                    return;
                }
                if Instant::now() > deadline {
                    let s = node.stats();
                    emit(&json!({
                        "ev": "watch_timeout", "tag": tag,
                        "members": s.members,
                        "peers": node.connected_nodes().len(),
                        "connections": s.connections,
                        "inbound_refused": s.inbound_refused,
                        "closed": closed(&s),
                    }));
                    return;
                }
                std::thread::sleep(poll);
            }
        })
        .map(drop)
        .map_err(|e| e.to_string())
}
