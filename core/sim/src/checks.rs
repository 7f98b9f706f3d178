//! The checks of the design contract's rules made as the run goes: monitor
//! deltas replayed, every message delivery against the ledger, every port
//! monitor's notice, and no port that its owner never registered.

use std::collections::{BTreeMap, BTreeSet};

use groupmesh_core::{GroupDelta, MonitorId, PortDownReason, PortId, PortMonitorId};

use crate::records::{MonitorTrack, SentMessage};
use crate::sim::Sim;

impl Sim {
    /// Whether `port` was ever registered in `group` (by its owner: only a
    /// node registers its own ports).
    pub(crate) fn ever_registered(&self, group: &str, port: &PortId) -> bool {
        self.registered.get(group).is_some_and(|r| r.contains(port))
    }

    /// Node `i` lists no port that was never registered in that group.
    pub fn check_no_false_port(&self, i: usize) -> Result<(), String> {
        let Some(node) = self.nodes[i].node.as_ref() else {
            return Ok(());
        };
        for g in node.group_names() {
            for p in node.members(g).unwrap_or(&[]) {
                if !self.ever_registered(g, p) {
                    return Err(format!(
                        "node {i} at {:?}: {g:?} lists {p:?}, which its owner never registered there",
                        self.now
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every live monitor's replayed members equal the node's view.
    pub(crate) fn check_monitors(&self, i: usize) {
        let n = &self.nodes[i];
        let Some(node) = n.node.as_ref() else {
            return;
        };
        for (id, m) in &n.monitors {
            if m.ended {
                continue;
            }
            let view = node.members(&m.group).unwrap_or(&[]);
            if !m.members.iter().eq(view.iter()) {
                panic!(
                    "node {i} at {:?}: monitor {id} of {:?} replays to {:?} but members() is {view:?}",
                    self.now, m.group, m.members
                );
            }
            let meta: BTreeMap<PortId, Vec<u8>> = node
                .members_with_meta(&m.group)
                .filter(|(_, meta)| !meta.is_empty())
                .map(|(p, meta)| (p.clone(), meta.to_vec()))
                .collect();
            if m.meta != meta {
                panic!(
                    "node {i} at {:?}: monitor {id} of {:?} replays metadata {:?} but members_with_meta() is {meta:?}",
                    self.now, m.group, m.meta
                );
            }
        }
    }
    /// Checks one delivery at node `i` against the ledger, and records it.
    pub(crate) fn check_message(
        &mut self,
        i: usize,
        to: &PortId,
        from: Option<&PortId>,
        payload: &[u8],
    ) -> Result<(), String> {
        let n = payload
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or("a payload the simulator did not send")?;
        let sent = self
            .sent
            .get(n as usize)
            .ok_or_else(|| format!("message {n} was never sent"))?
            .clone();
        if payload.len() < 8 {
            return Err(format!("message {n}: payload cut"));
        }
        if *to != sent.to {
            return Err(format!(
                "message {n} addressed to {:?} delivered to {to:?}",
                sent.to
            ));
        }
        let me = &self.nodes[i];
        if to.node() != &me.id || to.incarnation() != me.incarnation {
            return Err(format!(
                "message {n} for {to:?} delivered at node {i} incarnation {}",
                me.incarnation
            ));
        }
        if !me.model.ports.contains(to) {
            return Err(format!("message {n}: {to:?} is not a live port here"));
        }
        if from != sent.from.as_ref() {
            return Err(format!(
                "message {n}: sender given as {from:?}, sent from {:?}",
                sent.from
            ));
        }
        let key = (
            sent.node,
            sent.incarnation,
            sent.from.as_ref().map(PortId::number),
            to.clone(),
        );
        if let Some(&last) = self.last_delivered.get(&key) {
            if last >= n {
                return Err(format!(
                    "message {n} delivered after message {last} of the same sender and port \
                     (sent at {:?})",
                    sent.at
                ));
            }
        }
        self.last_delivered.insert(key, n);
        let s = &mut self.sent[n as usize];
        s.delivered += 1;
        if s.delivered > 1 {
            return Err(format!("message {n} delivered {} times", s.delivered));
        }
        Ok(())
    }

    /// Checks a port monitor's notice at node `i`, and records it.
    pub(crate) fn check_port_down(
        &mut self,
        i: usize,
        monitor: PortMonitorId,
        port: &PortId,
        reason: PortDownReason,
    ) -> Result<(), String> {
        let live = self.port_live(port);
        // A later start of its node (whose incarnation may be smaller).
        let newer = self.owner_of(port).is_some_and(|j| {
            let h = &self.nodes[j].history;
            h.iter()
                .position(|&x| x == port.incarnation())
                .is_some_and(|k| k + 1 < h.len())
        });
        let strict = self.opts.strict_port_down_reasons;
        let t = self.nodes[i]
            .port_monitors
            .get_mut(&monitor)
            .ok_or("notice for a port monitor never started (or of an earlier incarnation)")?;
        if t.ended {
            return Err("notice after unmonitor_port".into());
        }
        if let Some(first) = t.fired {
            return Err(format!("second notice (the first said {first:?})"));
        }
        if *port != t.port {
            return Err(format!(
                "notice for {port:?}, the monitor watches {:?}",
                t.port
            ));
        }
        t.fired = Some(reason);
        match reason {
            PortDownReason::Closed if live => Err("says Closed, but the port is live".into()),
            PortDownReason::Restarted if !newer && strict => Err(format!(
                "says Restarted, but no later incarnation of its node exists (port live: {live})"
            )),
            _ => Ok(()),
        }
    }

    /// On a quiet network: every port monitor of a live node that has not
    /// fired (nor ended) watches a live port.
    pub fn check_port_monitors(&self) -> Result<(), String> {
        for n in &self.nodes {
            if !n.alive() {
                continue;
            }
            for (id, t) in &n.port_monitors {
                if t.fired.is_none() && !t.ended && !self.port_live(&t.port) {
                    return Err(format!(
                        "node {}: port monitor {id} of {:?} never fired, but the port is gone",
                        n.index, t.port
                    ));
                }
            }
        }
        Ok(())
    }

    /// Messages from number `from` on that were not delivered, with their sender.
    pub fn undelivered_since(&self, from: u64) -> Vec<(u64, &SentMessage)> {
        self.sent
            .iter()
            .enumerate()
            .skip(from as usize)
            .filter(|(_, m)| m.delivered == 0)
            .map(|(n, m)| (n as u64, m))
            .collect()
    }
}

/// Checks one monitor delta against the replayed state, and replays it.
pub(crate) fn check_delta(
    monitors: &mut BTreeMap<MonitorId, MonitorTrack>,
    d: &GroupDelta,
) -> Result<(), String> {
    let m = monitors
        .get_mut(&d.monitor)
        .ok_or("event for a monitor never started")?;
    if m.ended {
        return Err("event after unmonitor".into());
    }
    if *d.group != *m.group {
        return Err(format!(
            "event for group {:?}, monitor is of {:?}",
            d.group, m.group
        ));
    }
    for (name, list) in [
        ("members", &d.members),
        ("added", &d.added),
        ("removed", &d.removed),
        ("updated", &d.updated),
    ] {
        if !list.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!("{name} not sorted and unique"));
        }
    }
    if d.added.is_empty() && d.removed.is_empty() && d.updated.is_empty() {
        return Err("empty delta".into());
    }
    if d.reasons.len() != d.removed.len() {
        return Err("not one reason per removed port".into());
    }
    let mut given: Vec<&PortId> = d.added.iter().chain(&d.updated).collect();
    given.sort();
    if !d.meta.iter().map(|(p, _)| p).eq(given.iter().copied()) {
        return Err("meta is not exactly that of added and updated, sorted".into());
    }
    let updated: BTreeSet<PortId> = d.updated.iter().cloned().collect();
    if !updated.is_subset(&m.members) || !d.updated.iter().all(|p| d.members.contains(p)) {
        return Err("updated ports that are not members".into());
    }
    for (p, meta) in &d.meta {
        let before = m.meta.get(p).map_or(&[][..], Vec::as_slice);
        if updated.contains(p) && before == &meta[..] {
            return Err(format!("{p:?} in updated with the metadata it had"));
        }
    }
    let members: BTreeSet<PortId> = d.members.iter().cloned().collect();
    let added: BTreeSet<PortId> = d.added.iter().cloned().collect();
    let removed: BTreeSet<PortId> = d.removed.iter().cloned().collect();
    if !added.is_subset(&members) {
        return Err("added not a subset of members".into());
    }
    if !removed.is_disjoint(&members) {
        return Err("removed members still listed".into());
    }
    if !added.is_disjoint(&m.members) {
        return Err(format!(
            "added ports already members: {:?}",
            added.intersection(&m.members).collect::<Vec<_>>()
        ));
    }
    if !removed.is_subset(&m.members) {
        return Err(format!(
            "removed ports that were not members: {:?}",
            removed.difference(&m.members).collect::<Vec<_>>()
        ));
    }
    let replay: BTreeSet<PortId> = m
        .members
        .union(&added)
        .filter(|p| !removed.contains(*p))
        .cloned()
        .collect();
    if replay != members {
        return Err(format!("replay gives {replay:?}"));
    }
    m.members = replay;
    for p in &d.removed {
        m.meta.remove(p);
    }
    for (p, meta) in &d.meta {
        if meta.is_empty() {
            m.meta.remove(p);
        } else {
            m.meta.insert(p.clone(), meta.to_vec());
        }
    }
    m.deltas += 1;
    Ok(())
}
