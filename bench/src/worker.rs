//! The hidden `worker` subcommand: one groupmesh node (on smol) in its own
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
//! | `reg1 {key, group}` | `done {key, t}`: one new port registered; `t` read just before the call |
//! | `unreg1 {key}` | `done {key, t}`: that registration dropped (the port stays) |
//! | `drop1 {key}` | `done {key, t}`: that port dropped (ending its registrations) |
//! | `monitor {group}` | then `change {group, members, added, removed, t}` for every change |
//! | `watch {tag, members?, peers?, timeout_ms}` | `reached {tag, what, t}` once per condition (`members` = memberships in the view, `peers` = connected nodes), or `watch_timeout {tag, members, peers}` |
//! | `count {prefix, groups}` | `count {total}`: Σ `members(prefix{i}).len()` |
//! | `stats` | `stats {...}`: the node's counters and this process's memory |
//! | `ping` | `pong` |
//! | `exit` | the node shuts down and the process exits |
//!
//! End of stdin (the coordinator is gone) exits at once.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use groupmesh_smol::{Node, NodeConfig, Port, Registration};
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

/// CPU time of this process's live threads, in ns, from
/// `/proc/self/task/*/schedstat` (time on CPU, nanosecond precision).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
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

/// A port and, until it is ended, its registration.
struct Single {
    port: Port,
    reg: Option<Registration>,
}

pub(crate) fn run(args: &WorkerArgs) -> Result<(), String> {
    let mut cfg = NodeConfig::new(args.id.clone(), SECRET);
    cfg.bind.push(([127, 0, 0, 1], 0).into());
    cfg.timeouts.ping_interval = Duration::from_millis(args.ping_ms);
    cfg.timeouts.keepalive_timeout = Duration::from_millis(args.keepalive_ms);
    let poll = Duration::from_micros(args.poll_us.max(10));

    // Commands are read by a plain thread; end of input ends the process.
    let (tx, rx) = smol::channel::unbounded::<Value>();
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

    smol::block_on(async move {
        let node = Arc::new(Node::start(cfg).await.map_err(|e| e.to_string())?);
        emit(&json!({
            "ev": "ready",
            "id": args.id,
            "addr": node.local_addrs().first().map(ToString::to_string),
            "pid": std::process::id(),
        }));

        let mut batches: HashMap<String, Vec<(Port, Registration)>> = HashMap::new();
        let mut singles: HashMap<u64, Single> = HashMap::new();
        let mut monitors = Vec::new();

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
                    let names: Vec<String> = (0..groups).map(|g| format!("{prefix}{g}")).collect();
                    let start = Instant::now();
                    let batch = batches.entry(tag.clone()).or_default();
                    batch.reserve(ports);
                    for i in 0..ports {
                        let port = node.open_port();
                        let reg = node
                            .register(&names[i % groups], &port)
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
                    singles.insert(
                        key,
                        Single {
                            port,
                            reg: Some(reg),
                        },
                    );
                    emit(&json!({"ev": "done", "key": key, "t": t}));
                }
                "unreg1" => {
                    let key = get_u64(&cmd, "key").unwrap_or(0);
                    let reg = singles.get_mut(&key).and_then(|s| s.reg.take());
                    let t = sys_ns();
                    drop(reg);
                    emit(&json!({"ev": "done", "key": key, "t": t}));
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
                    let t = sys_ns();
                    drop(port);
                    emit(&json!({"ev": "done", "key": key, "t": t}));
                    drop(reg);
                }
                "monitor" => {
                    let group = get_str(&cmd, "group").to_owned();
                    let mut monitor = node.monitor(&group).map_err(|e| format!("monitor: {e}"))?;
                    monitors.push(smol::spawn(async move {
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
                        "closed": s.closed.iter().map(|(r, n)| format!("{r}: {n}")).collect::<Vec<_>>(),
                    });
                    if let (Some(o), Value::Object(m)) = (v.as_object_mut(), memory_kib("self")) {
                        o.extend(m);
                    }
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
        node.shutdown().await;
        Ok(())
    })
}

/// Starts a thread that polls the node's view every `poll` until each asked
/// condition holds (reported once each) or the watch times out.
fn watch(node: &Arc<Node>, cmd: &Value, poll: Duration) -> Result<(), String> {
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
                    emit(&json!({
                        "ev": "watch_timeout", "tag": tag,
                        "members": node.stats().members,
                        "peers": node.connected_nodes().len(),
                    }));
                    return;
                }
                std::thread::sleep(poll);
            }
        })
        .map(drop)
        .map_err(|e| e.to_string())
}
