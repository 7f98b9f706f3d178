//! `groupmesh listen`: serve in a group, print every message, echo it back.

use futures_lite::{future, StreamExt};
use groupmesh_driver::{Message, NodeEvent};
use serde_json::json;

use crate::messaging::{self, show, text, MeshArgs};
use crate::output::{self, Printer};
use crate::rt::Signals;

/// Open a port in a group; print every message received and reply
/// "echo: <payload>" to senders that name their port.
#[derive(clap::Args, Debug)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    mesh: MeshArgs,
    /// Print messages without replying.
    #[arg(long)]
    no_reply: bool,
}

enum Item {
    Message(Option<Message>),
    Node(Option<NodeEvent>),
    Stop(&'static str),
}

pub(crate) async fn run<R: Signals>(args: ListenArgs) -> Result<(), String> {
    let out = Printer::new(args.mesh.json);
    if args.mesh.binds.is_empty() {
        return Err("listen needs --bind ADDR so that senders can connect to it".into());
    }
    let node = messaging::start::<R>(&args.mesh, "listen", &out).await?;
    let group = &args.mesh.group;
    let mut port = node.open_port();
    let _reg = node
        .register(group, &port)
        .map_err(|e| format!("--group {group:?}: {e}"))?;
    out.line(
        &format!("listening as {} in group {group:?}", port.id()),
        json!({"event": "listening", "group": group, "port": output::port(port.id())}),
    );

    let (tx, rx) = async_channel::unbounded::<&'static str>();
    let mut events = node.events();
    let signal = R::stop_signal()?;
    let _signals = crate::rt::spawn::<R, _>(async move {
        if let Some(name) = signal.await {
            let _ = tx.send(name).await;
        }
    });

    loop {
        // Notices first, so that "node up" shows before that node's messages.
        let item = future::or(
            async { Item::Node(events.next().await) },
            future::or(async { Item::Message(port.recv().await) }, async {
                Item::Stop(rx.recv().await.unwrap_or("end"))
            }),
        )
        .await;
        match item {
            Item::Message(Some(m)) => {
                let from = m.from.as_ref().map(output::port);
                out.line(
                    &format!(
                        "message from {}: {}",
                        m.from
                            .as_ref()
                            .map_or_else(|| "(no port)".into(), ToString::to_string),
                        show(&m.payload)
                    ),
                    json!({"event": "message", "from": from, "to": output::port(&m.to),
                           "payload": text(&m.payload), "bytes": m.payload.len()}),
                );
                let Some(sender) = m.from.filter(|_| !args.no_reply) else {
                    continue;
                };
                let reply = [&b"echo: "[..], &m.payload].concat();
                match port.send(&sender, &reply).await {
                    Ok(()) => out.line(
                        &format!("replied to {sender}: {}", show(&reply)),
                        json!({"event": "replied", "to": output::port(&sender),
                               "payload": text(&reply)}),
                    ),
                    Err(e) => out.line(
                        &format!("cannot reply to {sender}: {e}"),
                        json!({"event": "reply_failed", "to": output::port(&sender),
                               "error": e.to_string()}),
                    ),
                }
            }
            Item::Message(None) | Item::Node(None) => break,
            Item::Node(Some(e)) => out.node_event(&e),
            Item::Stop(sig) => {
                out.stopping(sig);
                break;
            }
        }
        if out.closed() {
            break; // the reader of our output is gone: leave quietly
        }
    }
    drop(port);
    let stats = node.stats();
    node.shutdown().await;
    out.line(
        &format!(
            "stopped: {} message(s) received, {} sent, {} dropped",
            stats.messages_received, stats.messages_sent, stats.messages_dropped
        ),
        json!({"event": "stopped", "messages_received": stats.messages_received,
               "messages_sent": stats.messages_sent, "messages_dropped": stats.messages_dropped}),
    );
    Ok(())
}
