//! What the multi-process tests share: `groupmesh` processes on loopback
//! whose JSON lines are read by a thread, bounded waits, a secret file.
//! Every process is killed by its pid when its guard drops.

#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// One `groupmesh node` process and the JSON lines it prints.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) lines: Receiver<Value>,
    /// The latest members of each watched group, from its group events.
    pub(crate) members: std::collections::BTreeMap<String, BTreeSet<String>>,
    pub(crate) addr: String,
    /// Its incarnation, from its "started" line.
    pub(crate) incarnation: u64,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn secret_file() -> tempfile_path::Path {
    tempfile_path::Path::new(b"multi-process test secret\n")
}

/// A tiny temp-file helper (no extra crate): removed on drop.
pub(crate) mod tempfile_path {
    pub(crate) struct Path(pub(crate) std::path::PathBuf);
    impl Path {
        pub(crate) fn new(contents: &[u8]) -> Path {
            let p = std::env::temp_dir().join(format!(
                "groupmesh-secret-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ));
            std::fs::write(&p, contents).expect("temp dir is writable");
            Path(p)
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Proc {
    pub(crate) fn start(id: &str, seed: Option<&str>, secret: &tempfile_path::Path) -> Proc {
        Proc::launch(Proc::command(id, seed, secret))
    }

    /// The command line of a `groupmesh node --json` registering in `svc`,
    /// with fast keepalives (add arguments before launching it).
    pub(crate) fn command(id: &str, seed: Option<&str>, secret: &tempfile_path::Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_groupmesh"));
        cmd.args(["node", "--id", id, "--bind", "127.0.0.1:0", "--json"])
            .args([
                "--register",
                "svc",
                "--ping-ms",
                "100",
                "--keepalive-ms",
                "500",
            ])
            .arg("--secret-file")
            .arg(&secret.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(s) = seed {
            cmd.args(["--seed", s]);
        }
        cmd
    }

    /// Runs `cmd` (stdout piped) and waits for its "started" line.
    pub(crate) fn launch(mut cmd: Command) -> Proc {
        let mut child = cmd.spawn().expect("the groupmesh binary runs");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        let mut p = Proc {
            child,
            lines,
            members: Default::default(),
            addr: String::new(),
            incarnation: 0,
        };
        let started = p.next_where(|v| v["event"] == "started");
        p.addr = started["addrs"][0]
            .as_str()
            .expect("an address")
            .to_string();
        p.incarnation = started["incarnation"].as_u64().expect("an incarnation");
        p
    }

    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub(crate) fn absorb(&mut self, v: &Value) {
        if v["event"] == "group" {
            let group = v["group"].as_str().unwrap_or_default().to_string();
            let set = v["members"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            self.members.insert(group, set);
        }
    }

    /// Reads lines until one matches (bounded by WAIT).
    pub(crate) fn next_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no matching line within {WAIT:?}"));
            self.absorb(&v);
            if pred(&v) {
                return v;
            }
        }
    }

    /// Waits until the members of `svc` satisfy `pred`; returns how long it took.
    pub(crate) fn until_members(&mut self, pred: impl Fn(&BTreeSet<String>) -> bool) -> Duration {
        let start = Instant::now();
        let deadline = start + WAIT;
        while !pred(self.members.get("svc").unwrap_or(&BTreeSet::new())) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.absorb(&v),
                Err(_) => panic!(
                    "members of svc never matched within {WAIT:?}; last: {:?}",
                    self.members.get("svc")
                ),
            }
        }
        start.elapsed()
    }
}

pub(crate) fn signal(p: &Proc, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &p.pid()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {}", p.pid());
}

pub(crate) fn nodes_of(members: &BTreeSet<String>) -> BTreeSet<String> {
    members
        .iter()
        .filter_map(|m| m.split('#').next().map(String::from))
        .collect()
}

pub(crate) fn mesh(n: usize, secret: &tempfile_path::Path) -> Vec<Proc> {
    let mut procs = vec![Proc::start("p0", None, secret)];
    let seed = procs[0].addr.clone();
    for i in 1..n {
        procs.push(Proc::start(&format!("p{i}"), Some(&seed), secret));
    }
    for p in &mut procs {
        p.until_members(|m| m.len() == n);
    }
    procs
}

/// A port of the JSON output, `node#n@incarnation`, split into `node#n`
/// and the incarnation (`None` if it has none: a bug of the output).
pub(crate) fn split_port(v: &Value) -> (String, Option<u64>) {
    let s = v.as_str().unwrap_or_default();
    match s.rsplit_once('@') {
        Some((name, inc)) => (name.to_string(), inc.parse().ok()),
        None => (s.to_string(), None),
    }
}

/// `node#n` of a JSON port.
pub(crate) fn short(v: &Value) -> String {
    split_port(v).0
}

/// Runs `groupmesh` with `args` to its end (killed past WAIT); returns its
/// exit code, stdout and stderr.
pub(crate) fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_groupmesh"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the groupmesh binary runs");
    let started = Instant::now();
    while child.try_wait().expect("waitable").is_none() {
        if started.elapsed() > WAIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("its output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The JSON lines of some output.
pub(crate) fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A loopback address nothing listens on (bound by the OS, then closed).
pub(crate) fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback binds");
    let addr = listener.local_addr().expect("bound").to_string();
    drop(listener);
    addr
}
