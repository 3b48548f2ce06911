//! The TIME-WAIT table: compact records in a ring, in the order they were made, found through a
//! keyed index of ring positions.
//!
//! Sized for Linux's scale: at 200,000 closes a second, a 60 s TIME-WAIT holds 12 M entries. A
//! `HashMap<FourTuple, TwEntry>` (112-byte buckets) plus one timer-heap entry (80 bytes) each
//! cost about 300 bytes per entry in a bare shard; this layout costs 36 bytes of record and
//! 10.7 to 21.3 of index, under 64 everything included (`tests/tcp_tw_memory.rs` counts it).
//!
//! ```text
//!  ring of records, chunks of 1,024                   index: open addressing, 8-byte slots
//!  head (oldest)                      tail (next)     | 32 bits of the key's hash | ring pos |
//!   v                                  v              (SipHash-1-3 under a secret key; load
//!  [r][r][.][r][r][r] ... [r][r][r][r]                 3/8 to 3/4: 10.7 to 21.3 bytes/entry)
//!         ^ vacated: reclaimed when the head passes
//!
//!  IPv4 record, 36 bytes:
//!  | local addr 4 | remote addr 4 | local port 2 | remote port 2 | SND.NXT 4 | RCV.NXT 4 |
//!  | TS.Recent 4 | due 4 | last out-of-window ACK 4 | window 2 | lag 15 bits + timestamps bit |
//! ```
//!
//! Why a ring and no timers: every entry lasts the same 2·MSL from the moment it is made, so
//! entries are made in deadline order, and a FIFO in arrival order is already a timer queue
//! whose head is the next expiry. The shard's `poll_timeout` includes the head's deadline and
//! `handle_timeout` pops the head while it is due: no timer entry per record, no heap.
//!
//! A restart of 2·MSL (a retransmitted FIN, an ACK: RFC 9293 §3.10.7.4, Linux
//! `tcp_timewait_state_process`) moves a deadline later. If the record's position was taken less
//! than `G` = 2·MSL/16 ago (3.75 s at 60 s), the new deadline is kept in the record as a lag past
//! its position's due time, and the head waits for it: an entry behind a lagging one expires at
//! most `G` late, which is within the slack of Linux's own TIME-WAIT timer (at HZ=1000 a 60 s
//! timer sits on the timer-wheel level of 4,096-jiffy granularity and fires up to 4.1 s late).
//! A later restart moves the record to the tail and vacates its old slot. So a peer that keeps
//! restarting an entry costs at most one vacated slot per `G` per entry, and restarts never grow
//! the ring past `2 × tcp_max_tw_buckets` slots: beyond that a restart only lags (2·MSL then
//! runs from at most `G` past the old deadline, as if the restart had come earlier; Linux too
//! cuts TIME-WAIT short under pressure, by not making it at all past `tcp_max_tw_buckets`). An
//! entry that ends early (an exact RST with `rfc1337` off, RFC 6191 reuse) vacates its slot too;
//! vacated slots are reclaimed when the head reaches them, within 2·MSL + `G`.
//!
//! The index holds ring positions, not keys, each beside 32 bits of its key's hash: SipHash-1-3
//! under a key derived from the shard's secrets, so a peer that picks its ports and addresses
//! cannot aim them at one probe run. A hit reads the index slot and the record (two cache
//! misses at scale, as a map with the entry inline in its bucket has: control byte, then
//! bucket); a miss, the segment of a flow that holds nothing here (every new SYN), reads one
//! slot run. A hashbrown `HashTable<u32>` would be smaller (5 bytes a bucket) but adds a third
//! dependent miss to every hit (control bytes, then the position, then the record), rehashes
//! by reading every record when it grows, and under churn above a load of 7/16 doubles rather
//! than clear its deleted markers; this index grows from its own hash bits and deletes
//! without markers (see [`PosIndex`]). It keeps its peak size, as Linux's established hash
//! does.
//!
//! Times in a record are u32 milliseconds of the shard's clock, modulo 2^32, read back relative to
//! the latest `now` the expiry saw (any record is within 2^31 ms of it: expiry runs at least
//! every 24 days; the engine runs it every loop). Deadlines round up to the millisecond, so no
//! entry ends early. The timestamp offset of RFC 7323 §5.4 is not stored: it is
//! `secrets::ts_offset` of the tuple, the function that gave the connection its offset.
//! IPv6 entries have a ring of their own with a 36-byte key (60-byte records); both rings are
//! one generic type.

use super::TwEntry;
use crate::tcp::secrets::Secrets;
use crate::tcp::tuple::FourTuple;
use crate::time::{Duration, Instant};
use crate::wire::SeqNum;
use core::hash::Hasher;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use siphasher::sip::{SipHasher13, SipHasher24};
use std::collections::VecDeque;

/// Records per ring chunk: the ring grows and shrinks a chunk at a time, so it never holds more
/// than one chunk (and one spare) beyond its slots (a doubling `Vec` would hold up to twice).
const CHUNK_SHIFT: u32 = 10;
const CHUNK: usize = 1 << CHUNK_SHIFT;
const CHUNK_MASK: u32 = (1 << CHUNK_SHIFT) - 1;
/// `lag_ts` bit 15: the connection used timestamps (TS.Recent is valid).
const TS_BIT: u16 = 1 << 15;
/// `lag_ts` bits 0-14: the lag in ms, so `G` is at most this.
const LAG_MAX: u16 = TS_BIT - 1;
/// A "never" for the last out-of-window ACK: this long before the reference, far enough that
/// the rate limit allows the next one.
const LONG_AGO_MS: u32 = 1 << 30;

/// A key of one address family, as a record stores it: local address, remote address, local
/// port, remote port (network order). Remote port 0 never reaches TIME-WAIT (the shard drops
/// such segments), so a key ending in two zero bytes marks a vacated slot.
pub(crate) trait TwKey: Copy + Default + PartialEq {
    fn of(t: &FourTuple) -> Option<Self>;
    fn tuple(&self) -> Option<FourTuple>;
    fn bytes(&self) -> &[u8];
    fn hash(&self, h: &SipHasher13) -> u64 {
        h.hash(self.bytes())
    }
    fn is_vacant(&self) -> bool {
        self.bytes().last_chunk::<2>() == Some(&[0, 0])
    }
}

/// An IPv4 key, 12 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct V4Key([u8; 12]);

/// An IPv6 key, 36 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V6Key([u8; 36]);

impl Default for V6Key {
    fn default() -> Self {
        V6Key([0; 36])
    }
}

/// Addresses then ports, network order.
fn pack<const N: usize>(local: &[u8], remote: &[u8], local_port: u16, remote_port: u16) -> [u8; N] {
    let mut out = [0u8; N];
    let (lp, rp) = (local_port.to_be_bytes(), remote_port.to_be_bytes());
    let bytes = local.iter().chain(remote).chain(&lp).chain(&rp);
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

/// The inverse of [`pack`] for `A`-byte addresses.
fn unpack<const A: usize>(b: &[u8]) -> Option<([u8; A], [u8; A], u16, u16)> {
    let (local, rest) = b.split_first_chunk::<A>()?;
    let (remote, rest) = rest.split_first_chunk::<A>()?;
    let (lp, rest) = rest.split_first_chunk::<2>()?;
    let (rp, _) = rest.split_first_chunk::<2>()?;
    Some((*local, *remote, u16::from_be_bytes(*lp), u16::from_be_bytes(*rp)))
}

impl TwKey for V4Key {
    fn of(t: &FourTuple) -> Option<Self> {
        match (t.local, t.remote) {
            (SocketAddr::V4(l), SocketAddr::V4(r)) => {
                Some(V4Key(pack(&l.ip().octets(), &r.ip().octets(), l.port(), r.port())))
            }
            _ => None,
        }
    }
    fn tuple(&self) -> Option<FourTuple> {
        let (l, r, lp, rp) = unpack::<4>(&self.0)?;
        Some(FourTuple::new(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(l)), lp),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(r)), rp),
        ))
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TwKey for V6Key {
    fn of(t: &FourTuple) -> Option<Self> {
        match (t.local, t.remote) {
            (SocketAddr::V6(l), SocketAddr::V6(r)) => {
                Some(V6Key(pack(&l.ip().octets(), &r.ip().octets(), l.port(), r.port())))
            }
            _ => None,
        }
    }
    fn tuple(&self) -> Option<FourTuple> {
        let (l, r, lp, rp) = unpack::<16>(&self.0)?;
        Some(FourTuple::new(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(l)), lp),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(r)), rp),
        ))
    }
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One TIME-WAIT entry: its key and what the protocol needs of it.
#[derive(Debug, Clone, Copy, Default)]
struct Rec<K> {
    key: K,
    body: Body,
}

/// A record without its key. Times are ms ticks (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
struct Body {
    snd_nxt: u32,
    rcv_nxt: u32,
    ts_recent: u32,
    /// The deadline this ring position stands for; positions are in `due` order.
    due: u32,
    /// The last rate-limited ACK (Linux `tw_last_oow_ack_time`), rounded up.
    last_oow: u32,
    window: u16,
    /// Bits 0-14: how far the deadline lies past `due` (a restart within `G`); bit 15: TS.Recent
    /// is valid.
    lag_ts: u16,
}

const _: () = assert!(size_of::<Rec<V4Key>>() == 36);
const _: () = assert!(size_of::<Rec<V6Key>>() == 60);

impl Body {
    fn lag(&self) -> u32 {
        u32::from(self.lag_ts & LAG_MAX)
    }
    fn set_lag(&mut self, lag: u32) {
        self.lag_ts = (self.lag_ts & TS_BIT) | (lag.min(u32::from(LAG_MAX)) as u16);
    }
    fn has_ts(&self) -> bool {
        self.lag_ts & TS_BIT != 0
    }
}

fn slot_in<K>(chunks: &VecDeque<Box<[Rec<K>]>>, base: u32, pos: u32) -> Option<&Rec<K>> {
    let i = pos.wrapping_sub(base);
    chunks.get((i >> CHUNK_SHIFT) as usize)?.get((i & CHUNK_MASK) as usize)
}

/// The index: open addressing with linear probing over 8-byte slots, each a ring position and
/// the low 32 bits of its key's hash (bit 31 set, so that no slot is 0, the empty one). The
/// hash bits in the slot settle nearly every mismatch without reading a record, so a hit costs
/// the slot's cache line and the record's, and growing (doubling at a load of 3/4) places every
/// slot from its own bits, reading no record. Deletion shifts the rest of the probe run back
/// (Knuth's Algorithm R, TAOCP 6.4) instead of leaving markers, so churn never degrades it.
#[derive(Debug, Default)]
struct PosIndex {
    slots: Vec<u64>,
    len: usize,
}

impl PosIndex {
    fn tag(h: u64) -> u32 {
        (h as u32) | 0x8000_0000
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn allocation_size(&self) -> usize {
        self.slots.capacity() * size_of::<u64>()
    }

    /// The slot of the entry with hash `h` whose position `eq` accepts.
    fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<usize> {
        let (tag, mask) = (Self::tag(h), self.mask());
        let mut i = tag as usize & mask;
        // Ends: the load is at most 3/4, so every run meets an empty slot.
        loop {
            let s = *self.slots.get(i)?;
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == tag && eq(s as u32) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn pos_at(&self, i: usize) -> Option<u32> {
        self.slots.get(i).map(|s| *s as u32)
    }

    fn set_pos(&mut self, i: usize, pos: u32) {
        if let Some(s) = self.slots.get_mut(i) {
            *s = (*s & !u64::from(u32::MAX)) | u64::from(pos);
        }
    }

    fn insert(&mut self, h: u64, pos: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            let n = (self.slots.len() * 2).max(16);
            let old = core::mem::replace(&mut self.slots, vec![0; n]);
            for s in old.into_iter().filter(|s| *s != 0) {
                self.place(s);
            }
        }
        self.place((u64::from(Self::tag(h)) << 32) | u64::from(pos));
        self.len += 1;
    }

    /// Puts slot value `s` in the first empty slot of its run.
    fn place(&mut self, s: u64) {
        let mask = self.mask();
        let mut i = (s >> 32) as usize & mask;
        while let Some(x) = self.slots.get_mut(i) {
            if *x == 0 {
                *x = s;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn remove_at(&mut self, i: usize) {
        let mask = self.mask();
        let mut hole = i;
        let mut j = (i + 1) & mask;
        while let Some(&s) = self.slots.get(j) {
            if s == 0 {
                break;
            }
            // `s` may fill the hole if the hole lies on its probe path, from its home to `j`.
            let home = (s >> 32) as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = s;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = 0;
            self.len -= 1;
        }
    }
}

/// The records of one address family and their index.
#[derive(Debug)]
struct Ring<K> {
    chunks: VecDeque<Box<[Rec<K>]>>,
    /// The last chunk the head left, kept for the tail's next one (no allocation in the steady
    /// state).
    spare: Option<Box<[Rec<K>]>>,
    /// Position of `chunks[0][0]`; positions count modulo 2^32.
    base: u32,
    /// The oldest slot; a live record whenever the ring is not empty (vacated slots at the head
    /// are dropped at once).
    head: u32,
    /// The next slot to fill.
    tail: u32,
    /// `due` of the last record appended: an append never goes before it.
    last_due: u32,
    index: PosIndex,
}

impl<K> Default for Ring<K> {
    fn default() -> Self {
        Ring {
            chunks: VecDeque::new(),
            spare: None,
            base: 0,
            head: 0,
            tail: 0,
            last_due: 0,
            index: PosIndex::default(),
        }
    }
}

impl<K: TwKey> Ring<K> {
    fn slots(&self) -> usize {
        self.tail.wrapping_sub(self.head) as usize
    }

    fn slot(&self, pos: u32) -> Option<&Rec<K>> {
        slot_in(&self.chunks, self.base, pos)
    }

    fn slot_mut(&mut self, pos: u32) -> Option<&mut Rec<K>> {
        let i = pos.wrapping_sub(self.base);
        self.chunks.get_mut((i >> CHUNK_SHIFT) as usize)?.get_mut((i & CHUNK_MASK) as usize)
    }

    fn find(&self, h: u64, key: &K) -> Option<u32> {
        let (chunks, base) = (&self.chunks, self.base);
        let i = self.index.find(h, |p| slot_in(chunks, base, p).is_some_and(|r| r.key == *key))?;
        self.index.pos_at(i)
    }

    /// Appends `rec` at the tail; returns its position. Does not touch the index.
    fn push(&mut self, rec: Rec<K>) -> u32 {
        if self.tail.wrapping_sub(self.base) as usize >= self.chunks.len() * CHUNK {
            let c = self.spare.take().unwrap_or_else(|| vec![Rec::default(); CHUNK].into_boxed_slice());
            self.chunks.push_back(c);
        }
        let pos = self.tail;
        if let Some(s) = self.slot_mut(pos) {
            *s = rec;
        }
        self.tail = self.tail.wrapping_add(1);
        self.last_due = rec.body.due;
        pos
    }

    /// Marks the slot at `pos` vacant (the index no longer points at it) and drops vacated slots
    /// at the head.
    fn vacate(&mut self, pos: u32) {
        if let Some(s) = self.slot_mut(pos) {
            s.key = K::default();
        }
        while self.head != self.tail && self.slot(self.head).is_none_or(|r| r.key.is_vacant()) {
            self.head = self.head.wrapping_add(1);
            if self.head.wrapping_sub(self.base) as usize == CHUNK {
                if let Some(c) = self.chunks.pop_front() {
                    self.spare.get_or_insert(c);
                }
                self.base = self.base.wrapping_add(CHUNK as u32);
            }
        }
    }

    fn index_remove(&mut self, h: u64, pos: u32) {
        if let Some(i) = self.index.find(h, |p| p == pos) {
            self.index.remove_at(i);
        }
    }

    /// A new entry at the tail, in the index.
    fn append(&mut self, hasher: &SipHasher13, key: K, body: Body) {
        if key.is_vacant() {
            // Remote port 0: no segment from it is ever accepted, so no connection with it
            // reaches TIME-WAIT; its key would read as a vacated slot.
            return;
        }
        // Positions stay in due order: a deadline before the last one appended (a TCB that
        // entered TIME-WAIT earlier but was moved here later) waits for it.
        let due = if self.slots() > 0 && (body.due.wrapping_sub(self.last_due) as i32) < 0 {
            self.last_due
        } else {
            body.due
        };
        let pos = self.push(Rec { key, body: Body { due, ..body } });
        self.index.insert(key.hash(hasher), pos);
    }

    /// Moves the entry at `pos` (index hash `h`) to the tail with `body`; returns its position.
    fn relocate(&mut self, pos: u32, h: u64, body: Body) -> u32 {
        let Some(key) = self.slot(pos).map(|r| r.key) else {
            return pos;
        };
        let to = self.push(Rec { key, body });
        if let Some(i) = self.index.find(h, |p| p == pos) {
            self.index.set_pos(i, to);
        }
        self.vacate(pos);
        to
    }

    /// The head's deadline in absolute ms.
    fn head_deadline(&self, ref_ms: u64) -> Option<u64> {
        if self.slots() == 0 {
            return None;
        }
        let b = self.slot(self.head)?.body;
        Some(abs_ms(ref_ms, b.due).saturating_add(u64::from(b.lag())))
    }

    /// Removes the head if its deadline is at or before `now_ms`; returns its tuple.
    fn pop_due(&mut self, hasher: &SipHasher13, ref_ms: u64, now_ms: u64) -> Option<FourTuple> {
        if self.head_deadline(ref_ms)? > now_ms {
            return None;
        }
        let head = self.head;
        let key = self.slot(head)?.key;
        self.index_remove(key.hash(hasher), head);
        self.vacate(head);
        key.tuple()
    }

    fn tuples(&self) -> impl Iterator<Item = FourTuple> + '_ {
        (0..self.slots() as u32)
            .filter_map(move |i| self.slot(self.head.wrapping_add(i)))
            .filter(|r| !r.key.is_vacant())
            .filter_map(|r| r.key.tuple())
    }
}

/// Where a record is, from [`TimeWaitTable::find`]; valid until the table changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TwSlot {
    v6: bool,
    pos: u32,
    hash: u64,
}

/// Every TIME-WAIT entry of a shard (see the module doc). Not `Debug`: the hasher holds a key.
pub(crate) struct TimeWaitTable {
    v4: Ring<V4Key>,
    v6: Ring<V6Key>,
    hasher: SipHasher13,
    /// 2·MSL.
    time_wait: Duration,
    /// `G` in ms: a restart this close to its slot's due time only lags.
    coalesce_ms: u32,
    /// The time ms ticks are read back against (see the module doc).
    ref_ms: u64,
}

/// `t` in ms, rounded up.
fn ceil_ms(t: Instant) -> u64 {
    t.as_nanos().div_ceil(1_000_000)
}

/// `t` in ms, rounded down.
fn floor_ms(t: Instant) -> u64 {
    t.as_nanos() / 1_000_000
}

/// Runs `$body` with `$ring` bound to the ring of the slot's family.
macro_rules! on_ring {
    ($self:expr, $v6:expr, |$ring:ident| $body:expr) => {
        if $v6 {
            let $ring = &mut $self.v6;
            $body
        } else {
            let $ring = &mut $self.v4;
            $body
        }
    };
}

impl TimeWaitTable {
    pub(crate) fn new(time_wait: Duration, secrets: &Secrets) -> Self {
        // The index key: derived from the ISN key (drawn from the OS by the engine), apart from
        // every other use of it.
        let derive = |label: &[u8]| {
            let mut h = SipHasher24::new_with_key(&secrets.isn_key);
            h.write(label);
            h.finish()
        };
        let hasher = SipHasher13::new_with_keys(derive(b"time-wait index k0"), derive(b"time-wait index k1"));
        let coalesce_ms = (time_wait.as_millis() / 16).clamp(1, u64::from(LAG_MAX)) as u32;
        TimeWaitTable { v4: Ring::default(), v6: Ring::default(), hasher, time_wait, coalesce_ms, ref_ms: 0 }
    }

    /// Live entries.
    pub(crate) fn len(&self) -> usize {
        self.v4.index.len() + self.v6.index.len()
    }

    /// Ring slots: live entries and vacated slots the head has not reached yet.
    pub(crate) fn slots(&self) -> usize {
        self.v4.slots() + self.v6.slots()
    }

    /// Bytes the table has allocated (ring chunks, the chunk list and the index).
    pub(crate) fn allocated_bytes(&self) -> usize {
        fn ring<K: TwKey>(r: &Ring<K>) -> usize {
            let chunks = r.chunks.len() + usize::from(r.spare.is_some());
            chunks * CHUNK * size_of::<Rec<K>>()
                + r.chunks.capacity() * size_of::<Box<[Rec<K>]>>()
                + r.index.allocation_size()
        }
        ring(&self.v4) + ring(&self.v6)
    }

    /// The absolute ms time of a tick.
    fn abs(&self, tick: u32) -> u64 {
        abs_ms(self.ref_ms, tick)
    }

    fn body(&self, s: TwSlot) -> Option<Body> {
        if s.v6 {
            self.v6.slot(s.pos).map(|r| r.body)
        } else {
            self.v4.slot(s.pos).map(|r| r.body)
        }
    }

    fn body_mut(&mut self, s: TwSlot) -> Option<&mut Body> {
        on_ring!(self, s.v6, |ring| ring.slot_mut(s.pos).map(|r| &mut r.body))
    }

    /// Where the entry of `t` is, if it has one.
    pub(crate) fn find(&self, t: &FourTuple) -> Option<TwSlot> {
        if self.len() == 0 {
            // No hashing for the segments of a shard without TIME-WAIT (a client's, say).
            return None;
        }
        if let Some(k) = V4Key::of(t) {
            let hash = k.hash(&self.hasher);
            return self.v4.find(hash, &k).map(|pos| TwSlot { v6: false, pos, hash });
        }
        let k = V6Key::of(t)?;
        let hash = k.hash(&self.hasher);
        self.v6.find(hash, &k).map(|pos| TwSlot { v6: true, pos, hash })
    }

    pub(crate) fn contains(&self, t: &FourTuple) -> bool {
        self.find(t).is_some()
    }

    /// The entry at `s`, as the protocol reads it (`ts_offset` left 0: the caller derives it).
    pub(crate) fn entry(&self, s: TwSlot) -> Option<TwEntry> {
        let b = self.body(s)?;
        Some(TwEntry {
            snd_nxt: SeqNum(b.snd_nxt),
            rcv_nxt: SeqNum(b.rcv_nxt),
            ts_recent: b.has_ts().then_some(b.ts_recent),
            ts_offset: 0,
            window: b.window,
            deadline: Instant::from_millis(self.abs(b.due).saturating_add(u64::from(b.lag()))),
            last_oow_ack: Some(Instant::from_millis(self.abs(b.last_oow))),
        })
    }

    /// Makes `e` the entry of `t`, replacing any entry it had. The caller checks
    /// `tcp_max_tw_buckets`.
    pub(crate) fn insert(&mut self, t: &FourTuple, e: &TwEntry) {
        if let Some(s) = self.find(t) {
            self.remove(s);
        }
        if self.len() == 0 {
            // No tick to read back against the old reference: take this entry's birth.
            self.ref_ms = self.ref_ms.max(floor_ms(e.deadline - self.time_wait));
        }
        let body = Body {
            snd_nxt: e.snd_nxt.0,
            rcv_nxt: e.rcv_nxt.0,
            ts_recent: e.ts_recent.unwrap_or(0),
            due: ceil_ms(e.deadline) as u32,
            last_oow: match e.last_oow_ack {
                Some(at) => ceil_ms(at) as u32,
                None => (self.ref_ms as u32).wrapping_sub(LONG_AGO_MS),
            },
            window: e.window,
            lag_ts: if e.ts_recent.is_some() { TS_BIT } else { 0 },
        };
        if let Some(key) = V4Key::of(t) {
            self.v4.append(&self.hasher, key, body);
        } else if let Some(key) = V6Key::of(t) {
            self.v6.append(&self.hasher, key, body);
        }
    }

    /// Ends the entry at `s`.
    pub(crate) fn remove(&mut self, s: TwSlot) {
        on_ring!(self, s.v6, |ring| {
            ring.index_remove(s.hash, s.pos);
            ring.vacate(s.pos);
        });
    }

    /// 2·MSL starts again at `now` for the entry at `s`; returns where the entry is now. Moving
    /// it may grow the ring to `max_slots` (see the module doc).
    pub(crate) fn restart(&mut self, s: TwSlot, now: Instant, max_slots: usize) -> TwSlot {
        let Some(b) = self.body(s) else {
            return s;
        };
        let deadline = ceil_ms(now + self.time_wait);
        let due = self.abs(b.due);
        if deadline <= due.saturating_add(u64::from(b.lag())) {
            return s;
        }
        let ext = deadline - due;
        let coalesce = u64::from(self.coalesce_ms);
        if ext < coalesce || self.slots() >= max_slots {
            // Lag past the slot's due time, by at most G (see the module doc).
            if let Some(b) = self.body_mut(s) {
                b.set_lag(ext.min(coalesce - 1) as u32);
            }
            return s;
        }
        // To the tail, with the new deadline as its due time.
        let body = Body { due: deadline as u32, lag_ts: b.lag_ts & TS_BIT, ..b };
        let pos = on_ring!(self, s.v6, |ring| ring.relocate(s.pos, s.hash, body));
        TwSlot { pos, ..s }
    }

    /// Takes TSval as TS.Recent for the entry at `s`, if it uses timestamps.
    pub(crate) fn set_ts_recent(&mut self, s: TwSlot, tsval: u32) {
        if let Some(b) = self.body_mut(s) {
            if b.has_ts() {
                b.ts_recent = tsval;
            }
        }
    }

    /// RFC 5961 §7 / Linux `tcp_oow_rate_limited`: may the entry at `s` send an answer that
    /// could be part of an ACK loop now (at most one per `limit`)? Stamps it if so.
    pub(crate) fn oow_ack_allowed(&mut self, s: TwSlot, now: Instant, limit: Duration) -> bool {
        let Some(b) = self.body(s) else {
            return false;
        };
        let (now_ms, at) = (floor_ms(now), self.abs(b.last_oow));
        // Both rounded the safe way: never two answers less than `limit` apart. A stamp that
        // reads as later than now is one from more than 2^31 ms ago.
        if at <= now_ms && now_ms - at < limit.as_nanos().div_ceil(1_000_000) {
            return false;
        }
        if let Some(b) = self.body_mut(s) {
            b.last_oow = ceil_ms(now) as u32;
        }
        true
    }

    /// The earliest deadline of the entries: the one the head of either ring waits for.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let ref_ms = self.ref_ms;
        match (self.v4.head_deadline(ref_ms), self.v6.head_deadline(ref_ms)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(Instant::from_millis)
    }

    /// TIME-WAIT TIMEOUT (RFC 9293 §3.10.8): removes one entry whose deadline is at or before
    /// `now` and returns its tuple; `None` once none is due.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<FourTuple> {
        let now_ms = floor_ms(now);
        let (ref_ms, hasher) = (self.ref_ms, self.hasher);
        let t = self.v4.pop_due(&hasher, ref_ms, now_ms).or_else(|| self.v6.pop_due(&hasher, ref_ms, now_ms));
        if t.is_none() {
            // Everything left is due later than now: now is a reference every tick reads
            // back against.
            self.ref_ms = self.ref_ms.max(now_ms);
        }
        t
    }

    /// Every entry's tuple, oldest first (IPv4, then IPv6).
    pub(crate) fn tuples(&self) -> impl Iterator<Item = FourTuple> + '_ {
        self.v4.tuples().chain(self.v6.tuples())
    }
}

/// The absolute ms time of `tick`, the one within 2^31 ms of `ref_ms`.
fn abs_ms(ref_ms: u64, tick: u32) -> u64 {
    ref_ms.saturating_add_signed(i64::from(tick.wrapping_sub(ref_ms as u32) as i32))
}

#[cfg(test)]
mod tests;
