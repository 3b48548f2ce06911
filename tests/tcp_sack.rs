//! SACK: what the receiver reports (RFC 2018 §4, RFC 2883 §4), what the sender believes
//! (RFC 2018 §4 validation, the CVE-2019-11477 class), and RFC 6675 loss recovery.

mod common;

use common::*;
use xdptcp::tcp::{Config, ConnId, SynCookies};
use xdptcp::wire::TcpOptions;

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
