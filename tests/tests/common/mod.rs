//! What the attack tests share: node configurations, a bounded test runner,
//! an event watcher, a monitor log, the honest mesh every attack runs
//! against, a raw client (`raw_client`) and an on-path proxy (`proxy`).

pub(crate) mod proxy;
pub(crate) mod raw_client;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use groupmesh_core::NodeId;
use groupmesh_smol::{
    CloseReason, Events, GroupChange, Node, NodeConfig, NodeEvent, Port, PortId, Registration,
    Timeouts,
};
use smol::Timer;

use proxy::Proxy;
use raw_client::timeout;

/// The most one test may take.
pub(crate) const TEST_LIMIT: Duration = Duration::from_secs(10);

/// How long a test waits for something that should happen at once.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// The secret of the honest mesh (and of the insiders among the attackers).
pub(crate) const SECRET: &[u8] = b"groupmesh attack test secret";

/// The group every honest node registers a port in.
pub(crate) const GROUP: &str = "g";

/// Panics seen on threads that are not test threads: the runtime's threads,
/// where the nodes under attack run. Any is a bug.
static NODE_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records panics on the runtime's threads (smol catches them and carries
/// on, so a node's panic would otherwise go unseen), then reports as usual.
fn watch_for_node_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if name.is_empty() || name.starts_with("smol") || name.starts_with("async-io") {
                NODE_PANICS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("thread {name:?}: {info}"));
            }
            default(info);
        }));
    });
}

/// Runs a test body on smol, failing the test if it takes longer than
/// [`TEST_LIMIT`] or if a node panicked meanwhile, and prints how long it took.
pub(crate) fn run(test: impl Future<Output = ()>) {
    watch_for_node_panics();
    let name = std::thread::current()
        .name()
        .unwrap_or("attack test")
        .to_owned();
    smol::block_on(async {
        let started = Instant::now();
        if timeout(TEST_LIMIT, test).await.is_none() {
            panic!("{name} took longer than {TEST_LIMIT:?}");
        }
        eprintln!("{name}: {:?}", started.elapsed());
    });
    let panics = NODE_PANICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(panics.is_empty(), "a node panicked: {panics:#?}");
}

/// Short timeouts, so that every attack resolves well within [`TEST_LIMIT`],
/// with a keepalive long enough that a raw client need not ping.
pub(crate) fn timeouts() -> Timeouts {
    let mut t = Timeouts::default();
    t.ping_interval = Duration::from_millis(250);
    t.keepalive_timeout = Duration::from_secs(4);
    t.handshake_timeout = Duration::from_secs(3);
    t.backoff_min = Duration::from_millis(20);
    t.backoff_max = Duration::from_millis(300);
    t.gossip_dial_delay = Duration::from_millis(50);
    t
}

/// A node on 127.0.0.1 (a free port) joining through `seeds`.
pub(crate) fn config(name: &str, seeds: &[SocketAddr]) -> NodeConfig {
    let mut cfg = NodeConfig::new(name, SECRET);
    cfg.bind.push(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.seeds = seeds.to_vec();
    cfg.timeouts = timeouts();
    cfg.linger = Duration::from_millis(500);
    cfg
}

/// Starts a node, panicking if it cannot.
pub(crate) async fn start(cfg: NodeConfig) -> Node {
    let name = cfg.node_id.clone();
    Node::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("node {name} did not start: {e}"))
}

/// The address a node listens on.
pub(crate) fn addr(node: &Node) -> SocketAddr {
    *node
        .local_addrs()
        .first()
        .expect("test nodes bind one address")
}

/// Waits until `cond` holds, checking every 5 ms, for at most [`WAIT`].
pub(crate) async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        Timer::after(Duration::from_millis(5)).await;
    }
}

/// A node's event stream, with everything read from it kept for later checks.
pub(crate) struct Watch {
    events: Events,
    /// Every event read so far.
    pub(crate) history: Vec<NodeEvent>,
    /// Events read but not yet matched by [`expect`](Self::expect).
    unmatched: Vec<NodeEvent>,
}

impl Watch {
    pub(crate) fn new(node: &Node) -> Watch {
        Watch {
            events: node.events(),
            history: Vec::new(),
            unmatched: Vec::new(),
        }
    }

    async fn read(&mut self, limit: Duration) -> Option<NodeEvent> {
        let event = timeout(limit, self.events.next()).await.flatten()?;
        self.history.push(event.clone());
        Some(event)
    }

    /// The first event, not matched before, for which `pred` holds; waits
    /// at most [`WAIT`] for it.
    pub(crate) async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&NodeEvent) -> bool,
    ) -> NodeEvent {
        if let Some(i) = self.unmatched.iter().position(&pred) {
            return self.unmatched.remove(i);
        }
        let started = Instant::now();
        loop {
            let left = WAIT.saturating_sub(started.elapsed());
            match self.read(left).await {
                Some(e) if pred(&e) => return e,
                Some(e) => self.unmatched.push(e),
                None => panic!("no event within {WAIT:?}: {what}; saw {:#?}", self.history),
            }
        }
    }

    /// The reason of the connection from `addr` closing, as the user sees it.
    pub(crate) async fn closed_from(
        &mut self,
        addr: SocketAddr,
    ) -> (CloseReason, bool, Option<NodeId>) {
        let what = format!("the connection from {addr} closes");
        match self
            .expect(
                &what,
                |e| matches!(e, NodeEvent::ConnectionClosed { addr: a, .. } if *a == addr),
            )
            .await
        {
            NodeEvent::ConnectionClosed {
                reason,
                authenticated,
                node,
                ..
            } => (reason, authenticated, node),
            _ => unreachable!("matched a ConnectionClosed above"),
        }
    }

    /// Reads what is pending, until the stream is quiet for 100 ms.
    pub(crate) async fn settle(&mut self) {
        while let Some(e) = self.read(Duration::from_millis(100)).await {
            self.unmatched.push(e);
        }
    }

    /// Reads what is pending and sets it aside: later
    /// [`expect`](Self::expect)s match only what happens from now on.
    pub(crate) async fn skip_pending(&mut self) {
        self.settle().await;
        self.unmatched.clear();
    }

    /// Checks that nothing in the history says `node` went down or that an
    /// authenticated connection of it closed.
    pub(crate) fn assert_never_lost(&self, node: &NodeId, on: &str) {
        for e in &self.history {
            match e {
                NodeEvent::NodeDown { node: n, .. } if n == node => {
                    panic!("{on} lost honest node {node}: {e:?}")
                }
                NodeEvent::ConnectionClosed {
                    node: Some(n),
                    authenticated: true,
                    ..
                } if n == node => panic!("{on} lost its connection to honest node {node}: {e:?}"),
                NodeEvent::Lagged { .. } => {
                    panic!("{on}'s event stream lagged: a check missed events")
                }
                _ => {}
            }
        }
    }
}

/// Every change a monitor of one group reports, read as it happens (a
/// monitor merges changes its reader has not taken yet: reading at once is
/// how no intermediate state goes unseen).
pub(crate) struct MonitorLog {
    changes: Arc<Mutex<Vec<GroupChange>>>,
    _task: smol::Task<()>,
}

impl MonitorLog {
    /// Monitors `group` on `node`.
    pub(crate) fn start(node: &Node, group: &str) -> MonitorLog {
        let mut monitor = node.monitor(group).expect("a valid group");
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = changes.clone();
        let task = smol::spawn(async move {
            while let Some(change) = monitor.next().await {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(change);
            }
        });
        MonitorLog {
            changes,
            _task: task,
        }
    }

    /// The changes so far.
    pub(crate) fn changes(&self) -> Vec<GroupChange> {
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// No change so far listed a port outside `allowed` (as a member or
    /// as added).
    pub(crate) fn assert_only(&self, allowed: &[PortId], on: &str) {
        for change in self.changes() {
            for p in change.members.iter().chain(&change.added) {
                assert!(
                    allowed.contains(p),
                    "{on}'s monitor listed {p:?}, which nobody registered: {change:?}"
                );
            }
        }
    }
}

/// The honest mesh an attack runs against: the attacked node `a` and an
/// honest peer `b`, connected, each with one port registered in [`GROUP`];
/// both watch their events and monitor the group.
pub(crate) struct Mesh {
    pub(crate) a: Node,
    pub(crate) b: Node,
    pub(crate) a_port: Port,
    pub(crate) b_port: Port,
    regs: Vec<Registration>,
    /// `a`'s events since before `b` joined.
    pub(crate) a_events: Watch,
    /// `b`'s events since it started.
    pub(crate) b_events: Watch,
    /// The group's changes on `a` and `b` since they listed each other's ports.
    pub(crate) a_changes: MonitorLog,
    pub(crate) b_changes: MonitorLog,
    /// Every honest port in [`GROUP`], sorted.
    pub(crate) honest: Vec<PortId>,
}

impl Mesh {
    /// As [`start`](Self::start), with `b` dialling `a` through an on-path
    /// [`Proxy`] (honest until armed) that records every record.
    pub(crate) async fn start_via_proxy(cfg: NodeConfig) -> (Mesh, Proxy) {
        let mut proxy = None;
        let mesh = Self::start_with(cfg, |a| {
            let p = Proxy::start(a);
            let via = p.addr;
            proxy = Some(p);
            via
        })
        .await;
        (mesh, proxy.expect("the proxy started with the mesh"))
    }

    /// Starts the attacked node with `cfg` and an honest peer that joins it.
    pub(crate) async fn start(cfg: NodeConfig) -> Mesh {
        Self::start_with(cfg, |a| a).await
    }

    /// As [`start`](Self::start), with `b` dialling `b_seed(address of a)`.
    async fn start_with(cfg: NodeConfig, b_seed: impl FnOnce(SocketAddr) -> SocketAddr) -> Mesh {
        let a = start(cfg).await;
        let a_events = Watch::new(&a);
        let a_port = a.open_port();
        let ra = a.register(GROUP, &a_port).expect("a valid group");
        let b = start(config("b", &[b_seed(addr(&a))])).await;
        let b_events = Watch::new(&b);
        let b_port = b.open_port();
        let rb = b.register(GROUP, &b_port).expect("a valid group");
        let mut honest = vec![a_port.id().clone(), b_port.id().clone()];
        honest.sort();
        eventually("a and b list each other's ports", || {
            a.members(GROUP).as_ref() == Some(&honest) && b.members(GROUP).as_ref() == Some(&honest)
        })
        .await;
        eventually("a and b are connected", || {
            a.connected_nodes().contains(b.id()) && b.connected_nodes().contains(a.id())
        })
        .await;
        let a_changes = MonitorLog::start(&a, GROUP);
        let b_changes = MonitorLog::start(&b, GROUP);
        Mesh {
            a,
            b,
            a_port,
            b_port,
            regs: vec![ra, rb],
            a_events,
            b_events,
            a_changes,
            b_changes,
            honest,
        }
    }

    /// The ports of honest nodes that `node` lists in `GROUP`.
    pub(crate) fn honest_members(&self, node: &Node) -> Vec<PortId> {
        let honest_nodes = [self.a.id(), self.b.id()];
        node.members(GROUP)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| honest_nodes.contains(&p.node()))
            .collect()
    }

    /// The honest mesh is as it was: `a` and `b` still connected to each
    /// other (never lost, by their events), every honest port still listed on
    /// both and never removed in `a`'s monitor, and `b` lists nothing else.
    pub(crate) async fn assert_intact(&mut self) {
        assert!(
            self.a.connected_nodes().contains(self.b.id()),
            "a is no longer connected to b: {:?}",
            self.a.connected_nodes()
        );
        assert!(
            self.b.connected_nodes().contains(self.a.id()),
            "b is no longer connected to a: {:?}",
            self.b.connected_nodes()
        );
        assert_eq!(
            self.honest_members(&self.a),
            self.honest,
            "a's honest members"
        );
        assert_eq!(
            self.b.members(GROUP),
            Some(self.honest.clone()),
            "b lists exactly the honest members"
        );
        self.a_events.settle().await;
        self.b_events.settle().await;
        self.a_events.assert_never_lost(self.b.id(), "a");
        self.b_events.assert_never_lost(self.a.id(), "b");
        for change in self.a_changes.changes() {
            for p in &change.removed {
                assert!(
                    !self.honest.contains(p),
                    "a's monitor saw honest port {p:?} leave: {change:?}"
                );
            }
            for p in &self.honest {
                assert!(change.members.contains(p), "{p:?} missing in {change:?}");
            }
        }
        self.b_changes.assert_only(&self.honest, "b");
    }

    /// A new honest node `c` can still join: it connects to `a` and `b`,
    /// and all three list every honest port, `c`'s included.
    pub(crate) async fn assert_new_node_joins(&self) {
        let c = start(config("c", &[addr(&self.a)])).await;
        let c_port = c.open_port();
        let _rc = c.register(GROUP, &c_port).expect("a valid group");
        let mut all = self.honest.clone();
        all.push(c_port.id().clone());
        all.sort();
        eventually("a new node c joins and every node lists a, b and c", || {
            [&self.a, &self.b, &c]
                .iter()
                .all(|n| n.members(GROUP).as_ref() == Some(&all))
        })
        .await;
        eventually("c is connected to a and b", || {
            let up = c.connected_nodes();
            up.contains(self.a.id()) && up.contains(self.b.id())
        })
        .await;
        c.shutdown().await;
    }

    /// Shuts both honest nodes down.
    pub(crate) async fn shutdown(self) {
        drop(self.regs);
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}
