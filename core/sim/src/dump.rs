//! A readable picture of the whole network, for failure reports.

use std::fmt::Write as _;

use groupmesh_core::NodeId;

use crate::sim::Sim;

impl Sim {
    /// A readable picture of every node and connection, for failure reports.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "--- network at {:?} ---", self.now);
        for n in &self.nodes {
            let Some(node) = &n.node else {
                let _ = writeln!(
                    s,
                    "node {} ({}) DOWN (last incarnation {})",
                    n.index, n.id, n.incarnation
                );
                continue;
            };
            let st = node.stats();
            let connected: Vec<&NodeId> = node.connected_nodes().collect();
            let _ = writeln!(
                s,
                "node {} ({}) inc {} wake {:?}: {} conns ({} auth), known {}, connected {:?}",
                n.index,
                n.id,
                n.incarnation,
                n.wake,
                st.connections,
                st.authenticated,
                st.known_nodes,
                connected
            );
            for g in node.group_names() {
                let _ = writeln!(s, "    {g:?}: {:?}", node.members(g).unwrap_or(&[]));
            }
            let model = n.model.memberships();
            if !model.is_empty() {
                let _ = writeln!(s, "    own registrations: {model:?}");
            }
            let _ = writeln!(s, "    closes: {:?}", st.closed);
        }
        for (l, link) in self.links.iter().enumerate() {
            if link.open == [false, false] {
                continue;
            }
            let [a, b] = link.ends;
            let _ = writeln!(
                s,
                "link {l}: {}/{}:{} -> {}/{}:{} open {:?} {:?} queued {}/{}",
                a.0,
                a.1,
                a.2,
                b.0,
                b.1,
                b.2,
                link.open,
                link.state,
                self.pipes[2 * l].queue.len(),
                self.pipes[2 * l + 1].queue.len()
            );
        }
        let _ = writeln!(s, "partitions: {:?}", self.partitions);
        s
    }
}
