//! What the adversary knows and holds: a tap on each direction of every
//! link (the sender's stream parsed into records, where the adversary first
//! changed it), the records it kept, and its own connection ends.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::EndKey;

/// Most bytes of a sender's opening kept per link.
const OPENING: usize = 2048;
/// Most records kept for replays.
pub(crate) const KEPT_RECORDS: usize = 64;
/// One in this many transmits is altered on the way, while active.
pub(crate) const ON_PATH_ODDS: u32 = 12;

/// What the adversary knows of one direction of a link (kept in its pipe).
#[derive(Debug, Default)]
pub(crate) struct Tap {
    /// The sender's stream, parsed into records: the length bytes of the
    /// current record read so far, and its body bytes still to come.
    pub(crate) prefix: Vec<u8>,
    pub(crate) body_left: usize,
    /// Whole records the sender sent.
    pub(crate) records: u64,
    /// The sender's first bytes (its version record, greeting, ...).
    pub(crate) opening: Vec<u8>,
    /// Bytes pushed into the pipe and delivered from it, the adversary's too.
    pub(crate) pushed: u64,
    pub(crate) delivered: u64,
    /// Where the adversary's first change to this stream starts.
    pub(crate) tainted_from: Option<u64>,
    /// Where the first whole bad record ends, if the first change was one.
    pub(crate) checkpoint: Option<u64>,
}

impl Tap {
    /// The stream is between two records of the sender.
    pub(crate) fn at_boundary(&self) -> bool {
        self.prefix.is_empty() && self.body_left == 0
    }

    /// Parses what the sender sends next: the records that lie whole in
    /// `data`, as (start, end, index in the stream).
    pub(crate) fn parse(&mut self, data: &[u8]) -> Vec<(usize, usize, u64)> {
        if self.opening.len() < OPENING {
            let take = (OPENING - self.opening.len()).min(data.len());
            self.opening.extend_from_slice(&data[..take]);
        }
        let mut whole = Vec::new();
        let mut start = None;
        let mut i = 0;
        while i < data.len() || (self.body_left == 0 && self.prefix.len() == LEN_PREFIX) {
            if self.body_left == 0 && self.prefix.len() < LEN_PREFIX {
                if self.prefix.is_empty() {
                    start = Some(i);
                }
                let take = (LEN_PREFIX - self.prefix.len()).min(data.len() - i);
                self.prefix.extend_from_slice(&data[i..i + take]);
                i += take;
                if self.prefix.len() < LEN_PREFIX {
                    break;
                }
            }
            if self.prefix.len() == LEN_PREFIX {
                let mut len = [0u8; LEN_PREFIX];
                len.copy_from_slice(&self.prefix);
                self.body_left = u32::from_le_bytes(len) as usize;
                self.prefix.clear();
            }
            let take = self.body_left.min(data.len() - i);
            i += take;
            self.body_left -= take;
            if self.body_left == 0 {
                if let Some(s) = start.take() {
                    whole.push((s, i, self.records));
                }
                self.records += 1;
            }
        }
        whole
    }

    /// Notes a change at `from`; `checkpoint` if it is a whole bad record
    /// ending there. Only the first change of a stream is judged exactly,
    /// and only while no later change moved bytes ahead of its end.
    pub(crate) fn taint(&mut self, from: u64, checkpoint: Option<u64>) {
        if self.tainted_from.is_none() {
            self.tainted_from = Some(from);
            self.checkpoint = checkpoint;
        } else if self.checkpoint.is_some_and(|c| from < c) {
            self.checkpoint = None;
        }
    }
}

pub(crate) const LEN_PREFIX: usize = groupmesh_core::wire::LEN_PREFIX;

/// One of the adversary's own connection ends.
#[derive(Debug)]
pub(crate) struct Own {
    /// Its side of the link.
    pub(crate) side: usize,
    /// The own end whose node gets what this end's node sends.
    pub(crate) forward: Option<usize>,
}

/// The adversary's state. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Adversary {
    pub(crate) active: bool,
    /// Whole records seen on any link, for replays.
    pub(crate) records: Vec<Vec<u8>>,
    /// Its own connection ends, by link.
    pub(crate) own: BTreeMap<usize, Own>,
    pub(crate) next_conn: u64,
    /// Node ends that took in a whole record nobody sealed for them: their
    /// node closes them in that input.
    pub(crate) must_close: BTreeSet<EndKey>,
}
