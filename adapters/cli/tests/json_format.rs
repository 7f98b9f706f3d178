//! The JSON lines: versioned, every port with its incarnation (so a
//! restart's delta is unambiguous), a failed dial with its reason, and the
//! README documenting every event.

mod common;

use std::collections::BTreeSet;

use common::{closed_port, secret_file, signal, split_port, Proc};
use serde_json::Value;

fn ports(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_restart_delta_names_each_port_with_its_incarnation() {
    let secret = secret_file();
    let mut p0 = Proc::start("p0", None, &secret);
    let seed = p0.addr.clone();
    let old = Proc::start("p1", Some(&seed), &secret);
    let old_port = format!("p1#1@{}", old.incarnation);
    p0.until_members(|m| m.contains(&old_port));
    // The old incarnation is frozen, its connection half-open: the new one
    // replaces it, in one delta that adds and removes a `p1#1`.
    signal(&old, "-STOP");
    let new = Proc::start("p1", Some(&seed), &secret);
    let new_port = format!("p1#1@{}", new.incarnation);
    let mut seen = Vec::new();
    let delta = loop {
        let v = p0.next_where(|_| true);
        assert_eq!(v["v"], 1, "{v}");
        seen.push(v.clone());
        if v["event"] == "group" && ports(&v["added"]).contains(&new_port) {
            break v;
        }
    };
    let (added, removed, members) = (
        ports(&delta["added"]),
        ports(&delta["removed"]),
        ports(&delta["members"]),
    );
    assert!(added.is_disjoint(&removed), "{delta}");
    assert!(removed.is_disjoint(&members), "{delta}");
    assert!(
        removed.contains(&old_port) || !members.contains(&old_port),
        "{delta}"
    );
    for p in ["added", "removed", "members"]
        .iter()
        .flat_map(|k| delta[k].as_array().cloned().unwrap_or_default())
    {
        assert!(split_port(&p).1.is_some(), "{p} has no incarnation");
    }
    // The reader saw the new incarnation up (after the old one down) first.
    let up = seen.iter().position(|v| {
        v["event"] == "node_up" && v["node"] == "p1" && v["incarnation"] == new.incarnation
    });
    assert!(
        up.is_some(),
        "no node_up of the new p1 before {delta}: {seen:?}"
    );
    signal(&old, "-KILL");
}

/// A survivor sees each restart of a node as one delta that swaps the old
/// port for the new. Before the node added its seeds after its
/// registrations, 2 of 16 restarts showed two: the new run's first
/// connection carried a snapshot without its port (the old port removed),
/// and the registration followed apart (the new port added).
#[test]
fn a_restart_swaps_the_old_port_for_the_new_in_one_delta() {
    let secret = secret_file();
    let mut p0 = Proc::start("p0", None, &secret);
    let seed = p0.addr.clone();
    let mut old = Proc::start("p1", Some(&seed), &secret);
    let mut old_port = format!("p1#1@{}", old.incarnation);
    p0.until_members(|m| m.contains(&old_port));
    for round in 0..6 {
        // Frozen, its connection half-open: the new run replaces it.
        signal(&old, "-STOP");
        let new = Proc::start("p1", Some(&seed), &secret);
        let new_port = format!("p1#1@{}", new.incarnation);
        let delta = p0.next_where(|v| {
            v["event"] == "group"
                && (ports(&v["added"]).contains(&new_port)
                    || ports(&v["removed"]).contains(&old_port))
        });
        assert!(
            ports(&delta["removed"]).contains(&old_port)
                && ports(&delta["added"]).contains(&new_port),
            "restart {round}: not one delta swapping {old_port} for {new_port}: {delta}"
        );
        signal(&old, "-KILL");
        (old, old_port) = (new, new_port);
    }
}

/// `--meta` travels with the registration: every node's group line gives
/// the member's metadata as the JSON it was, and a node's loss says why its
/// port left.
#[test]
fn metadata_and_removal_reasons_reach_every_node() {
    let secret = secret_file();
    let mut p0 = Proc::start("p0", None, &secret);
    let seed = p0.addr.clone();
    let mut cmd = Proc::command("p1", Some(&seed), &secret);
    cmd.args(["--meta", r#"{ "zone": "a", "weight": 3 }"#]);
    let p1 = Proc::launch(cmd);
    let p1_port = format!("p1#1@{}", p1.incarnation);
    let joined = p0.next_where(|v| v["event"] == "group" && ports(&v["added"]).contains(&p1_port));
    assert_eq!(
        joined["meta"][&p1_port],
        serde_json::json!({"zone": "a", "weight": 3}),
        "{joined}"
    );
    signal(&p1, "-KILL");
    let left = p0.next_where(|v| v["event"] == "group" && ports(&v["removed"]).contains(&p1_port));
    let reasons = left["reasons"].as_array().cloned().unwrap_or_default();
    assert_eq!(reasons.len(), 1, "{left}");
    assert!(
        reasons[0]
            .as_str()
            .is_some_and(|r| r.starts_with("node lost")),
        "{left}"
    );
}

#[test]
fn a_failed_dial_says_why() {
    let secret = secret_file();
    let nowhere = closed_port();
    let mut p = Proc::start("lonely", Some(&nowhere), &secret);
    let closed = p.next_where(|v| v["event"] == "connection_closed");
    assert_eq!(closed["addr"], nowhere.as_str(), "{closed}");
    assert_eq!(closed["dial_error"], "connection_refused", "{closed}");
    assert_eq!(
        closed["reason"], "dial failed: connection refused",
        "{closed}"
    );
}

#[test]
fn the_readme_shows_every_json_event_with_its_version() {
    let readme = include_str!("../../../README.md");
    let examples: Vec<Value> = readme
        .lines()
        .filter(|l| l.starts_with("{\"v\":"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let events: BTreeSet<&str> = examples
        .iter()
        .inspect(|v| assert_eq!(v["v"], 1, "{v}"))
        .filter_map(|v| v["event"].as_str())
        .collect();
    for kind in [
        "started",
        "registered",
        "group",
        "node_up",
        "node_down",
        "connection_closed",
        "inbound_refused",
        "lagged",
        "stopping",
        "stopped",
        "listening",
        "message",
        "replied",
        "reply_failed",
        "sent",
        "reply",
        "dropped",
        "members",
        "node",
    ] {
        assert!(events.contains(kind), "the README shows no {kind:?} line");
    }
}
