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

use crate::conn::Phase;
use crate::error::ApiError;
use crate::event::{Event, PortDownReason};
use crate::ids::{ConnId, NodeId, PortId, PortMonitorId};
use crate::node::Node;
use crate::time::Instant;
use crate::wire::Frame;

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

    /// Remote ports of `node` we watch.
    fn ports_of<'a>(&'a self, node: &'a NodeId) -> impl Iterator<Item = &'a PortId> + 'a {
        self.by_port.keys().filter(move |p| p.node() == node)
    }
}

impl Node {
    /// Watches `port`, local or remote: exactly one [`Event::PortDown`] comes
    /// when it is closed, its node is lost or restarts (at once if it is
    /// already gone).
    ///
    /// # Errors
    /// [`ApiError::ShutDown`] only.
    pub fn monitor_port(&mut self, port: &PortId) -> Result<PortMonitorId, ApiError> {
        self.live()?;
        let pm = &mut self.port_monitors;
        pm.next += 1;
        let id = PortMonitorId(pm.next);
        let gone = if port.node() == &self.cfg.node_id {
            if port.incarnation() != self.incarnation {
                Some(PortDownReason::Restarted)
            } else if !self.local.is_live(port.number()) {
                Some(PortDownReason::Closed)
            } else {
                None
            }
        } else {
            // Watched only while we are connected to the port's run (the one
            // whose snapshot we list or is arriving), and asked once connected
            // (`rewatch`); losing the node or a newer run coming up fires it.
            // Another run: an earlier one (the port's incarnation is at most
            // the epoch of the run up: a run's epoch starts at its
            // incarnation and a newer run's rises above the earlier's) has
            // restarted; one that may be newer is not connected to us.
            let inc = port.incarnation();
            match self.peers.get(port.node()) {
                None => Some(PortDownReason::Unreachable),
                Some(p) if p.incarnation == inc => None,
                Some(p) => match self.conns.get(&p.conn).map(|c| &c.phase) {
                    Some(Phase::Active {
                        incarnation, epoch, ..
                    }) if *incarnation != inc => Some(if inc <= *epoch {
                        PortDownReason::Restarted
                    } else {
                        PortDownReason::Unreachable
                    }),
                    _ => None,
                },
            }
        };
        if let Some(reason) = gone {
            self.events.push_back(Event::PortDown {
                monitor: id,
                port: port.clone(),
                reason,
            });
            return Ok(id);
        }
        let pm = &mut self.port_monitors;
        pm.watching.insert(id, port.clone());
        let ids = pm.by_port.entry(port.clone()).or_default();
        ids.push(id);
        if ids.len() == 1 {
            if let Some(conn) = self.conn_to(port) {
                self.send_frame(
                    self.now,
                    conn,
                    &Frame::MonitorPort {
                        port: port.number(),
                    },
                );
            }
        }
        Ok(id)
    }

    /// Ends a port monitor before it fired.
    ///
    /// # Errors
    /// [`ApiError::UnknownPortMonitor`] if it already fired or ended.
    pub fn unmonitor_port(&mut self, id: PortMonitorId) -> Result<(), ApiError> {
        let pm = &mut self.port_monitors;
        let port = pm
            .watching
            .remove(&id)
            .ok_or(ApiError::UnknownPortMonitor)?;
        let Some(ids) = pm.by_port.get_mut(&port) else {
            return Ok(());
        };
        ids.retain(|m| *m != id);
        if ids.is_empty() {
            pm.by_port.remove(&port);
            if let Some(conn) = self.conn_to(&port) {
                self.send_frame(
                    self.now,
                    conn,
                    &Frame::DemonitorPort {
                        port: port.number(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Fires every monitor of `port`.
    fn port_gone(&mut self, port: &PortId, reason: PortDownReason) {
        let Some(ids) = self.port_monitors.by_port.remove(port) else {
            return;
        };
        for id in ids {
            self.port_monitors.watching.remove(&id);
            self.events.push_back(Event::PortDown {
                monitor: id,
                port: port.clone(),
                reason,
            });
        }
    }

    /// Fires the monitors of `node`'s ports that `lost` selects.
    pub(crate) fn node_ports_gone(
        &mut self,
        node: &NodeId,
        lost: impl Fn(&PortId) -> bool,
        reason: PortDownReason,
    ) {
        let ports: Vec<PortId> = self
            .port_monitors
            .ports_of(node)
            .filter(|p| lost(p))
            .cloned()
            .collect();
        for port in ports {
            self.port_gone(&port, reason);
        }
    }

    /// A new connection to `node` (incarnation `inc`) took over: ask it again
    /// about the ports we watch there.
    pub(crate) fn rewatch(&mut self, now: Instant, conn: ConnId, node: &NodeId, inc: u64) {
        let ports: Vec<u64> = self
            .port_monitors
            .ports_of(node)
            .filter(|p| p.incarnation() == inc)
            .map(PortId::number)
            .collect();
        for port in ports {
            self.send_frame(now, conn, &Frame::MonitorPort { port });
        }
    }

    /// One of our ports closed: tell local monitors and watching peers.
    pub(crate) fn local_port_closed(&mut self, port: &PortId) {
        self.port_gone(port, PortDownReason::Closed);
        let conns = self
            .port_monitors
            .watched
            .remove(&port.number())
            .unwrap_or_default();
        for conn in conns {
            self.send_frame(
                self.now,
                conn,
                &Frame::PortDown {
                    port: port.number(),
                },
            );
        }
    }

    /// A peer asks to be told when our port `port` closes.
    pub(crate) fn on_monitor_port(&mut self, now: Instant, conn: ConnId, port: u64) {
        if self.local.is_live(port) {
            self.port_monitors
                .watched
                .entry(port)
                .or_default()
                .insert(conn);
        } else {
            self.send_frame(now, conn, &Frame::PortDown { port });
        }
    }

    /// A peer no longer watches our port `port`.
    pub(crate) fn on_demonitor_port(&mut self, conn: ConnId, port: u64) {
        if let Some(conns) = self.port_monitors.watched.get_mut(&port) {
            conns.remove(&conn);
            if conns.is_empty() {
                self.port_monitors.watched.remove(&port);
            }
        }
    }

    /// The peer `node` (incarnation `inc`) says its port `port` is closed.
    pub(crate) fn on_port_down(&mut self, node: &NodeId, inc: u64, port: u64) {
        self.port_gone(
            &PortId::new(node.clone(), inc, port),
            PortDownReason::Closed,
        );
    }

    /// A connection ended: forget which of our ports it watched.
    pub(crate) fn forget_watcher(&mut self, conn: ConnId) {
        self.port_monitors.watched.retain(|_, conns| {
            conns.remove(&conn);
            !conns.is_empty()
        });
    }
}
