//! The group view: every group's members as this node sees them, and the
//! monitors watching them. This is the one place deltas are made.
//!
//! Rules kept here: members are sorted and listed once; a change that changes
//! nothing emits nothing; every monitor of a group gets one
//! `(members, added, removed)` event per applied batch; a new monitor gets
//! `(members, members, [])` at once if the group is non-empty.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::event::{Event, GroupDelta};
use crate::ids::{GroupName, MonitorId, PortId};

#[derive(Debug, Default)]
struct Entry {
    members: Vec<PortId>,
    monitors: Vec<MonitorId>,
}

/// All groups with members or monitors.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    groups: BTreeMap<GroupName, Entry>,
    monitors: BTreeMap<MonitorId, GroupName>,
    members_total: usize,
}

impl Groups {
    /// The members of `group`, sorted; `None` when it has none.
    pub(crate) fn members(&self, group: &str) -> Option<&[PortId]> {
        self.groups
            .get(group)
            .map(|e| e.members.as_slice())
            .filter(|m| !m.is_empty())
    }

    /// Number of groups with at least one member.
    pub(crate) fn group_count(&self) -> usize {
        self.groups
            .values()
            .filter(|e| !e.members.is_empty())
            .count()
    }

    /// Number of (group, port) memberships.
    pub(crate) fn member_count(&self) -> usize {
        self.members_total
    }

    /// Names of the groups with at least one member.
    pub(crate) fn names(&self) -> impl Iterator<Item = &GroupName> {
        self.groups
            .iter()
            .filter(|(_, e)| !e.members.is_empty())
            .map(|(g, _)| g)
    }

    /// Number of live monitors.
    pub(crate) fn monitor_count(&self) -> usize {
        self.monitors.len()
    }

    /// Adds `added` and removes `removed` (both sorted, no duplicates) in one
    /// step, and tells every monitor of the group what actually changed.
    pub(crate) fn apply(
        &mut self,
        group: &GroupName,
        added: &[PortId],
        removed: &[PortId],
        events: &mut VecDeque<Event>,
    ) {
        if added.is_empty() && removed.is_empty() {
            return;
        }
        let entry = self.groups.entry(group.clone()).or_default();
        let before = entry.members.len();
        let (added, removed) = merge(&mut entry.members, added, removed);
        self.members_total = self.members_total + entry.members.len() - before;
        if !added.is_empty() || !removed.is_empty() {
            for &monitor in &entry.monitors {
                events.push_back(Event::Group(GroupDelta {
                    monitor,
                    group: group.clone(),
                    members: entry.members.clone(),
                    added: added.clone(),
                    removed: removed.clone(),
                }));
            }
        }
        if entry.members.is_empty() && entry.monitors.is_empty() {
            self.groups.remove(group);
        }
    }

    /// Starts a monitor; its first event is queued now if the group has members.
    pub(crate) fn monitor(
        &mut self,
        id: MonitorId,
        group: GroupName,
        events: &mut VecDeque<Event>,
    ) {
        let entry = self.groups.entry(group.clone()).or_default();
        entry.monitors.push(id);
        if !entry.members.is_empty() {
            events.push_back(Event::Group(GroupDelta {
                monitor: id,
                group: group.clone(),
                members: entry.members.clone(),
                added: entry.members.clone(),
                removed: Vec::new(),
            }));
        }
        self.monitors.insert(id, group);
    }

    /// Ends a monitor. Returns false if it was not live.
    pub(crate) fn unmonitor(&mut self, id: MonitorId) -> bool {
        let Some(group) = self.monitors.remove(&id) else {
            return false;
        };
        if let Some(entry) = self.groups.get_mut(&group) {
            entry.monitors.retain(|m| *m != id);
            if entry.members.is_empty() && entry.monitors.is_empty() {
                self.groups.remove(&group);
            }
        }
        true
    }
}

/// Applies a sorted batch to sorted `members` and returns what really changed
/// (ports already present are not added again, absent ones not removed).
///
/// A few changes are applied one by one (a binary search and a move of the
/// tail each). A larger batch is merged with the span of `members` between
/// its smallest and largest port only, spliced back in one move: ports sort
/// by node first, so a batch from one node touches that node's run, not the
/// whole group.
pub(crate) fn merge(
    members: &mut Vec<PortId>,
    added: &[PortId],
    removed: &[PortId],
) -> (Vec<PortId>, Vec<PortId>) {
    if added.len() + removed.len() <= 8 {
        let mut did_remove = Vec::new();
        let mut did_add = Vec::new();
        for p in removed {
            if let Ok(i) = members.binary_search(p) {
                did_remove.push(members.remove(i));
            }
        }
        for p in added {
            if let Err(i) = members.binary_search(p) {
                members.insert(i, p.clone());
                did_add.push(p.clone());
            }
        }
        return (did_add, did_remove);
    }
    let (Some(first), Some(last)) = (
        [added.first(), removed.first()].into_iter().flatten().min(),
        [added.last(), removed.last()].into_iter().flatten().max(),
    ) else {
        return (Vec::new(), Vec::new());
    };
    let lo = members.partition_point(|p| p < first);
    let hi = lo
        + members
            .get(lo..)
            .unwrap_or_default()
            .partition_point(|p| p <= last);
    let span = members.get(lo..hi).unwrap_or_default();

    let mut did_remove = Vec::new();
    let mut did_add = Vec::new();
    let mut run = Vec::with_capacity(span.len() + added.len());
    let (mut a, mut r) = (added.iter().peekable(), removed.iter().peekable());
    for p in span {
        while let Some(q) = a.next_if(|q| *q < p) {
            if did_add.last() != Some(q) {
                run.push(q.clone());
                did_add.push(q.clone());
            }
        }
        while r.next_if(|q| *q < p).is_some() {}
        if r.next_if(|q| *q == p).is_some() {
            did_remove.push(p.clone());
            continue;
        }
        while a.next_if(|q| *q == p).is_some() {}
        run.push(p.clone());
    }
    for q in a {
        if did_add.last() != Some(q) {
            run.push(q.clone());
            did_add.push(q.clone());
        }
    }
    if !did_add.is_empty() || !did_remove.is_empty() {
        // Grown to fit exactly: a view built from snapshots keeps no slack.
        members.reserve_exact(run.len().saturating_sub(hi - lo));
        members.splice(lo..hi, run);
    }
    (did_add, did_remove)
}
