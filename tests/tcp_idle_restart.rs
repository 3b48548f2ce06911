//! Congestion window after an idle period (RFC 5681 §4.1, "Restarting Idle Connections").
//!
//! "A TCP SHOULD set cwnd to no more than RW before beginning transmission if the TCP has not
//! sent data in an interval exceeding the retransmission timeout", RW = min(IW, cwnd). Linux
//! does it by default (`net.ipv4.tcp_slow_start_after_idle = 1`: `tcp_cwnd_restart` halves
//! cwnd once per idle RTO, down to RW), counting idle time from the last data segment sent
//! and only with nothing in flight. A connection that grew its window and then sat idle
//! (HTTP keep-alive, a proxy's upstream) must not dump its old window onto the path at once.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, ConnId};
use xdptcp::time::Duration;
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// Window field of every ACK; with the peer's shift of 7 it is 8 MB, never the limit.
const WIN: u16 = 65535;

/// A server connection whose cwnd grew well past the initial window: 2 MB sent, every
/// segment ACKed 20 ms after it left. Returns (host, id, the peer's RCV.NXT, cwnd in segments).
fn grown(cfg: Config) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg, 31);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 100_000u32;
    let o = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let rcv = isn.wrapping_add(1);
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, sa.seq.wrapping_add(1), ACK, b"", TcpOptions::default(), WIN));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    let chunk = vec![b'z'; 16 * 1024];
    let mut queued = 0usize;
    let mut pending: Vec<Seg> = Vec::new();
    for _ in 0..10_000 {
        while queued < 2 << 20 && b.shard.send_capacity(id) >= chunk.len() {
            b.shard.send(id, &chunk).unwrap();
            queued += chunk.len();
        }
        b.flush();
        pending.extend(b.take_segs().into_iter().filter(|s| !s.payload.is_empty()));
        if pending.is_empty() {
            break;
        }
        b.advance(Duration::from_millis(20));
        for s in std::mem::take(&mut pending) {
            let end = s.seq.wrapping_add(s.payload.len() as u32);
            b.deliver(&craft_opts(peer(), b.addr(80), rcv, end, ACK, b"", TcpOptions::default(), WIN));
            pending.extend(b.take_segs().into_iter().filter(|s| !s.payload.is_empty()));
        }
    }
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.unacked, 0);
    let segs = info.cwnd / info.smss;
    assert!(segs > 40, "cwnd grew to {segs} segments");
    (b, id, rcv, segs)
}

/// Queues a 200 KB response after `idle` and returns how many data segments the first
/// flight holds.
fn first_flight_after(b: &mut Host, id: ConnId, idle: Duration) -> usize {
    b.advance(idle);
    b.take();
    let big = vec![b'q'; 200 * 1024];
    let mut off = 0;
    while off < big.len() {
        let n = b.shard.send(id, &big[off..]).unwrap();
        if n == 0 {
            break;
        }
        off += n;
    }
    b.flush();
    b.take_segs().iter().filter(|s| !s.payload.is_empty()).count()
}

fn cfg() -> Config {
    Config { timestamps: false, sack: false, tlp: false, ..Config::default() }
}

/// Idle for 10 s (some 50 RTOs): the first flight is the initial window (10 segments, RFC
/// 6928), however far cwnd had grown.
#[test]
fn idle_longer_than_the_rto_restarts_from_the_initial_window() {
    let (mut b, id, _, grown) = grown(cfg());
    let burst = first_flight_after(&mut b, id, Duration::from_secs(10));
    assert_eq!(burst, 10, "after 10 s idle (cwnd had grown to {grown} segments)");
    assert_eq!(b.shard.info(id).unwrap().cwnd / b.shard.info(id).unwrap().smss, 10);
}

/// Idle for a little over two RTOs: cwnd is halved per RTO elapsed, as Linux's
/// `tcp_cwnd_restart` does (RFC 5681 allows going straight to RW; Linux decays).
#[test]
fn idle_of_a_few_rtos_halves_cwnd_per_rto() {
    let (mut b, id, _, _) = grown(cfg());
    let before = b.shard.info(id).unwrap();
    let rto = before.rto;
    let burst = first_flight_after(&mut b, id, Duration(rto.0 * 2 + rto.0 / 2));
    // 2.5 RTOs: halved twice (the loop of `tcp_cwnd_restart` halves while a whole RTO remains).
    let want = (before.cwnd >> 2).max(10 * before.smss);
    assert_eq!(b.shard.info(id).unwrap().cwnd, want, "cwnd was {}", before.cwnd);
    assert!(burst > 10, "more than the initial window went: {burst}");
}

/// Idle for less than the RTO: no restart, the grown window goes out.
#[test]
fn idle_shorter_than_the_rto_keeps_the_window() {
    let (mut b, id, _, grown) = grown(cfg());
    let rto = b.shard.info(id).unwrap().rto;
    let burst = first_flight_after(&mut b, id, Duration(rto.0 / 2));
    assert!(burst as u32 >= grown.min(140) - 1, "burst {burst}, cwnd {grown} segments");
}

/// `tcp_slow_start_after_idle = 0`: the window survives idleness, as on Linux with the sysctl
/// off.
#[test]
fn restart_can_be_turned_off() {
    let (mut b, id, _, grown) = grown(Config { slow_start_after_idle: false, ..cfg() });
    let burst = first_flight_after(&mut b, id, Duration::from_secs(10));
    assert!(burst as u32 >= grown.min(140) - 1, "burst {burst}, cwnd {grown} segments");
}

/// One restart per idle period: a response queued after 2.5 RTOs of idleness meets a window
/// the peer holds shut, so nothing goes; when the window opens, the data goes with the window
/// the restart left (a quarter), not halved again for the time the window was shut.
#[test]
fn a_window_held_shut_does_not_restart_cwnd_again() {
    let (mut b, id, rcv, _) = grown(cfg());
    let before = b.shard.info(id).unwrap();
    let rto = before.rto;
    b.advance(Duration(rto.0 * 2 + rto.0 / 2));
    let una = before.snd_nxt.0;
    // The peer's window is shut (its application stopped reading).
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", TcpOptions::default(), 0));
    b.take();
    b.shard.send(id, &vec![b'q'; 64 * 1024]).unwrap();
    b.flush();
    let after_restart = b.shard.info(id).unwrap().cwnd;
    assert_eq!(after_restart, (before.cwnd >> 2).max(10 * before.smss), "the restart, once");
    b.take();
    // Two more RTOs with the window shut (probes only), then it opens.
    b.advance(Duration(rto.0 * 2));
    b.flush();
    b.take();
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, una, ACK, b"", TcpOptions::default(), WIN));
    b.flush();
    assert_eq!(b.shard.info(id).unwrap().cwnd, after_restart, "not halved again");
}
