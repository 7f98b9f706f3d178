//! What `listen` and `send` share: the mesh options, starting the node,
//! showing payloads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use groupmesh_driver::{Node, NodeConfig};
use serde_json::json;

use crate::args;
use crate::output::Printer;
use crate::rt::Rt;

/// How to join the mesh, and which group to use.
#[derive(clap::Args, Debug)]
pub(crate) struct MeshArgs {
    /// This node's id, unique in the mesh (1 to 64 bytes) [default: <command>-<pid>].
    #[arg(long, value_parser = args::node_id)]
    pub(crate) id: Option<String>,
    /// Address to listen on (repeatable); port 0 picks a free port.
    #[arg(long = "bind")]
    pub(crate) binds: Vec<SocketAddr>,
    /// Address of a node to join through (repeatable).
    #[arg(long = "seed")]
    pub(crate) seeds: Vec<SocketAddr>,
    /// File holding the shared secret (one trailing newline is ignored).
    #[arg(long)]
    pub(crate) secret_file: PathBuf,
    /// The group to serve in (listen) or to send to a member of (send).
    #[arg(long, value_parser = args::group_name)]
    pub(crate) group: String,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Ping a silent connection after this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub(crate) ping_ms: u64,
    /// Drop a connection silent for this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub(crate) keepalive_ms: u64,
}

/// A node's configuration from the flags, checked (each error names its
/// flag); `id` defaults to `<command>-<pid>`.
pub(crate) fn node_config(
    id: Option<&str>,
    command: &str,
    secret_file: &std::path::Path,
    ping_ms: u64,
    keepalive_ms: u64,
) -> Result<NodeConfig, String> {
    args::keepalive(ping_ms, keepalive_ms)?;
    let secret = args::read_secret(secret_file)?;
    let id = id.map_or_else(|| format!("{command}-{}", std::process::id()), String::from);
    let mut cfg = NodeConfig::new(id, secret);
    cfg.timeouts.ping_interval = Duration::from_millis(ping_ms);
    cfg.timeouts.keepalive_timeout = Duration::from_millis(keepalive_ms);
    Ok(cfg)
}

/// Starts the node and prints where it listens.
pub(crate) async fn start<R: Rt>(
    args: &MeshArgs,
    command: &str,
    out: &Printer,
) -> Result<Node<R>, String> {
    let mut cfg = node_config(
        args.id.as_deref(),
        command,
        &args.secret_file,
        args.ping_ms,
        args.keepalive_ms,
    )?;
    cfg.bind.clone_from(&args.binds);
    cfg.seeds.clone_from(&args.seeds);
    let node = Node::start(cfg).await.map_err(|e| e.to_string())?;
    let addrs: Vec<String> = node.local_addrs().iter().map(ToString::to_string).collect();
    let listening = if addrs.is_empty() {
        "dialling out only".to_string()
    } else {
        format!("listening on {}", addrs.join(", "))
    };
    out.line(
        &format!(
            "node {} {listening} (incarnation {}, pid {})",
            node.id(),
            node.incarnation(),
            std::process::id()
        ),
        json!({"event": "started", "node": node.id().as_str(), "addrs": addrs,
               "incarnation": node.incarnation(), "pid": std::process::id()}),
    );
    Ok(node)
}

/// A payload for people: quoted text if it is UTF-8, else its size.
pub(crate) fn show(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("<{} bytes, not UTF-8>", payload.len()),
    }
}

/// A payload for JSON: the text, invalid UTF-8 replaced.
pub(crate) fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}
