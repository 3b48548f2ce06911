//! Receive-path class test (RFC 9293 §3.10.7.4 seventh, §3.8.6.2.2): a hostile peer sends random
//! segments (overlapping, out of order, beyond the window, FIN ahead of data), the application
//! reads at random, and the stream must come out whole.
mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, ConnId, State};
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Server connection; the peer offers window scale `ws` (None: no scaling). Returns
/// (host, id, our snd_nxt, peer's first data seq, window field of the SYN-ACK).
fn established(cfg: Config, peer_isn: u32, ws: Option<u8>) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), window_scale: ws, ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), peer_isn, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let rcv = peer_isn.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), rcv, sa.seq.wrapping_add(1), ACK, b""));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, sa.seq.wrapping_add(1), rcv)
}

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2654435761) >> 13) as u8
}

fn run(seed: u64, cfg: Config, ws: Option<u8>, peer_isn: u32) {
    let rcv_buf = cfg.rcv_buf;
    let (mut b, id, snd, irs1) = established(cfg, peer_isn, ws);
    let shift = b.shard.info(id).unwrap().rcv_wscale;
    let mut rng = Rng(seed | 1);
    let total: usize = 400_000;
    let stream: Vec<u8> = (0..total).map(byte).collect();
    let mut got: Vec<u8> = Vec::new();
    // The furthest right edge any ACK offered, as an offset from irs1.
    let mut edge_max: i64 = 65535; // the SYN-ACK window (unscaled)
    let mut fin_sent = false;
    for step in 0..60_000u32 {
        let info = b.shard.info(id).unwrap();
        let rn = info.rcv_nxt.0.wrapping_sub(irs1) as i64;
        let wnd = info.rcv_wnd as i64;
        // Choose a segment.
        let start = (rn - 2000 + rng.below((wnd + 4000) as u64) as i64).max(0);
        let mut len = rng.below(1461) as i64;
        if start + len > total as i64 {
            len = total as i64 - start;
        }
        if len < 0 {
            continue;
        }
        let end = start + len;
        let fin = end == total as i64 && rng.below(2) == 0;
        fin_sent |= fin;
        let flags = if fin { finack() } else { ACK };
        let payload = &stream[start as usize..end as usize];
        b.deliver(&craft_opts(
            peer(),
            b.addr(80),
            irs1.wrapping_add(start as u32),
            snd,
            flags,
            payload,
            TcpOptions::default(),
            65535,
        ));
        for s in b.take_segs() {
            if s.flags.rst() {
                panic!("step {step}: RST {s:?}");
            }
            let a = s.ack.wrapping_sub(irs1) as i64;
            let e = a + ((s.window as i64) << shift);
            assert!(a as usize <= total + 1, "ack beyond what was sent");
            edge_max = edge_max.max(e);
            // Never more than the buffer can hold beyond what the app has read.
            let in_buf = a.min(total as i64) - got.len() as i64;
            assert!(
                e - a + in_buf <= (rcv_buf as i64) + (1 << shift),
                "step {step}: window {} past the buffer (unread {in_buf})",
                e - a
            );
        }
        // Accepted bytes must match the stream.
        let info2 = b.shard.info(id).unwrap();
        let rn2 = info2.rcv_nxt.0.wrapping_sub(irs1) as i64;
        // In-window data at RCV.NXT is never refused (within what was offered).
        if start <= rn && end > rn && rn < edge_max && info.state == State::Established {
            let expect = end.min(edge_max).min(rn + wnd);
            assert!(
                rn2 >= expect.min(total as i64),
                "step {step}: in-window bytes {rn}..{expect} refused (rcv_nxt {rn2}, wnd {wnd}, edge_max {edge_max})"
            );
        }
        if rng.below(3) == 0 {
            let mut buf = vec![0u8; rng.below(20_000) as usize + 1];
            let n = b.shard.recv(id, &mut buf).unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            b.flush();
            assert_eq!(&got[..], &stream[..got.len()], "step {step}: stream corrupted at {}", got.len());
        }
        if b.shard.state(id) != Some(State::Established) {
            break;
        }
    }
    got.extend(b.recv_all(id));
    assert_eq!(&got[..], &stream[..got.len()], "stream corrupted");
    if b.shard.state(id) == Some(State::CloseWait) {
        assert!(fin_sent);
        assert_eq!(got.len(), total, "FIN processed before all data");
    }
    eprintln!("seed {seed}: delivered {} state {:?}", got.len(), b.shard.state(id));
}

#[test]
fn random_hostile_receive_no_scale() {
    for seed in 1..6 {
        run(seed, Config { rcv_buf: 20_000, ..plain_cfg() }, None, 0xffff_0000);
    }
}

#[test]
fn random_hostile_receive_scaled() {
    for seed in 1..6 {
        run(seed * 77, Config { rcv_buf: 300_000, ..plain_cfg() }, Some(7), 0xfffe_0000);
        run(seed * 91, Config { rcv_buf: 1 << 20, ..plain_cfg() }, Some(2), 0x7fff_ff00);
        run(seed * 13, Config { rcv_buf: 70_000, ..plain_cfg() }, Some(0), 0x10);
    }
}
