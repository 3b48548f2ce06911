//! Keyed hashes the protocol needs: RFC 6528 ISNs, RFC 7323 §5.4 timestamp offsets, and the
//! keys of SYN cookies. The keys come in from the engine (the `tcp` layer draws no randomness).

use super::tuple::FourTuple;
use crate::time::Instant;
use crate::wire::SeqNum;
use core::hash::Hasher;
use siphasher::sip::SipHasher24;

/// A 128-bit SipHash key.
pub type Key = [u8; 16];

/// Every secret a shard uses. Shards of one engine share them, so any core can validate a cookie
/// that another core issued.
#[derive(Clone)]
pub struct Secrets {
    pub isn_key: Key,
    pub ts_key: Key,
    /// The cookie key in use, and the one before it (still accepted until cookies made with it
    /// have expired).
    pub cookie_key: Key,
    pub cookie_key_prev: Key,
}

impl core::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

impl Secrets {
    /// Secrets derived from one seed: for tests and simulations only; the engine draws each key
    /// from the OS.
    pub fn from_seed(seed: u64) -> Self {
        let k = |i: u64| -> Key {
            let a = splitmix(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let b = splitmix(a);
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&a.to_le_bytes());
            out[8..].copy_from_slice(&b.to_le_bytes());
            out
        };
        Secrets { isn_key: k(1), ts_key: k(2), cookie_key: k(3), cookie_key_prev: k(4) }
    }

    /// Installs a new cookie key; the current one becomes the previous one.
    pub fn rotate_cookie_key(&mut self, key: Key) {
        self.cookie_key_prev = self.cookie_key;
        self.cookie_key = key;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SipHash-2-4 of the 4-tuple and `extra` words under `key`.
pub fn keyed_hash(key: &Key, t: &FourTuple, extra: &[u32]) -> u64 {
    let mut h = SipHasher24::new_with_key(key);
    let mut b = [0u8; 36];
    let n = t.hash_bytes(&mut b);
    h.write(b.get(..n).unwrap_or(&[]));
    for e in extra {
        h.write(&e.to_be_bytes());
    }
    h.finish()
}

/// RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a
/// timer that ticks every 4 microseconds and F is a keyed PRF (SipHash-2-4 here).
pub fn isn(key: &Key, now: Instant, t: &FourTuple) -> SeqNum {
    let m = (now.as_nanos() / 4_000) as u32;
    SeqNum(m.wrapping_add(keyed_hash(key, t, &[]) as u32))
}

/// RFC 7323 §5.4: a per-connection random offset added to the timestamp clock, so that TSval
/// leaks neither uptime nor the clock of other connections. Derived from the tuple so that a
/// stateless SYN cookie exchange finds the same offset again.
pub fn ts_offset(key: &Key, t: &FourTuple) -> u32 {
    (keyed_hash(key, t, &[]) >> 32) as u32
}

/// The timestamp clock (RFC 7323 §5.4): 1 ms per tick.
pub fn ts_clock(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(port: u16) -> FourTuple {
        FourTuple::new("198.18.0.1:80".parse().unwrap(), format!("198.18.0.2:{port}").parse().unwrap())
    }

    /// RFC 6528: the ISN advances with the 4 µs clock for one tuple, and differs between tuples.
    #[test]
    fn isn_ticks_every_4us_and_depends_on_tuple() {
        let s = Secrets::from_seed(7);
        let a = isn(&s.isn_key, Instant::from_nanos(0), &tuple(1000));
        let b = isn(&s.isn_key, Instant::from_nanos(4_000_000), &tuple(1000));
        assert_eq!(b.distance_from(a), 1000);
        let c = isn(&s.isn_key, Instant::from_nanos(0), &tuple(1001));
        assert_ne!(a, c);
        let other = Secrets::from_seed(8);
        assert_ne!(a, isn(&other.isn_key, Instant::from_nanos(0), &tuple(1000)));
    }
}
