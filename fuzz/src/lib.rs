//! Checks shared by the fuzz targets. Each takes arbitrary bytes, must never panic, and asserts
//! the re-emit properties of the wire layer: whatever parses, emitted again, parses to the same
//! value (TCP options: minus the SACK blocks that had no room, see
//! `TcpOptions::sack_blocks_to_emit`).

use core::net::Ipv6Addr;
use xdptcp::wire::arp::{ArpPacket, ArpRepr};
use xdptcp::wire::checksum;
use xdptcp::wire::icmp::{emit_frag_needed_v4, IcmpRepr, QuotedTcp};
use xdptcp::wire::ip_proto;
use xdptcp::wire::tcp::OptionIter;
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, ParseError, SeqNum, TcpOptions, TcpPacket, TcpRepr,
};

const VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: true,
    compute_tx: true,
};
const NO_VERIFY: ChecksumCaps = ChecksumCaps {
    verify_rx: false,
    compute_tx: true,
};

/// Ethernet → ARP / IPv4 / IPv6 → TCP / ICMP, every layer parsed and re-emitted.
pub fn check_frame(data: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(data) else {
        return;
    };
    let Ok(eth) = EthernetRepr::parse(&f) else {
        return;
    };
    let mut hdr = vec![0u8; eth.header_len()];
    eth.emit(&mut hdr);
    let back = EthernetRepr::parse(&EthernetFrame::new_checked(&hdr[..]).unwrap()).unwrap();
    // An untagged frame whose type is the VLAN TPID but too short for a tag is Truncated
    // above; anything that parsed comes back, except a tagged frame whose inner type is the
    // TPID again (QinQ), which reads back as one more tag.
    if eth.ethertype != EtherType::Vlan {
        assert_eq!(back, eth);
    }
    let l3 = f.payload();
    match eth.ethertype {
        EtherType::Arp => check_arp(l3),
        EtherType::Ipv4 => check_ipv4(l3),
        EtherType::Ipv6 => check_ipv6(l3),
        _ => {}
    }
}

fn check_arp(l3: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(l3) else {
        return;
    };
    let Ok(r) = ArpRepr::parse(&p) else {
        return;
    };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut out);
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()).unwrap(),
        r
    );
    assert_eq!(&out[..], &l3[..28]);
}

pub fn check_ipv4(l3: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(l3) else {
        return;
    };
    let _ = Ipv4Repr::parse(&p, VERIFY);
    let Ok(r) = Ipv4Repr::parse(&p, NO_VERIFY) else {
        return;
    };
    let _ = r.check_src();
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut out, VERIFY);
    let q = Ipv4Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&q, VERIFY).unwrap(), r);
    let body = p.payload();
    assert_eq!(body.len(), r.payload_len);
    match r.protocol {
        ip_proto::TCP => {
            let ps = checksum::pseudo_header_v4(r.src, r.dst, ip_proto::TCP, body.len() as u16);
            check_tcp(body, ps);
        }
        ip_proto::ICMP => check_icmp_v4(body),
        _ => {}
    }
}

pub fn check_ipv6(l3: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(l3) else {
        return;
    };
    let Ok(r) = Ipv6Repr::parse(&p) else {
        return;
    };
    let _ = r.check_src();
    let body = l3
        .get(r.upper_offset..r.upper_offset + r.payload_len)
        .expect("upper layer inside the packet");
    // Without extension headers the fixed header re-emits as it came, flow label aside.
    if r.upper_offset == 40 {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        Ipv6Packet::new_unchecked(&mut out[..]).set_flow_label(p.flow_label());
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_checked(&out[..]).unwrap()).unwrap(),
            r
        );
        assert_eq!(&out[..40], &l3[..40]);
    }
    let ps = checksum::pseudo_header_v6(r.src, r.dst, r.next_header, body.len() as u32);
    match r.next_header {
        ip_proto::TCP => check_tcp(body, ps),
        ip_proto::ICMPV6 => check_icmp_v6(body, ps),
        _ => {}
    }
}

/// A TCP segment under the pseudo-header sum `pseudo`.
pub fn check_tcp(seg: &[u8], pseudo: u64) {
    let Ok(p) = TcpPacket::new_checked(seg) else {
        return;
    };
    let _ = TcpRepr::parse(&p, pseudo, true);
    let Ok(r) = TcpRepr::parse(&p, pseudo, false) else {
        return;
    };
    let _ = (r.flags.check(), r.segment_len());
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut out, Some(pseudo));
    let q = TcpPacket::new_checked(&out[..]).expect("emitted header checks");
    let back = TcpRepr::parse(&q, pseudo, true).expect("emitted segment parses");
    assert_eq!(without_unsent_sack(back), without_unsent_sack(r));
    assert_eq!(back.options.sack_blocks(), r.options.sack_blocks_to_emit());
}

/// The repr with only the SACK blocks the emitter sends, unused slots zeroed.
fn without_unsent_sack(mut r: TcpRepr<'_>) -> TcpRepr<'_> {
    r.options = without_unsent_sack_options(r.options);
    r
}

fn without_unsent_sack_options(mut o: TcpOptions) -> TcpOptions {
    let n = o.sack_blocks_to_emit().len();
    o.sack_count = n as u8;
    for slot in o.sack_blocks.iter_mut().skip(n) {
        *slot = (SeqNum(0), SeqNum(0));
    }
    o
}

/// A raw TCP options area (the bytes after the fixed header).
pub fn check_options(data: &[u8]) {
    let _ = OptionIter::new(data).count();
    // An illegal length ends the list; what came before is kept (Linux `tcp_parse_options`).
    let o = TcpOptions::parse(data);
    let mut out = [0u8; 40];
    let n = o.emit(&mut out);
    assert_eq!(n, o.buffer_len());
    assert!(n <= 40 && n % 4 == 0);
    let back = TcpOptions::parse(&out[..n]);
    assert!(OptionIter::new(&out[..n]).all(|x| x.is_ok()), "emitted options parse");
    assert_eq!(
        without_unsent_sack_options(back),
        without_unsent_sack_options(o)
    );
    // The same area inside a header, when it fits one.
    if data.len() <= 40 {
        let mut seg = vec![0u8; 20];
        seg.extend_from_slice(data);
        while seg.len() % 4 != 0 {
            seg.push(0);
        }
        seg[12] = ((seg.len() / 4) as u8) << 4;
        check_tcp(&seg, 0);
    }
}

pub fn check_icmp_v4(msg: &[u8]) {
    let _ = QuotedTcp::parse_v4(msg);
    let _ = IcmpRepr::parse_v4(msg, true);
    let Ok(r) = IcmpRepr::parse_v4(msg, false) else {
        return;
    };
    let mut out = vec![0u8; r.buffer_len()];
    if r.emit_echo_v4(&mut out) > 0 {
        assert_eq!(IcmpRepr::parse_v4(&out, true).unwrap(), r);
        // Echo data is the rest of the message, so everything comes back but the checksum
        // and the code (echo has only code 0, which is what we send; a received code is
        // ignored, as Linux ignores it).
        assert_eq!(out.len(), msg.len());
        assert_eq!((out[0], &out[4..]), (msg[0], &msg[4..]));
    }
}

pub fn check_icmp_v6(msg: &[u8], pseudo: u64) {
    let _ = QuotedTcp::parse_v6(msg);
    let _ = IcmpRepr::parse_v6(msg, pseudo, true);
    let Ok(r) = IcmpRepr::parse_v6(msg, pseudo, false) else {
        return;
    };
    let mut out = vec![0u8; r.buffer_len()];
    if r.emit_echo_v6(&mut out, pseudo) > 0 {
        assert_eq!(IcmpRepr::parse_v6(&out, pseudo, true).unwrap(), r);
        assert_eq!((out[0], &out[4..]), (msg[0], &msg[4..]));
    }
}

/// The ICMP target's input: first byte even = ICMPv4, odd = ICMPv6 (between two fixed
/// documentation addresses), then the message.
pub fn check_icmp(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        check_icmp_v4(msg);
    } else {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0xfe);
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
        let ps = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, msg.len() as u32);
        check_icmp_v6(msg, ps);
    }
    // The same bytes as the quote of a fragmentation-needed message we emit.
    let mut m = vec![0u8; 8 + msg.len()];
    assert_eq!(emit_frag_needed_v4(&mut m, 1280, msg), m.len());
    match IcmpRepr::parse_v4(&m, true) {
        Ok(IcmpRepr::PacketTooBig { mtu, quote }) => {
            assert_eq!(mtu, 1280);
            assert_eq!(QuotedTcp::parse_v4(msg), Ok(quote));
        }
        Ok(other) => panic!("frag-needed parsed as {other:?}"),
        Err(e) => assert_eq!(e, ParseError::BadQuote),
    }
}
