//! Every argument is checked before a node starts, and an error names the
//! flag the user typed; `--help` says how to log.

mod common;

use common::{run_to_end, secret_file, tempfile_path};

#[test]
fn a_bad_argument_is_refused_before_starting_and_names_its_flag() {
    let secret = secret_file();
    let empty = tempfile_path::Path::new(b"");
    let good = secret.0.to_str().expect("a UTF-8 temp path");
    let long = "x".repeat(256);
    let fat = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1100));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--register", "g", "--meta", "{not json"], "--meta"),
        (vec!["--register", "g", "--meta", &fat], "--meta"),
        (
            vec!["--register", "g", "--meta-file", "/nonexistent/meta.json"],
            "--meta-file",
        ),
        (vec!["--register", ""], "--register"),
        (vec!["--register", &long], "--register"),
        (vec!["--monitor", ""], "--monitor"),
        (vec!["--ping-ms", "0"], "--ping-ms"),
        (
            vec!["--ping-ms", "500", "--keepalive-ms", "100"],
            "--keepalive-ms",
        ),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["node", "--id", "a", "--bind", "127.0.0.1:0", "--json"];
        args.extend(["--secret-file", good]);
        args.extend(&extra);
        let (code, stdout, stderr) = run_to_end(&args);
        assert_ne!(code, Some(0), "{extra:?} was accepted");
        assert!(stderr.contains(flag), "{extra:?}: {stderr}");
        assert!(
            !stdout.contains("started"),
            "{extra:?} started a node: {stdout}"
        );
    }
    let path = empty.0.to_str().expect("a UTF-8 temp path");
    for args in [
        vec![
            "node",
            "--id",
            "a",
            "--bind",
            "127.0.0.1:0",
            "--secret-file",
            path,
        ],
        vec![
            "node",
            "--id",
            "",
            "--bind",
            "127.0.0.1:0",
            "--secret-file",
            good,
        ],
        vec![
            "listen",
            "--group",
            "",
            "--bind",
            "127.0.0.1:0",
            "--secret-file",
            good,
        ],
    ] {
        let (code, stdout, stderr) = run_to_end(&args);
        assert_ne!(code, Some(0), "{args:?} was accepted");
        let flag = if args.contains(&path) {
            "--secret-file"
        } else if args.contains(&"--id") {
            "--id"
        } else {
            "--group"
        };
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(!stdout.contains("listening"), "{args:?}: {stdout}");
    }
}

#[test]
fn help_says_how_to_log_with_groupmesh_log() {
    for args in [
        vec!["--help"],
        vec!["node", "--help"],
        vec!["members", "--help"],
    ] {
        let (code, stdout, _) = run_to_end(&args);
        assert_eq!(code, Some(0));
        assert!(stdout.contains("GROUPMESH_LOG=debug"), "{args:?}: {stdout}");
    }
}
