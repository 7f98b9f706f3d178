//! Multi-process tests: real `groupmesh node` processes on loopback, killed
//! with SIGKILL, frozen with SIGSTOP and thawed with SIGCONT, restarted with
//! the same id; `groupmesh listen` and `groupmesh send` exchanging a request
//! and its response. Every wait is bounded, and every process is killed by
//! its pid when its guard drops, whatever the test's outcome.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{mesh, nodes_of, secret_file, short, signal, tempfile_path, Proc, WAIT};
use serde_json::Value;

#[test]
fn a_killed_process_vanishes_from_every_other_node() {
    let secret = secret_file();
    let mut procs = mesh(4, &secret);
    let victim = procs.pop().expect("four");
    signal(&victim, "-KILL");
    for p in &mut procs {
        let took = p.until_members(|m| !nodes_of(m).contains("p3") && m.len() == 3);
        assert!(took < WAIT);
    }
    drop(victim);
}

#[test]
fn a_stopped_process_vanishes_after_the_keepalive_timeout_and_returns_when_continued() {
    let secret = secret_file();
    let mut procs = mesh(3, &secret);
    let frozen = procs.pop().expect("three");
    signal(&frozen, "-STOP");
    let start = Instant::now();
    for p in &mut procs {
        p.until_members(|m| !nodes_of(m).contains("p2"));
    }
    let detected = start.elapsed();
    assert!(
        detected >= Duration::from_millis(400),
        "a frozen node is only detected by the keepalive timeout (500 ms), not sooner: {detected:?}"
    );
    signal(&frozen, "-CONT");
    for p in &mut procs {
        p.until_members(|m| nodes_of(m).contains("p2") && m.len() == 3);
    }
    drop(frozen);
}

#[test]
fn a_restarted_process_leaves_no_stale_port() {
    let secret = secret_file();
    let mut procs = mesh(3, &secret);
    let old = procs.pop().expect("three");
    let seed = procs[0].addr.clone();
    signal(&old, "-KILL");
    drop(old);
    for p in &mut procs {
        p.until_members(|m| m.len() == 2);
    }
    let _new = Proc::start("p2", Some(&seed), &secret);
    for p in &mut procs {
        // The new incarnation's port numbering starts again at #1: same text,
        // a new port; what matters is exactly one p2 port, listed once.
        p.until_members(|m| m.len() == 3 && m.iter().filter(|x| x.starts_with("p2#")).count() == 1);
    }
}

#[test]
fn a_wrong_secret_is_refused_with_a_visible_reason() {
    let secret = secret_file();
    let mut good = Proc::start("good", None, &secret);
    let wrong = tempfile_path::Path::new(b"another secret");
    let seed = good.addr.clone();
    let mut bad = Proc::start("bad", Some(&seed), &wrong);
    let refused = bad.next_where(|v| v["event"] == "connection_closed");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("authentication"),
        "{refused}"
    );
    let seen = good.next_where(|v| v["event"] == "connection_closed");
    assert!(
        seen["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("authentication"),
        "{seen}"
    );
    assert_eq!(good.members.get("svc").map(|m| m.len()), Some(1));
}

#[test]
fn listen_and_send_processes_exchange_a_request_and_its_response() {
    let secret = secret_file();
    let mut listen = Command::new(env!("CARGO_BIN_EXE_groupmesh"));
    listen
        .args([
            "listen",
            "--id",
            "L",
            "--bind",
            "127.0.0.1:0",
            "--group",
            "echo",
        ])
        .args(["--json", "--ping-ms", "100", "--keepalive-ms", "500"])
        .arg("--secret-file")
        .arg(&secret.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut listener = Proc::launch(listen);
    let serving = listener.next_where(|v| v["event"] == "listening");
    assert_eq!(short(&serving["port"]), "L#1");

    let started = Instant::now();
    let mut send = Command::new(env!("CARGO_BIN_EXE_groupmesh"))
        .args([
            "send",
            "--id",
            "S",
            "--seed",
            &listener.addr,
            "--group",
            "echo",
        ])
        .args(["--json", "--timeout-ms", "5000"])
        .arg("--secret-file")
        .arg(&secret.0)
        .arg("hello over tcp")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the groupmesh binary runs");
    let status = loop {
        if let Some(status) = send.try_wait().expect("waitable") {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = send.kill();
            let _ = send.wait();
            panic!("groupmesh send did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = send.wait_with_output().expect("its output");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply = lines
        .iter()
        .find(|v| v["event"] == "reply")
        .unwrap_or_else(|| panic!("no reply line in {lines:?}"));
    assert_eq!(short(&reply["from"]), "L#1");
    assert_eq!(reply["payload"], "echo: hello over tcp");
    assert!(reply["rtt_ms"]
        .as_f64()
        .is_some_and(|ms| ms < WAIT.as_secs_f64() * 1000.0));

    let got = listener.next_where(|v| v["event"] == "message");
    assert_eq!(short(&got["from"]), "S#1");
    assert_eq!(got["payload"], "hello over tcp");
    let replied = listener.next_where(|v| v["event"] == "replied");
    assert_eq!(short(&replied["to"]), "S#1");
    eprintln!(
        "send ran for {:?}; round trip {} ms",
        started.elapsed(),
        reply["rtt_ms"]
    );
}
