//! Many seeds, one run each, and replaying the one that failed.

use std::panic::{self, AssertUnwindSafe};

use crate::trace::init_tracing;

/// Runs `run(seed)` for many seeds and reports the first failure with a replay
/// command. `SIM_SEED=n` runs only seed `n` (with `SIM_TRACE=1`, logging);
/// `<count_var>=k` (e.g. `SIM_SEEDS=100000`) runs seeds `0..k` instead of
/// `0..default_count` (from `SIM_SEED_START` if set); `SIM_KEEP_GOING=1` runs
/// them all and lists the failing ones with the first line of their failure.
pub fn run_seeds(test: &str, count_var: &str, default_count: u64, run: impl Fn(u64)) {
    init_tracing();
    let env = |k: &str| {
        std::env::var(k).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{k} is not a number"))
        })
    };
    let first = env("SIM_SEED_START").unwrap_or(0);
    let seeds: Vec<u64> = match env("SIM_SEED") {
        Some(s) => vec![s],
        None => (first..first + env(count_var).unwrap_or(default_count)).collect(),
    };
    // SIM_KEEP_GOING=1: run every seed, list the failures at the end.
    let keep_going = std::env::var_os("SIM_KEEP_GOING").is_some();
    if keep_going {
        panic::set_hook(Box::new(|_| {}));
    }
    let mut failed = Vec::new();
    for seed in seeds {
        let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| run(seed))) else {
            continue;
        };
        if keep_going {
            let msg = e
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| e.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            eprintln!("seed {seed}: {}", msg.lines().next().unwrap_or(""));
            failed.push(seed);
            continue;
        }
        eprintln!(
            "\n*** {test} failed with seed {seed}. Replay it with:\n\
             SIM_SEED={seed} cargo test {} {test} -- --nocapture\n\
             (add SIM_TRACE=1 for the core's debug log)\n",
            cargo_test_target()
        );
        panic::resume_unwind(e);
    }
    if keep_going {
        let _ = panic::take_hook();
    }
    assert!(
        failed.is_empty(),
        "{test}: {} seeds failed: {failed:?}",
        failed.len()
    );
}

/// The `cargo test` arguments that select the running test binary, e.g.
/// `-p groupmesh-core --test simulation`: cargo names the package in
/// `CARGO_PKG_NAME` when it runs a test, and an integration test's binary is
/// its name and a hash (`simulation-0123abcd`).
fn cargo_test_target() -> String {
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "<package>".into());
    let exe = std::env::current_exe().ok();
    let stem = exe.as_deref().and_then(std::path::Path::file_stem);
    let test = stem
        .and_then(std::ffi::OsStr::to_str)
        .and_then(|s| s.rsplit_once('-'))
        .map_or("<test>", |(name, _hash)| name);
    format!("-p {package} --test {test}")
}

/// The seeds a focused test loops over: `default`, or only `SIM_SEED` when set.
pub fn seeds(default: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a number")],
        Err(_) => default.collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_replay_command_names_the_running_package_and_test_binary() {
        // This crate's unit tests run as the binary `groupmesh_sim-<hash>`.
        assert_eq!(
            super::cargo_test_target(),
            "-p groupmesh-sim --test groupmesh_sim"
        );
    }
}
