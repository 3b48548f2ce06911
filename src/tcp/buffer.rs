//! Byte rings for the send and receive queues, and the out-of-order assembler.
//!
//! A ring allocates lazily, grows by doubling up to its limit, and gives its memory back when it
//! drains, so an idle or short-lived connection costs no buffer memory (the many-short-connections
//! workload this stack is for). Large allocations given back go to a small per-thread spare list
//! first (see `Spares`). Nothing here panics.

use std::cell::RefCell;

/// A byte ring of at most `limit` bytes.
///
/// Positions are `u32` (a ring never holds 4 GiB) and the allocation a boxed slice: 32 bytes per
/// ring instead of 48, and a connection has two (the TCB's size is what a million idle
/// connections cost).
#[derive(Debug, Default)]
pub struct Ring {
    buf: Box<[u8]>,
    head: u32,
    len: u32,
    limit: u32,
}

/// A size or position as stored in a [`Ring`] (saturating: a limit above 4 GiB is 4 GiB).
fn narrow(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Smallest allocation a ring makes when it first holds data.
const MIN_ALLOC: usize = 4096;
/// An empty ring keeps an allocation up to this size; a larger one is returned.
const KEEP_ALLOC: usize = 16 * 1024;

/// Large ring allocations given back, kept for the next ring that grows on the same thread.
///
/// A busy receiver drains its ring after every receive batch (the application reads it all),
/// and a ring given back and grown again by doubling cost a fresh zeroed allocation plus a copy
/// per doubling for every batch: the bulk profile's largest item (about a quarter of the core's
/// time into `discard`). A spare is taken as it is, without zeroing: a ring exposes only bytes
/// written into it since it took the allocation (`len`, and out-of-order ranges the assembler
/// recorded), so nothing of a previous owner's data is ever read.
///
/// Per thread because a core is one thread and owns its connections: no lock, no sharing, and
/// the bound below holds per core. The list is small and bounded in count and bytes, so a
/// burst of connections closing at once frees the rest at once as before.
struct Spares {
    bufs: Vec<Box<[u8]>>,
    bytes: usize,
}

/// At most this many spare allocations per thread...
const SPARES_MAX: usize = 32;
/// ...and at most this many bytes in them.
const SPARE_BYTES_MAX: usize = 8 << 20;

thread_local! {
    static SPARES: RefCell<Spares> = const { RefCell::new(Spares { bufs: Vec::new(), bytes: 0 }) };
}

/// The largest spare of `need..=max` bytes, if any.
fn take_spare(need: usize, max: usize) -> Option<Box<[u8]>> {
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        let i = s
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| (need..=max).contains(&b.len()))
            .max_by_key(|(_, b)| b.len())
            .map(|(i, _)| i)?;
        let b = s.bufs.swap_remove(i);
        s.bytes -= b.len();
        Some(b)
    })
}

/// Keeps a given-back allocation above [`KEEP_ALLOC`] as a spare while the bounds allow.
fn give_spare(buf: Box<[u8]>) {
    if buf.len() <= KEEP_ALLOC {
        return;
    }
    SPARES.with(|s| {
        let mut s = s.borrow_mut();
        if s.bufs.len() < SPARES_MAX && s.bytes + buf.len() <= SPARE_BYTES_MAX {
            s.bytes += buf.len();
            s.bufs.push(buf);
        }
    });
}

impl Ring {
    pub fn new(limit: usize) -> Self {
        Ring { buf: Box::default(), head: 0, len: 0, limit: narrow(limit) }
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn limit(&self) -> usize {
        self.limit as usize
    }
    /// Changes the limit (the receive side adds room for window rounding once the window scale
    /// is known). Never below what is held.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = narrow(limit).max(self.len);
    }
    /// Bytes that can still be added before the limit.
    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.len) as usize
    }
    /// Bytes allocated now.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Makes room for `need` bytes in total (data plus gap), within the limit.
    fn reserve(&mut self, need: usize) {
        let limit = self.limit();
        let need = need.min(limit);
        if need <= self.buf.len() {
            return;
        }
        let mut cap = self.buf.len().max(MIN_ALLOC);
        while cap < need {
            cap = cap.saturating_mul(2);
        }
        let max = limit.max(need);
        let cap = cap.min(max);
        // A spare as large as the limit allows saves this batch's further doublings.
        let mut nb = take_spare(cap, max).unwrap_or_else(|| vec![0u8; cap].into_boxed_slice());
        // Copy the whole old allocation rotated to start at `head`: out-of-order bytes placed
        // past the held data must survive the move too.
        let old = self.buf.len();
        let head = self.head as usize;
        let a = self.buf.get(head..).unwrap_or(&[]);
        let b = self.buf.get(..head).unwrap_or(&[]);
        if let Some(d) = nb.get_mut(..a.len()) {
            d.copy_from_slice(a);
        }
        if let Some(d) = nb.get_mut(a.len()..old) {
            d.copy_from_slice(b);
        }
        give_spare(std::mem::replace(&mut self.buf, nb));
        self.head = 0;
    }

    /// Appends as much of `data` as fits; returns the bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.len += narrow(n);
        n
    }

    /// Writes `data` at `off` bytes past the end of the held data without taking it in (the
    /// receive side's out-of-order placement). Returns the bytes written (cut at the limit).
    pub fn write_at(&mut self, off: usize, data: &[u8]) -> usize {
        let room = self.free().saturating_sub(off);
        let n = data.len().min(room);
        if n == 0 {
            return 0;
        }
        self.reserve(self.len() + off + n);
        let cap = self.buf.len();
        if cap == 0 {
            return 0;
        }
        let mut pos = (self.head as usize + self.len() + off) % cap;
        let mut src = data.get(..n).unwrap_or(&[]);
        while !src.is_empty() {
            let chunk = src.len().min(cap - pos);
            let (now, rest) = src.split_at(chunk);
            if let Some(d) = self.buf.get_mut(pos..pos + chunk) {
                d.copy_from_slice(now);
            }
            src = rest;
            pos = (pos + chunk) % cap;
        }
        n
    }

    /// Takes in `n` bytes previously placed with [`Ring::write_at`] at offset 0.
    pub fn commit(&mut self, n: usize) {
        self.len = narrow((self.len() + n).min(self.buf.len()).min(self.limit()));
    }

    /// The held bytes `off..off+len` as at most two slices (clamped to what is held).
    pub fn peek(&self, off: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if cap == 0 || off >= self.len() {
            return (&[], &[]);
        }
        let len = len.min(self.len() - off);
        let start = (self.head as usize + off) % cap;
        let first = len.min(cap - start);
        let a = self.buf.get(start..start + first).unwrap_or(&[]);
        let b = self.buf.get(..len - first).unwrap_or(&[]);
        (a, b)
    }

    /// Drops `n` bytes from the front. The allocation stays: bytes placed past the held data
    /// (out-of-order data) live in it; see [`Ring::release_if_idle`].
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        if let Some(h) = (self.head as usize + n).checked_rem(self.buf.len()) {
            self.head = narrow(h);
        }
        self.len -= narrow(n);
    }

    /// Gives a large allocation back once nothing is held. Only call it when nothing was placed
    /// past the held data either (the receive side checks its assembler first).
    pub fn release_if_idle(&mut self) {
        if self.len == 0 {
            self.head = 0;
            if self.buf.len() > KEEP_ALLOC {
                give_spare(std::mem::take(&mut self.buf));
            }
        }
    }

    /// Copies from the front into `out` and consumes what was copied.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.peek(0, out.len());
        let (na, nb) = (a.len(), b.len());
        if let Some(d) = out.get_mut(..na) {
            d.copy_from_slice(a);
        }
        if let Some(d) = out.get_mut(na..na + nb) {
            d.copy_from_slice(b);
        }
        self.consume(na + nb);
        na + nb
    }

    /// Releases all memory (connection reset or closed).
    pub fn clear(&mut self) {
        give_spare(std::mem::take(&mut self.buf));
        self.head = 0;
        self.len = 0;
    }
}

/// Out-of-order ranges past the end of the in-order data, as offsets from that end.
///
/// Kept sorted, disjoint and non-adjacent, at most [`Assembler::MAX_RANGES`] of them (a bound on
/// the work a peer can cause with a crafted pattern of holes).
#[derive(Debug, Default)]
pub struct Assembler {
    ranges: Vec<(usize, usize)>,
}

/// What [`Assembler::add`] did with a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsmAdd {
    /// Recorded (merged with its neighbours where they touch).
    Added,
    /// Recorded, and the range furthest from RCV.NXT was forgotten to make room for it (its
    /// bytes are no longer held; the peer sends them again).
    AddedPruned,
    /// Not recorded: the store is full and this range lies beyond every held one.
    Refused,
}

impl Assembler {
    pub const MAX_RANGES: usize = 16;

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Records `start..end`. When that needs more than `MAX_RANGES` ranges, the ranges furthest
    /// from the in-order data are forgotten first, as Linux prunes its out-of-order queue from
    /// the far end (`tcp_prune_ofo_queue`): data nearer RCV.NXT is worth more, and data at
    /// offset 0 (in order) is always recorded. A range beyond every held range is refused
    /// instead.
    pub fn add(&mut self, start: usize, end: usize) -> AsmAdd {
        if start >= end {
            return AsmAdd::Added;
        }
        let mut s = start;
        let mut e = end;
        let mut out: Vec<(usize, usize)> = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(rs, re) in &self.ranges {
            if re < s {
                out.push((rs, re));
            } else if e < rs {
                if !placed {
                    out.push((s, e));
                    placed = true;
                }
                out.push((rs, re));
            } else {
                s = s.min(rs);
                e = e.max(re);
            }
        }
        if !placed {
            if out.len() >= Self::MAX_RANGES {
                // Beyond everything held, and no room: the newcomer is the one to drop.
                return AsmAdd::Refused;
            }
            out.push((s, e));
        }
        let pruned = out.len() > Self::MAX_RANGES;
        out.truncate(Self::MAX_RANGES);
        self.ranges = out;
        if pruned {
            AsmAdd::AddedPruned
        } else {
            AsmAdd::Added
        }
    }

    /// If a range starts at offset 0, removes it, shifts the rest down by its length, and
    /// returns that length (the bytes that became in-order). Otherwise 0.
    pub fn pop_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, e)) => {
                self.ranges.remove(0);
                for r in &mut self.ranges {
                    r.0 -= e;
                    r.1 -= e;
                }
                e
            }
            _ => 0,
        }
    }

    pub fn clear(&mut self) {
        self.ranges = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_wraps_and_grows() {
        let mut r = Ring::new(10_000);
        assert_eq!(r.push(&[1; 3000]), 3000);
        r.consume(2500);
        assert_eq!(r.push(&[2; 3000]), 3000);
        assert_eq!(r.len(), 3500);
        let (a, b) = r.peek(0, 3500);
        assert_eq!(a.len() + b.len(), 3500);
        assert!(a.iter().take(500).all(|&x| x == 1));
        let mut out = vec![0u8; 4000];
        assert_eq!(r.read(&mut out), 3500);
        assert!(out[500..3500].iter().all(|&x| x == 2));
        assert_eq!(r.push(&[3; 20_000]), 10_000);
        assert_eq!(r.free(), 0);
    }

    #[test]
    fn ring_out_of_order_placement() {
        let mut r = Ring::new(100);
        assert_eq!(r.write_at(5, b"world"), 5);
        assert_eq!(r.write_at(0, b"hello"), 5);
        r.commit(10);
        let mut out = [0u8; 10];
        assert_eq!(r.read(&mut out), 10);
        assert_eq!(&out, b"helloworld");
    }

    #[test]
    fn a_drained_ring_gives_its_allocation_to_the_next_grower_on_the_thread() {
        // One busy connection drains after every batch: the next batch must not regrow from
        // 4 KiB by doubling (each step a zeroed allocation and a copy).
        let mut a = Ring::new(256 * 1024);
        assert_eq!(a.push(&[7; 100_000]), 100_000);
        let big = a.allocated();
        assert!(big >= 100_000);
        let mut out = vec![0u8; 100_000];
        assert_eq!(a.read(&mut out), 100_000);
        a.release_if_idle();
        assert_eq!(a.allocated(), 0);
        // The next growth past the kept size takes the spare whole.
        let mut b = Ring::new(256 * 1024);
        assert_eq!(b.push(&[1; 3000]), 3000);
        assert_eq!(b.push(&[2; 3000]), 3000);
        assert_eq!(b.allocated(), big);
        // Only what this ring wrote is visible, never the previous owner's bytes.
        let (x, y) = b.peek(0, usize::MAX);
        assert_eq!(x.len() + y.len(), 6000);
        assert!(x.iter().chain(y).take(3000).all(|&v| v == 1));
        assert!(x.iter().chain(y).skip(3000).all(|&v| v == 2));
        assert_eq!(b.peek(6000, 10), (&[][..], &[][..]));
        // A spare larger than a ring's limit is not taken.
        b.clear();
        let mut c = Ring::new(20_000);
        assert_eq!(c.push(&[3; 20_000]), 20_000);
        assert!(c.allocated() <= 20_000);
    }

    #[test]
    fn spares_are_bounded() {
        for _ in 0..(SPARES_MAX + 8) {
            give_spare(vec![0u8; 1 << 20].into_boxed_slice());
        }
        SPARES.with(|s| {
            let s = s.borrow();
            assert!(s.bufs.len() <= SPARES_MAX);
            assert!(s.bytes <= SPARE_BYTES_MAX);
            assert_eq!(s.bytes, s.bufs.iter().map(|b| b.len()).sum::<usize>());
        });
        // Small allocations are never kept.
        let before = SPARES.with(|s| s.borrow().bufs.len());
        give_spare(vec![0u8; KEEP_ALLOC].into_boxed_slice());
        assert_eq!(SPARES.with(|s| s.borrow().bufs.len()), before);
    }

    #[test]
    fn assembler_merges() {
        let mut a = Assembler::default();
        assert_eq!(a.add(10, 20), AsmAdd::Added);
        assert_eq!(a.add(30, 40), AsmAdd::Added);
        assert_eq!(a.add(15, 32), AsmAdd::Added);
        assert_eq!(a.ranges(), &[(10, 40)]);
        assert_eq!(a.pop_front(), 0);
        assert_eq!(a.add(0, 10), AsmAdd::Added);
        assert_eq!(a.pop_front(), 40);
        assert!(a.is_empty());
    }

    #[test]
    fn assembler_bounds_ranges() {
        let mut a = Assembler::default();
        for i in 0..Assembler::MAX_RANGES {
            assert_eq!(a.add(i * 10 + 1, i * 10 + 2), AsmAdd::Added);
        }
        // Full: a range past every held one is refused...
        assert_eq!(a.add(1000, 1001), AsmAdd::Refused);
        assert_eq!(a.ranges().len(), Assembler::MAX_RANGES);
        // ...one nearer RCV.NXT is taken and the furthest range goes.
        assert_eq!(a.add(5, 6), AsmAdd::AddedPruned);
        assert_eq!(a.ranges().len(), Assembler::MAX_RANGES);
        assert_eq!(a.ranges().last(), Some(&(141, 142)));
        // In-order data (offset 0) is always taken, and becomes ready at once: here it
        // touches the first range and merges with it...
        assert_eq!(a.add(0, 1), AsmAdd::Added);
        assert_eq!(a.pop_front(), 2);
        // ...and here it stands apart, so the far end gives way for it.
        let mut b = Assembler::default();
        for i in 0..Assembler::MAX_RANGES {
            b.add(100 + i * 10, 105 + i * 10);
        }
        assert_eq!(b.add(0, 50), AsmAdd::AddedPruned);
        assert_eq!(b.pop_front(), 50);
        assert_eq!(b.ranges().len(), Assembler::MAX_RANGES - 1);
    }
}
