//! Model-based test: a few nodes on the simulated network (`groupmesh-sim`)
//! go through random sequences of local API calls and faults. In
//! `membership_matches_the_reference_model`, after every transition the
//! network is driven until it is converged and quiet, and every node must
//! list exactly what a plain reference model of the registrations says. In
//! `membership_matches_the_reference_model_without_settling_between_steps`,
//! the transitions follow each other on a network that has not settled
//! (only the simulator's checks at every drain hold in between); the network
//! settles once at the end, and then every node must list what the model
//! says.
//!
//! Run: `cargo test -p groupmesh-core --test membership_model`. Add
//! `PROPTEST_CASES=1000` for a longer search.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use groupmesh_core::{MonitorId, PortId, RegId};
use groupmesh_sim::{Sim, SimOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

const GROUPS: [&str; 3] = ["a", "b", "c"];

/// One node as the reference sees it. Ports are numbered by the model.
#[derive(Clone, Debug, Default)]
struct NodeModel {
    /// Live ports, in the order they were opened.
    ports: Vec<u32>,
    /// Live registrations (group, port), in the order they were made.
    regs: Vec<(usize, u32)>,
    /// Groups of live monitors, in the order they were started.
    monitors: Vec<usize>,
    next_port: u32,
}

#[derive(Clone, Debug)]
struct Model {
    nodes: Vec<NodeModel>,
    seed: u64,
}

impl Model {
    /// group -> (node, model port) of every registered port.
    fn members(&self) -> BTreeMap<usize, BTreeSet<(usize, u32)>> {
        let mut m: BTreeMap<usize, BTreeSet<(usize, u32)>> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for &(g, p) in &n.regs {
                m.entry(g).or_default().insert((i, p));
            }
        }
        m
    }
}

#[derive(Clone, Debug)]
enum Transition {
    /// Registers an existing port (`Some`) or a new one (`None`).
    Register {
        node: usize,
        group: usize,
        port: Option<Index>,
    },
    Unregister {
        node: usize,
        reg: Index,
    },
    ClosePort {
        node: usize,
        port: Index,
    },
    Monitor {
        node: usize,
        group: usize,
    },
    Unmonitor {
        node: usize,
        monitor: Index,
    },
    /// Resets the connection between two nodes.
    Disconnect {
        a: usize,
        b: usize,
    },
    /// The node crashes (its peers see a reset, or nothing) and starts again
    /// after `down_ms` with a new incarnation and no registrations.
    CrashRestart {
        node: usize,
        silent: bool,
        down_ms: u64,
    },
    Tick {
        millis: u64,
    },
}

struct MembershipModel;

impl ReferenceStateMachine for MembershipModel {
    type State = Model;
    type Transition = Transition;

    fn init_state() -> BoxedStrategy<Model> {
        (2usize..=4, any::<u64>())
            .prop_map(|(n, seed)| Model {
                nodes: vec![NodeModel::default(); n],
                seed,
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Transition> {
        let n = state.nodes.len();
        let node = 0..n;
        let group = 0..GROUPS.len();
        prop_oneof![
            6 => (node.clone(), group.clone(), proptest::option::weighted(0.6, any::<Index>()))
                .prop_map(|(node, group, port)| Transition::Register { node, group, port }),
            3 => (node.clone(), any::<Index>())
                .prop_map(|(node, reg)| Transition::Unregister { node, reg }),
            1 => (node.clone(), any::<Index>())
                .prop_map(|(node, port)| Transition::ClosePort { node, port }),
            2 => (node.clone(), group)
                .prop_map(|(node, group)| Transition::Monitor { node, group }),
            1 => (node.clone(), any::<Index>())
                .prop_map(|(node, monitor)| Transition::Unmonitor { node, monitor }),
            2 => (node.clone(), node.clone())
                .prop_map(|(a, b)| Transition::Disconnect { a, b }),
            2 => (node, any::<bool>(), 0u64..2_000)
                .prop_map(|(node, silent, down_ms)| Transition::CrashRestart { node, silent, down_ms }),
            1 => (1u64..3_000).prop_map(|millis| Transition::Tick { millis }),
        ]
        .boxed()
    }

    fn preconditions(state: &Model, t: &Transition) -> bool {
        let n = &state.nodes;
        match t {
            Transition::Register { node, port, .. } => {
                *node < n.len() && (port.is_none() || !n[*node].ports.is_empty())
            }
            Transition::Unregister { node, .. } => *node < n.len() && !n[*node].regs.is_empty(),
            Transition::ClosePort { node, .. } => *node < n.len() && !n[*node].ports.is_empty(),
            Transition::Monitor { node, .. } => *node < n.len(),
            Transition::Unmonitor { node, .. } => *node < n.len() && !n[*node].monitors.is_empty(),
            Transition::Disconnect { a, b } => a != b && *a < n.len() && *b < n.len(),
            Transition::CrashRestart { node, .. } => *node < n.len(),
            Transition::Tick { .. } => true,
        }
    }

    fn apply(mut state: Model, t: &Transition) -> Model {
        match t {
            Transition::Register { node, group, port } => {
                let m = &mut state.nodes[*node];
                let p = match port {
                    Some(i) => m.ports[i.index(m.ports.len())],
                    None => {
                        m.next_port += 1;
                        m.ports.push(m.next_port);
                        m.next_port
                    }
                };
                m.regs.push((*group, p));
            }
            Transition::Unregister { node, reg } => {
                let m = &mut state.nodes[*node];
                m.regs.remove(reg.index(m.regs.len()));
            }
            Transition::ClosePort { node, port } => {
                let m = &mut state.nodes[*node];
                let p = m.ports.remove(port.index(m.ports.len()));
                m.regs.retain(|&(_, q)| q != p);
            }
            Transition::Monitor { node, group } => state.nodes[*node].monitors.push(*group),
            Transition::Unmonitor { node, monitor } => {
                let m = &mut state.nodes[*node];
                m.monitors.remove(monitor.index(m.monitors.len()));
            }
            Transition::CrashRestart { node, .. } => state.nodes[*node] = NodeModel::default(),
            Transition::Disconnect { .. } | Transition::Tick { .. } => {}
        }
        state
    }
}

/// The simulated network, with the real ids of what the model numbers.
struct Sut {
    sim: Sim,
    /// Per node: model port -> real port.
    ports: Vec<BTreeMap<u32, PortId>>,
    /// Per node: the registrations, parallel to `NodeModel::regs`.
    regs: Vec<Vec<RegId>>,
    /// Per node: the monitors, parallel to `NodeModel::monitors`.
    monitors: Vec<Vec<MonitorId>>,
}

impl Sut {
    fn settle(&mut self) {
        let hold = self.sim.opts.hold();
        if let Err(e) = self.sim.settle_with(Duration::from_secs(30), hold) {
            panic!("{e}\n{}", self.sim.dump());
        }
    }
}

/// The test; with `SETTLE`, the network settles after every transition.
struct MembershipTest<const SETTLE: bool>;

impl<const SETTLE: bool> StateMachineTest for MembershipTest<SETTLE> {
    type SystemUnderTest = Sut;
    type Reference = MembershipModel;

    fn init_test(model: &Model) -> Sut {
        groupmesh_sim::init_tracing();
        let n = model.nodes.len();
        // Snapshots of a few memberships a chunk, so they stream while the
        // registrations change.
        let mut opts = SimOptions::new(n);
        opts.snapshot_chunk = Some((1, 16));
        let mut sut = Sut {
            sim: Sim::new(opts, model.seed),
            ports: vec![BTreeMap::new(); n],
            regs: vec![Vec::new(); n],
            monitors: vec![Vec::new(); n],
        };
        sut.settle();
        sut
    }

    fn apply(mut sut: Sut, model: &Model, t: Transition) -> Sut {
        let sim = &mut sut.sim;
        match t {
            Transition::Register { node, group, port } => {
                let p = match port {
                    Some(i) => {
                        let ports: Vec<&PortId> = sut.ports[node].values().collect();
                        ports[i.index(ports.len())].clone()
                    }
                    None => {
                        let p = sim.open_port(node);
                        let number = model.nodes[node].next_port;
                        sut.ports[node].insert(number, p.clone());
                        p
                    }
                };
                let r = sim.register(node, GROUPS[group], &p);
                sut.regs[node].push(r);
            }
            Transition::Unregister { node, reg } => {
                let k = reg.index(sut.regs[node].len());
                let r = sut.regs[node].remove(k);
                sim.unregister(node, r);
            }
            Transition::ClosePort { node, port } => {
                let k = port.index(sut.ports[node].len());
                let number = *sut.ports[node].keys().nth(k).expect("in range");
                let p = sut.ports[node].remove(&number).expect("live");
                sim.close_port(node, &p);
                // The model dropped the registrations of that port: keep the
                // ones that are still live, in order.
                let live = &sim.nodes[node].model.regs;
                sut.regs[node].retain(|r| live.contains_key(r));
            }
            Transition::Monitor { node, group } => {
                let m = sim.monitor(node, GROUPS[group]);
                sut.monitors[node].push(m);
            }
            Transition::Unmonitor { node, monitor } => {
                let k = monitor.index(sut.monitors[node].len());
                let m = sut.monitors[node].remove(k);
                sim.unmonitor(node, m);
            }
            Transition::Disconnect { a, b } => sim.cut(a, b),
            Transition::CrashRestart {
                node,
                silent,
                down_ms,
            } => {
                sim.crash(node, silent);
                sim.run_for(Duration::from_millis(down_ms));
                sim.restart(node);
                sut.ports[node].clear();
                sut.regs[node].clear();
                sut.monitors[node].clear();
            }
            Transition::Tick { millis } => sim.run_for(Duration::from_millis(millis)),
        }
        if SETTLE {
            sut.settle();
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        check_harness(sut, model);
        if SETTLE {
            check_views(sut, model);
        }
    }

    fn teardown(mut sut: Sut, model: Model) {
        if !SETTLE {
            sut.settle();
            check_views(&sut, &model);
        }
    }
}

/// The harness's registrations and monitors match the model's.
fn check_harness(sut: &Sut, model: &Model) {
    for (i, m) in model.nodes.iter().enumerate() {
        assert_eq!(sut.ports[i].len(), m.ports.len(), "node {i}: ports");
        assert_eq!(sut.regs[i].len(), m.regs.len(), "node {i}: registrations");
        let tracks = sut.sim.nodes[i].monitors.values();
        let live_monitors = tracks.filter(|t| !t.ended).count();
        assert_eq!(live_monitors, m.monitors.len(), "node {i}: monitors");
    }
}

/// On a settled network, every node lists what the model says.
fn check_views(sut: &Sut, model: &Model) {
    let want = model.members();
    for i in 0..model.nodes.len() {
        for (g, name) in GROUPS.iter().enumerate() {
            let expected: Vec<PortId> = want
                .get(&g)
                .into_iter()
                .flatten()
                .map(|(owner, p)| sut.ports[*owner][p].clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(
                sut.sim.members(i, name),
                expected,
                "node {i}: members({name:?})"
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        .. Config::default()
    })]
    #[test]
    fn membership_matches_the_reference_model(sequential 1..24 => MembershipTest<true>);

    #[test]
    fn membership_matches_the_reference_model_without_settling_between_steps(
        sequential 1..40 => MembershipTest<false>
    );
}
