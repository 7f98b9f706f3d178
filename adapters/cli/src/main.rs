//! `groupmesh`: join a real mesh and watch it, serve or send messages, or
//! run a local demo.

// The doc comments of the argument structs are the `--help` text, written
// for a terminal: `<payload>` there is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod args;
mod demo;
mod listen_cmd;
mod messaging;
mod node_cmd;
mod notices;
mod order;
mod output;
mod query_cmd;
mod rt;
mod send_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use groupmesh_async_std::AsyncStd;
use groupmesh_smol::Smol;
use groupmesh_tokio::Tokio;

use crate::rt::{RuntimeName, Signals};

/// What `--help` says about logging, for every command.
const LOG_HELP: &str = "\
Logging: set GROUPMESH_LOG to a tracing filter to log to stderr (default: warn).
  GROUPMESH_LOG=warn   send buffer overflows, failed accepts (the default)
  GROUPMESH_LOG=info   also the node's start and stop, with its incarnation and addresses
  GROUPMESH_LOG=debug  also every connection: dialling, accepted, established, authenticated,
                       closed with its reason; dials that failed with the system's error;
                       nodes learned of, up, down and forgotten; messages dropped
                       (port closed, node not connected)
  GROUPMESH_LOG=groupmesh_driver=debug,groupmesh_core=debug   the same, by crate
Each line names the node (node{id=...}) and the connection (conn=connN).";

/// Service discovery across machines: a full mesh of nodes and named port groups.
#[derive(Parser, Debug)]
#[command(name = "groupmesh", version, about, after_help = LOG_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The async runtime the node runs on (tokio by default: see the README's runtime table).
    #[arg(long, global = true, value_enum, default_value_t = RuntimeName::default())]
    runtime: RuntimeName,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Join a mesh: register ports in groups, print group changes and node up/down.
    #[command(after_help = LOG_HELP)]
    Node(NodeArgs),
    /// Serve in a group: print every message received, reply "echo: <payload>".
    #[command(after_help = LOG_HELP)]
    Listen(listen_cmd::ListenArgs),
    /// Send one message to a member of a group and print its reply.
    #[command(after_help = LOG_HELP)]
    Send(send_cmd::SendArgs),
    /// Join, wait until the view has settled, print a group's members, leave.
    #[command(after_help = LOG_HELP)]
    Members(query_cmd::MembersArgs),
    /// Join, wait until the view has settled, print the mesh's nodes, leave.
    #[command(after_help = LOG_HELP)]
    Nodes(query_cmd::QueryArgs),
    /// Start a local mesh on loopback, show it converge, kill a node, show it vanish.
    #[command(after_help = LOG_HELP)]
    Demo(DemoArgs),
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// This node's id, unique in the mesh (1 to 64 bytes).
    #[arg(long, value_parser = args::node_id)]
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
    #[arg(long = "register", value_parser = args::group_name)]
    register: Vec<String>,
    /// Watch this group too (groups given to --register are watched anyway).
    #[arg(long = "monitor", value_parser = args::group_name)]
    monitor: Vec<String>,
    /// Metadata of every --register'ed port, as JSON (e.g. '{"zone":"a"}');
    /// every node lists it with the member. At most 1 KiB once compacted.
    #[arg(long, value_parser = args::json_meta, conflicts_with = "meta_file", requires = "register")]
    meta: Option<args::JsonMeta>,
    /// Like --meta, read from this file.
    #[arg(long, requires = "register")]
    meta_file: Option<PathBuf>,
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
    let cli = Cli::parse();
    init_logging();
    let result = match cli.runtime {
        RuntimeName::Tokio | RuntimeName::TokioMultiThread => {
            run::<Tokio>(cli.runtime, cli.command)
        }
        RuntimeName::Smol => run::<Smol>(cli.runtime, cli.command),
        RuntimeName::AsyncStd => run::<AsyncStd>(cli.runtime, cli.command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("groupmesh: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `command` on runtime `R`.
fn run<R: Signals>(flavour: RuntimeName, command: Command) -> Result<(), String> {
    R::block_on(flavour, async {
        match command {
            Command::Node(args) => node_cmd::run::<R>(args).await,
            Command::Listen(args) => listen_cmd::run::<R>(args).await,
            Command::Send(args) => send_cmd::run::<R>(args).await,
            Command::Members(args) => query_cmd::members::<R>(args).await,
            Command::Nodes(args) => query_cmd::nodes::<R>(args).await,
            Command::Demo(args) => demo::run::<R>(args).await,
        }
    })
}

/// Logs to stderr as `GROUPMESH_LOG` says (see [`LOG_HELP`]); `warn` when
/// unset, and when it cannot be read (then says so).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("GROUPMESH_LOG") {
        Err(_) => EnvFilter::new("warn"),
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("groupmesh: GROUPMESH_LOG={spec:?} is not a log filter ({e}); logging warnings only");
            EnvFilter::new("warn")
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
