//! [`PortMonitor`]: a future that completes once, when a watched port is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use groupmesh_core::{PortDownReason, PortId, PortMonitorId};

use crate::shared::Control;

/// Watches one port, local or remote, from
/// [`Node::monitor_port`](crate::Node::monitor_port).
///
/// A [`Future`] that completes exactly once, when the port is gone, with
/// why: [`PortDownReason::Closed`] (its [`Port`](crate::Port) was dropped,
/// or it did not exist), [`PortDownReason::NodeDown`] (the connection to its
/// node was lost, with the reason), [`PortDownReason::Restarted`] (its node
/// runs a new incarnation) or [`PortDownReason::Unreachable`] (its node was
/// not connected when the monitor started). If this node stops first, it
/// completes with `None` (after a graceful [`shutdown`](crate::Node::shutdown),
/// a remote port is reported as `NodeDown(CloseReason::Shutdown)`: the
/// connection to it was closed). Dropping it ends the monitor.
#[must_use = "a port monitor ends when dropped"]
pub struct PortMonitor {
    pub(crate) id: PortMonitorId,
    pub(crate) port: PortId,
    pub(crate) ctl: Arc<dyn Control>,
}

impl PortMonitor {
    /// The watched port.
    pub fn port(&self) -> &PortId {
        &self.port
    }
}

impl Future for PortMonitor {
    type Output = Option<PortDownReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PortDownReason>> {
        self.ctl.poll_port_monitor(self.id, cx)
    }
}

impl Drop for PortMonitor {
    fn drop(&mut self) {
        self.ctl.unmonitor_port(self.id);
    }
}

impl std::fmt::Debug for PortMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortMonitor")
            .field("id", &self.id)
            .field("port", &self.port)
            .finish()
    }
}
