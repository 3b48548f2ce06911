//! RACK loss detection (RFC 8985 §6) on the TCB: a segment is lost once a segment sent
//! sufficiently later has been delivered (cumulatively acknowledged or SACKed), "sufficiently"
//! being the reordering window. What RACK marks lost goes onto the RFC 6675 scoreboard
//! (`Scoreboard::mark_lost_to`), so one retransmission path (`sack_maybe_recover` and the
//! NextSeg loop) repairs what either algorithm found. Linux runs RACK by default
//! (`tcp_recovery` = 1: `tcp_rack_mark_lost`, `tcp_rack_detect_loss`).
//!
//! Read RFC 8985 §6 before editing; the log's simplifications are in `tcp/rack.rs`.

use super::{Ctx, Tcb};
use crate::time::Instant;
use crate::wire::{SeqNum, TcpRepr};

impl Tcb {
    fn rack_on(&self, ctx: &Ctx<'_>) -> bool {
        self.sack_ok && ctx.cfg.rack
    }

    /// New data up to `end` went out for the first time at `now`.
    pub(super) fn rack_on_send(&mut self, ctx: &Ctx<'_>, end: SeqNum) {
        if self.rack_on(ctx) {
            self.rack.get_or_insert_with(Box::default).log.on_send(end, ctx.now);
        }
    }

    /// RFC 8985 §6.2 steps 1-5 for an acceptable ACK, after the scoreboard and SND.UNA took
    /// it: update RACK.xmit_ts / RACK.end_seq / RACK.rtt from the most recently sent data it
    /// delivered, then mark lost what was sent a reordering window before that. `old_una` is
    /// SND.UNA before this ACK.
    pub(super) fn rack_on_ack(&mut self, ctx: &mut Ctx<'_>, old_una: SeqNum, seg: &TcpRepr<'_>) {
        if !self.rack_on(ctx) {
            return;
        }
        let una = self.snd_una;
        let Some(r) = self.rack.as_deref_mut() else { return };
        // Original data goes out in sequence order (see `SentLog`): the most recently sent
        // octet delivered is the highest one, cumulatively or in a block of this ACK.
        let mut top = self.snd_una.after(old_una).then_some(self.snd_una);
        for &(s, e) in seg.options.sack_blocks() {
            if s.after_eq(self.snd_una) && e.after(s) && e.before_eq(self.snd_max) {
                top = Some(top.map_or(e, |t| t.max(e)));
            }
        }
        if let Some(end) = top {
            if let Some(sent) = r.log.sent_at(end) {
                r.state.on_delivered(sent, end, ctx.now);
            }
        }
        r.log.advance(una);
        self.rack_detect_loss(ctx);
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): every unSACKed octet first sent before
    /// RACK.xmit_ts is lost once RACK.rtt + RACK.reo_wnd passed since its transmission; for the
    /// first one still within that, the reordering timer is armed (§6.3).
    fn rack_detect_loss(&mut self, ctx: &mut Ctx<'_>) {
        self.timers.rack = None;
        let Some(r) = self.rack.as_deref() else { return };
        let (Some((rx_t, rx_end)), log) = (r.state.xmit, &r.log) else { return };
        if self.sb().is_empty() || self.retries > 0 {
            return;
        }
        let reo_wnd = r.state.reo_wnd(self.rtt.srtt(), self.cc.in_recovery);
        let wait = r.state.rtt + reo_wnd;
        let (una, snd_max) = (self.snd_una, self.snd_max);
        let mut lost_to: Option<SeqNum> = None;
        let mut deadline: Option<Instant> = None;
        let mut prev = una;
        for (end, t) in log.iter() {
            // RACK_sent_after(RACK.xmit_ts, RACK.end_seq, t, end): only what was sent before.
            if t > rx_t {
                break;
            }
            let cap = if t == rx_t { end.min(rx_end) } else { end };
            let lo = prev.max(una);
            prev = end;
            if !cap.after(lo) {
                continue;
            }
            let has_hole = self.sb().holes(una, snd_max).any(|(a, b)| a.before(cap) && b.after(lo));
            if !has_hole {
                continue;
            }
            if t + wait <= ctx.now {
                lost_to = Some(cap);
            } else {
                deadline = Some(t + wait);
                break;
            }
        }
        self.timers.rack = deadline;
        if let (Some(to), Some(sb)) = (lost_to, self.scoreboard.as_deref_mut()) {
            sb.mark_lost_to(to);
            self.dirty = true;
        }
    }

    /// RFC 8985 §6.3: the reordering timer fired: detect again, and start (or feed) the
    /// recovery with what is now lost.
    pub(super) fn on_rack_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.snd_una == self.snd_max {
            return;
        }
        self.rack_detect_loss(ctx);
        self.sack_maybe_recover(ctx);
        self.dirty = true;
    }

    /// A timeout: RACK's record of delivered data is kept, its timer goes (go-back-N resends
    /// everything anyway).
    pub(super) fn rack_on_rto(&mut self) {
        self.timers.rack = None;
    }
}
