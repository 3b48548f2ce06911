//! The per-shard limit on RSTs that answer segments matching nothing (no connection, no
//! SYN-queue entry, a bad ACK to a listener).
//!
//! RFC 9293 §3.10.7.1 answers every such segment with a RST, so a stray-ACK flood is reflected
//! 1:1, to spoofed addresses, at line rate. FreeBSD bounds the same replies with
//! `badport_bandlim()` (`net.inet.icmp.icmplim`, default 200 per second; it logs "Limiting
//! closed port RST response from N to 200 packets/sec", and limits RSTs to open ports the same
//! way). Linux has no such limit for RSTs. Here one token bucket per shard does it, with two
//! refinements so that an attack on the limit cannot starve the RST a real half-open peer needs
//! (RFC 9293 §3.5.2, Figure 10: a peer whose connection we lost, e.g. by a restart, learns it
//! only from our RST):
//!
//! * Priority by shape. A segment that occupies sequence space (data, SYN or FIN) is what such
//!   a peer sends, and it keeps retransmitting it for many minutes until answered; a
//!   zero-length segment (a pure ACK, the usual flood) is never retransmitted by TCP and
//!   nobody waits on its answer. Zero-length segments may only spend the tokens above a reserve
//!   (a quarter of the burst), so a pure-ACK flood, however many sources it spoofs, leaves the
//!   reserve, refilled at the full rate, to the segments that matter. (An idle peer's
//!   keepalive probe is zero-length and may go unanswered during a flood; the peer sends
//!   `tcp_keepalive_probes` of them, and its next data segment is answered.)
//! * Per-source share for the priority class. One source (hashed into one of
//!   [`SOURCE_SLOTS`] small buckets; an IPv6 source by its /64) may spend at most half the
//!   rate and half the burst, so a single host sending data to dead connections cannot take
//!   every token from the others. A flood that spoofs many sources with data segments can
//!   still exhaust the bucket; the total stays bounded, and a real peer's retransmissions keep
//!   their chance of a token.
//!
//! The total never exceeds `burst + rate × seconds`, whatever the mix, and the state is a
//! fixed array: nothing a flood sends can make it grow.

use crate::time::Instant;
use core::net::IpAddr;

/// Per-source buckets of the priority class (16 bytes each).
pub const SOURCE_SLOTS: usize = 64;

/// One token, in the bucket's unit: a token is `NANO` nanotokens, so that `rate` tokens per
/// second refill exactly `rate` nanotokens per elapsed nanosecond (integer arithmetic, no
/// drift).
const NANO: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Nanotokens held.
    level: u64,
    /// When `level` was last brought up to date; `None`: never used, full.
    at: Option<Instant>,
}

impl Bucket {
    /// Brings the level up to `now` (a clock going backwards refills nothing).
    fn refill(&mut self, now: Instant, rate: u64, burst: u64) {
        let cap = burst.saturating_mul(NANO);
        self.level = match self.at {
            None => cap,
            Some(at) => self.level.saturating_add(now.saturating_since(at).as_nanos().saturating_mul(rate)).min(cap),
        };
        if self.at.is_none_or(|at| now > at) {
            self.at = Some(now);
        }
    }

    /// Are there more than `floor` whole tokens?
    fn above(&self, floor: u64) -> bool {
        self.level >= floor.saturating_add(1).saturating_mul(NANO)
    }

    fn take(&mut self) {
        self.level = self.level.saturating_sub(NANO);
    }
}

/// The limiter's state (see the module comment). `rate` 0 turns it off.
#[derive(Debug, Clone)]
pub struct RstLimiter {
    shared: Bucket,
    sources: [Bucket; SOURCE_SLOTS],
}

impl Default for RstLimiter {
    fn default() -> Self {
        RstLimiter { shared: Bucket::default(), sources: [Bucket::default(); SOURCE_SLOTS] }
    }
}

impl RstLimiter {
    /// May a RST answer a segment from `src` at `now`? `occupies_seq`: the segment carried data,
    /// SYN or FIN. `rate` per second (0: no limit) and `burst` tokens. Spends the token(s) when
    /// it answers yes.
    pub fn allow(&mut self, now: Instant, src: IpAddr, occupies_seq: bool, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let (rate, burst) = (u64::from(rate), u64::from(burst.max(1)));
        self.shared.refill(now, rate, burst);
        if !occupies_seq {
            if !self.shared.above(burst / 4) {
                return false;
            }
            self.shared.take();
            return true;
        }
        let (src_rate, src_burst) = ((rate / 2).max(1), (burst / 2).max(1));
        let Some(slot) = self.sources.get_mut(source_slot(src)) else {
            return false;
        };
        slot.refill(now, src_rate, src_burst);
        if !slot.above(0) || !self.shared.above(0) {
            return false;
        }
        slot.take();
        self.shared.take();
        true
    }
}

/// The source's slot: a multiplicative hash of the IPv4 address or of the IPv6 /64 (one
/// subscriber's prefix). Unkeyed on purpose: the slots only keep one non-spoofing host from
/// taking every token; a host that spoofs can name a victim's very address, so hiding the
/// mapping would buy nothing.
fn source_slot(src: IpAddr) -> usize {
    let x = match src {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => (u128::from(a) >> 64) as u64,
    };
    let h = (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 58) as usize % SOURCE_SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const A: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(198, 18, 1, 1));

    fn count(l: &mut RstLimiter, now: Instant, n: u32, occupies_seq: bool, rate: u32, burst: u32) -> u32 {
        (0..n).filter(|_| l.allow(now, A, occupies_seq, rate, burst)).count() as u32
    }

    #[test]
    fn pure_acks_leave_the_reserve() {
        let mut l = RstLimiter::default();
        let t = Instant::from_secs(5);
        assert_eq!(count(&mut l, t, 1000, false, 200, 200), 150);
        // The reserve (a quarter of the burst) is left for segments that occupy sequence space,
        // at most half the burst from one source.
        assert_eq!(count(&mut l, t, 1000, true, 200, 200), 50);
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let mut l = RstLimiter::default();
        let t = Instant::from_secs(5);
        count(&mut l, t, 1000, false, 200, 200);
        assert_eq!(count(&mut l, t + Duration::from_millis(100), 1000, false, 200, 200), 20);
        assert_eq!(count(&mut l, t + Duration::from_secs(100), 1000, false, 200, 200), 150);
        // A clock that steps back refills nothing and breaks nothing.
        assert_eq!(count(&mut l, t, 1000, false, 200, 200), 0);
    }

    #[test]
    fn one_source_gets_half() {
        let mut l = RstLimiter::default();
        let t = Instant::from_secs(5);
        assert_eq!(count(&mut l, t, 1000, true, 200, 200), 100);
        let b = IpAddr::V4(core::net::Ipv4Addr::new(198, 18, 1, 2));
        assert_ne!(source_slot(A), source_slot(b));
        let other = (0..1000).filter(|_| l.allow(t, b, true, 200, 200)).count();
        assert!(other > 0, "another source is still answered");
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut l = RstLimiter::default();
        assert_eq!(count(&mut l, Instant::ZERO, 10_000, false, 0, 0), 10_000);
    }
}
