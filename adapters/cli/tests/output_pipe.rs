//! A reader that goes away (`groupmesh node ... | head -1`) ends the node
//! quietly: no panic, no backtrace, exit 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{secret_file, Proc, WAIT};

#[test]
fn a_closed_stdout_ends_the_node_quietly() {
    let secret = secret_file();
    let mut cmd = Proc::command("quiet", None, &secret);
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the groupmesh binary runs");
    let stdout = child.stdout.take().expect("piped");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a first line");
    let addr = serde_json::from_str::<serde_json::Value>(&first).expect("JSON")["addrs"][0]
        .as_str()
        .expect("an address")
        .to_string();
    // The reader is gone (the pipe's read end closed, as by `head -1`). A
    // peer joining makes the node print again.
    let _peer = Proc::start("peer", Some(&addr), &secret);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node did not end within {WAIT:?} of its stdout closing");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().expect("its stderr");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
}
