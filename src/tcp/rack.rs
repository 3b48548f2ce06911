//! RACK (RFC 8985 §6) bookkeeping: when each piece of the data in flight was last sent, in a
//! fixed-size log, and the RACK state variables. The TCB glue is in `conn/rack.rs`.
//!
//! Read RFC 8985 §6 before editing. The RFC keeps a transmit time per segment, and the time of
//! a retransmitted segment is that of its latest retransmission (§6.1 RACK.xmit_ts, §6.2 step
//! 2), which is what lets RACK find a retransmission that was lost too (§6.3). Linux keeps the
//! time in every skb of its retransmission queue. This log keeps it per *piece* of sequence
//! space instead: the pieces cover SND.UNA..SND.MAX without gaps, and
//! - data sent for the first time at one `now` (one engine batch) extends the last piece when
//!   that piece was sent at the same instant;
//! - a retransmission of `s..e` cuts `s..e` out of the pieces it lies in and stamps it with
//!   its own time and a "retransmitted" mark;
//! - past [`SENT_LOG_ENTRIES`] pieces, the two neighbours whose times lie closest merge under
//!   the later time. Data then looks younger than it is, which can only delay a loss verdict,
//!   never invent one (the RTO still stands behind it).
//!
//! Times are kept in microseconds (the resolution of Linux's RACK clock, `tcp_mstamp`) from a
//! base instant, in 30 bits beside two flag bits, so that a piece takes 8 bytes and the whole
//! log 144 (it was 520: 32 entries of 16 bytes, first transmissions only).

use crate::time::{Duration, Instant};
use crate::wire::SeqNum;

/// Pieces in the log. Measured with the loss runs of `tests/sim.rs`
/// (`sack_on_and_off_under_loss_with_reordering`, RACK-TLP on): 32, 16 and 8 pieces gave 29
/// timeouts each and 1588, 1556 and 1565 retransmissions; the same simulation with 1 MB
/// windows (4 connections, 4 seeds) gave identical counts at 1 % and 3 % loss, and at 2 % loss
/// with 5-20 ms of jitter 28, 27 and 23 timeouts for 2277, 2188 and 2500 retransmissions. 16
/// leaves room for the two pieces each retransmission may add.
pub const SENT_LOG_ENTRIES: usize = 16;

/// The piece was sent again (not its first transmission).
const RETRANS: u32 = 1;
/// A retransmission that RACK found lost too; it waits to be sent again.
const RELOST: u32 = 2;
const FLAG_BITS: u32 = 2;
const FLAG_MASK: u32 = (1 << FLAG_BITS) - 1;
/// How far a stamp reaches past the base, in microseconds (2^30: about 17.9 minutes).
const STAMP_SPAN_US: u64 = 1 << (32 - FLAG_BITS);

/// One stored piece: it ends at `end` and starts where the previous one ends (the first one
/// at SND.UNA). `stamp` is the microseconds since the log's base, shifted past the flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sent {
    end: SeqNum,
    stamp: u32,
}

const _: () = assert!(core::mem::size_of::<Sent>() == 8);

impl Sent {
    fn us(self) -> u32 {
        self.stamp >> FLAG_BITS
    }
    fn flags(self) -> u32 {
        self.stamp & FLAG_MASK
    }
}

/// A piece of the log as loss detection reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub start: SeqNum,
    pub end: SeqNum,
    /// When it was last sent (RACK's Segment.xmit_ts).
    pub at: Instant,
    /// The last sending was a retransmission (RFC 8985 Segment.retransmitted).
    pub retrans: bool,
    /// RACK marked that retransmission lost; it has not been sent again yet.
    pub relost: bool,
}

/// When each piece of the data in flight was last sent (see the module documentation).
#[derive(Debug, Clone)]
pub struct SentLog {
    base: Instant,
    len: u8,
    entries: [Sent; SENT_LOG_ENTRIES],
}

impl Default for SentLog {
    fn default() -> Self {
        SentLog { base: Instant::ZERO, len: 0, entries: [Sent::default(); SENT_LOG_ENTRIES] }
    }
}

/// Merges neighbours in `v[..*n]` until at most `max` remain: each time the pair whose
/// times lie closest (a pair with a piece marked lost again only when nothing else is left,
/// and a pair that mixes first transmissions with retransmissions only after pairs that do
/// not), lowest first on a tie. The merged piece takes the later time, is a retransmission if
/// either was, and is marked lost again only if both were.
fn merge_down(v: &mut [Sent], n: &mut usize, max: usize) {
    while *n > max {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..n.saturating_sub(1) {
            let (Some(&a), Some(&b)) = (v.get(i), v.get(i + 1)) else { break };
            let mut cost = u64::from(a.us().abs_diff(b.us()));
            if (a.flags() | b.flags()) & RELOST != 0 {
                cost = cost.saturating_add(STAMP_SPAN_US * 4);
            }
            if (a.flags() ^ b.flags()) & RETRANS != 0 {
                cost = cost.saturating_add(STAMP_SPAN_US);
            }
            if best.is_none_or(|(c, _)| cost < c) {
                best = Some((cost, i));
            }
        }
        let Some((_, i)) = best else { return };
        let (Some(&a), Some(&b)) = (v.get(i), v.get(i + 1)) else { return };
        let flags = ((a.flags() | b.flags()) & RETRANS) | (a.flags() & b.flags() & RELOST);
        let us = a.us().max(b.us());
        if let Some(slot) = v.get_mut(i) {
            *slot = Sent { end: b.end, stamp: (us << FLAG_BITS) | flags };
        }
        if let Some(rest) = v.get_mut(i + 1..*n) {
            rest.rotate_left(1);
        }
        *n -= 1;
    }
}

impl SentLog {
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn stored(&self) -> &[Sent] {
        self.entries.get(..self.len()).unwrap_or(&[])
    }

    /// The end of the last piece: SND.MAX as the log knows it.
    pub fn end(&self) -> Option<SeqNum> {
        self.stored().last().map(|s| s.end)
    }

    fn instant(&self, s: Sent) -> Instant {
        self.base + Duration::from_micros(u64::from(s.us()))
    }

    /// Piece `i` (lowest first); the first one starts at `una`.
    pub fn piece(&self, i: usize, una: SeqNum) -> Option<Piece> {
        let s = *self.stored().get(i)?;
        let start = match i.checked_sub(1) {
            Some(p) => self.stored().get(p).map_or(una, |p| p.end),
            None => una,
        };
        Some(Piece {
            start,
            end: s.end,
            at: self.instant(s),
            retrans: s.flags() & RETRANS != 0,
            relost: s.flags() & RELOST != 0,
        })
    }

    /// Pieces, lowest first, the first one starting at `una`.
    pub fn pieces(&self, una: SeqNum) -> impl Iterator<Item = Piece> + '_ {
        (0..self.len()).map_while(move |i| self.piece(i, una))
    }

    /// Microseconds from the base to `now`. An empty log starts from `now`; a time that would
    /// not fit moves the base on, and pieces older than the new base are taken as sent at
    /// it: younger than they are, which only delays a loss verdict.
    fn micros(&mut self, now: Instant) -> u32 {
        if self.len == 0 || now < self.base {
            self.base = now;
        }
        let mut us = now.saturating_since(self.base).as_micros();
        if us >= STAMP_SPAN_US {
            let shift = us - STAMP_SPAN_US / 2;
            for e in self.entries.iter_mut().take(usize::from(self.len)) {
                let t = u64::from(e.us()).saturating_sub(shift) as u32;
                *e = Sent { end: e.end, stamp: (t << FLAG_BITS) | e.flags() };
            }
            self.base = self.base + Duration::from_micros(shift);
            us = STAMP_SPAN_US / 2;
        }
        us as u32
    }

    /// New data up to `end` was first sent at `now`: after everything in the log, so never
    /// stamped earlier than any of it (see [`SentLog::on_retransmit`]).
    pub fn on_send(&mut self, end: SeqNum, now: Instant) {
        let us = self.micros(now).max(self.stored().iter().map(|p| p.us()).max().unwrap_or(0));
        let stamp = us << FLAG_BITS;
        let n = self.len();
        if let Some(last) = n.checked_sub(1).and_then(|i| self.entries.get_mut(i)) {
            if !end.after(last.end) {
                return;
            }
            if last.stamp == stamp {
                last.end = end;
                return;
            }
        }
        let mut n = n;
        merge_down(&mut self.entries, &mut n, SENT_LOG_ENTRIES - 1);
        if let Some(slot) = self.entries.get_mut(n) {
            *slot = Sent { end, stamp };
            n += 1;
        }
        self.len = n as u8;
    }

    /// `s..e` was sent again at `now` (`una`: where the first piece starts). Only what the
    /// log covers is stamped; a retransmission beyond it is new data for [`SentLog::on_send`].
    pub fn on_retransmit(&mut self, una: SeqNum, s: SeqNum, e: SeqNum, now: Instant) {
        let Some(top) = self.end() else { return };
        let (s, e) = (s.max(una), e.min(top));
        if !e.after(s) {
            return;
        }
        // RACK orders two sendings of one instant by sequence (RFC 8985 RACK_sent_after). A
        // retransmission goes out after data above it that was first sent at the same instant
        // (the clock is read once per batch, and a test's clock may not move at all): it is
        // stamped a microsecond later, or the delivery of that data would pass for the
        // delivery of something sent after it.
        let now_us = self.micros(now);
        let above = self.stored().iter().filter(|p| p.end.after(e)).map(|p| p.us()).max();
        let us = match above {
            Some(m) if m >= now_us => (m + 1).min((STAMP_SPAN_US - 1) as u32),
            _ => now_us,
        };
        let stamp = (us << FLAG_BITS) | RETRANS;
        let mut out = [Sent::default(); SENT_LOG_ENTRIES + 2];
        let mut k = 0usize;
        let mut push = |p: Sent| {
            // Neighbours with the same stamp are one piece.
            if let Some(last) = k.checked_sub(1).and_then(|i| out.get_mut(i)) {
                if last.stamp == p.stamp {
                    last.end = p.end;
                    return;
                }
            }
            if let Some(slot) = out.get_mut(k) {
                *slot = p;
                k += 1;
            }
        };
        let mut start = una;
        let mut placed = false;
        for &p in self.stored() {
            if start.before(s) {
                push(Sent { end: p.end.min(s), stamp: p.stamp });
            }
            if p.end.after(s) && !placed {
                push(Sent { end: e, stamp });
                placed = true;
            }
            if p.end.after(e) {
                push(Sent { end: p.end, stamp: p.stamp });
            }
            start = p.end;
        }
        merge_down(&mut out, &mut k, SENT_LOG_ENTRIES);
        for (d, o) in self.entries.iter_mut().zip(out.iter().take(k)) {
            *d = *o;
        }
        self.len = k as u8;
    }

    /// RACK found the retransmission in piece `i` lost (RFC 8985 §6.2 step 5).
    pub fn set_relost(&mut self, i: usize) {
        if i < self.len() {
            if let Some(p) = self.entries.get_mut(i) {
                p.stamp |= RELOST;
            }
        }
    }

    /// Forgets every "lost again" mark (a timeout re-sends everything anyway).
    pub fn clear_relost(&mut self) {
        for p in self.entries.iter_mut().take(usize::from(self.len)) {
            p.stamp &= !RELOST;
        }
    }

    /// SND.UNA moved to `una`: pieces wholly below it go.
    pub fn advance(&mut self, una: SeqNum) {
        let n = self.len();
        let gone = self.stored().iter().take_while(|p| !p.end.after(una)).count();
        if gone > 0 {
            self.entries.copy_within(gone..n, 0);
            self.len = (n - gone) as u8;
        }
    }
}

/// What RACK keeps for a connection while data is in flight: the log and the RFC 8985 §6.1
/// variables. Boxed by the TCB and given back when everything is acknowledged, as the send
/// buffer is, so an idle connection does not pay for it; RACK.min_RTT then starts again
/// from the next flight's first sample (Linux's own minimum expires too, after 5 minutes).
/// What must outlive a flight (the reordering window's state) is [`ReoWnd`], in the TCB.
#[derive(Debug, Clone, Default)]
pub struct Rack {
    pub log: SentLog,
    pub state: RackState,
}

impl Rack {
    /// RFC 8985 §6.2 steps 2 and 3 for `s..e`, newly delivered (cumulatively or selectively)
    /// by the ACK being processed; the log still starts at `una`, SND.UNA before that ACK.
    /// `prior_fack` is RACK.fack before the ACK: comparing against it, as Linux does
    /// (`prior_fack` in `tcp_sacktag_write_queue` and `tcp_clean_rtx_queue`), makes the
    /// verdict independent of the order in which one ACK's pieces are visited.
    pub fn on_delivered(
        &mut self,
        una: SeqNum,
        s: SeqNum,
        e: SeqNum,
        now: Instant,
        prior_fack: Option<SeqNum>,
        reo: &mut ReoWnd,
    ) {
        for p in self.log.pieces(una) {
            let (lo, hi) = (p.start.max(s), p.end.min(e));
            if !hi.after(lo) {
                continue;
            }
            // Step 3: data never retransmitted delivered below RACK.fack arrived out of order.
            if !p.retrans && prior_fack.is_some_and(|f| lo.before(f)) {
                reo.reordering_seen = true;
            }
            self.state.on_delivered(p.at, hi, now, p.retrans);
        }
        self.state.fack = Some(self.state.fack.map_or(e, |f| f.max(e)));
    }
}

/// RFC 8985 §6.1 state: the most recently sent segment known delivered, and the RTT it gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct RackState {
    /// RACK.xmit_ts and RACK.end_seq.
    pub xmit: Option<(Instant, SeqNum)>,
    /// RACK.rtt.
    pub rtt: Duration,
    /// RACK.min_RTT: the least RTT seen (Linux keeps a windowed minimum, `tcp_min_rtt`; this
    /// one does not expire).
    pub min_rtt: Option<Duration>,
    /// RACK.fack (§6.2 step 3): the highest sequence number delivered so far.
    pub fack: Option<SeqNum>,
}

impl RackState {
    /// RFC 8985 §6.2 step 2: a segment sent at `sent` (`retrans`: a retransmission), ending at
    /// `end`, was delivered at `now`. Returns true when it became the most recently sent one
    /// delivered.
    pub fn on_delivered(&mut self, sent: Instant, end: SeqNum, now: Instant, retrans: bool) -> bool {
        let rtt = now.saturating_since(sent);
        // A retransmission delivered sooner than the least RTT seen was the original's
        // delivery more likely than its own: no sample (RFC 8985 §6.2 step 2; Linux
        // `tcp_rack_advance`, which also skips it while no minimum is known).
        if retrans && self.min_rtt.is_none_or(|m| rtt < m) {
            return false;
        }
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let newer = match self.xmit {
            None => true,
            // RACK_sent_after: later, or at the same time and higher in sequence.
            Some((t, e)) => sent > t || (sent == t && end.after(e)),
        };
        if newer {
            self.xmit = Some((sent, end));
            self.rtt = rtt;
        }
        newer
    }
}

/// RFC 8985 §6.2 step 4: recoveries a widened reordering window lasts (RACK.reo_wnd_persist;
/// Linux `TCP_RACK_RECOVERY_THRESH`).
pub const REO_WND_PERSIST: u8 = 16;

/// The reordering window's state (RFC 8985 §6.2 steps 3 and 4), kept in the TCB for the
/// connection's life, as Linux keeps `reord_seen` and `tp->rack` (8 bytes).
#[derive(Debug, Clone, Copy)]
pub struct ReoWnd {
    /// RACK.dsack_round: SND.MAX when the window last grew. A D-SACK grows it again only once
    /// SND.UNA is past this, so at most once per round trip; and when the duplicates' D-SACKs
    /// come back after everything was acknowledged (the usual case), they count once until
    /// data sent later is delivered, as Linux waits for that (`rack.last_delivered`). Dragged
    /// along behind SND.UNA so that it never goes stale (RFC 9293 §3.4: sequence numbers
    /// wrap).
    round: SeqNum,
    /// RACK.reo_wnd_mult (Linux `reo_wnd_steps`), 1 to 255.
    mult: u8,
    /// RACK.reo_wnd_persist: loss recoveries left before the window shrinks back.
    persist: u8,
    /// RACK.reordering_seen (Linux `reord_seen`): never-retransmitted data was delivered below
    /// data delivered before it. Stays set for the connection's life, as in Linux.
    pub reordering_seen: bool,
    /// Segments retransmitted and not yet matched by a D-SACK (Linux counts `total_retrans`
    /// against `dsack_dups`; this is their difference, 0 to 255).
    unmatched_retrans: u8,
}

impl ReoWnd {
    pub fn new(una: SeqNum) -> Self {
        ReoWnd { round: una.sub(1), mult: 1, persist: 0, reordering_seen: false, unmatched_retrans: 0 }
    }

    pub fn mult(&self) -> u8 {
        self.mult
    }

    /// RFC 8985 §6.2 step 4, RACK_update_reo_wnd's result, as Linux's `tcp_rack_reo_wnd`
    /// computes it by default: zero while no reordering was seen and either a recovery (fast or
    /// after a timeout) is under way or DupThresh segments are SACKed, else RACK.min_RTT / 4
    /// times RACK.reo_wnd_mult, at most SRTT.
    pub fn reo_wnd(&self, st: &RackState, srtt: Option<Duration>, recovering: bool, sacked_segs: u32) -> Duration {
        if !self.reordering_seen && (recovering || sacked_segs >= crate::tcp::sack::DUP_THRESH) {
            return Duration::ZERO;
        }
        let q = st.min_rtt.map_or(Duration::ZERO, |m| Duration(m.0 / 4)).saturating_mul(u64::from(self.mult));
        srtt.map_or(q, |s| q.min(s))
    }

    /// An acceptable ACK left SND.UNA at `una`.
    pub fn on_ack(&mut self, una: SeqNum) {
        if una.sub(1).after(self.round) {
            self.round = una.sub(1);
        }
    }

    /// RFC 8985 §6.2 step 4: a D-SACK that counts (see `Tcb::rack_on_ack`) arrived.
    pub fn on_dsack(&mut self, una: SeqNum, snd_max: SeqNum) {
        if !una.after(self.round) {
            return;
        }
        self.round = snd_max;
        self.mult = self.mult.saturating_add(1);
        self.persist = REO_WND_PERSIST;
    }

    /// RFC 8985 §6.2 step 4: a fast or timeout recovery ended (Linux `tcp_try_undo_recovery`
    /// without an undo).
    pub fn on_recovery_end(&mut self) {
        self.persist = self.persist.saturating_sub(1);
        if self.persist == 0 {
            self.mult = 1;
        }
    }

    /// A segment was sent again.
    pub fn on_retransmit(&mut self) {
        self.unmatched_retrans = self.unmatched_retrans.saturating_add(1);
    }

    /// A D-SACK reports `segs` duplicate segments. Returns false when more were reported than
    /// were retransmitted (Linux `tcp_dsack_seen`: the network duplicated them, or the peer
    /// lies; either way they say nothing about our retransmissions).
    pub fn match_dsack(&mut self, segs: u32) -> bool {
        let ok = segs <= u32::from(self.unmatched_retrans);
        self.unmatched_retrans = (u32::from(self.unmatched_retrans).saturating_sub(segs)) as u8;
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn raw(l: &SentLog, una: u32) -> Vec<(u32, u32, Instant, bool)> {
        l.pieces(SeqNum(una)).map(|p| (p.start.0, p.end.0, p.at, p.retrans)).collect()
    }

    #[test]
    fn log_coalesces_merges_and_advances() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(100), t(1));
        l.on_send(SeqNum(200), t(1));
        l.on_send(SeqNum(300), t(2));
        assert_eq!(raw(&l, 0), vec![(0, 200, t(1), false), (200, 300, t(2), false)]);
        l.advance(SeqNum(200));
        assert_eq!(l.len(), 1);
        for k in 0..100u64 {
            l.on_send(SeqNum(400 + k as u32 * 100), t(10 + k));
        }
        assert_eq!(l.len(), SENT_LOG_ENTRIES);
        // Merged pieces took later times: data looks younger, never older.
        let p = l.pieces(SeqNum(200)).find(|p| p.end.after(SeqNum(450))).unwrap();
        assert!(p.at >= t(10));
        assert_eq!(l.end(), Some(SeqNum(400 + 99 * 100)));
    }

    /// RFC 8985 §6.2 step 2: a retransmission carries its own time; the pieces around it keep
    /// theirs, and neighbours sent again at one instant are one piece.
    #[test]
    fn retransmission_restamps_its_range() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(1000), t(1));
        l.on_send(SeqNum(2000), t(2));
        l.on_retransmit(SeqNum(0), SeqNum(500), SeqNum(600), t(5));
        l.on_retransmit(SeqNum(0), SeqNum(600), SeqNum(1200), t(5));
        assert_eq!(raw(&l, 0), vec![(0, 500, t(1), false), (500, 1200, t(5), true), (1200, 2000, t(2), false)]);
        l.set_relost(1);
        assert!(l.piece(1, SeqNum(0)).unwrap().relost);
        // Sent again: the mark goes with the new stamp, the rest keeps it.
        l.on_retransmit(SeqNum(0), SeqNum(500), SeqNum(700), t(9));
        let p: Vec<_> = l.pieces(SeqNum(0)).map(|p| (p.start.0, p.end.0, p.relost)).collect();
        assert_eq!(p, vec![(0, 500, false), (500, 700, false), (700, 1200, true), (1200, 2000, false)]);
        // Beyond the log: nothing to stamp.
        l.on_retransmit(SeqNum(0), SeqNum(2000), SeqNum(2100), t(9));
        assert_eq!(l.end(), Some(SeqNum(2000)));
    }

    /// The clock is read once per batch: a retransmission in the instant that data above it
    /// was first sent goes after that data, and is stamped so; data sent after it is too.
    #[test]
    fn retransmission_is_stamped_after_same_instant_data_above() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(1000), t(1));
        l.on_retransmit(SeqNum(0), SeqNum(0), SeqNum(100), t(1));
        let p: Vec<_> = l.pieces(SeqNum(0)).collect();
        assert!(p[0].retrans && p[0].at > p[1].at);
        l.on_send(SeqNum(1100), t(1));
        assert!(l.pieces(SeqNum(0)).last().unwrap().at >= p[0].at);
    }

    #[test]
    fn retransmissions_stay_bounded() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(100_000), t(1));
        for k in 0..200u32 {
            l.on_retransmit(SeqNum(0), SeqNum(k * 300), SeqNum(k * 300 + 100), t(2 + u64::from(k)));
            assert!(l.len() <= SENT_LOG_ENTRIES);
            let p: Vec<_> = l.pieces(SeqNum(0)).collect();
            assert!(p.windows(2).all(|w| w[0].end == w[1].start), "pieces cover without gaps");
            assert_eq!(p.last().unwrap().end, SeqNum(100_000));
        }
    }

    /// Stamps keep 30 bits of microseconds: a flight older than that is rebased, old pieces
    /// looking younger.
    #[test]
    fn stamps_rebase_past_their_span() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(100), t(1));
        let late = t(1) + Duration::from_micros(STAMP_SPAN_US + 5);
        l.on_send(SeqNum(200), late);
        let p: Vec<_> = l.pieces(SeqNum(0)).collect();
        assert_eq!(p[1].at, late);
        assert!(p[0].at > t(1) && p[0].at < late);
    }

    #[test]
    fn rack_state_keeps_the_most_recently_sent() {
        let mut r = RackState::default();
        assert!(r.on_delivered(t(10), SeqNum(200), t(30), false));
        assert!(!r.on_delivered(t(5), SeqNum(100), t(31), false));
        assert_eq!(r.xmit, Some((t(10), SeqNum(200))));
        assert_eq!(r.rtt, Duration::from_millis(20));
        // A retransmission "delivered" sooner than the least RTT: no sample.
        assert!(!r.on_delivered(t(25), SeqNum(300), t(35), true));
        assert!(r.on_delivered(t(25), SeqNum(300), t(45), true));
    }

    /// RFC 8985 §6.2 step 4 as Linux's `tcp_rack_reo_wnd` computes it.
    #[test]
    fn reo_wnd_follows_reordering_recovery_and_dsacks() {
        let st = RackState { min_rtt: Some(Duration::from_millis(20)), ..RackState::default() };
        let srtt = Some(Duration::from_millis(30));
        let mut r = ReoWnd::new(SeqNum(1000));
        assert_eq!(r.reo_wnd(&st, srtt, false, 1), Duration::from_millis(5));
        // No reordering seen: zero in recovery and once DupThresh segments are SACKed.
        assert_eq!(r.reo_wnd(&st, srtt, true, 1), Duration::ZERO);
        assert_eq!(r.reo_wnd(&st, srtt, false, 3), Duration::ZERO);
        r.reordering_seen = true;
        assert_eq!(r.reo_wnd(&st, srtt, true, 3), Duration::from_millis(5));
        // One step per round trip.
        r.on_dsack(SeqNum(1000), SeqNum(5000));
        r.on_dsack(SeqNum(1000), SeqNum(5000));
        assert_eq!(r.reo_wnd(&st, srtt, false, 0), Duration::from_millis(10));
        r.on_ack(SeqNum(5000));
        r.on_dsack(SeqNum(5000), SeqNum(5000));
        assert_eq!(r.mult(), 2, "SND.UNA has to pass the round's end");
        r.on_ack(SeqNum(5001));
        r.on_dsack(SeqNum(5001), SeqNum(9000));
        r.on_dsack(SeqNum(5001), SeqNum(9000));
        // Capped by SRTT.
        for k in 0..10 {
            let una = SeqNum(9001 + k);
            r.on_ack(una);
            r.on_dsack(una, una);
        }
        assert_eq!(r.reo_wnd(&st, srtt, false, 0), Duration::from_millis(30));
        // Back to one step after 16 recoveries.
        for _ in 0..REO_WND_PERSIST - 1 {
            r.on_recovery_end();
        }
        assert!(r.mult() > 1);
        r.on_recovery_end();
        assert_eq!(r.reo_wnd(&st, srtt, false, 0), Duration::from_millis(5));
    }

    #[test]
    fn dsacks_beyond_the_retransmissions_are_dubious() {
        let mut r = ReoWnd::new(SeqNum(0));
        assert!(!r.match_dsack(1));
        r.on_retransmit();
        r.on_retransmit();
        assert!(r.match_dsack(2));
        assert!(!r.match_dsack(1));
    }
}
