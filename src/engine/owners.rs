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
//! fingerprint of the 4-tuple and the owner's index + 1. Each tuple has two candidate buckets and
//! goes to the emptier one (two-choice hashing: buckets overflow only near full load). Beside
//! the slots, an 8-bit filter per bucket of the fingerprints it holds (a table 1/64 the size,
//! small enough to stay in cache; a tuple's two buckets are picked among 64 whose filters
//! share a cache line). A lookup reads the two filters, and a bucket's slots only
//! when its filter says the fingerprint may be there: a segment that matches nothing, a flood's, costs one hash and
//! mostly just the filter's cache line, not a random line of the large table. The fingerprint
//! and both buckets come from a keyed hash with random seeds (folded multiplies), so a peer
//! cannot aim tuples at one bucket. Only the owner writes a slot it holds (compare-and-swap to
//! take an empty one); readers never write.
//!
//! Cost: 8 bytes (+1/8 byte) per slot, a flow held by any core takes one; two atomic writes
//! per flow over its life. When both buckets are full a claim is refused (counted as `full`):
//! that flow is still served on the queue it arrives on; only if it then moved queue would it
//! be judged as unknown there.

use crate::tcp::{FlowOwners, FourTuple};
use crate::time::Instant;
use core::hash::BuildHasher;
use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots per bucket: 8 x 8 bytes, one cache line.
const BUCKET: usize = 8;

/// The folded multiply of wyhash and foldhash: the 128-bit product's halves xored. A keyed mix
/// that costs a few instructions, also in an unoptimised build.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

/// The bit a fingerprint sets in its bucket's filter.
fn fp_bit(fp: u64) -> u8 {
    1 << ((fp >> 1) & 7)
}

/// Slots in memory that asks for huge pages (transparent huge pages, `madvise`): a flood of
/// segments from random tuples reads a random bucket each, and with 4 KiB pages each read is
/// also a TLB miss (a nested page walk under a hypervisor). Falls back to the heap.
enum SlotMem {
    Mapped { ptr: core::ptr::NonNull<AtomicU64>, len: usize, bytes: usize },
    Heap(Box<[AtomicU64]>),
}

// SAFETY: the mapping is owned by this value alone, and AtomicU64 is Sync.
unsafe impl Send for SlotMem {}
// SAFETY: as above; shared access goes through atomics only.
unsafe impl Sync for SlotMem {}

const HUGE_PAGE: usize = 2 << 20;

impl SlotMem {
    fn zeroed(len: usize) -> SlotMem {
        let bytes = (len * core::mem::size_of::<AtomicU64>()).div_ceil(HUGE_PAGE) * HUGE_PAGE;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return SlotMem::Heap((0..len).map(|_| AtomicU64::new(0)).collect());
        }
        // SAFETY: `p` is the start of the `bytes`-long mapping made above. A refusal (no THP)
        // leaves ordinary pages, which is fine.
        unsafe {
            libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
        }
        match core::ptr::NonNull::new(p.cast::<AtomicU64>()) {
            Some(ptr) => SlotMem::Mapped { ptr, len, bytes },
            None => SlotMem::Heap((0..len).map(|_| AtomicU64::new(0)).collect()),
        }
    }

    fn as_slice(&self) -> &[AtomicU64] {
        match self {
            // SAFETY: the mapping holds `len` zero-initialised u64s (a valid AtomicU64 each),
            // page-aligned, alive as long as `self`.
            SlotMem::Mapped { ptr, len, .. } => unsafe { core::slice::from_raw_parts(ptr.as_ptr(), *len) },
            SlotMem::Heap(b) => b,
        }
    }
}

impl Drop for SlotMem {
    fn drop(&mut self) {
        if let SlotMem::Mapped { ptr, bytes, .. } = self {
            // SAFETY: unmaps exactly the mapping `zeroed` made; no reference outlives `self`.
            unsafe {
                libc::munmap(ptr.as_ptr().cast(), *bytes);
            }
        }
    }
}

/// The table shared by an engine's cores.
pub struct OwnerDirectory {
    slots: SlotMem,
    /// Per bucket: a filter of the fingerprints held (bit `fp_bit(fp)` set for each).
    /// Eight buckets' filters per word, in page-aligned memory so that 64 buckets' filters
    /// share one cache line.
    marks: SlotMem,
    /// Buckets - 1 (a power of two minus one).
    mask: u64,
    /// Random per directory: a peer cannot aim tuples at one bucket without them.
    seeds: [u64; 4],
    /// Claims refused because their bucket was full, per claiming core.
    full: Box<[AtomicU64]>,
    /// Per listening port: when a core last sent a SYN cookie (nanoseconds of the engine's
    /// clock + 1; 0: never). Mapped lazily: only the pages of ports in use are touched.
    cookie_sent: SlotMem,
}

/// How much a core's cookie stamp may lag before it is written again: the stamp only has to say
/// "cookies went out within the last two minutes", and a SYN flood must not make every core
/// write one shared cache line per cookie.
const COOKIE_STAMP_SLACK_NS: u64 = 1_000_000_000;

impl OwnerDirectory {
    /// A directory of at least `slots` slots (rounded up to a power of two, at least one
    /// bucket) for `cores` cores. The hash is seeded at random.
    pub fn new(slots: usize, cores: usize) -> Arc<OwnerDirectory> {
        let buckets = (slots.max(BUCKET) / BUCKET).next_power_of_two();
        let slots = SlotMem::zeroed(buckets * BUCKET);
        let marks = SlotMem::zeroed(buckets.div_ceil(8));
        let full = (0..cores.max(1)).map(|_| AtomicU64::new(0)).collect();
        // Random seeds from the standard library's per-process random hasher keys.
        let rs = std::collections::hash_map::RandomState::new();
        let seeds = [0u64, 1, 2, 3].map(|i| rs.hash_one(i) | 1);
        let cookie_sent = SlotMem::zeroed(1 << 16);
        Arc::new(OwnerDirectory { slots, marks, mask: buckets as u64 - 1, seeds, full, cookie_sent })
    }

    fn note_cookie(&self, port: u16, now: Instant) {
        if let Some(c) = self.cookie_sent.as_slice().get(usize::from(port)) {
            let v = now.as_nanos().saturating_add(1);
            if c.load(Ordering::Relaxed).saturating_add(COOKIE_STAMP_SLACK_NS) < v {
                c.store(v, Ordering::Relaxed);
            }
        }
    }

    fn last_cookie(&self, port: u16) -> Option<Instant> {
        let v = self.cookie_sent.as_slice().get(usize::from(port))?.load(Ordering::Relaxed);
        // The stamp may lag by the slack: report it as that much later, never as older.
        (v != 0).then(|| Instant::from_nanos((v - 1).saturating_add(COOKIE_STAMP_SLACK_NS)))
    }

    /// The view core `me` gives its shard.
    pub fn for_core(self: &Arc<Self>, me: u16) -> CoreOwners {
        CoreOwners { dir: Arc::clone(self), me }
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots.as_slice().len()
    }

    /// Bytes the table takes.
    pub fn bytes(&self) -> usize {
        core::mem::size_of_val(self.slots.as_slice())
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
        self.slots.as_slice().iter().filter(|s| s.load(Ordering::Relaxed) != 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (first bucket, second bucket, fingerprint) of a tuple. The fingerprint is never 0 (0
    /// marks an empty slot).
    #[inline]
    fn locate(&self, t: &FourTuple) -> ([usize; 2], u64) {
        let ports = u64::from(t.local.port()) << 16 | u64::from(t.remote.port());
        let [k0, k1, k2, k3] = self.seeds;
        let x = match (t.local.ip(), t.remote.ip()) {
            // IPv4, the common case: two words through two folded multiplies.
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                let ips = u64::from(u32::from(l)) << 32 | u64::from(u32::from(r));
                fold_mul(fold_mul(ips ^ k0, ports ^ k1) ^ k2, k3)
            }
            (l, r) => {
                let words = |a: IpAddr| -> u128 {
                    match a {
                        IpAddr::V4(v) => u128::from(u32::from(v)),
                        IpAddr::V6(v) => u128::from(v),
                    }
                };
                let (l, r) = (words(l), words(r));
                let a = fold_mul((l as u64) ^ k0, ((l >> 64) as u64) ^ k1);
                let b = fold_mul((r as u64) ^ k2, ((r >> 64) as u64) ^ k3);
                fold_mul(a ^ ports ^ k1, b ^ k2)
            }
        };
        // The second choice lies among the 64 buckets whose filters share the first's cache
        // line: a lookup for a flow nobody holds reads one line of filters, not two.
        let first_bucket = x & self.mask;
        let second_bucket = (first_bucket ^ ((x >> 40) & 63)) & self.mask;
        let first = first_bucket as usize * BUCKET;
        let second = second_bucket as usize * BUCKET;
        let fp = (x >> 16) | 1;
        ([first, second], fp)
    }

    fn bucket(&self, start: usize) -> &[AtomicU64] {
        self.slots.as_slice().get(start..start + BUCKET).unwrap_or(&[])
    }

    /// The word holding the filter of the bucket at `start`, and the filter's shift in it.
    fn marks_of(&self, start: usize) -> Option<(&AtomicU64, u32)> {
        let b = start / BUCKET;
        Some((self.marks.as_slice().get(b / 8)?, (b % 8) as u32 * 8))
    }

    #[inline]
    fn marks(&self, start: usize) -> u8 {
        self.marks_of(start).map_or(0, |(m, sh)| (m.load(Ordering::SeqCst) >> sh) as u8)
    }

    /// The owner recorded under `fp` in the bucket at `start`.
    fn scan(&self, start: usize, fp: u64) -> Option<u16> {
        self.bucket(start).iter().find_map(|s| {
            let v = s.load(Ordering::Acquire);
            (v != 0 && v >> 16 == fp).then(|| ((v & 0xffff) as u16).wrapping_sub(1))
        })
    }

    /// The distinct candidate buckets of a tuple.
    fn candidates(b: &[usize; 2]) -> &[usize] {
        if b[1] != b[0] {
            &b[..]
        } else {
            &b[..1]
        }
    }

    /// The core that holds `t`, if any.
    pub fn owner(&self, t: &FourTuple) -> Option<u16> {
        let (b, fp) = self.locate(t);
        let bit = fp_bit(fp);
        if self.marks(b[0]) & bit != 0 {
            if let Some(o) = self.scan(b[0], fp) {
                return Some(o);
            }
        }
        if b[1] != b[0] && self.marks(b[1]) & bit != 0 {
            return self.scan(b[1], fp);
        }
        None
    }

    /// Takes an empty slot of the bucket at `start` for `v`, and sets its filter bit.
    fn insert(&self, start: usize, v: u64, bit: u8) -> bool {
        for s in self.bucket(start) {
            if s.compare_exchange(0, v, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                if let Some((m, sh)) = self.marks_of(start) {
                    m.fetch_or(u64::from(bit) << sh, Ordering::SeqCst);
                }
                return true;
            }
        }
        false
    }

    fn free_slots(&self, start: usize) -> usize {
        self.bucket(start).iter().filter(|s| s.load(Ordering::Relaxed) == 0).count()
    }

    fn claim(&self, t: &FourTuple, me: u16) {
        let (b, fp) = self.locate(t);
        let mine = (fp << 16) | (u64::from(me) + 1);
        let bit = fp_bit(fp);
        // Already recorded (for this core or, after a race, another): point it here.
        for start in Self::candidates(&b) {
            for s in self.bucket(*start) {
                let v = s.load(Ordering::Acquire);
                if v != 0 && v >> 16 == fp {
                    if v != mine {
                        let _ = s.compare_exchange(v, mine, Ordering::AcqRel, Ordering::Relaxed);
                    }
                    return;
                }
            }
        }
        // Two choices: the emptier bucket first.
        let order = if self.free_slots(b[1]) > self.free_slots(b[0]) { [b[1], b[0]] } else { b };
        if Self::candidates(&order).iter().any(|start| self.insert(*start, mine, bit)) {
            return;
        }
        if let Some(c) = self.full.get(usize::from(me)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(&self, t: &FourTuple, me: u16) {
        let (b, fp) = self.locate(t);
        let mine = (fp << 16) | (u64::from(me) + 1);
        for start in Self::candidates(&b) {
            for s in self.bucket(*start) {
                if s.compare_exchange(mine, 0, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                    self.refilter(*start);
                    return;
                }
            }
        }
    }

    /// Rebuilds the filter of the bucket at `start` after a slot was emptied (bits can only be
    /// cleared by recomputing). A claim that lands meanwhile sets its bit after its slot, so the
    /// second pass below, which runs after the store, sees that slot and puts its bit back.
    fn refilter(&self, start: usize) {
        let Some((m, sh)) = self.marks_of(start) else { return };
        let filter = || {
            self.bucket(start)
                .iter()
                .map(|s| s.load(Ordering::SeqCst))
                .filter(|v| *v != 0)
                .fold(0u8, |f, v| f | fp_bit(v >> 16))
        };
        let mut old = m.load(Ordering::SeqCst);
        loop {
            let new = (old & !(0xff << sh)) | (u64::from(filter()) << sh);
            match m.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        m.fetch_or(u64::from(filter()) << sh, Ordering::SeqCst);
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
    fn cookie_sent(&self, port: u16, now: Instant) {
        self.dir.note_cookie(port, now);
    }
    fn last_cookie(&self, port: u16) -> Option<Instant> {
        self.dir.last_cookie(port)
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
        let d = OwnerDirectory::new(1024, 2);
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

    /// A cookie sent by one core is known to every core (within the stamp's slack, rounded
    /// towards "recent").
    #[test]
    fn cookie_stamps_are_shared() {
        let d = OwnerDirectory::new(64, 2);
        assert_eq!(d.for_core(1).last_cookie(80), None);
        d.for_core(0).cookie_sent(80, Instant::from_secs(100));
        let seen = d.for_core(1).last_cookie(80).unwrap();
        assert!(seen >= Instant::from_secs(100) && seen <= Instant::from_secs(101));
        assert_eq!(d.for_core(1).last_cookie(81), None);
    }

    /// Claims and releases in random order against a model, in a directory small enough that
    /// buckets spill and filters are rebuilt: every held flow is always found, no released one.
    #[test]
    fn random_claims_and_releases_match_a_model() {
        let d = OwnerDirectory::new(64, 4);
        let mut model: std::collections::HashMap<u16, u16> = std::collections::HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = (x % 48) as u16;
            let core = ((x >> 20) % 4) as u16;
            let h = d.for_core(core);
            if x >> 40 & 1 == 0 {
                let refused = d.full();
                h.claim(&tuple(port));
                if d.full() == refused {
                    model.insert(port, core);
                }
            } else if model.get(&port) == Some(&core) {
                h.release(&tuple(port));
                model.remove(&port);
            }
            for p in 0..48u16 {
                assert_eq!(d.owner(&tuple(p)), model.get(&p).copied(), "port {p}");
            }
        }
    }

    #[test]
    fn a_moved_claim_points_at_the_new_core() {
        let d = OwnerDirectory::new(64, 4);
        d.for_core(0).claim(&tuple(9));
        d.for_core(3).claim(&tuple(9));
        assert_eq!(d.owner(&tuple(9)), Some(3));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn full_buckets_refuse_and_count() {
        // One bucket (both choices are the same one): the ninth flow finds no room.
        let d = OwnerDirectory::new(8, 1);
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
        // Well past half full: the second choice finds every flow a slot.
        let d = OwnerDirectory::new(1 << 15, 4);
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
