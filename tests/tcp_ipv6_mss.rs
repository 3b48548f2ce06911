//! ICMP packet-too-big on IPv6 and the default MSS of an IPv6 SYN
//! cookie.

mod common;

use common::*;
use xdptcp::tcp::IcmpError;
use xdptcp::tcp::{Config, SynCookies, Verdict};
use xdptcp::wire::icmp::QuotedTcp;
use xdptcp::wire::TcpOptions;

/// RFC 8201 §4: "a node MUST NOT reduce its estimate of the Path MTU below the IPv6 minimum
/// link MTU" (1280). Linux `tcp_v6_err` ignores a packet-too-big whose MTU is below
/// IPV6_MIN_MTU (`if (mtu < IPV6_MIN_MTU) goto out;`). A PTB quoting in-flight data with
/// MTU 1000 leaves the MSS at 1280 - 60 = 1220 or more (it would otherwise go to 940).
#[test]
fn ipv6_packet_too_big_below_1280_does_not_lower_mss_below_1220() {
    let mut a = Host::new("2001:db8::2", plain_cfg(), 1);
    let mut b = Host::new("2001:db8::1", plain_cfg(), 2);
    let (ida, _idb) = handshake(&mut a, &mut b);
    let before = a.shard.info(ida).unwrap().smss;
    assert!(before >= 1220, "IPv6 MSS {before}");
    a.shard.send(ida, &vec![7u8; 4000]).unwrap();
    a.flush();
    let segs = a.take_segs();
    assert!(!segs.is_empty());
    let q = QuotedTcp {
        src: segs[0].src.ip(),
        dst: segs[0].dst.ip(),
        src_port: segs[0].src.port(),
        dst_port: segs[0].dst.port(),
        seq: xdptcp::wire::SeqNum(segs[0].seq),
    };
    let v = a.shard.handle_icmp_error(a.now, &q, IcmpError::PacketTooBig { mtu: 1000 }, &mut a.out);
    a.flush();
    let after = a.shard.info(ida).unwrap().smss;
    assert!(
        after >= 1220,
        "IPv6 PTB with MTU 1000 (< 1280) lowered the MSS to {after} (verdict {v:?}); RFC 8201 §4 / \
         Linux tcp_v6_err keep the path MTU at 1280 or more"
    );
}

/// RFC 9293 §3.7.1 (MUST-15): without an MSS option the send MSS is 536 for IPv4 but 1220
/// for IPv6. Linux's cookie path starts from `af_ops->mss_clamp` (1220 for IPv6) before
/// `cookie_v6_init_sequence` encodes it. An IPv6 client without the option is not held to
/// 536-byte segments on a cookie connection (the SYN-queue path gives 1220; the cookie table
/// rounds it to 1200).
#[test]
fn ipv6_cookie_without_mss_option_uses_ipv6_default() {
    let cfg = Config { syncookies: SynCookies::Always, ..plain_cfg() };
    let mut b = Host::new("2001:db8::1", cfg, 3);
    b.shard.listen(80, None, 16).unwrap();
    let peer: std::net::SocketAddr = "[2001:db8::2]:40000".parse().unwrap();
    let isn = 0x1000_0000u32;
    // SYN with no options at all.
    b.deliver(&craft_opts(peer, b.addr(80), isn, 0, SYN, b"", TcpOptions::default(), 65535));
    let sa = Seg::parse(&b.take_one());
    assert!(sa.is(synack()));
    assert_eq!(b.shard.counters().tcp_ext_syncookies_sent, 1);
    let v = b.deliver(&craft(peer, b.addr(80), isn.wrapping_add(1), sa.seq.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Consumed);
    let id = b.shard.accept(80).unwrap();
    let smss = b.shard.info(id).unwrap().smss;
    // The cookie table may round 1220 down to 1200, never to the IPv4 default.
    assert!(
        smss >= 1200,
        "IPv6 cookie connection without MSS option got MSS {smss}, expected 1220 (or its table rounding)"
    );
}

/// The SYN-queue path for the same IPv6 SYN: 1220.
#[test]
fn ipv6_syn_queue_without_mss_option_uses_ipv6_default() {
    let mut b = Host::new("2001:db8::1", plain_cfg(), 3);
    b.shard.listen(80, None, 16).unwrap();
    let peer: std::net::SocketAddr = "[2001:db8::2]:40000".parse().unwrap();
    let isn = 0x1000_0000u32;
    b.deliver(&craft_opts(peer, b.addr(80), isn, 0, SYN, b"", TcpOptions::default(), 65535));
    let sa = Seg::parse(&b.take_one());
    b.deliver(&craft(peer, b.addr(80), isn.wrapping_add(1), sa.seq.wrapping_add(1), ACK, b""));
    let id = b.shard.accept(80).unwrap();
    assert_eq!(b.shard.info(id).unwrap().smss, 1220);
}
