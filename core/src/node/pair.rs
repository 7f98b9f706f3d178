//! One connection per pair: which of a node's authenticated connections the
//! peer table follows, and what becomes of the others.
//!
//! Rule kept here: in the end at most one authenticated connection per
//! pair, and the peer table says which. Three moments can break it, and
//! each is one function: a connection authenticates to a node we already
//! follow ([`keep_one_per_pair`](Node::keep_one_per_pair)), the connection
//! followed closes ([`followed_closed`](Node::followed_closed)), or dials
//! crossing more than twice leave an extra one ([`strays`](Node::strays)).
//! All of them change the table through [`Sessions::follow`] only.
//!
//! [`Sessions::follow`]: crate::sessions::Sessions::follow

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use super::Node;
use crate::conn::{Conn, Incoming, Phase};
use crate::event::{CloseReason, Direction};
use crate::ids::{ConnId, NodeId};
use crate::remote::RemoteView;
use crate::time::Instant;
use crate::wire::{Frame, Hello};

impl Node {
    /// Connection `id` authenticated as `node` (its greeting `hello`). If
    /// the table follows another connection to `node`, the authenticated
    /// greetings decide which survives. Same run, same direction: the newer
    /// connection. Both dialled: the one the smaller node id dialled. Two
    /// runs: the one of the greater `(epoch, incarnation)`, and a stale run
    /// is told the epoch to move above. If `id` survives it becomes active
    /// and the table follows it; false when it was closed.
    pub(super) fn keep_one_per_pair(
        &mut self,
        now: Instant,
        id: ConnId,
        node: &NodeId,
        hello: &Hello,
    ) -> bool {
        let Some(dir) = self.sessions.get(id).map(|c| c.dir) else {
            return false;
        };
        let old = self
            .sessions
            .peer(node)
            .map(|p| p.conn())
            .filter(|c| *c != id);
        // The table follows authenticated connections only.
        let old = old.and_then(|old| match self.sessions.get(old)?.phase {
            Phase::Active {
                incarnation, epoch, ..
            } => Some((old, incarnation, epoch, self.sessions.get(old)?.dir)),
            _ => None,
        });
        let replace = match old {
            None => None,
            Some((old, old_inc, old_epoch, old_dir)) => {
                let (keep_new, reason) = if hello.incarnation != old_inc {
                    // Two runs of the node: the greater epoch is the newer
                    // (the incarnation breaks a tie). A stale run never
                    // replaces it, however late it authenticates; it is told
                    // the epoch to move above, in case it is the live one
                    // and its clock went back.
                    if (hello.epoch, hello.incarnation) > (old_epoch, old_inc) {
                        (true, CloseReason::Restarted)
                    } else {
                        let stale = Frame::Stale { epoch: old_epoch };
                        self.send_frame(now, id, &stale);
                        (false, CloseReason::StaleIncarnation)
                    }
                } else if old_dir == dir {
                    // Same direction: the dialler only dials again once it
                    // considers the old one dead, so the newer one is right.
                    (true, CloseReason::Superseded)
                } else {
                    // Both dialled: keep the one the smaller id dialled.
                    let we_are_smaller = self.cfg.node_id < *node;
                    let new_is_ours = dir == Direction::Outbound;
                    (we_are_smaller == new_is_ours, CloseReason::Superseded)
                };
                if !keep_new {
                    self.close(now, id, reason);
                    return false;
                }
                Some((old, reason))
            }
        };
        if let Some(c) = self.sessions.get_mut(id) {
            c.phase = Phase::Active {
                node: node.clone(),
                incarnation: hello.incarnation,
                epoch: hello.epoch,
                incoming: Incoming::Syncing(RemoteView::default()),
            };
        }
        // The table follows the new connection before the old one closes,
        // so closing it loses nothing: what the old one published stays
        // until the new snapshot replaces it.
        self.sessions.follow(node, Some(id));
        match replace {
            None => {}
            Some((old, CloseReason::Superseded)) if dir == Direction::Outbound => {
                // The peer (the responder here) authenticates this one only
                // on our key confirmation: told now, it could find the old
                // one superseded by one it has not authenticated yet. Its
                // first frame here says it has.
                if let Some(c) = self.sessions.get_mut(id) {
                    c.supersedes = Some(old);
                }
            }
            Some((_, CloseReason::Restarted)) => {
                // Every connection of the earlier run goes, not only the one
                // followed: none may take the node over later.
                let earlier: Vec<ConnId> = self
                    .sessions
                    .iter()
                    .filter(|c| c.id != id && c.runs(node).is_some_and(|i| i != hello.incarnation))
                    .map(|c| c.id)
                    .collect();
                for c in earlier {
                    self.close(now, c, CloseReason::Restarted);
                }
            }
            Some((old, reason)) => self.close(now, old, reason),
        }
        true
    }

    /// Connection `c` was removed (see `remove_conn`). If the table followed
    /// it for its node, another connection of the same run whose stream is
    /// whole (the peer closed `c` as superseded, say) takes over and the
    /// node never goes down; stale ones close, as they cannot, and so would
    /// any of another run. With none left, the node is lost.
    pub(super) fn followed_closed(&mut self, now: Instant, c: &Conn, reason: CloseReason) {
        let gone = c.id;
        let Some((run, node)) = c.peer().and_then(|n| Some((c.runs(&n)?, n))) else {
            return;
        };
        if !self.sessions.follows(&node, gone) {
            return;
        }
        let mut next = None;
        let mut stale = Vec::new();
        for c in self.sessions.iter() {
            let Some(inc) = c.runs(&node) else {
                continue;
            };
            let is_stale = matches!(
                c.phase,
                Phase::Active {
                    incoming: Incoming::Stale,
                    ..
                }
            );
            if inc != run || is_stale {
                stale.push(c.id);
            } else {
                next = next.or(Some(c.id));
            }
        }
        for id in stale {
            self.close(now, id, CloseReason::Superseded);
        }
        let Some(next) = next else {
            self.conn_lost(now, &node, reason);
            return;
        };
        self.sessions.follow(&node, Some(next));
        let Some((_, inc, incoming)) = self.sessions.get_mut(next).and_then(Conn::stream_mut)
        else {
            return;
        };
        // A complete stream is published now; a syncing one is when its
        // snapshot completes.
        match core::mem::replace(incoming, Incoming::Live) {
            Incoming::Standby(view) => self.publish(&node, inc, view),
            other => *incoming = other,
        }
    }

    /// Authenticated connections to a peer that are neither its one
    /// connection nor waiting to be replaced (left by dials of the same pair
    /// crossing more than twice), on the side with the smaller id: that side
    /// closes them as superseded, and the peer hands its node over to the
    /// one kept. At most one authenticated connection per pair, in the end.
    pub(super) fn strays(&self) -> Vec<ConnId> {
        let replaced: BTreeSet<ConnId> =
            self.sessions.iter().filter_map(|c| c.supersedes).collect();
        self.sessions
            .iter()
            .filter(|c| match &c.phase {
                Phase::Active { node, .. } => {
                    self.cfg.node_id < *node
                        && self.sessions.peer(node).is_some_and(|p| p.conn() != c.id)
                        && !replaced.contains(&c.id)
                }
                _ => false,
            })
            .map(|c| c.id)
            .collect()
    }
}
