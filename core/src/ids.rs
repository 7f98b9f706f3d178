//! Identities: node names, port ids, group names and the handles the core hands out.

use alloc::sync::Arc;
use core::borrow::Borrow;
use core::fmt;

use crate::error::ApiError;

/// Longest node id, in bytes.
pub const MAX_NODE_ID: usize = 64;
/// Longest group name, in bytes.
pub const MAX_GROUP_NAME: usize = 255;

/// A node's id: UTF-8, 1..=64 bytes, unique in the mesh. Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Checks the length rule and makes a node id.
    ///
    /// # Errors
    /// [`ApiError::BadNodeId`] when `id` is empty or longer than [`MAX_NODE_ID`] bytes.
    pub fn new(id: &str) -> Result<Self, ApiError> {
        if id.is_empty() || id.len() > MAX_NODE_ID {
            return Err(ApiError::BadNodeId { len: id.len() });
        }
        Ok(NodeId(Arc::from(id)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// A port: the node that owns it, that node's incarnation, and a number the
/// node never reuses within that incarnation.
///
/// Displayed as `node#n`. Ports sort by node, then incarnation, then number,
/// which is the order [`Node::members`](crate::Node::members) lists them in.
/// The incarnation keeps a restarted node's new ports apart from its old ones.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId {
    node: NodeId,
    incarnation: u64,
    number: u64,
}

impl PortId {
    /// A port id from its parts.
    pub fn new(node: NodeId, incarnation: u64, number: u64) -> Self {
        PortId {
            node,
            incarnation,
            number,
        }
    }
    /// The owning node.
    pub fn node(&self) -> &NodeId {
        &self.node
    }
    /// The owning node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
    /// The node-local port number.
    pub fn number(&self) -> u64 {
        self.number
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.node, self.number)
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.node, self.number, self.incarnation)
    }
}

/// Checks a group name: UTF-8, 1..=255 bytes.
pub(crate) fn check_group(group: &str) -> Result<(), ApiError> {
    if group.is_empty() || group.len() > MAX_GROUP_NAME {
        return Err(ApiError::BadGroupName { len: group.len() });
    }
    Ok(())
}

/// A group name held by the core (validated, shared).
pub(crate) type GroupName = Arc<str>;

pub(crate) fn group_name(s: &str) -> GroupName {
    Arc::from(s)
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $fmt:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(any(test, feature = "fuzzing"), derive(arbitrary::Arbitrary))]
        pub struct $name(pub u64);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, $fmt, self.0)
            }
        }
    };
}

handle!(
    /// A connection, numbered by the core (inbound ones by
    /// [`Node::handle_inbound`](crate::Node::handle_inbound), outbound ones in
    /// [`Action::Dial`](crate::Action::Dial)). Never reused by one node.
    ConnId,
    "conn{}"
);
handle!(
    /// A registration made by [`Node::register`](crate::Node::register).
    RegId,
    "reg{}"
);
handle!(
    /// A group monitor made by [`Node::monitor`](crate::Node::monitor).
    MonitorId,
    "mon{}"
);
handle!(
    /// A port monitor made by [`Node::monitor_port`](crate::Node::monitor_port).
    PortMonitorId,
    "portmon{}"
);
