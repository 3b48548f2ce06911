//! Audit: congestion window after an idle period.
//!
//! RFC 5681 §4.1 ("Restarting Idle Connections"): "a TCP SHOULD set cwnd to no more than RW
//! before beginning transmission if the TCP has not sent data in an interval exceeding the
//! retransmission timeout", RW = min(IW, cwnd). Linux does it by default
//! (`net.ipv4.tcp_slow_start_after_idle = 1`: `tcp_event_data_sent` -> `tcp_cwnd_restart`,
//! which halves cwnd per idle RTO down to the initial window). A connection that grew its
//! window, then sat idle for seconds (HTTP keep-alive, a proxy's upstream), must not dump its
//! old window onto the path in one burst.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::Config;
use xdptcp::time::Duration;
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

#[test]
fn cwnd_restarts_after_idle() {
    let cfg = Config { timestamps: false, sack: false, tlp: false, ..Config::default() };
    let mut b = Host::new("198.18.0.1", cfg, 31);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 100_000u32;
    // The peer offers window scaling (shift 7), so its window is not the limit.
    let o = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let rcv = isn.wrapping_add(1);
    let win: u16 = 65535; // × 128: 8 MB
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, sa.seq.wrapping_add(1), ACK, b"", TcpOptions::default(), win));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    let mss = b.shard.info(id).unwrap().smss;

    // Grow the window: the peer ACKs every data segment, 20 ms after it left, until 2 MB went.
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
            b.deliver(&craft_opts(peer(), b.addr(80), rcv, end, ACK, b"", TcpOptions::default(), win));
            pending.extend(b.take_segs().into_iter().filter(|s| !s.payload.is_empty()));
        }
    }
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.unacked, 0);
    let grown = info.cwnd / mss;
    assert!(grown > 20, "cwnd grew to {grown} segments");

    // Idle for 10 s (50 RTOs), then a 200 KB response.
    b.advance(Duration::from_secs(10));
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
    let burst = b.take_segs().iter().filter(|s| !s.payload.is_empty()).count();
    assert!(
        burst <= 10,
        "after 10 s idle the first flight is {burst} segments (cwnd had grown to {grown}); RFC 5681 §4.1 / Linux: \
         at most the initial window (10)"
    );
}
