//! This node's own ports and registrations, and the changes not yet sent.
//!
//! Rules kept here: only live local ports can be registered; a port registered
//! twice in a group is a member once, until its last registration ends;
//! closing a port ends all its registrations; changes made between two drains
//! are netted out (a join and a leave of the same port cancel) and go out as
//! one batch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Bound::{Excluded, Unbounded};

use crate::ids::{GroupName, RegId};

/// A membership transition of this node: `(group, port, joined)`.
pub(crate) type Change = (GroupName, u64, bool);

#[derive(Debug, Default)]
pub(crate) struct Local {
    /// Live ports and their registrations.
    ports: BTreeMap<u64, Vec<RegId>>,
    regs: BTreeMap<RegId, (GroupName, u64)>,
    /// Our memberships with their registration counts.
    groups: BTreeMap<GroupName, BTreeMap<u64, u32>>,
    /// Transitions peers have not been told of: the state they should end in.
    pending: BTreeMap<GroupName, BTreeMap<u64, bool>>,
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

    /// Registers a live port. Returns the registration and whether the port
    /// newly joined the group.
    pub(crate) fn register(&mut self, group: GroupName, port: u64) -> Option<(RegId, bool)> {
        let regs = self.ports.get_mut(&port)?;
        self.next_reg += 1;
        let id = RegId(self.next_reg);
        regs.push(id);
        self.regs.insert(id, (group.clone(), port));
        let count = self
            .groups
            .entry(group.clone())
            .or_default()
            .entry(port)
            .or_insert(0);
        *count += 1;
        let joined = *count == 1;
        if joined {
            self.note(group, port, true);
        }
        Some((id, joined))
    }

    /// Ends a registration. Returns its group and port, and whether the port
    /// left the group; `None` if it was not live.
    pub(crate) fn unregister(&mut self, id: RegId) -> Option<(GroupName, u64, bool)> {
        let (group, port) = self.regs.remove(&id)?;
        if let Some(regs) = self.ports.get_mut(&port) {
            regs.retain(|r| *r != id);
        }
        let left = self.drop_count(&group, port);
        Some((group, port, left))
    }

    /// Closes a port and ends its registrations. Returns the groups it left,
    /// `None` if the port was not live.
    pub(crate) fn close_port(&mut self, port: u64) -> Option<Vec<GroupName>> {
        let regs = self.ports.remove(&port)?;
        let mut left = Vec::new();
        for id in regs {
            if let Some((group, _)) = self.regs.remove(&id) {
                if self.drop_count(&group, port) {
                    left.push(group);
                }
            }
        }
        Some(left)
    }

    fn drop_count(&mut self, group: &GroupName, port: u64) -> bool {
        let Some(ports) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(count) = ports.get_mut(&port) else {
            return false;
        };
        *count -= 1;
        if *count > 0 {
            return false;
        }
        ports.remove(&port);
        if ports.is_empty() {
            self.groups.remove(group);
        }
        self.note(group.clone(), port, false);
        true
    }

    /// Records a transition for the next batch; a transition that undoes an
    /// unsent one cancels it.
    fn note(&mut self, group: GroupName, port: u64, joined: bool) {
        let pending = self.pending.entry(group.clone()).or_default();
        match pending.get(&port) {
            Some(&was) if was != joined => {
                pending.remove(&port);
                if pending.is_empty() {
                    self.pending.remove(&group);
                }
            }
            _ => {
                pending.insert(port, joined);
            }
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the unsent transitions, grouped and sorted.
    pub(crate) fn take_pending(&mut self) -> Vec<Change> {
        let pending = core::mem::take(&mut self.pending);
        pending
            .into_iter()
            .flat_map(|(g, ports)| ports.into_iter().map(move |(p, j)| (g.clone(), p, j)))
            .collect()
    }

    /// Current memberships in (group, port) order, those after `after` only
    /// (all of them from `None`): the snapshot a new peer gets, read a chunk
    /// at a time.
    pub(crate) fn memberships_after<'a>(
        &'a self,
        after: Option<&(GroupName, u64)>,
    ) -> impl Iterator<Item = (&'a GroupName, u64)> + 'a {
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
            .flat_map(|(g, ports)| ports.map(move |(p, _)| (g, *p)));
        let later_groups = later_groups.flat_map(|(g, ports)| ports.keys().map(move |p| (g, *p)));
        rest_of_group.chain(later_groups)
    }
}
