//! [`Port`] and [`Registration`]: local ports (mailboxes) and their group
//! memberships, ended when dropped.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;
use groupmesh_core::{ApiError, PortId, RegId};
use serde::Serialize;

use crate::member::MetaError;
use crate::message::{encode, encode_value, Message, SendError};
use crate::shared::{send_now, send_waiting, Control};

/// A port of this node, from [`Node::open_port`](crate::Node::open_port):
/// an address in the mesh and the mailbox of what is sent to it.
///
/// Read its messages with [`recv`](Self::recv), or as a [`Stream`] of
/// [`Message`]; send from it with [`send`](Self::send), which names it as
/// the sender so the receiver can reply. The mailbox holds at most
/// [`NodeConfig::mailbox`](crate::NodeConfig::mailbox) unread messages from
/// each sending node: past it, their senders wait (flow control), so a
/// slow reader slows its senders down and nothing is dropped.
///
/// Dropping it destroys the port: every registration of it ends, on every
/// node, its [`PortMonitor`](crate::PortMonitor)s fire with
/// [`PortDownReason::Closed`](crate::PortDownReason::Closed), and messages
/// for it are dropped from then on.
#[must_use = "a port is destroyed when dropped"]
pub struct Port {
    pub(crate) id: PortId,
    pub(crate) ctl: Arc<dyn Control>,
}

impl Port {
    /// The port's id, as other nodes list it.
    pub fn id(&self) -> &PortId {
        &self.id
    }

    /// Sends `payload` to the port `to` (local or remote), from this port:
    /// the receiver's [`Message::from`] is this port's id. Otherwise as
    /// [`Node::send`](crate::Node::send): waits while the destination has
    /// no room, and loses nothing while it lives.
    ///
    /// # Errors
    /// [`SendError::PayloadTooLarge`], [`SendError::ShutDown`],
    /// [`SendError::PortClosed`], [`SendError::Unreachable`]; nothing is sent.
    pub async fn send(&self, to: &PortId, payload: impl AsRef<[u8]>) -> Result<(), SendError> {
        send_waiting(&*self.ctl, to, Some(&self.id), payload.as_ref()).await
    }

    /// Sends as [`send`](Self::send) if there is room now, without waiting.
    ///
    /// # Errors
    /// [`SendError::Full`] where `send` would wait (counted as dropped, as
    /// [`Node::try_send`](crate::Node::try_send)); otherwise as `send`.
    pub fn try_send(&self, to: &PortId, payload: impl AsRef<[u8]>) -> Result<(), SendError> {
        send_now(&*self.ctl, to, Some(&self.id), payload.as_ref())
    }

    /// Sends `value` encoded with postcard, from this port; the receiver
    /// reads it with [`Message::decode`].
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`SendError::Encode`].
    pub async fn send_value<T: Serialize + ?Sized>(
        &self,
        to: &PortId,
        value: &T,
    ) -> Result<(), SendError> {
        self.send(to, encode(value)?).await
    }

    /// The next message, oldest first; `None` once the node has stopped and
    /// every message that arrived before has been read.
    pub async fn recv(&mut self) -> Option<Message> {
        poll_fn(|cx| self.ctl.poll_port(&self.id, cx)).await
    }
}

impl Stream for Port {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.ctl.poll_port(&self.id, cx)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.ctl.close_port(&self.id);
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Port").field(&self.id).finish()
    }
}

/// A port's membership in a group, from [`Node::register`](crate::Node::register).
///
/// The port stays a member until this is dropped or [`end`](Self::end)ed (or
/// the port is destroyed). A port registered twice in a group is listed once,
/// until its last registration ends.
#[must_use = "a registration ends when dropped"]
pub struct Registration {
    pub(crate) id: RegId,
    pub(crate) port: PortId,
    pub(crate) group: Arc<str>,
    pub(crate) ctl: Arc<dyn Control>,
}

impl Registration {
    /// The registered port.
    pub fn port(&self) -> &PortId {
        &self.port
    }

    /// The group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Sets the port's metadata in the group to `meta`, encoded with
    /// postcard; every node gets it with the next batch of changes, and
    /// monitors see the member in [`GroupChange::updated`](crate::GroupChange::updated).
    /// The last registration or update of the port in the group sets it.
    ///
    /// # Errors
    /// [`MetaError::Encode`] when `meta` does not encode, else as
    /// [`update_meta_bytes`](Self::update_meta_bytes); nothing changes.
    pub fn update_meta<T: Serialize + ?Sized>(&self, meta: &T) -> Result<(), MetaError> {
        let meta = encode_value(meta).map_err(MetaError::Encode)?;
        Ok(self.update_meta_bytes(&meta)?)
    }

    /// Sets the port's metadata in the group to `meta` as raw bytes (empty: none).
    ///
    /// # Errors
    /// [`ApiError::MetaTooLarge`](crate::Error::MetaTooLarge),
    /// [`ApiError::UnknownRegistration`](crate::Error::UnknownRegistration)
    /// when its port was closed, [`ApiError::ShutDown`](crate::Error::ShutDown);
    /// nothing changes.
    pub fn update_meta_bytes(&self, meta: &[u8]) -> Result<(), ApiError> {
        self.ctl.update_meta(self.id, meta)
    }

    /// Ends the registration now (the same as dropping it).
    pub fn end(self) {}
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.ctl.unregister(self.id);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("port", &self.port)
            .field("group", &self.group)
            .finish()
    }
}
