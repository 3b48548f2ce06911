//! Segments whose option list ends in an illegal option length.
//!
//! RFC 9293 MUST-68: "A TCP implementation MUST be prepared to handle an illegal option length
//! (e.g., zero)". Linux's `tcp_parse_options` stops at an option whose length is below 2
//! ("silly options") or runs past the header ("don't parse partial options") and processes
//! the segment with the options read so far. A SYN with a broken trailing option (from a peer,
//! or padded badly by a middlebox) is answered, and data carrying one is acknowledged.

mod common;
use common::*;
use std::net::{IpAddr, SocketAddr};
use xdptcp::tcp::Verdict;
use xdptcp::wire::checksum::{checksum, finish, pseudo_header_v4, sum};
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// Appends `extra` (a multiple of 4 bytes) to the TCP options of an IPv4 packet from `craft`,
/// fixing lengths and checksums.
fn with_extra_options(pkt: &[u8], extra: &[u8]) -> Vec<u8> {
    assert_eq!(extra.len() % 4, 0);
    let ihl = usize::from(pkt[0] & 0xf) * 4;
    let doff = usize::from(pkt[ihl + 12] >> 4) * 4;
    let mut out = Vec::new();
    out.extend_from_slice(&pkt[..ihl + doff]);
    out.extend_from_slice(extra);
    out.extend_from_slice(&pkt[ihl + doff..]);
    let total = out.len() as u16;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&out[..ihl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    out[ihl + 12] = (((doff + extra.len()) / 4) as u8) << 4 | (out[ihl + 12] & 0xf);
    out[ihl + 16..ihl + 18].copy_from_slice(&[0, 0]);
    let (IpAddr::V4(s), IpAddr::V4(d)) = (peer().ip(), "198.18.0.1".parse::<IpAddr>().unwrap()) else { panic!() };
    let tcp_len = (out.len() - ihl) as u16;
    let c = finish(sum(&out[ihl..]).wrapping_add(pseudo_header_v4(s, d, 6, tcp_len)));
    out[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
    out
}

/// A SYN with MSS 1000, then NOP, NOP and kind 254 (experimental) with a length of 0: the
/// SYN-ACK answers it, sized by the MSS read before the bad option.
#[test]
fn syn_with_a_zero_length_trailing_option_is_answered() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 41);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1000), ..TcpOptions::default() };
    let syn = craft_opts(peer(), b.addr(80), 77_000, 0, SYN, b"", o, 65535);
    let v = b.deliver(&with_extra_options(&syn, &[1, 1, 254, 0]));
    assert_eq!(v, Verdict::Consumed);
    let sa = Seg::parse(&b.take_one());
    assert!(sa.is(synack()) && sa.ack == 77_001, "{sa:?}");
    b.deliver(&craft(peer(), b.addr(80), 77_001, sa.seq.wrapping_add(1), ACK, b""));
    let id = b.shard.accept(80).expect("the handshake completes");
    assert_eq!(b.shard.info(id).unwrap().smss, 1000, "the MSS option before the bad one counts");
    assert_eq!(b.shard.counters().tcp_in_errs, 0);
}

/// Data whose options end in a length of 1 (and one past the header) is taken and
/// acknowledged.
#[test]
fn data_with_an_illegal_trailing_option_is_acknowledged() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 43);
    b.shard.listen(80, None, 16).unwrap();
    b.deliver(&craft(peer(), b.addr(80), 9_000, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    let snd = sa.seq.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), 9_001, snd, ACK, b""));
    let id = b.shard.accept(80).unwrap();
    let mut rcv = 9_001u32;
    for bad in [[1u8, 1, 30, 1], [1, 1, 8, 10]] {
        let data = craft(peer(), b.addr(80), rcv, snd, ACK | xdptcp::wire::TcpFlags::PSH, b"hello");
        b.deliver(&with_extra_options(&data, &bad));
        rcv = rcv.wrapping_add(5);
        b.advance(xdptcp::time::Duration::from_millis(200));
        b.flush();
        let acks = b.take_segs();
        assert!(acks.iter().any(|s| s.is(ACK) && s.ack == rcv), "options {bad:?}: {acks:?}");
    }
    assert_eq!(b.recv_all(id), b"hellohello");
}
