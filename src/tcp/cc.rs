//! NewReno congestion control: RFC 5681 (slow start, congestion avoidance, fast retransmit /
//! fast recovery) with the RFC 6582 modification for partial acknowledgments.

use crate::wire::SeqNum;

#[derive(Debug, Clone)]
pub struct NewReno {
    pub cwnd: u32,
    pub ssthresh: u32,
    pub dupacks: u32,
    /// RFC 6582 "recover": highest sequence sent when recovery began.
    pub recover: SeqNum,
    pub in_recovery: bool,
    /// The recovery is RFC 6675's (SACK): the pipe, not window inflation, clocks what is sent,
    /// and a partial ACK needs no retransmission of its own here.
    pub sack_mode: bool,
    /// A retransmission timeout's recovery is under way: from the timeout until SND.UNA
    /// reaches "recover" (RFC 8985 §6.2 step 4 "RTO recovery"; Linux's Loss state).
    pub rto_recovery: bool,
    /// Bytes acknowledged in congestion avoidance not yet turned into window growth.
    acked_accum: u32,
}

/// What the sender must do after an acknowledgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcAction {
    None,
    /// Retransmit the segment at SND.UNA now (fast retransmit, or a NewReno partial ACK).
    RetransmitFirst,
}

impl NewReno {
    /// RFC 5681 §3.1: IW from RFC 6928 (`initial_cwnd` segments); ssthresh starts "arbitrarily
    /// high".
    pub fn new(mss: u32, initial_cwnd: u32, iss: SeqNum) -> Self {
        NewReno {
            cwnd: mss.saturating_mul(initial_cwnd.max(1)),
            ssthresh: u32::MAX,
            dupacks: 0,
            recover: iss,
            in_recovery: false,
            sack_mode: false,
            rto_recovery: false,
            acked_accum: 0,
        }
    }

    /// A fast recovery or a timeout's recovery is under way.
    pub fn is_recovering(&self) -> bool {
        self.in_recovery || self.rto_recovery
    }

    /// An ACK advanced SND.UNA by `acked` bytes to `snd_una`. `flight` is what remains in flight.
    pub fn on_ack(&mut self, acked: u32, snd_una: SeqNum, flight: u32, mss: u32) -> CcAction {
        self.dupacks = 0;
        if self.rto_recovery && snd_una.after_eq(self.recover) {
            self.rto_recovery = false;
        }
        if self.in_recovery {
            if snd_una.after_eq(self.recover) {
                // Full acknowledgment. SACK recovery ends at ssthresh, as Linux ends its
                // reduction (`tcp_end_cwnd_reduction`); NewReno deflates by RFC 6582 §3.2 (3)
                // option 1, min(ssthresh, max(FlightSize, SMSS) + SMSS): never below two
                // segments, so an emptied flight does not restart at one.
                self.cwnd = if self.sack_mode {
                    self.ssthresh.max(mss)
                } else {
                    self.ssthresh.min(flight.max(mss).saturating_add(mss)).max(mss)
                };
                self.in_recovery = false;
                self.sack_mode = false;
                return CcAction::None;
            }
            if self.sack_mode {
                // RFC 6675 §5 (C): the sender's NextSeg loop fills the holes.
                return CcAction::None;
            }
            // RFC 6582 §3.2 (3): partial acknowledgment; retransmit the next hole, deflate by
            // the amount acked, add back one MSS.
            self.cwnd = self.cwnd.saturating_sub(acked).saturating_add(mss).max(mss);
            return CcAction::RetransmitFirst;
        }
        // "recover" only has to stay at or below SND.UNA - 1 once recovery is over. Drag it
        // along, or after 2^31 bytes without a loss it would lie "ahead" of SND.UNA in serial
        // arithmetic (RFC 9293 §3.4) and three duplicate ACKs would never start a recovery.
        if snd_una.sub(1).after(self.recover) {
            self.recover = snd_una.sub(1);
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 (2) slow start, counting bytes acknowledged (RFC 3465 appropriate
            // byte counting with L = 2 SMSS, which RFC 5681 permits).
            self.cwnd = self.cwnd.saturating_add(acked.min(mss.saturating_mul(2)));
        } else {
            // RFC 5681 §3.1 (3): about one SMSS per RTT, by counting bytes acknowledged.
            self.acked_accum = self.acked_accum.saturating_add(acked);
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
        CcAction::None
    }

    /// A duplicate ACK (RFC 5681 §2 definition). `snd_max` is the highest sequence sent.
    pub fn on_dupack(&mut self, snd_una: SeqNum, snd_max: SeqNum, flight: u32, mss: u32) -> CcAction {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.in_recovery {
            // RFC 5681 §3.2 (4): inflate for each further duplicate (RFC 6675 counts the
            // pipe instead).
            if !self.sack_mode {
                self.cwnd = self.cwnd.saturating_add(mss);
            }
            return CcAction::None;
        }
        // RFC 6582 §3.2 (2): enter fast retransmit only if the ACK covers more than "recover"
        // (avoids a second reduction for losses from the same window).
        if self.dupacks == 3 && snd_una.sub(1).after_eq(self.recover) {
            self.ssthresh = (flight / 2).max(mss.saturating_mul(2));
            self.recover = snd_max;
            self.cwnd = self.ssthresh.saturating_add(mss.saturating_mul(3));
            self.in_recovery = true;
            return CcAction::RetransmitFirst;
        }
        CcAction::None
    }

    /// A duplicate ACK (RFC 6675 §2 definition) when SACK is in use: only counted; the caller
    /// decides on recovery from the scoreboard.
    pub fn count_dupack(&mut self) {
        self.dupacks = self.dupacks.saturating_add(1);
    }

    /// RFC 6675 §5 (4.1)/(4.2): enter SACK-based loss recovery. RecoveryPoint = HighData;
    /// ssthresh = cwnd = FlightSize / 2 (RFC 5681 equation (4)). Linux reduces the window
    /// gradually with PRR (RFC 6937, `tcp_cwnd_reduction`) instead; RFC 6675's step is what
    /// the issue asks for and is simpler to reason about.
    pub fn enter_sack_recovery(&mut self, snd_max: SeqNum, flight: u32, mss: u32) {
        self.ssthresh = (flight / 2).max(mss.saturating_mul(2));
        self.cwnd = self.ssthresh;
        self.recover = snd_max;
        self.in_recovery = true;
        self.sack_mode = true;
    }

    /// RFC 8985 §7.4.2: a loss probe repaired a loss, a congestion signal without a recovery
    /// episode. Linux (`tcp_process_tlp_ack`) runs a one-shot CWR reduction: ssthresh from
    /// the window, cwnd down to it; RFC 5681 equation (4) gives the same step here.
    pub fn on_probe_repaired(&mut self, flight: u32, mss: u32) {
        self.ssthresh = (self.cwnd.max(flight) / 2).max(mss.saturating_mul(2));
        self.cwnd = self.cwnd.min(self.ssthresh);
        self.acked_accum = 0;
    }

    /// RFC 6582 §3.2 (2) / RFC 6675 §5: a new recovery may start only once SND.UNA passed the
    /// previous RecoveryPoint.
    pub fn may_recover(&self, snd_una: SeqNum) -> bool {
        // `recover` is one past the highest byte sent when the last recovery began: an ACK
        // that reaches it covers all of it (RFC 6582 "covers more than recover", RFC 6675
        // RecoveryPoint = HighData), and the next loss may start a recovery at once.
        !self.in_recovery && snd_una.after_eq(self.recover)
    }

    /// A further timeout for the same data: back to one segment, ssthresh kept.
    pub fn on_repeated_rto(&mut self, mss: u32) {
        self.cwnd = mss;
        self.rto_recovery = true;
        self.in_recovery = false;
        self.sack_mode = false;
        self.dupacks = 0;
        self.acked_accum = 0;
    }

    /// RFC 5681 §3.1 (4): the retransmission timer expired.
    pub fn on_rto(&mut self, snd_max: SeqNum, flight: u32, mss: u32) {
        self.ssthresh = (flight / 2).max(mss.saturating_mul(2));
        self.cwnd = mss;
        self.recover = snd_max;
        self.rto_recovery = true;
        self.in_recovery = false;
        self.sack_mode = false;
        self.dupacks = 0;
        self.acked_accum = 0;
    }
}

#[cfg(test)]
mod tests {

    /// A review finding: an ACK landing exactly on the previous recovery point must let the
    /// next loss start a recovery (it used to need one byte more, leaving it to the RTO).
    #[test]
    fn a_new_recovery_may_start_once_snd_una_reaches_the_old_recovery_point() {
        let mut cc = NewReno::new(1000, 10, SeqNum(0));
        cc.enter_sack_recovery(SeqNum(10_000), 10_000, 1000);
        assert!(!cc.may_recover(SeqNum(5_000)));
        let _ = cc.on_ack(10_000, SeqNum(10_000), 0, 1000);
        assert!(cc.may_recover(SeqNum(10_000)));
        assert!(cc.cwnd >= cc.ssthresh, "SACK recovery ends at ssthresh, not one segment");
    }

    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = NewReno::new(MSS, 10, SeqNum(0));
        assert_eq!(c.cwnd, 10_000);
        c.on_ack(1000, SeqNum(1001), 9000, MSS);
        assert_eq!(c.cwnd, 11_000);
        c.ssthresh = 11_000;
        for _ in 0..11 {
            c.on_ack(1000, SeqNum(5000), 5000, MSS);
        }
        assert_eq!(c.cwnd, 12_000);
    }

    #[test]
    fn three_dupacks_then_partial_then_full_ack() {
        let mut c = NewReno::new(MSS, 10, SeqNum(0));
        let una = SeqNum(1001);
        let max = SeqNum(11_001);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::RetransmitFirst);
        assert_eq!(c.ssthresh, 5000);
        assert_eq!(c.cwnd, 8000);
        c.on_dupack(una, max, 10_000, MSS);
        assert_eq!(c.cwnd, 9000);
        assert_eq!(c.on_ack(2000, SeqNum(3001), 8000, MSS), CcAction::RetransmitFirst);
        assert!(c.in_recovery);
        assert_eq!(c.on_ack(8000, max, 0, MSS), CcAction::None);
        assert!(!c.in_recovery);
        // RFC 6582 §3.2 (3) option 1: min(ssthresh, max(FlightSize, SMSS) + SMSS).
        assert_eq!(c.cwnd, 2000);
    }

    /// RFC 6582 §3.2 (2) after the sequence space wrapped: 3 GiB acknowledged without a loss
    /// (more than 2^31 past the initial "recover"), then three duplicate ACKs must still start
    /// a fast retransmit.
    #[test]
    fn fast_retransmit_after_more_than_2_31_bytes() {
        let iss = SeqNum(0x1000);
        let mut c = NewReno::new(MSS, 10, iss);
        c.ssthresh = 10_000;
        let mut una = iss.add(1);
        for _ in 0..3 * 1024 {
            una = una.add(1 << 20);
            c.on_ack(1 << 20, una, 10_000, MSS);
        }
        assert!(una.diff(iss) < 0, "the test must cross 2^31");
        let max = una.add(10_000);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::RetransmitFirst);
    }

    #[test]
    fn timeout_collapses_window() {
        let mut c = NewReno::new(MSS, 10, SeqNum(0));
        c.on_rto(SeqNum(10_000), 10_000, MSS);
        assert_eq!((c.cwnd, c.ssthresh), (1000, 5000));
    }
}
