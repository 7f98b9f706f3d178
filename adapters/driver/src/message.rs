//! [`Message`]s between ports, and the errors of sending them or decoding
//! their payloads.

use std::fmt;

use groupmesh_core::{ApiError, PortId};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A message received by a local [`Port`](crate::Port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's port, when it sent from one
    /// ([`Port::send`](crate::Port::send)): reply there. `None` for
    /// [`Node::send`](crate::Node::send).
    pub from: Option<PortId>,
    /// The local port it was sent to.
    pub to: PortId,
    /// The bytes, as sent.
    pub payload: Vec<u8>,
}

impl Message {
    /// Decodes the payload as a `T` sent with
    /// [`send_value`](crate::Port::send_value) (postcard encoding).
    ///
    /// # Errors
    /// [`CodecError`] when the bytes do not decode as a postcard-encoded `T`
    /// (bytes past the end of a `T` are ignored, as `postcard::from_bytes` does).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        decode(&self.payload)
    }
}

/// Decodes `bytes` as a postcard-encoded `T`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    postcard::from_bytes(bytes).map_err(|source| CodecError {
        op: "decode",
        type_name: std::any::type_name::<T>(),
        source,
    })
}

/// Encodes `value` with postcard, for a message or metadata.
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|source| CodecError {
        op: "encode",
        type_name: std::any::type_name::<T>(),
        source,
    })
}

/// Encodes `value` for [`send_value`](crate::Port::send_value).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SendError> {
    encode_value(value).map_err(SendError::Encode)
}

/// A value could not be encoded or decoded (postcard).
#[derive(Debug)]
pub struct CodecError {
    op: &'static str,
    type_name: &'static str,
    source: postcard::Error,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == "decode" {
            write!(
                f,
                "the payload does not decode as {}: {}; writer and reader must \
                 agree on the type",
                self.type_name, self.source
            )
        } else {
            write!(
                f,
                "cannot encode {} with postcard: {}",
                self.type_name, self.source
            )
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A message was not sent. Nothing was queued.
///
/// A message for a port that is closed or whose node is not connected is
/// dropped and counted in
/// [`Stats::messages_dropped`](crate::Stats::messages_dropped): not an
/// error, unless the sender had waited for it ([`PortClosed`](Self::PortClosed),
/// [`Unreachable`](Self::Unreachable)), since its port or node may have been
/// there when it began.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// [`try_send`](crate::Port::try_send): the port holds all the messages
    /// this sender may have unread there, or the connection to its node is
    /// congested. Nothing was sent ([`send`](crate::Port::send) would have
    /// waited); the message counts in
    /// [`Stats::messages_dropped`](crate::Stats::messages_dropped), a drop
    /// the caller chose.
    Full,
    /// [`send`](crate::Port::send) waited, and meanwhile the port was
    /// closed. The message was dropped (and counted).
    PortClosed,
    /// [`send`](crate::Port::send) waited, and meanwhile the connection to
    /// the port's node was lost. The message was dropped (and counted).
    Unreachable,
    /// The payload does not fit one frame.
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The largest payload that fits.
        max: usize,
    },
    /// The node has been shut down (or killed).
    ShutDown,
    /// [`send_value`](crate::Port::send_value): the value could not be encoded.
    Encode(CodecError),
}

impl SendError {
    /// The core's refusal of a `send` from a live [`Port`](crate::Port) of
    /// this node (or no port): too large, or the node is stopping.
    pub(crate) fn from_api(e: ApiError) -> Self {
        match e {
            ApiError::PayloadTooLarge { len, max } => SendError::PayloadTooLarge { len, max },
            // ShutDown, or NotLocalPort for a sending port the core no longer
            // knows: only possible once the node stopped.
            _ => SendError::ShutDown,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::PayloadTooLarge { len, max } => fmt::Display::fmt(
                &ApiError::PayloadTooLarge {
                    len: *len,
                    max: *max,
                },
                f,
            ),
            SendError::ShutDown => fmt::Display::fmt(&ApiError::ShutDown, f),
            SendError::Full => f.write_str(
                "the destination port holds all it may from this sender, or its \
                 connection is congested: send().await waits for room",
            ),
            SendError::PortClosed => {
                f.write_str("the destination port closed while the message waited to be sent")
            }
            SendError::Unreachable => f.write_str(
                "the destination port's node was lost while the message waited to be sent",
            ),
            SendError::Encode(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupmesh_core::NodeId;

    #[test]
    fn values_round_trip_and_a_wrong_type_is_a_typed_error() {
        let mut m = Message {
            from: None,
            to: PortId::new(NodeId::new("a").expect("a valid id"), 1, 1),
            payload: encode(&("job", 7u32)).expect("encodes"),
        };
        assert_eq!(
            m.decode::<(String, u32)>().expect("decodes"),
            ("job".into(), 7)
        );
        m.payload = vec![5, b'a'];
        let e = m.decode::<String>().expect_err("a 5-byte string cut short");
        assert!(
            e.to_string()
                .contains("does not decode as alloc::string::String"),
            "{e}"
        );
    }
}
