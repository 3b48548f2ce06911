//! Tail Loss Probe (RFC 8985 §7): when the last segments of a flight are lost no ACK comes
//! back to start a fast recovery, and the sender would wait for the retransmission timer. A
//! probe timer (PTO) of about two round trips fires first and sends one segment, whose ACK
//! (with SACK) reveals the loss so that recovery, not the timer, repairs it.
//!
//! Read RFC 8985 §7 before editing. Where the RFC leaves a choice this follows Linux's
//! default (`tcp_early_retrans` = 3: `tcp_schedule_loss_probe`, `tcp_send_loss_probe`,
//! `tcp_process_tlp_ack`).

use super::{Ctx, Tcb};
use crate::tcp::sack::SackUpdate;
use crate::tcp::state::State;
use crate::time::Duration;
use crate::wire::SeqNum;

/// RFC 8985 §7.2 WCDelAckT, the worst-case delayed-ACK timer added when one segment is in
/// flight (its ACK may be delayed). Linux adds `TCP_RTO_MIN`, 200 ms.
const WORST_CASE_DELACK: Duration = Duration::from_millis(200);
/// Linux adds `TCP_TIMEOUT_MIN` (2 ms) to 2·SRTT when more than one segment is in flight.
const PTO_SLACK: Duration = Duration::from_millis(2);
/// RFC 8985 §7.2: the PTO when no RTT sample exists yet (Linux `TCP_TIMEOUT_INIT`, 1 s).
const PTO_NO_RTT: Duration = Duration::from_secs(1);

/// One loss probe episode (RFC 8985 §7.4: TLP.end_seq and TLP.is_retrans). 8 bytes, so that
/// `Option<TlpEpisode>` is 8 too.
#[derive(Debug, Clone, Copy)]
pub(super) struct TlpEpisode {
    /// SND.NXT when the probe went out.
    end: SeqNum,
    probe: Probe,
}

/// What the probe sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    /// A new segment.
    NewData,
    /// The last segment again, ending at TLP.end_seq: its length (FIN included) less one. A
    /// segment holds one octet at least and at most one SMSS plus a FIN, 65,536 at worst
    /// (an MSS option has 16 bits), so the length less one fits.
    Retrans(u16),
}

impl TlpEpisode {
    /// Start of the retransmitted segment, for a probe that re-sent the last segment.
    fn retrans_from(&self) -> Option<SeqNum> {
        match self.probe {
            Probe::NewData => None,
            Probe::Retrans(n) => Some(self.end.sub(u32::from(n) + 1)),
        }
    }
}

impl Tcb {
    /// RFC 8985 §7.2: arm the PTO in place of the RTO when a probe may be sent. Called after
    /// new data went out and after an ACK that advanced SND.UNA re-armed the RTO. The RTO
    /// deadline stays set behind the PTO, which is never later (Linux caps the PTO at the
    /// time left on the RTO): when the PTO fires it re-arms the RTO.
    pub(super) fn schedule_loss_probe(&mut self, ctx: &Ctx<'_>) {
        self.timers.pto = None;
        // Linux: TLP needs SACK (a probe's ACK without SACK shows nothing) and the "Open"
        // state: no recovery, no timeout being repaired (go-back-N pulls SND.NXT back).
        let open = matches!(
            self.state,
            State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
        );
        if !ctx.cfg.tlp || !self.sack_ok || !open || !self.syn_acked {
            return;
        }
        if self.cc.in_recovery || self.retries > 0 || self.snd_nxt != self.snd_max || self.flight() == 0 {
            return;
        }
        // One probe at a time (RFC 8985 §7.3): while an episode is open the RTO stands.
        if self.tlp.is_some() {
            return;
        }
        let Some(rto_at) = self.timers.rto else { return };
        let pto = match self.rtt.srtt() {
            Some(srtt) if self.flight() <= self.smss => srtt.saturating_mul(2) + WORST_CASE_DELACK,
            Some(srtt) => srtt.saturating_mul(2) + PTO_SLACK,
            None => PTO_NO_RTT,
        };
        self.timers.pto = Some((ctx.now + pto).min(rto_at));
    }

    /// RFC 8985 §7.3: the PTO fired. Send one new segment if the receive window allows
    /// (cwnd is not checked: Linux forces one segment out for the probe), else re-send the
    /// last segment sent. Then the RTO is armed again.
    pub(super) fn on_pto(&mut self, ctx: &mut Ctx<'_>) {
        if self.tlp.is_some() || self.cc.in_recovery || self.retries > 0 || self.snd_una == self.snd_max {
            return;
        }
        let before = self.snd_max;
        let mut probe = Probe::NewData;
        if !self.send_new_one(ctx) {
            // The last segment: at most one payload's worth ending at SND.MAX (a FIN in it
            // is sent again by `retransmit_at`).
            let fin = u32::from(self.fin_queued && !self.fin_acked && self.snd_max.after(self.fin_seq()));
            let data_end = self.snd_max.sub(fin);
            let start = data_end.sub(data_end.distance_from(self.snd_una).min(self.payload_room()));
            // A last segment the peer SACKed already needs no probe (its ACK came back); nor
            // does one that cannot be sent. The RTO, still armed behind the PTO, takes over.
            let sacked = self.sb().highest_sacked().is_some_and(|h| !h.before(data_end));
            // Nor one that starts at or past the peer's window edge (a zero window): Linux's
            // `__tcp_retransmit_skb` refuses it unless it starts at SND.UNA.
            let wnd_end = self.snd_una.add(self.snd_wnd);
            let beyond_window = start != self.snd_una && !start.before(wnd_end);
            if sacked || beyond_window || self.retransmit_at(ctx, start, self.payload_room()) == 0 {
                return;
            }
            let len = self.snd_max.distance_from(start);
            probe = Probe::Retrans(u16::try_from(len.saturating_sub(1)).unwrap_or(u16::MAX));
        }
        debug_assert!(probe != Probe::NewData || self.snd_max.after(before));
        ctx.counters.tcp_ext_tcp_loss_probes += 1;
        self.tlp = Some(TlpEpisode { end: self.snd_max, probe });
        self.restart_rto(ctx.now);
        self.timers.pto = None;
    }

    /// RFC 8985 §7.4.2: the ACK's D-SACK reports the probe's retransmission as a duplicate, so
    /// the original and the probe both arrived. Linux (`tcp_dsack_seen` setting
    /// `FLAG_DSACK_TLP`) takes a D-SACK for the probe to be one that ends at TLP.end_seq and
    /// is no longer than a segment; a D-SACK for anything else says nothing about the probe.
    pub(super) fn tlp_probe_dsacked(&self, sack: SackUpdate) -> bool {
        match (self.tlp, sack.dsack) {
            (Some(ep), Some((s, e))) => e == ep.end && e.distance_from(s) <= self.smss,
            _ => false,
        }
    }

    /// RFC 8985 §7.4.2: on an acceptable ACK while a probe episode is open, decide whether the
    /// probe repaired a loss. A SACK that covers a retransmitted probe while holes lie below
    /// it also marks those holes lost (RFC 8985 §6.2: they were sent a PTO or more before a
    /// segment that arrived, more than any reordering window), so SACK recovery starts now.
    /// `advanced` says SND.UNA moved; `pure_dup` that the ACK was a duplicate without SACK
    /// information.
    pub(super) fn tlp_on_ack(&mut self, ctx: &mut Ctx<'_>, ack: SeqNum, sack: SackUpdate, pure_dup: bool) {
        let Some(ep) = self.tlp else { return };
        if let Some(from) = ep.retrans_from() {
            let probe_sacked = self.sb().ranges().iter().any(|r| !r.0.after(from) && !r.1.before(ep.end));
            if probe_sacked && self.snd_una.before(from) {
                if let Some(sb) = &mut self.scoreboard {
                    sb.mark_lost_to(from);
                }
            }
        }
        if ack.before(ep.end) {
            return;
        }
        if ep.probe == Probe::NewData || self.tlp_probe_dsacked(sack) {
            // New data delivered, or a D-SACK for the probe: the original and the probe both
            // arrived. A D-SACK for other data (a duplicate the network made, an earlier
            // spurious retransmission) leaves the episode to the next rules.
            self.tlp = None;
        } else if ack.after(ep.end) {
            // The ACK passed the probe with no D-SACK for it: the probe repaired a loss.
            ctx.counters.tcp_ext_tcp_loss_probe_recovery += 1;
            let flight = self.flight();
            self.cc.on_probe_repaired(flight, self.smss);
            self.tlp = None;
        } else if pure_dup {
            self.tlp = None;
        }
        // ACK = TLP.end_seq that advanced SND.UNA: wait (a D-SACK for the probe may follow).
    }
}
