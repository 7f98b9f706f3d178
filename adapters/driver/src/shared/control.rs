//! The handles' side of the node: what [`Node`](crate::Node) calls, and
//! what [`Port`](crate::Port), [`Registration`](crate::Registration),
//! [`Monitor`](crate::Monitor), [`PortMonitor`](crate::PortMonitor) and
//! [`Events`](crate::Events) call through [`Control`], without naming the
//! runtime.

use std::task::{Context, Poll};

use groupmesh_core::{
    ApiError, MonitorId, NodeId, PortDownReason, PortId, PortMonitorId, RegId, Stats,
};

use super::{Attempt, Shared, State, Try};
use crate::mailbox::{GroupChange, NodeEvent};
use crate::message::{Message, SendError};
use crate::runtime::Runtime;

/// What the user-facing handles need from their node.
pub(crate) trait Control: Send + Sync {
    fn close_port(&self, port: &PortId);
    fn unregister(&self, reg: RegId);
    fn update_meta(&self, reg: RegId, meta: &[u8]) -> Result<(), ApiError>;
    fn unmonitor(&self, monitor: MonitorId);
    fn poll_monitor(&self, monitor: MonitorId, cx: &Context<'_>) -> Poll<Option<GroupChange>>;
    fn poll_events(&self, inbox: u64, cx: &Context<'_>) -> Poll<Option<NodeEvent>>;
    fn unsubscribe(&self, inbox: u64);
    /// Tries once to send (see `messaging.rs`), as `attempt` says.
    fn try_send(
        &self,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
        attempt: Try,
    ) -> Result<Attempt, SendError>;
    fn poll_port(&self, port: &PortId, cx: &Context<'_>) -> Poll<Option<Message>>;
    fn poll_port_monitor(
        &self,
        monitor: PortMonitorId,
        cx: &Context<'_>,
    ) -> Poll<Option<PortDownReason>>;
    fn unmonitor_port(&self, monitor: PortMonitorId);
}

impl<R: Runtime> Control for Shared<R> {
    fn close_port(&self, port: &PortId) {
        let mut st = self.lock();
        st.mailboxes.close_port(port);
        if !st.stopped {
            // Only fails for a port already gone: nothing to do then.
            let _ = st.core.close_port(port);
            self.after_input(&mut st);
        }
    }

    fn unregister(&self, reg: RegId) {
        let mut st = self.lock();
        if !st.stopped {
            // Fails when the registration ended with its port: nothing to do.
            let _ = st.core.unregister(reg);
            self.after_input(&mut st);
        }
    }

    fn update_meta(&self, reg: RegId, meta: &[u8]) -> Result<(), ApiError> {
        self.api(|st| st.core.update_meta(reg, meta))
    }

    fn unmonitor(&self, monitor: MonitorId) {
        let mut st = self.lock();
        st.mailboxes.close_monitor(monitor);
        let _ = st.core.unmonitor(monitor);
        self.after_input(&mut st);
    }

    fn poll_monitor(&self, monitor: MonitorId, cx: &Context<'_>) -> Poll<Option<GroupChange>> {
        self.poll_mailbox(|st| st.mailboxes.poll_change(monitor, cx))
    }

    fn poll_events(&self, inbox: u64, cx: &Context<'_>) -> Poll<Option<NodeEvent>> {
        self.poll_mailbox(|st| st.mailboxes.poll_event(inbox, cx))
    }

    fn unsubscribe(&self, inbox: u64) {
        self.lock().mailboxes.unsubscribe(inbox);
    }

    fn try_send(
        &self,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
        attempt: Try,
    ) -> Result<Attempt, SendError> {
        self.attempt_send(to, from, payload, attempt)
    }

    fn poll_port(&self, port: &PortId, cx: &Context<'_>) -> Poll<Option<Message>> {
        self.poll_mailbox(|st| {
            let polled = st.mailboxes.poll_port(port, cx);
            if let Some(Some(_)) = polled {
                // Its sender's credit comes back (a frame, or a local
                // sender woken, when the core says so).
                st.core.message_read(port, 1);
                self.after_input(st);
            }
            polled
        })
    }

    fn poll_port_monitor(
        &self,
        monitor: PortMonitorId,
        cx: &Context<'_>,
    ) -> Poll<Option<PortDownReason>> {
        self.poll_mailbox(|st| st.mailboxes.poll_watch(monitor, cx))
    }

    fn unmonitor_port(&self, monitor: PortMonitorId) {
        let mut st = self.lock();
        st.mailboxes.close_watch(monitor);
        if !st.stopped {
            // Fails when it already fired: nothing to end then.
            let _ = st.core.unmonitor_port(monitor);
            self.after_input(&mut st);
        }
    }
}

impl<R: Runtime> Shared<R> {
    /// Feeds a call of the local API to the core, refused with
    /// [`ApiError::ShutDown`] once the node stopped.
    pub(super) fn api<T>(
        &self,
        f: impl FnOnce(&mut State<R::Stream>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.with(|st, _| {
            if st.stopped {
                return Err(ApiError::ShutDown);
            }
            f(st)
        })
    }

    /// Registers the local `port` in `group` with `meta`.
    pub(crate) fn register(
        &self,
        group: &str,
        port: &PortId,
        meta: &[u8],
    ) -> Result<RegId, ApiError> {
        self.api(|st| st.core.register_with_meta(group, port, meta))
    }

    /// Starts a monitor of `group` with its mailbox.
    pub(crate) fn monitor(&self, group: &str) -> Result<MonitorId, ApiError> {
        self.api(|st| {
            let id = st.core.monitor(group)?;
            // The mailbox must exist before the first change is drained.
            st.mailboxes.open_monitor(id);
            Ok(id)
        })
    }

    /// The incarnation of every node up, sorted by id.
    pub(crate) fn node_incarnations(&self) -> Vec<(NodeId, u64)> {
        let st = self.lock();
        st.up.iter().map(|(n, i)| (n.clone(), *i)).collect()
    }

    /// The core's counters, with the driver's drops and send buffer peak.
    pub(crate) fn stats(&self) -> Stats {
        let mut st = self.lock();
        self.settle(&mut st);
        let mut stats = st.core.stats();
        stats.messages_dropped += st.dropped;
        stats.send_buffer_peak = st.send_buffer_peak;
        stats
    }

    /// Polls one of the node's mailboxes with `poll` (`None`: it is gone),
    /// after draining any pending flush: what was delivered is `Ready`;
    /// an empty mailbox is `Pending` until the node stops, then `Ready(None)`.
    fn poll_mailbox<T>(
        &self,
        poll: impl FnOnce(&mut State<R::Stream>) -> Option<Option<T>>,
    ) -> Poll<Option<T>> {
        let mut st = self.lock();
        self.settle(&mut st);
        let stopped = st.stopped;
        match poll(&mut st) {
            Some(Some(item)) => Poll::Ready(Some(item)),
            Some(None) if !stopped => Poll::Pending,
            _ => Poll::Ready(None),
        }
    }
}
