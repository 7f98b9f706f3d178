//! The connections and the peer table: every open connection by id, and for
//! each connected peer the one connection whose stream the node follows.
//!
//! Rule kept here: the peer table follows each peer through exactly one
//! connection, an authenticated one to that peer, and only that one's
//! stream reaches the group view. [`Sessions::follow`] is the one function
//! that changes the table (a peer followed through a new connection, or
//! dropped); which connection survives a pair's crossing dials is decided in
//! `node/pair.rs`, which calls it. The table may name a connection just
//! removed only while `Node::remove_conn` hands its peer over (or loses it).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::conn::{Conn, Incoming, Phase};
use crate::ids::{ConnId, NodeId, PortId};
use crate::remote::RemoteView;

/// What this node knows of a connected peer: the memberships it published.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The one connection followed.
    conn: ConnId,
    /// The incarnation whose memberships `view` holds.
    incarnation: u64,
    view: RemoteView,
    /// `NodeUp` was reported (its snapshot arrived).
    up: bool,
}

impl Peer {
    /// The one connection the table follows for this peer.
    pub(crate) fn conn(&self) -> ConnId {
        self.conn
    }

    /// The incarnation whose memberships [`view`](Self::view) holds.
    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The peer's memberships as published.
    pub(crate) fn view(&self) -> &RemoteView {
        &self.view
    }

    /// `NodeUp` was reported (its snapshot arrived).
    pub(crate) fn is_up(&self) -> bool {
        self.up
    }
}

/// A peer's view replaced by [`Sessions::publish`]: what it was.
pub(crate) struct Published {
    pub(crate) view: RemoteView,
    pub(crate) incarnation: u64,
    pub(crate) was_up: bool,
}

/// Open connections and the peer table.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// The last connection id given out.
    next_conn: u64,
    conns: BTreeMap<ConnId, Conn>,
    /// The peer table: each peer and the one connection followed.
    peers: BTreeMap<NodeId, Peer>,
}

impl Sessions {
    // ----- connections -------------------------------------------------

    /// A fresh connection id, never used before by this node.
    pub(crate) fn next_id(&mut self) -> ConnId {
        self.next_conn += 1;
        ConnId(self.next_conn)
    }

    pub(crate) fn insert(&mut self, conn: Conn) {
        self.conns.insert(conn.id, conn);
    }

    /// Forgets a connection. If the table follows it, the caller hands its
    /// peer over or loses it next.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.conns.remove(&id)
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.conns.contains_key(&id)
    }

    /// Every open connection, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.conns.values()
    }

    /// The ids of every open connection, in order.
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    // ----- the peer table ----------------------------------------------

    /// The peer `node`, if the table follows a connection to it.
    pub(crate) fn peer(&self, node: &NodeId) -> Option<&Peer> {
        self.peers.get(node)
    }

    /// Every peer the table follows, by node id.
    pub(crate) fn peers(&self) -> impl Iterator<Item = (&NodeId, &Peer)> {
        self.peers.iter()
    }

    pub(crate) fn has_peers(&self) -> bool {
        !self.peers.is_empty()
    }

    /// The table follows `node` through `id`.
    pub(crate) fn follows(&self, node: &NodeId, id: ConnId) -> bool {
        self.peers.get(node).is_some_and(|p| p.conn == id)
    }

    /// The one function that changes the peer table, and so keeps its rule
    /// (see the module). `Some(id)`: `node` is followed through `id`, an
    /// authenticated connection to it (anything else is refused and changes
    /// nothing); a new entry starts with `id`'s incarnation, an empty view
    /// and not up, and the connection followed before, if live and still
    /// open, goes stale (its changes are no longer kept, so it never takes
    /// the node over: the new one's snapshot carries what it would have
    /// said). `None`: `node` is dropped; its entry is returned.
    pub(crate) fn follow(&mut self, node: &NodeId, to: Option<ConnId>) -> Option<Peer> {
        let Some(id) = to else {
            return self.peers.remove(node);
        };
        let Some(incarnation) = self.conns.get(&id).and_then(|c| c.runs(node)) else {
            debug_assert!(
                false,
                "the peer table follows authenticated connections only"
            );
            return None;
        };
        let Some(p) = self.peers.get_mut(node) else {
            self.peers.insert(
                node.clone(),
                Peer {
                    conn: id,
                    incarnation,
                    view: RemoteView::default(),
                    up: false,
                },
            );
            return None;
        };
        let old = core::mem::replace(&mut p.conn, id);
        if old != id {
            let stream = self.conns.get_mut(&old).and_then(Conn::stream_mut);
            if let Some((_, _, incoming @ Incoming::Live)) = stream {
                *incoming = Incoming::Stale;
            }
        }
        None
    }

    /// `new`, of the run `inc`, becomes what we know of the peer `node`,
    /// which is now up. Returns what it replaced; `None` if `node` is not in
    /// the table.
    pub(crate) fn publish(
        &mut self,
        node: &NodeId,
        inc: u64,
        new: RemoteView,
    ) -> Option<Published> {
        let peer = self.peers.get_mut(node)?;
        Some(Published {
            view: core::mem::replace(&mut peer.view, new),
            incarnation: core::mem::replace(&mut peer.incarnation, inc),
            was_up: core::mem::replace(&mut peer.up, true),
        })
    }

    /// The published view of `node`, to apply changes that arrived on `id`:
    /// only if the table follows `node` through `id`.
    pub(crate) fn live_view_mut(&mut self, node: &NodeId, id: ConnId) -> Option<&mut RemoteView> {
        self.peers
            .get_mut(node)
            .filter(|p| p.conn == id)
            .map(|p| &mut p.view)
    }

    /// The authenticated connection to the incarnation `port` belongs to.
    pub(crate) fn conn_to(&self, port: &PortId) -> Option<ConnId> {
        let conn = self.peers.get(port.node())?.conn;
        match self.conns.get(&conn)?.phase {
            Phase::Active { incarnation, .. } if incarnation == port.incarnation() => Some(conn),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use crate::handshake::Psk;
    use crate::mesh::DialFor;
    use crate::time::Instant;

    /// A connection authenticated to `node` (run 1), its stream `incoming`.
    fn active(s: &mut Sessions, node: &NodeId, incoming: Incoming) -> ConnId {
        let id = s.next_id();
        let addr = "127.0.0.1:1".parse().expect("a literal address");
        let psk = Psk::derive(b"secret");
        let mut c = Conn::new(
            id,
            Direction::Inbound,
            addr,
            DialFor::Nothing,
            Instant::ZERO,
            1024,
            &psk,
            [0; 32],
        );
        c.phase = Phase::Active {
            node: node.clone(),
            incarnation: 1,
            epoch: 1,
            incoming,
        };
        s.insert(c);
        id
    }

    fn stream(s: &mut Sessions, id: ConnId) -> Option<&mut Incoming> {
        s.get_mut(id).and_then(Conn::stream_mut).map(|(_, _, i)| i)
    }

    #[test]
    fn the_table_follows_one_authenticated_connection_and_the_one_it_left_goes_stale() {
        let mut s = Sessions::default();
        let n = NodeId::new("n").expect("a valid id");
        let first = active(&mut s, &n, Incoming::Live);
        assert!(s.follow(&n, Some(first)).is_none());
        assert!(s.follows(&n, first));
        assert_eq!(s.peer(&n).map(Peer::incarnation), Some(1));

        let second = active(&mut s, &n, Incoming::Syncing(RemoteView::default()));
        s.follow(&n, Some(second));
        assert!(s.follows(&n, second));
        assert!(matches!(stream(&mut s, first), Some(Incoming::Stale)));

        let dropped = s.follow(&n, None).expect("the entry is handed back");
        assert_eq!(dropped.conn(), second);
        assert!(s.peer(&n).is_none());
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        should_panic(expected = "authenticated connections only")
    )]
    fn a_connection_not_authenticated_to_the_node_is_never_followed() {
        let mut s = Sessions::default();
        let (n, m) = (
            NodeId::new("n").expect("valid"),
            NodeId::new("m").expect("valid"),
        );
        let to_m = active(&mut s, &m, Incoming::Live);
        s.follow(&n, Some(to_m));
        assert!(s.peer(&n).is_none());
    }
}
