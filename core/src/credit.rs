//! [`Credits`]: flow control of port messages, credit per (sender, port).
//!
//! A receiving node grants every sender a number of messages per port of its
//! own, [`Config::port_credit`](crate::Config::port_credit): a peer learns it
//! from our greeting ([`Hello::port_credit`](crate::wire::Hello::port_credit)),
//! and local senders share one grant per port. A message held for a port
//! (delivered, not yet read) uses one; once the port's reader has read half
//! of a grant's worth from a peer, they go back to it in one
//! [`Frame::Credit`](crate::wire::Frame::Credit). A sender without credit
//! sends nothing and waits for it; a peer that sends beyond its credit, or
//! returns more than was used, breaks the protocol.
//!
//! Keys: a peer's connection and the receiver's port number on the sending
//! side; the source (`None`: this node) and our port number on the
//! receiving side. Port numbers are never reused by an incarnation, and a
//! connection belongs to one incarnation, so a port once closed stays so.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use crate::ids::{ConnId, PortId};

/// Where a message for one of our ports came from: a peer's connection,
/// or this node (`None`).
pub(crate) type Source = Option<ConnId>;

/// Whether a message may go to a port now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// One credit taken: send it.
    Taken,
    /// No credit left: the sender waits for [`Credits::returned`] (or the
    /// port's or connection's end).
    Wait,
    /// The peer said the port is closed.
    Closed,
}

/// Credit given and taken, on both sides.
#[derive(Debug, Default)]
pub(crate) struct Credits {
    /// Sending: what each peer grants per port (from its greeting).
    grants: BTreeMap<ConnId, u32>,
    /// Sending: credit used and not yet returned, per (peer, its port).
    used: BTreeMap<(ConnId, u64), u32>,
    /// Sending: the peer's ports it said are closed.
    closed: BTreeSet<(ConnId, u64)>,
    /// Senders told to wait, per (destination, port), with the port's id
    /// for the [`Event::SendReady`](crate::Event::SendReady) that wakes them.
    waiting: BTreeMap<(Source, u64), PortId>,
    /// Receiving: per (source, our port), messages held (delivered, not
    /// returned) and, of them, read.
    held: BTreeMap<(Source, u64), Held>,
    /// Receiving: per port of ours, the source of each message delivered
    /// and not yet read, oldest first.
    unread: BTreeMap<u64, VecDeque<Source>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    held: u32,
    read: u32,
}

/// What [`Credits::read`] asks for.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// Credit to return to peers: (connection, how many) for the port read.
    pub(crate) returns: Vec<(ConnId, u32)>,
    /// A local sender waiting for this port may send again.
    pub(crate) wake_local: Option<PortId>,
}

impl Credits {
    /// The peer on `conn` is authenticated and grants `grant` per port.
    pub(crate) fn open(&mut self, conn: ConnId, grant: u32) {
        self.grants.insert(conn, grant.max(1));
    }

    /// A message to the peer's port `port` on `conn`, for `id`.
    pub(crate) fn take(&mut self, conn: ConnId, port: u64, id: &PortId) -> Take {
        if self.closed.contains(&(conn, port)) {
            return Take::Closed;
        }
        let grant = self.grants.get(&conn).copied().unwrap_or(1);
        let used = self.used.entry((conn, port)).or_default();
        if *used < grant {
            *used += 1;
            Take::Taken
        } else {
            self.waiting.insert((Some(conn), port), id.clone());
            Take::Wait
        }
    }

    /// The peer on `conn` returned `n` credits for its port `port`: the
    /// port's id if a sender waits for it; `Err` if it returned more than
    /// was used.
    pub(crate) fn returned(
        &mut self,
        conn: ConnId,
        port: u64,
        n: u32,
    ) -> Result<Option<PortId>, ()> {
        let used = self.used.get_mut(&(conn, port)).ok_or(())?;
        *used = used.checked_sub(n).ok_or(())?;
        if *used == 0 {
            self.used.remove(&(conn, port));
        }
        Ok(self.waiting.remove(&(Some(conn), port)))
    }

    /// The peer on `conn` says its port `port` is closed: the port's id if
    /// a sender waits for it.
    pub(crate) fn port_down(&mut self, conn: ConnId, port: u64) -> Option<PortId> {
        if !self.grants.contains_key(&conn) {
            return None;
        }
        self.closed.insert((conn, port));
        self.used.remove(&(conn, port));
        self.waiting.remove(&(Some(conn), port))
    }

    /// A message from `source` arrived for our port `port` (live), and
    /// `grant` is what each source may hold. `false`: it has no credit
    /// left (from a peer: a breach; from this node: wait, and `id` is
    /// remembered to wake the sender).
    pub(crate) fn receive(&mut self, source: Source, port: u64, grant: u32, id: &PortId) -> bool {
        let h = self.held.entry((source, port)).or_default();
        if h.held >= grant {
            if source.is_none() {
                self.waiting.insert((None, port), id.clone());
            }
            return false;
        }
        h.held += 1;
        self.unread.entry(port).or_default().push_back(source);
        true
    }

    /// The reader of our port `port` took `n` messages; `grant` is what
    /// each source may hold. Local credit comes back at once, a peer's by
    /// half a grant at a time.
    pub(crate) fn read(&mut self, port: u64, n: usize, grant: u32) -> Read {
        let mut out = Read::default();
        let Some(unread) = self.unread.get_mut(&port) else {
            return out;
        };
        let batch = grant.div_ceil(2);
        for source in unread.drain(..n.min(unread.len())) {
            let Some(h) = self.held.get_mut(&(source, port)) else {
                continue; // its connection is gone
            };
            match source {
                None => {
                    h.held = h.held.saturating_sub(1);
                    if let Some(id) = self.waiting.remove(&(None, port)) {
                        out.wake_local = Some(id);
                    }
                }
                Some(conn) => {
                    h.read += 1;
                    if h.read >= batch {
                        h.held = h.held.saturating_sub(h.read);
                        out.returns.push((conn, h.read));
                        h.read = 0;
                    }
                }
            }
        }
        out
    }

    /// Our port `port` closed: the connections that sent to it and still
    /// hold credit (to be told), and a local sender's port id if one waits.
    pub(crate) fn local_port_closed(&mut self, port: u64) -> (Vec<ConnId>, Option<PortId>) {
        self.unread.remove(&port);
        let mut conns = Vec::new();
        self.held.retain(|&(source, p), _| {
            if p != port {
                return true;
            }
            conns.extend(source);
            false
        });
        (conns, self.waiting.remove(&(None, port)))
    }

    /// `conn` closed: everything about it goes; the ports senders wait
    /// for on it, to be woken (sending again finds no connection).
    pub(crate) fn conn_closed(&mut self, conn: ConnId) -> Vec<PortId> {
        self.grants.remove(&conn);
        self.used.retain(|&(c, _), _| c != conn);
        self.closed.retain(|&(c, _)| c != conn);
        self.held.retain(|&(source, _), _| source != Some(conn));
        let mut woken = Vec::new();
        self.waiting.retain(|&(source, _), id| {
            if source == Some(conn) {
                woken.push(id.clone());
                false
            } else {
                true
            }
        });
        woken
    }
}
