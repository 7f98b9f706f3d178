//! `groupmesh-bench`: benchmarks of groupmesh over real TCP on loopback, one
//! node per OS process.
//!
//! The coordinator (this process) starts N copies of itself as hidden
//! `worker`s, each running one node on the chosen runtime (`--runtime`), and drives them over stdin/stdout
//! with JSON lines (see `worker.rs`). Scenarios: `converge`, `latency`,
//! `loss`, `memory`, `messages` (and `all`). Each prints a table, or one JSON object per
//! scenario with `--json`. Results and method: `docs/BENCHMARKS.md`.

mod baseline;
mod cluster;
mod report;
mod scenarios;
mod worker;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use groupmesh_runtimes::RuntimeName;

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
    /// Port messages between two node processes: one-way throughput (small and 64 KiB) and round trip.
    Messages(MessagesArgs),
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
    /// The async runtime the worker processes run their node on.
    #[arg(long, value_enum, default_value_t = RuntimeName::default())]
    runtime: RuntimeName,
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
    /// Bytes of metadata each registration carries (0: none).
    #[arg(long, default_value_t = 0)]
    meta_bytes: usize,
    /// Fresh clusters to measure; the table shows the median run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Stop after the cold phase (for profiling it alone).
    #[arg(long, hide = true)]
    cold_only: bool,
    /// Keepalive timeout of every node (ms): raise it when more processes
    /// than the machine can schedule within it share its cores.
    #[arg(long, default_value_t = scenarios::DEFAULT_KEEPALIVE_MS)]
    keepalive_ms: u64,
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
    /// Every node but A also monitors the group and keeps the time of each
    /// change: reports when the first, middle and last node knew.
    #[arg(long)]
    every_node: bool,
    /// Run the rounds inside A, as Erlang's bench does: A registers and
    /// unregisters a port and waits for B's monitor to tell it over the mesh
    /// (a message), with no coordinator in the loop.
    #[arg(long)]
    runner_on_a: bool,
    /// For the rounds under a flood: B's slow port sleeps this long after
    /// each message it reads (µs).
    #[arg(long, default_value_t = 1000)]
    flood_delay_us: u64,
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
    /// Bytes of metadata each registration carries (0: none).
    #[arg(long, default_value_t = 0)]
    meta_bytes: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct MessagesArgs {
    /// Small messages A sends to B in a loop of `Port::send(..).await`.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Payload of a small message (bytes, at least 8: a sequence number comes first).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(8..))]
    size: u64,
    /// Large messages A sends to B.
    #[arg(long, default_value_t = 10_000)]
    big_count: u64,
    /// Payload of a large message (bytes); the workers' `max_frame` is raised to fit it.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(8..=16_000_000))]
    big_size: u64,
    /// Measured round trips A → B's echo port → A.
    #[arg(long, default_value_t = 10_000)]
    iters: usize,
    /// Unmeasured round trips first.
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Messages a port's mailbox holds unread per sending node: its credit
    /// (default: the driver's, 256).
    #[arg(long)]
    mailbox: Option<usize>,
    /// Longest wait for a message once none has arrived for this long (ms): the end of a flood.
    #[arg(long, default_value_t = 1000)]
    idle_ms: u64,
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
    /// `NodeConfig::mailbox` (default: the driver's).
    #[arg(long)]
    mailbox: Option<usize>,
    /// `limits.max_frame` (default: the core's).
    #[arg(long)]
    max_frame: Option<usize>,
    /// The async runtime the node runs on.
    #[arg(long, value_enum, default_value_t = RuntimeName::default())]
    runtime: RuntimeName,
}

/// Every scenario with its defaults and the given common options.
fn all(c: &Common) -> Result<(), String> {
    let mut common = vec![
        format!("--poll-us={}", c.poll_us),
        format!("--timeout-s={}", c.timeout_s),
        format!("--runtime={}", c.runtime.name()),
    ];
    if c.json {
        common.push("--json".into());
    }
    for name in ["converge", "latency", "loss", "memory", "messages"] {
        let argv = ["groupmesh-bench".to_owned(), name.to_owned()]
            .into_iter()
            .chain(common.iter().cloned());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Converge(a) => scenarios::converge(&a)?,
            Command::Latency(a) => scenarios::latency(&a)?,
            Command::Loss(a) => scenarios::loss(&a)?,
            Command::Memory(a) => scenarios::memory(&a)?,
            Command::Messages(a) => scenarios::messages(&a)?,
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
        Command::Messages(a) => scenarios::messages(&a),
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
