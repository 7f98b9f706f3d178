//! `groupmesh`: join a real mesh and watch it, serve or send messages, or
//! run a local demo.

mod demo;
mod listen_cmd;
mod messaging;
mod node_cmd;
mod output;
mod send_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Service discovery across machines: a full mesh of nodes and named port groups.
#[derive(Parser, Debug)]
#[command(name = "groupmesh", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Join a mesh: register ports in groups, print group changes and node up/down.
    Node(NodeArgs),
    /// Serve in a group: print every message received, reply "echo: <payload>".
    Listen(listen_cmd::ListenArgs),
    /// Send one message to a member of a group and print its reply.
    Send(send_cmd::SendArgs),
    /// Start a local mesh on loopback, show it converge, kill a node, show it vanish.
    Demo(DemoArgs),
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// This node's id, unique in the mesh (1 to 64 bytes).
    #[arg(long)]
    id: String,
    /// Address to listen on (repeatable); port 0 picks a free port.
    #[arg(long = "bind", required = true)]
    binds: Vec<SocketAddr>,
    /// Address of a node to join through (repeatable).
    #[arg(long = "seed")]
    seeds: Vec<SocketAddr>,
    /// File holding the shared secret (one trailing newline is ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// Open a port and register it in this group (repeatable).
    #[arg(long = "register")]
    register: Vec<String>,
    /// Watch this group too (groups given to --register are watched anyway).
    #[arg(long = "monitor")]
    monitor: Vec<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Ping a silent connection after this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    ping_ms: u64,
    /// Drop a connection silent for this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    keepalive_ms: u64,
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// How many nodes to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=64))]
    nodes: u16,
    /// Ports each node registers in the shared group.
    #[arg(long, default_value_t = 3)]
    ports: u16,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GROUPMESH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = smol::block_on(async {
        match cli.command {
            Command::Node(args) => node_cmd::run(args).await,
            Command::Listen(args) => listen_cmd::run(args).await,
            Command::Send(args) => send_cmd::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupmesh: {e}");
            ExitCode::FAILURE
        }
    }
}
