//! This node's own ports and registrations, and the changes not yet sent.
//!
//! Rules kept here: only live local ports can be registered; a port registered
//! twice in a group is a member once, until its last registration ends, with
//! the metadata the last registration or update gave it; closing a port ends
//! all its registrations; changes made between two drains are netted out
//! (only a port's last state goes out, and a join and a leave of the same
//! port cancel) and go out as one batch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Bound::{Excluded, Unbounded};

use crate::ids::{GroupName, RegId};
use crate::meta::Meta;
use crate::wire::LeaveReason;

/// Where a membership of ours should end, as peers are told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// A member with this metadata.
    Member(Meta),
    /// Not a member, for this reason.
    Left(LeaveReason),
}

/// A membership change of this node for peers: `(group, port, state)`.
pub(crate) type Change = (GroupName, u64, State);

/// What a registration or a metadata update did to the group view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// The port joined the group, with this metadata.
    Joined(Meta),
    /// The port was a member; its metadata is now this.
    Updated(Meta),
    /// Nothing the view shows changed.
    Unchanged,
}

/// One membership of ours: its live registrations and its metadata.
#[derive(Debug)]
struct Membership {
    count: u32,
    meta: Meta,
}

/// A change peers have not been told of.
#[derive(Debug)]
struct Pending {
    /// Peers hold the port as a member (they were told before this batch).
    known: bool,
    state: State,
}

#[derive(Debug, Default)]
pub(crate) struct Local {
    /// Live ports and their registrations.
    ports: BTreeMap<u64, Vec<RegId>>,
    regs: BTreeMap<RegId, (GroupName, u64)>,
    /// Our memberships.
    groups: BTreeMap<GroupName, BTreeMap<u64, Membership>>,
    /// Changes peers have not been told of: the state they should end in.
    pending: BTreeMap<GroupName, BTreeMap<u64, Pending>>,
    next_port: u64,
    next_reg: u64,
}

impl Local {
    pub(crate) fn open_port(&mut self) -> u64 {
        self.next_port += 1;
        self.ports.insert(self.next_port, Vec::new());
        self.next_port
    }

    pub(crate) fn is_live(&self, port: u64) -> bool {
        self.ports.contains_key(&port)
    }

    pub(crate) fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// Registers a live port with `meta`, which becomes the port's metadata
    /// in the group (the last registration or update sets it). Returns the
    /// registration and what it did to the group view.
    pub(crate) fn register(
        &mut self,
        group: GroupName,
        port: u64,
        meta: Meta,
    ) -> Option<(RegId, Effect)> {
        let regs = self.ports.get_mut(&port)?;
        self.next_reg += 1;
        let id = RegId(self.next_reg);
        regs.push(id);
        self.regs.insert(id, (group.clone(), port));
        let ports = self.groups.entry(group.clone()).or_default();
        let effect = match ports.get_mut(&port) {
            None => {
                ports.insert(
                    port,
                    Membership {
                        count: 1,
                        meta: meta.clone(),
                    },
                );
                self.note(group, port, false, State::Member(meta.clone()));
                Effect::Joined(meta)
            }
            Some(m) => {
                m.count += 1;
                return Some((id, self.set_meta(group, port, meta)));
            }
        };
        Some((id, effect))
    }

    /// Sets the metadata of the registration's port in its group. Returns
    /// the group, the port and what it did; `None` if the registration is
    /// not live.
    pub(crate) fn update_meta(
        &mut self,
        id: RegId,
        meta: Meta,
    ) -> Option<(GroupName, u64, Effect)> {
        let (group, port) = self.regs.get(&id)?.clone();
        let effect = self.set_meta(group.clone(), port, meta);
        Some((group, port, effect))
    }

    /// A member's metadata is now `meta`.
    fn set_meta(&mut self, group: GroupName, port: u64, meta: Meta) -> Effect {
        let Some(m) = self.groups.get_mut(&group).and_then(|g| g.get_mut(&port)) else {
            return Effect::Unchanged;
        };
        if m.meta == meta {
            return Effect::Unchanged;
        }
        m.meta = meta.clone();
        self.note(group, port, true, State::Member(meta.clone()));
        Effect::Updated(meta)
    }

    /// Ends a registration. Returns its group and port, and whether the port
    /// left the group; `None` if it was not live.
    pub(crate) fn unregister(&mut self, id: RegId) -> Option<(GroupName, u64, bool)> {
        let (group, port) = self.regs.remove(&id)?;
        if let Some(regs) = self.ports.get_mut(&port) {
            regs.retain(|r| *r != id);
        }
        let left = self.drop_count(&group, port, LeaveReason::Unregistered);
        Some((group, port, left))
    }

    /// Closes a port and ends its registrations. Returns the groups it left,
    /// `None` if the port was not live.
    pub(crate) fn close_port(&mut self, port: u64) -> Option<Vec<GroupName>> {
        let regs = self.ports.remove(&port)?;
        let mut left = Vec::new();
        for id in regs {
            if let Some((group, _)) = self.regs.remove(&id) {
                if self.drop_count(&group, port, LeaveReason::PortClosed) {
                    left.push(group);
                }
            }
        }
        Some(left)
    }

    fn drop_count(&mut self, group: &GroupName, port: u64, why: LeaveReason) -> bool {
        let Some(ports) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(m) = ports.get_mut(&port) else {
            return false;
        };
        m.count -= 1;
        if m.count > 0 {
            return false;
        }
        ports.remove(&port);
        if ports.is_empty() {
            self.groups.remove(group);
        }
        self.note(group.clone(), port, true, State::Left(why));
        true
    }

    /// Records a change for the next batch, `was_member` saying what it
    /// changes from: only the last state of a port goes out, and a port
    /// that joins and leaves again before peers heard of it goes out not at all.
    fn note(&mut self, group: GroupName, port: u64, was_member: bool, state: State) {
        let pending = self.pending.entry(group.clone()).or_default();
        let known = pending.get(&port).map_or(was_member, |p| p.known);
        if !known && matches!(state, State::Left(_)) {
            pending.remove(&port);
            if pending.is_empty() {
                self.pending.remove(&group);
            }
            return;
        }
        pending.insert(port, Pending { known, state });
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the unsent changes, grouped and sorted.
    pub(crate) fn take_pending(&mut self) -> Vec<Change> {
        let pending = core::mem::take(&mut self.pending);
        pending
            .into_iter()
            .flat_map(|(g, ports)| ports.into_iter().map(move |(p, c)| (g.clone(), p, c.state)))
            .collect()
    }

    /// Current memberships in (group, port) order, those after `after` only
    /// (all of them from `None`): the snapshot a new peer gets, read a chunk
    /// at a time.
    pub(crate) fn memberships_after<'a>(
        &'a self,
        after: Option<&(GroupName, u64)>,
    ) -> impl Iterator<Item = (&'a GroupName, u64, &'a Meta)> + 'a {
        let (rest_of_group, later_groups) = match after {
            None => (None, self.groups.range::<str, _>((Unbounded, Unbounded))),
            Some((group, port)) => (
                self.groups
                    .get_key_value(&**group)
                    .map(|(g, ports)| (g, ports.range((Excluded(*port), Unbounded)))),
                self.groups.range::<str, _>((Excluded(&**group), Unbounded)),
            ),
        };
        let rest_of_group = rest_of_group
            .into_iter()
            .flat_map(|(g, ports)| ports.map(move |(p, m)| (g, *p, &m.meta)));
        let later_groups =
            later_groups.flat_map(|(g, ports)| ports.iter().map(move |(p, m)| (g, *p, &m.meta)));
        rest_of_group.chain(later_groups)
    }
}
