//! Our snapshot, on its way to a new peer a chunk at a time.
//!
//! A connection being sent our snapshot keeps a cursor (the last group and
//! port sent), never a built snapshot. Each chunk (`Sync` frames of about
//! `Config::snapshot_chunk` bytes, the last one `done`) is made from our
//! registrations as they are when it is made, and only in `poll_transmit`,
//! right after `flush_local` sent every pending change to every peer. The
//! next chunk is due once the driver reports the connection drained
//! (`Config::paced_snapshots`) or, unpaced, once `poll_transmit` handed this
//! one out; so at most one chunk is in the node, and (paced) one beyond the
//! driver's low-water mark.
//!
//! Changes keep going to the connection as `Update` frames meanwhile, in
//! order with the chunks, and the peer applies them to the view its snapshot
//! builds (a join of a listed port or a leave of an unlisted one changes
//! nothing). Why the view is exact at `done`: take one membership `k`, and
//! the chunk that passed it, made at `t`. Every change made before `t` was
//! flushed before `t`, so a change to `k` sent on this connection before
//! `t` is on the stream ahead of that chunk, and every change made after
//! `t` is flushed after it. Ahead of the chunk, the peer's view has `k` if
//! the last change to `k` on the stream was a join (that change gives `k`'s
//! state at `t`), and lacks it if it was a leave or there was none; the
//! chunk lists `k` exactly if it is held at `t`. So after the chunk the view
//! has `k`'s state at `t` either way, and the changes after it carry it on.
//! Flushing first is what makes it so: a chunk made while a change is still
//! pending could list a join that a later leave nets away before either is
//! sent (`tests/snapshot.rs`, the registration made and ended between two
//! chunks).

use alloc::vec::Vec;

use crate::batch::{BatchKind, Encoder};
use crate::ids::GroupName;
use crate::local::{Local, State};

/// Where a snapshot going out on one connection stands.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    /// The last membership sent; `None` before the first chunk.
    after: Option<(GroupName, u64)>,
    /// A chunk went out; the next waits to be released (see the module).
    waiting: bool,
    /// Chunks written so far.
    chunks: usize,
}

impl Outgoing {
    /// Chunks written so far.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks
    }

    /// A chunk went out: the next is due (see the module). False if none
    /// was waiting.
    pub(crate) fn release(&mut self) -> bool {
        core::mem::replace(&mut self.waiting, false)
    }

    /// Appends the next chunk of the snapshot to `out`, in frames of at
    /// most `max_frame` bytes, from our memberships in `local`: about
    /// `budget` bytes, the last chunk `done`. Returns the frames written and
    /// whether the snapshot is done; `None` if no chunk was due.
    pub(crate) fn write_chunk(
        &mut self,
        out: &mut Vec<u8>,
        max_frame: usize,
        local: &Local,
        budget: usize,
    ) -> Option<(usize, bool)> {
        if self.waiting {
            return None;
        }
        let start = out.len();
        let mut enc = Encoder::new(BatchKind::Snapshot, max_frame);
        let mut members = local.memberships_after(self.after.as_ref()).peekable();
        let mut last = None;
        for (group, port, meta) in members.by_ref() {
            enc.push(out, group, port, &State::Member(meta.clone()));
            last = Some((group, port));
            if out.len() - start + enc.pending() >= budget {
                break;
            }
        }
        let done = members.peek().is_none();
        let frames = enc.finish(out, done);
        self.chunks += 1;
        if !done {
            self.waiting = true;
            if let Some((group, port)) = last {
                self.after = Some((group.clone(), port));
            }
        }
        Some((frames, done))
    }
}
