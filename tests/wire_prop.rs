//! Property tests for the wire layer (STYLE §8.4): emit-then-parse round trips for every header,
//! the incremental checksum against a full recompute, the fast checksum against a naive
//! RFC 1071 sum, sequence-number order across the wrap, and parsers fed arbitrary bytes.

use core::net::{Ipv4Addr, Ipv6Addr};
use proptest::collection::vec;
use proptest::prelude::*;
use xdptcp::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xdptcp::wire::checksum;
use xdptcp::wire::icmp::{IcmpRepr, QuotedTcp};
use xdptcp::wire::ip_proto;
use xdptcp::wire::tcp::{OptionIter, MAX_SACK_BLOCKS};
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    SeqNum, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};

const CAPS: ChecksumCaps = ChecksumCaps { verify_rx: true, compute_tx: true };

const GOLDEN: [&[u8]; 17] = [
    include_bytes!("data/linux_arp_request.bin"),
    include_bytes!("data/linux_arp_reply.bin"),
    include_bytes!("data/linux_syn.bin"),
    include_bytes!("data/linux_synack.bin"),
    include_bytes!("data/linux_ack.bin"),
    include_bytes!("data/linux_data.bin"),
    include_bytes!("data/linux_fin.bin"),
    include_bytes!("data/linux_rst.bin"),
    include_bytes!("data/linux_ack_sack.bin"),
    include_bytes!("data/linux_icmp_frag_needed.bin"),
    include_bytes!("data/linux_icmp_echo_request.bin"),
    include_bytes!("data/linux_icmp_echo_reply.bin"),
    include_bytes!("data/linux_syn6.bin"),
    include_bytes!("data/linux_synack6.bin"),
    include_bytes!("data/linux_icmp6_packet_too_big.bin"),
    include_bytes!("data/linux_mld_hbh.bin"),
    include_bytes!("data/linux_vlan_syn.bin"),
];

// ---------------------------------------------------------------------------------------------
// Strategies

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}

fn ipv4_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn ipv6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn seq() -> impl Strategy<Value = SeqNum> {
    any::<u32>().prop_map(SeqNum)
}

/// Any option set the emitter can express: SACK blocks beyond what fits are not generated, and
/// unused block slots stay zero (as `parse` leaves them).
fn tcp_options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        proptest::option::of(any::<(u32, u32)>()),
        vec((seq(), seq()), 0..=MAX_SACK_BLOCKS),
    )
        .prop_map(|(mss, window_scale, sack_permitted, timestamps, blocks)| {
            let mut o = TcpOptions { mss, window_scale, sack_permitted, timestamps, ..TcpOptions::default() };
            for (slot, b) in o.sack_blocks.iter_mut().zip(&blocks) {
                *slot = *b;
            }
            o.sack_count = blocks.len() as u8;
            let fit = o.sack_blocks_to_emit().len();
            for slot in o.sack_blocks.iter_mut().skip(fit) {
                *slot = (SeqNum(0), SeqNum(0));
            }
            o.sack_count = fit as u8;
            o
        })
}

struct TcpParts {
    src_port: u16,
    dst_port: u16,
    seq: SeqNum,
    ack: SeqNum,
    flags: TcpFlags,
    window: u16,
    urgent: u16,
    options: TcpOptions,
    payload: Vec<u8>,
}

impl TcpParts {
    fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent: self.urgent,
            options: self.options,
            payload: &self.payload,
        }
    }
}

impl core::fmt::Debug for TcpParts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.repr().fmt(f)
    }
}

fn tcp_parts() -> impl Strategy<Value = TcpParts> {
    (
        (any::<u16>(), any::<u16>(), seq(), seq()),
        (0u16..0x200, any::<u16>(), any::<u16>()),
        tcp_options(),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(|((src_port, dst_port, seq, ack), (flags, window, urgent), options, payload)| TcpParts {
            src_port,
            dst_port,
            seq,
            ack,
            flags: TcpFlags(flags),
            window,
            urgent,
            options,
            payload,
        })
}

fn ipv4_repr(payload_len: impl Strategy<Value = usize>) -> impl Strategy<Value = Ipv4Repr> {
    ((ipv4_addr(), ipv4_addr(), any::<u8>(), payload_len), (any::<u8>(), 0u8..64, 0u8..4, any::<u16>(), any::<bool>()))
        .prop_map(|((src, dst, protocol, payload_len), (ttl, dscp, ecn, ident, dont_frag))| Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len,
            ttl,
            dscp,
            ecn,
            ident,
            dont_frag,
        })
}

/// Next-header values that end the extension-header walk.
fn upper_protocol() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("an extension header", |p| {
        ![
            ip_proto::HOPOPT,
            ip_proto::IPV6_ROUTE,
            ip_proto::IPV6_FRAG,
            ip_proto::ESP,
            ip_proto::AH,
            ip_proto::IPV6_NONXT,
            ip_proto::IPV6_OPTS,
        ]
        .contains(p)
    })
}

// ---------------------------------------------------------------------------------------------
// Round trips

proptest! {
    #[test]
    fn tcp_emit_then_parse(t in tcp_parts(), src in ipv4_addr(), dst in ipv4_addr()) {
        let r = t.repr();
        let len = r.buffer_len();
        prop_assert_eq!(r.header_len() % 4, 0);
        prop_assert!(r.header_len() <= 60);
        let pseudo = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len as u16);
        let mut buf = vec![0u8; len];
        r.emit(&mut buf, Some(pseudo));
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum(pseudo));
        prop_assert_eq!(p.header_len(), r.header_len());
        let back = TcpRepr::parse(&p, pseudo, true).unwrap();
        prop_assert_eq!(back, r);
        prop_assert_eq!(back.segment_len(), r.segment_len());
    }

    #[test]
    fn tcp_over_ipv6_emit_then_parse(t in tcp_parts(), src in ipv6_addr(), dst in ipv6_addr()) {
        let r = t.repr();
        let ip = Ipv6Repr {
            src,
            dst,
            next_header: ip_proto::TCP,
            payload_len: r.buffer_len(),
            hop_limit: 64,
            traffic_class: 0,
            upper_offset: 40,
        };
        let mut buf = vec![0u8; ip.buffer_len()];
        ip.emit(&mut buf);
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::TCP, r.buffer_len() as u32);
        r.emit(&mut buf[40..], Some(pseudo));
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), ip);
        let seg = TcpPacket::new_checked(&buf[40..]).unwrap();
        prop_assert_eq!(TcpRepr::parse(&seg, pseudo, true).unwrap(), r);
    }

    #[test]
    fn tcp_options_emit_then_parse(o in tcp_options()) {
        let mut buf = [0u8; 40];
        let n = o.emit(&mut buf);
        prop_assert_eq!(n, o.buffer_len());
        prop_assert!(n <= 40 && n % 4 == 0);
        prop_assert_eq!(TcpOptions::parse(&buf[..n]), o);
        prop_assert!(OptionIter::new(&buf[..n]).all(|x| x.is_ok()));
    }

    /// Whatever the option set, `emit` writes exactly `buffer_len()` bytes, at most 40, and
    /// what it drops is SACK blocks from the end.
    #[test]
    fn tcp_options_never_overflow(
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(any::<u8>()),
        sackp in any::<bool>(),
        ts in proptest::option::of(any::<(u32, u32)>()),
        blocks in proptest::array::uniform4((seq(), seq())),
        count in any::<u8>(),
    ) {
        let o = TcpOptions {
            mss,
            window_scale: ws,
            sack_permitted: sackp,
            timestamps: ts,
            sack_blocks: blocks,
            sack_count: count,
        };
        let mut buf = [0xa5u8; 64];
        let n = o.emit(&mut buf);
        prop_assert_eq!(n, o.buffer_len());
        prop_assert!(n <= 40);
        prop_assert!(buf[n..].iter().all(|&b| b == 0xa5));
        let back = TcpOptions::parse(&buf[..n]);
        prop_assert_eq!((back.mss, back.window_scale, back.timestamps), (mss, ws, ts));
        prop_assert_eq!(back.sack_permitted, sackp);
        let sent = back.sack_blocks();
        prop_assert_eq!(sent, o.sack_blocks_to_emit());
        prop_assert_eq!(sent, &o.sack_blocks()[..sent.len()]);
    }

    #[test]
    fn ipv4_emit_then_parse(r in ipv4_repr(0usize..1480)) {
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, CAPS);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&p, CAPS).unwrap(), r);
        prop_assert_eq!(p.payload().len(), r.payload_len);
    }

    #[test]
    fn ipv6_emit_then_parse(
        src in ipv6_addr(),
        dst in ipv6_addr(),
        next_header in upper_protocol(),
        payload_len in 0usize..300,
        hop_limit in any::<u8>(),
        traffic_class in any::<u8>(),
        flow in 0u32..0x10_0000,
    ) {
        let r = Ipv6Repr {
            src,
            dst,
            next_header,
            payload_len,
            hop_limit,
            traffic_class,
            upper_offset: 40,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf);
        Ipv6Packet::new_unchecked(&mut buf[..]).set_flow_label(flow);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        prop_assert_eq!((p.flow_label(), p.traffic_class()), (flow, traffic_class));
        prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn ethernet_emit_then_parse(
        src in mac(),
        dst in mac(),
        vlan in proptest::option::of(0u16..4096),
        ethertype in any::<u16>().prop_filter("a VLAN TPID as payload type", |t| *t != 0x8100),
    ) {
        let r = EthernetRepr { src, dst, vlan, ethertype: EtherType::from(ethertype) };
        let mut buf = vec![0u8; r.header_len() + 10];
        r.emit(&mut buf);
        let f = EthernetFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(EthernetRepr::parse(&f).unwrap(), r);
        prop_assert_eq!(f.payload().len(), 10);
        prop_assert_eq!(u16::from(f.ethertype()), ethertype);
    }

    #[test]
    fn arp_emit_then_parse(
        op in any::<u16>(),
        sha in mac(),
        spa in ipv4_addr(),
        tha in mac(),
        tpa in ipv4_addr(),
    ) {
        let r = ArpRepr {
            operation: ArpOperation::from(op),
            source_hardware_addr: sha,
            source_protocol_addr: spa,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        let mut buf = [0u8; 28];
        r.emit(&mut buf);
        prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(), r);
        prop_assert_eq!(u16::from(r.operation), op);
    }

    #[test]
    fn icmp_echo_emit_then_parse(
        reply in any::<bool>(),
        ident in any::<u16>(),
        seq_no in any::<u16>(),
        data in vec(any::<u8>(), 0..300),
        src in ipv6_addr(),
        dst in ipv6_addr(),
    ) {
        let r = if reply {
            IcmpRepr::EchoReply { ident, seq_no, data: &data }
        } else {
            IcmpRepr::EchoRequest { ident, seq_no, data: &data }
        };
        let mut buf = vec![0u8; r.buffer_len()];
        prop_assert_eq!(r.emit_echo_v4(&mut buf), buf.len());
        prop_assert_eq!(IcmpRepr::parse_v4(&buf, true).unwrap(), r);
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, buf.len() as u32);
        prop_assert_eq!(r.emit_echo_v6(&mut buf, pseudo), buf.len());
        prop_assert_eq!(IcmpRepr::parse_v6(&buf, pseudo, true).unwrap(), r);
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums

/// RFC 1071 §4.1, one 16-bit word at a time with the end-around carry folded in at each step.
fn naive_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut i = 0;
    while i < data.len() {
        let hi = u32::from(data[i]);
        let lo = u32::from(*data.get(i + 1).unwrap_or(&0));
        acc += (hi << 8) | lo;
        if acc > 0xffff {
            acc = (acc & 0xffff) + 1;
        }
        i += 2;
    }
    acc as u16
}

proptest! {
    #[test]
    fn fast_sum_equals_naive_sum(data in vec(any::<u8>(), 0..2000), skip in 0usize..16) {
        // Also from odd and unaligned starting points.
        let d = &data[skip.min(data.len())..];
        prop_assert_eq!(checksum::fold(checksum::sum(d)), naive_sum(d));
        prop_assert_eq!(checksum::checksum(d), !naive_sum(d));
    }

    #[test]
    fn fast_sum_of_all_ones(len in 0usize..5000) {
        // The worst case for carries.
        let d = vec![0xffu8; len];
        prop_assert_eq!(checksum::fold(checksum::sum(&d)), naive_sum(&d));
    }

    #[test]
    fn checksum_verifies(data in vec(any::<u8>(), 2..300), at in any::<prop::sample::Index>()) {
        // Put the checksum of the rest into an aligned 16-bit field: the whole then verifies.
        let mut d = data;
        if d.len() % 2 == 1 {
            d.push(0);
        }
        let field = at.index(d.len() / 2) * 2;
        d[field] = 0;
        d[field + 1] = 0;
        let c = checksum::checksum(&d);
        d[field..field + 2].copy_from_slice(&c.to_be_bytes());
        prop_assert!(checksum::verify(&d, 0));
    }

    /// RFC 1624 eqn. 3 equals a full recompute whenever the data does not sum to zero, which
    /// no real header does (the IPv4 version nibble and the pseudo-header's protocol are not
    /// zero): for all-zero data the update gives 0x0000 where the recompute gives 0xffff, the
    /// two one's-complement zeros.
    #[test]
    fn incremental_update_u16_equals_recompute(
        data in vec(any::<u8>(), 2..200),
        at in any::<prop::sample::Index>(),
        new in any::<u16>(),
    ) {
        let mut d = data;
        if d.len() % 2 == 1 {
            d.push(0);
        }
        let i = at.index(d.len() / 2) * 2;
        let old = u16::from_be_bytes([d[i], d[i + 1]]);
        let before = checksum::checksum(&d);
        d[i..i + 2].copy_from_slice(&new.to_be_bytes());
        prop_assume!(d.iter().any(|&b| b != 0));
        prop_assert_eq!(checksum::update_u16(before, old, new), checksum::checksum(&d));
    }

    #[test]
    fn incremental_update_u32_equals_recompute(
        data in vec(any::<u8>(), 4..200),
        at in any::<prop::sample::Index>(),
        new in any::<u32>(),
    ) {
        let mut d = data;
        while d.len() % 2 == 1 {
            d.push(0);
        }
        // A 32-bit field at any 16-bit boundary (TCP's sequence number sits at offset 4).
        let i = at.index(d.len() / 2 - 1) * 2;
        let old = u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let before = checksum::checksum(&d);
        d[i..i + 4].copy_from_slice(&new.to_be_bytes());
        prop_assume!(d.iter().any(|&b| b != 0));
        prop_assert_eq!(checksum::update_u32(before, old, new), checksum::checksum(&d));
    }

    /// The update applied to a real TCP/IPv4 segment: rewriting a port and the sequence number
    /// keeps the checksum valid without summing the payload again.
    #[test]
    fn incremental_update_on_a_segment(t in tcp_parts(), port in any::<u16>(), s in seq()) {
        let r = t.repr();
        let (src, dst) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let pseudo = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, r.buffer_len() as u16);
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, Some(pseudo));
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        let c = checksum::update_u16(p.checksum(), p.dst_port(), port);
        let c = checksum::update_u32(c, p.seq_number().get(), s.get());
        p.set_dst_port(port);
        p.set_seq_number(s);
        p.set_checksum(c);
        prop_assert!(p.verify_checksum(pseudo));
    }

    #[test]
    fn pseudo_headers_equal_summing_their_bytes(
        s4 in ipv4_addr(), d4 in ipv4_addr(), proto in any::<u8>(), len in any::<u16>(),
        s6 in ipv6_addr(), d6 in ipv6_addr(), len6 in any::<u32>(),
    ) {
        let mut b = Vec::new();
        b.extend_from_slice(&s4.octets());
        b.extend_from_slice(&d4.octets());
        b.extend_from_slice(&[0, proto]);
        b.extend_from_slice(&len.to_be_bytes());
        prop_assert_eq!(
            checksum::fold(checksum::pseudo_header_v4(s4, d4, proto, len)),
            naive_sum(&b)
        );
        let mut b = Vec::new();
        b.extend_from_slice(&s6.octets());
        b.extend_from_slice(&d6.octets());
        b.extend_from_slice(&len6.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, proto]);
        prop_assert_eq!(
            checksum::fold(checksum::pseudo_header_v6(s6, d6, proto, len6)),
            naive_sum(&b)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sequence numbers

proptest! {
    #[test]
    fn seq_order_across_the_wrap(a in any::<u32>(), d in 1u32..0x8000_0000) {
        let a = SeqNum(a);
        let b = a.add(d);
        prop_assert!(a.before(b) && b.after(a));
        prop_assert!(a.before_eq(b) && b.after_eq(a));
        prop_assert!(!a.after(b) && !b.before(a));
        prop_assert_eq!(b.diff(a), d as i32);
        prop_assert_eq!(a.diff(b), (d as i32).wrapping_neg());
        prop_assert_eq!(b.distance_from(a), d);
        prop_assert_eq!(b.sub(d), a);
        prop_assert_eq!(a.max(b), b);
        prop_assert_eq!(a.min(b), a);
        prop_assert!(a.before_eq(a) && a.after_eq(a) && !a.before(a) && !a.after(a));
    }

    #[test]
    fn seq_between_and_window(lo in any::<u32>(), len in 0u32..0x8000_0000, k in any::<u32>()) {
        let lo = SeqNum(lo);
        let hi = lo.add(len);
        let x = lo.add(k);
        // Measured forward from `lo`, so it holds on either side of the wrap.
        prop_assert_eq!(x.between(lo, hi), k <= len);
        prop_assert_eq!(x.in_window(lo, len), k < len);
        if k <= len {
            prop_assert!(x.after_eq(lo) && x.before_eq(hi));
        }
    }

    /// Exactly one of before, equal, after, and `before` is the mirror of `after`, except at
    /// the horizon (2^31 apart), where each is before the other, as with the kernel's
    /// `before()`: callers keep windows below 2^31.
    #[test]
    fn seq_trichotomy(a in any::<u32>(), b in any::<u32>()) {
        let (a, b) = (SeqNum(a), SeqNum(b));
        let n = [a.before(b), a == b, a.after(b)].iter().filter(|&&x| x).count();
        if b.distance_from(a) == 0x8000_0000 {
            prop_assert!(a.before(b) && b.before(a));
            prop_assert!(!a.after(b) && !b.after(a));
        } else {
            prop_assert_eq!(n, 1);
            prop_assert_eq!(a.before(b), b.after(a));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input never panics

/// Every parser over `frame`, and every accessor of every view that passed `check_len` (the
/// contract: after it, accessors read inside the buffer).
fn parse_everything(frame: &[u8]) {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return;
    };
    let _ = (eth.src_addr(), eth.dst_addr(), eth.vlan_id(), eth.header_len());
    let Ok(e) = EthernetRepr::parse(&eth) else {
        return;
    };
    let l3 = eth.payload();
    match e.ethertype {
        EtherType::Arp => {
            if let Ok(p) = ArpPacket::new_checked(l3) {
                let _ = (p.hardware_type(), p.operation(), p.target_protocol_addr());
                let _ = ArpRepr::parse(&p);
            }
        }
        EtherType::Ipv4 => parse_ipv4(l3),
        EtherType::Ipv6 => parse_ipv6(l3),
        _ => {}
    }
}

fn parse_ipv4(l3: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(l3) else {
        return;
    };
    let _ = (p.dscp(), p.ecn(), p.ident(), p.frag_offset(), p.ttl(), p.checksum());
    let _ = (p.verify_checksum(), p.src_addr(), p.dst_addr());
    let _ = Ipv4Repr::parse(&p, CAPS);
    let no_verify = ChecksumCaps { verify_rx: false, ..CAPS };
    let Ok(r) = Ipv4Repr::parse(&p, no_verify) else {
        return;
    };
    let _ = r.check_src();
    let body = p.payload();
    match r.protocol {
        ip_proto::TCP => {
            let ps = checksum::pseudo_header_v4(r.src, r.dst, ip_proto::TCP, body.len() as u16);
            parse_tcp(body, ps);
        }
        ip_proto::ICMP => {
            let _ = IcmpRepr::parse_v4(body, true);
            let _ = IcmpRepr::parse_v4(body, false);
            let _ = QuotedTcp::parse_v4(body);
        }
        _ => {}
    }
}

fn parse_ipv6(l3: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(l3) else {
        return;
    };
    let _ = (p.traffic_class(), p.flow_label(), p.hop_limit(), p.payload());
    let Ok(r) = Ipv6Repr::parse(&p) else {
        return;
    };
    let _ = r.check_src();
    let body = l3.get(r.upper_offset..r.upper_offset + r.payload_len).unwrap();
    let ps = checksum::pseudo_header_v6(r.src, r.dst, r.next_header, body.len() as u32);
    match r.next_header {
        ip_proto::TCP => parse_tcp(body, ps),
        ip_proto::ICMPV6 => {
            let _ = IcmpRepr::parse_v6(body, ps, true);
            let _ = IcmpRepr::parse_v6(body, ps, false);
            let _ = QuotedTcp::parse_v6(body);
        }
        _ => {}
    }
}

/// Parses a segment and, when it parses, checks the re-emit property: emitting the repr and
/// parsing it again gives the same repr, except for SACK blocks the emitter had no room for.
fn parse_tcp(seg: &[u8], pseudo: u64) {
    let Ok(p) = TcpPacket::new_checked(seg) else {
        return;
    };
    let _ = (p.src_port(), p.seq_number(), p.flags(), p.window_len(), p.urgent_at());
    let _ = p.option_iter().count();
    let _ = TcpRepr::parse(&p, pseudo, true);
    let Ok(r) = TcpRepr::parse(&p, pseudo, false) else {
        return;
    };
    let _ = (r.flags.check(), r.segment_len());
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut out, Some(pseudo));
    let back = TcpRepr::parse(&TcpPacket::new_checked(&out[..]).unwrap(), pseudo, true).unwrap();
    let mut want = r;
    let fit = r.options.sack_blocks_to_emit().len();
    want.options.sack_count = fit as u8;
    for slot in want.options.sack_blocks.iter_mut().skip(fit) {
        *slot = (SeqNum(0), SeqNum(0));
    }
    let mut got = back;
    for slot in got.options.sack_blocks.iter_mut().skip(fit) {
        *slot = (SeqNum(0), SeqNum(0));
    }
    assert_eq!(got, want);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..1600)) {
        parse_everything(&data);
        // Every parser on its own, at every layer, on the same bytes.
        let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&data[..]), CAPS);
        let _ = Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&data[..]));
        let _ = Ipv6Packet::new_unchecked(&data[..]).upper_layer();
        let _ = TcpRepr::parse(&TcpPacket::new_unchecked(&data[..]), 0, true);
        let _ = TcpOptions::parse(&data);
        let _ = OptionIter::new(&data).count();
        let _ = IcmpRepr::parse_v4(&data, true);
        let _ = IcmpRepr::parse_v6(&data, 0, false);
        let _ = QuotedTcp::parse_v4(&data);
        let _ = QuotedTcp::parse_v6(&data);
        let _ = ArpRepr::parse(&ArpPacket::new_unchecked(&data[..]));
        parse_ipv4(&data);
        parse_ipv6(&data);
        parse_tcp(&data, 0);
    }

    /// Random bytes rarely get past the first length check; mutated real frames do.
    #[test]
    fn mutated_golden_frames_never_panic(
        which in 0..GOLDEN.len(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut f = GOLDEN[which].to_vec();
        for (at, v) in edits {
            let i = at.index(f.len());
            f[i] = v;
        }
        if truncate {
            f.truncate(cut.index(f.len() + 1));
        }
        parse_everything(&f);
    }

    #[test]
    fn arbitrary_tcp_options_never_panic(data in vec(any::<u8>(), 0..40)) {
        let mut seg = vec![0u8; 20];
        seg.extend_from_slice(&data);
        while seg.len() % 4 != 0 {
            seg.push(0);
        }
        seg[12] = ((seg.len() / 4) as u8) << 4;
        parse_tcp(&seg, 0);
    }
}

#[test]
fn golden_frames_survive_the_pipeline() {
    for f in GOLDEN {
        parse_everything(f);
    }
}
