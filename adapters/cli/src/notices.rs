//! How the tool prints notices about the mesh: nodes up and down,
//! connections closed (with why a dial failed), refusals.

use std::io;

use groupmesh_driver::{CloseReason, NodeEvent, NodeId, RemoteReason};
use serde_json::json;

use crate::output::Printer;

/// Why a dial failed, in words: "connection refused", "timed out",
/// "no route to host", "address unreachable", ...
pub(crate) fn dial_error_text(kind: io::ErrorKind) -> String {
    match kind {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::HostUnreachable => "no route to host".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        io::ErrorKind::AddrNotAvailable => "address unreachable".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        other => other.to_string(),
    }
}

/// The same as a JSON token: `connection_refused`, `timed_out`, ...
pub(crate) fn dial_error_token(kind: io::ErrorKind) -> String {
    dial_error_text(kind).replace(' ', "_")
}

impl Printer {
    pub(crate) fn node_up(&self, node: &NodeId, incarnation: u64) {
        self.line(
            &format!("node {node} up (incarnation {incarnation})"),
            json!({"event": "node_up", "node": node.as_str(), "incarnation": incarnation}),
        );
    }

    pub(crate) fn node_down(&self, node: &NodeId, incarnation: u64, reason: &CloseReason) {
        self.line(
            &format!("node {node} down (incarnation {incarnation}): {reason}"),
            json!({"event": "node_down", "node": node.as_str(), "incarnation": incarnation,
                   "reason": reason.to_string()}),
        );
    }

    pub(crate) fn node_event(&self, e: &NodeEvent) {
        match e {
            NodeEvent::NodeUp { node, incarnation } => self.node_up(node, *incarnation),
            NodeEvent::NodeDown {
                node,
                incarnation,
                reason,
            } => self.node_down(node, *incarnation, reason),
            NodeEvent::ConnectionClosed {
                addr,
                node,
                authenticated,
                reason,
                dial_error,
                ..
            } => {
                // Routine closes of a pair's duplicate connection are noise.
                if *reason == CloseReason::Superseded
                    || *reason == CloseReason::Remote(RemoteReason::Superseded)
                {
                    return;
                }
                let why = match dial_error {
                    Some(kind) => format!("{reason}: {}", dial_error_text(*kind)),
                    None => reason.to_string(),
                };
                let who = node
                    .as_ref()
                    .map_or_else(|| addr.to_string(), |n| format!("{n} ({addr})"));
                let text = if *reason == CloseReason::DialFailed {
                    format!("cannot reach {who}: {why}")
                } else if *authenticated {
                    format!("connection to {who} closed: {why}")
                } else {
                    format!("connection refused: {who} closed: {why}")
                };
                let mut value = json!({"event": "connection_closed", "addr": addr.to_string(),
                       "node": node.as_ref().map(NodeId::as_str), "authenticated": authenticated,
                       "reason": why});
                if let Some(kind) = dial_error {
                    value["dial_error"] = json!(dial_error_token(*kind));
                }
                self.line(&text, value);
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
