//! The coordinator's side: N worker processes, their command pipes, and the
//! events they print, each stamped on arrival with the coordinator's clock.
//!
//! Every worker is killed by its pid (SIGKILL via `Child::kill`) and reaped
//! when the [`Cluster`] drops, whatever the scenario's outcome; a worker also
//! exits by itself when its stdin closes (the coordinator died). Every wait
//! is bounded by the cluster's timeout.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use groupmesh_runtimes::RuntimeName;
use serde_json::{json, Value};

/// How a worker's node is configured.
#[derive(Debug, Clone)]
pub(crate) struct WorkerOpts {
    pub(crate) ping_ms: u64,
    pub(crate) keepalive_ms: u64,
    pub(crate) poll_us: u64,
    /// `NodeConfig::mailbox`, if not the driver's default.
    pub(crate) mailbox: Option<usize>,
    /// `limits.max_frame`, if not the core's default.
    pub(crate) max_frame: Option<usize>,
    /// The runtime the node runs on.
    pub(crate) runtime: RuntimeName,
}

/// One line from a worker.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    /// The worker's index.
    pub(crate) from: usize,
    /// When the coordinator read it.
    pub(crate) at: Instant,
    pub(crate) v: Value,
}

impl Msg {
    pub(crate) fn ev(&self) -> &str {
        self.v.get("ev").and_then(Value::as_str).unwrap_or_default()
    }

    pub(crate) fn str(&self, k: &str) -> &str {
        self.v.get(k).and_then(Value::as_str).unwrap_or_default()
    }

    pub(crate) fn u64(&self, k: &str) -> u64 {
        self.v.get(k).and_then(Value::as_u64).unwrap_or(0)
    }
}

pub(crate) struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    pub(crate) pid: u32,
    pub(crate) addr: String,
    /// Killed or stopped on purpose: its end of output is expected.
    dead: bool,
}

pub(crate) struct Cluster {
    pub(crate) workers: Vec<Worker>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    backlog: VecDeque<Msg>,
    pub(crate) timeout: Duration,
}

fn reader(from: usize, out: impl std::io::Read, tx: Sender<Msg>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { break };
        let at = Instant::now();
        let v =
            serde_json::from_str(&line).unwrap_or_else(|_| json!({"ev": "garbage", "line": line}));
        if tx.send(Msg { from, at, v }).is_err() {
            return;
        }
    }
    let _ = tx.send(Msg {
        from,
        at: Instant::now(),
        v: json!({"ev": "eof"}),
    });
}

impl Cluster {
    /// An empty cluster; add workers with [`spawn`](Self::spawn).
    pub(crate) fn new(timeout: Duration) -> Self {
        let (tx, rx) = channel();
        Cluster {
            workers: Vec::new(),
            rx,
            tx,
            backlog: VecDeque::new(),
            timeout,
        }
    }

    /// Starts `n` workers (ids `n00`, `n01`, ...) and waits until each listens.
    pub(crate) fn start(n: usize, opts: &WorkerOpts, timeout: Duration) -> Result<Self, String> {
        let mut c = Cluster::new(timeout);
        for _ in 0..n {
            c.spawn(opts)?;
        }
        let idx: Vec<usize> = (0..n).collect();
        c.wait_each(&idx, "workers ready", |m| m.ev() == "ready")?;
        Ok(c)
    }

    /// Starts one more worker; returns its index. Its `ready` line is left to
    /// the caller (or [`start`](Self::start)) to wait for.
    pub(crate) fn spawn(&mut self, opts: &WorkerOpts) -> Result<usize, String> {
        let idx = self.workers.len();
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.args(["worker", "--id", &format!("n{idx:02}")])
            .args(["--ping-ms", &opts.ping_ms.to_string()])
            .args(["--keepalive-ms", &opts.keepalive_ms.to_string()])
            .args(["--poll-us", &opts.poll_us.to_string()])
            .args(["--runtime", opts.runtime.name()]);
        if let Some(m) = opts.mailbox {
            cmd.args(["--mailbox", &m.to_string()]);
        }
        if let Some(f) = opts.max_frame {
            cmd.args(["--max-frame", &f.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning worker {idx}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let stdin = child.stdin.take();
        let pid = child.id();
        let tx = self.tx.clone();
        std::thread::Builder::new()
            .name(format!("read-{idx}"))
            .spawn(move || reader(idx, stdout, tx))
            .map_err(|e| e.to_string())?;
        self.workers.push(Worker {
            child,
            stdin,
            pid,
            addr: String::new(),
            dead: false,
        });
        Ok(idx)
    }

    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Sends one command line to worker `i`.
    pub(crate) fn send(&mut self, i: usize, cmd: &Value) -> Result<(), String> {
        let w = self.workers.get_mut(i).ok_or("no such worker")?;
        let stdin = w.stdin.as_mut().ok_or("worker's stdin closed")?;
        let mut line = cmd.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to worker {i}: {e}"))
    }

    /// Sends the same command to every worker in `idx`.
    pub(crate) fn send_each(&mut self, idx: &[usize], cmd: &Value) -> Result<(), String> {
        idx.iter().try_for_each(|&i| self.send(i, cmd))
    }

    fn check(&mut self, m: &Msg) -> Result<(), String> {
        match m.ev() {
            "ready" => {
                if let Some(w) = self.workers.get_mut(m.from) {
                    w.addr = m.str("addr").to_owned();
                }
                Ok(())
            }
            "eof" if !self.workers.get(m.from).is_some_and(|w| w.dead) => {
                Err(format!("worker {} exited unexpectedly", m.from))
            }
            "error" | "garbage" => Err(format!("worker {}: {}", m.from, m.v)),
            "watch_timeout" => Err(format!(
                "worker {} did not reach watch {:?}: {}",
                m.from,
                m.str("tag"),
                m.v
            )),
            _ => Ok(()),
        }
    }

    /// The next message satisfying `pred` (earlier unmatched ones are kept
    /// for later waits), within the timeout.
    pub(crate) fn wait(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&Msg) -> bool,
    ) -> Result<Msg, String> {
        if let Some(pos) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(pos).ok_or_else(|| "backlog".into());
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    self.check(&m)?;
                    if pred(&m) {
                        return Ok(m);
                    }
                    self.backlog.push_back(m);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{what}: nothing within {:?}", self.timeout))
                }
                Err(RecvTimeoutError::Disconnected) => return Err("all workers gone".into()),
            }
        }
    }

    /// One message satisfying `pred` from each worker in `idx`, in `idx` order.
    pub(crate) fn wait_each(
        &mut self,
        idx: &[usize],
        what: &str,
        pred: impl Fn(&Msg) -> bool,
    ) -> Result<Vec<Msg>, String> {
        let mut got: Vec<Option<Msg>> = vec![None; self.workers.len()];
        let mut left = idx.len();
        while left > 0 {
            let m = self.wait(what, |m| {
                idx.contains(&m.from) && got.get(m.from).is_some_and(Option::is_none) && pred(m)
            })?;
            let from = m.from;
            if let Some(slot) = got.get_mut(from) {
                *slot = Some(m);
            }
            left -= 1;
        }
        Ok(idx
            .iter()
            .filter_map(|&i| got.get_mut(i).and_then(Option::take))
            .collect())
    }

    /// Drops every message not yet waited for.
    pub(crate) fn clear_backlog(&mut self) -> Result<(), String> {
        while let Ok(m) = self.rx.try_recv() {
            self.check(&m)?;
        }
        self.backlog.clear();
        Ok(())
    }

    /// Seeds every worker but the first with the first's address and waits
    /// until every node is connected to all the others (mesh full).
    pub(crate) fn form_mesh(&mut self) -> Result<Duration, String> {
        let n = self.len();
        let all: Vec<usize> = (0..n).collect();
        let start = Instant::now();
        self.send_each(
            &all,
            &json!({"cmd": "watch", "tag": "mesh", "peers": n - 1,
                    "timeout_ms": self.timeout.as_millis()}),
        )?;
        let seed = json!({"cmd": "seed", "addr": self.workers[0].addr});
        self.send_each(&all[1..], &seed)?;
        self.wait_each(&all, "mesh full", |m| {
            m.ev() == "reached" && m.str("tag") == "mesh"
        })?;
        Ok(start.elapsed())
    }

    /// Sets a watch on each worker in `idx` and returns nothing; wait for
    /// `reached` with the same tag.
    pub(crate) fn watch(
        &mut self,
        idx: &[usize],
        tag: &str,
        members: Option<usize>,
        peers: Option<usize>,
    ) -> Result<(), String> {
        let mut cmd = json!({"cmd": "watch", "tag": tag, "timeout_ms": self.timeout.as_millis()});
        if let Some(m) = members {
            cmd["members"] = json!(m);
        }
        if let Some(p) = peers {
            cmd["peers"] = json!(p);
        }
        self.send_each(idx, &cmd)
    }

    /// The worker-stamped times (ns since the epoch) at which each worker in
    /// `idx` reached `what` of watch `tag`.
    pub(crate) fn reached(
        &mut self,
        idx: &[usize],
        tag: &str,
        what: &str,
    ) -> Result<Vec<u64>, String> {
        let msgs = self.wait_each(idx, &format!("watch {tag:?} ({what})"), |m| {
            m.ev() == "reached" && m.str("tag") == tag && m.str("what") == what
        })?;
        Ok(msgs.iter().map(|m| m.u64("t")).collect())
    }

    /// Asks every worker in `idx` for its stats.
    pub(crate) fn stats(&mut self, idx: &[usize]) -> Result<Vec<Value>, String> {
        self.send_each(idx, &json!({"cmd": "stats"}))?;
        let msgs = self.wait_each(idx, "stats", |m| m.ev() == "stats")?;
        Ok(msgs.into_iter().map(|m| m.v).collect())
    }

    /// Kills worker `i` with SIGKILL (`Child::kill`), without reaping it yet.
    pub(crate) fn kill(&mut self, i: usize) -> Result<(), String> {
        let w = self.workers.get_mut(i).ok_or("no such worker")?;
        w.dead = true;
        w.child
            .kill()
            .map_err(|e| format!("kill -9 {}: {e}", w.pid))
    }

    /// Sends `signal` (e.g. `STOP`) to worker `i` with the `kill` command.
    pub(crate) fn signal(&mut self, i: usize, signal: &str) -> Result<(), String> {
        let w = self.workers.get_mut(i).ok_or("no such worker")?;
        w.dead = true;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(w.pid.to_string())
            .status()
            .map_err(|e| format!("kill -{signal}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed: {status}", w.pid))
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for w in &mut self.workers {
            drop(w.stdin.take());
            let _ = w.child.kill();
        }
        for w in &mut self.workers {
            let _ = w.child.wait();
        }
    }
}
