//! Connection identifiers.

use core::fmt;
use core::net::{IpAddr, SocketAddr};

/// A connection's 4-tuple, from our side: `local` is where segments arrive, `remote` where they
/// come from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

impl FourTuple {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> Self {
        FourTuple { local, remote }
    }
    pub fn is_ipv6(&self) -> bool {
        self.local.is_ipv6()
    }
    /// Bytes fed to keyed hashes (ISN, cookies, TS offset): addresses then ports, fixed layout.
    pub fn hash_bytes(&self, out: &mut [u8; 36]) -> usize {
        let mut n = 0;
        for a in [self.local.ip(), self.remote.ip()] {
            match a {
                IpAddr::V4(v) => {
                    if let Some(d) = out.get_mut(n..n + 4) {
                        d.copy_from_slice(&v.octets());
                    }
                    n += 4;
                }
                IpAddr::V6(v) => {
                    if let Some(d) = out.get_mut(n..n + 16) {
                        d.copy_from_slice(&v.octets());
                    }
                    n += 16;
                }
            }
        }
        for p in [self.local.port(), self.remote.port()] {
            if let Some(d) = out.get_mut(n..n + 2) {
                d.copy_from_slice(&p.to_be_bytes());
            }
            n += 2;
        }
        n
    }
}

impl fmt::Debug for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.local, self.remote)
    }
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Handle to a connection in a shard: slab index plus a generation, so a stale handle never
/// reaches a newer connection that reused the slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId {
    pub index: u32,
    pub generation: u32,
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}
