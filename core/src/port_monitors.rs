//! Port monitors: one notice when a port is gone, with the reason.
//!
//! Rules kept here: a monitor of a local port fires when the port is closed;
//! a monitor of a remote port asks the port's node (one request per port, on
//! the connection to it) and fires when that node says the port is closed,
//! when the connection to the node is lost, or when the node turns out to run
//! another incarnation. A port that is already gone fires at once. Each
//! monitor fires exactly once and then ends. A node remembers which peers
//! watch which of its ports only while the port and the connection live.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::ids::{ConnId, NodeId, PortId, PortMonitorId};

#[derive(Debug, Default)]
pub(crate) struct PortMonitors {
    next: u64,
    /// Our monitors, and the port each watches.
    watching: BTreeMap<PortMonitorId, PortId>,
    /// The same, by port.
    by_port: BTreeMap<PortId, Vec<PortMonitorId>>,
    /// Peers watching our ports: port number → their connections.
    watched: BTreeMap<u64, BTreeSet<ConnId>>,
}

impl PortMonitors {
    pub(crate) fn count(&self) -> usize {
        self.watching.len()
    }

    /// A fresh monitor id.
    pub(crate) fn next_id(&mut self) -> PortMonitorId {
        self.next += 1;
        PortMonitorId(self.next)
    }

    /// Monitor `id` watches `port`. True if it is the port's first monitor
    /// (its node is to be asked).
    pub(crate) fn watch(&mut self, id: PortMonitorId, port: &PortId) -> bool {
        self.watching.insert(id, port.clone());
        let ids = self.by_port.entry(port.clone()).or_default();
        ids.push(id);
        ids.len() == 1
    }

    /// Ends monitor `id`: the port it watched, and whether it was the
    /// port's last monitor (its node is to be told); `None` if it was not
    /// live.
    pub(crate) fn unwatch(&mut self, id: PortMonitorId) -> Option<(PortId, bool)> {
        let port = self.watching.remove(&id)?;
        let Some(ids) = self.by_port.get_mut(&port) else {
            return Some((port, false));
        };
        ids.retain(|m| *m != id);
        let last = ids.is_empty();
        if last {
            self.by_port.remove(&port);
        }
        Some((port, last))
    }

    /// `port` is gone: its monitors end, and are returned to fire.
    pub(crate) fn fire(&mut self, port: &PortId) -> Vec<PortMonitorId> {
        let ids = self.by_port.remove(port).unwrap_or_default();
        for id in &ids {
            self.watching.remove(id);
        }
        ids
    }

    /// Remote ports of `node` we watch.
    pub(crate) fn ports_of<'a>(
        &'a self,
        node: &'a NodeId,
    ) -> impl Iterator<Item = &'a PortId> + 'a {
        self.by_port.keys().filter(move |p| p.node() == node)
    }

    /// The peer on `conn` watches our port `port`.
    pub(crate) fn watched_by(&mut self, port: u64, conn: ConnId) {
        self.watched.entry(port).or_default().insert(conn);
    }

    /// The peer on `conn` no longer watches our port `port`.
    pub(crate) fn unwatched_by(&mut self, port: u64, conn: ConnId) {
        if let Some(conns) = self.watched.get_mut(&port) {
            conns.remove(&conn);
            if conns.is_empty() {
                self.watched.remove(&port);
            }
        }
    }

    /// Our port `port` closed: the connections of the peers watching it.
    pub(crate) fn take_watchers(&mut self, port: u64) -> BTreeSet<ConnId> {
        self.watched.remove(&port).unwrap_or_default()
    }

    /// A connection ended: forget which of our ports it watched.
    pub(crate) fn forget_watcher(&mut self, conn: ConnId) {
        self.watched.retain(|_, conns| {
            conns.remove(&conn);
            !conns.is_empty()
        });
    }
}
