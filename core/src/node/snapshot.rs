//! Our snapshot going out to new peers, a chunk at a time: when each chunk
//! is written and when the next is due (the rules are in `snapshot.rs`).

use super::Node;
use crate::ids::ConnId;
use crate::snapshot::Outgoing;

impl Node {
    /// Starts sending our snapshot on `id`: its first chunk comes out with
    /// the next `poll_transmit`, after what is queued on it now.
    pub(super) fn start_snapshot(&mut self, id: ConnId) {
        if let Some(c) = self.sessions.get_mut(id) {
            c.snapshot = Some(Outgoing::default());
            self.snapshots_due.push_back(id);
        }
    }

    /// Writes the next chunk of every snapshot that is due. Only
    /// `poll_transmit` calls it, right after `flush_local`.
    pub(super) fn feed_snapshots(&mut self) {
        while let Some(id) = self.snapshots_due.pop_front() {
            let now = self.now;
            let budget = self.cfg.snapshot_chunk;
            let Some(c) = self.sessions.get_mut(id) else {
                continue;
            };
            let Some(s) = c.snapshot.as_mut() else {
                continue;
            };
            let Some((frames, done)) =
                s.write_chunk(&mut c.out, c.peer_max_frame, &self.local, budget)
            else {
                continue;
            };
            if done {
                tracing::debug!(conn = %id, chunks = s.chunks(), "snapshot sent");
                c.snapshot = None;
            }
            self.stats.frames_out += frames as u64;
            c.last_send = c.last_send.max(now);
            self.mark_dirty(id);
        }
    }

    /// `poll_transmit` handed out what was queued on `id`: unpaced, the
    /// next chunk is due.
    pub(super) fn snapshot_taken(&mut self, id: ConnId) {
        if !self.cfg.paced_snapshots {
            self.release_chunk(id);
        }
    }

    /// The next chunk on `id` is due, if one is waiting and everything
    /// queued on the connection was handed out.
    pub(super) fn release_chunk(&mut self, id: ConnId) {
        let Some(c) = self.sessions.get_mut(id) else {
            return;
        };
        if c.has_output() {
            return;
        }
        if c.snapshot.as_mut().is_some_and(Outgoing::release) {
            self.snapshots_due.push_back(id);
        }
    }
}
