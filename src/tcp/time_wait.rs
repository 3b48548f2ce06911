//! TIME-WAIT as compact records of their own, not full connection blocks (cf. Linux
//! `inet_timewait_sock` and `tcp_timewait_state_process`).
//!
//! Read RFC 9293 §3.10.7.4 (TIME-WAIT), RFC 1337 and RFC 6191 before editing.

use super::counters::DropReason;
use super::emit::OutSegment;
use super::secrets::ts_clock;
use super::shard::{Shard, TimerKey, Verdict};
use super::tuple::FourTuple;
use super::TxSink;
use crate::time::Instant;
use crate::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// What a connection leaves behind in TIME-WAIT.
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
}

/// What TIME-WAIT does with a segment (Linux `enum tcp_tw_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwVerdict {
    /// Send <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    Ack,
    /// The retransmitted FIN: ACK it and restart 2·MSL.
    AckRestart,
    /// A new SYN may reuse the tuple (RFC 6191): hand it to the listener; TIME-WAIT ends once
    /// the listener has taken it.
    Reuse,
    /// End TIME-WAIT now (an exact RST with `rfc1337` off).
    Kill,
    /// Drop silently.
    Drop(DropReason),
}

/// RFC 9293 §3.10.7.4 for TIME-WAIT, with RFC 1337 and RFC 6191.
pub fn on_segment(e: &TwEntry, seg: &TcpRepr<'_>, rfc1337: bool) -> TwVerdict {
    let f = seg.flags;
    if f.rst() {
        // RFC 1337 §3 (TIME-WAIT assassination hazard, fix "TW1"): ignore RST in TIME-WAIT.
        // Without it (Linux's default) only a RST at exactly RCV.NXT ends TIME-WAIT, as in every
        // other synchronized state (RFC 5961 §3).
        return if rfc1337 {
            TwVerdict::Drop(DropReason::TimeWaitRst)
        } else if seg.seq == e.rcv_nxt {
            TwVerdict::Kill
        } else {
            TwVerdict::Drop(DropReason::InvalidRst)
        };
    }
    if f.syn() && !f.ack() {
        // RFC 6191 §2: with timestamps, a SYN whose TSval is greater than TS.Recent may open a
        // new incarnation; without them, one whose sequence number is above RCV.NXT (the
        // RFC 1122 §4.2.2.13 rule).
        let newer = match (e.ts_recent, seg.options.timestamps) {
            (Some(recent), Some((tsval, _))) => (tsval.wrapping_sub(recent) as i32) > 0,
            _ => seg.seq.after(e.rcv_nxt),
        };
        return if newer { TwVerdict::Reuse } else { TwVerdict::Ack };
    }
    // The only thing expected here: a retransmission of the remote FIN.
    if f.fin() && seg.seq.add(seg.payload.len() as u32).add(1) == e.rcv_nxt {
        return TwVerdict::AckRestart;
    }
    // An acceptable bare ACK (the peer ACKing our FIN again) needs nothing.
    if f.ack() && seg.payload.is_empty() && !f.fin() && seg.seq == e.rcv_nxt {
        return TwVerdict::Drop(DropReason::OutOfWindow);
    }
    // Anything else is unacceptable: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    TwVerdict::Ack
}

impl Shard {
    /// A segment for a tuple in TIME-WAIT. Returns `None` when the segment should go on to the
    /// listener (RFC 6191 reuse), with the ISS the new incarnation must use.
    pub(crate) fn on_time_wait(
        &mut self,
        now: Instant,
        t: FourTuple,
        seg: &TcpRepr<'_>,
        tx: &mut dyn TxSink,
    ) -> Result<Verdict, SeqNum> {
        let Some(e) = self.time_wait.get(&t).copied() else {
            return Ok(self.dropped(DropReason::NoListener));
        };
        match on_segment(&e, seg, self.cfg.rfc1337) {
            TwVerdict::Drop(r) => {
                if r == DropReason::TimeWaitRst {
                    self.counters.tcp_ext_tw_rst_ignored += 1;
                }
                Ok(self.dropped(r))
            }
            TwVerdict::Ack => {
                self.send_tw_ack(now, &t, &e, tx);
                Ok(Verdict::Consumed)
            }
            TwVerdict::AckRestart => {
                let deadline = now + self.cfg.time_wait;
                if let Some(x) = self.time_wait.get_mut(&t) {
                    x.deadline = deadline;
                }
                self.schedule(TimerKey::Tw(t), deadline);
                self.send_tw_ack(now, &t, &e, tx);
                Ok(Verdict::Consumed)
            }
            TwVerdict::Kill => {
                self.time_wait.remove(&t);
                Ok(Verdict::Consumed)
            }
            TwVerdict::Reuse => {
                // Linux `tcp_timewait_state_process`: the new ISS is well above the old
                // SND.NXT, so old duplicates of the previous incarnation stay outside the window.
                Err(e.snd_nxt.add(65535 + 2))
            }
        }
    }

    /// A SYN that could reuse the tuple was not taken by a listener: TIME-WAIT stays and
    /// answers it as an unacceptable segment (RFC 9293 §3.10.7.4, TIME-WAIT).
    pub(crate) fn time_wait_keep(&mut self, now: Instant, t: &FourTuple, tx: &mut dyn TxSink) {
        if let Some(e) = self.time_wait.get(t).copied() {
            self.send_tw_ack(now, t, &e, tx);
        }
    }

    /// The SYN that reused the tuple was taken: TIME-WAIT ends (RFC 6191).
    pub(crate) fn time_wait_reused(&mut self, t: &FourTuple) {
        if self.time_wait.remove(t).is_some() {
            self.counters.tcp_ext_tw_recycled += 1;
        }
    }

    fn send_tw_ack(&mut self, now: Instant, t: &FourTuple, e: &TwEntry, tx: &mut dyn TxSink) {
        let options = TcpOptions {
            timestamps: e.ts_recent.map(|r| (ts_clock(now).wrapping_add(e.ts_offset), r)),
            ..TcpOptions::default()
        };
        let seg = OutSegment { options, ..OutSegment::control(e.snd_nxt, e.rcv_nxt, TcpFlags::ACK, e.window) };
        self.transmit_raw(t, &seg, tx);
    }

    /// TIME-WAIT TIMEOUT: delete the entry.
    pub(crate) fn on_tw_timer(&mut self, now: Instant, t: FourTuple) {
        let Some(e) = self.time_wait.get(&t).copied() else {
            return;
        };
        if e.deadline > now {
            self.schedule(TimerKey::Tw(t), e.deadline);
            return;
        }
        self.time_wait.remove(&t);
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

    #[test]
    fn rfc6191_syn_reuse_by_timestamp() {
        assert_eq!(on_segment(&entry(), &seg(1, TcpFlags::SYN, Some(101)), true), TwVerdict::Reuse);
        assert_eq!(on_segment(&entry(), &seg(99_999, TcpFlags::SYN, Some(99)), true), TwVerdict::Ack);
    }

    #[test]
    fn rfc6191_syn_reuse_by_sequence_without_timestamps() {
        let e = TwEntry { ts_recent: None, ..entry() };
        assert_eq!(on_segment(&e, &seg(9001, TcpFlags::SYN, None), true), TwVerdict::Reuse);
        assert_eq!(on_segment(&e, &seg(8000, TcpFlags::SYN, None), true), TwVerdict::Ack);
    }

    #[test]
    fn retransmitted_fin_restarts_the_timer() {
        assert_eq!(
            on_segment(&entry(), &seg(8999, TcpFlags::FIN | TcpFlags::ACK, Some(100)), true),
            TwVerdict::AckRestart
        );
    }
}
