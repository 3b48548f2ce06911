//! RACK-TLP (RFC 8985): Tail Loss Probes (§7) repair a lost tail in about two round trips
//! instead of a retransmission timeout, and the probe's SACK marks the segments sent before
//! it lost (§6.2), so the one recovery repairs them all.
//!
//! A crafted peer (no timestamps, SACK-permitted) stands for the receiver; every time below is
//! relative to the round-trip time the test sets up, never absolute.

mod common;

use common::*;
use xdptcp::tcp::{Config, ConnId};
use xdptcp::time::Duration;
use xdptcp::wire::{SeqNum, TcpOptions};

const PEER: &str = "198.18.0.2";
const PEER_PORT: u16 = 40000;
/// The round-trip time the peer's ACKs set up.
const RTT: Duration = Duration::from_millis(10);
const MSS: u32 = 1000;

fn peer_addr() -> std::net::SocketAddr {
    format!("{PEER}:{PEER_PORT}").parse().unwrap()
}

fn sack_opts(blocks: &[(u32, u32)]) -> TcpOptions {
    let mut o = TcpOptions::default();
    for (slot, &(l, r)) in o.sack_blocks.iter_mut().zip(blocks) {
        *slot = (SeqNum(l), SeqNum(r));
    }
    o.sack_count = blocks.len() as u8;
    o
}

/// The test's view of one connection: the host, the connection, our first data sequence
/// number and the peer's next one.
struct Conn {
    h: Host,
    id: ConnId,
    iss1: u32,
    p: u32,
}

impl Conn {
    /// A listening host and a crafted peer (SACK-permitted or not, MSS 1000) that completed the
    /// handshake an RTT after the SYN-ACK (the handshake's sample, Linux
    /// `tcp_synack_rtt_meas`); then one segment is sent and acknowledged an RTT later, so
    /// SRTT = RTT.
    fn new(cfg: Config, sack: bool) -> Conn {
        let mut h = Host::new("198.18.0.1", cfg, 7);
        h.shard.listen(80, None, 16).unwrap();
        let o = TcpOptions { mss: Some(MSS as u16), sack_permitted: sack, ..TcpOptions::default() };
        h.deliver(&craft_opts(peer_addr(), h.addr(80), 1000, 0, SYN, &[], o, 65535));
        let sa = Seg::parse(&h.take_one());
        h.advance(RTT);
        h.deliver(&craft(peer_addr(), h.addr(80), 1001, sa.seq + 1, ACK, &[]));
        let id = h.shard.accept(80).unwrap();
        assert_eq!(h.shard.info(id).unwrap().sack_ok, sack);
        let mut c = Conn { h, id, iss1: sa.seq + 1, p: 1001 };
        c.send(1);
        assert_eq!(c.h.take().len(), 1);
        c.h.advance(RTT);
        c.ack(MSS, &[]);
        assert_eq!(c.h.shard.info(id).unwrap().srtt, Some(RTT));
        c
    }

    /// Queues `n` full segments of data and lets the host send what it may.
    fn send(&mut self, n: u32) {
        self.h.shard.send(self.id, &vec![5u8; (n * MSS) as usize]).unwrap();
        self.h.flush();
    }

    /// The peer acknowledges up to offset `upto` from our first data byte, SACKing `blocks`
    /// (offsets too).
    fn ack(&mut self, upto: u32, blocks: &[(u32, u32)]) {
        let abs: Vec<(u32, u32)> = blocks.iter().map(|&(l, r)| (self.iss1 + l, self.iss1 + r)).collect();
        let to = self.h.addr(80);
        self.h.deliver(&craft_opts(peer_addr(), to, self.p, self.iss1 + upto, ACK, &[], sack_opts(&abs), 65535));
    }

    /// Offsets (from our first data byte) of the data segments sent since the last call.
    fn sent(&mut self) -> Vec<u32> {
        let base = self.iss1;
        self.h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq.wrapping_sub(base)).collect()
    }

    /// Steps through the host's timers until one of them sends something, at most `limit`
    /// from now; returns how long that took.
    fn wait_for_send(&mut self, limit: Duration) -> Option<Duration> {
        let start = self.h.now;
        while let Some(t) = self.h.shard.poll_timeout() {
            if t > start + limit {
                break;
            }
            self.h.advance(t.saturating_since(self.h.now));
            if !self.h.out.is_empty() {
                return Some(self.h.now.saturating_since(start));
            }
        }
        None
    }

    /// Offset (from our first data byte) of the next new segment.
    fn next_off(&self) -> u32 {
        self.h.shard.info(self.id).unwrap().snd_nxt.0.wrapping_sub(self.iss1)
    }

    fn unacked(&self) -> u32 {
        self.h.shard.info(self.id).unwrap().unacked
    }

    fn rto(&self) -> Duration {
        self.h.shard.info(self.id).unwrap().rto
    }
}

/// Two round trips, what the PTO is for a flight of more than one segment (RFC 8985 §7.2;
/// Linux adds 2 ms).
fn pto() -> Duration {
    RTT.saturating_mul(2)
}

/// RFC 8985 §7 (the tail-loss example of its §3.3): the last two segments of a response are
/// lost. Without TLP nothing comes back and the sender waits for the RTO. With it, the probe
/// (the last segment again) goes out about 2·SRTT after the last ACK; its SACK shows the
/// segment before it lost (sent a PTO earlier than a segment that arrived), and the recovery
/// that follows repairs it: everything is acknowledged long before the RTO would have fired.
///
///   ACK 1..8 arrives          (segments 9 and 10 lost)
///   +2·SRTT  --> probe: segment 10 again
///            <-- ACK 8, SACK 10
///            --> segment 9 (RACK: sent before a SACKed segment, so lost)
///            <-- ACK 10
#[test]
fn established_tail_loss_is_repaired_by_a_probe_before_the_rto() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = MSS; // the warm-up segment
    c.send(10);
    assert_eq!(c.sent().len(), 10);
    c.h.advance(RTT);
    c.ack(base + 8 * MSS, &[]);
    assert!(c.sent().is_empty());
    let rto = c.rto();
    let waited = c.wait_for_send(rto).expect("a probe before the RTO");
    assert!(waited >= pto() && waited < pto() + RTT, "PTO {waited:?}, SRTT {RTT:?}");
    assert_eq!(c.sent(), vec![base + 9 * MSS], "the probe re-sends the last segment");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probes, 1);
    c.h.advance(RTT);
    c.ack(base + 8 * MSS, &[(base + 9 * MSS, base + 10 * MSS)]);
    assert_eq!(c.sent(), vec![base + 8 * MSS], "the hole below the probe is sent again at once");
    c.h.advance(RTT);
    c.ack(base + 10 * MSS, &[]);
    assert_eq!(c.unacked(), 0);
    let total = waited + RTT.saturating_mul(2);
    assert!(total < rto, "recovered after {total:?}, RTO {rto:?}");
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_timeouts, k.tcp_ext_tcp_sack_recovery), (0, 1));
}

/// RFC 8985 §7.3: when data waits unsent and the peer's window has room, the probe is a new
/// segment (it may reveal the loss and carries the transfer on at the same time). Linux sends
/// it whatever cwnd says (`tcp_write_xmit` with `push_one` = 2).
#[test]
fn established_probe_is_new_data_when_data_waits() {
    let mut c = Conn::new(plain_cfg(), true);
    c.send(40);
    let first = c.sent();
    assert!(first.len() < 40, "cwnd holds some back");
    let next = first.last().unwrap() + MSS;
    let waited = c.wait_for_send(c.rto()).expect("a probe before the RTO");
    assert!(waited >= pto(), "PTO {waited:?}");
    assert_eq!(c.sent(), vec![next], "the probe is the next new segment");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probes, 1);
}

/// RFC 8985 §7.3: one probe per episode. Nothing answers the probe: the next transmission is
/// the retransmission timer's, not a second probe.
#[test]
fn established_one_probe_then_the_rto() {
    let mut c = Conn::new(plain_cfg(), true);
    c.send(4);
    assert_eq!(c.sent().len(), 4);
    let rto = c.rto();
    c.wait_for_send(rto).expect("a probe");
    assert_eq!(c.sent().len(), 1);
    let waited = c.wait_for_send(rto.saturating_mul(2)).expect("the RTO");
    assert!(waited >= rto, "second transmission after {waited:?}, RTO {rto:?}");
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_loss_probes, k.tcp_ext_tcp_timeouts), (1, 1));
}

/// Linux (`tcp_schedule_loss_probe`): no TLP without SACK, since the probe's ACK would show
/// nothing. A lost tail waits for the RTO.
#[test]
fn established_without_sack_no_probe() {
    let mut c = Conn::new(plain_cfg(), false);
    c.send(4);
    assert_eq!(c.sent().len(), 4);
    let rto = c.rto();
    let waited = c.wait_for_send(rto.saturating_mul(2)).expect("the RTO");
    assert!(waited >= rto, "first retransmission after {waited:?}, RTO {rto:?}");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probes, 0);
}

/// `tlp: false` (Linux `tcp_early_retrans` < 3) turns the probes off.
#[test]
fn established_tlp_off_no_probe() {
    let mut c = Conn::new(Config { tlp: false, ..plain_cfg() }, true);
    c.send(4);
    c.sent();
    let rto = c.rto();
    let waited = c.wait_for_send(rto.saturating_mul(2)).expect("the RTO");
    assert!(waited >= rto);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probes, 0);
}

/// RFC 8985 §7.4: a probe that re-sent the only lost segment repaired a loss. Its ACK covers
/// TLP.end_seq exactly (no D-SACK follows, since the original never arrived), and the next ACK
/// beyond it confirms the repair: TcpExtTCPLossProbeRecovery counts it and the window is
/// reduced, as for any loss.
#[test]
fn established_probe_that_repaired_a_loss_is_counted() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = MSS;
    c.send(4);
    c.sent();
    c.h.advance(RTT);
    c.ack(base + 3 * MSS, &[]);
    c.wait_for_send(c.rto()).expect("a probe");
    assert_eq!(c.sent(), vec![base + 3 * MSS]);
    let cwnd = c.h.shard.info(c.id).unwrap().cwnd;
    c.h.advance(RTT);
    c.ack(base + 4 * MSS, &[]);
    assert_eq!(c.unacked(), 0);
    c.send(1);
    assert_eq!(c.sent(), vec![base + 4 * MSS]);
    c.h.advance(RTT);
    c.ack(base + 5 * MSS, &[]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probe_recovery, 1);
    assert!(c.h.shard.info(c.id).unwrap().ssthresh < cwnd, "the repaired loss reduces the window");
}

/// RFC 8985 §7.4: a probe that was not needed (the ACK was only late) draws a D-SACK for the
/// probe; no loss is counted and the window stays.
#[test]
fn established_probe_not_needed_is_not_a_loss() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = MSS;
    c.send(4);
    c.sent();
    c.wait_for_send(c.rto()).expect("a probe");
    assert_eq!(c.sent(), vec![base + 3 * MSS]);
    let ssthresh = c.h.shard.info(c.id).unwrap().ssthresh;
    // The originals arrive, then the probe: D-SACK of the last segment.
    c.ack(base + 4 * MSS, &[]);
    c.ack(base + 4 * MSS, &[(base + 3 * MSS, base + 4 * MSS)]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_dsack_recv, 1);
    c.send(1);
    c.sent();
    c.h.advance(RTT);
    c.ack(base + 5 * MSS, &[]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probe_recovery, 0);
    assert_eq!(c.h.shard.info(c.id).unwrap().ssthresh, ssthresh);
}

/// RFC 8985 §7.2: each ACK that advances SND.UNA re-arms the probe timer from its arrival.
#[test]
fn established_pto_follows_each_ack() {
    let mut c = Conn::new(plain_cfg(), true);
    c.send(6);
    c.sent();
    c.h.advance(RTT);
    c.ack(MSS + 2 * MSS, &[]);
    let waited = c.wait_for_send(c.rto()).expect("a probe");
    assert!(waited >= pto() && waited < pto() + RTT, "PTO {waited:?} after the ACK");
}

// ---------------------------------------------------------------------------------------------
// RACK (RFC 8985 §6)

/// The reordering window RACK starts with: RACK.min_RTT / 4 (Linux `tcp_rack_reo_wnd`).
fn reo_wnd() -> Duration {
    Duration(RTT.0 / 4)
}

/// RFC 8985 §6.2: segment A, then B a few milliseconds later (more than the reordering
/// window). B's SACK arrives, A's ACK does not: A was sent more than reo_wnd before a segment
/// that was delivered, so it is lost at once. RFC 6675 alone would wait for DupThresh
/// duplicate ACKs (or the timer): one SACKed segment is not enough for IsLost.
///
///   t0        --> A
///   t0+5ms    --> B
///   t0+5ms+RTT <-- ACK (below A), SACK B
///             --> A again, at once
#[test]
fn established_rack_marks_lost_after_a_later_segment_is_sacked() {
    let mut c = Conn::new(plain_cfg(), true);
    let a = MSS;
    c.send(1);
    assert_eq!(c.sent(), vec![a]);
    let gap = reo_wnd().saturating_mul(2);
    c.h.advance(gap);
    c.send(1);
    assert_eq!(c.sent(), vec![a + MSS]);
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    assert_eq!(c.sent(), vec![a], "A is lost: B, sent {gap:?} later, arrived");
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_sack_recovery, k.tcp_ext_tcp_timeouts, k.tcp_ext_tcp_loss_probes), (1, 0, 0));
}

/// RFC 8985 §6.2: A and B go out together; B arrives first and A a moment later, within the
/// reordering window. The SACK for B marks nothing lost; A's ACK then ends it: no
/// retransmission at all.
#[test]
fn established_rack_reordering_within_reo_wnd_is_not_a_loss() {
    let mut c = Conn::new(plain_cfg(), true);
    let a = MSS;
    c.send(2);
    assert_eq!(c.sent(), vec![a, a + MSS]);
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    c.h.expect_nothing();
    c.h.advance(Duration(reo_wnd().0 / 2));
    c.h.expect_nothing();
    c.ack(a + 2 * MSS, &[]);
    c.h.advance(RTT);
    c.h.expect_nothing();
    assert_eq!(c.unacked(), 0);
    assert_eq!(c.h.shard.counters().tcp_retrans_segs, 0);
}

/// RFC 8985 §6.3: as above, but A never comes: the reordering timer fires reo_wnd after the
/// SACK and A is sent again, long before the PTO or the RTO.
#[test]
fn established_rack_reordering_timer_marks_lost_after_reo_wnd() {
    let mut c = Conn::new(plain_cfg(), true);
    let a = MSS;
    c.send(2);
    c.sent();
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    c.h.expect_nothing();
    let waited = c.wait_for_send(c.rto()).expect("a retransmission");
    assert!(waited >= reo_wnd() && waited < RTT, "reordering timer after {waited:?}, reo_wnd {:?}", reo_wnd());
    assert_eq!(c.sent(), vec![a]);
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_loss_probes, k.tcp_ext_tcp_timeouts), (0, 0));
}

/// `rack: false` (Linux `tcp_recovery` = 0): one SACKed segment is not enough; nothing is
/// re-sent at the SACK.
#[test]
fn established_rack_off_waits_for_dupthresh() {
    let mut c = Conn::new(Config { rack: false, tlp: false, ..plain_cfg() }, true);
    let a = MSS;
    c.send(1);
    c.sent();
    c.h.advance(reo_wnd().saturating_mul(2));
    c.send(1);
    c.sent();
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    c.h.expect_nothing();
}

/// A review finding: with the peer's window shut (zero window, RFC 9293 §3.8.6.1), a probe of
/// the last segment would go past the window edge. Linux's `__tcp_retransmit_skb` refuses a
/// segment starting at or past the window's end unless it starts at SND.UNA; no probe goes out,
/// and the RTO / persist path takes over.
#[test]
fn established_no_probe_past_a_zero_window() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = MSS; // the warm-up segment
    c.send(4);
    assert_eq!(c.sent().len(), 4);
    c.h.advance(RTT);
    // The first of the four is acknowledged, and the window closes.
    let to = c.h.addr(80);
    c.h.deliver(&craft_opts(peer_addr(), to, c.p, c.iss1 + base + MSS, ACK, &[], TcpOptions::default(), 0));
    let _ = c.h.take();
    c.h.advance(pto() + RTT);
    let sent = c.sent();
    assert!(sent.iter().all(|&off| off == base + MSS), "only SND.UNA may go out into a zero window: {sent:?}");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probes, 0);
}

/// RFC 8985 §6.2 step 2 / §6.3: a retransmission carries its own send time, so one that is
/// lost too is found as any segment is, once data sent after it is delivered, and goes again
/// at once (TcpExtTCPLostRetransmit, as Linux counts it). When a retransmission kept its
/// original's time, RACK could not tell it lost and the RTO repaired it.
///
///   t0          --> 0..9                     (2 is lost)
///   t1 = t0+RTT <-- ACK 2, SACK 3..9          RACK: 2 lost, recovery
///               --> 2 again, then new 10..12  (the retransmission is lost too)
///   t1+RTT      <-- ACK 2, SACK 3..12         10..12 went out after 2's retransmission
///               --> 2 a third time, at once, long before the RTO
#[test]
fn established_rack_repairs_a_lost_retransmission_before_the_rto() {
    let mut c = Conn::new(plain_cfg(), true);
    let seg = |i: u32| MSS + i * MSS; // after the warm-up segment
    c.send(10);
    assert_eq!(c.sent().len(), 10);
    c.h.advance(RTT);
    c.ack(seg(2), &[(seg(3), seg(10))]);
    assert_eq!(c.sent(), vec![seg(2)], "RACK: 2 is lost");
    let first = c.h.now;
    let rto = c.rto();
    c.send(3);
    assert_eq!(c.sent(), vec![seg(10), seg(11), seg(12)], "new data fills the window (NextSeg rule 2)");
    c.h.advance(RTT);
    c.ack(seg(2), &[(seg(3), seg(13))]);
    assert_eq!(c.sent(), vec![seg(2)], "the lost retransmission goes again");
    let again = c.h.now.saturating_since(first);
    assert!(again < rto, "second retransmission {again:?} after the first, RTO {rto:?}");
    c.h.advance(RTT);
    c.ack(seg(13), &[]);
    assert_eq!(c.unacked(), 0);
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_timeouts, k.tcp_ext_tcp_lost_retransmit, k.tcp_retrans_segs), (0, 1, 2));
}

/// A and B (a segment each) go out together; B's SACK comes an RTT later and A `late` after
/// that (the reordering timer may fire in between). If A was sent again, the peer D-SACKs
/// the retransmission when it arrives. Returns whether A was sent again.
fn a_arrives_late(c: &mut Conn, late: Duration) -> bool {
    let a = c.next_off();
    c.send(2);
    assert_eq!(c.sent(), vec![a, a + MSS]);
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    let until = c.h.now + late;
    c.h.run_until(until);
    let resent = c.sent();
    c.ack(a + 2 * MSS, &[]);
    if resent.is_empty() {
        return false;
    }
    assert_eq!(resent, vec![a]);
    c.h.advance(RTT);
    c.ack(a + 2 * MSS, &[(a, a + MSS)]);
    assert!(c.sent().is_empty());
    true
}

/// A and B go out together and A is lost: the reordering timer sends it again, which repairs
/// it (one loss recovery, no D-SACK).
fn a_lost(c: &mut Conn) {
    let a = c.next_off();
    c.send(2);
    assert_eq!(c.sent(), vec![a, a + MSS]);
    c.h.advance(RTT);
    c.ack(a, &[(a + MSS, a + 2 * MSS)]);
    c.wait_for_send(c.rto()).expect("A again");
    assert_eq!(c.sent(), vec![a]);
    c.h.advance(RTT);
    c.ack(a + 2 * MSS, &[]);
    assert_eq!(c.unacked(), 0);
}

/// Longer than RACK.min_RTT / 4, shorter than twice that.
fn late_by_1_5_reo_wnd() -> Duration {
    Duration(reo_wnd().0 * 3 / 2)
}

/// RFC 8985 §6.2 steps 3-4 as Linux's `tcp_rack_update_reo_wnd` applies them: reordering is
/// seen (data never sent again arrives below data delivered before it); then a segment
/// arrives later than the window allows and is sent again needlessly, and the D-SACK for
/// the duplicate widens the window by another RACK.min_RTT / 4, so the same reordering is
/// no longer taken for a loss.
#[test]
fn established_rack_dsack_widens_the_reordering_window() {
    let mut c = Conn::new(plain_cfg(), true);
    assert!(!a_arrives_late(&mut c, Duration(reo_wnd().0 / 2)), "within the window");
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "later than the window: sent again");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_dsack_recv, 1);
    assert!(!a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "the window has grown");
    assert!(!a_arrives_late(&mut c, late_by_1_5_reo_wnd()));
    assert_eq!(c.h.shard.counters().tcp_retrans_segs, 1);
}

/// RFC 8985 §6.2 step 4: the widened window lasts 16 loss recoveries (RACK.reo_wnd_persist,
/// Linux `TCP_RACK_RECOVERY_THRESH`), then shrinks back to RACK.min_RTT / 4.
#[test]
fn established_rack_widened_window_lasts_16_recoveries() {
    let mut c = Conn::new(plain_cfg(), true);
    assert!(!a_arrives_late(&mut c, Duration(reo_wnd().0 / 2)));
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()));
    for _ in 0..15 {
        a_lost(&mut c);
    }
    assert!(!a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "still wide after 15 recoveries");
    a_lost(&mut c);
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "back to min_RTT / 4 after 16");
}

/// Linux (`tcp_dsack_seen`) counts a D-SACK towards the window only once reordering was seen,
/// since only then can RACK have mistaken reordering for a loss: a late segment that was
/// itself sent again (retransmitted data arriving late is not reordering, RFC 8985 §6.2
/// step 3) leaves the window as it was.
#[test]
fn established_rack_dsack_before_any_reordering_leaves_the_window() {
    let mut c = Conn::new(plain_cfg(), true);
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()));
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "the window did not grow");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_dsack_recv, 2);
}

/// RFC 8985 §7.4.2 (Linux `tcp_process_tlp_ack` with `FLAG_DSACK_TLP`): only a D-SACK for the
/// probe itself (ending at TLP.end_seq, one segment long) shows that the probe was not
/// needed. Here the probe repaired the loss, and its ACK also D-SACKs an earlier segment the
/// network had duplicated: the episode stays open, and the next ACK past it counts the
/// repair and reduces the window, as for any loss.
#[test]
fn established_dsack_for_other_data_does_not_end_the_probe_episode() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = MSS;
    c.send(4);
    c.sent();
    c.h.advance(RTT);
    c.ack(base + 3 * MSS, &[]);
    c.wait_for_send(c.rto()).expect("a probe");
    assert_eq!(c.sent(), vec![base + 3 * MSS]);
    let cwnd = c.h.shard.info(c.id).unwrap().cwnd;
    c.h.advance(RTT);
    c.ack(base + 4 * MSS, &[(base, base + MSS)]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_dsack_recv, 1);
    c.send(1);
    assert_eq!(c.sent(), vec![base + 4 * MSS]);
    c.h.advance(RTT);
    c.ack(base + 5 * MSS, &[]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probe_recovery, 1);
    assert!(c.h.shard.info(c.id).unwrap().ssthresh < cwnd, "the repaired loss reduces the window");
}

/// Linux (`FLAG_DSACK_TLP` in `tcp_dsack_seen`): the D-SACK for an unneeded loss probe does
/// not widen RACK's window; the probe timer, not RACK, sent the duplicate.
#[test]
fn established_probe_dsack_does_not_widen_the_reordering_window() {
    let mut c = Conn::new(plain_cfg(), true);
    assert!(!a_arrives_late(&mut c, Duration(reo_wnd().0 / 2)), "reordering seen");
    let a = c.next_off();
    c.send(2);
    c.sent();
    c.wait_for_send(c.rto()).expect("a probe");
    assert_eq!(c.sent(), vec![a + MSS]);
    c.ack(a + 2 * MSS, &[]);
    c.ack(a + 2 * MSS, &[(a + MSS, a + 2 * MSS)]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_loss_probe_recovery, 0);
    assert!(a_arrives_late(&mut c, late_by_1_5_reo_wnd()), "the window did not grow");
}

// ---------------------------------------------------------------------------------------------
// F-RTO (RFC 5682 §3, SACK-enhanced; Linux's default `tcp_frto` = 2) and the undo of a
// spurious timeout (RFC 4015 §3, Linux `tcp_try_undo_loss`)
// ---------------------------------------------------------------------------------------------

/// Six segments go out; the peer holds every ACK (a stalled receiver, a delayed ACK) past the
/// probe and the retransmission timeout. Returns the offset of the first of them and the
/// window before the timeout, once that first segment has gone out again.
fn timeout_over_a_silent_peer(c: &mut Conn) -> (u32, u32) {
    let base = c.next_off();
    c.send(6);
    assert_eq!(c.sent().len(), 6);
    let cwnd = c.h.shard.info(c.id).unwrap().cwnd;
    let rto = c.rto();
    c.wait_for_send(rto).expect("a probe");
    c.sent();
    c.wait_for_send(rto.saturating_mul(2)).expect("the RTO");
    assert_eq!(c.sent(), vec![base], "the timeout sends the first segment again");
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_timeouts, 1);
    (base, cwnd)
}

/// RFC 5682 §3 step 3.b: the first ACK after the timeout acknowledges segments that were sent
/// only once, before it: they were never lost, the timeout was spurious. The window comes
/// back (RFC 4015 §3: cwnd and ssthresh as before the timeout), go-back-N stops (nothing it
/// had yet to resend is sent again) and `TcpExtTCPSpuriousRTOs` counts it.
///
///   --> 1..6, then the probe (7)        (the peer's ACKs held)
///   RTO --> 1 again
///       <-- ACK 7 (everything: the originals had arrived)
///       --> new data at the restored window, none of 2..6 again
#[test]
fn established_spurious_timeout_is_undone_by_frto() {
    let mut c = Conn::new(plain_cfg(), true);
    let (base, before) = timeout_over_a_silent_peer(&mut c);
    c.send(20);
    assert_eq!(c.sent(), Vec::<u32>::new(), "one segment in flight after the timeout: cwnd 1");
    let end = base + 6 * MSS;
    c.ack(end, &[]);
    let info = c.h.shard.info(c.id).unwrap();
    assert!(info.cwnd >= before, "cwnd {} after the undo, {before} before the timeout", info.cwnd);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 1);
    let sent = c.sent();
    assert!(sent.iter().all(|&o| o >= end), "only new data after the undo, sent {sent:?}");
    assert!(sent.len() as u32 * MSS >= before, "the restored window is used: {sent:?}");
}

/// A new SACK block over a segment sent only once is the same proof (RFC 5682 §3 step 3.b,
/// Linux FLAG_ORIG_SACK_ACKED): not everything was lost, so the timeout's one-segment window
/// is undone. The hole below the block (the second segment, sent long before a delivered one)
/// is a new loss: RACK finds it (once RACK.rtt and the reordering window have passed) and a
/// fast recovery sends it, without another timeout: the undo gave up the timeout's recovery
/// point, as Linux returns to Open.
#[test]
fn established_sack_of_an_original_after_a_timeout_undoes_it() {
    let mut c = Conn::new(plain_cfg(), true);
    let (base, before) = timeout_over_a_silent_peer(&mut c);
    c.ack(base, &[(base + 2 * MSS, base + 4 * MSS)]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 1);
    let cwnd = c.h.shard.info(c.id).unwrap().cwnd;
    assert!(cwnd >= before, "cwnd {cwnd} after the undo, {before} before the timeout");
    let rto = c.rto();
    let mut resent = c.sent();
    while !resent.contains(&(base + MSS)) {
        c.wait_for_send(rto).expect("the hole is sent again");
        resent = c.sent();
    }
    let k = c.h.shard.counters();
    assert_eq!((k.tcp_ext_tcp_timeouts, k.tcp_ext_tcp_sack_recovery), (1, 1), "repaired by a recovery");
}

/// A SACK for the loss probe's copy of the last segment proves nothing about the segments
/// before it (Linux counts only never-retransmitted segments for FLAG_ORIG_SACK_ACKED): the
/// whole flight may have been lost and only the probe arrived. No undo.
///
///   --> 1..6 (all lost), probe: 6 again (arrives)
///   RTO --> 1 again
///       <-- ACK 0, SACK 6 (the probe's)
///       the timeout stands: cwnd stays at its reduced value
#[test]
fn established_sack_of_the_probe_copy_does_not_undo_a_timeout() {
    let mut c = Conn::new(plain_cfg(), true);
    let (base, before) = timeout_over_a_silent_peer(&mut c);
    c.ack(base, &[(base + 5 * MSS, base + 6 * MSS)]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 0);
    let cwnd = c.h.shard.info(c.id).unwrap().cwnd;
    assert!(cwnd < before, "cwnd {cwnd} stays reduced (was {before})");
}

/// RFC 5682 §3 step 2 / 3.a: the first ACK after the timeout covers only the segment the
/// timeout sent again: the originals after it are not known to have arrived, the loss was
/// real. Nothing is undone and go-back-N goes on from where it was.
#[test]
fn established_timeout_that_was_a_real_loss_is_not_undone() {
    let mut c = Conn::new(plain_cfg(), true);
    let (base, before) = timeout_over_a_silent_peer(&mut c);
    c.ack(base + MSS, &[]);
    let info = c.h.shard.info(c.id).unwrap();
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 0);
    assert!(info.cwnd < before, "cwnd {} stays reduced (was {before})", info.cwnd);
    assert_eq!(c.sent(), vec![base + MSS, base + 2 * MSS], "go-back-N resends 2 and 3 in slow start");
    // A later ACK that covers originals no longer judges the timeout: F-RTO looks at the
    // first acknowledgment only.
    c.ack(base + 4 * MSS, &[]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 0);
}

/// SACK blocks the peer sent before the timeout prove nothing new: an ACK after it that only
/// reaches what was already SACKed is not taken for a spurious timeout.
#[test]
fn established_timeout_ack_over_data_sacked_before_is_not_undone() {
    let mut c = Conn::new(plain_cfg(), true);
    let base = c.next_off();
    c.send(6);
    assert_eq!(c.sent().len(), 6);
    // The first segment lost; the next two SACKed (too few for a recovery), then silence.
    c.ack(base, &[(base + MSS, base + 3 * MSS)]);
    c.sent();
    let rto = c.rto();
    while c.h.shard.counters().tcp_ext_tcp_timeouts == 0 {
        c.wait_for_send(rto.saturating_mul(2)).expect("a probe or the RTO");
        c.sent();
    }
    // The retransmitted first segment arrives: the ACK jumps over the two SACKed before.
    c.ack(base + 3 * MSS, &[]);
    assert_eq!(c.h.shard.counters().tcp_ext_tcp_spurious_rtos, 0);
}
