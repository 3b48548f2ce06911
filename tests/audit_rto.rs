//! Audit: the retransmission timer a connection starts with once the handshake is over.
//!
//! RFC 6298 (2.2)-(2.3) and Linux: a passive open samples the RTT of its handshake (SYN-ACK
//! sent, final ACK received: `tcp_v4_syn_recv_sock` -> `tcp_synack_rtt_meas`), so the first
//! data segment a server sends is timed by a measured RTO (≈ RTT + 200 ms), not the 1 s initial
//! one. RFC 6298 (5.7), a MUST: when the SYN (or SYN-ACK) had to be retransmitted, the RTO is
//! re-initialised to 3 s when data transmission begins (Linux `tcp_init_metrics`,
//! `TCP_TIMEOUT_FALLBACK`, "RFC6298: 5.7 We've failed to get a valid RTT sample from 3WHS").
//!
//! The peers here send no SACK-permitted, so no loss probe (RFC 8985, which needs SACK) mixes
//! into the timings: every resend is the retransmission timer's.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, ConnId};
use xdptcp::time::Duration;
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

fn cfg() -> Config {
    Config { timestamps: false, tlp: false, ..Config::default() }
}

/// Steps the clock by 5 ms up to `limit` after now; returns how long after the start the first
/// segment carrying payload came out again (a retransmission), if any.
fn first_data_resend(b: &mut Host, limit: Duration) -> Option<Duration> {
    let start = b.now;
    let step = Duration::from_millis(5);
    while b.now.saturating_since(start) < limit {
        b.advance(step);
        b.flush();
        let segs = b.take_segs();
        if segs.iter().any(|s| !s.payload.is_empty()) {
            return Some(b.now.saturating_since(start));
        }
    }
    None
}

/// A server connection from crafted segments: SYN now, final ACK `ack_after` later (the SYN-ACK
/// retransmissions in between are let out and ignored). Returns (host, id, SND.NXT, RCV.NXT).
fn passive(ack_after: Duration) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg(), 11);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 7_000_000u32;
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    b.run_until(b.now + ack_after);
    b.flush();
    b.take();
    let snd = sa.seq.wrapping_add(1);
    let rcv = isn.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, ACK, b""));
    let id = b.shard.accept(80).expect("handshake completes");
    b.take_events();
    b.take();
    (b, id, snd, rcv)
}

/// 10 ms handshake, then the server's first segment is lost. Linux retransmits it one RTO
/// later, RTO = SRTT + max(4·RTTVAR, 200 ms) ≈ 210 ms from the handshake's sample; a stack that
/// took no sample waits the initial 1 s.
#[test]
fn passive_open_samples_the_handshake_rtt() {
    let (mut b, id, _, _) = passive(Duration::from_millis(10));
    let info = b.shard.info(id).unwrap();
    b.shard.send(id, &[b'x'; 100]).unwrap();
    b.flush();
    assert_eq!(b.take_segs().len(), 1);
    let at = first_data_resend(&mut b, Duration::from_secs(2)).expect("a retransmission");
    assert!(
        at <= Duration::from_millis(500),
        "first retransmission {at:?} after the send (Linux: ~210 ms); after the handshake srtt {:?} rto {:?}",
        info.srtt,
        info.rto
    );
}

/// RFC 6298 (5.7): the SYN-ACK was retransmitted (no RTT sample is possible, Karn); data sent
/// after the handshake is timed with a 3 s RTO.
#[test]
fn rfc6298_5_7_rto_is_3s_after_a_synack_retransmission() {
    let (mut b, id, _, _) = passive(Duration::from_millis(1020));
    assert!(b.shard.counters().tcp_ext_tcp_syn_retrans >= 1, "the SYN-ACK went twice");
    b.shard.send(id, &[b'x'; 100]).unwrap();
    b.flush();
    assert_eq!(b.take_segs().len(), 1);
    let at = first_data_resend(&mut b, Duration::from_secs(4)).expect("a retransmission");
    assert!(at >= Duration::from_secs(3), "first data retransmission after {at:?}, RFC 6298 (5.7) says 3 s");
}

/// RFC 6298 (5.7), active side: the SYN timed out once, the SYN-ACK (no timestamps) gives no
/// sample; the first data retransmission must not come before 3 s.
#[test]
fn rfc6298_5_7_rto_is_3s_after_a_syn_retransmission() {
    let mut a = Host::new("198.18.0.2", cfg(), 12);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    a.run_until(a.now + Duration::from_millis(1010));
    a.flush();
    let again = a.take_segs();
    assert!(again.iter().any(|s| s.is(SYN)), "SYN retransmitted after 1 s: {again:?}");
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    a.deliver(&craft_opts(server, a.addr(40000), 9_000_000, syn.seq.wrapping_add(1), synack(), b"", o, 65535));
    a.take();
    assert_eq!(a.state(id), Some(xdptcp::tcp::State::Established));
    a.shard.send(id, &[b'y'; 100]).unwrap();
    a.flush();
    assert_eq!(a.take_segs().len(), 1);
    let at = first_data_resend(&mut a, Duration::from_secs(4)).expect("a retransmission");
    assert!(at >= Duration::from_secs(3), "first data retransmission after {at:?}, RFC 6298 (5.7) says 3 s");
}
