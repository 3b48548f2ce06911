//! Congestion control: RFC 5681 (slow start, congestion avoidance, fast retransmit / fast
//! recovery) with the RFC 6582 modification for partial acknowledgments, and the window's
//! growth and decrease either Reno's (RFC 5681) or CUBIC's (RFC 9438, Linux's default).

use super::config::CongestionControl;
use crate::time::Duration;
use crate::wire::SeqNum;

/// RFC 9438 §4.6 β_cubic: the window keeps 0.7 of itself at a loss (Linux 717/1024); the
/// decrease itself is computed in integers as 7/10.
const CUBIC_BETA: f64 = 0.7;
/// RFC 9438 §4.2 C, in segments per second cubed.
const CUBIC_C: f64 = 0.4;
/// `Congestion::flags`.
const CUBIC: u8 = 1;
const EPOCH_OPEN: u8 = 2;
const DUPACKS_SHIFT: u8 = 2;
const DUPACKS_MAX: u8 = u8::MAX >> DUPACKS_SHIFT;

#[derive(Debug, Clone)]
pub struct Congestion {
    pub cwnd: u32,
    pub ssthresh: u32,
    /// RFC 6582 "recover": highest sequence sent when recovery began.
    pub recover: SeqNum,
    pub in_recovery: bool,
    /// The recovery is RFC 6675's (SACK): the pipe, not window inflation, clocks what is sent,
    /// and a partial ACK needs no retransmission of its own here.
    pub sack_mode: bool,
    /// A retransmission timeout's recovery is under way: from the timeout until SND.UNA
    /// reaches "recover" (RFC 8985 §6.2 step 4 "RTO recovery"; Linux's Loss state).
    pub rto_recovery: bool,
    /// cwnd before the last timeout in segments, restored if it proves spurious (RFC 4015 §3,
    /// Linux's `tcp_undo_cwnd_reduction`); 0 once F-RTO (RFC 5682, SACK-enhanced, §3; Linux's
    /// default `tcp_frto` = 2) has judged the first acknowledgment after it, or when it was
    /// not armed. Segments, as Linux keeps them, keep the TCB within its size budget.
    prior_cwnd_segs: u16,
    /// ssthresh before the last timeout in segments (`u16::MAX`: no limit).
    prior_ssthresh_segs: u16,
    /// Bytes acknowledged in congestion avoidance not yet turned into window growth.
    acked_accum: u32,
    /// `CUBIC` (RFC 9438 rather than Reno growth and decrease), `EPOCH_OPEN` (CUBIC: a
    /// congestion-avoidance epoch is running, from `epoch_ms`) and, above them, the count of
    /// duplicate ACKs (saturating at `DUPACKS_MAX`); one byte, for the TCB's size.
    flags: u8,
    /// CUBIC W_max in bytes: the window before the last reduction (after fast convergence,
    /// §4.7), or the window at the start of an epoch that began above it (then K is 0 and it
    /// is the curve's origin, as Linux's `bic_origin_point`).
    w_max: u32,
    /// CUBIC K (§4.2), in milliseconds: when the curve reaches W_max again.
    k_ms: u32,
    /// CUBIC t_epoch, in milliseconds of the caller's clock (wrapping).
    epoch_ms: u32,
    /// CUBIC W_est (§4.3), in bytes: what Reno would have reached in the same time.
    w_est: u32,
}

/// What the sender must do after an acknowledgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcAction {
    None,
    /// Retransmit the segment at SND.UNA now (fast retransmit, or a NewReno partial ACK).
    RetransmitFirst,
}

impl Congestion {
    /// RFC 5681 §3.1: IW from RFC 6928 (`initial_cwnd` segments); ssthresh starts "arbitrarily
    /// high".
    pub fn new(mss: u32, initial_cwnd: u32, iss: SeqNum, algo: CongestionControl) -> Self {
        Congestion {
            cwnd: mss.saturating_mul(initial_cwnd.max(1)),
            ssthresh: u32::MAX,
            recover: iss,
            in_recovery: false,
            sack_mode: false,
            rto_recovery: false,
            prior_cwnd_segs: 0,
            prior_ssthresh_segs: 0,
            acked_accum: 0,
            flags: if algo == CongestionControl::Cubic { CUBIC } else { 0 },
            w_max: 0,
            k_ms: 0,
            epoch_ms: 0,
            w_est: 0,
        }
    }

    /// The slow-start threshold after a congestion event with `flight` bytes in flight (and
    /// `cwnd` for CUBIC's memory of where the loss happened). Reno: RFC 5681 equation (4),
    /// FlightSize / 2. CUBIC: RFC 9438 §4.6, FlightSize × β_cubic (the RFC allows FlightSize
    /// in place of cwnd), after §4.7 fast convergence has set W_max; the epoch ends.
    fn reduced(&mut self, flight: u32, mss: u32) -> u32 {
        let floor = mss.saturating_mul(2);
        if self.flags & CUBIC == 0 {
            return (flight / 2).max(floor);
        }
        let w = self.cwnd.max(flight);
        // §4.7: a loss below the previous W_max means the available capacity shrank: release
        // some of it at once.
        self.w_max = if w < self.w_max { (f64::from(w) * (1.0 + CUBIC_BETA) / 2.0) as u32 } else { w };
        self.flags &= !EPOCH_OPEN;
        ((u64::from(flight) * 7 / 10) as u32).max(floor)
    }

    /// Congestion avoidance on an ACK of `acked` bytes: Reno's one SMSS per RTT (RFC 5681
    /// §3.1 (3)) or CUBIC's W_cubic(t + RTT) (RFC 9438 §4.2-4.4). `now_ms` is a millisecond
    /// clock, `rtt_ms` the smoothed RTT.
    fn avoid(&mut self, acked: u32, mss: u32, now_ms: u32, rtt_ms: u32) {
        self.acked_accum = self.acked_accum.saturating_add(acked);
        if self.flags & CUBIC == 0 {
            if self.acked_accum >= self.cwnd {
                self.acked_accum -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
            return;
        }
        let mss_f = f64::from(mss.max(1));
        if self.flags & EPOCH_OPEN == 0 {
            // §4.2: a new epoch; K from the distance to W_max, or 0 above it (the curve then
            // starts here).
            self.flags |= EPOCH_OPEN;
            self.epoch_ms = now_ms;
            self.acked_accum = acked;
            self.w_est = self.cwnd;
            if self.cwnd < self.w_max {
                let segs = f64::from(self.w_max - self.cwnd) / mss_f;
                self.k_ms = ((segs / CUBIC_C).cbrt() * 1000.0) as u32;
            } else {
                self.k_ms = 0;
                self.w_max = self.cwnd;
            }
        }
        let cwnd = f64::from(self.cwnd);
        let w_cubic = |t_ms: u32| {
            let dt = (f64::from(t_ms) - f64::from(self.k_ms)) / 1000.0;
            (CUBIC_C * dt * dt * dt) * mss_f + f64::from(self.w_max)
        };
        let t = now_ms.wrapping_sub(self.epoch_ms);
        // §4.3: the Reno-friendly estimate grows by α segments per window acknowledged, α =
        // 3(1 - β) / (1 + β) until it reaches W_max, 1 after.
        let alpha = if self.w_est >= self.w_max { 1.0 } else { 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA) };
        let grow = alpha * mss_f * f64::from(acked) / cwnd.max(1.0);
        self.w_est = self.w_est.saturating_add(grow as u32);
        if w_cubic(t) < f64::from(self.w_est) {
            // §4.3: the Reno-friendly region.
            self.cwnd = self.cwnd.max(self.w_est);
            self.acked_accum = 0;
            return;
        }
        // §4.4/§4.5: towards W_cubic one RTT ahead, at most 1.5 × cwnd (§4.2's target bound),
        // (target - cwnd) / cwnd per byte acknowledged.
        let target = w_cubic(t.saturating_add(rtt_ms)).clamp(cwnd, cwnd * 1.5);
        let inc = ((target - cwnd) * f64::from(self.acked_accum) / cwnd.max(1.0)) as u32;
        if inc > 0 {
            self.cwnd = self.cwnd.saturating_add(inc);
            self.acked_accum = 0;
        }
    }

    /// RFC 5681 §4.1 (restarting idle connections), as Linux's `tcp_cwnd_restart`: after
    /// `idle` without sending data (and nothing in flight), cwnd is halved once per `rto`
    /// elapsed, never below the restart window RW = min(IW, cwnd) (`iw` in bytes); RFC 5681
    /// allows cutting straight to RW, Linux's gentler decay is what peers see from it. ssthresh
    /// keeps the memory of the old window, as Linux's `tcp_current_ssthresh` (3/4 of it), so
    /// slow start climbs back to where the path was good. CUBIC's epoch ends: its clock must
    /// not count the idle time as growth.
    pub fn restart_after_idle(&mut self, idle: Duration, rto: Duration, iw: u32) {
        let restart = iw.min(self.cwnd);
        if !self.is_recovering() {
            self.ssthresh = self.ssthresh.max((self.cwnd >> 1).saturating_add(self.cwnd >> 2));
        }
        let (mut cwnd, mut left) = (self.cwnd, idle);
        while left > rto && cwnd > restart && rto > Duration::ZERO {
            left = Duration(left.0.saturating_sub(rto.0));
            cwnd >>= 1;
        }
        self.cwnd = cwnd.max(restart);
        self.flags &= !EPOCH_OPEN;
        self.acked_accum = 0;
    }

    /// A fast recovery or a timeout's recovery is under way.
    pub fn is_recovering(&self) -> bool {
        self.in_recovery || self.rto_recovery
    }

    /// An ACK advanced SND.UNA by `acked` bytes to `snd_una`. `flight` is what remains in flight;
    /// `now_ms` a millisecond clock and `rtt_ms` the smoothed RTT (CUBIC's time axis).
    pub fn on_ack(&mut self, acked: u32, snd_una: SeqNum, flight: u32, mss: u32, now_ms: u32, rtt_ms: u32) -> CcAction {
        self.set_dupacks(0);
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
            self.avoid(acked, mss, now_ms, rtt_ms);
        }
        CcAction::None
    }

    /// A duplicate ACK (RFC 5681 §2 definition). `snd_max` is the highest sequence sent.
    pub fn on_dupack(&mut self, snd_una: SeqNum, snd_max: SeqNum, flight: u32, mss: u32) -> CcAction {
        self.set_dupacks(self.dupacks().saturating_add(1));
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
        if self.dupacks() == 3 && snd_una.sub(1).after_eq(self.recover) {
            self.ssthresh = self.reduced(flight, mss);
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
        self.set_dupacks(self.dupacks().saturating_add(1));
    }

    /// RFC 6675 §5 (4.1)/(4.2): enter SACK-based loss recovery. RecoveryPoint = HighData;
    /// ssthresh = cwnd = the reduced window (FlightSize / 2 for Reno, RFC 5681 equation (4);
    /// × 0.7 for CUBIC). Linux reduces the window gradually with PRR (RFC 6937,
    /// `tcp_cwnd_reduction`) instead; RFC 6675's step is simpler to reason about.
    pub fn enter_sack_recovery(&mut self, snd_max: SeqNum, flight: u32, mss: u32) {
        self.ssthresh = self.reduced(flight, mss);
        self.cwnd = self.ssthresh;
        self.recover = snd_max;
        self.in_recovery = true;
        self.sack_mode = true;
    }

    /// RFC 8985 §7.4.2: a loss probe repaired a loss, a congestion signal without a recovery
    /// episode. Linux (`tcp_process_tlp_ack`) runs a one-shot CWR reduction: ssthresh from
    /// the window, cwnd down to it; RFC 5681 equation (4) gives the same step here.
    pub fn on_probe_repaired(&mut self, flight: u32, mss: u32) {
        self.ssthresh = self.reduced(self.cwnd.max(flight), mss);
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

    /// RFC 4015 §3 (the Eifel response) as Linux applies it on a spurious timeout
    /// (`tcp_try_undo_loss` → `tcp_undo_cwnd_reduction`; CUBIC's `undo_cwnd` is the larger
    /// of cwnd and the window before): the window and ssthresh from before the timeout come
    /// back and the timeout's recovery ends.
    /// The timeout's recovery point goes too: what is still missing below it is a new loss,
    /// which a fast recovery (RACK, SACK) may now repair, as Linux does from its Open state
    /// after `tcp_try_undo_loss`.
    pub fn undo_rto(&mut self, mss: u32, snd_una: SeqNum) {
        self.recover = snd_una.sub(1);
        let bytes = |s: u16| if s == u16::MAX { u32::MAX } else { u32::from(s).saturating_mul(mss) };
        self.cwnd = self.cwnd.max(bytes(self.prior_cwnd_segs).min(u32::MAX / 2));
        self.ssthresh = self.ssthresh.max(bytes(self.prior_ssthresh_segs));
        self.rto_recovery = false;
        self.prior_cwnd_segs = 0;
        self.set_dupacks(0);
        self.acked_accum = 0;
    }

    /// Duplicate ACKs counted since the last ACK that advanced SND.UNA (at most 63).
    pub fn dupacks(&self) -> u8 {
        self.flags >> DUPACKS_SHIFT
    }

    fn set_dupacks(&mut self, n: u8) {
        self.flags = (self.flags & ((1 << DUPACKS_SHIFT) - 1)) | (n.min(DUPACKS_MAX) << DUPACKS_SHIFT);
    }

    /// F-RTO is waiting to judge the first acknowledgment after a timeout.
    pub fn frto_armed(&self) -> bool {
        self.rto_recovery && self.prior_cwnd_segs != 0
    }

    /// F-RTO has judged the first acknowledgment after the timeout: the loss was real.
    pub fn frto_done(&mut self) {
        self.prior_cwnd_segs = 0;
    }

    /// A further timeout for the same data: back to one segment, ssthresh kept.
    pub fn on_repeated_rto(&mut self, mss: u32) {
        self.cwnd = mss;
        self.rto_recovery = true;
        self.in_recovery = false;
        self.sack_mode = false;
        self.set_dupacks(0);
        self.acked_accum = 0;
    }

    /// RFC 5681 §3.1 (4): the retransmission timer expired. CUBIC then forgets W_max, as
    /// Linux's `bictcp_reset` on entering the Loss state: growth after a timeout starts a
    /// fresh curve.
    ///
    /// A timeout taken outside a fast recovery arms F-RTO (RFC 5682 §3): `undo_rto` puts the
    /// window back if the next acknowledgment shows the timeout was spurious. Linux arms it
    /// for timeouts from its Open, Disorder and CWR states (`tcp_enter_loss`).
    pub fn on_rto(&mut self, snd_max: SeqNum, flight: u32, mss: u32) {
        let segs = |b: u32| u16::try_from(b / mss.max(1)).unwrap_or(u16::MAX);
        let armed = !self.in_recovery && !self.rto_recovery;
        self.prior_cwnd_segs = if armed { segs(self.cwnd).max(1) } else { 0 };
        self.prior_ssthresh_segs = segs(self.ssthresh);
        self.ssthresh = self.reduced(flight, mss);
        self.w_max = 0;
        self.cwnd = mss;
        self.recover = snd_max;
        self.rto_recovery = true;
        self.in_recovery = false;
        self.sack_mode = false;
        self.set_dupacks(0);
        self.acked_accum = 0;
    }
}

#[cfg(test)]
mod tests {

    /// A review finding: an ACK landing exactly on the previous recovery point must let the
    /// next loss start a recovery (it used to need one byte more, leaving it to the RTO).
    #[test]
    fn a_new_recovery_may_start_once_snd_una_reaches_the_old_recovery_point() {
        let mut cc = Congestion::new(1000, 10, SeqNum(0), CongestionControl::Reno);
        cc.enter_sack_recovery(SeqNum(10_000), 10_000, 1000);
        assert!(!cc.may_recover(SeqNum(5_000)));
        let _ = cc.on_ack(10_000, SeqNum(10_000), 0, 1000, 0, 1);
        assert!(cc.may_recover(SeqNum(10_000)));
        assert!(cc.cwnd >= cc.ssthresh, "SACK recovery ends at ssthresh, not one segment");
    }

    use super::*;

    const MSS: u32 = 1000;

    /// Acknowledges a full window every `rtt_ms` for `rounds` round trips, in congestion
    /// avoidance; returns cwnd in segments after each round.
    fn rounds(c: &mut Congestion, start_ms: u32, rtt_ms: u32, rounds: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for r in 0..rounds {
            let now = start_ms + r * rtt_ms;
            let mut left = c.cwnd;
            while left > 0 {
                let a = left.min(2 * MSS);
                c.on_ack(a, SeqNum(1_000_000), c.cwnd, MSS, now, rtt_ms);
                left -= a;
            }
            out.push(c.cwnd / MSS);
        }
        out
    }

    /// RFC 9438 §4.6: CUBIC keeps 0.7 of the window at a loss, Reno half.
    #[test]
    fn cubic_decreases_to_0_7_reno_to_half() {
        for (algo, want) in [(CongestionControl::Cubic, 70_000), (CongestionControl::Reno, 50_000)] {
            let mut c = Congestion::new(MSS, 100, SeqNum(0), algo);
            c.enter_sack_recovery(SeqNum(100_000), 100_000, MSS);
            assert_eq!((c.ssthresh, c.cwnd), (want, want), "{algo:?}");
        }
    }

    /// RFC 9438 §4.2 and §4.7: after a loss at 100 segments the window climbs back to W_max
    /// at K = cbrt(30 / 0.4) = 4.2 s (concave: fast at first, flat near W_max), then grows
    /// past it (convex); a second loss below W_max lowers W_max by fast convergence.
    #[test]
    fn cubic_returns_to_w_max_after_k_seconds_then_probes_beyond() {
        let mut c = Congestion::new(MSS, 100, SeqNum(0), CongestionControl::Cubic);
        c.enter_sack_recovery(SeqNum(100_000), 100_000, MSS);
        c.on_ack(100_000, SeqNum(100_000), 0, MSS, 0, 100);
        assert_eq!(c.cwnd, 70_000);
        // 100 ms round trips: W_cubic leads the Reno-friendly estimate.
        let w = rounds(&mut c, 0, 100, 80);
        assert_eq!(c.k_ms, 4217);
        let at = |t_ms: u32| w[(t_ms / 100) as usize - 1];
        assert!(at(1000) > 80 && at(1000) < 95, "fast at first: {w:?}");
        assert!((97..=101).contains(&at(4200)), "W_max again at K: {w:?}");
        assert!(at(5000) - at(4200) <= 2, "flat near W_max: {w:?}");
        assert!(at(8000) > 110, "beyond W_max, convex: {w:?}");
        // A loss at 90 segments, below W_max (100): W_max = 90 × 1.7 / 2 = 76.5 segments.
        let mut d = Congestion::new(MSS, 100, SeqNum(0), CongestionControl::Cubic);
        d.enter_sack_recovery(SeqNum(100_000), 100_000, MSS);
        d.cwnd = 90_000;
        d.in_recovery = false;
        d.enter_sack_recovery(SeqNum(200_000), 90_000, MSS);
        assert_eq!((d.w_max, d.ssthresh), (76_500, 63_000));
    }

    /// RFC 9438 §4.3: at a short RTT the cubic curve barely moves in a round trip, and the
    /// window follows the Reno-friendly estimate instead: α = 3(1 - β)/(1 + β) = 0.53 segments
    /// per round trip up to W_max, one segment per round trip beyond it.
    #[test]
    fn cubic_at_short_rtt_grows_like_reno_friendly_aimd() {
        let mut c = Congestion::new(MSS, 100, SeqNum(0), CongestionControl::Cubic);
        c.enter_sack_recovery(SeqNum(100_000), 100_000, MSS);
        c.on_ack(100_000, SeqNum(100_000), 0, MSS, 0, 1);
        let w = rounds(&mut c, 0, 1, 100);
        // 30 segments at ~0.53 a round trip: W_max (100) after about 57 round trips.
        let back = w.iter().position(|&x| x >= 100).expect("back at W_max");
        assert!((52..=62).contains(&back), "W_max after {back} round trips: {w:?}");
        let beyond = w[99] - w[back];
        assert!((99 - back as u32 - 2..=99 - back as u32 + 1).contains(&beyond), "one a round trip: {w:?}");
    }

    /// A timeout forgets W_max (Linux `bictcp_reset`): the next epoch starts its curve at the
    /// window it has then.
    #[test]
    fn cubic_forgets_w_max_at_a_timeout() {
        let mut c = Congestion::new(MSS, 100, SeqNum(0), CongestionControl::Cubic);
        c.on_rto(SeqNum(100_000), 100_000, MSS);
        assert_eq!((c.ssthresh, c.cwnd, c.w_max), (70_000, MSS, 0));
    }

    #[test]
    fn slow_start_then_avoidance() {
        let mut c = Congestion::new(MSS, 10, SeqNum(0), CongestionControl::Reno);
        assert_eq!(c.cwnd, 10_000);
        c.on_ack(1000, SeqNum(1001), 9000, MSS, 0, 1);
        assert_eq!(c.cwnd, 11_000);
        c.ssthresh = 11_000;
        for _ in 0..11 {
            c.on_ack(1000, SeqNum(5000), 5000, MSS, 0, 1);
        }
        assert_eq!(c.cwnd, 12_000);
    }

    #[test]
    fn three_dupacks_then_partial_then_full_ack() {
        let mut c = Congestion::new(MSS, 10, SeqNum(0), CongestionControl::Reno);
        let una = SeqNum(1001);
        let max = SeqNum(11_001);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::RetransmitFirst);
        assert_eq!(c.ssthresh, 5000);
        assert_eq!(c.cwnd, 8000);
        c.on_dupack(una, max, 10_000, MSS);
        assert_eq!(c.cwnd, 9000);
        assert_eq!(c.on_ack(2000, SeqNum(3001), 8000, MSS, 0, 1), CcAction::RetransmitFirst);
        assert!(c.in_recovery);
        assert_eq!(c.on_ack(8000, max, 0, MSS, 0, 1), CcAction::None);
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
        let mut c = Congestion::new(MSS, 10, iss, CongestionControl::Reno);
        c.ssthresh = 10_000;
        let mut una = iss.add(1);
        for _ in 0..3 * 1024 {
            una = una.add(1 << 20);
            c.on_ack(1 << 20, una, 10_000, MSS, 0, 1);
        }
        assert!(una.diff(iss) < 0, "the test must cross 2^31");
        let max = una.add(10_000);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::None);
        assert_eq!(c.on_dupack(una, max, 10_000, MSS), CcAction::RetransmitFirst);
    }

    #[test]
    fn timeout_collapses_window() {
        let mut c = Congestion::new(MSS, 10, SeqNum(0), CongestionControl::Reno);
        c.on_rto(SeqNum(10_000), 10_000, MSS);
        assert_eq!((c.cwnd, c.ssthresh), (1000, 5000));
    }
}
