//! Retransmission timer per RFC 6298.

use crate::time::Duration;
use core::num::NonZeroU64;

/// SRTT, RTTVAR and RTO in nanoseconds; the bounds (RTO.min and RTO.max, RFC 6298 (2.4) and
/// (2.5)) come from the configuration on each update rather than being held per connection.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    /// None until the first sample; a sample under 1 ns counts as 1 ns.
    srtt: Option<NonZeroU64>,
    rttvar: Duration,
    rto: Duration,
}

/// RFC 6298 §2: clock granularity G. Our clock is nanoseconds; Linux's jiffy-based RTO has no
/// such term in practice, so G only keeps RTO strictly above SRTT when RTTVAR is zero.
const GRANULARITY: Duration = Duration::from_millis(1);

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        RttEstimator { srtt: None, rttvar: Duration::ZERO, rto: initial.max(min).min(max) }
    }

    pub fn rto(&self) -> Duration {
        self.rto
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt.map(|v| Duration(v.get()))
    }

    /// RFC 6298 (2.2) and (2.3): folds in one RTT measurement and recomputes RTO.
    pub fn sample(&mut self, r: Duration, min: Duration, max: Duration) {
        let srtt = match self.srtt {
            None => {
                self.rttvar = Duration(r.0 / 2);
                r
            }
            Some(srtt) => {
                let srtt = Duration(srtt.get());
                let err = srtt.0.abs_diff(r.0);
                // RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, beta = 1/4
                self.rttvar = Duration((self.rttvar.0 / 4).saturating_mul(3).saturating_add(err / 4));
                // SRTT <- (1 - alpha) * SRTT + alpha * R', alpha = 1/8
                Duration((srtt.0 / 8).saturating_mul(7).saturating_add(r.0 / 8))
            }
        };
        self.srtt = NonZeroU64::new(srtt.0.max(1));
        // RTO <- SRTT + max (G, K*RTTVAR), K = 4; then (2.4)/(2.5) bounds.
        let var = GRANULARITY.max(self.rttvar.saturating_mul(4));
        self.rto = (srtt + var).max(min).min(max);
    }

    /// RFC 6298 (5.5): back off the timer after it expired, to at most `max`.
    pub fn backoff(&mut self, max: Duration) {
        self.rto = self.rto.saturating_mul(2).min(max);
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
