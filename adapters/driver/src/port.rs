//! [`Port`] and [`Registration`]: local ports and their group memberships,
//! ended when dropped.

use std::sync::Arc;

use groupmesh_core::{PortId, RegId};

use crate::shared::Control;

/// A port of this node, from [`Node::open_port`](crate::Node::open_port).
///
/// Dropping it destroys the port: every registration of it ends, on every node.
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
