//! Audit: option handling. A segment whose option list ends in an illegal option length, and
//! the TSecr echoed after a passive open.
//!
//! Linux `tcp_parse_options` stops at an option whose length is below 2 ("silly options") or
//! runs past the header ("don't parse partial options") and processes the segment with the
//! options read so far. RFC 9293 MUST-68: "A TCP implementation MUST be prepared to handle an
//! illegal option length (e.g., zero)". `OptionIter` turns such a length into
//! `ParseError::BadOption`, `TcpOptions::parse` fails, and the whole segment is dropped as
//! malformed (`TcpInErrs`): a SYN from a peer (or through a middlebox) with a trailing broken
//! option gets no SYN-ACK, and data with one is never acknowledged, where Linux answers both.

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

#[test]
fn syn_with_a_zero_length_trailing_option_is_answered() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 41);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    let syn = craft_opts(peer(), b.addr(80), 77_000, 0, SYN, b"", o, 65535);
    // NOP, NOP, then kind 254 (experimental) with a length of 0.
    let bad = with_extra_options(&syn, &[1, 1, 254, 0]);
    let v = b.deliver(&bad);
    let segs = b.take_segs();
    assert!(
        segs.iter().any(|s| s.is(synack()) && s.ack == 77_001),
        "Linux answers with a SYN-ACK (options parsed up to the bad one); got {segs:?}, verdict {v:?}"
    );
    assert_eq!(v, Verdict::Consumed);
}

/// RFC 7323 §4.3 (2): the handshake's final ACK (SEG.SEQ = IRS + 1 = Last.ACK.sent, a newer
/// TSval) sets TS.Recent, so the server's first segment echoes that TSval; Linux takes it in
/// `tcp_check_req` (`req->ts_recent = tmp_opt.rcv_tsval`) before the child socket copies it.
/// A server that speaks first (SMTP, SSH, MySQL banners) echoes the SYN's TSval instead.
#[test]
fn first_segment_after_the_handshake_echoes_the_final_acks_tsval() {
    let mut b = Host::new("198.18.0.1", xdptcp::tcp::Config::default(), 42);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), timestamps: Some((5_000, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 88_000, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let our_ts = sa.options.timestamps.expect("timestamps negotiated").0;
    let o = TcpOptions { timestamps: Some((5_040, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 88_001, sa.seq.wrapping_add(1), ACK, b"", o, 65535));
    let id = b.shard.accept(80).unwrap();
    b.shard.send(id, b"220 banner\r\n").unwrap();
    b.flush();
    let d = Seg::parse(&b.take_one());
    assert_eq!(d.options.timestamps.map(|t| t.1), Some(5_040), "TSecr of the first data segment");
}
