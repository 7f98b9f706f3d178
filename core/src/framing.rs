//! Byte streams to length-prefixed units, every length checked before buffering.
//!
//! TCP gives no message boundaries. Two layers split what a socket read
//! returned, split at any byte, into the same units in the same order whatever
//! the split:
//! - [`RecordReader`]: the wire's records (handshake records, then sealed
//!   Noise messages). It buffers at most one record, and refuses a length over
//!   its limit as soon as the four length bytes are in.
//! - [`FrameReader`]: the frames inside the opened records. A length over the
//!   maximum frame size is refused as soon as its four bytes are in, before
//!   the body is buffered.

use alloc::vec::Vec;

use crate::wire::{DecodeError, Frame, LEN_PREFIX};

/// Buffer capacity kept between frames; more is given back once drained.
const KEEP_CAPACITY: usize = 8 * 1024;

/// The length in a 4-byte little-endian prefix.
fn prefixed_len(prefix: &[u8]) -> usize {
    let mut len = [0u8; LEN_PREFIX];
    len.copy_from_slice(&prefix[..LEN_PREFIX]);
    u32::from_le_bytes(len) as usize
}

/// Reassembles frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
    max_frame: usize,
    failed: bool,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: Vec::new(),
            pos: 0,
            max_frame,
            failed: false,
        }
    }

    /// Appends received bytes. Call [`next_frame`](Self::next_frame) until it
    /// returns `Ok(None)` afterwards.
    pub fn push(&mut self, bytes: &[u8]) {
        // Copying into the slice given cannot fail.
        let _ = self.push_with::<()>(bytes.len(), |dst| {
            dst.copy_from_slice(bytes);
            Ok(bytes.len())
        });
    }

    /// Appends what `write` puts into a slice of `room` bytes (it returns how
    /// many it wrote): an opened record goes straight into the frame buffer.
    pub fn push_with<E>(
        &mut self,
        room: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<(), E> {
        if self.failed {
            return Ok(());
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            // An idle connection does not keep a large frame's buffer.
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
        } else if self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + room, 0);
        let written = write(&mut self.buf[start..]);
        self.buf.truncate(start + *written.as_ref().unwrap_or(&0));
        written.map(|_| ())
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the
    /// error that ends this stream (after which it yields nothing more).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        if self.failed {
            return Ok(None);
        }
        let rest = &self.buf[self.pos..];
        if rest.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = prefixed_len(rest);
        if len > self.max_frame {
            return Err(self.fail(DecodeError::TooLarge {
                len,
                max: self.max_frame,
            }));
        }
        let Some(body) = rest.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        match Frame::decode(body) {
            Ok(frame) => {
                self.pos += LEN_PREFIX + len;
                Ok(Some(frame))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = true;
        self.buf = Vec::new();
        self.pos = 0;
        e
    }
}

/// Splits a byte stream into records, holding at most one record at a time.
///
/// [`fill`](Self::fill) takes from its input only the bytes the current
/// record still needs, so whatever a peer sends, the reader holds at most
/// `LEN_PREFIX + max` bytes.
#[derive(Debug)]
pub struct RecordReader {
    buf: Vec<u8>,
    max: usize,
}

impl RecordReader {
    /// A reader that refuses record bodies longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        RecordReader {
            buf: Vec::new(),
            max,
        }
    }

    /// Changes the largest record body accepted from the next record on.
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Moves bytes from the front of `input` into the current record; true
    /// once it is complete (read it with [`record`](Self::record) and
    /// [`consume`](Self::consume) it, or take it with
    /// [`take_record`](Self::take_record)). A length over the limit is an error as
    /// soon as it is read.
    pub fn fill(&mut self, input: &mut &[u8]) -> Result<bool, DecodeError> {
        if self.buf.len() < LEN_PREFIX {
            let take = (LEN_PREFIX - self.buf.len()).min(input.len());
            self.take(input, take);
            if self.buf.len() < LEN_PREFIX {
                return Ok(false);
            }
        }
        let len = self.body_len(&self.buf)?;
        let need = LEN_PREFIX + len - self.buf.len();
        let take = need.min(input.len());
        self.take(input, take);
        Ok(take == need)
    }

    /// The body length a record's prefix announces, refused over the limit.
    fn body_len(&self, prefix: &[u8]) -> Result<usize, DecodeError> {
        let len = prefixed_len(prefix);
        if len > self.max {
            return Err(DecodeError::TooLarge { len, max: self.max });
        }
        Ok(len)
    }

    fn take(&mut self, input: &mut &[u8], n: usize) {
        let (head, rest) = input.split_at(n);
        self.buf.extend_from_slice(head);
        *input = rest;
    }

    /// The body of the complete record.
    pub fn record(&self) -> &[u8] {
        self.buf.get(LEN_PREFIX..).unwrap_or_default()
    }

    /// Forgets the complete record, ready for the next.
    pub fn consume(&mut self) {
        self.buf.clear();
    }

    /// Takes the complete record (length prefix included) out of the
    /// reader, to be read while the reader is used; hand the buffer back
    /// with [`give_back`](Self::give_back).
    pub fn take_record(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }

    /// Returns a buffer taken with [`take_record`](Self::take_record),
    /// emptied, ready for the next record (its capacity, at most one record,
    /// is kept).
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.buf = buf;
    }

    /// The body of a whole record at the front of `input`, taken from it
    /// without copying, when no record is partly buffered; `Ok(None)` when
    /// the record is not all there (then [`fill`](Self::fill) buffers it).
    pub fn whole<'a>(&self, input: &mut &'a [u8]) -> Result<Option<&'a [u8]>, DecodeError> {
        if !self.buf.is_empty() || input.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = self.body_len(input)?;
        let all: &'a [u8] = input;
        let Some(body) = all.get(LEN_PREFIX..LEN_PREFIX + len) else {
            return Ok(None);
        };
        *input = &all[LEN_PREFIX + len..];
        Ok(Some(body))
    }
}
