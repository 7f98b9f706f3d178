//! One connection's secure channel, sans-IO: the version records, the Noise
//! handshake (rules in `handshake.rs`), then every frame sealed in AEAD records.
//!
//! On the wire, everything is a record: a 4-byte little-endian length and a
//! body. Before the channel is keyed a body is a [`HandshakeRecord`] of at
//! most [`MAX_HANDSHAKE_RECORD`] bytes; after, a Noise transport message (the
//! frame stream, cut anywhere, encrypted and authenticated) of at most
//! [`MAX_RECORD`] bytes. Either length is refused before its body is buffered,
//! and the frames inside are checked against the maximum frame size before
//! theirs is. Noise's per-direction counter nonces make every record usable
//! once, in order: a replayed, reordered, dropped, truncated or altered record
//! does not open, and the connection ends with [`CloseReason::Decrypt`].
//!
//! A [`Channel`] is also how a test client or another implementation speaks
//! the protocol: the node drives one per connection.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use snow::{HandshakeState, TransportState};

use crate::event::{CloseReason, WireReason};
use crate::framing::{FrameReader, RecordReader};
use crate::handshake::{self, Psk};
use crate::wire::{
    DecodeError, Frame, HandshakeRecord, Hello, Payload, LEN_PREFIX, MAX_HANDSHAKE_RECORD,
    MAX_RECORD, PROTOCOL_VERSION, TAG_LEN,
};

/// Most plaintext bytes this side seals in one record. Noise allows up to
/// 65,519; 16 KiB (as TLS) keeps records inside one socket read, so most are
/// opened straight from it, for 20 bytes of overhead per 16 KiB.
const MAX_PLAINTEXT: usize = 16 * 1024;

/// What the peer's bytes amounted to, from [`Channel::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Responder only: the initiator's greeting. It decrypted under the key,
    /// so a node of the mesh wrote it, but maybe long ago on another
    /// connection: nothing is proven about this one yet. Answer it with
    /// [`Channel::answer`] or refuse it with [`Channel::refuse`].
    Greeting(Hello),
    /// The peer proved the key on this connection, in both directions.
    Authenticated(Hello),
    /// A frame from an authenticated peer.
    Frame(Frame),
}

enum State {
    /// Built, nothing sent yet.
    Idle(Box<HandshakeState>),
    /// Waiting for the peer's version record.
    Version(Box<HandshakeState>),
    /// Waiting for the peer's Noise message.
    Noise(Box<HandshakeState>),
    /// Responder: the greeting is read, the node decides.
    Answer(Box<HandshakeState>),
    /// Responder: answered; the initiator's first sealed record proves it.
    Confirm(Box<TransportState>),
    /// Both sides proved the key.
    Open(Box<TransportState>),
    /// Ended: refused, failed, or closed. Reads and writes nothing more.
    Done,
}

/// The secure channel of one connection (see the module docs).
pub struct Channel {
    initiator: bool,
    state: State,
    records: RecordReader,
    frames: FrameReader,
    /// Bytes for the wire, in order.
    wire: Vec<u8>,
    /// Our greeting's bytes, until they are sent.
    ours: Vec<u8>,
    /// The peer's greeting, once read.
    theirs: Option<Hello>,
    /// Reading ended with an error.
    failed: bool,
    /// Records read and accepted: handshake records, and sealed records that
    /// opened. Only these are signs of life; bytes that never make a valid
    /// record are not.
    accepted: u64,
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Version(_) => "version",
            State::Noise(_) => "noise",
            State::Answer(_) => "answer",
            State::Confirm(_) => "confirm",
            State::Open(_) => "open",
            State::Done => "done",
        };
        f.debug_struct("Channel")
            .field("initiator", &self.initiator)
            .field("state", &state)
            .field("unsent", &self.wire.len())
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel for one side of a connection: the dialler is the
    /// `initiator`. `max_frame` bounds the frames it accepts; `seed` feeds
    /// its ephemeral key.
    pub fn new(initiator: bool, psk: &Psk, max_frame: usize, seed: [u8; 32]) -> Channel {
        Channel {
            initiator,
            state: State::Idle(handshake::noise(initiator, psk, seed)),
            records: RecordReader::new(MAX_HANDSHAKE_RECORD),
            frames: FrameReader::new(max_frame),
            wire: Vec::new(),
            ours: Vec::new(),
            theirs: None,
            failed: false,
            accepted: 0,
        }
    }

    /// Starts the handshake with our greeting: the version record, and the
    /// initiator's first Noise message. Does nothing if already started.
    pub fn start(&mut self, ours: &Hello) {
        let State::Idle(hs) = core::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let mut hs = hs;
        HandshakeRecord::Version(PROTOCOL_VERSION).encode(&mut self.wire);
        self.ours = ours.to_bytes();
        if self.initiator {
            self.write_noise(&mut hs);
        }
        self.state = State::Version(hs);
    }

    /// Responder: answers the greeting, keying the channel. Does nothing in
    /// any other state.
    pub fn answer(&mut self) {
        if let State::Answer(mut hs) = core::mem::replace(&mut self.state, State::Done) {
            self.write_noise(&mut hs);
            // The answer ends the pattern.
            self.state = State::Confirm(Box::new(
                hs.into_transport_mode()
                    .expect("the responder's answer finishes the pattern, so it splits"),
            ));
        }
    }

    /// Writes our Noise message, our greeting its payload.
    fn write_noise(&mut self, hs: &mut HandshakeState) {
        let mut msg = [0u8; MAX_HANDSHAKE_RECORD];
        let len = hs
            .write_message(&self.ours, &mut msg)
            .expect("a greeting is far under the handshake record size");
        self.ours = Vec::new();
        HandshakeRecord::Noise(Payload::from(msg[..len].to_vec())).encode(&mut self.wire);
    }

    /// Ends the channel from our side, telling the peer why where it can:
    /// before the channel is keyed, in a plain `Refuse` record (a hint, as
    /// anyone on the path could forge it); after, in a sealed `Close` frame
    /// behind whatever `queued` holds.
    pub fn refuse(&mut self, reason: WireReason, queued: &mut Vec<u8>) {
        match self.state {
            State::Confirm(_) | State::Open(_) => {
                Frame::Close { reason }.encode(queued);
                self.seal(queued);
            }
            State::Idle(_) | State::Done => {}
            State::Version(_) | State::Noise(_) | State::Answer(_) => {
                HandshakeRecord::Refuse(reason).encode(&mut self.wire);
            }
        }
        self.state = State::Done;
    }

    /// True once frames can be sealed: the initiator after the answer, the
    /// responder after answering.
    pub fn is_keyed(&self) -> bool {
        matches!(self.state, State::Confirm(_) | State::Open(_))
    }

    /// True once the peer has proved the key on this connection.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// The peer's greeting, once read (proven only once authenticated).
    pub fn theirs(&self) -> Option<&Hello> {
        self.theirs.as_ref()
    }

    /// Seals `plain` (frames, cut anywhere) into records for the wire, and
    /// clears it. Does nothing before the channel is keyed.
    pub fn seal(&mut self, plain: &mut Vec<u8>) {
        let (State::Confirm(t) | State::Open(t)) = &mut self.state else {
            return;
        };
        for chunk in plain.chunks(MAX_PLAINTEXT) {
            seal_record(t, chunk, &mut self.wire);
        }
        plain.clear();
    }

    /// How many records from the peer were accepted so far (handshake
    /// records in order, sealed records that opened): a keepalive should
    /// count these, not bytes, or a stream shifted by one byte stays "alive".
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Bytes written but not yet taken.
    pub fn unsent(&self) -> usize {
        self.wire.len()
    }

    /// Takes the bytes for the wire, in order.
    pub fn take_wire(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.wire)
    }

    /// Reads from `input` (advancing it) up to the next thing it amounts to;
    /// `Ok(None)` when `input` is used up (or the channel waits for
    /// [`answer`](Self::answer)). An `Err` ends the channel with that reason.
    pub fn next(&mut self, input: &mut &[u8]) -> Result<Option<Input>, CloseReason> {
        loop {
            if let (State::Open(_), false) = (&self.state, self.failed) {
                match self.frames.next_frame() {
                    Ok(Some(frame)) => return Ok(Some(Input::Frame(frame))),
                    Ok(None) => {}
                    Err(e) => return Err(self.fail(decode_reason(e))),
                }
            }
            if self.failed || matches!(self.state, State::Idle(_) | State::Answer(_) | State::Done)
            {
                return Ok(None);
            }
            // A whole record in the input is read in place; a partial one
            // is buffered until it is whole.
            let read = match self.records.whole(input) {
                Ok(Some(body)) => self.on_record(body),
                Ok(None) => match self.records.fill(input) {
                    Ok(true) => {
                        let record = self.records.take_record();
                        let read = self.on_record(record.get(LEN_PREFIX..).unwrap_or_default());
                        self.records.give_back(record);
                        read
                    }
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(self.fail(decode_reason(e))),
                },
                Err(e) => return Err(self.fail(decode_reason(e))),
            };
            self.accepted += u64::from(read.is_ok());
            match read {
                Ok(Some(input)) => return Ok(Some(input)),
                Ok(None) => {}
                Err(reason) => return Err(self.fail(reason)),
            }
        }
    }

    /// One complete record, by state.
    fn on_record(&mut self, body: &[u8]) -> Result<Option<Input>, CloseReason> {
        let (state, read) = match core::mem::replace(&mut self.state, State::Done) {
            State::Version(hs) => {
                let read = match HandshakeRecord::decode(body) {
                    Ok(HandshakeRecord::Version(_)) => {
                        self.state = State::Noise(hs);
                        return Ok(None);
                    }
                    Ok(HandshakeRecord::Refuse(reason)) => Err(CloseReason::Remote(reason)),
                    Ok(HandshakeRecord::Noise(_)) => Err(CloseReason::UnexpectedFrame),
                    Err(e) => Err(decode_reason(e)),
                };
                (State::Version(hs), read)
            }
            State::Noise(mut hs) => match read_noise(&mut hs, body) {
                Ok(hello) if !self.initiator => {
                    self.theirs = Some(hello.clone());
                    (State::Answer(hs), Ok(Some(Input::Greeting(hello))))
                }
                Ok(hello) => match hs.into_transport_mode() {
                    Ok(mut t) => {
                        self.theirs = Some(hello.clone());
                        // Key confirmation: the responder authenticates us on it.
                        seal_record(&mut t, &[], &mut self.wire);
                        self.records.set_max(MAX_RECORD);
                        (
                            State::Open(Box::new(t)),
                            Ok(Some(Input::Authenticated(hello))),
                        )
                    }
                    Err(_) => (State::Done, Err(CloseReason::UnexpectedFrame)),
                },
                Err(reason) => (State::Noise(hs), Err(reason)),
            },
            State::Confirm(mut t) => match open_record(&mut t, body, &mut self.frames) {
                Ok(()) => {
                    self.records.set_max(MAX_RECORD);
                    let read = match self.theirs.clone() {
                        Some(hello) => Ok(Some(Input::Authenticated(hello))),
                        None => Err(CloseReason::UnexpectedFrame),
                    };
                    (State::Open(t), read)
                }
                // The initiator gave up before our answer reached it, and
                // said why in the clear (a hint, as in any handshake state).
                Err(_) => {
                    let reason = match HandshakeRecord::decode(body) {
                        Ok(HandshakeRecord::Refuse(reason)) => CloseReason::Remote(reason),
                        _ => CloseReason::AuthenticationFailed,
                    };
                    (State::Confirm(t), Err(reason))
                }
            },
            State::Open(mut t) => {
                let read = open_record(&mut t, body, &mut self.frames)
                    .map(|()| None)
                    .map_err(|_| CloseReason::Decrypt);
                (State::Open(t), read)
            }
            other @ (State::Idle(_) | State::Answer(_) | State::Done) => (other, Ok(None)),
        };
        self.state = state;
        read
    }

    /// Ends reading: the channel yields nothing more, but can still tell
    /// the peer why (see [`refuse`](Self::refuse)).
    fn fail(&mut self, reason: CloseReason) -> CloseReason {
        self.failed = true;
        self.frames = FrameReader::new(0);
        reason
    }
}

/// The peer's Noise message in a handshake record, and the greeting in it.
fn read_noise(hs: &mut HandshakeState, body: &[u8]) -> Result<Hello, CloseReason> {
    let msg = match HandshakeRecord::decode(body) {
        Ok(HandshakeRecord::Noise(msg)) => msg,
        Ok(HandshakeRecord::Refuse(reason)) => return Err(CloseReason::Remote(reason)),
        Ok(HandshakeRecord::Version(_)) => return Err(CloseReason::UnexpectedFrame),
        Err(e) => return Err(decode_reason(e)),
    };
    let mut payload = [0u8; MAX_HANDSHAKE_RECORD];
    let len = hs
        .read_message(&msg, &mut payload)
        .map_err(|_| CloseReason::AuthenticationFailed)?;
    Hello::from_bytes(&payload[..len]).map_err(decode_reason)
}

/// Appends one sealed record of `plain` to `wire`.
fn seal_record(t: &mut TransportState, plain: &[u8], wire: &mut Vec<u8>) {
    let len = plain.len() + TAG_LEN;
    let start = wire.len();
    wire.extend_from_slice(&(len as u32).to_le_bytes());
    wire.resize(start + LEN_PREFIX + len, 0);
    let written = t
        .write_message(plain, &mut wire[start + LEN_PREFIX..])
        .expect("the record fits its buffer and nonces do not run out");
    debug_assert_eq!(written, len);
}

/// Opens one sealed record straight into the frame buffer.
fn open_record(
    t: &mut TransportState,
    record: &[u8],
    frames: &mut FrameReader,
) -> Result<(), snow::Error> {
    let room = record.len().saturating_sub(TAG_LEN);
    if record.len() < TAG_LEN {
        return Err(snow::Error::Decrypt);
    }
    frames.push_with(room, |dst| t.read_message(record, dst))
}

fn decode_reason(e: DecodeError) -> CloseReason {
    match e {
        DecodeError::Malformed => CloseReason::Malformed,
        DecodeError::Version(theirs) => CloseReason::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        },
        DecodeError::TooLarge { .. } => CloseReason::LimitExceeded(crate::event::Limit::FrameSize),
    }
}
