//! Convergence: the full mesh with one connection per pair, every view
//! equal to the union of the live nodes' registrations, and running until
//! the network settles.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use groupmesh_core::{NodeId, PortId};

use crate::network::{LinkState, Misc};
use crate::records::SimNode;
use crate::sim::Sim;

impl Sim {
    /// Whether the network is healed, every node alive, the mesh full with one
    /// connection per pair, and every node lists exactly the expected members.
    pub fn check_converged(&self) -> Result<(), String> {
        if let Some(d) = self.dead_nodes().first() {
            if !self.opts.allow_dead {
                return Err(format!("node {d} is down"));
            }
        }
        if !self.partitions.is_empty() {
            return Err("partitions remain".into());
        }
        self.check_mesh(&self.live_nodes())?;
        self.check_views(&self.live_nodes(), &self.expected())
    }

    /// Every node of `among` is connected to every other one of `among`
    /// over exactly one authenticated connection, and the core's connections
    /// are exactly those the network has for it. With `opts.strict_mesh`, no
    /// other connection exists at all and every link is whole.
    pub fn check_mesh(&self, among: &[usize]) -> Result<(), String> {
        for &i in among {
            let node = self.core(i);
            let inc = self.nodes[i].incarnation;
            let want: BTreeSet<&NodeId> = among
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| &self.nodes[j].id)
                .collect();
            let got: BTreeSet<&NodeId> = node.connected_nodes().collect();
            if got != want {
                return Err(format!("node {i} is connected to {got:?}, want {want:?}"));
            }
            let s = node.stats();
            if s.authenticated != want.len() {
                return Err(format!(
                    "node {i} has {} authenticated connections, want {}",
                    s.authenticated,
                    want.len()
                ));
            }
            let ends = self.ends_of(i);
            let failing = self.misc.values().filter_map(|m| match m {
                Misc::DialFailed(k) => Some(k),
                Misc::Syn { .. } => None,
            });
            let dialling = self
                .dials
                .iter()
                .chain(&self.hung)
                .chain(failing)
                .filter(|k| (k.0, k.1) == (i, inc))
                .count();
            if s.connections != ends.len() + dialling {
                return Err(format!(
                    "node {i} has {} connections, the network {} (and {dialling} dials)",
                    s.connections,
                    ends.len()
                ));
            }
            // Not quiet yet while a core holds a connection that was reset
            // (the reset is on its way) or went silent (keepalive will tell).
            if let Some((_, l, _)) = ends
                .iter()
                .find(|(_, l, _)| self.links[*l].state != LinkState::Open)
            {
                return Err(format!(
                    "node {i} holds a {:?} connection",
                    self.links[*l].state
                ));
            }
            if !self.opts.strict_mesh {
                continue;
            }
            if s.connections != want.len() {
                return Err(format!(
                    "node {i} has {} connections ({} authenticated), want {}",
                    s.connections,
                    s.authenticated,
                    want.len()
                ));
            }
            for (_, l, side) in ends {
                let link = &self.links[l];
                let other = link.ends[1 - side].0;
                if link.state != LinkState::Open || !link.open[1 - side] {
                    return Err(format!(
                        "node {i}'s connection to node {other} is half-open ({:?})",
                        link.state
                    ));
                }
            }
        }
        if self.opts.strict_mesh {
            for (x, &a) in among.iter().enumerate() {
                for &b in &among[x + 1..] {
                    let n = self.links_between(a, b);
                    if n != 1 {
                        return Err(format!("{n} connections between nodes {a} and {b}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every live node of `among` lists exactly `want` for every group, and no
    /// port of a node other than the current incarnations of `among`.
    pub fn check_views(
        &self,
        among: &[usize],
        want: &BTreeMap<String, BTreeSet<PortId>>,
    ) -> Result<(), String> {
        let owners: BTreeMap<&NodeId, &SimNode> = among
            .iter()
            .map(|&j| (&self.nodes[j].id, &self.nodes[j]))
            .collect();
        for &i in among {
            let node = self.core(i);
            let mut groups: BTreeSet<String> = want.keys().cloned().collect();
            groups.extend(node.group_names().map(str::to_owned));
            for g in &groups {
                let view = node.members(g);
                if view.is_some_and(|v| v.is_empty()) {
                    return Err(format!("node {i}: members({g:?}) is Some([])"));
                }
                let view = view.unwrap_or(&[]);
                if !view.windows(2).all(|w| w[0] < w[1]) {
                    return Err(format!("node {i}: members({g:?}) not sorted: {view:?}"));
                }
                for p in view {
                    match owners.get(p.node()) {
                        Some(o) if o.alive() && o.incarnation == p.incarnation() => {}
                        Some(o) => {
                            return Err(format!(
                                "node {i}: {g:?} lists {p:?} of a dead incarnation (now {})",
                                o.incarnation
                            ))
                        }
                        None => {
                            return Err(format!(
                                "node {i}: {g:?} lists {p:?} of an unreachable node"
                            ))
                        }
                    }
                }
                let w = want.get(g).cloned().unwrap_or_default();
                if !view.iter().eq(w.iter()) {
                    return Err(format!("node {i}: members({g:?}) = {view:?}, want {:?}", w));
                }
                for (p, meta) in node.members_with_meta(g) {
                    let owner = owners.get(p.node()).map(|o| &o.model.meta);
                    let want = owner.and_then(|m| m.get(&(g.clone(), p.clone())));
                    if want.map_or(&[][..], Vec::as_slice) != &meta[..] {
                        return Err(format!(
                            "node {i}: {p:?} in {g:?} has metadata {meta:?}, its owner gave {want:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs until converged (at most `max`), then `hold` longer, and checks
    /// again. Returns how long convergence took.
    pub fn settle_with(&mut self, max: Duration, hold: Duration) -> Result<Duration, String> {
        let start = self.now;
        loop {
            self.run_for(Duration::from_millis(100));
            if self.check_converged().is_ok() {
                let took = self.now - start;
                self.run_for(hold);
                return self.check_converged().map(|()| took).map_err(|e| {
                    format!("converged after {took:?}, then diverged within {hold:?}: {e}")
                });
            }
            if self.now - start > max {
                let e = self.check_converged().expect_err("not converged");
                return Err(format!("not converged after {max:?}: {e}"));
            }
        }
    }

    /// [`Sim::settle_with`] with a 60 s limit and the default hold.
    pub fn settle(&mut self) -> Result<Duration, String> {
        let hold = self.opts.hold();
        self.settle_with(Duration::from_secs(60), hold)
    }

    /// Settles, or panics with the reason and a dump of the network.
    pub fn settle_or_panic(&mut self) -> Duration {
        match self.settle() {
            Ok(d) => d,
            Err(e) => panic!("{e}\n{}", self.dump()),
        }
    }
}
