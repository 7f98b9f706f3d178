//! Two nodes driven by hand, the way the README shows the run loop: no
//! simulator, just the drain loop and a pipe between the two cores.

use std::net::SocketAddr;

use groupmesh_core::{Action, Config, ConnId, Event, Instant, Node, NodeId};

struct Pair {
    now: Instant,
    nodes: [Node; 2],
    /// conn on node i -> conn on the other node
    links: Vec<(usize, ConnId, ConnId)>,
    events: [Vec<Event>; 2],
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn node(i: usize, secret: &[u8], seed: Option<usize>) -> Node {
    let mut cfg = Config::new(NodeId::new(&format!("n{i}")).expect("valid id"), secret);
    cfg.listen_addrs = vec![addr(i)];
    cfg.seeds = seed.map(addr).into_iter().collect();
    Node::new(cfg, 1, [i as u8; 32], Instant::ZERO).expect("valid config")
}

impl Pair {
    fn new(secret_b: &[u8]) -> Pair {
        Pair {
            now: Instant::ZERO,
            nodes: [node(0, b"secret", Some(1)), node(1, secret_b, None)],
            links: Vec::new(),
            events: [Vec::new(), Vec::new()],
        }
    }

    fn peer(&self, i: usize, conn: ConnId) -> Option<ConnId> {
        self.links.iter().find_map(|&(n, a, b)| match n {
            _ if n == i && a == conn => Some(b),
            _ if n != i && b == conn => Some(a),
            _ => None,
        })
    }

    /// Drains both nodes until nothing moves, delivering bytes whole.
    fn run(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..2 {
                let now = self.now;
                while let Some(t) = self.nodes[i].poll_transmit() {
                    moved = true;
                    if let Some(other) = self.peer(i, t.conn) {
                        self.nodes[1 - i].handle_bytes(now, other, &t.data);
                    }
                }
                while let Some(a) = self.nodes[i].poll_action() {
                    moved = true;
                    match a {
                        Action::Dial { conn, addr: to } => {
                            assert_eq!(to, addr(1 - i));
                            let remote = self.nodes[1 - i]
                                .handle_inbound(now, addr(i))
                                .expect("room");
                            let (a, b) = if i == 0 {
                                (conn, remote)
                            } else {
                                (remote, conn)
                            };
                            self.links.push((0, a, b));
                            self.nodes[i].handle_dialed(now, conn);
                        }
                        Action::Close { conn } => {
                            if let Some(other) = self.peer(i, conn) {
                                self.nodes[1 - i].handle_closed(now, other);
                            }
                        }
                        _ => {}
                    }
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    moved = true;
                    self.events[i].push(e);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now = Instant::from_millis(self.now.as_millis() + ms);
        for i in 0..2 {
            let now = self.now;
            self.nodes[i].handle_timeout(now);
        }
        self.run();
    }
}

#[test]
fn two_nodes_see_each_others_registrations() {
    let mut p = Pair::new(b"secret");
    let a = p.nodes[0].open_port();
    let b = p.nodes[1].open_port();
    p.nodes[0].register("workers", &a).expect("local port");
    p.nodes[1].register("workers", &b).expect("local port");
    p.tick(0);
    for n in &p.nodes {
        assert_eq!(n.members("workers"), Some(&[a.clone(), b.clone()][..]));
        assert_eq!(n.connected_nodes().count(), 1);
    }
    let up = p.events[0]
        .iter()
        .filter(|e| matches!(e, Event::NodeUp { .. }))
        .count();
    assert_eq!(up, 1);
}

#[test]
fn wrong_secret_is_refused_with_a_reason_on_both_sides() {
    let mut p = Pair::new(b"other secret");
    let b = p.nodes[1].open_port();
    p.nodes[1].register("workers", &b).expect("local port");
    p.tick(0);
    assert_eq!(p.nodes[0].members("workers"), None);
    assert_eq!(p.nodes[0].connected_nodes().count(), 0);
    let closed = |i: usize| {
        p.events[i].iter().any(|e| {
            matches!(e, Event::ConnectionClosed { reason, authenticated: false, .. }
                if reason.to_string().contains("authentication"))
        })
    };
    assert!(closed(0), "{:?}", p.events[0]);
    assert!(closed(1), "{:?}", p.events[1]);
}

#[test]
fn keepalive_keeps_an_idle_pair_connected_and_shutdown_ends_it() {
    let mut p = Pair::new(b"secret");
    let b = p.nodes[1].open_port();
    p.nodes[1].register("g", &b).expect("local port");
    p.tick(0);
    for _ in 0..100 {
        p.tick(250);
    }
    assert_eq!(p.nodes[0].members("g"), Some(&[b.clone()][..]));
    let now = p.now;
    p.nodes[1].shutdown(now);
    p.run();
    assert_eq!(p.nodes[0].members("g"), None);
    assert!(p.events[0]
        .iter()
        .any(|e| matches!(e, Event::NodeDown { .. })));
}

/// The README's run-loop example, verbatim, so it cannot rot.
#[test]
fn the_readme_example_runs() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg_a = Config::new(NodeId::new("a")?, b"secret");
    cfg_a.seeds = vec!["127.0.0.1:7001".parse()?]; // a dials b
    let mut cfg_b = Config::new(NodeId::new("b")?, b"secret");
    cfg_b.listen_addrs = vec!["127.0.0.1:7001".parse()?];
    let (mut a, mut b) = (
        Node::new(
            cfg_a,
            /* incarnation */ 1,
            /* rng seed */ [1; 32],
            Instant::ZERO,
        )?,
        Node::new(cfg_b, 1, [2; 32], Instant::ZERO)?,
    );
    let port = b.open_port();
    b.register("workers", &port)?;

    let now = Instant::ZERO;
    a.handle_timeout(now); // seeds are due: a asks to dial
    let Some(Action::Dial { conn: ca, .. }) = a.poll_action() else {
        unreachable!()
    };
    let cb = b
        .handle_inbound(now, "127.0.0.1:50000".parse()?)
        .expect("under the limits");
    a.handle_dialed(now, ca);
    // Pump bytes both ways until both are quiet (a real driver writes to sockets here).
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            b.handle_bytes(now, cb, &t.data);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_bytes(now, ca, &t.data);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert_eq!(a.members("workers"), Some(&[port][..]));
    while let Some(event) = a.poll_event() {
        println!("{event:?}"); // NodeUp, ...
    }
    let wake_at = a.poll_timeout(); // keepalive ping due then
    assert!(wake_at.is_some());
    Ok(())
}
