//! Per-frame cost of the wire layer (STYLE §8.8): parse Ethernet + IPv4 + TCP with timestamp
//! options from a frame Linux sent, and emit a SYN-ACK (MSS, SACK-permitted, timestamps, window
//! scale) with its IPv4 header and both checksums. Figures: docs/bench-wire.md.

use core::net::Ipv4Addr;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use xdptcp::wire::checksum;
use xdptcp::wire::ip_proto;
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, SeqNum, TcpFlags,
    TcpOptions, TcpPacket, TcpRepr,
};

/// PSH,ACK with NOP NOP TS and 13 bytes of data, as Linux sent it (79 bytes).
const DATA: &[u8] = include_bytes!("../tests/data/linux_data.bin");
/// The SYN-ACK Linux sent (seen after one router hop, hence TTL 63).
const SYNACK: &[u8] = include_bytes!("../tests/data/linux_synack.bin");

const CAPS: ChecksumCaps = ChecksumCaps { verify_rx: true, compute_tx: true };

/// The whole receive-side parse the stack does per frame; returns the fields it acts on.
#[inline(never)]
fn parse(frame: &[u8], caps: ChecksumCaps) -> Option<(u16, SeqNum, SeqNum, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let e = EthernetRepr::parse(&eth).ok()?;
    if e.ethertype != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let r = Ipv4Repr::parse(&ip, caps).ok()?;
    if r.protocol != ip_proto::TCP {
        return None;
    }
    let seg = ip.payload();
    let tcp = TcpPacket::new_checked(seg).ok()?;
    let pseudo = checksum::pseudo_header_v4(r.src, r.dst, ip_proto::TCP, seg.len() as u16);
    let t = TcpRepr::parse(&tcp, pseudo, caps.verify_rx).ok()?;
    t.options.timestamps?;
    Some((t.dst_port, t.seq, t.ack, t.payload.len()))
}

/// A full-sized segment (1448 bytes of data, NOP NOP TS) built from the golden frame's headers.
fn full_sized_frame() -> Vec<u8> {
    let eth = EthernetRepr::parse(&EthernetFrame::new_checked(DATA).unwrap()).unwrap();
    let ip_pkt = Ipv4Packet::new_checked(&DATA[14..]).unwrap();
    let ip = Ipv4Repr::parse(&ip_pkt, CAPS).unwrap();
    let seg = ip_pkt.payload();
    let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, seg.len() as u16);
    let t = TcpRepr::parse(&TcpPacket::new_checked(seg).unwrap(), pseudo, true).unwrap();
    let payload: Vec<u8> = (0..1448u32).map(|i| (i * 7) as u8).collect();
    let t = TcpRepr { payload: &payload, ..t };
    let ip = Ipv4Repr { payload_len: t.buffer_len(), ..ip };
    let mut f = vec![0u8; 14 + ip.buffer_len()];
    eth.emit(&mut f);
    ip.emit(&mut f[14..], CAPS);
    let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, t.buffer_len() as u16);
    t.emit(&mut f[34..], Some(pseudo));
    assert_eq!(f.len(), 1514);
    f
}

const SYNACK_OPTIONS: TcpOptions = TcpOptions {
    mss: Some(1460),
    window_scale: Some(10),
    sack_permitted: true,
    timestamps: Some((0x83a7_93d3, 0xc06b_aa52)),
    sack_blocks: [(SeqNum(0), SeqNum(0)); 4],
    sack_count: 0,
};

/// What a listener writes per SYN-ACK: Ethernet, IPv4 (with its checksum), TCP with options
/// and the TCP checksum over the pseudo-header. Returns the frame length.
#[inline(never)]
fn emit_synack(buf: &mut [u8], iss: SeqNum, ack: SeqNum, tsval: u32) -> usize {
    let tcp = TcpRepr {
        src_port: 5001,
        dst_port: 40001,
        seq: iss,
        ack,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: 65160,
        urgent: 0,
        options: TcpOptions { timestamps: Some((tsval, 0xc06b_aa52)), ..SYNACK_OPTIONS },
        payload: &[],
    };
    let ip = Ipv4Repr {
        src: Ipv4Addr::new(198, 18, 1, 2),
        dst: Ipv4Addr::new(198, 18, 0, 1),
        protocol: ip_proto::TCP,
        payload_len: tcp.buffer_len(),
        ttl: 63,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    let eth = EthernetRepr {
        src: EthernetAddress([2, 0, 0x5e, 0, 0, 0xfe]),
        dst: EthernetAddress([2, 0, 0x5e, 0, 0, 0x0a]),
        vlan: None,
        ethertype: EtherType::Ipv4,
    };
    let len = eth.header_len() + ip.buffer_len();
    let Some(frame) = buf.get_mut(..len) else {
        return 0;
    };
    eth.emit(frame);
    ip.emit(&mut frame[14..], CAPS);
    let pseudo = checksum::pseudo_header_v4(ip.src, ip.dst, ip_proto::TCP, ip.payload_len as u16);
    tcp.emit(&mut frame[34..], Some(pseudo));
    len
}

fn bench_parse(c: &mut Criterion) {
    let full = full_sized_frame();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("eth_ipv4_tcp_ts_79B", |b| b.iter(|| parse(black_box(DATA), CAPS)));
    g.bench_function("eth_ipv4_tcp_ts_1514B", |b| b.iter(|| parse(black_box(&full), CAPS)));
    let offload = ChecksumCaps { verify_rx: false, compute_tx: true };
    g.bench_function("eth_ipv4_tcp_ts_1514B_rx_csum_offloaded", |b| b.iter(|| parse(black_box(&full), offload)));
    g.finish();
}

fn bench_emit(c: &mut Criterion) {
    let mut buf = [0u8; 128];
    // With the values Linux chose, the emitter writes Linux's SYN-ACK byte for byte.
    let n = emit_synack(&mut buf, SeqNum(0x0f2e_fd88), SeqNum(0xa143_6595), 0x83a7_93d3);
    assert_eq!(&buf[..n], SYNACK);
    let mut g = c.benchmark_group("emit");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u32;
    g.bench_function("synack_mss_sackp_ts_ws_74B", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            emit_synack(black_box(&mut buf), SeqNum(n), SeqNum(!n), n)
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_parse, bench_emit
}
criterion_main!(benches);
