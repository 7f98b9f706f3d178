//! `groupmesh send`: join, send one message to a member of a group, print
//! the reply.

use std::time::{Duration, Instant};

use futures_lite::{future, StreamExt};
use groupmesh_driver::{Node, PortId};
use serde_json::json;

use crate::rt::Rt;

use crate::messaging::{self, show, text, MeshArgs};
use crate::output::{ms, port as qualified, Printer};

/// Join the mesh, wait for a member of the group, send it one message from
/// a port, print its reply, leave.
#[derive(clap::Args, Debug)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    mesh: MeshArgs,
    /// The member to send to, as listed: `node#n`, or `node#n@incarnation`
    /// as in JSON output [default: the first member].
    #[arg(long)]
    to: Option<String>,
    /// How long to wait for a member, and then for the reply.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Send and leave without waiting for a reply.
    #[arg(long)]
    no_wait: bool,
    /// The message (UTF-8 text).
    payload: String,
}

enum Outcome {
    Reply(groupmesh_driver::Message),
    Gone(String),
    Late,
}

/// Waits until the group lists the wanted member.
async fn member<R: Rt>(node: &Node<R>, args: &SendArgs, limit: Duration) -> Result<PortId, String> {
    let group = &args.mesh.group;
    let mut changes = node
        .monitor(group)
        .map_err(|e| format!("--group {group:?}: {e}"))?;
    let wanted = |members: &[PortId]| {
        members
            .iter()
            .find(|p| {
                args.to
                    .as_ref()
                    .is_none_or(|to| p.to_string() == *to || qualified(p) == *to)
            })
            .cloned()
    };
    let found = async {
        while let Some(change) = changes.next().await {
            if let Some(p) = wanted(&change.members) {
                return Some(p);
            }
        }
        None
    };
    let late = async {
        crate::rt::sleep::<R>(limit).await;
        None
    };
    future::or(found, late).await.ok_or_else(|| {
        let whom = args.to.as_ref().map_or_else(
            || "no member".to_string(),
            |to| format!("{to} is not a member"),
        );
        format!(
            "{whom} of group {group:?} within {} ms; is `groupmesh listen --group {group}` \
             running, with the same secret, and reachable through --seed?",
            limit.as_millis()
        )
    })
}

pub(crate) async fn run<R: Rt>(args: SendArgs) -> Result<(), String> {
    let out = Printer::new(args.mesh.json);
    if args.mesh.seeds.is_empty() {
        return Err("send needs --seed ADDR: a node of the mesh to join through".into());
    }
    let limit = Duration::from_millis(args.timeout_ms);
    let node = messaging::start::<R>(&args.mesh, "send", &out).await?;
    let result = exchange(&node, &args, limit, &out).await;
    let stats = node.stats();
    node.shutdown().await;
    if stats.messages_dropped > 0 {
        out.line(
            &format!("{} message(s) dropped", stats.messages_dropped),
            json!({"event": "dropped", "messages_dropped": stats.messages_dropped}),
        );
    }
    result
}

async fn exchange<R: Rt>(
    node: &Node<R>,
    args: &SendArgs,
    limit: Duration,
    out: &Printer,
) -> Result<(), String> {
    let to = member(node, args, limit).await?;
    let mut port = node.open_port();
    let gone = node.monitor_port(&to).map_err(|e| e.to_string())?;
    let sent_at = Instant::now();
    port.send(&to, &args.payload)
        .await
        .map_err(|e| e.to_string())?;
    out.line(
        &format!(
            "sent {} to {to} from {}",
            show(args.payload.as_bytes()),
            port.id()
        ),
        json!({"event": "sent", "to": qualified(&to), "from": qualified(port.id()),
               "payload": args.payload, "bytes": args.payload.len()}),
    );
    if args.no_wait {
        return Ok(());
    }
    let outcome = future::or(
        async {
            match port.recv().await {
                Some(m) => Outcome::Reply(m),
                None => Outcome::Gone("this node stopped".into()),
            }
        },
        future::or(
            async {
                match gone.await {
                    Some(reason) => Outcome::Gone(reason.to_string()),
                    None => Outcome::Gone("this node stopped".into()),
                }
            },
            async {
                crate::rt::sleep::<R>(limit).await;
                Outcome::Late
            },
        ),
    )
    .await;
    match outcome {
        Outcome::Reply(m) => {
            let rtt = sent_at.elapsed();
            let from = m.from.as_ref().map(qualified);
            out.line(
                &format!(
                    "reply from {} in {}: {}",
                    m.from
                        .as_ref()
                        .map_or_else(|| "(no port)".into(), ToString::to_string),
                    ms(rtt),
                    show(&m.payload)
                ),
                json!({"event": "reply", "from": from, "payload": text(&m.payload),
                       "bytes": m.payload.len(), "rtt_ms": rtt.as_secs_f64() * 1000.0}),
            );
            Ok(())
        }
        Outcome::Gone(why) => Err(format!("{to} went away before replying: {why}")),
        Outcome::Late => Err(format!(
            "no reply from {to} within {} ms (a listener started with --no-reply \
             does not answer)",
            limit.as_millis()
        )),
    }
}
