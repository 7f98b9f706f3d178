//! `groupmesh members` and `groupmesh nodes`: one-shot answers for scripts.
//! Join through a seed, wait until this node's view has settled, print, leave.
//!
//! Settled: at least one node is up, every node learned of is up (its
//! snapshot arrived) or could not be dialled, and nothing changed (nodes
//! up, nodes known, the group's members) for `--quiet-ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_lite::{future, StreamExt};
use groupmesh_driver::{Events, Node, NodeEvent, NodeId, PortId};
use serde_json::json;

use crate::rt::Rt;

use crate::args;
use crate::messaging::node_config;
use crate::notices::dial_error_text;
use crate::output::{self, port_list, Printer};

/// How to reach the mesh, and how long to wait for it.
#[derive(clap::Args, Debug)]
pub(crate) struct QueryArgs {
    /// Address of a node of the mesh to ask (repeatable).
    #[arg(long = "seed", required = true)]
    seeds: Vec<SocketAddr>,
    /// File holding the shared secret (one trailing newline is ignored).
    #[arg(long)]
    secret_file: PathBuf,
    /// This node's id while it asks (1 to 64 bytes) [default: <command>-<pid>].
    #[arg(long, value_parser = args::node_id)]
    id: Option<String>,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Give up (exit 1) if the view has not settled within this many milliseconds.
    #[arg(long = "timeout-ms", visible_alias = "timeout", default_value_t = 5000)]
    timeout_ms: u64,
    /// The view has settled once nothing changed for this many milliseconds.
    #[arg(long, default_value_t = 300)]
    quiet_ms: u64,
}

/// `members`: the query, and the group.
#[derive(clap::Args, Debug)]
pub(crate) struct MembersArgs {
    #[command(flatten)]
    query: QueryArgs,
    /// The group whose members to print.
    #[arg(long, value_parser = args::group_name)]
    group: String,
}

/// Prints the members of a group, one per line (text: `node#n`; JSON: one
/// `members` line with `node#n@incarnation` ports).
pub(crate) async fn members<R: Rt>(args: MembersArgs) -> Result<(), String> {
    let group = args.group.as_str();
    let node = join::<R>(&args.query, "members").await?;
    let members = settle(&node, &args.query, Some(group)).await;
    let metas = node.members_where(group, |m| !m.meta.is_empty());
    node.shutdown().await;
    let members = members?;
    let metas: Vec<_> = metas
        .iter()
        .filter(|m| members.contains(&m.port))
        .map(|m| (&m.port, &m.meta[..]))
        .collect();
    let out = Printer::new(args.query.json);
    if out.json {
        out.line(
            "",
            json!({
                "event": "members",
                "group": group,
                "members": port_list(&members),
                "meta": output::meta_map(metas),
            }),
        );
    } else {
        if members.is_empty() {
            eprintln!("group {group:?} has no members");
        }
        for p in &members {
            let line = match metas.iter().find(|(q, _)| *q == p) {
                Some((_, m)) => format!("{p} {}", output::meta_json(m)),
                None => p.to_string(),
            };
            output::write_line(&line);
        }
    }
    Ok(())
}

/// Prints the mesh's nodes (but this one), one per line, with their
/// incarnations and addresses; a node learned of that could not be reached
/// is listed as down.
pub(crate) async fn nodes<R: Rt>(args: QueryArgs) -> Result<(), String> {
    let node = join::<R>(&args, "nodes").await?;
    let view = settle(&node, &args, None).await;
    let known: BTreeMap<NodeId, Vec<SocketAddr>> = node.known_nodes().into_iter().collect();
    let up: BTreeMap<NodeId, u64> = node.node_incarnations().into_iter().collect();
    node.shutdown().await;
    view?;
    let out = Printer::new(args.json);
    let names: BTreeSet<&NodeId> = known.keys().chain(up.keys()).collect();
    for name in names.into_iter().filter(|n| *n != node.id()) {
        let addrs: Vec<String> = known
            .get(name)
            .map(|a| a.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let inc = up.get(name);
        if out.json {
            out.line(
                "",
                json!({"event": "node", "node": name.as_str(), "up": inc.is_some(),
                       "incarnation": inc, "addrs": addrs}),
            );
        } else {
            let state = inc.map_or_else(|| "down".to_string(), |i| format!("incarnation {i}"));
            output::write_line(&format!("{name}  {state}  {}", addrs.join(", ")));
        }
    }
    Ok(())
}

async fn join<R: Rt>(args: &QueryArgs, command: &str) -> Result<Node<R>, String> {
    let mut cfg = node_config(args.id.as_deref(), command, &args.secret_file, 1000, 3000)?;
    cfg.seeds.clone_from(&args.seeds);
    Node::start(cfg).await.map_err(|e| e.to_string())
}

/// What a settled view is judged on: nodes up, nodes known, the members.
type View = (Vec<(NodeId, u64)>, Vec<NodeId>, Vec<PortId>);

/// Waits until the view has settled (see the module's documentation);
/// returns the group's members. Err when it does not within the timeout.
async fn settle<R: Rt>(
    node: &Node<R>,
    args: &QueryArgs,
    group: Option<&str>,
) -> Result<Vec<PortId>, String> {
    let mut events = node.events();
    let start = Instant::now();
    let timeout = Duration::from_millis(args.timeout_ms);
    let quiet = Duration::from_millis(args.quiet_ms);
    let mut unreachable: BTreeSet<SocketAddr> = BTreeSet::new();
    let mut last_refusal: Option<String> = None;
    let mut stable: Option<(View, Instant)> = None;
    loop {
        drain(&mut events, &mut unreachable, &mut last_refusal).await;
        let up = node.node_incarnations();
        let known = node.known_nodes();
        let answered = !up.is_empty()
            && known
                .iter()
                .filter(|(n, _)| n != node.id())
                .all(|(n, addrs)| {
                    up.iter().any(|(u, _)| u == n) || addrs.iter().any(|a| unreachable.contains(a))
                });
        let members = group.and_then(|g| node.members(g)).unwrap_or_default();
        let view: View = (up, known.into_iter().map(|(n, _)| n).collect(), members);
        let now = Instant::now();
        stable = match stable {
            Some((seen, since)) if answered && seen == view => {
                if now.duration_since(since) >= quiet {
                    return Ok(seen.2);
                }
                Some((seen, since))
            }
            _ if answered => Some((view, now)),
            _ => None,
        };
        if now.duration_since(start) >= timeout {
            let why = last_refusal.map_or_else(String::new, |r| format!(" (last: {r})"));
            let seeds: Vec<String> = args.seeds.iter().map(ToString::to_string).collect();
            return Err(format!(
                "no settled view of the mesh within {} ms through --seed {}{why}; is a node \
                 running there, with the same secret? (--timeout-ms waits longer)",
                args.timeout_ms,
                seeds.join(", ")
            ));
        }
        crate::rt::sleep::<R>(Duration::from_millis(20)).await;
    }
}

/// Reads the notices waiting: addresses that could not be dialled, and
/// the latest reason a connection was refused.
async fn drain(
    events: &mut Events,
    unreachable: &mut BTreeSet<SocketAddr>,
    last: &mut Option<String>,
) {
    while let Some(Some(e)) = future::poll_once(events.next()).await {
        if let NodeEvent::ConnectionClosed {
            addr,
            authenticated: false,
            reason,
            dial_error,
            ..
        } = e
        {
            unreachable.insert(addr);
            *last = Some(match dial_error {
                Some(kind) => format!("{addr}: {reason}: {}", dial_error_text(kind)),
                None => format!("{addr}: {reason}"),
            });
        }
    }
}
