//! RACK loss detection (RFC 8985 §6) on the TCB: a segment is lost once a segment sent
//! sufficiently later has been delivered (cumulatively acknowledged or SACKed), "sufficiently"
//! being the reordering window. What RACK marks lost goes onto the RFC 6675 scoreboard
//! (`Scoreboard::mark_lost_to`), so one retransmission path (`sack_maybe_recover` and the
//! NextSeg loop) repairs what either algorithm found. A retransmission carries its own time,
//! so one that is lost too is found the same way and sent again ahead of the NextSeg rules.
//! Linux runs RACK by default (`tcp_recovery` = 1: `tcp_rack_mark_lost`,
//! `tcp_rack_detect_loss`, `tcp_rack_update_reo_wnd`).
//!
//! Read RFC 8985 §6 before editing; the log's simplifications are in `tcp/rack.rs`.

use super::{Ctx, Tcb};
use crate::tcp::sack::{SackUpdate, Scoreboard};
use crate::time::Instant;
use crate::wire::SeqNum;

impl Tcb {
    pub(super) fn rack_on(&self, ctx: &Ctx<'_>) -> bool {
        self.sack_ok && ctx.cfg.rack
    }

    /// New data up to `end` went out for the first time at `now`.
    pub(super) fn rack_on_send(&mut self, ctx: &Ctx<'_>, end: SeqNum) {
        if self.rack_on(ctx) {
            self.rack.get_or_insert_with(Box::default).log.on_send(end, ctx.now);
        }
    }

    /// `s..e` went out again at `now`: RFC 8985 §6.2 step 2 reads its RACK.xmit_ts from this
    /// retransmission, not from the original.
    pub(super) fn rack_on_retransmit(&mut self, ctx: &Ctx<'_>, s: SeqNum, e: SeqNum) {
        if !self.rack_on(ctx) {
            return;
        }
        let una = self.snd_una;
        if let Some(r) = self.rack.as_deref_mut() {
            r.log.on_retransmit(una, s, e, ctx.now);
        }
    }

    /// RFC 8985 §6.2 steps 4 and 5 for an acceptable ACK, after the scoreboard, SND.UNA and
    /// congestion control took it (steps 2 and 3 ran while the scoreboard took it, see
    /// `sack_on_ack`): update the reordering window, then mark lost what was sent a
    /// reordering window before the most recently sent data delivered. `was_recovering`: a
    /// recovery was under way before this ACK.
    pub(super) fn rack_on_ack(&mut self, ctx: &mut Ctx<'_>, sack: SackUpdate, was_recovering: bool) {
        if !self.rack_on(ctx) {
            return;
        }
        let una = self.snd_una;
        self.reo.on_ack(una);
        // RFC 8985 §6.2 step 4: each recovery that ends counts down RACK.reo_wnd_persist.
        if was_recovering && !self.cc.is_recovering() {
            self.reo.on_recovery_end();
        }
        // RFC 8985 §6.2 step 4 widens the window on any D-SACK, once per round trip. Linux
        // (`tcp_dsack_seen`) counts only D-SACKs that can come from reordering that RACK
        // mistook for a loss: once reordering has been seen, and not for a loss probe's
        // retransmission (the probe timer, not RACK, sent it). So do we.
        if sack.dsack.is_some() && !sack.dsack_dubious && self.reo.reordering_seen && !self.tlp_probe_dsacked(sack) {
            self.reo.on_dsack(una, self.snd_max);
        }
        let Some(r) = self.rack.as_deref_mut() else { return };
        r.log.advance(una);
        self.rack_detect_loss(ctx);
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): every unSACKed piece sent before RACK.xmit_ts
    /// is lost once RACK.rtt + RACK.reo_wnd passed since it was (last) sent; for the first one
    /// still within that, the reordering timer is armed (§6.3). A lost retransmission of this
    /// recovery is marked to go again (Linux `tcp_mark_skb_lost` clears its
    /// `TCPCB_SACKED_RETRANS`); anything else lost extends the scoreboard's loss mark.
    fn rack_detect_loss(&mut self, ctx: &mut Ctx<'_>) {
        self.timers.rack = None;
        if self.sb().is_empty() || self.retries > 0 {
            return;
        }
        let (una, smss, now) = (self.snd_una, self.smss, ctx.now);
        let sack_recovery = self.cc.in_recovery && self.cc.sack_mode;
        // Below HighRxt lie the holes this recovery has sent again.
        let high_rxt = if sack_recovery { self.high_rxt.max(una) } else { una };
        let (srtt, recovering, reo) = (self.rtt.srtt(), self.cc.is_recovering(), self.reo);
        let sb = self.scoreboard.as_deref().unwrap_or(&Scoreboard::EMPTY);
        let Some(r) = self.rack.as_deref_mut() else { return };
        let Some((rx_t, rx_end)) = r.state.xmit else { return };
        let wait = r.state.rtt + reo.reo_wnd(&r.state, srtt, recovering, sb.sacked_segs(smss));
        let mut lost_to: Option<SeqNum> = None;
        let mut deadline: Option<Instant> = None;
        let mut relost_segs = 0u32;
        for i in 0..r.log.len() {
            let Some(p) = r.log.piece(i, una) else { break };
            // RACK_sent_after(RACK.xmit_ts, RACK.end_seq, p.at, ...): only what was sent
            // before. A piece already found lost waits to be sent again (Linux skips those).
            if p.at > rx_t || p.relost {
                continue;
            }
            let cap = if p.at == rx_t { p.end.min(rx_end) } else { p.end };
            let lo = p.start.max(una);
            if !cap.after(lo) || sb.uncovered(lo, cap) == 0 {
                continue;
            }
            let due = p.at + wait;
            if due > now {
                deadline = Some(deadline.map_or(due, |d| d.min(due)));
                continue;
            }
            lost_to = Some(lost_to.map_or(cap, |l| l.max(cap)));
            if p.retrans && sack_recovery && lo.before(high_rxt) {
                r.log.set_relost(i);
                relost_segs = relost_segs.saturating_add(sb.uncovered(lo, cap.min(high_rxt)).div_ceil(smss.max(1)));
            }
        }
        self.timers.rack = deadline;
        if relost_segs > 0 {
            ctx.counters.tcp_ext_tcp_lost_retransmit += u64::from(relost_segs);
            self.dirty = true;
        }
        if let (Some(to), Some(sb)) = (lost_to, self.scoreboard.as_deref_mut()) {
            sb.mark_lost_to(to);
            self.dirty = true;
        }
    }

    /// The unSACKed stretches of retransmissions RACK found lost again, below HighRxt.
    fn rack_relost(&self) -> impl Iterator<Item = (SeqNum, SeqNum)> + '_ {
        let una = self.snd_una;
        let high_rxt = self.high_rxt.max(una);
        let sb = self.sb();
        self.rack
            .as_deref()
            .into_iter()
            .flat_map(move |r| r.log.pieces(una))
            .filter(|p| p.relost)
            .flat_map(move |p| sb.gaps(p.start.max(una), p.end.min(high_rxt)))
    }

    /// The first stretch (one segment at most) of a lost retransmission to send again.
    pub(super) fn rack_relost_seg(&self) -> Option<(SeqNum, u32)> {
        if !(self.cc.in_recovery && self.cc.sack_mode) {
            return None;
        }
        self.rack_relost().next().map(|(a, b)| (a, b.distance_from(a).min(self.smss)))
    }

    /// Bytes of lost retransmissions not sent again yet: no longer in flight.
    pub(super) fn rack_relost_bytes(&self) -> u32 {
        if !(self.cc.in_recovery && self.cc.sack_mode) {
            return 0;
        }
        self.rack_relost().map(|(a, b)| b.distance_from(a)).sum()
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
    /// everything anyway, the lost retransmissions too).
    pub(super) fn rack_on_rto(&mut self) {
        self.timers.rack = None;
        if let Some(r) = self.rack.as_deref_mut() {
            r.log.clear_relost();
        }
    }
}
