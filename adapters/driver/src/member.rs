//! [`Member`]: a group member with its metadata, and [`MetaError`], why
//! metadata was not set.

use std::borrow::Borrow;
use std::fmt;

use groupmesh_core::{ApiError, Meta, PortId};
use serde::de::DeserializeOwned;

use crate::message::{decode, CodecError};

/// A member of a group and the metadata its registration gave it, from
/// [`Node::members_with_meta`](crate::Node::members_with_meta).
///
/// It borrows as its [`PortId`], so a list of members goes straight to
/// [`pick_by_key`](crate::pick_by_key) and [`pick_random`](crate::pick_random).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// The member port.
    pub port: PortId,
    /// Its metadata in the group: the bytes given at registration or by the
    /// last update; empty for none.
    pub meta: Meta,
}

impl Member {
    /// Decodes the metadata as a `T` given to
    /// [`Node::register_with_meta`](crate::Node::register_with_meta) or
    /// [`Registration::update_meta`](crate::Registration::update_meta)
    /// (postcard encoding).
    ///
    /// # Errors
    /// [`CodecError`] when the bytes do not decode as a `T`.
    pub fn meta_as<T: DeserializeOwned>(&self) -> Result<T, CodecError> {
        decode(&self.meta)
    }
}

impl Borrow<PortId> for Member {
    fn borrow(&self) -> &PortId {
        &self.port
    }
}

/// Metadata given as a value was not set; nothing changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetaError {
    /// The value does not encode with postcard.
    Encode(CodecError),
    /// The node refused it, e.g. [`ApiError::MetaTooLarge`].
    Api(ApiError),
}

impl From<ApiError> for MetaError {
    fn from(e: ApiError) -> Self {
        MetaError::Api(e)
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Encode(e) => fmt::Display::fmt(e, f),
            MetaError::Api(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for MetaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetaError::Encode(e) => Some(e),
            MetaError::Api(e) => Some(e),
        }
    }
}
