//! `groupmesh members` and `groupmesh nodes`: one-shot answers for scripts.

mod common;

use std::collections::BTreeSet;

use common::{closed_port, json_lines, mesh, run_to_end, secret_file, short};
use serde_json::Value;

#[test]
fn members_prints_the_settled_members_of_a_group_and_exits_0() {
    let secret = secret_file();
    let procs = mesh(3, &secret);
    let expected = procs[0].members.get("svc").cloned().unwrap_or_default();
    let path = secret.0.to_str().expect("a UTF-8 temp path");
    let seed = procs[1].addr.as_str();
    let base = [
        "members",
        "--seed",
        seed,
        "--secret-file",
        path,
        "--group",
        "svc",
    ];

    let (code, stdout, stderr) = run_to_end(&[&base[..], &["--json"]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["v"], 1);
    assert_eq!(lines[0]["event"], "members");
    let got: BTreeSet<String> = lines[0]["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(got, expected);

    let (code, stdout, stderr) = run_to_end(&base);
    assert_eq!(code, Some(0), "{stderr}");
    let text: BTreeSet<&str> = stdout.lines().collect();
    let short_expected: BTreeSet<String> = expected
        .iter()
        .map(|p| short(&Value::String(p.clone())))
        .collect();
    assert_eq!(
        text,
        short_expected.iter().map(String::as_str).collect(),
        "{stdout}"
    );
}

#[test]
fn nodes_lists_every_node_with_its_addresses_and_incarnation() {
    let secret = secret_file();
    let procs = mesh(3, &secret);
    let path = secret.0.to_str().expect("a UTF-8 temp path");
    let (code, stdout, stderr) = run_to_end(&[
        "nodes",
        "--seed",
        &procs[2].addr,
        "--secret-file",
        path,
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines = json_lines(&stdout);
    assert_eq!(lines.len(), 3, "{stdout}");
    for (i, p) in procs.iter().enumerate() {
        let line = lines
            .iter()
            .find(|v| v["node"] == format!("p{i}").as_str())
            .unwrap_or_else(|| panic!("no p{i} in {stdout}"));
        assert_eq!(line["event"], "node");
        assert_eq!(line["up"], true, "{line}");
        assert_eq!(line["incarnation"], p.incarnation, "{line}");
        assert!(
            line["addrs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| *x == p.addr.as_str())),
            "{line}"
        );
    }
}

#[test]
fn members_exits_1_with_a_clear_message_when_nothing_answers() {
    let secret = secret_file();
    let path = secret.0.to_str().expect("a UTF-8 temp path");
    let nowhere = closed_port();
    for command in ["members", "nodes"] {
        let mut args = vec![command, "--seed", &nowhere, "--secret-file", path];
        args.extend(["--timeout-ms", "500"]);
        if command == "members" {
            args.extend(["--group", "svc"]);
        }
        let (code, stdout, stderr) = run_to_end(&args);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("within 500 ms") && stderr.contains("connection refused"),
            "{stderr}"
        );
    }
}
