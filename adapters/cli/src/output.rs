//! How the tool prints what happens: text for people, JSON lines for scripts.

use std::time::Instant;

use groupmesh_smol::{GroupChange, NodeEvent, PortId};
use serde_json::json;

/// Prints events as text or JSON lines, stamped with the time since start.
pub(crate) struct Printer {
    json: bool,
    start: Instant,
}

/// A list of ports, shortened past a handful.
pub(crate) fn ports(list: &[PortId]) -> String {
    const SHOWN: usize = 6;
    let mut s: Vec<String> = list.iter().take(SHOWN).map(ToString::to_string).collect();
    if list.len() > SHOWN {
        s.push(format!("… {} more", list.len() - SHOWN));
    }
    s.join(", ")
}

fn ids(list: &[PortId]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// Milliseconds with one decimal, for timings.
pub(crate) fn ms(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Printer {
            json,
            start: Instant::now(),
        }
    }

    fn stamp(&self) -> String {
        format!("{:>9.3}s", self.start.elapsed().as_secs_f64())
    }

    fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub(crate) fn line(&self, text: &str, value: serde_json::Value) {
        if self.json {
            let mut v = value;
            v["t_ms"] = json!(self.elapsed_ms());
            println!("{v}");
        } else {
            println!("{} {text}", self.stamp());
        }
    }

    /// The node leaves the mesh because of signal `sig`.
    pub(crate) fn stopping(&self, sig: &str) {
        self.line(
            &format!("{sig}: leaving the mesh"),
            json!({"event": "stopping", "signal": sig}),
        );
    }

    pub(crate) fn group(&self, group: &str, c: &GroupChange) {
        let mut text = format!("group {group:?}: {} member(s)", c.members.len());
        if !c.added.is_empty() {
            text += &format!("  + {}", ports(&c.added));
        }
        if !c.removed.is_empty() {
            text += &format!("  - {}", ports(&c.removed));
        }
        self.line(
            &text,
            json!({
                "event": "group",
                "group": group,
                "members": ids(&c.members),
                "added": ids(&c.added),
                "removed": ids(&c.removed),
            }),
        );
    }

    pub(crate) fn node_event(&self, e: &NodeEvent) {
        match e {
            NodeEvent::NodeUp { node, incarnation } => self.line(
                &format!("node {node} up (incarnation {incarnation})"),
                json!({"event": "node_up", "node": node.as_str(), "incarnation": incarnation}),
            ),
            NodeEvent::NodeDown {
                node,
                incarnation,
                reason,
            } => self.line(
                &format!("node {node} down: {reason}"),
                json!({"event": "node_down", "node": node.as_str(), "incarnation": incarnation,
                       "reason": reason.to_string()}),
            ),
            NodeEvent::ConnectionClosed {
                addr,
                node,
                authenticated,
                reason,
            } => {
                // Routine closes of a pair's duplicate connection are noise.
                if *reason == groupmesh_smol::CloseReason::Superseded
                    || matches!(reason, groupmesh_smol::CloseReason::Remote(r) if *r == groupmesh_smol::RemoteReason::Superseded)
                {
                    return;
                }
                let who = node
                    .as_ref()
                    .map_or_else(|| addr.to_string(), |n| format!("{n} ({addr})"));
                let what = if *authenticated {
                    "connection to"
                } else {
                    "connection refused:"
                };
                self.line(
                    &format!("{what} {who} closed: {reason}"),
                    json!({"event": "connection_closed", "addr": addr.to_string(),
                           "node": node.as_ref().map(|n| n.as_str()), "authenticated": authenticated,
                           "reason": reason.to_string()}),
                );
            }
            NodeEvent::InboundRefused { addr } => self.line(
                &format!("inbound connection from {addr} refused: connection limit"),
                json!({"event": "inbound_refused", "addr": addr.to_string()}),
            ),
            NodeEvent::Lagged { missed } => self.line(
                &format!("(missed {missed} older notices: output too slow)"),
                json!({"event": "lagged", "missed": missed}),
            ),
            other => self.line(
                &format!("{other:?}"),
                json!({"event": format!("{other:?}")}),
            ),
        }
    }
}
