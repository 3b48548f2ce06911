//! Per-header fixtures (STYLE §8.1): deconstruct, construct, truncated, impossible lengths and
//! malformed options, starting from frames the Linux kernel wrote (tests/data) and mutating
//! them one field at a time. The last test checks that every `ParseError` variant is produced.

use core::net::{Ipv4Addr, Ipv6Addr};
use xdptcp::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xdptcp::wire::checksum;
use xdptcp::wire::icmp::{self, IcmpRepr, QuotedTcp};
use xdptcp::wire::ip_proto;
use xdptcp::wire::tcp::{OptionIter, MAX_SACK_BLOCKS};
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    ParseError, SeqNum, TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr,
};

const ARP_REQUEST: &[u8] = include_bytes!("data/linux_arp_request.bin");
const SYN: &[u8] = include_bytes!("data/linux_syn.bin");
const ACK: &[u8] = include_bytes!("data/linux_ack.bin");
const DATA: &[u8] = include_bytes!("data/linux_data.bin");
const RST: &[u8] = include_bytes!("data/linux_rst.bin");
const ACK_SACK: &[u8] = include_bytes!("data/linux_ack_sack.bin");
const FRAG_NEEDED: &[u8] = include_bytes!("data/linux_icmp_frag_needed.bin");
const ECHO_REQUEST: &[u8] = include_bytes!("data/linux_icmp_echo_request.bin");
const SYN6: &[u8] = include_bytes!("data/linux_syn6.bin");
const PTB6: &[u8] = include_bytes!("data/linux_icmp6_packet_too_big.bin");
const VLAN_SYN: &[u8] = include_bytes!("data/linux_vlan_syn.bin");

const CAPS: ChecksumCaps = ChecksumCaps { verify_rx: true, compute_tx: true };
const NO_VERIFY: ChecksumCaps = ChecksumCaps { verify_rx: false, compute_tx: true };

/// The IPv4 packet of a golden frame (Ethernet header stripped).
fn ip4(frame: &[u8]) -> Vec<u8> {
    frame[14..].to_vec()
}

/// The TCP segment of a golden IPv4 frame.
fn seg4(frame: &[u8]) -> Vec<u8> {
    frame[34..].to_vec()
}

fn ipv4_parse(p: &[u8]) -> Result<Ipv4Repr, ParseError> {
    Ipv4Repr::parse(&Ipv4Packet::new_checked(p)?, CAPS)
}

/// Recomputes the IPv4 header checksum after a mutation.
fn refill_ip(p: &mut [u8]) {
    Ipv4Packet::new_unchecked(p).fill_checksum();
}

fn pseudo_syn(len: usize) -> u64 {
    checksum::pseudo_header_v4(Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 2), ip_proto::TCP, len as u16)
}

/// Parses a client-to-server segment (the SYN's addresses) with its checksum verified.
fn tcp_parse(seg: &[u8]) -> Result<TcpRepr<'_>, ParseError> {
    TcpRepr::parse(&TcpPacket::new_checked(seg)?, pseudo_syn(seg.len()), true)
}

/// Recomputes the TCP checksum of a client-to-server segment after a mutation.
fn refill_tcp(seg: &mut [u8]) {
    let ps = pseudo_syn(seg.len());
    TcpPacket::new_unchecked(seg).fill_checksum(ps);
}

/// A SYN segment whose options area is replaced by `opts` (padded with EOL to a multiple of 4),
/// data offset and checksum fixed up.
fn syn_with_options(opts: &[u8]) -> Vec<u8> {
    let mut s = seg4(SYN)[..20].to_vec();
    s.extend_from_slice(opts);
    while s.len() % 4 != 0 {
        s.push(0);
    }
    s[12] = ((s.len() / 4) as u8) << 4;
    refill_tcp(&mut s);
    s
}

mod ethernet {
    use super::*;

    #[test]
    fn deconstruct() {
        let f = EthernetFrame::new_checked(SYN).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0x5e, 0, 0, 0xfe]));
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0x5e, 0, 0, 0x0a]));
        assert_eq!(f.ethertype(), EtherType::Ipv4);
        assert!(!f.has_vlan());
        assert_eq!(f.vlan_id(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &SYN[14..]);
        assert!(f.src_addr().is_unicast() && !f.dst_addr().is_broadcast());
    }

    #[test]
    fn construct() {
        let r = EthernetRepr {
            src: "02:00:5e:00:00:0a".parse().unwrap(),
            dst: "02:00:5e:00:00:fe".parse().unwrap(),
            vlan: None,
            ethertype: EtherType::Ipv4,
        };
        let mut b = [0u8; 14];
        r.emit(&mut b);
        assert_eq!(&b, &SYN[..14]);
        let mut b = [0u8; 18];
        EthernetRepr { vlan: Some(100), ..r }.emit(&mut b);
        assert_eq!(&b, &VLAN_SYN[..18]);
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        f.set_src_addr(EthernetAddress::BROADCAST);
        f.set_dst_addr(EthernetAddress::ZERO);
        assert_eq!(f.payload_mut().len(), 0);
        assert_eq!(&b[..12], &[0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn truncated() {
        for n in 0..14 {
            assert_eq!(EthernetFrame::new_checked(&SYN[..n]).unwrap_err(), ParseError::Truncated);
        }
        // The outer type promises a tag: 14..17 bytes are not enough.
        for n in 14..18 {
            assert_eq!(EthernetFrame::new_checked(&VLAN_SYN[..n]).unwrap_err(), ParseError::Truncated, "{n} bytes");
            let f = EthernetFrame::new_unchecked(&VLAN_SYN[..n]);
            assert_eq!((f.vlan_id(), f.ethertype()), (None, EtherType::Vlan));
        }
        assert!(EthernetFrame::new_checked(&VLAN_SYN[..18]).is_ok());
        assert_eq!(EthernetRepr::parse(&EthernetFrame::new_unchecked(&SYN[..10])).unwrap_err(), ParseError::Truncated);
        // Accessors on a short, unchecked frame read zero and do not panic in release.
        let f = EthernetFrame::new_unchecked(&[][..]);
        assert_eq!(f.payload(), &[] as &[u8]);
    }

    #[test]
    fn vlan_tag_bits() {
        // PCP 7 and DEI set: the VLAN ID is the low 12 bits.
        let mut f = VLAN_SYN.to_vec();
        f[14] = 0xf0;
        f[15] = 0x64;
        let e = EthernetRepr::parse(&EthernetFrame::new_checked(&f[..]).unwrap()).unwrap();
        assert_eq!((e.vlan, e.ethertype), (Some(100), EtherType::Ipv4));
        assert_eq!(e.header_len(), 18);
        // A tag inside a tag (QinQ with 0x8100 twice) is reported, not walked.
        let mut f = VLAN_SYN.to_vec();
        f[16] = 0x81;
        f[17] = 0x00;
        let fr = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(fr.ethertype(), EtherType::Vlan);
    }

    #[test]
    fn ethertypes() {
        for (v, t) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88cc, EtherType::Unknown(0x88cc)),
        ] {
            assert_eq!(EtherType::from(v), t);
            assert_eq!(u16::from(t), v);
        }
    }

    #[test]
    fn mac_text() {
        let a: EthernetAddress = "02:00:5e:00:00:fe".parse().unwrap();
        assert_eq!(a.to_string(), "02:00:5e:00:00:fe");
        assert_eq!(format!("{a:?}"), "02:00:5e:00:00:fe");
        assert!(EthernetAddress::BROADCAST.is_multicast() && EthernetAddress::BROADCAST.is_broadcast());
        assert_eq!("02:00".parse::<EthernetAddress>().unwrap_err(), ParseError::Truncated);
        for bad in ["02:00:5e:00:00:fe:01", "02:00:5e:00:00:zz", "02:00:5e:00:00:100", ""] {
            assert!(bad.parse::<EthernetAddress>().is_err(), "{bad}");
        }
    }
}

mod arp {
    use super::*;

    fn body() -> Vec<u8> {
        ARP_REQUEST[14..].to_vec()
    }

    #[test]
    fn deconstruct() {
        let b = body();
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.sender_protocol_addr(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(198, 18, 0, 254));
        assert_eq!(p.target_hardware_addr(), EthernetAddress::ZERO);
        assert_eq!(p.sender_hardware_addr(), EthernetAddress([2, 0, 0x5e, 0, 0, 0x0a]));
    }

    #[test]
    fn construct() {
        let r = ArpRepr::parse(&ArpPacket::new_checked(&body()[..]).unwrap()).unwrap();
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b);
        assert_eq!(b, body());
        let r = ArpRepr { operation: ArpOperation::Unknown(9), ..r };
        r.emit(&mut b);
        assert_eq!(&b[6..8], &[0, 9]);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).unwrap().operation,
            ArpOperation::Unknown(9)
        );
    }

    #[test]
    fn truncated() {
        let b = body();
        for n in 0..28 {
            assert_eq!(ArpPacket::new_checked(&b[..n]).unwrap_err(), ParseError::Truncated);
            assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&b[..n])).unwrap_err(), ParseError::Truncated);
        }
        // Ethernet padding after the 28 bytes is ignored.
        let mut padded = b.clone();
        padded.resize(46, 0);
        assert!(ArpRepr::parse(&ArpPacket::new_checked(&padded[..]).unwrap()).is_ok());
    }

    #[test]
    fn not_ipv4_over_ethernet() {
        // (byte, value): hardware type 6 (IEEE 802), protocol IPv6, hlen 8, plen 16.
        for (at, v) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = body();
            b[at] = v;
            assert_eq!(
                ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).unwrap_err(),
                ParseError::Unsupported,
                "byte {at} = {v}"
            );
        }
    }
}

mod ipv4 {
    use super::*;

    #[test]
    fn deconstruct() {
        let p = ip4(SYN);
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!((v.version(), v.header_len(), v.total_len()), (4, 20, 60));
        assert!(v.dont_frag() && !v.more_frags() && !v.is_fragment());
        assert_eq!((v.ttl(), v.protocol(), v.checksum()), (64, 6, 0xd4bc));
        assert_eq!(v.payload(), &SYN[34..]);
        assert_eq!(v.into_inner().len(), 60);
    }

    #[test]
    fn construct() {
        let p = ip4(SYN);
        let r = ipv4_parse(&p).unwrap();
        let mut out = vec![0u8; 20];
        r.emit(&mut out, CAPS);
        assert_eq!(out, &p[..20]);
        // With checksum offload, the field is left zero for the device.
        let off = ChecksumCaps { verify_rx: true, compute_tx: false };
        r.emit(&mut out, off);
        assert_eq!(&out[10..12], &[0, 0]);
        // TTL rewrite through the setter, checksum refilled.
        let mut q = p.clone();
        let mut v = Ipv4Packet::new_unchecked(&mut q[..]);
        v.set_ttl(1);
        v.fill_checksum();
        assert!(v.verify_checksum());
        assert_eq!(ipv4_parse(&q).unwrap().ttl, 1);
    }

    #[test]
    fn truncated() {
        let p = ip4(SYN);
        for n in 0..20 {
            assert_eq!(ipv4_parse(&p[..n]).unwrap_err(), ParseError::Truncated);
        }
        // IHL 15 (60 bytes of header) in a 52-byte packet.
        let mut q = ip4(ACK);
        q[0] = 0x4f;
        assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::Truncated);
    }

    #[test]
    fn impossible_lengths() {
        for ihl in 0..5u8 {
            let mut q = ip4(SYN);
            q[0] = 0x40 | ihl;
            assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::BadHeaderLen, "IHL {ihl}");
        }
        // Total length below the header length, and beyond the frame.
        for total in [0u16, 19, 61, 0xffff] {
            let mut q = ip4(SYN);
            q[2..4].copy_from_slice(&total.to_be_bytes());
            refill_ip(&mut q);
            assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::BadTotalLen, "total {total}");
        }
        // IHL 6 with a total length of 20: shorter than the header.
        let mut q = ip4(SYN);
        q[0] = 0x46;
        q[2..4].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::BadTotalLen);
    }

    #[test]
    fn bad_version() {
        for v in [0u8, 6, 15] {
            let mut q = ip4(SYN);
            q[0] = (v << 4) | 5;
            assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::BadVersion);
        }
    }

    #[test]
    fn bad_checksum() {
        let mut q = ip4(SYN);
        q[8] = 63; // TTL changed, checksum not
        assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::BadChecksum);
        let p = Ipv4Packet::new_checked(&q[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p, NO_VERIFY).unwrap().ttl, 63);
    }

    #[test]
    fn fragments() {
        // MF set; a non-zero offset; both; the last fragment (offset, no MF).
        for flags_off in [0x2000u16, 0x0001, 0x20b9, 0x1fff, 0x4000 | 0x0010] {
            let mut q = ip4(DATA);
            q[6..8].copy_from_slice(&flags_off.to_be_bytes());
            refill_ip(&mut q);
            let p = Ipv4Packet::new_checked(&q[..]).unwrap();
            assert!(p.is_fragment());
            assert_eq!(p.frag_offset(), (flags_off & 0x1fff) * 8);
            assert_eq!(ipv4_parse(&q).unwrap_err(), ParseError::Fragment, "{flags_off:#x}");
        }
        // DF alone is not a fragment.
        assert!(ipv4_parse(&ip4(DATA)).is_ok());
    }

    #[test]
    fn link_padding_is_not_payload() {
        // A 54-byte RST padded to the 60-byte Ethernet minimum.
        let mut f = RST.to_vec();
        f.resize(60, 0);
        let p = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(p.payload().len(), 20);
        assert_eq!(ipv4_parse(&f[14..]).unwrap().payload_len, 20);
    }

    #[test]
    fn header_options_are_skipped() {
        // Insert 4 bytes of options (NOP NOP NOP EOL): IHL 6.
        let p = ip4(SYN);
        let mut q = p[..20].to_vec();
        q.extend_from_slice(&[1, 1, 1, 0]);
        q.extend_from_slice(&p[20..]);
        q[0] = 0x46;
        q[2..4].copy_from_slice(&64u16.to_be_bytes());
        refill_ip(&mut q);
        let v = Ipv4Packet::new_checked(&q[..]).unwrap();
        assert_eq!(v.header_len(), 24);
        assert_eq!(v.payload(), &SYN[34..]);
        assert_eq!(ipv4_parse(&q).unwrap().payload_len, 40);
    }

    #[test]
    fn source_addresses() {
        let r = ipv4_parse(&ip4(SYN)).unwrap();
        assert_eq!(r.check_src(), Ok(()));
        for src in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "239.1.2.3", "127.0.0.1"] {
            let r = Ipv4Repr { src: src.parse().unwrap(), ..r };
            assert_eq!(r.check_src(), Err(ParseError::BadAddress), "{src}");
        }
    }
}

mod ipv6 {
    use super::*;

    fn parse(p: &[u8]) -> Result<Ipv6Repr, ParseError> {
        Ipv6Repr::parse(&Ipv6Packet::new_checked(p)?)
    }

    /// The IPv6 SYN with `ext` inserted between the fixed header and TCP; `first` is the first
    /// next-header value and `ext` must carry the chain's next headers itself.
    fn with_ext(first: u8, ext: &[u8]) -> Vec<u8> {
        let p = &SYN6[14..];
        let mut q = p[..40].to_vec();
        q.extend_from_slice(ext);
        q.extend_from_slice(&p[40..]);
        q[6] = first;
        let plen = (q.len() - 40) as u16;
        q[4..6].copy_from_slice(&plen.to_be_bytes());
        q
    }

    #[test]
    fn deconstruct() {
        let p = Ipv6Packet::new_checked(&SYN6[14..]).unwrap();
        assert_eq!((p.version(), p.payload_len(), p.next_header()), (6, 40, ip_proto::TCP));
        assert_eq!(p.payload(), &SYN6[54..]);
        assert_eq!(p.upper_layer(), Ok((ip_proto::TCP, 40)));
        assert_eq!(p.src_addr(), "2001:db8:a::1".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn construct() {
        let r = parse(&SYN6[14..]).unwrap();
        let mut h = [0u8; 40];
        r.emit(&mut h);
        let mut p = Ipv6Packet::new_unchecked(&mut h[..]);
        assert_eq!(p.flow_label(), 0);
        p.set_flow_label(0x7d628 | 0xfff0_0000); // bits above 20 are ignored
        assert_eq!(&h[..], &SYN6[14..54]);
        let r = Ipv6Repr { traffic_class: 0xb8, ..r };
        r.emit(&mut h);
        let p = Ipv6Packet::new_unchecked(&h[..]);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 0xb8, 0));
    }

    #[test]
    fn truncated_and_impossible_lengths() {
        let p = &SYN6[14..];
        for n in 0..40 {
            assert_eq!(parse(&p[..n]).unwrap_err(), ParseError::Truncated);
        }
        // Payload length beyond the frame.
        let mut q = p.to_vec();
        q[5] = 41;
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadTotalLen);
        assert_eq!(parse(&p[..79]).unwrap_err(), ParseError::BadTotalLen);
        // Padding after the payload is ignored.
        let mut q = p.to_vec();
        q.extend_from_slice(&[0; 6]);
        assert_eq!(parse(&q).unwrap().payload_len, 40);
        let mut q = p.to_vec();
        q[0] = 0x40;
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadVersion);
    }

    #[test]
    fn extension_headers_are_walked() {
        // Hop-by-hop (PadN), destination options (8 bytes), routing (type 0 seg 0, 24 bytes),
        // AH (payload len 4 -> 24 bytes), then TCP.
        let mut ext = vec![ip_proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[ip_proto::IPV6_ROUTE, 0, 1, 4, 0, 0, 0, 0]);
        ext.extend_from_slice(&[ip_proto::AH, 2, 0, 0]);
        ext.extend_from_slice(&[0; 20]);
        ext.extend_from_slice(&[ip_proto::TCP, 4, 0, 0]);
        ext.extend_from_slice(&[0; 20]);
        let q = with_ext(ip_proto::HOPOPT, &ext);
        let r = parse(&q).unwrap();
        assert_eq!((r.next_header, r.upper_offset, r.payload_len), (ip_proto::TCP, 104, 40));
        assert_eq!(&q[r.upper_offset..], &SYN6[54..]);
    }

    #[test]
    fn fragments_are_reported() {
        let q = with_ext(ip_proto::IPV6_FRAG, &[ip_proto::TCP, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(parse(&q).unwrap_err(), ParseError::Fragment);
        // Also behind another header.
        let q = with_ext(
            ip_proto::IPV6_OPTS,
            &[ip_proto::IPV6_FRAG, 0, 1, 4, 0, 0, 0, 0, ip_proto::TCP, 0, 0, 1, 0, 0, 0, 7],
        );
        assert_eq!(parse(&q).unwrap_err(), ParseError::Fragment);
    }

    #[test]
    fn malformed_extension_headers() {
        // ESP, no next header.
        for first in [ip_proto::ESP, ip_proto::IPV6_NONXT] {
            assert_eq!(parse(&with_ext(first, &[0; 8])).unwrap_err(), ParseError::BadExtensionHeader);
        }
        // A header whose length runs past the payload.
        let q = with_ext(ip_proto::IPV6_OPTS, &[ip_proto::TCP, 200, 1, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadExtensionHeader);
        // The chain ends right at the end of the payload, with no room for the length byte.
        let p = &SYN6[14..54];
        let mut q = p.to_vec();
        q[4..6].copy_from_slice(&1u16.to_be_bytes());
        q[6] = ip_proto::IPV6_OPTS;
        q.push(ip_proto::TCP);
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadExtensionHeader);
        // Hop-by-hop anywhere but first (RFC 8200 §4.3).
        let q =
            with_ext(ip_proto::IPV6_OPTS, &[ip_proto::HOPOPT, 0, 1, 4, 0, 0, 0, 0, ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadExtensionHeader);
        // A chain longer than MAX_EXT_HEADERS.
        let mut ext = Vec::new();
        for _ in 0..xdptcp::wire::ipv6::MAX_EXT_HEADERS {
            ext.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        let q = with_ext(ip_proto::IPV6_OPTS, &ext);
        assert_eq!(parse(&q).unwrap_err(), ParseError::BadExtensionHeader);
        // One fewer is fine.
        let mut ext = Vec::new();
        for _ in 0..xdptcp::wire::ipv6::MAX_EXT_HEADERS - 1 {
            ext.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        }
        ext.extend_from_slice(&[ip_proto::TCP, 0, 1, 4, 0, 0, 0, 0]);
        assert!(parse(&with_ext(ip_proto::IPV6_OPTS, &ext)).is_ok());
    }

    #[test]
    fn upper_layer_on_an_unchecked_short_packet() {
        // Payload length says 40 but only 2 bytes follow: the walk stops at the buffer.
        let mut q = SYN6[14..56].to_vec();
        q[6] = ip_proto::HOPOPT;
        let p = Ipv6Packet::new_unchecked(&q[..]);
        assert_eq!(p.upper_layer(), Err(ParseError::BadExtensionHeader));
        // Shorter than the fixed header: nothing is read.
        for n in [0, 5, 10, 39] {
            let p = Ipv6Packet::new_unchecked(&q[..n]);
            assert_eq!(p.upper_layer(), Err(ParseError::Truncated));
        }
    }

    #[test]
    fn source_addresses() {
        let r = parse(&SYN6[14..]).unwrap();
        assert_eq!(r.check_src(), Ok(()));
        for src in ["::", "ff02::1", "::1"] {
            let r = Ipv6Repr { src: src.parse().unwrap(), ..r };
            assert_eq!(r.check_src(), Err(ParseError::BadAddress), "{src}");
        }
    }
}

mod tcp {
    use super::*;

    #[test]
    fn deconstruct() {
        let s = seg4(DATA);
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40001, 5001));
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert!(p.flags().psh() && p.flags().ack() && !p.flags().syn());
        assert_eq!(p.payload(), b"hello xdptcp\n");
        assert_eq!(p.option_iter().count(), 3);
        assert_eq!(p.flags().to_string(), "PSH,ACK");
        assert_eq!(TcpFlags::NONE.to_string(), "-");
    }

    #[test]
    fn construct() {
        let s = seg4(DATA);
        let r = tcp_parse(&s).unwrap();
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out, Some(pseudo_syn(s.len())));
        assert_eq!(out, s);
        // Header only, payload by the caller, checksum afterwards.
        let mut out = vec![0u8; r.buffer_len()];
        let hl = r.emit_header(&mut out, r.payload.len());
        assert_eq!(hl, 32);
        assert_eq!(&out[16..18], &[0, 0]);
        let mut p = TcpPacket::new_unchecked(&mut out[..]);
        p.payload_mut().copy_from_slice(b"hello xdptcp\n");
        p.fill_checksum(pseudo_syn(s.len()));
        assert_eq!(out, s);
        // Without a pseudo-header the checksum is left zero.
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out, None);
        assert_eq!(&out[16..18], &[0, 0]);
    }

    #[test]
    fn truncated() {
        let s = seg4(SYN);
        for n in 0..20 {
            assert_eq!(TcpPacket::new_checked(&s[..n]).unwrap_err(), ParseError::Truncated);
        }
    }

    #[test]
    fn impossible_data_offsets() {
        // Below 5, and beyond the 40-byte segment (11..15).
        for doff in [0u8, 1, 4, 11, 15] {
            let mut s = seg4(SYN);
            s[12] = doff << 4;
            assert_eq!(TcpPacket::new_checked(&s[..]).unwrap_err(), ParseError::BadDataOffset, "doff {doff}");
            assert_eq!(
                TcpRepr::parse(&TcpPacket::new_unchecked(&s[..]), 0, false).unwrap_err(),
                ParseError::BadDataOffset
            );
        }
        // The SYN's options cut short: data offset 10 in a 39-byte segment.
        assert_eq!(TcpPacket::new_checked(&seg4(SYN)[..39]).unwrap_err(), ParseError::BadDataOffset);
    }

    #[test]
    fn bad_checksum() {
        let mut s = seg4(DATA);
        s[35] ^= 0x20; // one payload byte
        assert_eq!(tcp_parse(&s).unwrap_err(), ParseError::BadChecksum);
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert!(TcpRepr::parse(&p, pseudo_syn(s.len()), false).is_ok());
        // The right bytes under the wrong pseudo-header (another destination).
        let s = seg4(DATA);
        let other = checksum::pseudo_header_v4(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 1, 3),
            ip_proto::TCP,
            s.len() as u16,
        );
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p, other, true).unwrap_err(), ParseError::BadChecksum);
    }

    #[test]
    fn flags() {
        for (bits, impossible) in [
            (TcpFlags::SYN | TcpFlags::FIN, true),
            (TcpFlags::SYN | TcpFlags::RST, true),
            (TcpFlags::SYN | TcpFlags::RST | TcpFlags::ACK, true),
            (TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, false),
            (TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK, false),
            (TcpFlags::NONE, false),
        ] {
            let mut s = seg4(SYN);
            TcpPacket::new_unchecked(&mut s[..]).set_header_len_and_flags(40, bits);
            refill_tcp(&mut s);
            // Parsing does not judge flags; `check` does.
            let r = tcp_parse(&s).unwrap();
            assert_eq!(r.flags, bits);
            assert_eq!(r.flags.is_impossible(), impossible);
            assert_eq!(r.flags.check(), if impossible { Err(ParseError::BadFlags) } else { Ok(()) }, "{bits}");
        }
    }

    #[test]
    fn ae_and_reserved_bits() {
        // AE (bit 8) is a flag; the three reserved bits above it are ignored.
        let mut s = seg4(ACK);
        s[12] |= 0x0f;
        refill_tcp(&mut s);
        let r = tcp_parse(&s).unwrap();
        assert_eq!(r.flags, TcpFlags::ACK | TcpFlags::AE);
        assert_eq!(r.flags.to_string(), "ACK,AE");
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out, None);
        assert_eq!(out[12], 0x81);
    }

    #[test]
    fn segment_len() {
        let mut s = seg4(DATA);
        TcpPacket::new_unchecked(&mut s[..])
            .set_header_len_and_flags(32, TcpFlags::SYN | TcpFlags::FIN | TcpFlags::ACK);
        let r = TcpRepr::parse(&TcpPacket::new_checked(&s[..]).unwrap(), 0, false).unwrap();
        assert_eq!(r.segment_len(), 13 + 2);
    }
}

mod tcp_options {
    use super::*;

    fn opts(o: &[u8]) -> TcpOptions {
        TcpOptions::parse(o)
    }

    /// The first illegal option length the iterator reports (`None`: the list is well formed).
    fn first_error(o: &[u8]) -> Option<ParseError> {
        OptionIter::new(o).find_map(Result::err)
    }

    /// An illegal length ends the list and the options before it are kept: Linux's
    /// `tcp_parse_options` stops there and processes the segment (RFC 9293 MUST-68).
    #[test]
    fn length_zero_or_one() {
        for o in [&[2u8, 0, 5, 0xb4][..], &[2, 1, 5, 0xb4], &[30, 0], &[30, 1], &[8, 1]] {
            assert_eq!(first_error(o), Some(ParseError::BadOption), "{o:?}");
            assert_eq!(opts(o), TcpOptions::default(), "{o:?}");
        }
        let o = opts(&[2, 4, 5, 0xb4, 3, 3, 7, 1, 254, 0, 3, 3, 9, 0]);
        assert_eq!((o.mss, o.window_scale), (Some(1460), Some(7)), "kept up to the bad option, nothing after");
        let mut it = OptionIter::new(&[1, 2, 0, 3, 3, 7]);
        assert_eq!(it.next(), Some(Ok(TcpOption::NoOperation)));
        assert_eq!(it.next(), Some(Err(ParseError::BadOption)));
        assert_eq!(it.next(), None, "the iterator stops after an error");
    }

    #[test]
    fn past_the_header() {
        // Timestamps claiming 10 bytes with 4 left; a SACK claiming 34 with 10 left; a kind at
        // the very end with no length byte.
        for o in [&[8u8, 10, 0, 0][..], &[5, 34, 0, 0, 0, 0, 0, 0, 0, 0], &[1, 1, 1, 3]] {
            assert_eq!(first_error(o), Some(ParseError::BadOption), "{o:?}");
            assert_eq!(opts(o), TcpOptions::default(), "{o:?}");
        }
        // The same inside a real header: a window scale kind as the last byte of the options.
        // The segment parses, with the MSS before it.
        let s = syn_with_options(&[2, 4, 5, 0xb4, 1, 1, 1, 3]);
        let r = tcp_parse(&s).unwrap();
        assert_eq!((r.options.mss, r.options.window_scale), (Some(1460), None));
        // Linux's SYN options cut by a smaller data offset: 9 ends cleanly after the
        // timestamps, 8 cuts them (10 bytes claimed, 6 left). The rest becomes payload.
        let mut s = seg4(SYN);
        s[12] = 9 << 4;
        refill_tcp(&mut s);
        let r = tcp_parse(&s).unwrap();
        assert_eq!((r.options.window_scale, r.payload.len()), (None, 4));
        s[12] = 8 << 4;
        refill_tcp(&mut s);
        let r = tcp_parse(&s).unwrap();
        assert_eq!((r.options.timestamps, r.payload.len()), (None, 8));
    }

    #[test]
    fn wrong_fixed_lengths_are_ignored() {
        // MSS of length 3 and 6, window scale of length 4, SACK-permitted of length 3,
        // timestamps of length 8, SACK of length 9: skipped as unknown, as Linux does.
        let o = [2, 3, 0, 2, 6, 0, 0, 0, 0, 3, 4, 7, 7, 4, 3, 0, 8, 8, 0, 0, 0, 0, 0, 0];
        let mut o = o.to_vec();
        o.extend_from_slice(&[5, 9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(opts(&o), TcpOptions::default());
        assert!(OptionIter::new(&o).all(|x| matches!(x, Ok(TcpOption::Unknown { .. }))));
    }

    #[test]
    fn eol_ends_the_list() {
        // Anything after EOL is padding, even bytes that would be malformed.
        let o = opts(&[2, 4, 5, 0xb4, 0, 8, 0xff, 0xff]);
        assert_eq!(o.mss, Some(1460));
        assert_eq!(o.timestamps, None);
    }

    #[test]
    fn sack_blocks() {
        let o = opts(&ACK_SACK[34 + 20..34 + 44]);
        assert_eq!(o.sack_count, 1);
        // Four blocks (34 bytes) parse; a fifth does not fit in a header at all.
        let mut raw = vec![1, 1, 5, 34];
        for i in 0..4u32 {
            raw.extend_from_slice(&(i * 100).to_be_bytes());
            raw.extend_from_slice(&(i * 100 + 50).to_be_bytes());
        }
        let o = opts(&raw);
        assert_eq!(o.sack_blocks().len(), MAX_SACK_BLOCKS);
        assert_eq!(o.sack_blocks()[3], (SeqNum(300), SeqNum(350)));
        // A second SACK option replaces the first.
        let mut two = raw.clone();
        two.extend_from_slice(&[5, 10, 0, 0, 0, 9, 0, 0, 0, 10]);
        let o = opts(&two);
        assert_eq!(o.sack_blocks(), [(SeqNum(9), SeqNum(10))]);
        // An inconsistent Repr (count above four) does not panic or over-read.
        let o = TcpOptions { sack_count: 200, ..o };
        assert_eq!(o.sack_blocks().len(), MAX_SACK_BLOCKS);
    }

    #[test]
    fn unknown_kinds_are_skipped() {
        // TCP-AO (29), MPTCP (30) with data, then a window scale.
        let o = opts(&[29, 4, 1, 2, 30, 6, 0, 0, 0, 0, 1, 3, 3, 9]);
        assert_eq!(o.window_scale, Some(9));
        let kinds: Vec<_> = OptionIter::new(&[29, 4, 1, 2]).map(|o| o.unwrap()).collect();
        assert_eq!(kinds, [TcpOption::Unknown { kind: 29, data: &[1, 2] }]);
    }

    #[test]
    fn malformed_options_in_a_segment() {
        for o in [&[2u8, 0][..], &[2, 1], &[8, 12, 0, 0], &[4]] {
            let s = syn_with_options(o);
            let r = tcp_parse(&s).unwrap_or_else(|e| panic!("{o:?}: {e:?}"));
            assert_eq!(r.options, TcpOptions::default(), "{o:?}");
        }
    }

    /// Emitted lengths always equal `buffer_len()`, and SACK blocks that do not fit in the 40
    /// bytes are dropped from the end, never written past the header.
    #[test]
    fn emit_fits_forty_bytes() {
        let blocks = [(SeqNum(1), SeqNum(2)), (SeqNum(3), SeqNum(4)), (SeqNum(5), SeqNum(6)), (SeqNum(7), SeqNum(8))];
        for (o, want_blocks) in [
            // Timestamps + 3 blocks: 12 + 28 = 40.
            (TcpOptions { timestamps: Some((1, 2)), sack_count: 3, ..TcpOptions::default() }, 3),
            // Timestamps + window scale: 16 bytes, room for 2 blocks (36), not 3 (44).
            (TcpOptions { timestamps: Some((1, 2)), window_scale: Some(7), sack_count: 4, ..TcpOptions::default() }, 2),
            // Everything: 20 bytes, 2 blocks.
            (
                TcpOptions {
                    mss: Some(1460),
                    timestamps: Some((1, 2)),
                    window_scale: Some(7),
                    sack_permitted: true,
                    sack_count: 4,
                    ..TcpOptions::default()
                },
                2,
            ),
            // SACK alone: 4 blocks, 36 bytes.
            (TcpOptions { sack_count: 4, ..TcpOptions::default() }, 4),
        ] {
            let o = TcpOptions { sack_blocks: blocks, ..o };
            let mut buf = [0xeeu8; 48];
            let n = o.emit(&mut buf);
            assert_eq!(n, o.buffer_len());
            assert!(n <= 40 && n % 4 == 0);
            assert!(buf[n..].iter().all(|&b| b == 0xee), "wrote past {n}");
            let back = TcpOptions::parse(&buf[..n]);
            assert_eq!(back.sack_blocks(), &blocks[..want_blocks]);
            assert_eq!(o.sack_blocks_to_emit(), &blocks[..want_blocks]);
            assert_eq!((back.mss, back.timestamps, back.window_scale), (o.mss, o.timestamps, o.window_scale));
        }
    }

    #[test]
    fn sack_permitted_alone_and_window_scale_alone() {
        for o in [
            TcpOptions { sack_permitted: true, ..TcpOptions::default() },
            TcpOptions { window_scale: Some(14), ..TcpOptions::default() },
        ] {
            let mut buf = [0u8; 40];
            let n = o.emit(&mut buf);
            assert_eq!(n, 4);
            assert_eq!(TcpOptions::parse(&buf[..n]), o);
        }
    }
}

mod icmp_v4 {
    use super::*;

    fn msg(frame: &[u8]) -> Vec<u8> {
        frame[34..].to_vec()
    }

    /// Frag-needed with the quote replaced by `quote`, checksum refilled.
    fn frag_needed(quote: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 8 + quote.len()];
        icmp::emit_frag_needed_v4(&mut m, 1280, quote);
        m
    }

    #[test]
    fn deconstruct_and_construct_echo() {
        let m = msg(ECHO_REQUEST);
        let r = IcmpRepr::parse_v4(&m, true).unwrap();
        assert!(matches!(r, IcmpRepr::EchoRequest { ident: 0x7864, seq_no: 1, .. }));
        let mut out = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit_echo_v4(&mut out), m.len());
        assert_eq!(out, m);
        // Non-echo kinds are not emitted by `emit_echo_*`.
        let other = IcmpRepr::Other { icmp_type: 13, code: 0 };
        assert_eq!(other.emit_echo_v4(&mut out), 0);
        assert_eq!(other.emit_echo_v6(&mut out, 0), 0);
        assert_eq!(other.buffer_len(), 8);
    }

    #[test]
    fn truncated() {
        let m = msg(ECHO_REQUEST);
        for n in 0..8 {
            assert_eq!(IcmpRepr::parse_v4(&m[..n], false).unwrap_err(), ParseError::Truncated);
            assert_eq!(IcmpRepr::parse_v6(&m[..n], 0, false).unwrap_err(), ParseError::Truncated);
        }
    }

    #[test]
    fn bad_checksum() {
        let mut m = msg(ECHO_REQUEST);
        m[20] ^= 1;
        assert_eq!(IcmpRepr::parse_v4(&m, true).unwrap_err(), ParseError::BadChecksum);
        assert!(IcmpRepr::parse_v4(&m, false).is_ok());
    }

    #[test]
    fn frag_needed_quotes() {
        let m = msg(FRAG_NEEDED);
        let q = &m[8..];
        // The minimum quote: IP header + 8 bytes of TCP (RFC 792).
        let m28 = frag_needed(&q[..28]);
        let r = IcmpRepr::parse_v4(&m28, true).unwrap();
        assert!(matches!(r, IcmpRepr::PacketTooBig { mtu: 1280, .. }));
        // Shorter than that: no ports and sequence number to match.
        for n in [0, 19, 20, 27] {
            assert_eq!(IcmpRepr::parse_v4(&frag_needed(&q[..n]), true).unwrap_err(), ParseError::BadQuote, "{n} bytes");
        }
        // The quoted packet is not TCP, is not IPv4, or has an IHL beyond the quote.
        for (at, v) in [(9usize, ip_proto::UDP), (0, 0x65), (0, 0x43), (0, 0x4f)] {
            let mut bad = q[..28].to_vec();
            bad[at] = v;
            assert_eq!(
                IcmpRepr::parse_v4(&frag_needed(&bad), true).unwrap_err(),
                ParseError::BadQuote,
                "byte {at} = {v:#x}"
            );
        }
        assert_eq!(QuotedTcp::parse_v4(&q[..28]).unwrap().dst_port, 5001);
    }

    #[test]
    fn other_errors_are_soft() {
        // Time exceeded and port unreachable quoting the same segment.
        let m = msg(FRAG_NEEDED);
        for (ty, code) in [(11u8, 0u8), (3, 3), (3, 1)] {
            let mut e = m.clone();
            e[0] = ty;
            e[1] = code;
            e[2] = 0;
            e[3] = 0;
            let sum = checksum::checksum(&e);
            e[2..4].copy_from_slice(&sum.to_be_bytes());
            let r = IcmpRepr::parse_v4(&e, true).unwrap();
            assert!(
                matches!(r, IcmpRepr::Error { icmp_type, code: c, quote } if icmp_type == ty && c == code && quote.src_port == 40003),
                "{r:?}"
            );
        }
        // A type we do not handle.
        let mut e = msg(ECHO_REQUEST);
        e[0] = 13;
        assert!(matches!(IcmpRepr::parse_v4(&e, false).unwrap(), IcmpRepr::Other { icmp_type: 13, code: 0 }));
    }
}

mod icmp_v6 {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("2001:db8:a::fe".parse().unwrap(), "2001:db8:a::1".parse().unwrap())
    }

    fn pseudo(len: usize) -> u64 {
        let (s, d) = addrs();
        checksum::pseudo_header_v6(s, d, ip_proto::ICMPV6, len as u32)
    }

    /// PTB6's message with the body cut to `n` quoted bytes and the checksum refilled.
    fn ptb(n: usize) -> Vec<u8> {
        let mut m = PTB6[54..54 + 8 + n].to_vec();
        m[2] = 0;
        m[3] = 0;
        let c = checksum::finish(checksum::sum(&m) + pseudo(m.len()));
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    #[test]
    fn packet_too_big_quotes() {
        let m = ptb(48);
        assert!(matches!(
            IcmpRepr::parse_v6(&m, pseudo(m.len()), true).unwrap(),
            IcmpRepr::PacketTooBig { mtu: 1280, .. }
        ));
        for n in [0, 39, 40, 47] {
            let m = ptb(n);
            assert_eq!(IcmpRepr::parse_v6(&m, pseudo(m.len()), true).unwrap_err(), ParseError::BadQuote, "{n} bytes");
        }
        // Quoting a non-TCP packet, or something that is not IPv6.
        for (at, v) in [(8 + 6, ip_proto::UDP), (8, 0x45)] {
            let mut m = ptb(48);
            m[at] = v;
            assert_eq!(IcmpRepr::parse_v6(&m, 0, false).unwrap_err(), ParseError::BadQuote);
        }
    }

    #[test]
    fn bad_checksum_and_soft_errors() {
        let m = ptb(48);
        // Under another pseudo-header (a different length): wrong.
        assert_eq!(IcmpRepr::parse_v6(&m, pseudo(m.len() + 1), true).unwrap_err(), ParseError::BadChecksum);
        for ty in [1u8, 3] {
            let mut e = m.clone();
            e[0] = ty;
            assert!(matches!(
                IcmpRepr::parse_v6(&e, 0, false).unwrap(),
                IcmpRepr::Error { icmp_type, .. } if icmp_type == ty
            ));
        }
    }

    #[test]
    fn echo_roundtrip() {
        let (s, d) = addrs();
        for r in [
            IcmpRepr::EchoRequest { ident: 7, seq_no: 9, data: b"abc" },
            IcmpRepr::EchoReply { ident: 7, seq_no: 9, data: b"abc" },
        ] {
            let mut b = vec![0u8; r.buffer_len()];
            let ps = checksum::pseudo_header_v6(s, d, ip_proto::ICMPV6, b.len() as u32);
            assert_eq!(r.emit_echo_v6(&mut b, ps), 11);
            assert_eq!(IcmpRepr::parse_v6(&b, ps, true).unwrap(), r);
        }
    }
}

/// Every `ParseError` variant is produced by some input; this table names one for each.
#[test]
fn every_parse_error_variant_is_produced() {
    let mut ihl4 = ip4(SYN);
    ihl4[0] = 0x44;
    let mut v6 = ip4(SYN);
    v6[0] = 0x65;
    let mut total = ip4(SYN);
    total[3] = 100;
    let mut doff = seg4(SYN);
    doff[12] = 0x40;
    let mut ttl = ip4(SYN);
    ttl[8] = 1;
    let mut mf = ip4(SYN);
    mf[6] |= 0x20;
    refill_ip(&mut mf);
    let mut esp = SYN6[14..].to_vec();
    esp[6] = ip_proto::ESP;
    let mut arp = ARP_REQUEST[14..].to_vec();
    arp[1] = 6;
    let quote = {
        let mut m = vec![0u8; 8 + 20];
        icmp::emit_frag_needed_v4(&mut m, 1280, &FRAG_NEEDED[42..62]);
        m
    };
    let v4 = ipv4_parse(&ip4(SYN)).unwrap();
    let bcast = Ipv4Repr { src: Ipv4Addr::BROADCAST, ..v4 };
    let cases: Vec<(ParseError, Result<(), ParseError>)> = vec![
        (ParseError::Truncated, ipv4_parse(&SYN[14..30]).map(drop)),
        (ParseError::BadVersion, ipv4_parse(&v6).map(drop)),
        (ParseError::BadHeaderLen, ipv4_parse(&ihl4).map(drop)),
        (ParseError::BadTotalLen, ipv4_parse(&total).map(drop)),
        (ParseError::BadDataOffset, tcp_parse(&doff).map(drop)),
        (ParseError::BadOption, OptionIter::new(&[2, 1]).find_map(Result::err).map_or(Ok(()), Err)),
        (ParseError::BadChecksum, ipv4_parse(&ttl).map(drop)),
        (ParseError::BadFlags, (TcpFlags::SYN | TcpFlags::FIN).check()),
        (ParseError::Fragment, ipv4_parse(&mf).map(drop)),
        (ParseError::BadExtensionHeader, Ipv6Repr::parse(&Ipv6Packet::new_checked(&esp[..]).unwrap()).map(drop)),
        (ParseError::BadQuote, IcmpRepr::parse_v4(&quote, true).map(drop)),
        (ParseError::Unsupported, ArpRepr::parse(&ArpPacket::new_checked(&arp[..]).unwrap()).map(drop)),
        (ParseError::BadAddress, bcast.check_src()),
    ];
    for (want, got) in &cases {
        assert_eq!(got, &Err(*want));
    }
    let produced: Vec<_> = cases.iter().map(|c| c.0).collect();
    assert_eq!(produced, ParseError::ALL, "a variant has no producing input here");
    for (i, e) in ParseError::ALL.iter().enumerate() {
        assert_eq!(e.index(), i);
        assert_eq!(e.to_string(), e.name());
    }
}
