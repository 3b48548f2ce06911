//! The wire layer against frames the Linux kernel wrote (tests/data, see its README).
//!
//! Every frame is parsed and each header field compared with the value an independent decoder
//! (`tests/data/extract.py --dump`) read from the same bytes; both checksums are compared as
//! bytes and verified; then the frame is rebuilt from the parsed `Repr`s with our emitters and
//! must come out identical, byte for byte, checksums included.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xdptcp::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xdptcp::wire::checksum;
use xdptcp::wire::icmp::{self, IcmpRepr, QuotedTcp};
use xdptcp::wire::ip_proto;
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    SeqNum, TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr,
};

const ARP_REQUEST: &[u8] = include_bytes!("data/linux_arp_request.bin");
const ARP_REPLY: &[u8] = include_bytes!("data/linux_arp_reply.bin");
const SYN: &[u8] = include_bytes!("data/linux_syn.bin");
const SYNACK: &[u8] = include_bytes!("data/linux_synack.bin");
const ACK: &[u8] = include_bytes!("data/linux_ack.bin");
const DATA: &[u8] = include_bytes!("data/linux_data.bin");
const FIN: &[u8] = include_bytes!("data/linux_fin.bin");
const RST: &[u8] = include_bytes!("data/linux_rst.bin");
const ACK_SACK: &[u8] = include_bytes!("data/linux_ack_sack.bin");
const FRAG_NEEDED: &[u8] = include_bytes!("data/linux_icmp_frag_needed.bin");
const ECHO_REQUEST: &[u8] = include_bytes!("data/linux_icmp_echo_request.bin");
const ECHO_REPLY: &[u8] = include_bytes!("data/linux_icmp_echo_reply.bin");
const SYN6: &[u8] = include_bytes!("data/linux_syn6.bin");
const SYNACK6: &[u8] = include_bytes!("data/linux_synack6.bin");
const PTB6: &[u8] = include_bytes!("data/linux_icmp6_packet_too_big.bin");
const MLD_HBH: &[u8] = include_bytes!("data/linux_mld_hbh.bin");
const VLAN_SYN: &[u8] = include_bytes!("data/linux_vlan_syn.bin");

const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a]);
const ROUTER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 0xfe);
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 2);

const CAPS: ChecksumCaps = ChecksumCaps { verify_rx: true, compute_tx: true };

/// What the IPv4 header of a golden frame says, field by field, as the view reads it.
#[derive(Debug, PartialEq, Eq)]
struct Ipv4Fields {
    version: u8,
    header_len: usize,
    dscp: u8,
    ecn: u8,
    total_len: u16,
    ident: u16,
    dont_frag: bool,
    more_frags: bool,
    frag_offset: u16,
    ttl: u8,
    protocol: u8,
    checksum: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl Ipv4Fields {
    fn read(p: &Ipv4Packet<&[u8]>) -> Self {
        Ipv4Fields {
            version: p.version(),
            header_len: p.header_len(),
            dscp: p.dscp(),
            ecn: p.ecn(),
            total_len: p.total_len(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            ttl: p.ttl(),
            protocol: p.protocol(),
            checksum: p.checksum(),
            src: p.src_addr(),
            dst: p.dst_addr(),
        }
    }
}

/// A TCP/IPv4 frame whose IPv4 header has no options and no fragmentation: the common case.
fn ipv4(total_len: u16, ident: u16, ttl: u8, protocol: u8, checksum: u16, src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Fields {
    Ipv4Fields {
        version: 4,
        header_len: 20,
        dscp: 0,
        ecn: 0,
        total_len,
        ident,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl,
        protocol,
        checksum,
        src,
        dst,
    }
}

/// The TCP header fields as the view reads them, raw options included.
#[derive(Debug, PartialEq, Eq)]
struct TcpFields<'a> {
    src_port: u16,
    dst_port: u16,
    seq: SeqNum,
    ack: SeqNum,
    header_len: usize,
    flags: TcpFlags,
    window: u16,
    checksum: u16,
    urgent: u16,
    options: &'a [u8],
    payload: &'a [u8],
}

impl<'a> TcpFields<'a> {
    fn read(seg: &'a [u8]) -> Self {
        let p = TcpPacket::new_checked(seg).unwrap();
        let options = &seg[20..p.header_len()];
        assert_eq!(p.options(), options);
        assert_eq!(p.option_iter().count(), OptionIterCount::of(options));
        TcpFields {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            header_len: p.header_len(),
            flags: p.flags(),
            window: p.window_len(),
            checksum: p.checksum(),
            urgent: p.urgent_at(),
            options,
            payload: p.payload(),
        }
    }
}

/// Counts options by hand (kind 0 ends the list, kind 1 is one byte, others carry a length), to
/// check `option_iter` against.
struct OptionIterCount;

impl OptionIterCount {
    fn of(mut o: &[u8]) -> usize {
        let mut n = 0;
        while let Some(&k) = o.first() {
            n += 1;
            match k {
                0 => break,
                1 => o = &o[1..],
                _ => o = &o[usize::from(o[1])..],
            }
        }
        n
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn ethernet(frame: &[u8]) -> (EthernetRepr, &[u8]) {
    let f = EthernetFrame::new_checked(frame).unwrap();
    (EthernetRepr::parse(&f).unwrap(), f.payload())
}

/// One parsed TCP/IPv4 frame, every layer verified (checksums included).
struct Tcp4<'a> {
    eth: EthernetRepr,
    ip_fields: Ipv4Fields,
    ip: Ipv4Repr,
    tcp_fields: TcpFields<'a>,
    tcp: TcpRepr<'a>,
}

fn parse_tcp4(frame: &[u8]) -> Tcp4<'_> {
    let (eth, l3) = ethernet(frame);
    assert_eq!(eth.ethertype, EtherType::Ipv4);
    let ip_pkt = Ipv4Packet::new_checked(l3).unwrap();
    assert!(ip_pkt.verify_checksum(), "IPv4 header checksum");
    let ip = Ipv4Repr::parse(&ip_pkt, CAPS).unwrap();
    assert_eq!(ip.protocol, ip_proto::TCP);
    let seg = ip_pkt.payload();
    assert_eq!(seg.len(), ip.payload_len);
    let tcp_pkt = TcpPacket::new_checked(seg).unwrap();
    let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, seg.len() as u16);
    assert!(tcp_pkt.verify_checksum(pseudo), "TCP checksum");
    let tcp = TcpRepr::parse(&tcp_pkt, pseudo, true).unwrap();
    Tcp4 { eth, ip_fields: Ipv4Fields::read(&ip_pkt), ip, tcp_fields: TcpFields::read(seg), tcp }
}

/// Rebuilds a TCP/IPv4 frame from its `Repr`s with our emitters.
fn emit_tcp4(t: &Tcp4<'_>) -> Vec<u8> {
    let eth_len = t.eth.header_len();
    let mut out = vec![0u8; eth_len + t.ip.buffer_len()];
    t.eth.emit(&mut out);
    t.ip.emit(&mut out[eth_len..], CAPS);
    let seg_len = t.tcp.buffer_len();
    assert_eq!(seg_len, t.ip.payload_len, "TcpRepr::buffer_len");
    let pseudo = checksum::pseudo_header_v4(t.ip.src, t.ip.dst, ip_proto::TCP, seg_len as u16);
    t.tcp.emit(&mut out[eth_len + 20..], Some(pseudo));
    out
}

fn eth(src: EthernetAddress, dst: EthernetAddress, ethertype: EtherType) -> EthernetRepr {
    EthernetRepr { src, dst, vlan: None, ethertype }
}

const TO_SERVER: (EthernetAddress, EthernetAddress) = (CLIENT_MAC, ROUTER_MAC);
const TO_CLIENT: (EthernetAddress, EthernetAddress) = (ROUTER_MAC, CLIENT_MAC);

fn eth_ipv4(dir: (EthernetAddress, EthernetAddress)) -> EthernetRepr {
    eth(dir.0, dir.1, EtherType::Ipv4)
}

// ---------------------------------------------------------------------------------------------
// ARP

#[test]
fn arp_request_and_reply() {
    for (frame, op, sha, spa, tha, tpa, dst) in [
        (
            ARP_REQUEST,
            ArpOperation::Request,
            CLIENT_MAC,
            CLIENT,
            EthernetAddress::ZERO,
            ROUTER,
            EthernetAddress::BROADCAST,
        ),
        (ARP_REPLY, ArpOperation::Reply, ROUTER_MAC, ROUTER, CLIENT_MAC, CLIENT, CLIENT_MAC),
    ] {
        let (e, body) = ethernet(frame);
        assert_eq!(e, eth(sha, dst, EtherType::Arp));
        let p = ArpPacket::new_checked(body).unwrap();
        assert_eq!((p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len()), (1, 0x0800, 6, 4));
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            ArpRepr {
                operation: op,
                source_hardware_addr: sha,
                source_protocol_addr: spa,
                target_hardware_addr: tha,
                target_protocol_addr: tpa,
            }
        );
        let mut out = vec![0u8; 14 + r.buffer_len()];
        e.emit(&mut out);
        r.emit(&mut out[14..]);
        assert_eq!(out, frame);
    }
}

// ---------------------------------------------------------------------------------------------
// TCP over IPv4: the handshake, data, close, reset, SACK

const SYN_ISN: SeqNum = SeqNum(0xa143_6594);
const SYNACK_ISN: SeqNum = SeqNum(0x0f2e_fd88);

#[test]
fn syn() {
    let t = parse_tcp4(SYN);
    assert_eq!(t.eth, eth_ipv4(TO_SERVER));
    assert_eq!(t.ip_fields, ipv4(60, 0xd8d7, 64, ip_proto::TCP, 0xd4bc, CLIENT, SERVER));
    assert_eq!(
        t.tcp_fields,
        TcpFields {
            src_port: 40001,
            dst_port: 5001,
            seq: SYN_ISN,
            ack: SeqNum(0),
            header_len: 40,
            flags: TcpFlags::SYN,
            window: 64240,
            checksum: 0x9e83,
            urgent: 0,
            options: &hex("020405b40402080ac06baa52000000000103030a"),
            payload: &[],
        }
    );
    // Linux's SYN layout: MSS, SACK-permitted, timestamps, NOP, window scale.
    let opts: Vec<_> = t.tcp_fields.options.to_vec();
    let kinds: Vec<TcpOption<'_>> = xdptcp::wire::tcp::OptionIter::new(&opts).map(Result::unwrap).collect();
    assert_eq!(
        kinds,
        [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps { tsval: 0xc06b_aa52, tsecr: 0 },
            TcpOption::NoOperation,
            TcpOption::WindowScale(10),
        ]
    );
    assert_eq!(
        t.tcp.options,
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(10),
            sack_permitted: true,
            timestamps: Some((0xc06b_aa52, 0)),
            ..TcpOptions::default()
        }
    );
    assert!(!t.tcp.flags.is_impossible());
    assert_eq!(t.tcp.segment_len(), 1);
    assert_eq!(
        t.ip,
        Ipv4Repr {
            src: CLIENT,
            dst: SERVER,
            protocol: ip_proto::TCP,
            payload_len: 40,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0xd8d7,
            dont_frag: true,
        }
    );
    assert_eq!(emit_tcp4(&t), SYN);
}

#[test]
fn syn_ack() {
    let t = parse_tcp4(SYNACK);
    assert_eq!(t.eth, eth_ipv4(TO_CLIENT));
    // Forwarded by the router: TTL 63. Linux sends SYN-ACKs with IP ID 0 (DF set).
    assert_eq!(t.ip_fields, ipv4(60, 0, 63, ip_proto::TCP, 0xae94, SERVER, CLIENT));
    assert_eq!(
        t.tcp_fields,
        TcpFields {
            src_port: 5001,
            dst_port: 40001,
            seq: SYNACK_ISN,
            ack: SYN_ISN.add(1),
            header_len: 40,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65160,
            checksum: 0x76a8,
            urgent: 0,
            options: &hex("020405b40402080a83a793d3c06baa520103030a"),
            payload: &[],
        }
    );
    assert_eq!(
        t.tcp.options,
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(10),
            sack_permitted: true,
            timestamps: Some((0x83a7_93d3, 0xc06b_aa52)),
            ..TcpOptions::default()
        }
    );
    assert_eq!(t.tcp.segment_len(), 1);
    assert_eq!(emit_tcp4(&t), SYNACK);
}

#[test]
fn handshake_ack_data_and_fin() {
    let ack = parse_tcp4(ACK);
    assert_eq!(ack.eth, eth_ipv4(TO_SERVER));
    assert_eq!(ack.ip_fields, ipv4(52, 0xd8d8, 64, ip_proto::TCP, 0xd4c3, CLIENT, SERVER));
    assert_eq!(
        ack.tcp_fields,
        TcpFields {
            src_port: 40001,
            dst_port: 5001,
            seq: SYN_ISN.add(1),
            ack: SYNACK_ISN.add(1),
            header_len: 32,
            flags: TcpFlags::ACK,
            window: 63,
            checksum: 0xa3c1,
            urgent: 0,
            options: &hex("0101080ac06baa5283a793d3"),
            payload: &[],
        }
    );
    assert_eq!(ack.tcp.options.timestamps, Some((0xc06b_aa52, 0x83a7_93d3)));
    assert_eq!(ack.tcp.segment_len(), 0);
    assert_eq!(emit_tcp4(&ack), ACK);

    let data = parse_tcp4(DATA);
    assert_eq!(data.ip_fields, ipv4(65, 0xd8d9, 64, ip_proto::TCP, 0xd4b5, CLIENT, SERVER));
    assert_eq!(
        data.tcp_fields,
        TcpFields {
            src_port: 40001,
            dst_port: 5001,
            seq: SYN_ISN.add(1),
            ack: SYNACK_ISN.add(1),
            header_len: 32,
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window: 63,
            checksum: 0x08a8,
            urgent: 0,
            options: &hex("0101080ac06bab1b83a793d3"),
            payload: b"hello xdptcp\n",
        }
    );
    assert_eq!(data.tcp.payload, b"hello xdptcp\n");
    assert_eq!(data.tcp.segment_len(), 13);
    assert_eq!(emit_tcp4(&data), DATA);

    let fin = parse_tcp4(FIN);
    assert_eq!(fin.ip_fields, ipv4(52, 0xd8da, 64, ip_proto::TCP, 0xd4c1, CLIENT, SERVER));
    assert_eq!(
        fin.tcp_fields,
        TcpFields {
            src_port: 40001,
            dst_port: 5001,
            seq: SYN_ISN.add(1 + 13),
            ack: SYNACK_ISN.add(1),
            header_len: 32,
            flags: TcpFlags::FIN | TcpFlags::ACK,
            window: 63,
            checksum: 0xa159,
            urgent: 0,
            options: &hex("0101080ac06babe383a7949c"),
            payload: &[],
        }
    );
    assert_eq!(fin.tcp.segment_len(), 1);
    assert_eq!(emit_tcp4(&fin), FIN);
}

#[test]
fn rst_for_a_closed_port() {
    let t = parse_tcp4(RST);
    assert_eq!(t.eth, eth_ipv4(TO_CLIENT));
    assert_eq!(t.ip_fields, ipv4(40, 0, 63, ip_proto::TCP, 0xaea8, SERVER, CLIENT));
    // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, no options.
    assert_eq!(
        t.tcp_fields,
        TcpFields {
            src_port: 5002,
            dst_port: 40002,
            seq: SeqNum(0),
            ack: SeqNum(0x861f_73a7),
            header_len: 20,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            checksum: 0x7915,
            urgent: 0,
            options: &[],
            payload: &[],
        }
    );
    assert_eq!(t.tcp.options, TcpOptions::default());
    assert_eq!(emit_tcp4(&t), RST);
}

#[test]
fn ack_with_a_sack_block() {
    let t = parse_tcp4(ACK_SACK);
    assert_eq!(t.ip_fields, ipv4(64, 0x860a, 63, ip_proto::TCP, 0x2886, SERVER, CLIENT));
    assert_eq!(
        t.tcp_fields,
        TcpFields {
            src_port: 5001,
            dst_port: 40003,
            seq: SeqNum(0xe93f_b614),
            ack: SeqNum(0x9d40_769c),
            header_len: 44,
            flags: TcpFlags::ACK,
            window: 67,
            checksum: 0xb213,
            urgent: 0,
            options: &hex("0101080afb8b291d28660e100101050a9d4081ec9d40869c"),
            payload: &[],
        }
    );
    assert_eq!(t.tcp.options.timestamps, Some((0xfb8b_291d, 0x2866_0e10)));
    assert_eq!(t.tcp.options.sack_blocks(), [(SeqNum(0x9d40_81ec), SeqNum(0x9d40_869c))]);
    // The SACK block is the third segment (1200 bytes) of the 4096 sent: 2896..4096 relative.
    assert_eq!(t.tcp.options.sack_blocks()[0].0.distance_from(t.tcp.ack), 2896);
    assert_eq!(emit_tcp4(&t), ACK_SACK);
}

#[test]
fn emitted_checksums_are_the_ones_linux_wrote() {
    // Zero both checksum fields and let the views fill them in again.
    for frame in [SYN, SYNACK, ACK, DATA, FIN, RST, ACK_SACK] {
        let mut f = frame.to_vec();
        let (ip_at, tcp_at) = (14, 34);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ip_at..]);
        ip.set_checksum(0);
        ip.fill_checksum();
        let (src, dst, total) = {
            let p = Ipv4Packet::new_checked(&f[ip_at..]).unwrap();
            (p.src_addr(), p.dst_addr(), usize::from(p.total_len()))
        };
        let seg_len = total - 20;
        let pseudo = checksum::pseudo_header_v4(src, dst, ip_proto::TCP, seg_len as u16);
        let mut tcp = TcpPacket::new_unchecked(&mut f[tcp_at..tcp_at + seg_len]);
        tcp.set_checksum(0);
        tcp.fill_checksum(pseudo);
        assert_eq!(f, frame);
    }
}

#[test]
fn incremental_checksum_update_on_a_real_header() {
    // Decrement the SYN's TTL the way a router does, and rewrite its ACK number: RFC 1624 must
    // agree with a full recompute and with the checksum Linux put on the forwarded SYN-ACK.
    let mut f = SYN.to_vec();
    let old_ttl_proto = u16::from_be_bytes([f[22], f[23]]);
    f[22] -= 1;
    let new_ttl_proto = u16::from_be_bytes([f[22], f[23]]);
    let old = Ipv4Packet::new_checked(&SYN[14..]).unwrap().checksum();
    let updated = checksum::update_u16(old, old_ttl_proto, new_ttl_proto);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.fill_checksum();
    assert_eq!(updated, ip.checksum());

    let tcp_old = TcpPacket::new_checked(&SYN[34..]).unwrap().checksum();
    let new_ack = 0x0102_0304;
    let updated = checksum::update_u32(tcp_old, 0, new_ack);
    f[42..46].copy_from_slice(&new_ack.to_be_bytes());
    let pseudo = checksum::pseudo_header_v4(CLIENT, SERVER, ip_proto::TCP, 40);
    let mut tcp = TcpPacket::new_unchecked(&mut f[34..]);
    tcp.fill_checksum(pseudo);
    assert_eq!(updated, tcp.checksum());
}

#[test]
fn the_handshake_is_consistent() {
    let (syn, synack, ack) = (parse_tcp4(SYN), parse_tcp4(SYNACK), parse_tcp4(ACK));
    assert_eq!(synack.tcp.ack, syn.tcp.seq.add(syn.tcp.segment_len()));
    assert_eq!(ack.tcp.ack, synack.tcp.seq.add(synack.tcp.segment_len()));
    // RFC 7323 §4.3: TSecr echoes the peer's most recent TSval.
    assert_eq!(synack.tcp.options.timestamps.unwrap().1, syn.tcp.options.timestamps.unwrap().0);
    assert_eq!(ack.tcp.options.timestamps.unwrap().1, synack.tcp.options.timestamps.unwrap().0);
}

#[test]
fn vlan_tagged_syn() {
    let f = EthernetFrame::new_checked(VLAN_SYN).unwrap();
    assert!(f.has_vlan());
    assert_eq!(f.vlan_id(), Some(100));
    assert_eq!(f.header_len(), 18);
    assert_eq!(f.ethertype(), EtherType::Ipv4);
    let t = parse_tcp4(VLAN_SYN);
    assert_eq!(t.eth, EthernetRepr { src: CLIENT_MAC, dst: ROUTER_MAC, vlan: Some(100), ethertype: EtherType::Ipv4 });
    // Below the tag it is the untagged SYN, exactly.
    assert_eq!(f.payload(), &SYN[14..]);
    assert_eq!(t.tcp, parse_tcp4(SYN).tcp);
    assert_eq!(emit_tcp4(&t), VLAN_SYN);
}

// ---------------------------------------------------------------------------------------------
// ICMPv4

#[test]
fn icmp_frag_needed() {
    let (e, l3) = ethernet(FRAG_NEEDED);
    assert_eq!(e, eth_ipv4(TO_CLIENT));
    let ip_pkt = Ipv4Packet::new_checked(l3).unwrap();
    // Linux sends ICMP errors with TOS 0xc0 (DSCP CS6, "network control") and without DF.
    assert_eq!(
        Ipv4Fields::read(&ip_pkt),
        Ipv4Fields { dscp: 48, dont_frag: false, ..ipv4(576, 0x8f6b, 64, ip_proto::ICMP, 0x5b6e, ROUTER, CLIENT) }
    );
    let ip = Ipv4Repr::parse(&ip_pkt, CAPS).unwrap();
    let msg = ip_pkt.payload();
    assert_eq!(msg.len(), 556);
    assert_eq!(&msg[..8], &hex("0304e32400000500"));
    assert!(checksum::verify(msg, 0), "ICMP checksum");
    let quote = QuotedTcp {
        src: IpAddr::V4(CLIENT),
        dst: IpAddr::V4(SERVER),
        src_port: 40003,
        dst_port: 5001,
        seq: SeqNum(0x9d40_769c),
    };
    let r = IcmpRepr::parse_v4(msg, true).unwrap();
    assert_eq!(r, IcmpRepr::PacketTooBig { mtu: 1280, quote });
    // The quote is the whole 1500-byte segment's first 548 bytes: its IPv4 header says so.
    let quoted_ip = Ipv4Packet::new_unchecked(&msg[8..]);
    assert_eq!(
        Ipv4Fields::read(&quoted_ip),
        ipv4(1500, 0x93b4, 64, ip_proto::TCP, quoted_ip.checksum(), CLIENT, SERVER)
    );
    assert!(quoted_ip.verify_checksum());
    assert_eq!(QuotedTcp::parse_v4(&msg[8..]).unwrap(), quote);
    // The sequence number in the quote is the one the server acknowledged in the SACK frame.
    assert_eq!(quote.seq, parse_tcp4(ACK_SACK).tcp.ack);

    let mut out = vec![0u8; FRAG_NEEDED.len()];
    e.emit(&mut out);
    ip.emit(&mut out[14..], CAPS);
    let n = icmp::emit_frag_needed_v4(&mut out[34..], 1280, &msg[8..]);
    assert_eq!(n, msg.len());
    assert_eq!(out, FRAG_NEEDED);
}

#[test]
fn icmp_echo_request_and_reply() {
    const DATA: &[u8] = b"xdptcp golden echo 01234";
    for (frame, dir, fields, reply) in [
        (ECHO_REQUEST, TO_SERVER, ipv4(52, 0x6226, 64, ip_proto::ICMP, 0x4b7b, CLIENT, SERVER), false),
        (
            ECHO_REPLY,
            TO_CLIENT,
            Ipv4Fields { dont_frag: false, ..ipv4(52, 0x6e9e, 63, ip_proto::ICMP, 0x8003, SERVER, CLIENT) },
            true,
        ),
    ] {
        let (e, l3) = ethernet(frame);
        assert_eq!(e, eth_ipv4(dir));
        let ip_pkt = Ipv4Packet::new_checked(l3).unwrap();
        assert_eq!(Ipv4Fields::read(&ip_pkt), fields);
        let ip = Ipv4Repr::parse(&ip_pkt, CAPS).unwrap();
        let msg = ip_pkt.payload();
        let want_sum: u16 = if reply { 0x868e } else { 0x7e8e };
        assert_eq!(u16::from_be_bytes([msg[2], msg[3]]), want_sum);
        let r = IcmpRepr::parse_v4(msg, true).unwrap();
        let want = if reply {
            IcmpRepr::EchoReply { ident: 0x7864, seq_no: 1, data: DATA }
        } else {
            IcmpRepr::EchoRequest { ident: 0x7864, seq_no: 1, data: DATA }
        };
        assert_eq!(r, want);
        assert_eq!(r.buffer_len(), msg.len());
        let mut out = vec![0u8; frame.len()];
        e.emit(&mut out);
        ip.emit(&mut out[14..], CAPS);
        assert_eq!(r.emit_echo_v4(&mut out[34..]), msg.len());
        assert_eq!(out, frame);
    }
}

// ---------------------------------------------------------------------------------------------
// IPv6

/// One parsed TCP/IPv6 frame, every layer verified.
fn parse_tcp6(frame: &[u8]) -> (EthernetRepr, Ipv6Packet<&[u8]>, Ipv6Repr, TcpRepr<'_>) {
    let (e, l3) = ethernet(frame);
    assert_eq!(e.ethertype, EtherType::Ipv6);
    let p = Ipv6Packet::new_checked(l3).unwrap();
    let ip = Ipv6Repr::parse(&p).unwrap();
    assert_eq!((ip.next_header, ip.upper_offset), (ip_proto::TCP, 40));
    let seg = &l3[ip.upper_offset..ip.upper_offset + ip.payload_len];
    let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::TCP, seg.len() as u32);
    let tcp = TcpRepr::parse(&TcpPacket::new_checked(seg).unwrap(), pseudo, true).unwrap();
    (e, p, ip, tcp)
}

fn emit_tcp6(e: &EthernetRepr, ip: &Ipv6Repr, flow: u32, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let mut out = vec![0u8; 14 + ip.buffer_len()];
    e.emit(&mut out);
    ip.emit(&mut out[14..]);
    Ipv6Packet::new_unchecked(&mut out[14..]).set_flow_label(flow);
    let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::TCP, tcp.buffer_len() as u32);
    tcp.emit(&mut out[54..], Some(pseudo));
    out
}

#[test]
fn syn_over_ipv6() {
    let (e, p, ip, tcp) = parse_tcp6(SYN6);
    assert_eq!(e, eth(CLIENT_MAC, ROUTER_MAC, EtherType::Ipv6));
    assert_eq!(
        (p.version(), p.traffic_class(), p.flow_label(), p.payload_len(), p.next_header(), p.hop_limit()),
        (6, 0, 0x7d628, 40, ip_proto::TCP, 64)
    );
    assert_eq!(
        ip,
        Ipv6Repr {
            src: CLIENT6,
            dst: SERVER6,
            next_header: ip_proto::TCP,
            payload_len: 40,
            hop_limit: 64,
            traffic_class: 0,
            upper_offset: 40,
        }
    );
    assert_eq!(
        TcpFields::read(&SYN6[54..]),
        TcpFields {
            src_port: 40004,
            dst_port: 5001,
            seq: SeqNum(0x425b_2426),
            ack: SeqNum(0),
            header_len: 40,
            flags: TcpFlags::SYN,
            window: 64800,
            checksum: 0xb00c,
            urgent: 0,
            options: &hex("020405a00402080aa75c81ae000000000103030a"),
            payload: &[],
        }
    );
    // MSS 1440: 1500 minus 40 bytes of IPv6 header and 20 of TCP.
    assert_eq!(
        tcp.options,
        TcpOptions {
            mss: Some(1440),
            window_scale: Some(10),
            sack_permitted: true,
            timestamps: Some((0xa75c_81ae, 0)),
            ..TcpOptions::default()
        }
    );
    assert_eq!(emit_tcp6(&e, &ip, 0x7d628, &tcp), SYN6);
}

#[test]
fn syn_ack_over_ipv6() {
    let (e, p, ip, tcp) = parse_tcp6(SYNACK6);
    assert_eq!(e, eth(ROUTER_MAC, CLIENT_MAC, EtherType::Ipv6));
    assert_eq!((p.flow_label(), p.hop_limit()), (0xb6796, 63));
    assert_eq!((ip.src, ip.dst, ip.payload_len), (SERVER6, CLIENT6, 40));
    assert_eq!(
        TcpFields::read(&SYNACK6[54..]),
        TcpFields {
            src_port: 5001,
            dst_port: 40004,
            seq: SeqNum(0x89ef_b991),
            ack: SeqNum(0x425b_2427),
            header_len: 40,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 64260,
            checksum: 0xb0a5,
            urgent: 0,
            options: &hex("020405a00402080afe92bf5da75c81ae0103030a"),
            payload: &[],
        }
    );
    assert_eq!(tcp.options.timestamps, Some((0xfe92_bf5d, 0xa75c_81ae)));
    assert_eq!(emit_tcp6(&e, &ip, 0xb6796, &tcp), SYNACK6);
}

#[test]
fn icmp6_packet_too_big() {
    let (e, l3) = ethernet(PTB6);
    assert_eq!(e, eth(ROUTER_MAC, CLIENT_MAC, EtherType::Ipv6));
    let p = Ipv6Packet::new_checked(l3).unwrap();
    assert_eq!((p.flow_label(), p.payload_len(), p.hop_limit()), (0xef3d2, 1240, 64));
    let ip = Ipv6Repr::parse(&p).unwrap();
    assert_eq!((ip.src, ip.dst, ip.next_header, ip.payload_len), (ROUTER6, CLIENT6, ip_proto::ICMPV6, 1240));
    let msg = &l3[40..];
    assert_eq!(&msg[..8], &hex("02006c9500000500"));
    let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::ICMPV6, 1240);
    assert!(checksum::verify(msg, pseudo), "ICMPv6 checksum");
    let quote = QuotedTcp {
        src: IpAddr::V6(CLIENT6),
        dst: IpAddr::V6(SERVER6),
        src_port: 40004,
        dst_port: 5001,
        seq: SeqNum(0x425b_2427),
    };
    assert_eq!(IcmpRepr::parse_v6(msg, pseudo, true).unwrap(), IcmpRepr::PacketTooBig { mtu: 1280, quote });
    // RFC 4443 §2.4(c): the error carries as much of the offending packet as fits in 1280.
    assert_eq!(PTB6.len() - 14, 1280);
    // The checksum field, recomputed from scratch.
    let mut m = msg.to_vec();
    m[2..4].fill(0);
    assert_eq!(checksum::finish(checksum::sum(&m) + pseudo), 0x6c95);
    // Re-emitting the IPv6 header gives Linux's bytes once the flow label is set.
    let mut hdr = [0u8; 40];
    ip.emit(&mut hdr);
    Ipv6Packet::new_unchecked(&mut hdr[..]).set_flow_label(0xef3d2);
    assert_eq!(&hdr[..], &l3[..40]);
}

#[test]
fn mld_report_behind_a_hop_by_hop_header() {
    let (e, l3) = ethernet(MLD_HBH);
    // 33:33:00:00:00:16 is the multicast MAC of ff02::16 (all MLDv2 routers).
    assert_eq!(e, eth(CLIENT_MAC, EthernetAddress([0x33, 0x33, 0, 0, 0, 0x16]), EtherType::Ipv6));
    assert!(e.dst.is_multicast());
    let p = Ipv6Packet::new_checked(l3).unwrap();
    assert_eq!((p.next_header(), p.hop_limit(), p.payload_len()), (ip_proto::HOPOPT, 1, 56));
    assert_eq!(p.src_addr(), Ipv6Addr::UNSPECIFIED);
    let ip = Ipv6Repr::parse(&p).unwrap();
    // Hop-by-hop: next header 58, length 0 (8 bytes): router alert (MLD) and a PadN.
    assert_eq!(&l3[40..48], &hex("3a00050200000100"));
    assert_eq!((ip.next_header, ip.upper_offset, ip.payload_len), (ip_proto::ICMPV6, 48, 48));
    let msg = &l3[48..];
    let pseudo = checksum::pseudo_header_v6(ip.src, ip.dst, ip_proto::ICMPV6, 48);
    assert!(checksum::verify(msg, pseudo));
    assert_eq!(IcmpRepr::parse_v6(msg, pseudo, true).unwrap(), IcmpRepr::Other { icmp_type: 143, code: 0 });
}

#[test]
fn a_flipped_bit_anywhere_fails_a_checksum() {
    // Every bit of every IPv4 header or TCP segment is covered by one of the two checksums.
    for frame in [SYN, SYNACK, ACK, DATA, FIN, RST, ACK_SACK] {
        for byte in 14..frame.len() {
            for bit in 0..8 {
                let mut f = frame.to_vec();
                f[byte] ^= 1 << bit;
                let ok = EthernetFrame::new_checked(&f[..]).ok().and_then(|e| {
                    let ip = Ipv4Packet::new_checked(e.payload()).ok()?;
                    let r = Ipv4Repr::parse(&ip, CAPS).ok()?;
                    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
                    let pseudo = checksum::pseudo_header_v4(r.src, r.dst, r.protocol, ip.payload().len() as u16);
                    TcpRepr::parse(&tcp, pseudo, true).ok()
                });
                assert!(ok.is_none(), "bit {bit} of byte {byte} went unnoticed");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SACK (RFC 2018) and D-SACK (RFC 2883), captured from Linux's defaults (`tcp_sack=1`,
// `tcp_dsack=1`) by the differential bed (`XDPTCP_DIFF_DUMP`, see tests/data/README.md) and
// decoded independently with `tshark -V` (blocks, D-SACK flag, good checksums).

const SACK_DUT: Ipv4Addr = Ipv4Addr::new(198, 19, 93, 1);
const SACK_DRIVER: Ipv4Addr = Ipv4Addr::new(198, 19, 93, 2);
const SYNACK_SACKOK: &[u8] = include_bytes!("data/linux_synack_sackok.bin");
const ACK_SACK4: &[u8] = include_bytes!("data/linux_ack_sack4.bin");
const ACK_DSACK: &[u8] = include_bytes!("data/linux_ack_dsack.bin");
const ACK_SACK3_TS: &[u8] = include_bytes!("data/linux_ack_sack3_ts.bin");
/// The driver's ISN in those runs: the blocks name its data.
const DRIVER_ISN: u32 = 1_000_000;

fn rel_blocks(o: &TcpOptions) -> Vec<(u32, u32)> {
    o.sack_blocks().iter().map(|(l, r)| (l.0 - DRIVER_ISN, r.0 - DRIVER_ISN)).collect()
}

/// What the stack's receiver reports after the same arrivals, written by our emitter.
fn stack_option_bytes(
    ts: Option<(u32, u32)>,
    events: &[(u32, u32)],
    dsack: Option<(u32, u32)>,
    rcv_nxt: u32,
) -> Vec<u8> {
    use xdptcp::tcp::sack::RcvSack;
    let abs = |x: u32| SeqNum(DRIVER_ISN + x);
    let mut r = RcvSack::default();
    for &(l, h) in events {
        r.on_ofo(abs(l), abs(h));
    }
    r.on_rcv_nxt(abs(rcv_nxt), false);
    if let Some((l, h)) = dsack {
        r.set_dsack(abs(l), abs(h));
    }
    let mut o = TcpOptions { timestamps: ts, ..TcpOptions::default() };
    r.fill(&mut o);
    let mut buf = vec![0u8; o.buffer_len()];
    assert_eq!(o.emit(&mut buf), buf.len());
    buf
}

#[test]
fn synack_with_sack_permitted_and_no_timestamps() {
    let t = parse_tcp4(SYNACK_SACKOK);
    assert_eq!((t.ip.src, t.ip.dst), (SACK_DUT, SACK_DRIVER));
    assert_eq!(t.tcp.flags, TcpFlags::SYN | TcpFlags::ACK);
    // MSS 1460, NOP, NOP, SACK-permitted: the layout our emitter uses without timestamps.
    assert_eq!(t.tcp_fields.options, &hex("020405b401010402"));
    assert!(t.tcp.options.sack_permitted);
    let ours = TcpOptions { mss: Some(1460), sack_permitted: true, ..TcpOptions::default() };
    let mut buf = vec![0u8; ours.buffer_len()];
    ours.emit(&mut buf);
    assert_eq!(buf, t.tcp_fields.options);
    assert_eq!(emit_tcp4(&t), SYNACK_SACKOK);
}

/// RFC 2018 §4: four blocks without timestamps, the newest first; a fifth is not reported.
#[test]
fn ack_with_four_sack_blocks() {
    let t = parse_tcp4(ACK_SACK4);
    assert_eq!(t.tcp.ack.0 - DRIVER_ISN, 1);
    assert_eq!(t.tcp_fields.header_len, 20 + 36);
    assert_eq!(rel_blocks(&t.tcp.options), [(111, 121), (91, 101), (71, 81), (11, 41)]);
    assert_eq!(t.tcp_fields.options, &hex("01010522000f42af000f42b9000f429b000f42a5000f4287000f4291000f424b000f4269"));
    // Arrivals 11, 31, 51, 21 (joins two blocks), 71, 91, 111.
    let events = [(11, 21), (31, 41), (51, 61), (21, 31), (71, 81), (91, 101), (111, 121)];
    assert_eq!(stack_option_bytes(None, &events, None, 1), t.tcp_fields.options);
    assert_eq!(emit_tcp4(&t), ACK_SACK4);
}

/// RFC 2883 §4: the D-SACK block first, then the SACK blocks (here the same range again: the
/// duplicate was an out-of-order segment, RFC 2883 §4 (2)).
#[test]
fn ack_with_a_dsack_block() {
    let t = parse_tcp4(ACK_DSACK);
    assert_eq!(t.tcp.ack.0 - DRIVER_ISN, 41);
    assert_eq!(rel_blocks(&t.tcp.options), [(51, 61), (51, 61), (111, 121), (91, 101)]);
    let events = [(11, 21), (31, 41), (51, 61), (21, 31), (71, 81), (91, 101), (111, 121), (51, 61)];
    assert_eq!(stack_option_bytes(None, &events, Some((51, 61)), 41), t.tcp_fields.options);
    assert_eq!(emit_tcp4(&t), ACK_DSACK);
}

/// RFC 2018 §3: beside the timestamp option only three blocks fit (12 + 2 + 3 * 8 + 2 = 40).
#[test]
fn ack_with_timestamps_and_three_sack_blocks() {
    let t = parse_tcp4(ACK_SACK3_TS);
    assert_eq!(t.tcp_fields.header_len, 60);
    let ts = t.tcp.options.timestamps;
    assert_eq!(ts, Some((0x104d_b6e0, 0x65)));
    assert_eq!(rel_blocks(&t.tcp.options), [(71, 81), (51, 61), (31, 41)]);
    let events = [(11, 21), (31, 41), (51, 61), (71, 81)];
    assert_eq!(stack_option_bytes(ts, &events, None, 1), t.tcp_fields.options);
    assert_eq!(emit_tcp4(&t), ACK_SACK3_TS);
}
