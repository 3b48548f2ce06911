//! Helpers shared by the privileged tests: the root gate and fixture frames built with the
//! crate's own emitters.
#![allow(dead_code)]

pub mod serve_bed;

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use xdptcp::wire::arp::{ArpOperation, ArpRepr};
use xdptcp::wire::checksum;
use xdptcp::wire::icmp::IcmpRepr;
use xdptcp::wire::{
    ip_proto, ChecksumCaps, EtherType, EthernetAddress, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Repr, SeqNum, TcpFlags,
    TcpOptions, TcpRepr,
};

/// True when the test may touch the kernel (BPF, namespaces). Without root it prints a loud
/// skip message and returns false, except under `CI=true`, where it fails instead: CI runs as
/// root and must run everything.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root (CAP_BPF, CAP_NET_ADMIN), and CI=true forbids skipping");
    }
    // Straight to the stderr handle: libtest captures eprintln! of passing tests, and this
    // must be seen.
    let bar = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\n!!! SKIPPED {test}: not root. Run as root to test the XDP datapath.\n{bar}\n"
    );
    false
}

/// The value of counter `name` in `serve`'s summary or stats file (`name value` lines), 0 when
/// absent.
pub fn counter(summary: &str, name: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next().and_then(|v| v.parse().ok())).flatten()
        })
        .unwrap_or(0)
}

/// SYN cookies sent, by the cores (`TcpExtSyncookiesSent`) and by the XDP program's SYN shield
/// (`syn_shield_synacks`), from `serve`'s summary.
pub fn cookies_sent(summary: &str) -> u64 {
    counter(summary, "TcpExtSyncookiesSent") + counter(summary, "syn_shield_synacks")
}

pub const MAC_PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const MAC_STACK: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const IP4_STACK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const IP4_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const IP6_STACK: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x1813, 0, 0, 0, 0, 0, 1);
pub const IP6_PEER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x1813, 0, 0, 0, 0, 0, 2);

fn eth(vlan: Option<u16>, ethertype: EtherType, payload_len: usize) -> (Vec<u8>, usize) {
    let e = EthernetRepr { src: MAC_PEER, dst: MAC_STACK, vlan, ethertype };
    let hl = e.header_len();
    let mut f = vec![0u8; hl + payload_len];
    e.emit(&mut f);
    (f, hl)
}

/// A TCP segment from the peer with the given flags.
pub fn tcp_segment(src_port: u16, dst_port: u16, flags: TcpFlags, seq: u32, ack: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port,
        dst_port,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags,
        window: 64240,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

/// Ethernet (optionally tagged) + IPv4 + TCP, checksums filled.
pub fn tcp4_frame(vlan: Option<u16>, src: Ipv4Addr, dst: Ipv4Addr, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let tl = tcp.buffer_len();
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::TCP,
        payload_len: tl,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    let (mut f, hl) = eth(vlan, EtherType::Ipv4, ip.buffer_len());
    ip.emit(&mut f[hl..], ChecksumCaps::default());
    let ps = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, tl as u16);
    tcp.emit(&mut f[hl + 20..], Some(ps));
    f
}

/// A SYN from the peer to `dst:port` over IPv4.
pub fn syn4(vlan: Option<u16>, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    tcp4_frame(vlan, IP4_PEER, dst, &tcp_segment(40000, port, TcpFlags::SYN, 1000, 0))
}

/// A SYN from the peer to `[dst]:port` over IPv6.
pub fn syn6(vlan: Option<u16>, dst: Ipv6Addr, port: u16) -> Vec<u8> {
    let tcp = tcp_segment(40000, port, TcpFlags::SYN, 1000, 0);
    let tl = tcp.buffer_len();
    let ip = Ipv6Repr {
        src: IP6_PEER,
        dst,
        next_header: ip_proto::TCP,
        payload_len: tl,
        hop_limit: 64,
        traffic_class: 0,
        upper_offset: 40,
    };
    let (mut f, hl) = eth(vlan, EtherType::Ipv6, ip.buffer_len());
    ip.emit(&mut f[hl..]);
    let ps = checksum::pseudo_header_v6(IP6_PEER, dst, ip_proto::TCP, tl as u32);
    tcp.emit(&mut f[hl + 40..], Some(ps));
    f
}

/// IPv6 + a hop-by-hop options header (8 bytes of padding) + TCP SYN.
pub fn syn6_with_hop_by_hop(dst: Ipv6Addr, port: u16) -> Vec<u8> {
    let tcp = tcp_segment(40000, port, TcpFlags::SYN, 1000, 0);
    let tl = tcp.buffer_len();
    let ip = Ipv6Repr {
        src: IP6_PEER,
        dst,
        next_header: ip_proto::HOPOPT,
        payload_len: 8 + tl,
        hop_limit: 64,
        traffic_class: 0,
        upper_offset: 48,
    };
    let (mut f, hl) = eth(None, EtherType::Ipv6, ip.buffer_len());
    ip.emit(&mut f[hl..]);
    // next header TCP, length 0 (8 bytes), PadN of 4 + Pad1 x2... simply PadN covering 6.
    f[hl + 40..hl + 48].copy_from_slice(&[ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0]);
    let ps = checksum::pseudo_header_v6(IP6_PEER, dst, ip_proto::TCP, tl as u32);
    tcp.emit(&mut f[hl + 48..], Some(ps));
    f
}

/// The IPv4 SYN with 4 bytes of IP options (IHL = 6): the TCP header starts at byte 38.
pub fn syn4_with_ip_options(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let plain = syn4(None, dst, port);
    let mut f = Vec::with_capacity(plain.len() + 4);
    f.extend_from_slice(&plain[..14 + 20]);
    f.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
    f.extend_from_slice(&plain[14 + 20..]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    f
}

/// An IPv4 SYN marked as a first fragment (MF set).
pub fn syn4_fragment(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut f = syn4(None, dst, port);
    f[20] |= 0x20; // MF
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    f
}

/// ARP request from the peer for `target`.
pub fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let a = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_PEER,
        source_protocol_addr: IP4_PEER,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let (mut f, hl) = eth(None, EtherType::Arp, a.buffer_len());
    f[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    a.emit(&mut f[hl..]);
    f
}

/// ICMP echo request from the peer to `dst`.
pub fn ping4(dst: Ipv4Addr) -> Vec<u8> {
    let echo = IcmpRepr::EchoRequest { ident: 7, seq_no: 1, data: b"xdptcp" };
    let il = echo.buffer_len();
    let ip = Ipv4Repr {
        src: IP4_PEER,
        dst,
        protocol: ip_proto::ICMP,
        payload_len: il,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 2,
        dont_frag: false,
    };
    let (mut f, hl) = eth(None, EtherType::Ipv4, ip.buffer_len());
    ip.emit(&mut f[hl..], ChecksumCaps::default());
    echo.emit_echo_v4(&mut f[hl + 20..]);
    f
}

/// ICMPv6 echo request from the peer to `dst`.
pub fn ping6(dst: Ipv6Addr) -> Vec<u8> {
    let echo = IcmpRepr::EchoRequest { ident: 7, seq_no: 1, data: b"xdptcp" };
    let il = echo.buffer_len();
    let ip = Ipv6Repr {
        src: IP6_PEER,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: il,
        hop_limit: 64,
        traffic_class: 0,
        upper_offset: 40,
    };
    let (mut f, hl) = eth(None, EtherType::Ipv6, ip.buffer_len());
    ip.emit(&mut f[hl..]);
    let ps = checksum::pseudo_header_v6(IP6_PEER, dst, ip_proto::ICMPV6, il as u32);
    echo.emit_echo_v6(&mut f[hl + 40..], ps);
    f
}

/// Neighbour solicitation for `target`, sent to its solicited-node multicast group.
pub fn neighbour_solicitation(target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    let body_len = 24;
    let ip = Ipv6Repr {
        src: IP6_PEER,
        dst: group,
        next_header: ip_proto::ICMPV6,
        payload_len: body_len,
        hop_limit: 255,
        traffic_class: 0,
        upper_offset: 40,
    };
    let (mut f, hl) = eth(None, EtherType::Ipv6, ip.buffer_len());
    ip.emit(&mut f[hl..]);
    let b = &mut f[hl + 40..];
    b[0] = 135;
    b[8..24].copy_from_slice(&t);
    let ps = checksum::pseudo_header_v6(IP6_PEER, group, ip_proto::ICMPV6, body_len as u32);
    let c = checksum::finish(checksum::sum(&b[..body_len]).wrapping_add(ps));
    b[2..4].copy_from_slice(&c.to_be_bytes());
    f
}
