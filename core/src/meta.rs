//! Member metadata: a small value a registration attaches to its port in a
//! group, that travels with the membership.
//!
//! Rules kept here: metadata is opaque bytes (empty: none), at most
//! [`Limits::max_meta`](crate::Limits::max_meta) per member, checked when a
//! local port is registered or updated and when a peer announces it; a
//! member's entry always fits one frame (see [`MAX_MEMBER_OVERHEAD`]).

use alloc::sync::Arc;

use crate::error::ApiError;
use crate::ids::{PortId, MAX_GROUP_NAME};

/// A member's metadata: opaque bytes, shared, empty when it has none.
pub type Meta = Arc<[u8]>;

/// Most bytes one member adds to a membership frame besides its metadata
/// bytes: the frame's own header, a group entry with the longest name, the
/// port number and the metadata's length. `max_meta` plus this must fit the
/// frame size, so that any one change fits a frame of its own.
pub const MAX_MEMBER_OVERHEAD: usize = 16 + MAX_GROUP_NAME + 16;

/// The metadata a list of `(port, metadata)` sorted by port (as a delta's
/// `meta`) gives `port`.
pub fn meta_in<'a>(given: &'a [(PortId, Meta)], port: &PortId) -> Option<&'a Meta> {
    let i = given.binary_search_by(|(p, _)| p.cmp(port)).ok()?;
    given.get(i).map(|(_, m)| m)
}

/// No metadata.
pub(crate) fn none() -> Meta {
    Arc::from(&[][..])
}

/// `bytes` as metadata of a local member, if within `max`.
pub(crate) fn check(bytes: &[u8], max: usize) -> Result<Meta, ApiError> {
    if bytes.len() > max {
        return Err(ApiError::MetaTooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(Arc::from(bytes))
}
