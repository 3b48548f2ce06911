//! SACK: what the receiver reports (RFC 2018 §4, RFC 2883 §4), what the sender believes
//! (RFC 2018 §4 validation, the CVE-2019-11477 class), and RFC 6675 loss recovery.

mod common;

use common::*;
use std::collections::HashSet;
use xdptcp::tcp::sack::SCOREBOARD_RANGES;
use xdptcp::tcp::{Config, ConnId, SynCookies};
use xdptcp::wire::{SeqNum, TcpOptions};

const PEER: &str = "198.18.0.2";
const PEER_PORT: u16 = 40000;

/// A listening host and a crafted peer that completed the handshake with SACK-permitted (no
/// timestamps, so crafted segments need none). Returns (host, conn, our ISS + 1, peer ISN + 1).
fn established(cfg: Config, peer_mss: u16) -> (Host, ConnId, u32, u32) {
    let mut h = Host::new("198.18.0.1", cfg, 7);
    h.shard.listen(80, None, 16).unwrap();
    let peer = Host::new(PEER, plain_cfg(), 8).addr(PEER_PORT);
    let o = TcpOptions { mss: Some(peer_mss), sack_permitted: true, ..TcpOptions::default() };
    h.deliver(&craft_opts(peer, h.addr(80), 1000, 0, SYN, &[], o, 65535));
    let sa = Seg::parse(&h.take_one());
    assert!(sa.is(synack()));
    assert!(sa.options.sack_permitted, "SYN-ACK must echo SACK-permitted");
    h.deliver(&craft(peer, h.addr(80), 1001, sa.seq + 1, ACK, &[]));
    let id = h.shard.accept(80).unwrap();
    assert!(h.shard.info(id).unwrap().sack_ok);
    (h, id, sa.seq + 1, 1001)
}

fn peer_addr() -> std::net::SocketAddr {
    format!("{PEER}:{PEER_PORT}").parse().unwrap()
}

fn rel(o: &TcpOptions, base: u32) -> Vec<(u32, u32)> {
    o.sack_blocks().iter().map(|(l, r)| (l.0.wrapping_sub(base), r.0.wrapping_sub(base))).collect()
}

fn sack_opts(blocks: &[(u32, u32)]) -> TcpOptions {
    let mut o = TcpOptions::default();
    for (slot, &(l, r)) in o.sack_blocks.iter_mut().zip(blocks) {
        *slot = (SeqNum(l), SeqNum(r));
    }
    o.sack_count = blocks.len() as u8;
    o
}

// ---------------------------------------------------------------------------------------------
// Negotiation

/// Linux's default `tcp_sack=1`: our SYN offers SACK-permitted (RFC 2018 §2).
#[test]
fn syn_sent_offers_sack_permitted_by_default() {
    let mut a = Host::new("198.18.0.1", Config::default(), 1);
    a.connect(40000, "198.18.0.2:80".parse().unwrap());
    let syn = Seg::parse(&a.take_one());
    assert!(syn.is(SYN) && syn.options.sack_permitted);
}

/// A cookie SYN-ACK carries SACK-permitted only when timestamps carry it in the cookie (Linux
/// `cookie_init_timestamp`; without them `tcp_clear_options`).
#[test]
fn cookie_synack_sack_permitted_only_with_timestamps() {
    for ts in [true, false] {
        let cfg = Config { syncookies: SynCookies::Always, timestamps: true, ..Config::default() };
        let mut h = Host::new("198.18.0.1", cfg, 3);
        h.shard.listen(80, None, 16).unwrap();
        let o = TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            timestamps: ts.then_some((5, 0)),
            ..TcpOptions::default()
        };
        h.deliver(&craft_opts(peer_addr(), h.addr(80), 1000, 0, SYN, &[], o, 65535));
        let sa = Seg::parse(&h.take_one());
        assert_eq!(sa.options.sack_permitted, ts, "timestamps {ts}");
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver (RFC 2018 §4, RFC 2883 §4)

/// RFC 2018 §4: every ACK while data is held out of order carries blocks, the one with the
/// newest segment first; when the hole fills, the blocks go.
#[test]
fn established_out_of_order_data_is_sacked_newest_first() {
    let (mut h, _id, iss1, p) = established(plain_cfg(), 1460);
    let to = h.addr(80);
    let send = |h: &mut Host, off: u32, len: usize| {
        h.deliver(&craft(peer_addr(), to, p + off, iss1, ACK, &vec![7u8; len]));
        Seg::parse(&h.take_one())
    };
    let a = send(&mut h, 100, 100);
    assert_eq!((a.ack - p, rel(&a.options, p)), (0, vec![(100, 200)]));
    let a = send(&mut h, 300, 100);
    assert_eq!(rel(&a.options, p), vec![(300, 400), (100, 200)]);
    let a = send(&mut h, 200, 100); // joins both
    assert_eq!(rel(&a.options, p), vec![(100, 400)]);
    let a = send(&mut h, 0, 100); // the hole: all in order
    assert_eq!(a.ack - p, 400);
    assert_eq!(a.options.sack_count, 0);
}

/// RFC 2883 §4 (1): a segment below RCV.NXT is reported with a D-SACK block, once.
#[test]
fn established_duplicate_segment_is_dsacked_once() {
    let (mut h, _id, iss1, p) = established(plain_cfg(), 1460);
    let to = h.addr(80);
    h.deliver(&craft(peer_addr(), to, p, iss1, ACK, &[1u8; 100]));
    h.deliver(&craft(peer_addr(), to, p + 100, iss1, ACK, &[1u8; 100]));
    h.take();
    h.deliver(&craft(peer_addr(), to, p, iss1, ACK, &[1u8; 100]));
    let a = Seg::parse(&h.take_one());
    assert_eq!((a.ack - p, rel(&a.options, p)), (200, vec![(0, 100)]));
    assert_eq!(h.shard.counters().tcp_ext_tcp_dsack_old_sent, 1);
    // A partly old segment: the old part only.
    h.deliver(&craft(peer_addr(), to, p + 150, iss1, ACK, &[1u8; 100]));
    let a = Seg::parse(&h.take_one());
    assert_eq!((a.ack - p, rel(&a.options, p)), (250, vec![(150, 200)]));
    // Nothing pending after that: the next in-order data is acknowledged without blocks.
    h.deliver(&craft(peer_addr(), to, p + 250, iss1, ACK, &[1u8; 100]));
    h.deliver(&craft(peer_addr(), to, p + 350, iss1, ACK, &[1u8; 100]));
    let a = Seg::parse(&h.take_one());
    assert_eq!((a.ack - p, a.options.sack_count), (450, 0));
}

/// A data segment sent while blocks are reported carries less payload, so the packet still fits
/// the MTU (Linux `tcp_current_mss` takes the option bytes off the MSS): 1460 - 4 blocks (36).
#[test]
fn established_data_with_sack_blocks_fits_the_mtu() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    let to = h.addr(80);
    for k in 0..4u32 {
        h.deliver(&craft(peer_addr(), to, p + 100 + 200 * k, iss1, ACK, &[1u8; 100]));
    }
    h.take();
    h.shard.send(id, &vec![2u8; 3000]).unwrap();
    h.flush();
    let pkts = h.take();
    assert!(pkts.iter().all(|x| x.len() <= 1500), "{:?}", pkts.iter().map(Vec::len).collect::<Vec<_>>());
    let first = Seg::parse(&pkts[0]);
    assert_eq!((first.options.sack_count, first.payload.len()), (4, 1460 - 36));
}

/// With SACK off (`tcp_sack=0`), no blocks, and no SACK-permitted either.
#[test]
fn sack_off_sends_no_blocks() {
    let cfg = Config { sack: false, ..plain_cfg() };
    let mut h = Host::new("198.18.0.1", cfg, 7);
    h.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), sack_permitted: true, ..TcpOptions::default() };
    h.deliver(&craft_opts(peer_addr(), h.addr(80), 1000, 0, SYN, &[], o, 65535));
    let sa = Seg::parse(&h.take_one());
    assert!(!sa.options.sack_permitted);
    h.deliver(&craft(peer_addr(), h.addr(80), 1001, sa.seq + 1, ACK, &[]));
    h.deliver(&craft(peer_addr(), h.addr(80), 1101, sa.seq + 1, ACK, &[1u8; 100]));
    let a = Seg::parse(&h.take_one());
    assert_eq!((a.ack, a.options.sack_count), (1001, 0));
}

// ---------------------------------------------------------------------------------------------
// Sender: RFC 6675 loss recovery

/// Sends 20 full segments from a to b in one flight (IW 32), drops the first transmission of
/// the segments at `holes`, and counts the round trips until everything is acknowledged after
/// the first flight: each round delivers all of a's segments to b, then all of b's ACKs to a.
fn recovery_rounds(sack: bool, holes: &[u32]) -> (u32, u64) {
    let cfg = Config { sack, initial_cwnd: 32, snd_buf: 256 * 1024, rcv_buf: 256 * 1024, ..Config::default() };
    let mut a = Host::new("198.18.0.1", cfg.clone(), 1);
    let mut b = Host::new("198.18.0.2", cfg, 2);
    let (ida, _idb) = handshake(&mut a, &mut b);
    let info = a.shard.info(ida).unwrap();
    assert_eq!(info.sack_ok, sack);
    let (base, smss) = (info.snd_una.0, info.smss);
    let data = vec![0x5au8; 20 * smss as usize];
    assert_eq!(a.shard.send(ida, &data).unwrap(), data.len());
    a.flush();
    let mut dropped = HashSet::new();
    let mut rounds = 0;
    loop {
        for p in a.take() {
            let s = Seg::parse(&p);
            let idx = s.seq.wrapping_sub(base) / smss;
            if !s.payload.is_empty() && holes.contains(&idx) && dropped.insert(idx) {
                continue;
            }
            b.deliver(&p);
        }
        for p in b.take() {
            a.deliver(&p);
        }
        if a.shard.info(ida).unwrap().unacked == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 10, "no progress");
    }
    assert_eq!(dropped.len(), holes.len());
    (rounds, a.shard.counters().tcp_retrans_segs)
}

/// The issue's acceptance test: with SACK a window with three holes is repaired in one round
/// trip (RFC 6675 retransmits every lost segment the scoreboard shows), and only the three
/// lost segments are sent again. NewReno (RFC 6582) needs one round trip per hole.
#[test]
fn three_holes_recover_in_one_round_trip_with_sack() {
    let (rounds, retrans) = recovery_rounds(true, &[3, 8, 14]);
    assert_eq!(rounds, 1, "round trips to recover a window with 3 holes");
    assert_eq!(retrans, 3);
    let (rounds, _) = recovery_rounds(false, &[3, 8, 14]);
    assert_eq!(rounds, 3, "NewReno without SACK: one hole per round trip");
}

/// A peer that negotiated SACK but sends no blocks: three duplicate ACKs still start a
/// recovery, and each partial ACK has the next hole sent again (RFC 6582's rule), so the
/// recovery needs no timeout.
#[test]
fn established_peer_without_blocks_still_recovers() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    h.shard.send(id, &vec![3u8; 8 * 1460]).unwrap();
    h.flush();
    assert_eq!(h.take().len(), 8);
    let to = h.addr(80);
    let seqs =
        |h: &mut Host| h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect::<Vec<_>>();
    for _ in 0..3 {
        h.deliver(&craft(peer_addr(), to, p, iss1, ACK, &[]));
    }
    assert_eq!(seqs(&mut h), vec![0]);
    // Segment 0 arrived; 1 is missing too.
    h.deliver(&craft(peer_addr(), to, p, iss1 + 1460, ACK, &[]));
    assert_eq!(seqs(&mut h), vec![1460]);
    h.deliver(&craft(peer_addr(), to, p, iss1 + 8 * 1460, ACK, &[]));
    let i = h.shard.info(id).unwrap();
    assert_eq!(i.unacked, 0);
    assert_eq!(h.shard.counters().tcp_ext_tcp_timeouts, 0);
}

/// The counters say what happened: one SACK recovery, no timeout.
#[test]
fn sack_recovery_is_counted() {
    let cfg = Config { initial_cwnd: 32, ..Config::default() };
    let mut a = Host::new("198.18.0.1", cfg.clone(), 1);
    let mut b = Host::new("198.18.0.2", cfg, 2);
    let (ida, _) = handshake(&mut a, &mut b);
    let smss = a.shard.info(ida).unwrap().smss as usize;
    a.shard.send(ida, &vec![1u8; 12 * smss]).unwrap();
    a.flush();
    for (i, p) in a.take().into_iter().enumerate() {
        if i != 2 {
            b.deliver(&p);
        }
    }
    for p in b.take() {
        a.deliver(&p);
    }
    let c = a.shard.counters();
    assert_eq!((c.tcp_ext_tcp_sack_recovery, c.tcp_ext_tcp_timeouts), (1, 0));
    assert_eq!(c.tcp_retrans_segs, 1);
}

// ---------------------------------------------------------------------------------------------
// Sender: blocks are checked before they are believed (RFC 2018 §4, RFC 2883 §4)

/// Blocks beyond SND.NXT, below SND.UNA, overlapping an earlier block, and four blocks that
/// wrap the sequence space are ignored and counted; a valid one is recorded.
#[test]
fn established_invalid_sack_blocks_are_ignored_and_counted() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    h.shard.send(id, &vec![3u8; 8 * 1460]).unwrap();
    h.flush();
    assert_eq!(h.take().len(), 8);
    let to = h.addr(80);
    // Let 1460 bytes be acknowledged so that "below SND.UNA" exists.
    let una = iss1 + 1460;
    let nxt = iss1 + 8 * 1460;
    let ack = |h: &mut Host, blocks: &[(u32, u32)]| {
        h.deliver(&craft_opts(peer_addr(), to, p, una, ACK, &[], sack_opts(blocks), 65535));
        h.take();
    };
    ack(&mut h, &[(una + 1460, una + 2920)]);
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 1);
    assert_eq!(h.shard.counters().tcp_ext_tcp_sack_discard, 0);
    // First block valid, then: beyond SND.NXT, below SND.UNA (not a D-SACK: not first),
    // overlapping the first.
    ack(&mut h, &[(una + 4380, una + 5840), (nxt, nxt + 100), (iss1 - 100, iss1 + 10), (una + 5000, una + 6000)]);
    assert_eq!(h.shard.counters().tcp_ext_tcp_sack_discard, 3);
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 2);
    // Four blocks that wrap the sequence space (each 2^30 long): none is believed.
    let q = 1u32 << 30;
    ack(
        &mut h,
        &[(una + 2920, una + 2920 + q), (una + q, una + 2 * q), (una + 2 * q, una + 3 * q), (una + 3 * q, una)],
    );
    assert_eq!(h.shard.counters().tcp_ext_tcp_sack_discard, 7);
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 2);
    // A D-SACK below the cumulative ACK is recognised, never recorded.
    ack(&mut h, &[(iss1, iss1 + 100)]);
    let c = h.shard.counters();
    assert_eq!((c.tcp_ext_tcp_dsack_recv, c.tcp_ext_tcp_dsack_ignored_no_undo), (1, 1));
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 2);
}

/// A timeout keeps what the peer SACKed (Linux `tcp_timeout_mark_lost`): going back to SND.UNA
/// re-sends the holes only, and the SACKed data is neither sent again nor counted in flight.
///
/// ```text
///     TCP A                                        TCP B
///     <SEQ=0..4*1460>            -->               (1460.. arrives, 0.. is lost)
///                                <--  <ACK=0><SACK=1460..4380>    (4380.. lost too)
///     ... RTO ...
///     <SEQ=0> (the hole)         -->
///                                <--  <ACK=4380>
///     <SEQ=4380> (the next hole) -->
/// ```
#[test]
fn established_timeout_resends_only_the_holes() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    h.shard.send(id, &vec![3u8; 4 * 1460]).unwrap();
    h.flush();
    assert_eq!(h.take().len(), 4);
    let to = h.addr(80);
    h.deliver(&craft_opts(peer_addr(), to, p, iss1, ACK, &[], sack_opts(&[(iss1 + 1460, iss1 + 3 * 1460)]), 65535));
    h.take();
    h.advance(xdptcp::time::Duration::from_secs(3));
    let first: Vec<u32> = h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect();
    assert_eq!(first, vec![0], "one segment after the timeout: the first hole");
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 1, "the SACKed range is kept");
    h.deliver(&craft(peer_addr(), to, p, iss1 + 3 * 1460, ACK, &[]));
    let next: Vec<u32> = h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect();
    assert_eq!(next, vec![3 * 1460], "the second hole, not the SACKed data");
    assert_eq!(h.shard.counters().tcp_ext_tcp_sack_reneging, 0);
}

/// RFC 2018 §8: SACKed data stays queued until it is cumulatively acknowledged, because a
/// receiver may renege (drop what it SACKed). An ACK that stops at data the peer SACKed shows
/// it: after max(SRTT / 16, 10 ms) (Linux `tcp_check_sack_reneging`) the timeout forgets every
/// SACK (TcpExtTCPSACKReneging) and everything from SND.UNA is sent again.
#[test]
fn established_reneging_peer_gets_sacked_data_after_a_timeout() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    h.shard.send(id, &vec![3u8; 4 * 1460]).unwrap();
    h.flush();
    assert_eq!(h.take().len(), 4);
    let to = h.addr(80);
    h.deliver(&craft_opts(peer_addr(), to, p, iss1, ACK, &[], sack_opts(&[(iss1 + 1460, iss1 + 4 * 1460)]), 65535));
    h.take();
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 1);
    // The timer goes off: the hole at SND.UNA is sent again, the SACKed rest is not.
    h.advance(xdptcp::time::Duration::from_secs(3));
    let segs = h.take_segs();
    assert_eq!(segs.iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect::<Vec<_>>(), vec![0]);
    // The peer acknowledges the hole and no more: it dropped what it SACKed.
    h.deliver(&craft(peer_addr(), to, p, iss1 + 1460, ACK, &[]));
    assert!(h.take_segs().iter().all(|s| s.payload.is_empty()), "nothing before the short timer");
    h.advance(xdptcp::time::Duration::from_millis(10));
    let again: Vec<u32> = h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect();
    assert_eq!(again.first(), Some(&1460), "the SACKed segments are sent again: {again:?}");
    assert_eq!(h.shard.counters().tcp_ext_tcp_sack_reneging, 1);
    assert_eq!(h.shard.info(id).unwrap().sack_ranges, 0);
    h.deliver(&craft(peer_addr(), to, p, iss1 + 2920, ACK, &[]));
    let rest: Vec<u32> = h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect();
    assert!(rest.contains(&2920), "{rest:?}");
}

// ---------------------------------------------------------------------------------------------
// Sender: the scoreboard kept across a timeout (Linux `tcp_timeout_mark_lost`)

/// SACKed data leaves the congestion window's count after a timeout, but the peer's receive
/// window still ends at SND.UNA + SND.WND (RFC 9293 §3.8.6; Linux checks the two apart,
/// `tcp_cwnd_test` with SACKed segments out of `tcp_packets_in_flight`, `tcp_snd_wnd_test`
/// against `tcp_wnd_end`). A receiver whose application reads nothing keeps its right edge
/// where it was, and go-back-N must not send past it.
///
/// ```text
///     TCP A                                          TCP B (buffer of 10 segments, not read)
///     <SEQ=0..10*1460>               -->             (0 and 2 lost)
///                                    <--  <ACK=0><SACK=1460..2920,4380..14600><WND=14600>
///     ... RTO ...
///     <SEQ=0>                        -->
///                                    <--  <ACK=2920><SACK=4380..14600><WND=11680>
///     <SEQ=2920> (the hole), and nothing at or past 14600
/// ```
#[test]
fn established_go_back_n_stays_inside_the_receive_window() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    let mss = 1460u32;
    h.shard.send(id, &vec![5u8; 20 * mss as usize]).unwrap();
    h.flush();
    assert_eq!(h.take().len(), 10, "the initial window is ten segments");
    let to = h.addr(80);
    let edge = 10 * mss;
    let blocks = [(iss1 + mss, iss1 + 2 * mss), (iss1 + 3 * mss, iss1 + edge)];
    h.deliver(&craft_opts(peer_addr(), to, p, iss1, ACK, &[], sack_opts(&blocks), edge as u16));
    h.take();
    h.advance(xdptcp::time::Duration::from_secs(3));
    let after_rto: Vec<u32> = h.take_segs().iter().filter(|s| !s.payload.is_empty()).map(|s| s.seq - iss1).collect();
    assert_eq!(after_rto, vec![0], "the timeout sends the first hole");
    let una = 2 * mss;
    let blocks = [(iss1 + 3 * mss, iss1 + edge)];
    h.deliver(&craft_opts(peer_addr(), to, p, iss1 + una, ACK, &[], sack_opts(&blocks), (edge - una) as u16));
    let sent: Vec<(u32, u32)> = h
        .take_segs()
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| (s.seq - iss1, s.seq - iss1 + s.payload.len() as u32))
        .collect();
    assert!(sent.contains(&(2 * mss, 3 * mss)), "the second hole goes: {sent:?}");
    assert!(sent.iter().all(|&(_, e)| e <= edge), "sent past the peer's right edge {edge}: {sent:?}");
}

/// The stream the peer model checks against: byte `o` of the connection is `stream_byte(o)`.
fn stream_byte(o: usize) -> u8 {
    ((o as u32).wrapping_mul(2_654_435_761) >> 11) as u8
}

/// A peer that remembers what it received byte by byte, SACKs what it holds out of order, and
/// either keeps it (`renege` false) or drops all of it whenever the hole below it fills
/// (`renege` true: it reneges every time, RFC 2018 §8). The FIN is the slot after the data, so
/// a block can cover it, as Linux's blocks (`end_seq`) do.
struct SackPeer {
    /// Our ISS + 1: the peer's offsets count from it.
    base: u32,
    held: Vec<bool>,
    /// Bytes (and the FIN) delivered in order.
    rcv_nxt: usize,
    got: Vec<u8>,
    renege: bool,
    rng: u64,
}

impl SackPeer {
    fn new(base: u32, len: usize, renege: bool, seed: u64) -> SackPeer {
        SackPeer { base, held: vec![false; len + 1], rcv_nxt: 0, got: Vec::new(), renege, rng: seed }
    }

    /// One in `n`, from the peer's generator.
    fn one_in(&mut self, n: u64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n == 0
    }

    /// One segment from us: lost (one in five, retransmissions too), or taken. Returns
    /// whether it arrived.
    fn take(&mut self, s: &Seg) -> bool {
        if self.one_in(5) {
            return false;
        }
        let off = s.seq.wrapping_sub(self.base);
        let len = s.payload.len() + usize::from(s.flags.contains(FIN));
        let start = off as usize;
        assert!(start + len <= self.held.len(), "sent past the end of the stream: {start} + {len}");
        for (i, b) in s.payload.iter().enumerate() {
            assert_eq!(*b, stream_byte(start + i), "byte {} of the stream", start + i);
        }
        for slot in self.held.iter_mut().skip(start).take(len) {
            *slot = true;
        }
        let before = self.rcv_nxt;
        while self.rcv_nxt < self.held.len() && self.held[self.rcv_nxt] {
            if self.rcv_nxt < self.held.len() - 1 {
                self.got.push(stream_byte(self.rcv_nxt));
            }
            self.rcv_nxt += 1;
        }
        if self.renege && self.rcv_nxt > before {
            // The hole filled: what was held beyond it is dropped, the FIN with it.
            for slot in self.held.iter_mut().skip(self.rcv_nxt) {
                *slot = false;
            }
        }
        true
    }

    /// The peer's ACK: RCV.NXT and up to three blocks of what it holds beyond.
    fn ack(&self, to: std::net::SocketAddr, p: u32) -> Vec<u8> {
        let mut blocks = Vec::new();
        let mut i = self.rcv_nxt;
        while i < self.held.len() && blocks.len() < 3 {
            if self.held[i] {
                let s = i;
                while i < self.held.len() && self.held[i] {
                    i += 1;
                }
                blocks.push((self.base.wrapping_add(s as u32), self.base.wrapping_add(i as u32)));
            } else {
                i += 1;
            }
        }
        let ack = self.base.wrapping_add(self.rcv_nxt as u32);
        craft_opts(peer_addr(), to, p, ack, ACK, &[], sack_opts(&blocks), 65535)
    }
}

/// Sends `segs` segments and a FIN to a [`SackPeer`] over a path that loses one segment in
/// five and one ACK in ten, until the FIN is acknowledged. Every byte must arrive once and in
/// order, within a bounded number of rounds and of virtual time.
fn transfer_to_sack_peer(mut h: Host, id: ConnId, iss1: u32, p: u32, segs: usize, renege: bool, seed: u64) -> Host {
    let len = segs * 1460;
    let data: Vec<u8> = (0..len).map(stream_byte).collect();
    assert_eq!(h.shard.send(id, &data).unwrap(), len);
    h.shard.shutdown(h.now, id, &mut h.out).unwrap();
    h.flush();
    let to = h.addr(80);
    let start = h.now;
    let mut peer = SackPeer::new(iss1, len, renege, seed);
    let mut rounds = 0;
    while h.shard.state(id) != Some(xdptcp::tcp::State::FinWait2) {
        rounds += 1;
        assert!(rounds < 5_000, "no end after {rounds} rounds (renege {renege}, seed {seed})");
        let segs = h.take_segs();
        let mut acks = Vec::new();
        for s in segs.iter().filter(|s| !s.payload.is_empty() || s.flags.contains(FIN)) {
            if peer.take(s) && !peer.one_in(10) {
                acks.push(peer.ack(to, p));
            }
        }
        for a in acks {
            h.deliver(&a);
        }
        if h.out.is_empty() {
            let next = h.shard.poll_timeout().expect("data outstanding and no timer");
            h.run_until(next);
        }
    }
    assert_eq!(peer.got.len(), len, "renege {renege}, seed {seed}");
    assert!(peer.got == data, "the stream arrived altered (renege {renege}, seed {seed})");
    assert_eq!(peer.rcv_nxt, len + 1, "the FIN arrived");
    let took = h.now.saturating_since(start);
    // Without timestamps nothing re-sent gives an RTT sample (Karn), so a timeout's backoff
    // stays until new data is timed: at this loss rate the timer can reach RTO.max.
    assert!(took < xdptcp::time::Duration::from_secs(1800), "took {took:?} (renege {renege}, seed {seed})");
    h
}

/// Every byte once and in order, with the scoreboard kept across timeouts: a peer that holds
/// what it SACKed, and one that drops it every time a hole fills (it must get it again, and
/// the sender must neither loop nor stall). The FIN may be SACKed and then dropped too.
#[test]
fn established_lossy_transfer_to_an_honest_or_reneging_peer() {
    for seed in 1..=6u64 {
        for renege in [false, true] {
            let (h, id, iss1, p) = established(plain_cfg(), 1460);
            let h = transfer_to_sack_peer(h, id, iss1, p, 40, renege, seed * 0x9e37_79b9);
            if renege {
                assert!(h.shard.counters().tcp_ext_tcp_sack_reneging > 0, "seed {seed}: no reneging seen");
            }
        }
    }
}

/// The same across the sequence wrap: our ISS is 0xffff_f000, so the SACKed ranges, the holes,
/// go-back-N and the FIN all straddle 2^32 (RFC 9293 §3.4).
#[test]
fn established_lossy_transfer_across_the_wrap() {
    use xdptcp::tcp::secrets::isn;
    use xdptcp::tcp::{FourTuple, Secrets};
    for seed in 1..=6u64 {
        for renege in [false, true] {
            let iss = 0xffff_f000u32;
            let mut h = Host::new("198.18.0.1", plain_cfg(), 7);
            let t = FourTuple::new(h.addr(80), peer_addr());
            let hash = isn(&Secrets::from_seed(7).isn_key, xdptcp::time::Instant::from_nanos(0), &t).0;
            h.now = xdptcp::time::Instant::from_nanos(u64::from(iss.wrapping_sub(hash)) * 4_000 + (1u64 << 32) * 4_000);
            h.shard.listen(80, None, 16).unwrap();
            let o = TcpOptions { mss: Some(1460), sack_permitted: true, ..TcpOptions::default() };
            h.deliver(&craft_opts(peer_addr(), h.addr(80), 1000, 0, SYN, &[], o, 65535));
            let sa = Seg::parse(&h.take_one());
            assert_eq!(sa.seq, iss);
            let iss1 = iss.wrapping_add(1);
            h.deliver(&craft(peer_addr(), h.addr(80), 1001, iss1, ACK, &[]));
            let id = h.shard.accept(80).unwrap();
            transfer_to_sack_peer(h, id, iss1, 1001, 24, renege, seed * 0x2545_f491);
        }
    }
}

/// The CVE-2019-11477/11478 class: a peer with a tiny MSS and a stream of crafted SACK blocks
/// (one-byte blocks all over the window) cannot grow our state or the work per ACK. The
/// scoreboard stays within its fixed size, each ACK draws a bounded number of segments, and
/// the connection still completes once the peer acknowledges everything.
#[test]
fn tiny_mss_and_crafted_sacks_stay_bounded() {
    // Linux's `tcp_min_snd_mss` floor (48): the smallest MSS a peer can impose.
    let cfg = Config { min_snd_mss: 48, initial_cwnd: 1000, ..plain_cfg() };
    let (mut h, id, iss1, p) = established(cfg, 48);
    // The stack's own floor for the payload per segment is 64 bytes.
    let smss = h.shard.info(id).unwrap().smss;
    assert!(smss <= 64, "smss {smss}");
    let data = vec![9u8; smss as usize * 1000];
    assert_eq!(h.shard.send(id, &data).unwrap(), data.len());
    h.flush();
    assert_eq!(h.take().len(), 1000);
    let to = h.addr(80);
    let mut x = 0x1234_5678u32;
    let mut most = 0;
    for _ in 0..5000 {
        let mut blocks = [(0u32, 0u32); 4];
        for b in &mut blocks {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let off = 1 + 2 * ((x >> 8) % (data.len() as u32 / 2 - 1));
            *b = (iss1 + off, iss1 + off + 1);
        }
        h.deliver(&craft_opts(peer_addr(), to, p, iss1, ACK, &[], sack_opts(&blocks), 65535));
        let sent = h.take().len();
        most = most.max(sent);
        assert!(h.shard.info(id).unwrap().sack_ranges as usize <= SCOREBOARD_RANGES);
    }
    assert!(most <= 66, "segments sent for one ACK: {most}");
    // Everything acknowledged: the connection carries on.
    h.deliver(&craft(peer_addr(), to, p, iss1 + data.len() as u32, ACK, &[]));
    let i = h.shard.info(id).unwrap();
    assert_eq!((i.unacked, i.sack_ranges), (0, 0));
}

/// A retransmission never reaches past SND.MAX. A segment that carried SACK blocks had 12 bytes
/// less room; once the receive hole closed, the retransmission of that segment (no blocks) had
/// room for 12 more bytes, never sent before. SND.MAX did not move for them, so the peer's ACK
/// covering them read as acknowledging unsent data and was refused, and both ends wedged (seen
/// on the bed at 5 % loss with echo traffic both ways).
#[test]
fn retransmission_after_the_sack_blocks_went_stays_within_snd_max() {
    let (mut h, id, iss1, p) = established(plain_cfg(), 1460);
    let to = h.addr(80);
    let window = 1448;
    // A hole at the front of the peer's data: our segments carry a SACK block from now on. The
    // peer's window takes exactly one of our segments.
    h.deliver(&craft_opts(peer_addr(), to, p + 100, iss1, ACK, &[7u8; 100], TcpOptions::default(), window));
    h.take();
    assert_eq!(h.shard.send(id, &[1u8; 3000]).unwrap(), 3000);
    h.flush();
    let first = h.take_segs();
    let data: Vec<&Seg> = first.iter().filter(|s| !s.payload.is_empty()).collect();
    assert_eq!(data.len(), 1, "{first:?}");
    assert_eq!(data[0].options.sack_count, 1);
    let sent = data[0].payload.len() as u32;
    // The hole closes (no SACK blocks any more), our data still unacknowledged.
    h.deliver(&craft_opts(peer_addr(), to, p, iss1, ACK, &[7u8; 100], TcpOptions::default(), window));
    h.take();
    // The retransmission timer: the retransmitted segment ends where the original did.
    h.advance(xdptcp::time::Duration::from_secs(3));
    let rtx: Vec<Seg> = h.take_segs().into_iter().filter(|s| !s.payload.is_empty()).collect();
    assert!(!rtx.is_empty(), "a retransmission");
    for s in &rtx {
        let end = s.seq.wrapping_sub(iss1) + s.payload.len() as u32;
        assert!(end <= sent, "retransmitted up to {end}, only {sent} were ever sent");
    }
    // The peer acknowledges it: taken, and the rest of the data follows.
    h.deliver(&craft_opts(peer_addr(), to, p + 200, iss1 + sent, ACK, &[], TcpOptions::default(), 65535));
    let next: Vec<Seg> = h.take_segs().into_iter().filter(|s| !s.payload.is_empty()).collect();
    assert!(next.first().is_some_and(|s| s.seq == iss1 + sent), "{next:?}");
}
