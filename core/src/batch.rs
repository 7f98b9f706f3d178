//! Membership changes into as few frames as fit: one frame per batch unless the
//! batch outgrows the frame size (or the per-frame bounds), in which case it is
//! split at a port boundary, a group's list continuing in the next frame.

use alloc::vec::Vec;

use crate::local::{Change, State};
use crate::wire::{
    BoundedVec, Frame, GroupChange, GroupPorts, Payload, WireGroup, WireLeave, WirePort,
    MAX_GROUPS_PER_FRAME, MAX_PORTS_PER_ENTRY,
};

/// Which frame a batch goes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchKind {
    /// Part of the snapshot after authentication: `Sync` frames, the last
    /// one `done` if the batch ends the snapshot.
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

/// Membership changes in, frames out: each frame is written to the output
/// as soon as the next change does not fit it.
pub(crate) struct Encoder {
    kind: BatchKind,
    budget: usize,
    entries: Vec<GroupChange>,
    size: usize,
    ports_in_last: usize,
    frames: usize,
}

impl Encoder {
    /// Frames of `kind` of at most `max_frame` body bytes.
    pub(crate) fn new(kind: BatchKind, max_frame: usize) -> Encoder {
        Encoder {
            kind,
            budget: max_frame,
            entries: Vec::new(),
            size: FRAME_OVERHEAD,
            ports_in_last: 0,
            frames: 0,
        }
    }

    /// Bytes the frame being built will take, at most.
    pub(crate) fn pending(&self) -> usize {
        self.size
    }

    /// Adds one change (changes come grouped by group name), writing the
    /// frame before it to `out` if the change does not fit that one.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, group: &str, port: u64, state: &State) {
        // The port, then its metadata with its length or the reason's tag.
        let port_size = varint_len(port)
            + match state {
                State::Member(meta) => varint_len(meta.len() as u64) + meta.len(),
                State::Left(_) => 1,
            };
        let same_group = self
            .entries
            .last()
            .is_some_and(|e| e.group.as_str() == group)
            && self.ports_in_last < MAX_PORTS_PER_ENTRY;
        let need = port_size + if same_group { 0 } else { entry_overhead(group) };
        let full = self.size + need > self.budget
            || (!same_group && self.entries.len() == MAX_GROUPS_PER_FRAME);
        if full {
            self.flush(out, false);
        }
        if !same_group || full {
            let mut name = WireGroup::new();
            name.push_str(group)
                .unwrap_or_else(|_| unreachable!("group names are checked at registration"));
            self.entries.push(GroupChange {
                group: name,
                joined: BoundedVec::new(),
                left: BoundedVec::new(),
            });
            self.size += entry_overhead(group);
            self.ports_in_last = 0;
        }
        let entry = self
            .entries
            .last_mut()
            .unwrap_or_else(|| unreachable!("pushed above"));
        let full = "ports_in_last < MAX_PORTS_PER_ENTRY";
        match state {
            State::Member(meta) => entry
                .joined
                .try_push(WirePort {
                    number: port,
                    meta: Payload::from(meta.to_vec()),
                })
                .unwrap_or_else(|_| unreachable!("{full}")),
            State::Left(reason) => entry
                .left
                .try_push(WireLeave {
                    number: port,
                    reason: *reason,
                })
                .unwrap_or_else(|_| unreachable!("{full}")),
        }
        self.ports_in_last += 1;
        self.size += port_size;
    }

    /// Writes the last frame (for a snapshot, `done` says whether it ends
    /// it; a snapshot's last frame is written even with no entry). Returns
    /// the number of frames written.
    pub(crate) fn finish(mut self, out: &mut Vec<u8>, done: bool) -> usize {
        self.flush(out, done);
        self.frames
    }

    /// Encodes the entries gathered so far as one frame.
    fn flush(&mut self, out: &mut Vec<u8>, done: bool) {
        let entries = core::mem::take(&mut self.entries);
        self.size = FRAME_OVERHEAD;
        self.ports_in_last = 0;
        let frame = match self.kind {
            BatchKind::Update => {
                if entries.is_empty() {
                    return;
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
        self.frames += 1;
    }
}

fn bounded<T, const N: usize>(v: Vec<T>) -> BoundedVec<T, N> {
    BoundedVec::try_from_vec(v)
        .unwrap_or_else(|_| unreachable!("the encoder keeps each list within its bound"))
}

/// Encodes `changes` (grouped by group name, in order) as frames of at most
/// `max_frame` body bytes, appended to `out`; a snapshot's last frame is
/// `done`. Returns the number of frames.
pub(crate) fn encode(
    kind: BatchKind,
    changes: impl IntoIterator<Item = Change>,
    max_frame: usize,
    out: &mut Vec<u8>,
) -> usize {
    let mut e = Encoder::new(kind, max_frame);
    for (group, port, state) in changes {
        e.push(out, &group, port, &state);
    }
    e.finish(out, true)
}
