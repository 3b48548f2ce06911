//! The SYN-ACK ceiling (`bpf/synack_tx.bpf.c`): through BPF_PROG_TEST_RUN, a SYN comes back
//! as a SYN-ACK that the crate's own parsers accept (checksums verified) and everything else
//! passes untouched; on a veth pair in two namespaces of its own, a kernel client's connect()
//! completes against the program alone.
//!
//! Needs root; without it the tests skip loudly, except under CI=true, where they fail.
#![cfg(feature = "xdp")]

mod bed;
use bed::privileged;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use xdptcp::io::xdp::{attached_program, AttachMode, Ceiling, PassProgram, XdpError};
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{parse_ip_tcp, FourTuple};
use xdptcp::wire::arp::{ArpOperation, ArpRepr};
use xdptcp::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, SeqNum, TcpFlags,
    TcpOptions,
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const PORT: u16 = 8080;
const MAC_CLI: EthernetAddress = EthernetAddress([0x02, 0x18, 0, 0, 0, 0x02]);
const MAC_SRV: EthernetAddress = EthernetAddress([0x02, 0x18, 0, 0, 0, 0x01]);
const IP_SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_CLI: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

// ---------------------------------------------------------------------------------------
// Frames

/// A TCP segment from `src` to `dst` as an Ethernet frame (client MAC to server MAC).
#[allow(clippy::too_many_arguments)]
fn tcp_frame(
    vlan: Option<u16>,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    options: TcpOptions,
    payload: &[u8],
) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let seg = OutSegment { seq: SeqNum(seq), ack: SeqNum(ack), flags, window: 64240, options, payload: (payload, &[]) };
    assert!(emit(&mut out, &FourTuple::new(src, dst), &seg, 64));
    let ip = out.pop().expect("one packet");
    let ethertype = if src.is_ipv4() { EtherType::Ipv4 } else { EtherType::Ipv6 };
    let eth = EthernetRepr { src: MAC_CLI, dst: MAC_SRV, vlan, ethertype };
    let mut f = vec![0u8; eth.header_len() + ip.len()];
    eth.emit(&mut f);
    f[eth.header_len()..].copy_from_slice(&ip);
    f
}

fn cli(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(IP_CLI), port)
}

fn srv(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(IP_SRV), port)
}

/// What Linux puts in a SYN: MSS, SACK permitted, timestamps, window scale (20 bytes).
fn linux_syn_options() -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((0x1234_5678, 0)),
        ..TcpOptions::default()
    }
}

fn syn(vlan: Option<u16>, sport: u16, dport: u16, seq: u32, options: TcpOptions) -> Vec<u8> {
    tcp_frame(vlan, cli(sport), srv(dport), seq, 0, TcpFlags::SYN, options, &[])
}

fn arp_request() -> Vec<u8> {
    let a = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: MAC_CLI,
        source_protocol_addr: IP_CLI,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: IP_SRV,
    };
    let eth = EthernetRepr { src: MAC_CLI, dst: EthernetAddress::BROADCAST, vlan: None, ethertype: EtherType::Arp };
    let mut f = vec![0u8; eth.header_len() + a.buffer_len()];
    eth.emit(&mut f);
    a.emit(&mut f[eth.header_len()..]);
    f
}

/// The plain SYN with 4 bytes of IPv4 options (IHL 6), both checksums still right.
fn syn_with_ip_options() -> Vec<u8> {
    let plain = syn(None, 40000, PORT, 1000, TcpOptions::default());
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

/// The SYN-ACK as the crate parses it, every checksum verified.
#[derive(Debug)]
struct Reply {
    eth_src: EthernetAddress,
    eth_dst: EthernetAddress,
    vlan: Option<u16>,
    ttl: u8,
    dont_frag: bool,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    options: TcpOptions,
    payload_len: usize,
    frame_len: usize,
    l2_len: usize,
}

fn parse_reply(frame: &[u8]) -> Reply {
    let eth = EthernetFrame::new_checked(frame).expect("Ethernet header");
    assert_eq!(eth.ethertype(), EtherType::Ipv4, "reply ethertype");
    let ip_bytes = eth.payload();
    let ip = Ipv4Packet::new_checked(ip_bytes).expect("IPv4 header");
    let ipr = Ipv4Repr::parse(&ip, ChecksumCaps::default()).expect("IPv4 header with a valid checksum");
    let (src, dst, tcp) = parse_ip_tcp(ip_bytes).expect("TCP with a valid checksum");
    Reply {
        eth_src: eth.src_addr(),
        eth_dst: eth.dst_addr(),
        vlan: eth.vlan_id(),
        ttl: ipr.ttl,
        dont_frag: ipr.dont_frag,
        src: SocketAddr::new(src, tcp.src_port),
        dst: SocketAddr::new(dst, tcp.dst_port),
        seq: tcp.seq.0,
        ack: tcp.ack.0,
        flags: tcp.flags,
        window: tcp.window,
        options: tcp.options,
        payload_len: tcp.payload.len(),
        frame_len: frame.len(),
        l2_len: eth.header_len(),
    }
}

/// Runs `frame` and asserts XDP_TX and a well-formed SYN-ACK answering it; returns the reply.
fn assert_answered(c: &Ceiling, frame: &[u8], what: &str) -> Reply {
    let (answered, passed) = (c.answered(), c.passed());
    let (verdict, out) = c.test_run(frame).expect("BPF_PROG_TEST_RUN");
    assert_eq!(verdict, XDP_TX, "{what}: verdict");
    assert_eq!(c.answered(), answered + 1, "{what}: answered counter");
    assert_eq!(c.passed(), passed, "{what}: passed counter");

    let eth = EthernetFrame::new_checked(frame).expect("input frame");
    let (syn_src, syn_dst, syn) = parse_ip_tcp(eth.payload()).expect("input SYN");
    let r = parse_reply(&out);
    assert_eq!(r.eth_src, eth.dst_addr(), "{what}: source MAC is the SYN's destination");
    assert_eq!(r.eth_dst, eth.src_addr(), "{what}: destination MAC is the SYN's source");
    assert_eq!(r.vlan, eth.vlan_id(), "{what}: VLAN tag kept");
    assert_eq!(r.src, SocketAddr::new(syn_dst, syn.dst_port), "{what}: from the SYN's destination");
    assert_eq!(r.dst, SocketAddr::new(syn_src, syn.src_port), "{what}: to the SYN's source");
    assert_eq!(r.flags, TcpFlags::SYN | TcpFlags::ACK, "{what}: flags");
    assert_eq!(r.ack, syn.seq.0.wrapping_add(1), "{what}: ack = seq + 1");
    assert_eq!(r.window, 65535, "{what}: window");
    assert_eq!(r.options, TcpOptions { mss: Some(1460), ..TcpOptions::default() }, "{what}: options");
    assert_eq!(r.payload_len, 0, "{what}: no payload");
    assert_eq!(r.ttl, 64, "{what}: TTL");
    assert!(r.dont_frag, "{what}: DF");
    assert_eq!(r.frame_len, r.l2_len + 20 + 24, "{what}: frame cut to the headers");
    r
}

/// Runs `frame` and asserts XDP_PASS with the frame untouched.
fn assert_passed(c: &Ceiling, frame: &[u8], what: &str) {
    let (answered, passed) = (c.answered(), c.passed());
    let (verdict, out) = c.test_run(frame).expect("BPF_PROG_TEST_RUN");
    assert_eq!(verdict, XDP_PASS, "{what}: verdict");
    assert_eq!(out, frame, "{what}: a passed frame is not modified");
    assert_eq!(c.answered(), answered, "{what}: answered counter");
    assert_eq!(c.passed(), passed + 1, "{what}: passed counter");
}

fn load(port: u16) -> Ceiling {
    Ceiling::load(port).expect("load the SYN-ACK program")
}

// ---------------------------------------------------------------------------------------
// BPF_PROG_TEST_RUN

#[test]
fn syn_becomes_a_valid_synack() {
    if !privileged("syn_becomes_a_valid_synack") {
        return;
    }
    let c = load(PORT);
    // Options cut from 20 bytes to the MSS option: the frame shrinks.
    assert_answered(&c, &syn(None, 40000, PORT, 1000, linux_syn_options()), "Linux-like SYN");
    // No options: the frame grows by the 4 bytes of the MSS option.
    assert_answered(&c, &syn(None, 40001, PORT, 0xffff_ffff, TcpOptions::default()), "bare SYN, seq wraps");
    // Exactly the reply's size already.
    let mss_only = TcpOptions { mss: Some(536), ..TcpOptions::default() };
    assert_answered(&c, &syn(None, 40002, PORT, 7, mss_only), "SYN with only an MSS option");
    assert_answered(&c, &syn(Some(42), 40003, PORT, 1000, linux_syn_options()), "VLAN-tagged SYN");
    let with_data = tcp_frame(None, cli(40004), srv(PORT), 5, 0, TcpFlags::SYN, linux_syn_options(), b"hello");
    assert_answered(&c, &with_data, "SYN with data: the data is not acknowledged");
    let psh = tcp_frame(None, cli(40005), srv(PORT), 5, 0, TcpFlags::SYN | TcpFlags::PSH, TcpOptions::default(), &[]);
    assert_answered(&c, &psh, "SYN|PSH is still a SYN");
    let ecn = tcp_frame(
        None,
        cli(40006),
        srv(PORT),
        5,
        0,
        TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR,
        TcpOptions::default(),
        &[],
    );
    assert_answered(&c, &ecn, "ECN-setup SYN, answered without ECN");
    // Ethernet padding after the IP packet (a 60-byte minimum frame) is cut too.
    let mut padded = syn(None, 40007, PORT, 1000, TcpOptions::default());
    padded.resize(60, 0);
    assert_answered(&c, &padded, "padded SYN");
    assert_eq!(c.answered(), 8);
    assert_eq!(c.passed(), 0);
}

#[test]
fn isn_depends_on_the_flow_and_the_client_isn() {
    if !privileged("isn_depends_on_the_flow_and_the_client_isn") {
        return;
    }
    let c = load(PORT);
    let isn =
        |sport: u16, seq: u32| assert_answered(&c, &syn(None, sport, PORT, seq, TcpOptions::default()), "SYN").seq;
    let a = isn(40000, 1000);
    assert_eq!(isn(40000, 1000), a, "same SYN, same ISN (no state, no clock)");
    let mut seen = vec![a, isn(40001, 1000), isn(40002, 1000), isn(40000, 1001), isn(40000, 2000)];
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 5, "ISNs must differ between flows and client ISNs: {seen:x?}");
}

#[test]
fn port_zero_answers_every_port() {
    if !privileged("port_zero_answers_every_port") {
        return;
    }
    let c = load(0);
    for port in [1, 22, PORT, 65535] {
        assert_answered(&c, &syn(None, 40000, port, 1000, TcpOptions::default()), &format!("port {port}"));
    }
    c.set_port(PORT).expect("set port");
    assert_passed(&c, &syn(None, 40000, 22, 1000, TcpOptions::default()), "port 22 after set_port");
    assert_answered(&c, &syn(None, 40000, PORT, 1000, TcpOptions::default()), "configured port after set_port");
}

#[test]
fn everything_but_a_pure_syn_to_the_port_passes() {
    if !privileged("everything_but_a_pure_syn_to_the_port_passes") {
        return;
    }
    let c = load(PORT);
    let seg = |flags: TcpFlags| tcp_frame(None, cli(40000), srv(PORT), 1000, 77, flags, TcpOptions::default(), &[]);
    assert_passed(&c, &seg(TcpFlags::ACK), "ACK");
    assert_passed(&c, &seg(TcpFlags::SYN | TcpFlags::ACK), "SYN-ACK");
    assert_passed(&c, &seg(TcpFlags::RST), "RST");
    assert_passed(&c, &seg(TcpFlags::RST | TcpFlags::ACK), "RST-ACK");
    assert_passed(&c, &seg(TcpFlags::FIN | TcpFlags::ACK), "FIN-ACK");
    assert_passed(&c, &seg(TcpFlags::SYN | TcpFlags::RST), "SYN|RST");
    assert_passed(&c, &seg(TcpFlags::SYN | TcpFlags::FIN), "SYN|FIN");
    assert_passed(&c, &seg(TcpFlags::NONE), "no flags");
    assert_passed(&c, &syn(None, 40000, PORT + 1, 1000, linux_syn_options()), "SYN to another port");
    assert_passed(&c, &syn(None, 40000, 22, 1000, linux_syn_options()), "SYN to ssh");
    assert_passed(&c, &arp_request(), "ARP");

    let v6 =
        |host: u16, port: u16| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0x1813, 0, 0, 0, 0, 0, host)), port);
    let syn6 = tcp_frame(None, v6(2, 40000), v6(1, PORT), 1000, 0, TcpFlags::SYN, TcpOptions::default(), &[]);
    assert_passed(&c, &syn6, "IPv6 SYN (not supported)");
    assert_passed(&c, &syn_with_ip_options(), "IPv4 options (not supported)");

    let mut frag = syn(None, 40000, PORT, 1000, TcpOptions::default());
    frag[20] |= 0x20; // MF
    Ipv4Packet::new_unchecked(&mut frag[14..]).fill_checksum();
    assert_passed(&c, &frag, "first fragment");

    let mut udp = syn(None, 40000, PORT, 1000, TcpOptions::default());
    udp[14 + 9] = 17;
    Ipv4Packet::new_unchecked(&mut udp[14..]).fill_checksum();
    assert_passed(&c, &udp, "UDP");

    let mut unknown = syn(None, 40000, PORT, 1000, TcpOptions::default());
    unknown[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    assert_passed(&c, &unknown, "unknown ethertype");

    let mut qinq = syn(Some(7), 40000, PORT, 1000, TcpOptions::default());
    qinq[16..18].copy_from_slice(&0x8100u16.to_be_bytes());
    assert_passed(&c, &qinq, "a second VLAN tag");

    let mut long_total = syn(None, 40000, PORT, 1000, TcpOptions::default());
    long_total[16..18].copy_from_slice(&200u16.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut long_total[14..]).fill_checksum();
    assert_passed(&c, &long_total, "IPv4 total length beyond the frame");

    let mut short_doff = syn(None, 40000, PORT, 1000, TcpOptions::default());
    short_doff[14 + 20 + 12] = 4 << 4;
    assert_passed(&c, &short_doff, "TCP data offset below 5");

    let mut long_doff = syn(None, 40000, PORT, 1000, TcpOptions::default());
    long_doff[14 + 20 + 12] = 15 << 4;
    assert_passed(&c, &long_doff, "TCP data offset beyond the packet");
    assert_eq!(c.answered(), 0);
}

#[test]
fn truncated_frames_pass() {
    if !privileged("truncated_frames_pass") {
        return;
    }
    let c = load(PORT);
    for vlan in [None, Some(5)] {
        let full = syn(vlan, 40000, PORT, 1000, linux_syn_options());
        // BPF_PROG_TEST_RUN refuses anything shorter than an Ethernet header.
        for len in 14..full.len() {
            assert_passed(&c, &full[..len], &format!("SYN cut to {len} of {} bytes (vlan {vlan:?})", full.len()));
        }
    }
    assert_eq!(c.answered(), 0);
}

// ---------------------------------------------------------------------------------------
// End to end on a veth pair

const DEV_SRV: &str = "ceil-srv";
const DEV_CLI: &str = "ceil-cli";
const E2E_PORT: u16 = 7;

/// Two fresh namespaces joined by a veth pair (deploy/bed-up.sh); removed on drop.
///
/// The server end carries no address ("own" address mode): its kernel must not answer the
/// client's handshake ACK with a RST (it never saw the SYN), since that RST can reset the
/// client's socket before connect() returns. Without an address nobody answers ARP for the
/// server either, so the client gets a permanent neighbour entry instead.
struct Bed {
    srv: String,
    cli: String,
    _bed: xdptcp::rig::bed::Bed,
}

impl Bed {
    fn up() -> Bed {
        use xdptcp::rig::bed::{BedConfig, BedNames};
        let id = std::process::id();
        let (srv, cli) = (format!("xdptest-ceil-s{id}"), format!("xdptest-ceil-c{id}"));
        let cfg = BedConfig::new(BedNames::new(&srv, &cli, DEV_SRV, DEV_CLI))
            .shared_address(false)
            .set("XDPTCP_MAC_SRV", MAC_SRV.to_string())
            .set("XDPTCP_MAC_CLI", MAC_CLI.to_string())
            .set("XDPTCP_IP4_SRV", format!("{IP_SRV}/24"))
            .set("XDPTCP_IP4_CLI", format!("{IP_CLI}/24"));
        let bed = Bed { srv, cli, _bed: xdptcp::rig::bed::Bed::up(cfg).expect("bed up") };
        let ip = IP_SRV.to_string();
        let mac = MAC_SRV.to_string();
        let args = ["-n", &bed.cli, "neigh", "replace", &ip, "lladdr", &mac, "dev", DEV_CLI, "nud", "permanent"];
        let out = Command::new("ip").args(args).output().expect("run ip neigh");
        assert!(out.status.success(), "ip neigh replace failed: {}", String::from_utf8_lossy(&out.stderr));
        bed
    }
}

/// Moves the calling thread into network namespace `name`.
fn enter_netns(name: &str) {
    let f = File::open(format!("/var/run/netns/{name}")).expect("open the namespace");
    // SAFETY: `f` is an open namespace fd for the whole call; setns affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Polls `cond` every 10 ms for up to two seconds. A link goes when its last fd closes, and
/// a concurrent `fork` (every `Command`) briefly holds a copy of every fd.
fn within_2s(cond: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

struct ServerReport {
    answered: u64,
    passed: u64,
    second_attach: Result<(), XdpError>,
    left_behind: Option<xdptcp::io::xdp::AttachedProgram>,
}

/// A kernel client's connect() completes although nothing in the server namespace listens (or
/// even owns the address): the SYN-ACK comes from the ceiling program alone (XDP_TX), and
/// reaches the client because its end runs xdp_pass.
#[test]
fn kernel_connect_completes_against_the_ceiling() {
    if !privileged("kernel_connect_completes_against_the_ceiling") {
        return;
    }
    let bed = Bed::up();

    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let srv_ns = bed.srv.clone();
    let server = thread::spawn(move || {
        enter_netns(&srv_ns);
        let mut c = Ceiling::load(E2E_PORT).expect("load");
        c.attach(DEV_SRV, AttachMode::Native).expect("attach the ceiling (native)");
        // Never replaces a program: neither another one nor itself.
        let second_attach = PassProgram::attach(DEV_SRV, AttachMode::Native).map(|_| ());
        assert!(c.attach(DEV_SRV, AttachMode::Native).is_err(), "attach twice");
        ready_tx.send(()).expect("ready");
        let _ = stop_rx.recv_timeout(Duration::from_secs(30));
        // The client's handshake ACK passes; veth runs this program in the sender's context,
        // so it has normally run before connect() returned.
        within_2s(|| c.passed() >= 1);
        let (answered, passed) = (c.answered(), c.passed());
        drop(c);
        within_2s(|| attached_program(DEV_SRV).expect("query").is_none());
        let left_behind = attached_program(DEV_SRV).expect("query");
        ServerReport { answered, passed, second_attach, left_behind }
    });
    ready_rx.recv_timeout(Duration::from_secs(30)).expect("the server thread did not come up (see its panic)");

    let cli_ns = bed.cli.clone();
    let client = thread::spawn(move || {
        enter_netns(&cli_ns);
        let pass = PassProgram::attach(DEV_CLI, AttachMode::Native).expect("attach xdp_pass on the peer end");
        assert_eq!(pass.ifname(), DEV_CLI);
        let to = SocketAddr::new(IpAddr::V4(IP_SRV), E2E_PORT);
        let res = TcpStream::connect_timeout(&to, Duration::from_secs(5)).map(|s| s.local_addr());
        drop(pass);
        within_2s(|| attached_program(DEV_CLI).expect("query").is_none());
        (res, attached_program(DEV_CLI).expect("query"))
    });
    let (connected, cli_left_behind) = client.join().expect("client thread");
    let _ = stop_tx.send(());
    let r = server.join().expect("server thread");

    let local = connected.expect("kernel connect() answered by the ceiling").expect("local address");
    assert_eq!(local.ip(), IpAddr::V4(IP_CLI));
    assert!(r.answered >= 1, "answered {}", r.answered);
    // The handshake ACK passed to the kernel (which has no such address and drops it).
    assert!(r.passed >= 1, "passed {}", r.passed);
    assert!(
        matches!(r.second_attach, Err(XdpError::AlreadyAttached { .. })),
        "a second program on the interface: {:?}",
        r.second_attach
    );
    assert_eq!(r.left_behind, None, "the ceiling detaches on drop");
    assert_eq!(cli_left_behind, None, "xdp_pass detaches on drop");
}
