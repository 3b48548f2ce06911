//! Retransmission timer per RFC 6298.

use crate::time::Duration;
use core::num::NonZeroU64;

/// SRTT in nanoseconds, RTTVAR and RTO in microseconds (32 bits: 71 minutes, far above
/// RTO.max; the TCB's size budget has no room for two more 64-bit fields). The bounds (RTO.min
/// and RTO.max, RFC 6298 (2.4) and (2.5)) come from the configuration on each update rather
/// than being held per connection.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    /// None until the first sample; a sample under 1 ns counts as 1 ns.
    srtt: Option<NonZeroU64>,
    rttvar_us: u32,
    rto_us: u32,
}

/// A span as stored here: microseconds, saturating at `u32::MAX` (71 minutes).
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// RFC 6298 §2: clock granularity G. Our clock is nanoseconds; Linux's jiffy-based RTO has no
/// such term in practice, so G only keeps RTO strictly above SRTT when RTTVAR is zero.
const GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 (5.7): the RTO after a handshake whose SYN or SYN-ACK was retransmitted without an
/// RTT sample (Linux `TCP_TIMEOUT_FALLBACK`).
pub const RTO_FALLBACK: Duration = Duration::from_secs(3);

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator { srtt: None, rttvar_us: 0, rto_us: micros(initial.max(min).min(max)) }
    }

    pub fn rto(&self) -> Duration {
        Duration::from_micros(u64::from(self.rto_us))
    }

    fn rttvar(&self) -> Duration {
        Duration::from_micros(u64::from(self.rttvar_us))
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(|v| Duration(v.get()))
    }

    /// RFC 6298 (2.2) and (2.3): folds in one RTT measurement and recomputes RTO.
    pub fn sample(&mut self, r: Duration, min: Duration, max: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar_us = micros(Duration(r.0 / 2));
                r
            }
            Some(srtt) => {
                let srtt = Duration(srtt.get());
                let err = srtt.0.abs_diff(r.0);
                // RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4
                self.rttvar_us = micros(Duration((self.rttvar().0 / 4).saturating_mul(3).saturating_add(err / 4)));
                // SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8
                Duration((srtt.0 / 8).saturating_mul(7).saturating_add(r.0 / 8))
            }
        };
        self.srtt = NonZeroU64::new(srtt.0.max(1));
        // RTO <- SRTT + max (G, K*RTTVAR), K = 4; then (2.4)/(2.5) bounds.
        let var = GRANULARITY.max(self.rttvar().saturating_mul(4));
        self.rto_us = micros((srtt + var).max(min).min(max));
    }

    /// RFC 6298 (5.7): the SYN or SYN-ACK was retransmitted and no sample came from the
    /// handshake, so the RTO is 3 s when data transmission begins (a MUST), within `max`.
    /// Linux sets RTO and RTTVAR to `TCP_TIMEOUT_FALLBACK` in `tcp_init_metrics`; RTTVAR
    /// matters only until the first sample, which replaces both.
    pub fn fall_back(&mut self, max: Duration) {
        self.rto_us = micros(RTO_FALLBACK.min(max));
        self.rttvar_us = micros(RTO_FALLBACK);
    }

    /// RFC 6298 (5.5): back off the timer after it expired, to at most `max`.
    pub fn backoff(&mut self, max: Duration) {
        self.rto_us = micros(self.rto().saturating_mul(2).min(max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(120);

    #[test]
    fn rfc6298_first_and_later_samples() {
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(200), Duration::from_secs(120));
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100), MIN, MAX);
        // SRTT 100 ms, RTTVAR 50 ms, RTO = 100 + 200 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100), MIN, MAX);
        // RTTVAR = 3/4*50 + 0 = 37.5 ms, RTO = 100 + 150 = 250 ms.
        assert_eq!(e.rto(), Duration::from_micros(250_000));
        e.backoff(MAX);
        assert_eq!(e.rto(), Duration::from_micros(500_000));
        for _ in 0..20 {
            e.backoff(MAX);
        }
        assert_eq!(e.rto(), Duration::from_secs(120));
    }

    #[test]
    fn rto_floor() {
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(200), Duration::from_secs(120));
        e.sample(Duration::from_micros(50), MIN, MAX);
        assert_eq!(e.rto(), Duration::from_millis(200));
    }
}
