//! A peer's own memberships as its stream announced them, and how its
//! `Sync` and `Update` entries change them.
//!
//! Rules kept here: each entry of a frame gives a port's whole state (a
//! member with this metadata, or gone and why), so applying entries in
//! order leaves each port in the last state announced; within one entry a
//! port that joins and leaves changes nothing the view shows; a member's
//! metadata is at most `max_meta` bytes, and a peer's view stays within its
//! limits (groups, members, metadata bytes), checked after each entry.

use alloc::collections::btree_map::Entry;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::config::Limits;
use crate::event::Limit;
use crate::ids::GroupName;
use crate::meta::{self, Meta};
use crate::wire::{LeaveReason, WireLeave, WirePort};

/// A peer's own memberships as it announced them: group → port number →
/// metadata, with the totals its limits count.
#[derive(Debug, Clone)]
pub(crate) struct RemoteView {
    pub(crate) groups: BTreeMap<GroupName, BTreeMap<u64, Meta>>,
    pub(crate) members: usize,
    /// Bytes of metadata over all members.
    pub(crate) meta_bytes: usize,
    /// Shared by the members without metadata.
    none: Meta,
}

impl Default for RemoteView {
    fn default() -> Self {
        RemoteView {
            groups: BTreeMap::new(),
            members: 0,
            meta_bytes: 0,
            none: meta::none(),
        }
    }
}

/// What announcing a member did to a [`RemoteView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// The port joined, with this metadata.
    Added(Meta),
    /// The port was a member; its metadata is now this.
    Updated(Meta),
    /// The port was a member with this metadata already.
    Same,
}

impl RemoteView {
    /// The port is a member with `meta`.
    fn set(&mut self, group: &GroupName, port: u64, meta: &[u8]) -> Seen {
        let ports = match self.groups.get_mut(group) {
            Some(ports) => ports,
            None => self.groups.entry(group.clone()).or_default(),
        };
        let entry = ports.entry(port);
        if let Entry::Occupied(old) = &entry {
            if **old.get() == *meta {
                return Seen::Same;
            }
        }
        let meta = if meta.is_empty() {
            self.none.clone()
        } else {
            Meta::from(meta)
        };
        self.meta_bytes += meta.len();
        match entry {
            Entry::Occupied(mut old) => {
                self.meta_bytes -= old.insert(meta.clone()).len();
                Seen::Updated(meta)
            }
            Entry::Vacant(slot) => {
                slot.insert(meta.clone());
                self.members += 1;
                Seen::Added(meta)
            }
        }
    }

    /// Removes a port; false if it was not there.
    fn leave(&mut self, group: &str, port: u64) -> bool {
        let Some(ports) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(old) = ports.remove(&port) else {
            return false;
        };
        if ports.is_empty() {
            self.groups.remove(group);
        }
        self.members -= 1;
        self.meta_bytes -= old.len();
        true
    }

    /// The limit this view is past, if any.
    fn check(&self, limits: &Limits) -> Result<(), Limit> {
        if self.groups.len() > limits.max_groups_per_peer {
            Err(Limit::Groups)
        } else if self.members > limits.max_members_per_peer {
            Err(Limit::Members)
        } else if self.meta_bytes > limits.max_meta_bytes_per_peer {
            Err(Limit::MetaBytes)
        } else {
            Ok(())
        }
    }
}

/// What one entry changed in a view: ports that joined (with their
/// metadata), members whose metadata changed, ports that left (and why);
/// each sorted by port number.
#[derive(Debug, Default)]
pub(crate) struct Changed {
    pub(crate) added: Vec<(u64, Meta)>,
    pub(crate) updated: Vec<(u64, Meta)>,
    pub(crate) removed: Vec<(u64, LeaveReason)>,
}

impl RemoteView {
    /// Applies one entry of the peer's frame: `joined` ports are members
    /// with their metadata, `left` ones are not. Returns what changed, and
    /// the limit the peer went past if it did (the connection is then to
    /// be closed; what changed up to there is in the view, and must reach
    /// the group view too, so that the two stay one when the peer's members
    /// are dropped).
    pub(crate) fn apply(
        &mut self,
        group: &GroupName,
        joined: &[WirePort],
        left: &[WireLeave],
        limits: &Limits,
    ) -> (Changed, Result<(), Limit>) {
        let mut added = BTreeMap::new();
        let mut updated = BTreeMap::new();
        let mut verdict = Ok(());
        for p in joined {
            if p.meta.len() > limits.max_meta {
                verdict = Err(Limit::MetaSize);
                break;
            }
            match self.set(group, p.number, &p.meta) {
                Seen::Added(meta) => {
                    added.insert(p.number, meta);
                }
                Seen::Updated(meta) => match added.get_mut(&p.number) {
                    Some(a) => *a = meta,
                    None => {
                        updated.insert(p.number, meta);
                    }
                },
                Seen::Same => {}
            }
        }
        let mut removed = BTreeMap::new();
        for l in left.iter().filter(|_| verdict.is_ok()) {
            if self.leave(group, l.number) && added.remove(&l.number).is_none() {
                updated.remove(&l.number);
                removed.insert(l.number, l.reason);
            }
        }
        let changed = Changed {
            added: added.into_iter().collect(),
            updated: updated.into_iter().collect(),
            removed: removed.into_iter().collect(),
        };
        (changed, verdict.and_then(|()| self.check(limits)))
    }
}
