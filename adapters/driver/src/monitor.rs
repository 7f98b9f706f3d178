//! [`Monitor`]: a stream of one group's changes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;
use groupmesh_core::MonitorId;

use crate::mailbox::GroupChange;
use crate::shared::Control;

/// The changes of one group, from [`Node::monitor`](crate::Node::monitor).
///
/// A [`Stream`] of [`GroupChange`]; it ends when the node stops. Dropping it
/// ends the monitor.
#[must_use = "a monitor does nothing unless its stream is read"]
pub struct Monitor {
    pub(crate) id: MonitorId,
    pub(crate) group: Arc<str>,
    pub(crate) ctl: Arc<dyn Control>,
}

impl Monitor {
    /// The monitored group.
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl Stream for Monitor {
    type Item = GroupChange;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupChange>> {
        self.ctl.poll_monitor(self.id, cx)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.ctl.unmonitor(self.id);
    }
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("id", &self.id)
            .field("group", &self.group)
            .finish()
    }
}
