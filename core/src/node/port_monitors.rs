//! Port monitors at the node: the local API, the frames that ask and tell
//! peers, and the events (the rules are in `port_monitors.rs`).

use alloc::vec::Vec;

use super::Node;
use crate::conn::Phase;
use crate::error::ApiError;
use crate::event::{Event, PortDownReason};
use crate::ids::{ConnId, NodeId, PortId, PortMonitorId};
use crate::time::Instant;
use crate::wire::Frame;

impl Node {
    /// Watches `port`, local or remote: exactly one [`Event::PortDown`] comes
    /// when it is closed, its node is lost or restarts (at once if it is
    /// already gone).
    ///
    /// # Errors
    /// [`ApiError::ShutDown`] only.
    pub fn monitor_port(&mut self, port: &PortId) -> Result<PortMonitorId, ApiError> {
        self.live()?;
        let id = self.port_monitors.next_id();
        if let Some(reason) = self.port_gone_already(port) {
            self.events.push_back(Event::PortDown {
                monitor: id,
                port: port.clone(),
                reason,
            });
            return Ok(id);
        }
        if self.port_monitors.watch(id, port) {
            if let Some(conn) = self.sessions.conn_to(port) {
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

    /// Why a monitor of `port` fires at once, if it does: the port is known
    /// to be gone, or is of a run we are not connected to.
    fn port_gone_already(&self, port: &PortId) -> Option<PortDownReason> {
        if port.node() == &self.cfg.node_id {
            return if port.incarnation() != self.incarnation {
                Some(PortDownReason::Restarted)
            } else if !self.local.is_live(port.number()) {
                Some(PortDownReason::Closed)
            } else {
                None
            };
        }
        // Watched only while we are connected to the port's run (the one
        // whose snapshot we list or is arriving), and asked once connected
        // (`rewatch`); losing the node or a newer run coming up fires it.
        // Another run: an earlier one (the port's incarnation is at most
        // the epoch of the run up: a run's epoch starts at its
        // incarnation and a newer run's rises above the earlier's) has
        // restarted; one that may be newer is not connected to us.
        let inc = port.incarnation();
        match self.sessions.peer(port.node()) {
            None => Some(PortDownReason::Unreachable),
            Some(p) if p.incarnation() == inc => None,
            Some(p) => match self.sessions.get(p.conn()).map(|c| &c.phase) {
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
    }

    /// Ends a port monitor before it fired.
    ///
    /// # Errors
    /// [`ApiError::UnknownPortMonitor`] if it already fired or ended.
    pub fn unmonitor_port(&mut self, id: PortMonitorId) -> Result<(), ApiError> {
        let (port, last) = self
            .port_monitors
            .unwatch(id)
            .ok_or(ApiError::UnknownPortMonitor)?;
        if last {
            if let Some(conn) = self.sessions.conn_to(&port) {
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
        for id in self.port_monitors.fire(port) {
            self.events.push_back(Event::PortDown {
                monitor: id,
                port: port.clone(),
                reason,
            });
        }
    }

    /// Fires the monitors of `node`'s ports that `lost` selects.
    pub(super) fn node_ports_gone(
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
    pub(super) fn rewatch(&mut self, now: Instant, conn: ConnId, node: &NodeId, inc: u64) {
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
    pub(super) fn local_port_closed(&mut self, port: &PortId) {
        self.port_gone(port, PortDownReason::Closed);
        let mut told = self.port_monitors.take_watchers(port.number());
        told.extend(self.credit_local_port_closed(port.number()));
        for conn in told {
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
    pub(super) fn on_monitor_port(&mut self, now: Instant, conn: ConnId, port: u64) {
        if self.local.is_live(port) {
            self.port_monitors.watched_by(port, conn);
        } else {
            self.send_frame(now, conn, &Frame::PortDown { port });
        }
    }

    /// The peer `node` (incarnation `inc`) says its port `port` is closed.
    pub(super) fn on_port_down(&mut self, node: &NodeId, inc: u64, port: u64) {
        self.port_gone(
            &PortId::new(node.clone(), inc, port),
            PortDownReason::Closed,
        );
    }
}
