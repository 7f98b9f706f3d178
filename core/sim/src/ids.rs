//! How simulated nodes and connection ends are named: node ids, listen
//! addresses, the mesh's secret, and the keys of connection ends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use groupmesh_core::{ConnId, NodeId};
use rand::rngs::SmallRng;
use rand::Rng;

/// The port every simulated node listens on.
pub const LISTEN_PORT: u16 = 7000;
/// The mesh's shared secret.
pub const SECRET: &[u8] = b"simulated shared secret";

/// Most listen addresses a simulated node has.
pub const MAX_ADDRS: usize = 8;

/// The listen address of node `i`: `10.0.hi.lo:7000` (`10.0.0.i:7000` below 256).
pub fn addr_of(i: usize) -> SocketAddr {
    addr_k(i, 0)
}

/// Address `k` (`< MAX_ADDRS`) node `i` may listen on: `k = 0` is
/// [`addr_of`]; even `k`, IPv4 `10.k.hi.lo:7000+k`; odd `k`, IPv6
/// `[fd00::k:hi:lo]:7000+k`.
pub fn addr_k(i: usize, k: usize) -> SocketAddr {
    assert!(i < 1 << 16 && k < MAX_ADDRS, "node {i} address {k}");
    let [hi, lo] = u16::try_from(i).expect("checked").to_be_bytes();
    let kk = u8::try_from(k).expect("checked");
    let port = LISTEN_PORT + u16::from(kk);
    if k % 2 == 0 {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, kk, hi, lo)), port)
    } else {
        let ip = Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            u16::from(kk),
            u16::from(hi),
            u16::from(lo),
        );
        SocketAddr::new(IpAddr::V6(ip), port)
    }
}

/// The node `addr` is one of the [`addr_k`] of, if any (whether that node
/// listens there is for its configuration to say).
pub(crate) fn index_of(addr: SocketAddr) -> Option<usize> {
    let k = usize::from(addr.port().checked_sub(LISTEN_PORT)?);
    let i = match addr.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            usize::from(u16::from_be_bytes([o[2], o[3]]))
        }
        IpAddr::V6(ip) => {
            let s = ip.segments();
            (usize::from(s[6]) << 8) | usize::from(s[7])
        }
    };
    (k < MAX_ADDRS && addr_k(i, k) == addr).then_some(i)
}

/// The id of node `i`: `n00`, `n01`, ...
pub fn node_id(i: usize) -> NodeId {
    NodeId::new(&format!("n{i:02}")).expect("short id")
}

/// A long id for node `i`, up to 64 bytes: `n00-` and more bytes, some of
/// them two-byte characters.
pub(crate) fn long_node_id(i: usize, rng: &mut SmallRng) -> NodeId {
    let mut id = format!("n{i:02}-");
    let len = rng.random_range(id.len()..=64);
    while id.len() < len {
        let c = if rng.random_ratio(1, 4) { 'é' } else { 'x' };
        if id.len() + c.len_utf8() > 64 {
            break;
        }
        id.push(c);
    }
    NodeId::new(&id).expect("at most 64 bytes")
}

/// One endpoint of a connection: a node's incarnation and the core's id for it.
pub(crate) type EndKey = (usize, u64, ConnId);

/// The node index of the adversary's ends of links.
pub(crate) const ADVERSARY: usize = usize::MAX;
