//! Byte stream to frames: length-prefixed, checked before buffering.
//!
//! TCP gives no message boundaries. [`FrameReader`] takes whatever the socket
//! read returned, split at any byte, and yields the same frames in the same
//! order whatever the split. A length over the limit is refused as soon as its
//! four bytes are in, before the body is buffered.

use alloc::vec::Vec;

use crate::wire::{DecodeError, Frame, LEN_PREFIX};

/// Buffer capacity kept between frames; more is given back once drained.
const KEEP_CAPACITY: usize = 8 * 1024;

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
        if self.failed {
            return;
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
        self.buf.extend_from_slice(bytes);
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
        let Some(prefix) = rest.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; LEN_PREFIX];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_le_bytes(len_bytes) as usize;
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
