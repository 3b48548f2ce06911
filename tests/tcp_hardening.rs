//! Attacks and corner cases that are easy to get wrong: each test is a segment sequence that
//! broke (or would break) a naive reading of RFC 9293 §3.10, RFC 5961, RFC 7323 or RFC 6191.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, ConnId, State, SynCookies, TxSink};
use xdptcp::time::Duration;
use xdptcp::wire::{TcpFlags, TcpOptions};

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// A server connection built from crafted segments with timestamps; returns (host, id, our
/// SND.NXT, our next expected sequence, the peer's TSval so far, our TSval).
fn est_ts() -> (Host, ConnId, u32, u32, u32, u32) {
    let mut b = Host::new("198.18.0.1", Config::default(), 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), timestamps: Some((1000, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1000, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let our_ts = sa.options.timestamps.unwrap().0;
    let ack_opts = TcpOptions { timestamps: Some((1001, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1001, sa.seq.wrapping_add(1), ACK, b"", ack_opts, 65535));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, sa.seq.wrapping_add(1), 1001, 1001, our_ts)
}

/// RFC 7323 §4.3 with RFC 5961 §5: a blind in-window segment with an unacceptable ACK draws a
/// challenge ACK and must not move TS.Recent; the real peer's next segment is still accepted.
#[test]
fn blind_segment_cannot_poison_ts_recent() {
    let (mut b, id, snd_nxt, rcv_nxt, peer_ts, our_ts) = est_ts();
    let evil = TcpOptions { timestamps: Some((peer_ts.wrapping_add(0x7fff_0000), our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), rcv_nxt, snd_nxt.wrapping_add(0x4000_0000), ACK, b"evil", evil, 65535));
    assert!(Seg::parse(&b.take_one()).is(ACK), "challenge ACK");
    assert_eq!(b.shard.readable(id), 0);
    let real = TcpOptions { timestamps: Some((peer_ts + 5, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), rcv_nxt, snd_nxt, ACK | TcpFlags::PSH, b"real", real, 65535));
    assert_eq!(b.recv_all(id), b"real", "the peer's data was PAWS-rejected");
    assert_eq!(b.shard.counters().tcp_ext_paws_estab_rejected, 0);
}

/// RFC 9293 §3.10.7.4: the SYN check comes after the sequence check, so a blind out-of-window
/// SYN for a tuple in SYN-RECEIVED draws an ACK and leaves the entry; the real ACK completes.
#[test]
fn out_of_window_syn_does_not_kill_syn_received() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 5);
    b.shard.listen(80, None, 16).unwrap();
    b.deliver(&craft(peer(), b.addr(80), 100, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    b.deliver(&craft(peer(), b.addr(80), 5_000_000, 0, SYN, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(ACK));
    assert_eq!(r.ack, 101);
    assert_eq!(b.state_of(80, peer()), Some(State::SynReceived));
    b.deliver(&craft(peer(), b.addr(80), 101, sa.seq.wrapping_add(1), ACK, b""));
    assert_eq!(b.state_of(80, peer()), Some(State::Established));
}

/// RFC 9293 §3.8.6.1 (MUST-37): as long as the receiver answers the zero-window probes, the
/// connection stays open, however many probes that takes.
#[test]
fn answered_zero_window_probes_never_abort() {
    let cfg = Config { retries2: 3, ..plain_cfg() };
    let mut a = Host::new("198.18.0.2", cfg, 1);
    let mut b = Host::new("198.18.0.1", Config { rcv_buf: 4096, ..plain_cfg() }, 2);
    let (ida, _idb) = handshake(&mut a, &mut b);
    a.shard.send(ida, &[7u8; 20_000]).unwrap();
    a.flush();
    let t0 = a.now;
    let mut probes = 0;
    for step in 1..=1200u64 {
        let t = t0 + Duration::from_millis(step * 500);
        a.run_until(t);
        b.run_until(t);
        for p in a.take() {
            if Seg::parse(&p).payload.is_empty() {
                probes += 1;
            }
            b.deliver(&p);
        }
        for p in b.take() {
            a.deliver(&p);
        }
    }
    assert!(probes > 5, "probes: {probes}");
    assert_eq!(a.state(ida), Some(State::Established));
}

/// A sink with no free frame: what a full TX ring looks like.
struct NoFrames;
impl TxSink for NoFrames {
    fn send_ip(&mut self, _: std::net::IpAddr, _: usize, _: &mut dyn FnMut(&mut [u8])) -> bool {
        false
    }
}

/// A SYN that found no free frame is treated as sent and lost: the retransmission timer is
/// armed, and the SYN goes out when frames are back. Nothing waits without a timer.
#[test]
fn syn_without_a_frame_is_retransmitted() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 1);
    let id = a.shard.connect(a.now, a.addr(40000), "198.18.0.1:80".parse().unwrap()).unwrap();
    a.shard.poll_transmit(a.now, &mut NoFrames);
    assert!(a.shard.poll_timeout().is_some(), "no timer after a failed SYN");
    assert_eq!(a.shard.counters().tcp_ext_tx_no_frame, 1);
    a.advance(Duration::from_secs(1));
    assert!(Seg::parse(&a.take_one()).is(SYN));
    assert_eq!(a.state(id), Some(State::SynSent));
}

/// With keepalive on, deadlines that keep moving later do not pile up in the timer heap.
#[test]
fn keepalive_does_not_grow_the_timer_heap() {
    let cfg = Config { keepalive: true, ..plain_cfg() };
    let mut a = Host::new("198.18.0.2", cfg.clone(), 1);
    let mut b = Host::new("198.18.0.1", cfg, 2);
    let (ida, _idb) = handshake(&mut a, &mut b);
    for _ in 0..1000 {
        a.shard.send(ida, b"x").unwrap();
        a.flush();
        for p in a.take() {
            b.deliver(&p);
        }
        b.advance(Duration::from_millis(100)); // the delayed ACK fires every time
        for p in b.take() {
            a.deliver(&p);
        }
        a.advance(Duration::from_millis(1));
    }
    assert!(b.shard.timer_heap_len() < 8, "heap: {}", b.shard.timer_heap_len());
    assert!(a.shard.timer_heap_len() < 8, "heap: {}", a.shard.timer_heap_len());
}

/// RFC 6191: a SYN that could reuse a TIME-WAIT tuple, on a port nobody listens on, leaves
/// TIME-WAIT in place and is answered with its ACK (never with a RST).
#[test]
fn time_wait_stays_when_nobody_takes_the_syn() {
    // The client (no listener) closes first and holds TIME-WAIT.
    let mut c = Host::new("198.18.0.2", plain_cfg(), 1);
    let mut d = Host::new("198.18.0.1", plain_cfg(), 2);
    let (idc, idd) = handshake(&mut c, &mut d);
    c.close(idc);
    d.deliver(&c.take_one());
    d.close(idd);
    for p in d.take() {
        c.deliver(&p);
    }
    let last = Seg::parse(&c.take_one());
    assert_eq!(c.state_of(40000, d.addr(80)), Some(State::TimeWait));
    // A SYN to the client's port with a higher sequence number: RFC 6191 would allow reuse,
    // but nobody listens there.
    c.deliver(&craft(d.addr(80), c.addr(40000), last.ack.wrapping_add(100_000), 0, SYN, b""));
    let r = Seg::parse(&c.take_one());
    assert!(r.is(ACK), "TIME-WAIT answers with its ACK, not a RST: {r:?}");
    assert_eq!(c.state_of(40000, d.addr(80)), Some(State::TimeWait));
}

/// A cookie SYN-ACK for a SYN without timestamps offers no window scale and no SACK: the final
/// ACK could not bring them back (Linux clears them too).
#[test]
fn cookie_without_timestamps_offers_no_window_scale() {
    let cfg = Config { syncookies: SynCookies::Always, sack: true, ..Config::default() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1000, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    assert_eq!(sa.options.window_scale, None);
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamps, None);
}

/// Data on the ACK that completes the handshake is ACKed (after the delayed-ACK timer) even
/// while the connection waits in the accept queue.
#[test]
fn data_on_the_final_ack_is_acked() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 5);
    b.shard.listen(80, None, 16).unwrap();
    b.deliver(&craft(peer(), b.addr(80), 100, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    b.deliver(&craft(peer(), b.addr(80), 101, sa.seq.wrapping_add(1), ACK | TcpFlags::PSH, b"hello"));
    b.advance(Duration::from_millis(40));
    let ack = Seg::parse(&b.take_one());
    assert!(ack.is(ACK));
    assert_eq!(ack.ack, 106);
}

/// After a timeout pulled SND.NXT back, a RST (abort) carries the highest sequence number sent,
/// the one the peer expects: otherwise RFC 5961 makes the peer drop it.
#[test]
fn abort_after_timeout_sends_an_acceptable_rst() {
    let (mut a, mut b) = (Host::new("198.18.0.2", plain_cfg(), 1), Host::new("198.18.0.1", plain_cfg(), 2));
    let (ida, idb) = handshake(&mut a, &mut b);
    a.shard.send(ida, &[1u8; 3000]).unwrap();
    a.flush();
    for p in a.take() {
        b.deliver(&p); // B gets everything; its ACKs are lost
    }
    b.take();
    a.advance(Duration::from_secs(1)); // RTO: one segment again, SND.NXT pulled back
    a.take();
    a.shard.abort(a.now, ida, &mut a.out).unwrap();
    let rst = a.take_one();
    b.deliver(&rst);
    assert_eq!(b.state(idb), Some(State::Closed), "B dropped the RST: {:?}", Seg::parse(&rst));
}

/// RFC 7323 §2.2: in a simultaneous open the peer's SYN-ACK window is not scaled.
#[test]
fn simultaneous_open_synack_window_is_unscaled() {
    let mut a = Host::new("198.18.0.2", Config::default(), 1);
    let mut b = Host::new("198.18.0.1", Config::default(), 2);
    let ida = a.connect(1000, b.addr(2000));
    let a_syn = a.take_one();
    let idb = b.connect(2000, a.addr(1000));
    a.deliver(&b.take_one());
    let a_synack = a.take_one();
    b.deliver(&a_syn);
    a.deliver(&b.take_one());
    b.deliver(&a_synack);
    assert_eq!(a.state(ida), Some(State::Established));
    assert_eq!(b.state(idb), Some(State::Established));
    let w = Seg::parse(&a_synack).window as u32;
    assert_eq!(b.shard.info(idb).unwrap().snd_wnd, w);
}

/// RFC 5961 §4: a SYN whose sequence number starts before RCV.NXT but whose data reaches into
/// the window is still a SYN: challenge ACK, no data delivered.
#[test]
fn syn_straddling_the_window_edge_draws_challenge_ack() {
    let (mut b, id, snd_nxt, rcv_nxt, peer_ts, our_ts) = est_ts();
    let o = TcpOptions { timestamps: Some((peer_ts + 1, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), rcv_nxt - 1, snd_nxt, SYN | ACK, b"0123456789", o, 65535));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(ACK));
    assert_eq!(b.shard.readable(id), 0);
    assert_eq!(b.shard.counters().tcp_ext_tcp_syn_challenge, 1);
}

/// RFC 7323 §3.2: once negotiated, every non-RST segment carries timestamps, the challenge
/// ACK of a SYN-RECEIVED entry included, and its window is scaled like any non-SYN segment.
#[test]
fn syn_received_challenge_ack_has_timestamp_and_scaled_window() {
    let mut b = Host::new("198.18.0.1", Config::default(), 5);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), window_scale: Some(7), timestamps: Some((50, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 100, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let shift = sa.options.window_scale.unwrap();
    b.deliver(&craft(peer(), b.addr(80), 150, 0, RST, b""));
    let ch = Seg::parse(&b.take_one());
    assert!(ch.is(ACK));
    assert_eq!(ch.options.timestamps.map(|t| t.1), Some(50));
    assert_eq!(u32::from(ch.window) << shift, ((256 * 1024) >> shift) << shift);
}
