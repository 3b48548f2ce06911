//! Sender silly window syndrome avoidance when nothing is in flight (RFC 9293 §3.8.6.2.1).

mod common;

use common::*;
use xdptcp::time::Duration;

fn peer() -> std::net::SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// RFC 9293 §3.8.6.2.1 (MUST-38): with D bytes queued and a usable window U, the sender sends
/// only if min(D, U) >= Eff.snd.MSS, or the data is pushed and all of it fits, or
/// min(D, U) >= Fs * Max(SND.WND) (Fs = 1/2), or on the override timeout (0.1 to 1 s).
/// Linux agrees: `tcp_snd_wnd_test` refuses a segment unless a full MSS (or the whole skb)
/// fits, and the small piece goes only from the probe timer (`tcp_write_wakeup`, after an
/// RTO). Here the peer (largest window 65535, MSS 536) acknowledges everything with a window
/// of 300 while more than 14,000 bytes wait: nothing goes at once; the 300 bytes go when the
/// override timeout (the persist timer, one RTO) expires.
#[test]
fn small_window_piece_waits_for_the_override_timeout() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.shard.send(id, &vec![5u8; 20_000]).unwrap();
    b.flush();
    let first: usize = b.take_segs().iter().map(|s| s.payload.len()).sum();
    assert!(first > 0 && first <= 65_535);
    // Everything acknowledged, window 300 (< MSS, < half the largest window).
    let una = snd.wrapping_add(first as u32);
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", Default::default(), 300));
    let now = b.take_segs();
    let silly: Vec<usize> = now.iter().map(|s| s.payload.len()).filter(|&n| n > 0).collect();
    assert!(
        silly.is_empty(),
        "sent {silly:?} byte segment(s) into a 300-byte window at once (largest window seen 65535, \
         MSS {}, {} bytes queued): MUST-38 waits for the override timeout",
        b.shard.info(id).unwrap().smss,
        20_000 - first
    );
    // The override timeout (at most 1 s; Linux: the probe timer) then lets it go.
    b.advance(Duration::from_millis(1500));
    let later: usize = b.take_segs().iter().map(|s| s.payload.len()).sum();
    assert_eq!(later, 300, "the override timeout sends what the window takes");
}

/// Sender SWS avoidance is for new data: the 300 bytes the override sent are lost, and the
/// timeout's resend goes when the retransmission timer fires, with what the window takes, not
/// one more override later (Linux's `__tcp_retransmit_skb` sends it at once).
#[test]
fn a_resend_after_a_timeout_is_not_held() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.shard.send(id, &vec![5u8; 20_000]).unwrap();
    b.flush();
    let first: usize = b.take_segs().iter().map(|s| s.payload.len()).sum();
    let una = snd.wrapping_add(first as u32);
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", Default::default(), 300));
    b.take();
    // The override sends the 300 bytes (at most 1 s later); they are lost.
    let t0 = b.now;
    let mut sent_at = None;
    while sent_at.is_none() && b.now.saturating_since(t0) < Duration::from_secs(2) {
        b.advance(Duration::from_millis(10));
        if b.take_segs().iter().any(|s| s.payload.len() == 300) {
            sent_at = Some(b.now);
        }
    }
    let t1 = sent_at.expect("the override sent the piece");
    let rto = b.shard.info(id).unwrap().rto;
    // The retransmission timer fires one RTO later and resends them at once.
    let mut resent_at = None;
    while resent_at.is_none() && b.now.saturating_since(t1) < Duration(rto.0 * 3) {
        b.advance(Duration::from_millis(10));
        if b.take_segs().iter().any(|s| s.payload.len() == 300 && s.seq == una) {
            resent_at = Some(b.now);
        }
    }
    let after = resent_at.expect("resent").saturating_since(t1);
    assert!(after <= Duration(rto.0 + 20_000_000), "resent {after:?} after the loss; RTO {rto:?}");
    assert_eq!(b.shard.counters().tcp_ext_tcp_timeouts, 1, "one timeout, one resend");
}

/// The override timeout is 0.1 to 1 s (RFC 9293 §3.8.6.2.1), whatever the RTO: with RTO.min
/// at 3 s, the held 300 bytes still go within a second, not when an RTO would have expired.
#[test]
fn the_override_timeout_waits_at_most_one_second_even_with_a_longer_rto() {
    let cfg = xdptcp::tcp::Config { rto_min: Duration::from_secs(3), ..plain_cfg() };
    let (mut b, id, snd, rcv) = established_with(peer(), cfg);
    b.shard.send(id, &vec![5u8; 20_000]).unwrap();
    b.flush();
    let first: usize = b.take_segs().iter().map(|s| s.payload.len()).sum();
    let una = snd.wrapping_add(first as u32);
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", Default::default(), 300));
    assert!(b.take_segs().iter().all(|s| s.payload.is_empty()), "held at first");
    b.advance(Duration::from_millis(1100));
    let sent: usize = b.take_segs().iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 300, "the override went within 1 s of the hold (RTO 3 s)");
}
