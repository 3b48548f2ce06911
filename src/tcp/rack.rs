//! RACK (RFC 8985 §6) bookkeeping: when each piece of data in flight was first sent, in a
//! fixed-size log, and the RACK state variables. The TCB glue is in `conn/rack.rs`.
//!
//! Read RFC 8985 §6 before editing. RFC 8985 keeps a transmit time per segment; this log keeps
//! one per *send instant*: everything sent at the same `now` (one engine batch) shares an
//! entry, and original transmissions only. Original data goes out in sequence order, so the
//! log is sorted by both sequence and time, and "sent before" is "lies below". A
//! retransmission keeps its original's time: RACK then sees it as older than it is, which can
//! only delay a loss verdict, never invent one (the RTO and RFC 6675 still stand behind it).

use crate::time::{Duration, Instant};
use crate::wire::SeqNum;

/// Entries in the log. Past it the two oldest merge under the later time (which again only
/// makes data look younger, so RACK errs towards waiting).
pub const SENT_LOG_ENTRIES: usize = 32;

/// Original transmissions in flight: `(end, when)`, an entry covering the sequence space from
/// the previous entry's end (or SND.UNA) to `end`.
#[derive(Debug, Clone)]
pub struct SentLog {
    entries: [(SeqNum, Instant); SENT_LOG_ENTRIES],
    head: u8,
    len: u8,
}

impl Default for SentLog {
    fn default() -> Self {
        SentLog { entries: [(SeqNum(0), Instant::from_nanos(0)); SENT_LOG_ENTRIES], head: 0, len: 0 }
    }
}

impl SentLog {
    fn slot(&self, i: usize) -> usize {
        (usize::from(self.head) + i) % SENT_LOG_ENTRIES
    }

    fn get(&self, i: usize) -> Option<(SeqNum, Instant)> {
        if i >= usize::from(self.len) {
            return None;
        }
        self.entries.get(self.slot(i)).copied()
    }

    /// Entries, oldest (lowest) first.
    pub fn iter(&self) -> impl Iterator<Item = (SeqNum, Instant)> + '_ {
        (0..usize::from(self.len)).filter_map(|i| self.get(i))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// New data up to `end` was first sent at `now`.
    pub fn on_send(&mut self, end: SeqNum, now: Instant) {
        let n = usize::from(self.len);
        if let Some(last) = n.checked_sub(1).map(|i| self.slot(i)) {
            if let Some(e) = self.entries.get_mut(last) {
                if e.1 == now {
                    e.0 = e.0.max(end);
                    return;
                }
            }
        }
        if n == SENT_LOG_ENTRIES {
            // Merge the oldest into the next one (which keeps its own, later, time).
            self.head = ((usize::from(self.head) + 1) % SENT_LOG_ENTRIES) as u8;
            self.len -= 1;
        }
        let at = self.slot(usize::from(self.len));
        if let Some(e) = self.entries.get_mut(at) {
            *e = (end, now);
            self.len += 1;
        }
    }

    /// SND.UNA moved to `una`: entries wholly below it go.
    pub fn advance(&mut self, una: SeqNum) {
        while let Some((end, _)) = self.get(0) {
            if end.after(una) {
                break;
            }
            self.head = ((usize::from(self.head) + 1) % SENT_LOG_ENTRIES) as u8;
            self.len -= 1;
        }
    }

    /// When the octet before `end` was first sent: the time of the entry covering it (None
    /// when it is below what the log holds).
    pub fn sent_at(&self, end: SeqNum) -> Option<Instant> {
        let last = end.sub(1);
        self.iter().find(|&(e, _)| e.after(last)).map(|(_, t)| t)
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What RACK keeps for a connection while data is in flight: the log and the RFC 8985 §6.1
/// variables. Boxed by the TCB and given back when everything is acknowledged, as the send
/// buffer is, so an idle connection does not pay for it; RACK.min_RTT then starts again
/// from the next flight's first sample (Linux's own minimum expires too, after 5 minutes).
#[derive(Debug, Clone, Default)]
pub struct Rack {
    pub log: SentLog,
    pub state: RackState,
}

/// RFC 8985 §6.1 state: the most recently sent segment known delivered, and the RTT it gave.
#[derive(Debug, Clone, Copy, Default)]
pub struct RackState {
    /// RACK.xmit_ts and RACK.end_seq.
    pub xmit: Option<(Instant, SeqNum)>,
    /// RACK.rtt.
    pub rtt: Duration,
    /// RACK.min_RTT: the least RTT seen (Linux keeps a windowed minimum, `tcp_min_rtt`; this
    /// one does not expire).
    pub min_rtt: Option<Duration>,
}

impl RackState {
    /// RFC 8985 §6.2 step 2: a segment sent at `sent`, ending at `end`, was delivered at
    /// `now`. Returns true when it became the most recently sent one delivered.
    pub fn on_delivered(&mut self, sent: Instant, end: SeqNum, now: Instant) -> bool {
        let rtt = now.saturating_since(sent);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        let newer = match self.xmit {
            None => true,
            // RACK_sent_after: later, or at the same time and higher in sequence.
            Some((t, e)) => sent > t || (sent == t && end.after(e)),
        };
        if newer {
            self.xmit = Some((sent, end));
            self.rtt = rtt;
        }
        newer
    }

    /// RFC 8985 §6.2 step 4: RACK.reo_wnd = min(RACK.min_RTT / 4, SRTT) (Linux
    /// `tcp_rack_reo_wnd` with one step, before any reordering was seen: zero in recovery).
    pub fn reo_wnd(&self, srtt: Option<Duration>, in_recovery: bool) -> Duration {
        if in_recovery {
            return Duration::ZERO;
        }
        let q = self.min_rtt.map_or(Duration::ZERO, |m| Duration(m.0 / 4));
        srtt.map_or(q, |s| q.min(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn log_coalesces_merges_and_advances() {
        let mut l = SentLog::default();
        l.on_send(SeqNum(100), t(1));
        l.on_send(SeqNum(200), t(1));
        l.on_send(SeqNum(300), t(2));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![(SeqNum(200), t(1)), (SeqNum(300), t(2))]);
        assert_eq!(l.sent_at(SeqNum(150)), Some(t(1)));
        assert_eq!(l.sent_at(SeqNum(201)), Some(t(2)));
        l.advance(SeqNum(200));
        assert_eq!(l.iter().count(), 1);
        for k in 0..100u64 {
            l.on_send(SeqNum(400 + k as u32 * 100), t(10 + k));
        }
        assert_eq!(l.iter().count(), SENT_LOG_ENTRIES);
        // The oldest were merged away under later times: data looks younger, never older.
        assert!(l.sent_at(SeqNum(450)).unwrap() >= t(10));
    }

    #[test]
    fn rack_state_keeps_the_most_recently_sent() {
        let mut r = RackState::default();
        assert!(r.on_delivered(t(10), SeqNum(200), t(30)));
        assert!(!r.on_delivered(t(5), SeqNum(100), t(31)));
        assert_eq!(r.xmit, Some((t(10), SeqNum(200))));
        assert_eq!(r.rtt, Duration::from_millis(20));
        assert_eq!(r.reo_wnd(Some(Duration::from_millis(20)), false), Duration::from_millis(5));
        assert_eq!(r.reo_wnd(Some(Duration::from_millis(20)), true), Duration::ZERO);
    }
}
