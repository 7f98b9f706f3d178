//! The order `groupmesh node` prints a peer's arrival in: its `node_up`
//! before any group change listing its ports.
//!
//! The core reports a new peer's group changes first and `NodeUp` after (so
//! that whoever reacts to `NodeUp` finds the peer's ports); a reader of the
//! output expects a node to be up before its members appear. So when a
//! change adds ports of a node incarnation not yet shown up, its `node_up`
//! (and, for a restart, the older incarnation's `node_down`, reason "node
//! restarted") is printed first, and the core's own notice is not repeated
//! when it comes.

use std::collections::BTreeMap;

use groupmesh_driver::{CloseReason, GroupChange, NodeEvent, NodeId};

use crate::output::Printer;

/// What has been printed of each node's life.
pub(crate) struct Order {
    me: NodeId,
    /// The latest incarnation shown of each node, and whether it is up.
    shown: BTreeMap<NodeId, (u64, bool)>,
}

impl Order {
    pub(crate) fn new(me: NodeId) -> Self {
        Order {
            me,
            shown: BTreeMap::new(),
        }
    }

    /// Prints `change` of `group`, after the `node_up` of any node whose
    /// ports it adds and that was not shown up yet.
    pub(crate) fn group(&mut self, out: &Printer, group: &str, change: &GroupChange) {
        for port in &change.added {
            let (node, inc) = (port.node(), port.incarnation());
            if *node == self.me {
                continue;
            }
            match self.shown.get(node).copied() {
                Some((shown, up)) if shown > inc || (shown == inc && up) => continue,
                Some((older, true)) => out.node_down(node, older, &CloseReason::Restarted),
                _ => {}
            }
            self.shown.insert(node.clone(), (inc, true));
            out.node_up(node, inc);
        }
        out.group(group, change);
    }

    /// Prints a notice, unless it was already shown ahead of a group change
    /// (or is about an incarnation older than one shown).
    pub(crate) fn notice(&mut self, out: &Printer, event: &NodeEvent) {
        let news = match event {
            NodeEvent::NodeUp { node, incarnation } => self.shown(node, *incarnation, true),
            NodeEvent::NodeDown {
                node, incarnation, ..
            } => self.shown(node, *incarnation, false),
            _ => true,
        };
        if news {
            out.node_event(event);
        }
    }

    /// Records that `node`'s `incarnation` is `up` (or down); false if that
    /// is already shown, or older than what is.
    fn shown(&mut self, node: &NodeId, incarnation: u64, up: bool) -> bool {
        if let Some(&(shown, was_up)) = self.shown.get(node) {
            if shown > incarnation || (shown == incarnation && was_up == up) {
                return false;
            }
        }
        self.shown.insert(node.clone(), (incarnation, up));
        true
    }
}
