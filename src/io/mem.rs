//! An in-memory link pair for tests and simulation: two [`MemLink`] ends implementing
//! [`FrameIo`], joined by a "wire" that can lose, duplicate, reorder, corrupt and delay
//! frames.
//!
//! Everything is deterministic: impairments are drawn from a small seeded PRNG (SplitMix64),
//! and time moves only when the caller says so ([`MemLink::set_now`], shared by both ends).
//! A frame written by one end leaves on [`FrameIo::flush`] (not before, as on a real
//! device), and becomes receivable at the other end once `now` reaches its arrival time.
//! [`MemLink::next_arrival`] tells a simulation loop how far to step.
//!
//! The PRNG draws the same number of values for every frame whatever the probabilities, so
//! turning one impairment on does not change which frames another one hits.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::io::{FrameIo, IoStats};
use crate::net::FrameSink;
use crate::time::{Duration, Instant};

/// Impairments and limits of one direction of the wire (frames sent by one end).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemConfig {
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice (the copy right after the original).
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_delay`, letting later frames pass.
    pub reorder: f64,
    /// Extra latency of a reordered frame.
    pub reorder_delay: Duration,
    /// Probability that one bit of a frame is flipped.
    pub corrupt: f64,
    /// One-way latency of every frame.
    pub delay: Duration,
    /// Extra latency drawn uniformly from `0..=jitter` per frame (reorders too, when larger
    /// than the gap between frames).
    pub jitter: Duration,
    /// Largest frame accepted for transmit.
    pub mtu: usize,
    /// Frames that may be queued in one direction (written plus on the wire); beyond it
    /// `send_frame` refuses, like a link out of free frames.
    pub capacity: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(1),
            corrupt: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            mtu: 1514,
            capacity: 4096,
        }
    }
}

/// What the wire did to the frames one end sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames handed to the wire by `flush`.
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    /// Frames (copies included) taken off the wire by the receiver.
    pub delivered: u64,
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to drive impairments.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..=max` (`max` < 2^64 - 1).
    fn up_to(&mut self, max: u64) -> u64 {
        let r = self.next_u64();
        match max.checked_add(1) {
            Some(m) => r % m,
            None => r,
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    /// Tie-break: equal arrival times keep sending order.
    seq: u64,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Direction {
    cfg: MemConfig,
    rng: SplitMix64,
    wire: BinaryHeap<Reverse<InFlight>>,
    next_seq: u64,
    stats: WireStats,
}

impl Direction {
    fn new(cfg: MemConfig, seed: u64) -> Self {
        Direction { cfg, rng: SplitMix64(seed), wire: BinaryHeap::new(), next_seq: 0, stats: WireStats::default() }
    }

    fn push(&mut self, at: Instant, bytes: Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.wire.push(Reverse(InFlight { at, seq, bytes }));
    }

    /// Puts one flushed frame on the wire, impaired.
    fn transmit(&mut self, now: Instant, mut bytes: Vec<u8>) {
        // Always the same draws, in the same order (see the module docs).
        let lose = self.rng.unit() < self.cfg.loss;
        let corrupt = self.rng.unit() < self.cfg.corrupt;
        let bit = self.rng.next_u64();
        let reorder = self.rng.unit() < self.cfg.reorder;
        let jitter = self.rng.up_to(self.cfg.jitter.as_nanos());
        let duplicate = self.rng.unit() < self.cfg.duplicate;

        self.stats.sent += 1;
        if lose {
            self.stats.lost += 1;
            return;
        }
        if corrupt && !bytes.is_empty() {
            let nbits = (bytes.len() as u64).saturating_mul(8);
            let b = bit % nbits;
            if let Some(byte) = bytes.get_mut((b / 8) as usize) {
                *byte ^= 1 << (b % 8);
            }
            self.stats.corrupted += 1;
        }
        let mut at = now + self.cfg.delay + Duration::from_nanos(jitter);
        if reorder {
            at = at + self.cfg.reorder_delay;
            self.stats.reordered += 1;
        }
        if duplicate {
            self.stats.duplicated += 1;
            self.push(at, bytes.clone());
        }
        self.push(at, bytes);
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.wire.peek().map(|Reverse(f)| f.at)
    }
}

#[derive(Debug)]
struct Shared {
    now: Instant,
    /// `dirs[i]` carries the frames sent by end `i`.
    dirs: [Direction; 2],
}

/// One end of an in-memory link pair. See the module docs.
#[derive(Debug)]
pub struct MemLink {
    shared: Arc<Mutex<Shared>>,
    /// 0 or 1: this end sends on `dirs[side]` and receives from `dirs[1 - side]`.
    side: usize,
    /// Written by the stack, not yet flushed onto the wire.
    pending: Vec<Vec<u8>>,
    /// Reused between bursts.
    rx_batch: Vec<Vec<u8>>,
    stats: IoStats,
}

impl MemLink {
    /// Two joined ends, both directions impaired per `cfg`, the PRNGs seeded from `seed`.
    pub fn pair(cfg: MemConfig, seed: u64) -> (MemLink, MemLink) {
        let mut s = SplitMix64(seed);
        let shared = Arc::new(Mutex::new(Shared {
            now: Instant::ZERO,
            dirs: [Direction::new(cfg, s.next_u64()), Direction::new(cfg, s.next_u64())],
        }));
        let end = |side| MemLink {
            shared: Arc::clone(&shared),
            side,
            pending: Vec::new(),
            rx_batch: Vec::new(),
            stats: IoStats::default(),
        };
        (end(0), end(1))
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Nothing under the lock can panic halfway through an update; a poisoned lock still
        // holds consistent data.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the clock both ends share. Frames become receivable once it reaches their
    /// arrival time. The caller keeps it monotonic.
    pub fn set_now(&self, now: Instant) {
        let mut s = self.lock();
        debug_assert!(now >= s.now, "MemLink time went backwards");
        s.now = now;
    }

    pub fn now(&self) -> Instant {
        self.lock().now
    }

    /// Replaces the impairments of the frames this end sends (the other direction keeps its
    /// own). Frames already on the wire are not affected.
    pub fn set_config(&self, cfg: MemConfig) {
        self.lock().dirs[self.side].cfg = cfg;
    }

    /// Arrival time of the next frame heading to this end, if any is on the wire.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.lock().dirs[1 - self.side].next_arrival()
    }

    /// Frames on the wire in both directions (not yet received).
    pub fn in_flight(&self) -> usize {
        let s = self.lock();
        s.dirs[0].wire.len() + s.dirs[1].wire.len()
    }

    /// What the wire did to the frames this end sent.
    pub fn wire_stats(&self) -> WireStats {
        self.lock().dirs[self.side].stats
    }
}

impl FrameSink for MemLink {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let (mtu, full) = {
            let s = self.lock();
            let d = &s.dirs[self.side];
            (d.cfg.mtu, self.pending.len() + d.wire.len() >= d.cfg.capacity)
        };
        if len > mtu {
            return false;
        }
        if full {
            self.stats.tx_no_frame += 1;
            return false;
        }
        let mut f = vec![0u8; len];
        fill(&mut f);
        self.pending.push(f);
        true
    }
}

impl FrameIo for MemLink {
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize {
        let mut batch = std::mem::take(&mut self.rx_batch);
        batch.clear();
        {
            let mut s = self.lock();
            let now = s.now;
            let d = &mut s.dirs[1 - self.side];
            while batch.len() < max {
                match d.wire.peek() {
                    Some(Reverse(f)) if f.at <= now => {}
                    _ => break,
                }
                if let Some(Reverse(f)) = d.wire.pop() {
                    batch.push(f.bytes);
                }
            }
            d.stats.delivered += batch.len() as u64;
        }
        let n = batch.len();
        for f in &batch {
            on_frame(f, self);
        }
        self.stats.rx_frames += n as u64;
        self.rx_batch = batch;
        n
    }

    fn tx(&mut self) -> &mut dyn FrameSink {
        self
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.pending);
        self.stats.tx_frames += frames.len() as u64;
        let mut s = self.lock();
        let now = s.now;
        let d = &mut s.dirs[self.side];
        for f in frames {
            d.transmit(now, f);
        }
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}

#[cfg(test)]
mod tests;
