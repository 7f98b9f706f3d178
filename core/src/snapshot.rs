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

use alloc::collections::VecDeque;

use crate::batch::{BatchKind, Encoder};
use crate::conn::Conn;
use crate::ids::{ConnId, GroupName};
use crate::node::Node;

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

/// Connections whose next chunk is due at the next `poll_transmit`.
pub(crate) type Due = VecDeque<ConnId>;

impl Node {
    /// Starts sending our snapshot on `id`: its first chunk comes out with
    /// the next `poll_transmit`, after what is queued on it now.
    pub(crate) fn start_snapshot(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.snapshot = Some(Outgoing::default());
            self.snapshots_due.push_back(id);
        }
    }

    /// Writes the next chunk of every snapshot that is due. Only
    /// `poll_transmit` calls it, right after `flush_local`.
    pub(crate) fn feed_snapshots(&mut self) {
        while let Some(id) = self.snapshots_due.pop_front() {
            let now = self.now;
            let budget = self.cfg.snapshot_chunk;
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            let Some(frames) = write_chunk(c, &self.local, budget) else {
                continue;
            };
            self.stats.frames_out += frames as u64;
            c.last_send = c.last_send.max(now);
            self.mark_dirty(id);
        }
    }

    /// `poll_transmit` handed out what was queued on `id`: unpaced, the
    /// next chunk is due.
    pub(crate) fn snapshot_taken(&mut self, id: ConnId) {
        if !self.cfg.paced_snapshots {
            self.release_chunk(id);
        }
    }

    /// The next chunk on `id` is due, if one is waiting and everything
    /// queued on the connection was handed out.
    pub(crate) fn release_chunk(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.has_output() {
            return;
        }
        if let Some(s) = c.snapshot.as_mut().filter(|s| s.waiting) {
            s.waiting = false;
            self.snapshots_due.push_back(id);
        }
    }
}

/// Appends the next chunk of `c`'s snapshot to its output, from our
/// memberships in `local`; the snapshot ends with its `done` chunk. Returns
/// the frames written, `None` if no chunk was due.
fn write_chunk(c: &mut Conn, local: &crate::local::Local, budget: usize) -> Option<usize> {
    let Conn {
        snapshot,
        out,
        peer_max_frame,
        ..
    } = c;
    let s = snapshot.as_mut().filter(|s| !s.waiting)?;
    let start = out.len();
    let mut enc = Encoder::new(BatchKind::Snapshot, *peer_max_frame);
    let mut members = local.memberships_after(s.after.as_ref()).peekable();
    let mut last = None;
    for (group, port) in members.by_ref() {
        enc.push(out, group, port, true);
        last = Some((group, port));
        if out.len() - start + enc.pending() >= budget {
            break;
        }
    }
    let done = members.peek().is_none();
    let frames = enc.finish(out, done);
    s.chunks += 1;
    if done {
        tracing::debug!(conn = %c.id, chunks = s.chunks, "snapshot sent");
        *snapshot = None;
    } else {
        s.waiting = true;
        if let Some((group, port)) = last {
            s.after = Some((group.clone(), port));
        }
    }
    Some(frames)
}
