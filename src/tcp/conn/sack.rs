//! The TCB's SACK work: which blocks the receiver reports (RFC 2018 §4, RFC 2883 §4) and the
//! sender's SACK-based loss recovery (RFC 6675 §5). The bounded data structures are in
//! `tcp/sack.rs`; this file connects them to the sequence variables.

use super::{Ctx, Tcb};
use crate::tcp::sack::{SackUpdate, Scoreboard, DUP_THRESH};
use crate::wire::{SeqNum, TcpOptions, TcpRepr};

/// RFC 6675 §5 (C) runs NextSeg "while cwnd - pipe >= 1 SMSS"; a bound on the segments one
/// call may send keeps the work per ACK bounded whatever the window.
const MAX_RECOVERY_SENDS: u32 = 64;

impl Tcb {
    /// The scoreboard, or an empty one when none was made.
    pub(super) fn sb(&self) -> &Scoreboard {
        self.scoreboard.as_deref().unwrap_or(&Scoreboard::EMPTY)
    }

    /// Payload bytes the next segment can carry: SMSS (which allows for timestamps already)
    /// less what the SACK blocks add to the options, so the segment still fits the MTU. Linux
    /// `tcp_current_mss` takes the same option bytes off the MSS.
    pub(super) fn payload_room(&self) -> u32 {
        if !self.sack_ok || self.rsack.is_empty() {
            return self.smss;
        }
        let mut o = TcpOptions { timestamps: self.ts_ok.then_some((0, 0)), ..TcpOptions::default() };
        let base = o.buffer_len();
        self.rsack.fill(&mut o);
        let extra = o.buffer_len().saturating_sub(base) as u32;
        self.smss.saturating_sub(extra).max(1)
    }

    fn dsack_on(&self, ctx: &Ctx<'_>) -> bool {
        self.sack_ok && ctx.cfg.dsack
    }

    /// `len` bytes from `seq` arrived again below RCV.NXT: D-SACK them (RFC 2883 §4 (1), Linux
    /// `tcp_send_dupack` / `tcp_data_queue` calling `tcp_dsack_set`).
    pub(super) fn dsack_old(&mut self, ctx: &mut Ctx<'_>, seq: SeqNum, len: usize) {
        if !self.dsack_on(ctx) || len == 0 || !seq.before(self.rcv_nxt) {
            return;
        }
        let end = seq.add(len as u32).min(self.rcv_nxt);
        self.rsack.set_dsack(seq, end);
        ctx.counters.tcp_ext_tcp_dsack_old_sent += 1;
    }

    /// The bytes `off..off + n` (offsets from RCV.NXT) are about to be stored: the parts the
    /// out-of-order store holds already are duplicates, reported with a D-SACK (Linux
    /// `tcp_data_queue_ofo` sets it for the first overlap and extends it for the next ones).
    pub(super) fn dsack_held(&mut self, ctx: &mut Ctx<'_>, off: usize, n: usize) {
        if !self.dsack_on(ctx) || n == 0 {
            return;
        }
        let end = off.saturating_add(n);
        let mut first = true;
        for &(rs, re) in self.asm.ranges() {
            let (lo, hi) = (off.max(rs), end.min(re));
            if lo >= hi {
                continue;
            }
            let (s, e) = (self.rcv_nxt.add(lo as u32), self.rcv_nxt.add(hi as u32));
            if first {
                self.rsack.set_dsack(s, e);
                ctx.counters.tcp_ext_tcp_dsack_ofo_sent += 1;
                first = false;
            } else {
                self.rsack.extend_dsack(s, e);
            }
        }
    }

    /// `off..off + n` was stored out of order: it leads the next SACK option.
    pub(super) fn sack_stored(&mut self, off: usize, n: usize) {
        if self.sack_ok && off > 0 && n > 0 {
            let s = self.rcv_nxt.add(off as u32);
            self.rsack.on_ofo(s, s.add(n as u32));
        }
    }

    /// The SACK option of an acceptable ACK onto the scoreboard (Linux
    /// `tcp_sacktag_write_queue`), counting what was refused. Also drops what SND.UNA passed.
    /// Before the scoreboard forgets what it held, RACK is told what this ACK newly delivers,
    /// cumulatively or selectively (RFC 8985 §6.2 steps 2-3, `Rack::on_delivered`).
    pub(super) fn sack_on_ack(&mut self, ctx: &mut Ctx<'_>, seg: &TcpRepr<'_>) -> SackUpdate {
        let old_una = self.snd_una;
        let una = if seg.ack.after(old_una) && !seg.ack.after(self.snd_max) { seg.ack } else { old_una };
        let now = ctx.now;
        let mut rack = if self.rack_on(ctx) { self.rack.as_deref_mut() } else { None };
        let prior_fack = rack.as_ref().and_then(|r| r.state.fack);
        let reo = &mut self.reo;
        let mut delivered = |s: SeqNum, e: SeqNum| {
            if let Some(r) = rack.as_deref_mut() {
                r.on_delivered(old_una, s, e, now, prior_fack, reo);
            }
        };
        if una.after(old_una) {
            // The part of SND.UNA..ACK that was not SACKed before: delivered by this ACK.
            let sb = self.scoreboard.as_deref().unwrap_or(&Scoreboard::EMPTY);
            for (a, b) in sb.gaps(old_una, una) {
                delivered(a, b);
            }
        }
        let blocks = seg.options.sack_blocks();
        if !self.sack_ok || blocks.is_empty() {
            if let Some(sb) = &mut self.scoreboard {
                sb.advance(una);
                if sb.is_empty() && !self.cc.in_recovery {
                    self.scoreboard = None;
                }
            }
            return SackUpdate::default();
        }
        let sb = self.scoreboard.get_or_insert_with(Box::default);
        let mut u = sb.on_ack_with(blocks, seg.ack, una, self.snd_max, &mut delivered);
        ctx.counters.tcp_ext_tcp_sack_discard += u64::from(u.discarded);
        if let Some((s, e)) = u.dsack {
            ctx.counters.tcp_ext_tcp_dsack_recv += 1;
            if u.dsack_old {
                ctx.counters.tcp_ext_tcp_dsack_ignored_no_undo += 1;
            }
            // Linux `tcp_dsack_seen`: a D-SACK longer than the largest window, or for more
            // segments than were retransmitted, says nothing about our retransmissions.
            let len = e.distance_from(s);
            let segs = len.div_ceil(self.smss.max(1));
            let matched = self.reo.match_dsack(segs);
            if len > self.max_snd_wnd || !matched {
                u.dsack_dubious = true;
                ctx.counters.tcp_ext_tcp_dsack_ignored_dubious += 1;
            }
        }
        u
    }

    /// RFC 6675 §5: enter loss recovery on the DupThresh-th duplicate ACK, or as soon as
    /// IsLost(HighACK + 1) holds; then (4.3) retransmit the first segment and let the NextSeg
    /// loop ([`Tcb::sack_recovery_send`], run by `output`) fill the other holes in the same
    /// round trip.
    pub(super) fn sack_maybe_recover(&mut self, ctx: &mut Ctx<'_>) {
        // After a timeout, go-back-N (SND.NXT pulled back) has to finish first.
        if !self.cc.may_recover(self.snd_una) || self.snd_una == self.snd_max || self.snd_nxt != self.snd_max {
            return;
        }
        let lost = !self.sb().is_empty() && self.sb().is_lost(self.snd_una, self.smss);
        if u32::from(self.cc.dupacks()) < DUP_THRESH && !lost {
            return;
        }
        ctx.counters.tcp_ext_tcp_sack_recovery += 1;
        // Linux `tcp_init_cwnd_reduction`: a recovery ends the probe episode.
        self.tlp = None;
        self.timers.pto = None;
        let flight = self.flight();
        self.cc.enter_sack_recovery(self.snd_max, flight, self.smss);
        self.high_rxt = self.snd_una;
        let _ = self.recovery_retransmit(ctx, self.snd_una, self.smss);
        self.dirty = true;
    }

    /// A partial ACK in a SACK recovery from a peer that sends no blocks (it negotiated SACK
    /// and then did not use it): nothing on the scoreboard can point at the next hole, so
    /// the segment at SND.UNA is sent again, as RFC 6582 §3.2 (3) would; Linux falls back to
    /// Reno's rules for such a peer too (`tcp_is_reno` after `tcp_disable_sack`, loosely).
    pub(super) fn sack_partial_ack(&mut self, ctx: &mut Ctx<'_>) {
        if !(self.cc.in_recovery && self.cc.sack_mode && self.sb().is_empty()) {
            return;
        }
        if self.high_rxt.after(self.snd_una) || self.snd_una == self.snd_max {
            return;
        }
        let _ = self.recovery_retransmit(ctx, self.snd_una, self.smss);
    }

    /// RFC 6675 §5 (C): while cwnd - pipe >= 1 SMSS, send what NextSeg picks: a lost hole
    /// (rule 1), else new data (rule 2), else an unSACKed hole below the highest SACK (rule 3).
    pub(super) fn sack_recovery_send(&mut self, ctx: &mut Ctx<'_>) {
        for _ in 0..MAX_RECOVERY_SENDS {
            let una = self.snd_una;
            let high_rxt = self.high_rxt.max(una);
            // Retransmissions RACK found lost again have left the network: SetPipe would
            // count them as retransmitted and in flight (Linux takes them out of
            // `retrans_out` in `tcp_mark_skb_lost`).
            let pipe = self.sb().pipe(una, self.snd_max, high_rxt, self.smss).saturating_sub(self.rack_relost_bytes());
            if pipe.saturating_add(self.smss) > self.cc.cwnd {
                return;
            }
            // RFC 8985 §6.2 step 5: a lost retransmission is sent again before anything above
            // it (Linux's walk of its retransmission queue meets it first).
            if let Some((s, len)) = self.rack_relost_seg() {
                if !self.recovery_retransmit(ctx, s, len) {
                    return;
                }
                continue;
            }
            let rule1 = self.sb().next_seg(una, self.snd_max, high_rxt, self.smss, false);
            if let Some((s, len)) = rule1 {
                if !self.recovery_retransmit(ctx, s, len) {
                    return;
                }
                continue;
            }
            if self.send_new_one(ctx) {
                continue;
            }
            match self.sb().next_seg(una, self.snd_max, high_rxt, self.smss, true) {
                Some((s, len)) if self.recovery_retransmit(ctx, s, len) => {}
                _ => return,
            }
        }
    }

    fn recovery_retransmit(&mut self, ctx: &mut Ctx<'_>, s: SeqNum, len: u32) -> bool {
        let n = self.retransmit_at(ctx, s, len);
        if n == 0 {
            return false;
        }
        ctx.counters.tcp_ext_tcp_fast_retrans += 1;
        // A lost retransmission sent again lies below HighRxt, which stays.
        if s.add(n).after(self.high_rxt) || self.high_rxt.before(self.snd_una) {
            self.high_rxt = s.add(n);
        }
        if s == self.snd_una {
            // Linux `tcp_xmit_retransmit_queue` re-arms the retransmission timer when it
            // re-sends the head: the timer then measures the retransmission, not the
            // original, and does not fire right behind a fast retransmit.
            self.restart_rto(ctx.now);
        }
        true
    }

    /// NextSeg rule (2): one segment of new data (or the FIN) if the peer's window has room.
    pub(super) fn send_new_one(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let unsent = self.unsent_bytes();
        let room = self.snd_wnd.saturating_sub(self.flight());
        let most = self.payload_room();
        let n = unsent.min(room).min(most);
        let fin_here = self.fin_queued && !self.fin_acked && n == unsent;
        if n == 0 {
            if fin_here && self.fin_due() && room > 0 {
                self.send_segment(ctx, self.snd_nxt, 0, true);
                return true;
            }
            return false;
        }
        // Sender SWS avoidance as in `send_data` (RFC 9293 §3.8.6.2.1): data is in flight.
        if n < most && n < unsent && n < self.max_snd_wnd / 2 {
            return false;
        }
        self.send_segment(ctx, self.snd_nxt, n, fin_here);
        true
    }
}
