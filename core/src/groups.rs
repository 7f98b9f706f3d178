//! The group view: every group's members as this node sees them, with
//! their metadata, and the monitors watching them. This is the one place
//! deltas are made.
//!
//! Rules kept here: members are sorted and listed once; a change that changes
//! nothing emits nothing; every monitor of a group gets one event per
//! applied batch, with `added`, `removed` and `updated` never all empty; a
//! new monitor gets `(members, members, [])` with every member's metadata
//! at once if the group is non-empty.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::event::{Event, GroupDelta, Removal};
use crate::ids::{GroupName, MonitorId, PortId};
use crate::meta::{self, Meta};

#[derive(Debug, Default)]
struct Entry {
    members: Vec<PortId>,
    /// The metadata of members that have some (absent: none).
    meta: BTreeMap<PortId, Meta>,
    monitors: Vec<MonitorId>,
}

impl Entry {
    /// Sets `port`'s metadata; false if it already was that.
    fn set_meta(&mut self, port: &PortId, meta: &Meta) -> bool {
        if meta.is_empty() {
            return self.meta.remove(port).is_some();
        }
        self.meta
            .insert(port.clone(), meta.clone())
            .is_none_or(|old| old != *meta)
    }
}

/// One batch of changes to a group, each list sorted by port, a port in
/// one list at most: ports that join (with their metadata), members whose
/// metadata is now this, and ports that leave (and why).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) added: Vec<(PortId, Meta)>,
    pub(crate) updated: Vec<(PortId, Meta)>,
    pub(crate) removed: Vec<(PortId, Removal)>,
}

impl Batch {
    /// `port` joins with `meta`.
    pub(crate) fn join(port: PortId, meta: Meta) -> Batch {
        Batch {
            added: alloc::vec![(port, meta)],
            ..Batch::default()
        }
    }

    /// Member `port`'s metadata is now `meta`.
    pub(crate) fn update(port: PortId, meta: Meta) -> Batch {
        Batch {
            updated: alloc::vec![(port, meta)],
            ..Batch::default()
        }
    }

    /// `port` leaves, for `why`.
    pub(crate) fn leave(port: PortId, why: Removal) -> Batch {
        Batch {
            removed: alloc::vec![(port, why)],
            ..Batch::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }
}

/// All groups with members or monitors.
#[derive(Debug)]
pub(crate) struct Groups {
    groups: BTreeMap<GroupName, Entry>,
    monitors: BTreeMap<MonitorId, GroupName>,
    members_total: usize,
    /// What a member without metadata has.
    none: Meta,
}

impl Default for Groups {
    fn default() -> Self {
        Groups {
            groups: BTreeMap::new(),
            monitors: BTreeMap::new(),
            members_total: 0,
            none: meta::none(),
        }
    }
}

impl Groups {
    /// The members of `group`, sorted; `None` when it has none.
    pub(crate) fn members(&self, group: &str) -> Option<&[PortId]> {
        self.groups
            .get(group)
            .map(|e| e.members.as_slice())
            .filter(|m| !m.is_empty())
    }

    /// The members of `group` with their metadata, sorted; empty when it
    /// has none.
    pub(crate) fn members_with_meta<'a>(
        &'a self,
        group: &str,
    ) -> impl Iterator<Item = (&'a PortId, &'a Meta)> + 'a {
        let entry = self.groups.get(group);
        let none = &self.none;
        entry.into_iter().flat_map(move |e| {
            e.members
                .iter()
                .map(move |p| (p, e.meta.get(p).unwrap_or(none)))
        })
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

    /// Applies `batch` in one step, and tells every monitor of the group
    /// what actually changed: a port already a member is not added again
    /// (its metadata is updated if it differs), an absent one not removed,
    /// a metadata "change" to what a member has is none.
    pub(crate) fn apply(&mut self, group: &GroupName, batch: Batch, events: &mut VecDeque<Event>) {
        if batch.is_empty() {
            return;
        }
        let entry = self.groups.entry(group.clone()).or_default();
        let before = entry.members.len();
        let (did_add, did_remove) = merge(&mut entry.members, &batch.added, &batch.removed);
        self.members_total = self.members_total + entry.members.len() - before;

        let mut delta_meta: Vec<(PortId, Meta)> = Vec::new();
        let mut added = Vec::with_capacity(did_add.len());
        let mut took = did_add.iter().peekable();
        let mut updates = Vec::new();
        for (i, (port, meta)) in batch.added.iter().enumerate() {
            if took.next_if(|&&k| k == i).is_some() {
                entry.set_meta(port, meta);
                added.push(port.clone());
                delta_meta.push((port.clone(), meta.clone()));
            } else {
                // Already a member: at most a metadata change.
                updates.push((port, meta));
            }
        }
        updates.extend(batch.updated.iter().map(|(p, m)| (p, m)));
        let mut updated = Vec::new();
        for (port, meta) in updates {
            if entry.members.binary_search(port).is_ok() && entry.set_meta(port, meta) {
                updated.push(port.clone());
                delta_meta.push((port.clone(), meta.clone()));
            }
        }
        updated.sort_unstable();
        delta_meta.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut removed = Vec::with_capacity(did_remove.len());
        let mut reasons = Vec::with_capacity(did_remove.len());
        for &i in &did_remove {
            let (port, why) = &batch.removed[i];
            entry.meta.remove(port);
            removed.push(port.clone());
            reasons.push(*why);
        }

        if !added.is_empty() || !removed.is_empty() || !updated.is_empty() {
            for &monitor in &entry.monitors {
                events.push_back(Event::Group(GroupDelta {
                    monitor,
                    group: group.clone(),
                    members: entry.members.clone(),
                    added: added.clone(),
                    removed: removed.clone(),
                    reasons: reasons.clone(),
                    updated: updated.clone(),
                    meta: delta_meta.clone(),
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
        self.groups
            .entry(group.clone())
            .or_default()
            .monitors
            .push(id);
        let meta: Vec<(PortId, Meta)> = self
            .members_with_meta(&group)
            .map(|(p, m)| (p.clone(), m.clone()))
            .collect();
        if !meta.is_empty() {
            let members: Vec<PortId> = meta.iter().map(|(p, _)| p.clone()).collect();
            events.push_back(Event::Group(GroupDelta {
                monitor: id,
                group: group.clone(),
                members: members.clone(),
                added: members,
                removed: Vec::new(),
                reasons: Vec::new(),
                updated: Vec::new(),
                meta,
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

/// Something that names a port: a port, or a port with what goes with it.
pub(crate) trait Keyed {
    fn port(&self) -> &PortId;
}

impl Keyed for PortId {
    fn port(&self) -> &PortId {
        self
    }
}

impl<T> Keyed for (PortId, T) {
    fn port(&self) -> &PortId {
        &self.0
    }
}

/// Applies a sorted batch to sorted `members` and returns what really changed,
/// as indices into `added` and `removed` (ports already present are not added
/// again, absent ones not removed).
///
/// A few changes are applied one by one (a binary search and a move of the
/// tail each). A larger batch is merged with the span of `members` between
/// its smallest and largest port only, spliced back in one move: ports sort
/// by node first, so a batch from one node touches that node's run, not the
/// whole group.
pub(crate) fn merge<A: Keyed, R: Keyed>(
    members: &mut Vec<PortId>,
    added: &[A],
    removed: &[R],
) -> (Vec<usize>, Vec<usize>) {
    if added.len() + removed.len() <= 8 {
        let mut did_remove = Vec::new();
        let mut did_add = Vec::new();
        for (k, p) in removed.iter().enumerate() {
            if let Ok(i) = members.binary_search(p.port()) {
                members.remove(i);
                did_remove.push(k);
            }
        }
        for (k, p) in added.iter().enumerate() {
            if let Err(i) = members.binary_search(p.port()) {
                members.insert(i, p.port().clone());
                did_add.push(k);
            }
        }
        return (did_add, did_remove);
    }
    let (Some(first), Some(last)) = (
        [
            added.first().map(Keyed::port),
            removed.first().map(Keyed::port),
        ]
        .into_iter()
        .flatten()
        .min(),
        [
            added.last().map(Keyed::port),
            removed.last().map(Keyed::port),
        ]
        .into_iter()
        .flatten()
        .max(),
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
    let mut did_add: Vec<usize> = Vec::new();
    let mut run = Vec::with_capacity(span.len() + added.len());
    let mut a = added.iter().map(Keyed::port).enumerate().peekable();
    let mut r = removed.iter().map(Keyed::port).enumerate().peekable();
    let mut push_new = |run: &mut Vec<PortId>, k: usize, q: &PortId| {
        if did_add.last().map(|&j| added[j].port()) != Some(q) {
            run.push(q.clone());
            did_add.push(k);
        }
    };
    for p in span {
        while let Some((k, q)) = a.next_if(|(_, q)| *q < p) {
            push_new(&mut run, k, q);
        }
        while r.next_if(|(_, q)| *q < p).is_some() {}
        if let Some((k, _)) = r.next_if(|(_, q)| *q == p) {
            did_remove.push(k);
            continue;
        }
        while a.next_if(|(_, q)| *q == p).is_some() {}
        run.push(p.clone());
    }
    for (k, q) in a {
        push_new(&mut run, k, q);
    }
    if !did_add.is_empty() || !did_remove.is_empty() {
        // Grown to fit exactly: a view built from snapshots keeps no slack.
        members.reserve_exact(run.len().saturating_sub(hi - lo));
        members.splice(lo..hi, run);
    }
    (did_add, did_remove)
}
