//! `groupmesh-bench`: benchmarks of groupmesh over real TCP on loopback, one
//! node per OS process.
//!
//! The coordinator (this process) starts N copies of itself as hidden
//! `worker`s, each running one node on smol, and drives them over stdin/stdout
//! with JSON lines (see `worker.rs`). Scenarios: `converge`, `latency`,
//! `loss`, `memory` (and `all`). Each prints a table, or one JSON object per
//! scenario with `--json`. Results and method: `docs/BENCHMARKS.md`.

mod cluster;
mod report;
mod scenarios;
mod worker;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Benchmarks of groupmesh: separate node processes on loopback.
#[derive(Parser, Debug)]
#[command(name = "groupmesh-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Cold mesh formation with registrations, then warm registrations and their removal.
    Converge(ConvergeArgs),
    /// Register/unregister/port-drop on node A to the delta at node B, p50/p99.
    Latency(LatencyArgs),
    /// A node killed with SIGKILL or frozen with SIGSTOP: time until every survivor drops its members.
    Loss(LossArgs),
    /// Resident memory per node process, idle and with N*M members.
    Memory(MemoryArgs),
    /// Every scenario with its defaults.
    All(Common),
    /// One node driven over stdin/stdout (used by the coordinator).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options of every scenario.
#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    json: bool,
    /// How often a worker checks its view while waiting for a condition (µs).
    #[arg(long, default_value_t = 500)]
    poll_us: u64,
    /// Longest wait for any single step (seconds).
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct ConvergeArgs {
    /// Worker processes (nodes).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(2..=200))]
    nodes: u16,
    /// Ports each node registers (one registration each).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Groups the ports are spread over (port i in group i % G).
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Fresh clusters to measure; the table shows the median run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Stop after the cold phase (for profiling it alone).
    #[arg(long, hide = true)]
    cold_only: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct LatencyArgs {
    /// Worker processes (nodes); A is n00, B the last unless --b.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(2..=200))]
    nodes: u16,
    /// Measured iterations of each operation.
    #[arg(long, default_value_t = 1000)]
    iters: usize,
    /// Unmeasured iterations first.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Index of node B (default: the last node, n{N-1}); A is n00.
    #[arg(long)]
    b: Option<usize>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct LossArgs {
    /// Worker processes (nodes); the last one is the victim.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(3..=200))]
    nodes: u16,
    /// Ports each node registers.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Groups the ports are spread over.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    /// Ping interval of the short-keepalive cases (ms).
    #[arg(long, default_value_t = 100)]
    short_ping_ms: u64,
    /// Keepalive timeout of the short-keepalive cases (ms).
    #[arg(long, default_value_t = 300)]
    short_keepalive_ms: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct MemoryArgs {
    /// Worker processes (nodes).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(2..=200))]
    nodes: u16,
    /// Ports each node registers.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Groups the ports are spread over.
    #[arg(long, default_value_t = 10)]
    groups: usize,
    #[command(flatten)]
    common: Common,
}

/// The hidden worker's options.
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkerArgs {
    #[arg(long)]
    id: String,
    #[arg(long, default_value_t = 1000)]
    ping_ms: u64,
    #[arg(long, default_value_t = 3000)]
    keepalive_ms: u64,
    #[arg(long, default_value_t = 500)]
    poll_us: u64,
}

/// Every scenario with its defaults and the given common options.
fn all(c: &Common) -> Result<(), String> {
    let mut common = vec![
        format!("--poll-us={}", c.poll_us),
        format!("--timeout-s={}", c.timeout_s),
    ];
    if c.json {
        common.push("--json".into());
    }
    for name in ["converge", "latency", "loss", "memory"] {
        let argv = ["groupmesh-bench".to_owned(), name.to_owned()]
            .into_iter()
            .chain(common.iter().cloned());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Converge(a) => scenarios::converge(&a)?,
            Command::Latency(a) => scenarios::latency(&a)?,
            Command::Loss(a) => scenarios::loss(&a)?,
            Command::Memory(a) => scenarios::memory(&a)?,
            _ => {}
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Worker(a) => worker::run(&a),
        Command::Converge(a) => scenarios::converge(&a),
        Command::Latency(a) => scenarios::latency(&a),
        Command::Loss(a) => scenarios::loss(&a),
        Command::Memory(a) => scenarios::memory(&a),
        Command::All(c) => all(&c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupmesh-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
