//! The flow directory: which core holds each flow, readable by every core in O(1).
//!
//! DESIGN.md "Sharding across cores": a flow belongs to the core whose queue receives it. When
//! its packets move queue (veth follows the sender's transmit hash and Linux rehashes it;
//! `ethtool -X` rewrites the RSS table), the core they now reach must find the owner in one
//! lookup and hand the frame over in one hop, and a segment that matches nothing anywhere must
//! cost a core the same whatever the number of queues.
//!
//! The design: one table shared by the cores of an engine, written only when a flow's state
//! appears or goes (a SYN-queue entry, TCB or TIME-WAIT entry: [`FlowOwners::claim`] and
//! [`FlowOwners::release`], called by the shard), and read only for segments that match no
//! local state. Buckets of eight 64-bit slots, one cache line each; a slot holds a 48-bit
//! fingerprint of the 4-tuple and the owner's index + 1. Each tuple has two candidate buckets
//! (two-choice hashing: a flow goes to the emptier one, so buckets overflow only near full
//! load). The fingerprint and both buckets come from SipHash-1-3 under a random key, so a
//! peer cannot aim tuples at one bucket. Only the owner writes a slot it holds
//! (compare-and-swap to take an empty one); readers never write.
//!
//! Cost: 8 bytes per flow held by any core, two atomic writes per flow over its life, one
//! hash and one or two cache line reads per segment that matches nothing locally (whatever the
//! number of cores). When both buckets are full a claim is refused (counted as `full`): that
//! flow is still served on the queue it arrives on; only if it then moved queue would it be
//! judged as unknown there.

use crate::tcp::{FlowOwners, FourTuple};
use core::hash::Hasher;
use core::net::IpAddr;
use siphasher::sip::SipHasher13;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots per bucket: 8 x 8 bytes, one cache line.
const BUCKET: usize = 8;

/// The table shared by an engine's cores.
pub struct OwnerDirectory {
    slots: Box<[AtomicU64]>,
    /// Buckets - 1 (a power of two minus one).
    mask: u64,
    key: [u8; 16],
    /// Claims refused because their bucket was full, per claiming core.
    full: Box<[AtomicU64]>,
}

impl OwnerDirectory {
    /// A directory of at least `slots` slots (rounded up to a power of two, at least one
    /// bucket) for `cores` cores. `key` keys the hash.
    pub fn new(slots: usize, cores: usize, key: [u8; 16]) -> Arc<OwnerDirectory> {
        let buckets = (slots.max(BUCKET) / BUCKET).next_power_of_two();
        let slots: Box<[AtomicU64]> = (0..buckets * BUCKET).map(|_| AtomicU64::new(0)).collect();
        let full = (0..cores.max(1)).map(|_| AtomicU64::new(0)).collect();
        Arc::new(OwnerDirectory { slots, mask: buckets as u64 - 1, key, full })
    }

    /// The view core `me` gives its shard.
    pub fn for_core(self: &Arc<Self>, me: u16) -> CoreOwners {
        CoreOwners { dir: Arc::clone(self), me }
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes the table takes.
    pub fn bytes(&self) -> usize {
        self.slots.len() * core::mem::size_of::<AtomicU64>()
    }

    /// Claims refused because a bucket was full, all cores.
    pub fn full(&self) -> u64 {
        self.full.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Claims of core `core` refused because a bucket was full.
    pub fn full_of(&self, core: usize) -> u64 {
        self.full.get(core).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Slots in use (a scan: for statistics, not the fast path).
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.load(Ordering::Relaxed) != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (first bucket, second bucket, fingerprint) of a tuple. The fingerprint is never 0 (0
    /// marks an empty slot).
    fn locate(&self, t: &FourTuple) -> ([usize; 2], u64) {
        let mut h = SipHasher13::new_with_key(&self.key);
        for a in [t.local, t.remote] {
            match a.ip() {
                IpAddr::V4(v) => h.write(&v.octets()),
                IpAddr::V6(v) => h.write(&v.octets()),
            }
            h.write_u16(a.port());
        }
        let x = h.finish();
        let first = (x & self.mask) as usize * BUCKET;
        let second = ((x >> 40) & self.mask) as usize * BUCKET;
        let fp = (x >> 16) | 1;
        ([first, second], fp)
    }

    /// The slots of both candidate buckets, first bucket first.
    fn slots_of(&self, b: [usize; 2]) -> impl Iterator<Item = &AtomicU64> {
        let one = |start: usize| self.slots.get(start..start + BUCKET).unwrap_or(&[]);
        let second = if b[1] == b[0] { &[][..] } else { one(b[1]) };
        one(b[0]).iter().chain(second.iter())
    }

    /// The core that holds `t`, if any.
    pub fn owner(&self, t: &FourTuple) -> Option<u16> {
        let (b, fp) = self.locate(t);
        self.slots_of(b).find_map(|s| {
            let v = s.load(Ordering::Acquire);
            (v != 0 && v >> 16 == fp).then(|| ((v & 0xffff) as u16).wrapping_sub(1))
        })
    }

    fn claim(&self, t: &FourTuple, me: u16) {
        let (b, fp) = self.locate(t);
        let mine = (fp << 16) | (u64::from(me) + 1);
        // Already recorded (for this core or, after a race, another): point it here.
        for s in self.slots_of(b) {
            let v = s.load(Ordering::Acquire);
            if v != 0 && v >> 16 == fp {
                if v != mine {
                    let _ = s.compare_exchange(v, mine, Ordering::AcqRel, Ordering::Relaxed);
                }
                return;
            }
        }
        // Two choices: the emptier bucket first.
        let free = |start: usize| self.slots_of([start, start]).filter(|s| s.load(Ordering::Relaxed) == 0).count();
        let order = if free(b[1]) > free(b[0]) { [b[1], b[0]] } else { b };
        for s in self.slots_of(order) {
            if s.compare_exchange(0, mine, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return;
            }
        }
        if let Some(c) = self.full.get(usize::from(me)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(&self, t: &FourTuple, me: u16) {
        let (b, fp) = self.locate(t);
        let mine = (fp << 16) | (u64::from(me) + 1);
        for s in self.slots_of(b) {
            if s.compare_exchange(mine, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }
}

/// One core's handle on the directory (what its shard holds as [`FlowOwners`]).
pub struct CoreOwners {
    dir: Arc<OwnerDirectory>,
    me: u16,
}

impl FlowOwners for CoreOwners {
    fn owner_elsewhere(&self, t: &FourTuple) -> Option<u16> {
        self.dir.owner(t).filter(|o| *o != self.me)
    }
    fn claim(&self, t: &FourTuple) {
        self.dir.claim(t, self.me);
    }
    fn release(&self, t: &FourTuple) {
        self.dir.release(t, self.me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(port: u16) -> FourTuple {
        FourTuple::new("198.18.0.1:80".parse().unwrap(), format!("198.18.0.2:{port}").parse().unwrap())
    }

    #[test]
    fn claim_lookup_release() {
        let d = OwnerDirectory::new(1024, 2, [7; 16]);
        let (a, b) = (d.for_core(0), d.for_core(1));
        a.claim(&tuple(1));
        assert_eq!(b.owner_elsewhere(&tuple(1)), Some(0));
        assert_eq!(a.owner_elsewhere(&tuple(1)), None, "its own flow is not elsewhere");
        assert_eq!(b.owner_elsewhere(&tuple(2)), None);
        a.claim(&tuple(1));
        assert_eq!(d.len(), 1, "claims are idempotent");
        // Another core's release does not remove a flow it does not hold.
        b.release(&tuple(1));
        assert_eq!(b.owner_elsewhere(&tuple(1)), Some(0));
        a.release(&tuple(1));
        assert_eq!(b.owner_elsewhere(&tuple(1)), None);
        assert!(d.is_empty());
    }

    #[test]
    fn a_moved_claim_points_at_the_new_core() {
        let d = OwnerDirectory::new(64, 4, [1; 16]);
        d.for_core(0).claim(&tuple(9));
        d.for_core(3).claim(&tuple(9));
        assert_eq!(d.owner(&tuple(9)), Some(3));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn full_buckets_refuse_and_count() {
        // One bucket (both choices are the same one): the ninth flow finds no room.
        let d = OwnerDirectory::new(8, 1, [3; 16]);
        let a = d.for_core(0);
        for p in 0..9 {
            a.claim(&tuple(p));
        }
        assert_eq!(d.len(), 8);
        assert_eq!(d.full(), 1);
        assert_eq!(d.owner(&tuple(8)), None);
        a.release(&tuple(0));
        a.claim(&tuple(8));
        assert_eq!(d.owner(&tuple(8)), Some(0));
    }

    #[test]
    fn many_flows_spread_over_buckets() {
        // Two thirds full: two-choice hashing still finds every flow a slot.
        let d = OwnerDirectory::new(1 << 15, 4, [9; 16]);
        for p in 0..20_000u16 {
            d.for_core(p % 4).claim(&tuple(p));
        }
        assert_eq!(d.full(), 0);
        for p in 0..20_000u16 {
            assert_eq!(d.owner(&tuple(p)), Some(p % 4));
        }
        assert_eq!(d.len(), 20_000);
    }
}
