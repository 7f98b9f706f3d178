//! The order `groupmesh node` prints in: a node is up before its members
//! appear, and our own registrations are in our first view.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{secret_file, signal, split_port, Proc, WAIT};
use serde_json::Value;

/// Reads `p`'s lines until `done`; checks that every group change adds
/// only ports of nodes already shown up (or of `p` itself).
fn check_up_before_members(p: &mut Proc, me: &str, done: impl Fn(&Value) -> bool) {
    let mut up = BTreeSet::new();
    check_up_with(p, me, &mut up, done);
}

/// As [`check_up_before_members`], with the nodes known up so far in `up`.
fn check_up_with(
    p: &mut Proc,
    me: &str,
    up: &mut BTreeSet<(String, u64)>,
    done: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = p.lines.recv_timeout(left).expect("lines within WAIT");
        p.absorb(&v);
        match v["event"].as_str() {
            Some("node_up") => {
                let node = v["node"].as_str().unwrap_or_default().to_string();
                up.insert((node, v["incarnation"].as_u64().unwrap_or_default()));
            }
            Some("node_down") => {
                let node = v["node"].as_str().unwrap_or_default().to_string();
                up.remove(&(node, v["incarnation"].as_u64().unwrap_or_default()));
            }
            Some("group") => {
                for port in v["added"].as_array().cloned().unwrap_or_default() {
                    let (name, inc) = split_port(&port);
                    let node = name.rsplit_once('#').map_or("", |(n, _)| n).to_string();
                    let inc = inc.expect("a port with its incarnation");
                    assert!(
                        node == me || up.contains(&(node.clone(), inc)),
                        "{port} listed before node_up of {node}: {v}"
                    );
                }
            }
            _ => {}
        }
        if done(&v) {
            return;
        }
    }
}

#[test]
fn a_new_peer_is_up_before_its_members_appear() {
    let secret = secret_file();
    let mut p0 = Proc::start("p0", None, &secret);
    let seed = p0.addr.clone();
    let _peers: Vec<Proc> = (1..4)
        .map(|i| Proc::start(&format!("p{i}"), Some(&seed), &secret))
        .collect();
    check_up_before_members(&mut p0, "p0", |v| {
        v["event"] == "group" && v["members"].as_array().is_some_and(|m| m.len() == 4)
    });
}

#[test]
fn a_restarted_node_lists_its_own_port_in_its_first_view() {
    let secret = secret_file();
    let mut mesh: Vec<Proc> = vec![Proc::start("p0", None, &secret)];
    let seed = mesh[0].addr.clone();
    for i in 1..3 {
        mesh.push(Proc::start(&format!("p{i}"), Some(&seed), &secret));
    }
    for p in &mut mesh {
        p.until_members(|m| m.len() == 3);
    }
    let old = mesh.pop().expect("three");
    signal(&old, "-KILL");
    drop(old);
    let mut new = Proc::start("p2", Some(&seed), &secret);
    let own = new.next_where(|v| v["event"] == "registered")["port"].clone();
    let first = new.next_where(|v| v["event"] == "group");
    let members = first["members"].as_array().cloned().unwrap_or_default();
    assert!(members.contains(&own), "first view {first} lacks {own}");
    // And the seed's members follow their nodes' node_up.
    check_up_before_members(&mut new, "p2", |v| {
        v["event"] == "group" && v["members"].as_array().is_some_and(|m| m.len() == 3)
    });
    // The others see the new incarnation up before its port.
    check_up_before_members(&mut mesh[0], "p0", |v| {
        v["event"] == "group"
            && v["added"]
                .as_array()
                .is_some_and(|a| a.iter().any(|p| split_port(p).1 == Some(new.incarnation)))
    });
}

#[test]
fn a_node_that_comes_back_is_shown_down_then_up_again() {
    let secret = secret_file();
    let mut p0 = Proc::start("p0", None, &secret);
    let p1 = Proc::start("p1", Some(&p0.addr.clone()), &secret);
    let mut up = BTreeSet::new();
    let two =
        |v: &Value| v["event"] == "group" && v["members"].as_array().is_some_and(|m| m.len() == 2);
    check_up_with(&mut p0, "p0", &mut up, two);
    // Frozen past the keepalive timeout, then thawed: the same incarnation
    // goes down, and comes up again before its port is listed again.
    signal(&p1, "-STOP");
    check_up_with(&mut p0, "p0", &mut up, |v| {
        v["event"] == "node_down" && v["node"] == "p1"
    });
    signal(&p1, "-CONT");
    check_up_with(&mut p0, "p0", &mut up, two);
    assert!(up.contains(&("p1".to_string(), p1.incarnation)), "{up:?}");
}
