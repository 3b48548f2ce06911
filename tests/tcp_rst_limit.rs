//! The RST rate limit (`rst_rate_limit`, see `xdptcp::tcp::rst_limit`): RFC 9293 §3.10.7.1
//! answers every segment that matches nothing with a RST, which reflects a stray-ACK flood
//! 1:1; the shard bounds those RSTs per second, counts the rest, and still resets a real
//! half-open peer (RFC 9293 §3.5.2, Figure 10) while a flood runs. Time is the test's clock.

mod common;
use common::*;
use std::net::{Ipv4Addr, SocketAddr};
use xdptcp::tcp::{CloseReason, Config, Event, State};
use xdptcp::time::Duration;

const RATE: u64 = 200;
const BURST: u64 = 200;

fn cfg() -> Config {
    Config { rst_rate_limit: RATE as u32, rst_rate_burst: BURST as u32, ..plain_cfg() }
}

/// A deterministic stream of spoofed sources (198.19.0.0/16, any port) and sequence numbers.
struct Spoofer(u64);

impl Spoofer {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn src(&mut self) -> SocketAddr {
        let r = self.next();
        SocketAddr::new(Ipv4Addr::from(0xc613_0000u32 | (r as u32 & 0xffff)).into(), 1024 + (r >> 48) as u16 % 60_000)
    }
    /// A pure ACK from a random source: the ACK flood of the issue.
    fn ack(&mut self, dst: SocketAddr) -> Vec<u8> {
        let (src, r) = (self.src(), self.next());
        craft(src, dst, r as u32, (r >> 32) as u32, ACK, b"")
    }
    /// A data segment from a random source.
    fn data(&mut self, dst: SocketAddr) -> Vec<u8> {
        let (src, r) = (self.src(), self.next());
        craft(src, dst, r as u32, (r >> 32) as u32, ACK, b"flood")
    }
}

fn rsts(h: &mut Host) -> u64 {
    h.take_segs().iter().filter(|s| s.flags.rst()).count() as u64
}

/// Delivers `n` segments made by `make`, spread evenly over `span`, from `h.now` on; returns
/// the RSTs they drew. The clock ends at the start plus `span`.
fn flood(h: &mut Host, n: u64, span: Duration, mut make: impl FnMut() -> Vec<u8>) -> u64 {
    let t0 = h.now;
    let mut sent = 0;
    for i in 0..n {
        h.now = t0 + Duration::from_nanos(span.as_nanos() * i / n);
        h.deliver(&make());
        sent += rsts(h);
    }
    h.now = t0 + span;
    sent
}

/// The flood: 10,000 stray ACKs within one second, to a closed port and to a listener
/// (a bad ACK to LISTEN, §3.10.7.2, is reset too), draw at most burst + rate RSTs; the
/// counter holds the rest. Without the limit every ACK drew a RST.
#[test]
fn ack_flood_within_a_second_draws_at_most_burst_plus_rate() {
    for port in [9, 80] {
        let mut b = Host::new("198.18.0.1", cfg(), 1);
        b.shard.listen(80, None, 128).unwrap();
        let dst = b.addr(port);
        let mut s = Spoofer(7);
        let sent = flood(&mut b, 10_000, Duration::from_millis(999), || s.ack(dst));
        let c = b.shard.counters();
        assert!(sent <= BURST + RATE, "port {port}: {sent} RSTs for 10,000 stray ACKs");
        // Pure ACKs spend all but the reserve: a quarter of the burst, plus a second's refill.
        assert!(sent >= BURST * 3 / 4 + RATE * 9 / 10, "port {port}: only {sent} RSTs");
        assert_eq!(c.tcp_out_rsts, sent);
        assert_eq!(c.tcp_ext_rst_rate_limited, 10_000 - sent, "port {port}: every suppressed RST counted");
    }
}

/// Bad ACKs to a SYN-queue entry (one spoofed SYN makes one) fall under the same bucket.
#[test]
fn bad_acks_to_a_syn_queue_entry_are_bounded() {
    let mut b = Host::new("198.18.0.1", cfg(), 1);
    b.shard.listen(80, None, 128).unwrap();
    let peer: SocketAddr = "198.19.7.7:5555".parse().unwrap();
    b.deliver(&craft(peer, b.addr(80), 100, 0, SYN, b""));
    assert!(Seg::parse(&b.take_one()).is(synack()));
    let mut r = Spoofer(3);
    let dst = b.addr(80);
    let sent = flood(&mut b, 5_000, Duration::from_millis(500), || craft(peer, dst, 101, r.next() as u32, ACK, b""));
    assert!(sent <= BURST + RATE / 2, "{sent} RSTs");
    assert_eq!(b.shard.counters().tcp_ext_rst_rate_limited, 5_000 - sent);
    assert_eq!(b.state_of(80, peer), Some(State::SynReceived));
}

/// Tokens come back at the rate, and no more than the burst after a quiet spell.
#[test]
fn tokens_refill_with_time() {
    let mut b = Host::new("198.18.0.1", cfg(), 1);
    let dst = b.addr(9);
    let mut s = Spoofer(11);
    flood(&mut b, 2_000, Duration::from_millis(1), || s.ack(dst));
    assert_eq!(flood(&mut b, 2_000, Duration::ZERO, || s.ack(dst)), 0, "bucket empty");
    b.now = b.now + Duration::from_millis(100);
    assert_eq!(flood(&mut b, 2_000, Duration::ZERO, || s.ack(dst)), RATE / 10, "100 ms refill");
    b.now = b.now + Duration::from_secs(60);
    assert_eq!(flood(&mut b, 2_000, Duration::ZERO, || s.ack(dst)), BURST * 3 / 4, "capped at the burst");
}

/// A data flood from many spoofed sources is bounded too (it can spend the reserve).
#[test]
fn spoofed_data_flood_is_bounded() {
    let mut b = Host::new("198.18.0.1", cfg(), 1);
    let dst = b.addr(9);
    let mut s = Spoofer(5);
    let sent = flood(&mut b, 10_000, Duration::from_millis(999), || s.data(dst));
    assert!(sent <= BURST + RATE, "{sent}");
    assert_eq!(b.shard.counters().tcp_ext_rst_rate_limited, 10_000 - sent);
}

/// Every limit off: RFC 9293's one RST per segment, nothing counted as limited.
#[test]
fn limit_off_answers_one_to_one() {
    let mut b = Host::new("198.18.0.1", Config { rst_rate_limit: 0, ..cfg() }, 1);
    b.shard.listen(80, None, 128).unwrap();
    let (closed, listen) = (b.addr(9), b.addr(80));
    let mut s = Spoofer(9);
    let mut i = 0u32;
    let sent = flood(&mut b, 10_000, Duration::from_millis(999), || {
        i += 1;
        if i % 2 == 0 {
            s.ack(closed)
        } else {
            s.ack(listen)
        }
    });
    assert_eq!(sent, 10_000);
    assert_eq!(b.shard.counters().tcp_ext_rst_rate_limited, 0);
}

/// RFC 9293 §3.5.2 Figure 10 under a flood: the server restarted (a new shard that knows
/// nothing of the connection), a spoofed-source ACK flood far above the limit runs against it,
/// and the client's next data segment must still draw the RST, on its first transmission or
/// its first retransmission, so the client aborts instead of retransmitting for minutes.
#[test]
fn half_open_peer_is_reset_while_a_spoofed_ack_flood_runs() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 1);
    let mut b = Host::new("198.18.0.1", cfg(), 2);
    let (ida, _) = handshake(&mut a, &mut b);
    // The server loses its state (SIGKILL and restart): same address, listener back, no TCB.
    let mut b = Host::new("198.18.0.1", cfg(), 3);
    b.now = a.now;
    b.shard.listen(80, None, 128).unwrap();
    let (closed, listen) = (b.addr(9), b.addr(80));
    let mut s = Spoofer(13);
    // The flood has run for a while: the bucket is down to its reserve.
    flood(&mut b, 20_000, Duration::from_secs(1), || s.ack(listen));
    a.now = b.now;
    a.shard.send(ida, b"are you there").unwrap();
    a.flush();
    let mut transmissions = 0;
    let limited_before = b.shard.counters().tcp_ext_rst_rate_limited;
    // 20 stray ACKs per millisecond (20,000/s, a hundred times the limit) for 5 seconds.
    for ms in 1..=5_000u64 {
        for i in 0..20 {
            b.deliver(&s.ack(if i % 2 == 0 { closed } else { listen }));
        }
        for p in a.take() {
            if !Seg::parse(&p).payload.is_empty() {
                transmissions += 1;
            }
            b.deliver(&p);
        }
        for p in b.take() {
            if Seg::parse(&p).dst.ip() == a.ip {
                a.deliver(&p);
            }
        }
        if a.state(ida) == Some(State::Closed) {
            break;
        }
        let t = b.now + Duration::from_millis(1);
        b.now = t;
        a.run_until(t);
        assert!(ms < 5_000, "never reset");
    }
    assert!(a.take_events().contains(&Event::Closed(ida, CloseReason::Reset)));
    assert!((1..=2).contains(&transmissions), "reset after {transmissions} transmissions");
    // Meanwhile the flood's own ACKs went unanswered.
    assert!(limited_before > 15_000);
    assert!(b.shard.counters().tcp_ext_rst_rate_limited >= limited_before + 19 * transmissions);
}

/// One host sending data to dead connections (no spoofing) takes at most half the tokens:
/// another host's half-open connection is still reset.
#[test]
fn one_source_cannot_take_every_token() {
    let mut b = Host::new("198.18.0.1", cfg(), 1);
    let dst = b.addr(9);
    let noisy: SocketAddr = "198.18.5.5:1000".parse().unwrap();
    let mut r = Spoofer(17);
    let mut port = 1000u16;
    let sent = flood(&mut b, 10_000, Duration::from_millis(999), || {
        port = port.wrapping_add(1).max(1000);
        let seq = r.next() as u32;
        craft(SocketAddr::new(noisy.ip(), port), dst, seq, seq, ACK, b"data")
    });
    assert!(sent <= (BURST + RATE) / 2, "{sent}");
    let quiet: SocketAddr = "198.18.9.9:2000".parse().unwrap();
    b.deliver(&craft(quiet, dst, 1, 1, ACK, b"data"));
    let r = b.take_segs();
    assert!(r.len() == 1 && r[0].is(RST) && r[0].dst == quiet, "{r:?}");
}

/// RSTs a connection sends are not the limiter's business: with the bucket drained by a flood,
/// SYN-SENT still resets a bad ACK (RFC 9293 §3.10.7.3), and ABORT still sends its RST.
#[test]
fn connection_rsts_are_not_limited() {
    let mut a = Host::new("198.18.0.2", cfg(), 1);
    let dst = a.addr(9);
    let mut s = Spoofer(19);
    flood(&mut a, 5_000, Duration::ZERO, || s.data(dst));
    assert!(a.shard.counters().tcp_ext_rst_rate_limited > 0);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    a.deliver(&craft(server, a.addr(40000), 7, syn.seq.wrapping_add(1000), synack(), b""));
    let r = a.take_segs();
    assert!(r.len() == 1 && r[0].is(RST) && r[0].seq == syn.seq.wrapping_add(1000), "{r:?}");

    let mut a = Host::new("198.18.0.2", cfg(), 3);
    let mut b = Host::new("198.18.0.1", cfg(), 4);
    let (_, idb) = handshake(&mut a, &mut b);
    let dst = b.addr(9);
    flood(&mut b, 5_000, Duration::ZERO, || s.data(dst));
    b.shard.abort(b.now, idb, &mut b.out).unwrap();
    assert!(b.take_segs().iter().any(|s| s.is(rstack())));
}
