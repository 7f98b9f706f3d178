//! The core's local API called through the simulator, which keeps the
//! reference model beside it (registrations, monitors, messages, port
//! monitors) and checks each call's immediate outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant as WallClock;

use groupmesh_core::{
    ApiError, Event, GroupDelta, MonitorId, Node, PortId, PortMonitorId, RegId, SendOutcome,
};

use crate::records::{MonitorTrack, PortMonitorTrack, SentMessage};
use crate::sim::Sim;

impl Sim {
    /// Runs `f` on node `i`'s core as one local API call at [`Sim::now`], then
    /// drains the node and checks its outputs as after any input. For calls
    /// the reference model does not follow: a registration made here is
    /// unknown to it (use [`Sim::register`]), and every message delivered
    /// must be one [`Sim::send`] sent. Panics if node `i` is down.
    pub fn api<T>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> T) -> T {
        let now = self.now;
        self.counts.api_calls += 1;
        let node = self.nodes[i]
            .node
            .as_mut()
            .expect("API call on a live node");
        let r = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            let t0 = WallClock::now();
            let r = f(node);
            self.core_time += t0.elapsed();
            r
        };
        self.drain(i);
        r
    }

    /// Opens a port on node `i`.
    pub fn open_port(&mut self, i: usize) -> PortId {
        let p = self.api(i, Node::open_port);
        assert_eq!(p.node(), &self.nodes[i].id);
        assert_eq!(p.incarnation(), self.nodes[i].incarnation);
        assert!(self.nodes[i].model.ports.insert(p.clone()), "port reused");
        self.port_history.push(p.clone());
        p
    }

    /// Registers `port` of node `i` in `group` without metadata; it must succeed.
    pub fn register(&mut self, i: usize, group: &str, port: &PortId) -> RegId {
        self.register_with_meta(i, group, port, &[])
    }

    /// Registers `port` of node `i` in `group` with `meta`; it must succeed.
    pub fn register_with_meta(
        &mut self,
        i: usize,
        group: &str,
        port: &PortId,
        meta: &[u8],
    ) -> RegId {
        // Known before the drain that may already show it.
        self.registered
            .entry(group.to_owned())
            .or_default()
            .insert(port.clone());
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, group, ?port, "register");
        let r = self
            .api(i, |n| n.register_with_meta(group, port, meta))
            .expect("register a live local port");
        let model = &mut self.nodes[i].model;
        model.regs.insert(r, (group.to_owned(), port.clone()));
        model
            .meta
            .insert((group.to_owned(), port.clone()), meta.to_vec());
        self.check_local(i);
        r
    }

    /// Sets the metadata of node `i`'s live registration `reg`; it must succeed.
    pub fn update_meta(&mut self, i: usize, reg: RegId, meta: &[u8]) {
        let what = self.nodes[i].model.regs.get(&reg).cloned();
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, ?what, len = meta.len(), "update_meta");
        self.api(i, |n| n.update_meta(reg, meta))
            .expect("update a live registration");
        if let Some(key) = what {
            self.nodes[i].model.meta.insert(key, meta.to_vec());
        }
        self.check_local(i);
    }

    /// Tries a call that must be refused with `want` and change nothing.
    pub fn register_refused(&mut self, i: usize, group: &str, port: &PortId, want: ApiError) {
        let before = self.nodes[i].events.len();
        let r = self.api(i, |n| n.register(group, port));
        assert_eq!(r, Err(want), "node {i}: register({group:?}, {port:?})");
        assert_eq!(
            self.nodes[i].events.len(),
            before,
            "a refused call emitted events"
        );
        self.check_local(i);
    }

    /// Ends a registration of node `i`.
    pub fn unregister(&mut self, i: usize, reg: RegId) {
        let what = self.nodes[i].model.regs.get(&reg).cloned();
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, ?what, "unregister");
        self.churned.extend(what);
        self.api(i, |n| n.unregister(reg))
            .expect("unregister a live registration");
        self.nodes[i].model.regs.remove(&reg);
        assert_eq!(
            self.api(i, |n| n.unregister(reg)),
            Err(ApiError::UnknownRegistration),
            "a registration ends once"
        );
        self.check_local(i);
    }

    /// Closes a port of node `i`: all its registrations end.
    pub fn close_port(&mut self, i: usize, port: &PortId) {
        tracing::debug!(target: "sim", t = self.now.as_millis(), node = i, ?port, "close port");
        let ended = self.nodes[i].model.regs.values().filter(|(_, p)| p == port);
        let ended: Vec<(String, PortId)> = ended.cloned().collect();
        self.churned.extend(ended);
        // The model first: the drain checks the port's monitors' notices.
        let now = self.now;
        self.counts.api_calls += 1;
        let node = self.nodes[i].node.as_mut().expect("live");
        {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.close_port(port).expect("close a live port");
        }
        let m = &mut self.nodes[i].model;
        m.ports.remove(port);
        m.regs.retain(|_, (_, p)| p != port);
        self.drain(i);
        assert_eq!(
            self.api(i, |n| n.close_port(port)),
            Err(ApiError::NotLocalPort)
        );
        self.check_local(i);
    }

    /// Starts a monitor on node `i`; checks its first event.
    pub fn monitor(&mut self, i: usize, group: &str) -> MonitorId {
        let now = self.now;
        let node = self.nodes[i].node.as_mut().expect("live");
        let id = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.monitor(group).expect("valid group")
        };
        let view = node.members(group).map(<[PortId]>::to_vec);
        self.nodes[i].monitors.insert(
            id,
            MonitorTrack {
                group: group.to_owned(),
                members: BTreeSet::new(),
                meta: BTreeMap::new(),
                deltas: 0,
                ended: false,
            },
        );
        let mark = self.nodes[i].events.len();
        self.drain(i);
        let first: Vec<&GroupDelta> = self.nodes[i].events[mark..]
            .iter()
            .filter_map(|(_, _, e)| match e {
                Event::Group(d) if d.monitor == id => Some(d),
                _ => None,
            })
            .collect();
        match view {
            None => assert!(first.is_empty(), "first event of an empty group: {first:?}"),
            Some(m) => {
                assert_eq!(first.len(), 1, "one first event right away");
                assert_eq!(
                    (
                        &first[0].members,
                        &first[0].added,
                        first[0].removed.is_empty()
                    ),
                    (&m, &m, true),
                    "first event is (members, members, [])"
                );
            }
        }
        id
    }

    /// Ends a monitor of node `i`.
    pub fn unmonitor(&mut self, i: usize, mon: MonitorId) {
        self.api(i, |n| n.unmonitor(mon)).expect("live monitor");
        if let Some(m) = self.nodes[i].monitors.get_mut(&mon) {
            m.ended = true;
        }
        assert_eq!(
            self.api(i, |n| n.unmonitor(mon)),
            Err(ApiError::UnknownMonitor)
        );
    }

    /// Node `i`'s own ports in its view are exactly its model's.
    pub(crate) fn check_local(&self, i: usize) {
        let n = &self.nodes[i];
        let node = n.core();
        let want = n.model.memberships();
        let mut groups: BTreeSet<String> = want.keys().cloned().collect();
        groups.extend(node.group_names().map(str::to_owned));
        for g in groups {
            let mine: BTreeSet<PortId> = node
                .members(&g)
                .unwrap_or(&[])
                .iter()
                .filter(|p| p.node() == &n.id && p.incarnation() == n.incarnation)
                .cloned()
                .collect();
            let w = want.get(&g).cloned().unwrap_or_default();
            assert_eq!(mine, w, "node {i}: own ports in {g:?}");
            for (p, meta) in node.members_with_meta(&g) {
                if let Some(want) = n.model.meta.get(&(g.clone(), p.clone())) {
                    assert_eq!(&meta[..], &want[..], "node {i}: metadata of {p:?} in {g:?}");
                }
            }
        }
    }

    // ----- port messages and port monitors ------------------------------

    /// Sends a message from node `i` (from its port `from`, if given) to `to`
    /// and records it in [`Sim::sent`]; returns its number. The payload is the
    /// number and `pad` more bytes.
    pub fn send(&mut self, i: usize, from: Option<&PortId>, to: &PortId, pad: usize) -> u64 {
        let n = self.sent.len() as u64;
        let mut payload = n.to_le_bytes().to_vec();
        payload.resize(8 + pad, 0x5a);
        self.sent.push(SentMessage {
            node: i,
            incarnation: self.nodes[i].incarnation,
            from: from.cloned(),
            to: to.clone(),
            at: self.now,
            delivered: 0,
        });
        self.counts.messages_sent += 1;
        let r = self.api(i, |node| node.send(to, from, &payload));
        // A user reads every message at once: a sender never runs out of
        // credit here, so it is never told to wait.
        assert!(
            matches!(r, Ok(o) if o != SendOutcome::Wait),
            "node {i}: send({to:?}, from {from:?}): {r:?}"
        );
        n
    }

    /// A send that must be refused with `want`, sending and emitting nothing.
    pub fn send_refused(&mut self, i: usize, from: &PortId, to: &PortId, want: ApiError) {
        let before = self.nodes[i].events.len();
        let bytes = self.core(i).stats().bytes_out;
        let r = self.api(i, |node| node.send(to, Some(from), b"refused"));
        assert_eq!(r, Err(want), "node {i}: send({to:?}, from {from:?})");
        assert_eq!(
            self.nodes[i].events.len(),
            before,
            "a refused send emitted events"
        );
        assert_eq!(
            self.core(i).stats().bytes_out,
            bytes,
            "a refused send sent bytes"
        );
    }

    /// Starts a port monitor on node `i`; its notice may come at once.
    pub fn monitor_port(&mut self, i: usize, port: &PortId) -> PortMonitorId {
        let now = self.now;
        self.counts.api_calls += 1;
        self.counts.port_monitors += 1;
        let node = self.nodes[i].node.as_mut().expect("live");
        let id = {
            let _s = tracing::debug_span!("node", t = now.as_millis(), n = i).entered();
            node.monitor_port(port)
                .expect("a live node monitors any port")
        };
        let track = PortMonitorTrack {
            port: port.clone(),
            fired: None,
            ended: false,
        };
        assert!(
            self.nodes[i].port_monitors.insert(id, track).is_none(),
            "node {i}: port monitor id {id} reused"
        );
        self.drain(i);
        id
    }

    /// Ends a port monitor of node `i` that has not fired.
    pub fn unmonitor_port(&mut self, i: usize, id: PortMonitorId) {
        self.api(i, |n| n.unmonitor_port(id))
            .expect("a port monitor that has not fired");
        if let Some(t) = self.nodes[i].port_monitors.get_mut(&id) {
            t.ended = true;
        }
        assert_eq!(
            self.api(i, |n| n.unmonitor_port(id)),
            Err(ApiError::UnknownPortMonitor),
            "a port monitor ends once"
        );
    }
}
