//! [`Events`]: a stream of notices about the mesh (nodes up and down,
//! connections closed).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;

use crate::mailbox::NodeEvent;
use crate::shared::Control;

/// Notices about the mesh, from [`Node::events`](crate::Node::events).
///
/// A [`Stream`] of [`NodeEvent`] that ends when the node stops. It holds a
/// bounded number of notices ([`NodeConfig::event_buffer`](crate::NodeConfig::event_buffer));
/// a reader that falls further behind gets [`NodeEvent::Lagged`].
#[must_use = "an event stream does nothing unless read"]
pub struct Events {
    pub(crate) id: u64,
    pub(crate) ctl: Arc<dyn Control>,
}

impl Stream for Events {
    type Item = NodeEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<NodeEvent>> {
        self.ctl.poll_events(self.id, cx)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.ctl.unsubscribe(self.id);
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("id", &self.id).finish()
    }
}
