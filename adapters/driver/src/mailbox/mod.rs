//! Mailboxes: where what the node has for its user handles waits until they
//! read it. The node, under its lock, pushes; the handles
//! ([`Monitor`](crate::Monitor), [`Events`](crate::Events),
//! [`Port`](crate::Port), [`PortMonitor`](crate::PortMonitor)) take, through
//! that lock. Each mailbox is bounded by its own rule:
//!
//! - a monitor's mailbox holds one [`GroupChange`], merging later ones into it;
//! - an events [`Inbox`] holds a number of [`NodeEvent`]s, then drops the oldest;
//! - a port's [`PortQueue`] holds what the core delivers: the core never
//!   delivers more than each sender's credit (flow control);
//! - a port monitor's mailbox holds its one notice.
//!
//! This layer names only what it carries: nothing of the node, its tasks or
//! its handles.

use std::collections::HashMap;
use std::task::{Context, Waker};

use groupmesh_core::{MonitorId, PortDownReason, PortId, PortMonitorId};

use crate::message::Message;

mod changes;
mod events;
mod messages;
mod one;

use events::Inbox;
use messages::PortQueue;
use one::Ones;

pub use changes::GroupChange;
pub use events::NodeEvent;

/// The reader parked on an empty mailbox, if any.
#[derive(Debug, Default)]
struct Reader(Option<Waker>);

impl Reader {
    /// Passes `item` on; when there is none, remembers `cx`'s task, to be
    /// woken when one comes.
    fn take<T>(&mut self, item: Option<T>, cx: &Context<'_>) -> Option<T> {
        if item.is_none() {
            self.0 = Some(cx.waker().clone());
        }
        item
    }

    /// Wakes the parked reader: something came, or the node stopped.
    fn wake(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }
}

/// Every mailbox of one node, by the handle that reads it.
///
/// A `poll_*` answers `None` when the mailbox is gone (its handle ended it),
/// else `Some` of what it holds, parking the reader when that is nothing.
#[derive(Debug)]
pub(crate) struct Mailboxes {
    /// Each monitor's pending change.
    monitors: Ones<MonitorId, GroupChange>,
    inboxes: HashMap<u64, Inbox>,
    next_inbox: u64,
    /// Notices an inbox holds ([`NodeConfig::event_buffer`](crate::NodeConfig::event_buffer)).
    event_buffer: usize,
    /// The mailbox of every live local port.
    ports: HashMap<PortId, PortQueue>,
    /// Port monitors not yet read, with their notice once it came.
    watches: Ones<PortMonitorId, PortDownReason>,
}

impl Mailboxes {
    pub(crate) fn new(event_buffer: usize) -> Self {
        Mailboxes {
            monitors: Ones::new(),
            inboxes: HashMap::new(),
            next_inbox: 0,
            event_buffer,
            ports: HashMap::new(),
            watches: Ones::new(),
        }
    }

    /// Wakes every reader: the node stopped, and their streams end.
    pub(crate) fn wake_all(&mut self) {
        self.monitors.wake_all();
        self.inboxes.values_mut().for_each(Inbox::wake);
        self.ports.values_mut().for_each(PortQueue::wake);
        self.watches.wake_all();
    }

    // ----- group monitors and port monitors -------------------------------

    /// A monitor's mailbox; it must exist before the monitor's first change is drained.
    pub(crate) fn open_monitor(&mut self, monitor: MonitorId) {
        self.monitors.open(monitor);
    }

    pub(crate) fn close_monitor(&mut self, monitor: MonitorId) {
        self.monitors.close(&monitor);
    }

    /// A change for `monitor`, merged into the one its reader has not taken.
    pub(crate) fn push_change(&mut self, monitor: MonitorId, change: GroupChange) {
        self.monitors.put(&monitor, change, changes::merge);
    }

    pub(crate) fn poll_change(
        &mut self,
        monitor: MonitorId,
        cx: &Context<'_>,
    ) -> Option<Option<GroupChange>> {
        self.monitors.poll(&monitor, cx)
    }

    /// A port monitor's mailbox; it must exist before its notice is drained.
    pub(crate) fn open_watch(&mut self, monitor: PortMonitorId) {
        self.watches.open(monitor);
    }

    pub(crate) fn close_watch(&mut self, monitor: PortMonitorId) {
        self.watches.close(&monitor);
    }

    /// The port monitor's one notice (the core gives no second one).
    pub(crate) fn fire(&mut self, monitor: PortMonitorId, reason: PortDownReason) {
        self.watches.put(&monitor, reason, |_, latest| Some(latest));
    }

    /// The port monitor's notice; once read, the mailbox is closed (exactly
    /// one notice: the monitor is over).
    pub(crate) fn poll_watch(
        &mut self,
        monitor: PortMonitorId,
        cx: &Context<'_>,
    ) -> Option<Option<PortDownReason>> {
        let polled = self.watches.poll(&monitor, cx);
        if let Some(Some(_)) = polled {
            self.watches.close(&monitor);
        }
        polled
    }

    // ----- event streams -------------------------------------------------

    /// A new event stream's inbox; its id.
    pub(crate) fn subscribe(&mut self) -> u64 {
        self.next_inbox += 1;
        let id = self.next_inbox;
        self.inboxes.insert(id, Inbox::new(self.event_buffer));
        id
    }

    pub(crate) fn unsubscribe(&mut self, inbox: u64) {
        self.inboxes.remove(&inbox);
    }

    /// `event` to every event stream.
    pub(crate) fn notify(&mut self, event: &NodeEvent) {
        for inbox in self.inboxes.values_mut() {
            inbox.push(event.clone());
        }
    }

    pub(crate) fn poll_event(&mut self, inbox: u64, cx: &Context<'_>) -> Option<Option<NodeEvent>> {
        self.inboxes.get_mut(&inbox).map(|i| i.poll(cx))
    }

    // ----- ports -----------------------------------------------------------

    pub(crate) fn open_port(&mut self, port: PortId) {
        self.ports.insert(port, PortQueue::default());
    }

    /// Ends a port's mailbox, with what it held.
    pub(crate) fn close_port(&mut self, port: &PortId) {
        self.ports.remove(port);
    }

    /// `m` to the port `to`; false when no such port is open.
    pub(crate) fn deliver(&mut self, to: &PortId, m: Message) -> bool {
        self.ports.get_mut(to).map(|q| q.push(m)).is_some()
    }

    /// The port's oldest message.
    pub(crate) fn poll_port(&mut self, port: &PortId, cx: &Context<'_>) -> Option<Option<Message>> {
        self.ports.get_mut(port).map(|q| q.poll(cx))
    }
}
