//! Feeding inputs to a node and draining all of its outputs, with the
//! checks that run at every drain (monitor rules, losses in one delta per
//! group, no member of a node that went down).

use std::collections::BTreeMap;
use std::time::Instant as WallClock;

use groupmesh_core::{
    CloseReason, Event, GroupDelta, Instant, MonitorId, Node, NodeId, PortId, Removal, WireReason,
};

use crate::checks::check_delta;
use crate::sim::Sim;

impl Sim {
    /// Feeds one input to live node `i`, then drains it.
    pub(crate) fn input(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant)) {
        self.feed(i, f);
        self.drain_after_input(i);
    }

    /// Feeds one input to node `i`, if it is live.
    pub(crate) fn feed(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant)) {
        let now = self.now;
        if let Some(node) = self.nodes[i].node.as_mut() {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            let t0 = WallClock::now();
            f(node, now);
            self.core_time += t0.elapsed();
        }
    }

    /// Drains node `i` after an input, or marks it for the burst's drain.
    pub(crate) fn drain_after_input(&mut self, i: usize) {
        if !self.alive(i) {
            return;
        }
        if self.opts.lazy_drain {
            self.undrained.insert(i);
        } else {
            self.drain(i);
        }
    }

    /// Drains every output of node `i` and checks its monitors.
    pub(crate) fn drain(&mut self, i: usize) {
        self.undrained.remove(&i);
        let mut comings_and_goings = Vec::new();
        // Per (monitor, node, incarnation): the deltas of this drain that
        // removed ports the node still held (so lost, not unregistered),
        // since the last one that added a port of it.
        let mut losses: BTreeMap<(MonitorId, NodeId, u64), Vec<Vec<PortId>>> = BTreeMap::new();
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else {
                return;
            };
            let t0 = WallClock::now();
            let mut transmits = Vec::new();
            while let Some(t) = node.poll_transmit() {
                transmits.push(t);
            }
            let mut actions = Vec::new();
            while let Some(a) = node.poll_action() {
                actions.push(a);
            }
            let mut events = Vec::new();
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            // The user reads every message at once: its credit goes back.
            for e in &events {
                if let Event::Message { to, .. } = e {
                    node.message_read(to, 1);
                }
            }
            self.nodes[i].wake = node.poll_timeout();
            self.core_time += t0.elapsed();
            if transmits.is_empty() && actions.is_empty() && events.is_empty() {
                break;
            }
            for t in transmits {
                self.on_transmit(i, t);
            }
            for a in actions {
                self.on_action(i, a);
            }
            for e in events {
                match &e {
                    Event::NodeUp { node, incarnation } => {
                        comings_and_goings.push((node.clone(), *incarnation, true));
                    }
                    Event::NodeDown {
                        node, incarnation, ..
                    } => comings_and_goings.push((node.clone(), *incarnation, false)),
                    Event::Group(d) if !self.opts.light_checks => self.note_losses(d, &mut losses),
                    _ => {}
                }
                self.on_event(i, e);
            }
        }
        // A node that went down in this drain left each monitored group in
        // one delta, whether its NodeDown came before, between or after them.
        for ((mon, peer, inc), deltas) in &losses {
            let went_down = comings_and_goings
                .iter()
                .any(|(p, x, up)| !up && p == peer && x == inc);
            assert!(
                !went_down || deltas.len() == 1,
                "node {i} at {:?}: {peer}@{inc} went down and its ports left monitor {mon} \
                 in {} deltas: {deltas:?}",
                self.now,
                deltas.len()
            );
        }
        self.check_monitors(i);
        if self.opts.adversary {
            self.check_bad_records_closed(i);
            if let Err(e) = self.check_no_false_port(i) {
                panic!("{e}\n{}", self.dump());
            }
        }
        if self.opts.light_checks {
            return;
        }
        // A node that went down has no member left here; a node that came up
        // has no member of another incarnation left.
        let Some(core) = self.nodes[i].node.as_ref() else {
            return;
        };
        // Only the last of each node's comings and goings in this drain
        // holds at its end (with lazy draining, a burst may take a node down
        // and bring it up again, its snapshot already in).
        let mut last = BTreeMap::new();
        for (peer, inc, up) in comings_and_goings {
            last.insert(peer, (inc, up));
        }
        for (peer, (inc, up)) in last {
            for g in core.group_names() {
                for p in core.members(g).unwrap_or(&[]) {
                    let stale = p.node() == &peer && (p.incarnation() == inc) != up;
                    assert!(
                        !stale,
                        "node {i} at {:?}: {p:?} still in {g:?} after {} of {peer}@{inc}",
                        self.now,
                        if up { "NodeUp" } else { "NodeDown" }
                    );
                }
            }
        }
    }

    /// Records which ports of which node incarnation a delta removed because
    /// that node was lost or restarted, although their owner still held them
    /// (or held them when it died), and never ended that registration: a
    /// loss. A delta that adds a port of that
    /// incarnation starts its count again.
    pub(crate) fn note_losses(
        &self,
        d: &GroupDelta,
        losses: &mut BTreeMap<(MonitorId, NodeId, u64), Vec<Vec<PortId>>>,
    ) {
        for p in &d.added {
            losses.remove(&(d.monitor, p.node().clone(), p.incarnation()));
        }
        let mut lost: BTreeMap<(NodeId, u64), Vec<PortId>> = BTreeMap::new();
        // Only what the node's loss (or its restart) removed: a port that
        // left as a new connection took the node over (`Resynced`) left in
        // a change of its own, even when the node goes down in the same
        // drain (seed 701927).
        let by_loss = d
            .removed
            .iter()
            .zip(&d.reasons)
            .filter(|(_, why)| matches!(why, Removal::NodeLost(_) | Removal::NodeRestarted))
            .map(|(p, _)| p);
        for p in by_loss.filter(|p| self.held_by_owner(&d.group, p)) {
            lost.entry((p.node().clone(), p.incarnation()))
                .or_default()
                .push(p.clone());
        }
        for ((node, inc), ports) in lost {
            losses
                .entry((d.monitor, node, inc))
                .or_default()
                .push(ports);
        }
    }

    /// Whether `port`'s incarnation holds a registration of it in `group`
    /// (now, or when that incarnation died).
    pub(crate) fn held_by_owner(&self, group: &str, port: &PortId) -> bool {
        let Some(j) = self.owner_of(port) else {
            return false;
        };
        if self.churned.contains(&(group.to_owned(), port.clone())) {
            return false;
        }
        let o = &self.nodes[j];
        if o.alive() && o.incarnation == port.incarnation() {
            return o.model.regs.values().any(|(g, p)| g == group && p == port);
        }
        self.ended_regs
            .get(&(j, port.incarnation()))
            .and_then(|m| m.get(group))
            .is_some_and(|ports| ports.contains(port))
    }

    pub(crate) fn on_event(&mut self, i: usize, e: Event) {
        let inc = self.nodes[i].incarnation;
        match &e {
            Event::NodeDown {
                node,
                incarnation,
                reason: CloseReason::Restarted,
            } => {
                self.nodes[i].replaced.insert(node.clone(), *incarnation);
            }
            Event::NodeUp { node, incarnation } => {
                if let Some(old) = self.nodes[i].replaced.remove(node) {
                    // Newer means started later, whatever the numbers.
                    let run = |inc: u64| {
                        self.nodes
                            .iter()
                            .find(|n| &n.cfg.node_id == node)
                            .and_then(|n| n.history.iter().position(|&h| h == inc))
                    };
                    assert!(
                        run(*incarnation) > run(old),
                        "node {i} at {:?}: {node}@{old}, connected, was replaced by the \
                         stale {node}@{incarnation}\n{}",
                        self.now,
                        self.dump()
                    );
                }
            }
            _ => {}
        }
        if let Event::NodeDown { reason, .. } = &e {
            self.counts.node_downs += 1;
            if matches!(
                reason,
                CloseReason::Superseded | CloseReason::Remote(WireReason::Superseded)
            ) {
                self.counts.superseded_downs += 1;
            }
        }
        if let Event::ConnectionClosed { conn, reason, .. } = &e {
            self.adversary_saw_close(i, *conn, *reason);
        }
        if let Event::Group(d) = &e {
            self.counts.deltas += 1;
            if let Some(p) = d
                .members
                .iter()
                .find(|p| !self.ever_registered(&d.group, p))
            {
                panic!(
                    "node {i} at {:?}: a monitor event of {:?} shows {p:?}, which its owner \
                     never registered there\n{d:?}\n{}",
                    self.now,
                    d.group,
                    self.dump()
                );
            }
            if let Err(msg) = check_delta(&mut self.nodes[i].monitors, d) {
                panic!(
                    "node {i} at {:?}: monitor rule broken: {msg}\n{d:?}",
                    self.now
                );
            }
        }
        if let Event::Message {
            to, from, payload, ..
        } = &e
        {
            self.counts.messages_delivered += 1;
            if let Err(msg) = self.check_message(i, to, from.as_ref(), payload) {
                panic!(
                    "node {i} at {:?}: message rule broken: {msg}\nto {to:?} from {from:?}\n{}",
                    self.now,
                    self.dump()
                );
            }
        }
        if let Event::PortDown {
            monitor,
            port,
            reason,
        } = &e
        {
            self.counts.port_downs += 1;
            if let Err(msg) = self.check_port_down(i, *monitor, port, *reason) {
                panic!(
                    "node {i} at {:?}: port monitor rule broken: {msg}\n{monitor} {port:?} {reason:?}\n{}",
                    self.now,
                    self.dump()
                );
            }
        }
        self.nodes[i].events.push((self.now, inc, e));
    }
}
