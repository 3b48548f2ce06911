//! TIME-WAIT as compact records of their own, not full connection blocks (cf. Linux
//! `inet_timewait_sock` and `tcp_timewait_state_process`).
//!
//! Read RFC 9293 §3.10.7.4 (TIME-WAIT), RFC 1337 and RFC 6191 before editing. How the entries
//! are kept (a ring in arrival order, no timer per entry): `table`.

pub(crate) mod table;

use super::counters::DropReason;
use super::emit::OutSegment;
use super::secrets::{ts_clock, ts_offset};
use super::shard::{Shard, Verdict};
use super::tuple::FourTuple;
use super::TxSink;
use crate::time::Instant;
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};
use table::TwSlot;

/// What a connection leaves behind in TIME-WAIT, as the protocol reads it (the table keeps a
/// compact record of it: `table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwEntry {
    pub snd_nxt: SeqNum,
    pub rcv_nxt: SeqNum,
    /// TS.Recent, when timestamps were in use (RFC 6191 needs it).
    pub ts_recent: Option<u32>,
    pub ts_offset: u32,
    /// Window field for our ACKs (already scaled).
    pub window: u16,
    pub deadline: Instant,
    /// When the last rate-limited ACK went out (Linux `tw_last_oow_ack_time`).
    pub last_oow_ack: Option<Instant>,
}

/// What TIME-WAIT does with a segment (Linux `enum tcp_tw_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwVerdict {
    /// Answer with <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. `restart`: the 2·MSL timer starts
    /// again. `limited`: the answer is subject to the per-entry rate limit (`tcp_invalid_ratelimit`),
    /// as for any segment that could be part of an ACK loop.
    Ack { restart: bool, limited: bool },
    /// An acceptable bare ACK at RCV.NXT: restart 2·MSL and take its TSval as TS.Recent;
    /// nothing is sent.
    Refresh,
    /// A new SYN may reuse the tuple (RFC 6191): hand it to the listener; TIME-WAIT ends once
    /// the listener has taken it.
    Reuse,
    /// End TIME-WAIT now (an exact RST with `rfc1337` off).
    Kill,
    /// Drop silently.
    Drop(DropReason),
}

/// RFC 7323 §5.3 R1 where TS.Recent is `ts_recent` (None: timestamps are off): the segment's
/// TSval is older. A TIME-WAIT entry's and a SYN-queue entry's (the SYN's TSval) alike.
pub(super) fn paws_rejects(ts_recent: Option<u32>, seg: &TcpRepr<'_>) -> bool {
    match (ts_recent, seg.options.timestamps) {
        (Some(recent), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) < 0,
        _ => false,
    }
}

/// RFC 9293 §3.10.7.4 for TIME-WAIT, with RFC 1337, RFC 6191 and RFC 7323, in the order of
/// Linux's `tcp_timewait_state_process`.
pub fn on_segment(e: &TwEntry, seg: &TcpRepr<'_>, rfc1337: bool) -> TwVerdict {
    let f = seg.flags;
    if f.rst() {
        // RFC 1337 §3 (TIME-WAIT assassination hazard, fix "TW1"): ignore RST in TIME-WAIT.
        // Without it (Linux's default) only a RST at exactly RCV.NXT ends TIME-WAIT, as in every
        // other synchronized state (RFC 5961 §3).
        // A RST whose TSval PAWS rejects is an old duplicate and ends nothing (Linux
        // `tcp_timewait_state_process` kills only `!paws_reject`; `tcp_paws_reject` spares a
        // RST only when TS.Recent is over TCP_PAWS_MSL, 60 s, old, never the case in a
        // TIME-WAIT of 60 s).
        return if rfc1337 {
            TwVerdict::Drop(DropReason::TimeWaitRst)
        } else if paws_rejects(e.ts_recent, seg) {
            TwVerdict::Drop(DropReason::Paws)
        } else if seg.seq == e.rcv_nxt {
            TwVerdict::Kill
        } else {
            TwVerdict::Drop(DropReason::InvalidRst)
        };
    }
    let paws_reject = paws_rejects(e.ts_recent, seg);
    if f.syn() && !f.ack() && !paws_reject {
        // RFC 6191 §2 / RFC 1122 §4.2.2.13: a SYN may open a new incarnation when its sequence
        // number is above RCV.NXT, or, with timestamps on both sides, when its TSval is newer
        // than TS.Recent. Either is enough once PAWS passes (Linux accepts `after(seq,
        // rcv_nxt) || tsval newer`): a SYN with an equal TSval and a higher sequence number
        // reuses the tuple too. A TIME-WAIT entry without timestamps judges by sequence only.
        let ts_newer = match (e.ts_recent, seg.options.timestamps) {
            (Some(recent), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) > 0,
            _ => false,
        };
        if seg.seq.after(e.rcv_nxt) || ts_newer {
            return TwVerdict::Reuse;
        }
    }
    if !paws_reject && seg.seq == e.rcv_nxt && seg.segment_len() == 0 {
        // In the window, zero length: the peer ACKing our FIN again. Linux restarts the
        // 2·MSL timer ("it may be only reset or bare ack") and takes the TSval.
        return TwVerdict::Refresh;
    }
    // Anything else is unacceptable here (the retransmitted remote FIN among them):
    // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. Linux restarts the timer for any such segment with
    // an ACK, or one PAWS rejected, but not for an ACK-less SYN ("it may be both old
    // duplicate and new good SYN with random sequence number <rcv_nxt"). The answer is rate
    // limited unless the segment carries data or a FIN (`tcp_oow_rate_limited`: "data
    // packets without SYNs are not likely part of an ACK loop").
    let restart = paws_reject || f.ack();
    let limited = seg.segment_len() == 0 || f.syn();
    TwVerdict::Ack { restart, limited }
}

impl Shard {
    /// A segment for a tuple in TIME-WAIT (its entry is at `slot`). Returns `Err` with the ISS
    /// the new incarnation must use when the segment should go on to the listener (RFC 6191
    /// reuse).
    pub(crate) fn on_time_wait(
        &mut self,
        now: Instant,
        t: FourTuple,
        slot: TwSlot,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
    ) -> Result<Verdict, SeqNum> {
        let Some(e) = self.time_wait.entry(slot) else {
            return Ok(self.dropped(DropReason::NoListener));
        };
        let verdict = on_segment(&e, seg, self.cfg.rfc1337);
        if paws_rejects(e.ts_recent, seg) {
            self.counters.tcp_ext_paws_estab_rejected += 1;
        }
        match verdict {
            TwVerdict::Drop(r) => {
                if r == DropReason::TimeWaitRst {
                    self.counters.tcp_ext_tw_rst_ignored += 1;
                }
                Ok(self.dropped(r))
            }
            TwVerdict::Ack { restart, limited } => {
                let slot = if restart { self.restart_time_wait(now, slot) } else { slot };
                if limited && !self.time_wait.oow_ack_allowed(slot, now, self.cfg.invalid_ratelimit) {
                    // RFC 5961 §7 / Linux `tcp_timewait_check_oow_rate_limit`.
                    self.counters.tcp_ext_tcp_ack_skipped_time_wait += 1;
                    return Ok(Verdict::Consumed);
                }
                self.send_tw_ack(now, &t, &e, tx);
                Ok(Verdict::Consumed)
            }
            TwVerdict::Refresh => {
                let slot = self.restart_time_wait(now, slot);
                if let Some((tsval, _)) = seg.options.timestamps {
                    self.time_wait.set_ts_recent(slot, tsval);
                }
                Ok(Verdict::Consumed)
            }
            TwVerdict::Kill => {
                self.time_wait.remove(slot);
                self.touched(&t);
                Ok(Verdict::Consumed)
            }
            TwVerdict::Reuse => {
                // Linux `tcp_timewait_state_process`: the new ISS is well above the old
                // SND.NXT, so old duplicates of the previous incarnation stay outside the window.
                Err(e.snd_nxt.add(65535 + 2))
            }
        }
    }

    /// 2·MSL starts again for the entry at `slot`; returns where it is now.
    fn restart_time_wait(&mut self, now: Instant, slot: TwSlot) -> TwSlot {
        // Restarts may double the ring at most (see `table`).
        let max_slots = self.cfg.max_tw_buckets.saturating_mul(2);
        self.time_wait.restart(slot, now, max_slots)
    }

    /// A SYN that could reuse the tuple was not taken by a listener: TIME-WAIT stays and
    /// answers it as an unacceptable segment (RFC 9293 §3.10.7.4, TIME-WAIT).
    pub(crate) fn time_wait_keep(&mut self, now: Instant, t: &FourTuple, tx: &mut dyn TxSink) {
        // Linux (`TCP_TW_SYN` with no listener) answers with `tcp_v4_timewait_ack`, not rate
        // limited, and leaves the limiter's stamp alone.
        if let Some(e) = self.time_wait.find(t).and_then(|s| self.time_wait.entry(s)) {
            self.send_tw_ack(now, t, &e, tx);
        }
    }

    /// The SYN that reused the tuple was taken: TIME-WAIT ends (RFC 6191).
    pub(crate) fn time_wait_reused(&mut self, t: &FourTuple) {
        if let Some(s) = self.time_wait.find(t) {
            self.time_wait.remove(s);
            self.counters.tcp_ext_tw_recycled += 1;
            self.touched(t);
        }
    }

    /// Moves a connection's TIME-WAIT to the table, unless `tcp_max_tw_buckets` entries are
    /// there already: then, as Linux's `tcp_time_wait` does when `inet_twsk_alloc` finds the
    /// bucket count at the limit, the connection just closes (TcpExtTCPTimeWaitOverflow).
    pub(crate) fn enter_time_wait_table(&mut self, t: &FourTuple, e: &TwEntry) {
        if self.time_wait.len() >= self.cfg.max_tw_buckets {
            self.counters.tcp_ext_tcp_time_wait_overflow += 1;
            return;
        }
        // The table keeps no timestamp offset: it derives the one the connection used.
        debug_assert!(e.ts_recent.is_none() || e.ts_offset == ts_offset(&self.secrets.ts_key, t));
        self.time_wait.insert(t, e);
    }

    fn send_tw_ack(&mut self, now: Instant, t: &FourTuple, e: &TwEntry, tx: &mut dyn TxSink) {
        let options = TcpOptions {
            timestamps: e.ts_recent.map(|r| (ts_clock(now).wrapping_add(ts_offset(&self.secrets.ts_key, t)), r)),
            ..TcpOptions::default()
        };
        let seg = OutSegment { options, ..OutSegment::control(e.snd_nxt, e.rcv_nxt, TcpFlags::ACK, e.window) };
        self.transmit_raw(t, &seg, tx);
    }

    /// TIME-WAIT TIMEOUT (RFC 9293 §3.10.8): deletes every entry due at `now`.
    pub(crate) fn expire_time_wait(&mut self, now: Instant) {
        while let Some(t) = self.time_wait.pop_expired(now) {
            self.touched(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> TwEntry {
        TwEntry {
            snd_nxt: SeqNum(5000),
            rcv_nxt: SeqNum(9000),
            ts_recent: Some(100),
            ts_offset: 0,
            window: 1000,
            deadline: Instant::from_secs(60),
            last_oow_ack: None,
        }
    }

    fn seg(seq: u32, flags: TcpFlags, ts: Option<u32>) -> TcpRepr<'static> {
        TcpRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNum(seq),
            ack: SeqNum(5000),
            flags,
            window: 100,
            urgent: 0,
            options: TcpOptions { timestamps: ts.map(|v| (v, 0)), ..TcpOptions::default() },
            payload: &[],
        }
    }

    #[test]
    fn rst_is_ignored_under_rfc1337() {
        assert_eq!(
            on_segment(&entry(), &seg(9000, TcpFlags::RST, None), true),
            TwVerdict::Drop(DropReason::TimeWaitRst)
        );
        // With rfc1337 off, only an exact RST ends it.
        assert_eq!(on_segment(&entry(), &seg(9000, TcpFlags::RST, None), false), TwVerdict::Kill);
        assert_eq!(
            on_segment(&entry(), &seg(9000 + 12345, TcpFlags::RST, None), false),
            TwVerdict::Drop(DropReason::InvalidRst)
        );
    }

    /// RFC 6191 with Linux's rule, every combination: once PAWS passes, a higher sequence
    /// number or a newer TSval is enough.
    #[test]
    fn rfc6191_syn_reuse_table() {
        let syn = TcpFlags::SYN;
        let ack = TwVerdict::Ack { restart: false, limited: true };
        let paws = TwVerdict::Ack { restart: true, limited: true };
        // (seq, tsval, entry has timestamps, expected)
        let rows: [(u32, Option<u32>, bool, TwVerdict); 11] = [
            (1, Some(101), true, TwVerdict::Reuse),    // lower seq, newer TSval
            (9001, Some(100), true, TwVerdict::Reuse), // higher seq, equal TSval
            (9001, Some(101), true, TwVerdict::Reuse), // both
            (9000, Some(100), true, ack),              // equal seq, equal TSval
            (8000, Some(100), true, ack),              // lower seq, equal TSval
            (99_999, Some(99), true, paws),            // higher seq, but PAWS rejects
            (1, Some(99), true, paws),                 // older on both counts
            (9001, None, true, TwVerdict::Reuse),      // SYN without timestamps: by seq
            (8000, None, true, ack),
            (9001, Some(5), false, TwVerdict::Reuse), // entry without timestamps: by seq
            (8000, Some(500), false, ack),
        ];
        for (seq, ts, entry_ts, want) in rows {
            let e = if entry_ts { entry() } else { TwEntry { ts_recent: None, ..entry() } };
            assert_eq!(on_segment(&e, &seg(seq, syn, ts), true), want, "seq {seq} tsval {ts:?} entry ts {entry_ts}");
        }
    }

    #[test]
    fn retransmitted_fin_restarts_the_timer_and_is_always_answered() {
        assert_eq!(
            on_segment(&entry(), &seg(8999, TcpFlags::FIN | TcpFlags::ACK, Some(100)), true),
            TwVerdict::Ack { restart: true, limited: false }
        );
    }

    /// Linux: a bare ACK at RCV.NXT restarts 2·MSL and answers nothing; an out-of-window ACK
    /// restarts it and draws a rate-limited ACK.
    #[test]
    fn acks_in_time_wait() {
        assert_eq!(on_segment(&entry(), &seg(9000, TcpFlags::ACK, Some(100)), true), TwVerdict::Refresh);
        assert_eq!(
            on_segment(&entry(), &seg(123, TcpFlags::ACK, Some(100)), true),
            TwVerdict::Ack { restart: true, limited: true }
        );
        // PAWS rejects an old TSval even at RCV.NXT.
        assert_eq!(
            on_segment(&entry(), &seg(9000, TcpFlags::ACK, Some(50)), true),
            TwVerdict::Ack { restart: true, limited: true }
        );
    }
}
