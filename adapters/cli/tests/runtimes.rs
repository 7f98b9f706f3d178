//! `--runtime tokio|tokio-multi-thread|smol|async-std`: the same node on each runtime, one mesh.

mod common;

use common::{json_lines, run_to_end, secret_file, Proc};

const RUNTIMES: [&str; 4] = ["tokio", "tokio-multi-thread", "smol", "async-std"];

#[test]
fn nodes_on_each_runtime_form_one_mesh_and_a_query_on_each_sees_it() {
    let secret = secret_file();
    let mut procs: Vec<Proc> = Vec::new();
    for (i, rt) in RUNTIMES.iter().enumerate() {
        let seed = procs.first().map(|p| p.addr.clone());
        let mut cmd = Proc::command(&format!("{rt}-{i}"), seed.as_deref(), &secret);
        cmd.args(["--runtime", rt]);
        procs.push(Proc::launch(cmd));
    }
    for p in &mut procs {
        p.until_members(|m| m.len() == RUNTIMES.len());
    }
    let path = secret.0.to_str().expect("a UTF-8 temp path");
    for rt in RUNTIMES {
        let args = [
            "members",
            "--runtime",
            rt,
            "--seed",
            &procs[0].addr,
            "--secret-file",
            path,
            "--group",
            "svc",
            "--json",
        ];
        let (code, stdout, stderr) = run_to_end(&args);
        assert_eq!(code, Some(0), "{rt}: {stderr}");
        let lines = json_lines(&stdout);
        let members = lines[0]["members"].as_array().map_or(0, Vec::len);
        assert_eq!(members, RUNTIMES.len(), "{rt}: {stdout}");
    }
}

#[test]
fn an_unknown_runtime_is_refused_with_the_choices() {
    let (code, _, stderr) = run_to_end(&["members", "--runtime", "glommio"]);
    assert_eq!(code, Some(2), "{stderr}");
    for rt in RUNTIMES {
        assert!(stderr.contains(rt), "{stderr}");
    }
}
