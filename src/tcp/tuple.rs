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
    /// The tuple without what a `SocketAddrV6` carries beyond address and port (flow label,
    /// scope id): the connection's identity (RFC 9293 §3.1), as tuples made from segments are.
    pub fn identity(&self) -> FourTuple {
        PackedTuple::from(*self).get()
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

/// A [`FourTuple`] as a TCB holds it: 38 bytes instead of 64. A `SocketAddr` has room for an
/// IPv6 flow label and scope id, which a TCP connection's identity (RFC 9293 §3.1, the
/// addresses and ports) does not include; every tuple a shard makes from a segment has them
/// zero, and so has the tuple this gives back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackedTuple {
    /// IPv4 addresses in the first 4 bytes, IPv6 in all 16.
    local: [u8; 16],
    remote: [u8; 16],
    local_port: u16,
    remote_port: u16,
    v6: bool,
}

impl From<FourTuple> for PackedTuple {
    fn from(t: FourTuple) -> Self {
        fn octets(a: IpAddr) -> [u8; 16] {
            match a {
                IpAddr::V4(v) => {
                    let mut o = [0u8; 16];
                    let [a, b, c, d] = v.octets();
                    o[..4].copy_from_slice(&[a, b, c, d]);
                    o
                }
                IpAddr::V6(v) => v.octets(),
            }
        }
        PackedTuple {
            local: octets(t.local.ip()),
            remote: octets(t.remote.ip()),
            local_port: t.local.port(),
            remote_port: t.remote.port(),
            v6: t.is_ipv6(),
        }
    }
}

impl PackedTuple {
    pub fn get(&self) -> FourTuple {
        let ip = |o: &[u8; 16]| -> IpAddr {
            if self.v6 {
                IpAddr::from(*o)
            } else {
                IpAddr::from([o[0], o[1], o[2], o[3]])
            }
        };
        FourTuple {
            local: SocketAddr::new(ip(&self.local), self.local_port),
            remote: SocketAddr::new(ip(&self.remote), self.remote_port),
        }
    }
}

impl fmt::Debug for PackedTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_tuple_gives_back_what_it_was_given() {
        for (l, r) in [
            ("198.18.0.1:80", "198.18.0.2:40000"),
            ("0.0.0.0:0", "255.255.255.255:65535"),
            ("[fd00:1813::1]:443", "[fd00:1813::2]:1"),
            ("[::ffff:198.18.0.1]:7", "[::1]:65535"),
        ] {
            let t = FourTuple::new(l.parse().unwrap(), r.parse().unwrap());
            let p = PackedTuple::from(t);
            assert_eq!(p.get(), t);
            assert_eq!(p.get().is_ipv6(), t.is_ipv6());
        }
        // An IPv4 tuple and the IPv6 tuple with the same leading bytes stay apart.
        let v4 = FourTuple::new("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
        let v6 = FourTuple::new("[102:304::]:1".parse().unwrap(), "[506:708::]:2".parse().unwrap());
        assert_ne!(PackedTuple::from(v4), PackedTuple::from(v6));
        assert_eq!(core::mem::size_of::<PackedTuple>(), 38);
    }
}
