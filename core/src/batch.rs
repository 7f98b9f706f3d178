//! Membership changes into as few frames as fit: one frame per batch unless the
//! batch outgrows the frame size (or the per-frame bounds), in which case it is
//! split at a port boundary, a group's list continuing in the next frame.

use alloc::vec::Vec;

use crate::local::Change;
use crate::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, WireGroup, MAX_GROUPS_PER_FRAME,
    MAX_PORTS_PER_ENTRY,
};

/// Which frame a batch goes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    /// The snapshot after authentication: `Sync` frames, the last one `done`.
    Snapshot,
    /// Incremental changes: `Update` frames.
    Update,
}

/// Encoded size of `v` as a postcard varint.
fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Worst-case bytes an entry adds besides its ports: name (with its length)
/// and two list lengths.
fn entry_overhead(group: &str) -> usize {
    group.len() + 2 + 2 * varint_len(MAX_PORTS_PER_ENTRY as u64)
}

/// Bytes a frame adds besides its entries: tag, list length, `done`.
const FRAME_OVERHEAD: usize = 1 + 3 + 1;

struct Builder {
    kind: BatchKind,
    budget: usize,
    entries: Vec<GroupChange>,
    size: usize,
    ports_in_last: usize,
}

impl Builder {
    /// Encodes the entries gathered so far as one frame; returns 1 if it wrote one.
    fn flush(&mut self, out: &mut Vec<u8>, done: bool) -> usize {
        let entries = core::mem::take(&mut self.entries);
        self.size = FRAME_OVERHEAD;
        self.ports_in_last = 0;
        let frame = match self.kind {
            BatchKind::Update => {
                if entries.is_empty() {
                    return 0;
                }
                Frame::Update {
                    groups: bounded(entries),
                }
            }
            BatchKind::Snapshot => Frame::Sync {
                groups: bounded(
                    entries
                        .into_iter()
                        .map(|e| GroupPorts {
                            group: e.group,
                            ports: e.joined,
                        })
                        .collect(),
                ),
                done,
            },
        };
        frame.encode(out);
        1
    }
}

fn bounded<T, const N: usize>(v: Vec<T>) -> BoundedVec<T, N> {
    BoundedVec::try_from_vec(v)
        .unwrap_or_else(|_| unreachable!("the builder keeps each list within its bound"))
}

/// Encodes `changes` (grouped by group name, in order) as frames of at most
/// `max_frame` body bytes, appended to `out`. Returns the number of frames.
pub(crate) fn encode(
    kind: BatchKind,
    changes: impl IntoIterator<Item = Change>,
    max_frame: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut b = Builder {
        kind,
        budget: max_frame,
        entries: Vec::new(),
        size: FRAME_OVERHEAD,
        ports_in_last: 0,
    };
    let mut written = 0;
    for (group, port, joined) in changes {
        let port_size = varint_len(port);
        let same_group = b
            .entries
            .last()
            .is_some_and(|e| e.group.as_str() == &*group)
            && b.ports_in_last < MAX_PORTS_PER_ENTRY;
        let need = port_size
            + if same_group {
                0
            } else {
                entry_overhead(&group)
            };
        let full =
            b.size + need > b.budget || (!same_group && b.entries.len() == MAX_GROUPS_PER_FRAME);
        if full {
            written += b.flush(out, false);
        }
        if !same_group || full {
            let mut name = WireGroup::new();
            name.push_str(&group)
                .unwrap_or_else(|_| unreachable!("group names are checked at registration"));
            b.entries.push(GroupChange {
                group: name,
                joined: BoundedVec::new(),
                left: BoundedVec::new(),
            });
            b.size += entry_overhead(&group);
            b.ports_in_last = 0;
        }
        let entry = b
            .entries
            .last_mut()
            .unwrap_or_else(|| unreachable!("pushed above"));
        let list = if joined {
            &mut entry.joined
        } else {
            &mut entry.left
        };
        list.try_push(port)
            .unwrap_or_else(|_| unreachable!("ports_in_last < MAX_PORTS_PER_ENTRY"));
        b.ports_in_last += 1;
        b.size += port_size;
    }
    written + b.flush(out, true)
}
