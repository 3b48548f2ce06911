//! The AF_XDP datapath on the veth bed (deploy/bed-up.sh), against the real kernel:
//! a kernel TCP client's SYN arrives through `rx_burst`, the SYN-ACK we write into a UMEM
//! frame completes its handshake; raw frames make the round trip in order; the program
//! leaves the interface when the link is dropped and when its process is killed with -9.
//!
//! Each test builds its own bed with unique namespace names (prefix `xdptest-`), so tests
//! run in parallel, and tears it down even when it fails. Needs root; without it the tests
//! skip loudly, except under CI=true, where they fail.
#![cfg(feature = "xdp")]
// Real sockets against the real kernel: wall-clock deadlines bound every wait.
#![allow(clippy::disallowed_methods)]

mod bed;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use bed::privileged;
use xdptcp::io::xdp::{
    attached_program, AttachMode, BindMode, SteerConfig, Steering, XdpError, XdpLink, XskConfig, XskStat,
};
use xdptcp::io::FrameIo;
use xdptcp::wire::{
    checksum, ip_proto, ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr,
    SeqNum, TcpFlags, TcpOptions, TcpPacket, TcpRepr,
};

const DEV_SRV: &str = "veth-stack";
const DEV_CLI: &str = "veth-peer";
const MAC_SRV: EthernetAddress = EthernetAddress([0x02, 0x18, 0, 0, 0, 0x01]);
const MAC_CLI: EthernetAddress = EthernetAddress([0x02, 0x18, 0, 0, 0, 0x02]);
const IP_SRV: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const IP_CLI: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

// ---------------------------------------------------------------------------------------
// The bed

static BED_SEQ: AtomicU32 = AtomicU32::new(0);

/// One veth bed with unique namespace names; torn down on drop, panics included.
struct Bed {
    srv: String,
    cli: String,
}

fn deploy(script: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy").join(script)
}

impl Bed {
    fn up() -> Bed {
        let n = BED_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let bed = Bed { srv: format!("xdptest-s{id}"), cli: format!("xdptest-c{id}") };
        let out = bed.script("bed-up.sh");
        assert!(out.status.success(), "bed-up.sh failed: {}", String::from_utf8_lossy(&out.stderr));
        bed
    }

    fn script(&self, name: &str) -> std::process::Output {
        Command::new("bash")
            .arg(deploy(name))
            .env("XDPTCP_NS_SRV", &self.srv)
            .env("XDPTCP_NS_CLI", &self.cli)
            .env("XDPTCP_DEV_SRV", DEV_SRV)
            .env("XDPTCP_DEV_CLI", DEV_CLI)
            .env("XDPTCP_QUEUES", "1")
            .output()
            .expect("run a deploy script")
    }

    /// `ip -n <srv> link show dev <stack end>`, which names an attached XDP program.
    fn link_show(&self) -> String {
        let out =
            Command::new("ip").args(["-n", &self.srv, "link", "show", "dev", DEV_SRV]).output().expect("ip link show");
        assert!(out.status.success(), "ip link show failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn has_xdp(&self) -> bool {
        xdp_in_link_show(&self.link_show())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let out = self.script("bed-down.sh");
        if !out.status.success() {
            eprintln!("bed-down.sh: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// True when `ip link show` output mentions an XDP program ("xdp", "xdpgeneric",
/// "prog/xdp id N"). Namespace names contain "xdp", so whole words only.
fn xdp_in_link_show(s: &str) -> bool {
    s.split_whitespace().any(|w| w == "xdp" || w == "xdpgeneric" || w == "xdpdrv" || w.starts_with("prog/xdp"))
}

/// Polls `cond` for up to two seconds. Detaching is not instantaneous in this process: the
/// link goes when its last fd closes, and a `fork` by any other thread (every `Command`
/// these tests spawn) briefly holds a copy of every fd until its `exec` closes it.
fn within_2s(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Moves the calling thread into network namespace `name`.
fn enter_netns(name: &str) {
    let f = File::open(format!("/var/run/netns/{name}")).expect("open the namespace");
    // SAFETY: `f` is an open namespace fd for the whole call; setns affects only this thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a fresh thread inside namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

fn small_xsk() -> XskConfig {
    XskConfig {
        frame_count: 512,
        rx_frames: 256,
        fill_size: 256,
        comp_size: 256,
        rx_size: 256,
        tx_size: 256,
        batch: 32,
        bind: BindMode::Auto,
        ..XskConfig::default()
    }
}

fn steer_cfg(port: u16) -> SteerConfig {
    SteerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(IP_SRV), port)],
        owned: vec![IpAddr::V4(IP_SRV)],
        ..SteerConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Frames

struct TcpView {
    src_mac: EthernetAddress,
    src: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
    flags: TcpFlags,
    payload: Vec<u8>,
}

/// Parses an untagged Ethernet/IPv4/TCP frame, checksums verified.
fn parse_tcp4(frame: &[u8]) -> Option<TcpView> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ipr = Ipv4Repr::parse(&ip, ChecksumCaps::default()).ok()?;
    if ipr.protocol != ip_proto::TCP {
        return None;
    }
    let seg = ip.payload();
    let ps = checksum::pseudo_header_v4(ipr.src, ipr.dst, ip_proto::TCP, seg.len() as u16);
    let tcp = TcpPacket::new_checked(seg).ok()?;
    let r = TcpRepr::parse(&tcp, ps, true).ok()?;
    Some(TcpView {
        src_mac: eth.src_addr(),
        src: ipr.src,
        src_port: r.src_port,
        dst_port: r.dst_port,
        seq: r.seq.0,
        flags: r.flags,
        payload: r.payload.to_vec(),
    })
}

/// Writes Ethernet + IPv4 + TCP from the stack to the peer into `buf` (exactly its length).
fn write_tcp4(buf: &mut [u8], dst_mac: EthernetAddress, dst: Ipv4Addr, tcp: &TcpRepr<'_>) {
    EthernetRepr { src: MAC_SRV, dst: dst_mac, vlan: None, ethertype: EtherType::Ipv4 }.emit(buf);
    let tl = tcp.buffer_len();
    Ipv4Repr {
        src: IP_SRV,
        dst,
        protocol: ip_proto::TCP,
        payload_len: tl,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut buf[14..], ChecksumCaps::default());
    let ps = checksum::pseudo_header_v4(IP_SRV, dst, ip_proto::TCP, tl as u16);
    tcp.emit(&mut buf[34..], Some(ps));
}

fn tcp4_len(tcp: &TcpRepr<'_>) -> usize {
    14 + 20 + tcp.buffer_len()
}

// ---------------------------------------------------------------------------------------
// A stack stand-in: runs an XdpLink in the stack namespace on its own thread.

struct StackReport {
    zero_copy: bool,
    syns: u32,
    acks: u32,
    echoed: u32,
    initial_free: usize,
    final_counts: xdptcp::io::xdp::FrameCounts,
    io: xdptcp::io::IoStats,
    steer: xdptcp::io::xdp::SteerStats,
    xdp_after_drop: Option<xdptcp::io::xdp::AttachedProgram>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answer SYNs to the port with a SYN-ACK (ISS 0x1000_0000, MSS 1460); count ACKs.
    Handshake,
    /// Send back every frame that carries a payload, addresses and ports swapped.
    Echo,
}

fn spawn_stack(
    ns: &str,
    port: u16,
    behaviour: Behaviour,
    stop: Arc<AtomicBool>,
) -> (mpsc::Receiver<()>, thread::JoinHandle<StackReport>) {
    let ns = ns.to_owned();
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = thread::spawn(move || {
        enter_netns(&ns);
        let mut steering = Steering::load(&steer_cfg(port)).expect("load");
        steering.attach(DEV_SRV, AttachMode::Native).expect("attach native");
        let mut link = XdpLink::bind(DEV_SRV, 0, &small_xsk()).expect("bind AF_XDP");
        steering.register_xsk(0, link.as_fd()).expect("register");
        let initial_free = link.frame_counts().free;
        ready_tx.send(()).expect("ready");

        let (mut syns, mut acks, mut echoed) = (0u32, 0u32, 0u32);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let _ = link.wait_rx(20);
            link.rx_burst(64, &mut |frame, tx| {
                let Some(v) = parse_tcp4(frame) else { return };
                if v.dst_port != port {
                    return;
                }
                match behaviour {
                    Behaviour::Handshake => {
                        if v.flags.syn() && !v.flags.ack() {
                            syns += 1;
                            let synack = TcpRepr {
                                src_port: port,
                                dst_port: v.src_port,
                                seq: SeqNum(0x1000_0000),
                                ack: SeqNum(v.seq.wrapping_add(1)),
                                flags: TcpFlags::SYN | TcpFlags::ACK,
                                window: 65535,
                                urgent: 0,
                                options: TcpOptions { mss: Some(1460), ..TcpOptions::default() },
                                payload: &[],
                            };
                            let ok =
                                tx.send_frame(tcp4_len(&synack), &mut |buf| write_tcp4(buf, v.src_mac, v.src, &synack));
                            assert!(ok, "no frame for the SYN-ACK");
                        } else if v.flags.ack() && !v.flags.syn() {
                            acks += 1;
                        }
                    }
                    Behaviour::Echo => {
                        if v.payload.is_empty() || v.flags.rst() {
                            return;
                        }
                        let back = TcpRepr {
                            src_port: port,
                            dst_port: v.src_port,
                            seq: SeqNum(v.seq),
                            ack: SeqNum(0),
                            flags: TcpFlags::ACK,
                            window: 0,
                            urgent: 0,
                            options: TcpOptions::default(),
                            payload: &v.payload,
                        };
                        let ok = tx.send_frame(tcp4_len(&back), &mut |buf| write_tcp4(buf, v.src_mac, v.src, &back));
                        if ok {
                            echoed += 1;
                        }
                    }
                }
            });
            link.flush();
        }
        // Let every transmit complete, then account for every frame.
        let settle = Instant::now() + Duration::from_secs(5);
        while link.frame_counts().tx_in_flight > 0 && Instant::now() < settle {
            link.flush();
            thread::sleep(Duration::from_millis(5));
        }
        let final_counts = link.frame_counts();
        let io = link.stats();
        let zero_copy = link.is_zero_copy();
        let steer = steering.stats().expect("counters");
        drop(link);
        drop(steering);
        within_2s(|| attached_program(DEV_SRV).expect("query").is_none());
        let xdp_after_drop = attached_program(DEV_SRV).expect("query");
        StackReport { zero_copy, syns, acks, echoed, initial_free, final_counts, io, steer, xdp_after_drop }
    });
    (ready_rx, h)
}

fn wait_ready(ready: &mpsc::Receiver<()>) {
    ready.recv_timeout(Duration::from_secs(30)).expect("the stack thread did not come up (see its panic above)");
}

// ---------------------------------------------------------------------------------------
// Tests

/// A kernel client connects; its SYN reaches us through rx_burst, our SYN-ACK (written into a
/// lent UMEM frame) passes the kernel's checks and completes the handshake; its ACK reaches us.
#[test]
fn kernel_client_handshake_through_af_xdp() {
    if !privileged("kernel_client_handshake_through_af_xdp") {
        return;
    }
    let bed = Bed::up();
    let port = 7777;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, stack) = spawn_stack(&bed.srv, port, Behaviour::Handshake, stop.clone());
    wait_ready(&ready);
    assert!(bed.has_xdp(), "program attached: {}", bed.link_show());

    let connected = in_netns(&bed.cli, move || {
        let to = SocketAddr::new(IpAddr::V4(IP_SRV), port);
        TcpStream::connect_timeout(&to, Duration::from_secs(10)).map(|s| s.local_addr())
    });
    // Give the final ACK time to arrive.
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let r = stack.join().expect("stack thread");

    let local = connected.expect("kernel connect() through the XDP stack");
    assert!(local.is_ok());
    assert!(!r.zero_copy, "veth offers copy mode only; Auto must fall back");
    assert!(r.syns >= 1, "SYN seen");
    assert!(r.acks >= 1, "handshake ACK seen");
    assert!(r.io.rx_frames >= 2 && r.io.tx_frames >= 1, "{:?}", r.io);
    assert!(r.io.wakeups >= 1, "copy mode needs a sendto per tx batch");
    assert!(r.steer.get(XskStat::MatchListen) >= 2, "{:?}", r.steer);
    assert!(r.steer.get(XskStat::Redirected) >= 2, "{:?}", r.steer);
    // ARP for the shared address went to the kernel, which answered it.
    assert!(r.steer.get(XskStat::Passed) >= 1, "{:?}", r.steer);
    assert_eq!(r.final_counts.free, r.initial_free, "{:?}", r.final_counts);
    assert!(r.final_counts.is_balanced(), "{:?}", r.final_counts);
    // Dropped link and steering: nothing left on the interface.
    assert_eq!(r.xdp_after_drop, None);
    assert!(within_2s(|| !bed.has_xdp()), "XDP left behind: {}", bed.link_show());
}

/// The peer sends 1000 payload-carrying frames (in windows of 50) over a raw socket; each
/// comes back in order and intact. With 256 rx and 256 tx frames this recycles every frame
/// several times, and afterwards the free count is back where it started.
#[test]
fn raw_frames_round_trip_in_order_and_frames_are_recycled() {
    if !privileged("raw_frames_round_trip_in_order_and_frames_are_recycled") {
        return;
    }
    let bed = Bed::up();
    let port = 9000;
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, stack) = spawn_stack(&bed.srv, port, Behaviour::Echo, stop.clone());
    wait_ready(&ready);

    let total = 1000u32;
    let result = in_netns(&bed.cli, move || raw_echo_client(port, total, 50));
    stop.store(true, Ordering::Relaxed);
    let r = stack.join().expect("stack thread");
    let got = result.expect("raw echo");

    assert_eq!(got, total, "every frame came back");
    assert_eq!(r.echoed, total);
    assert_eq!(r.io.tx_no_frame, 0);
    assert_eq!(r.final_counts.tx_in_flight, 0, "{:?}", r.final_counts);
    assert_eq!(r.final_counts.free, r.initial_free, "{:?}", r.final_counts);
    assert!(r.final_counts.is_balanced(), "{:?}", r.final_counts);
}

/// Sends `total` frames to the stack from an AF_PACKET socket on the peer end, `window` at a
/// time, and checks the echoes: order and the `seq << 16 | i` payload pattern.
fn raw_echo_client(port: u16, total: u32, window: u32) -> Result<u32, String> {
    let sock = RawSocket::open(DEV_CLI)?;
    let mut received = 0u32;
    let mut next = 0u32;
    while next < total {
        let end = (next + window).min(total);
        for seq in next..end {
            let payload: Vec<u8> = (0..16u32).flat_map(|i| ((seq << 16) | i).to_be_bytes()).collect();
            let tcp = TcpRepr {
                src_port: 45000,
                dst_port: port,
                seq: SeqNum(seq),
                ack: SeqNum(0),
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window: 1000,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &payload,
            };
            let mut f = vec![0u8; tcp4_len(&tcp)];
            write_peer_tcp4(&mut f, &tcp);
            sock.send(&f)?;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while received < end {
            if Instant::now() > deadline {
                return Err(format!("timed out after {received} echoes"));
            }
            let Some(frame) = sock.recv(Duration::from_millis(200))? else {
                continue;
            };
            let Some(v) = parse_tcp4(&frame) else {
                continue;
            };
            if v.src_mac != MAC_SRV || v.src_port != port || v.payload.is_empty() {
                continue; // our own transmits, RSTs, anything else
            }
            if v.seq != received {
                return Err(format!("echo {} arrived when {received} was due", v.seq));
            }
            for (i, w) in v.payload.chunks_exact(4).enumerate() {
                let want = (v.seq << 16) | i as u32;
                if u32::from_be_bytes([w[0], w[1], w[2], w[3]]) != want {
                    return Err(format!("echo {}: word {i} corrupted", v.seq));
                }
            }
            received += 1;
        }
        next = end;
    }
    Ok(received)
}

/// Peer → stack frame (the peer's addresses), checksums filled.
fn write_peer_tcp4(buf: &mut [u8], tcp: &TcpRepr<'_>) {
    EthernetRepr { src: MAC_CLI, dst: MAC_SRV, vlan: None, ethertype: EtherType::Ipv4 }.emit(buf);
    let tl = tcp.buffer_len();
    Ipv4Repr {
        src: IP_CLI,
        dst: IP_SRV,
        protocol: ip_proto::TCP,
        payload_len: tl,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut buf[14..], ChecksumCaps::default());
    let ps = checksum::pseudo_header_v4(IP_CLI, IP_SRV, ip_proto::TCP, tl as u16);
    tcp.emit(&mut buf[34..], Some(ps));
}

/// An AF_PACKET socket bound to one interface.
struct RawSocket {
    fd: std::os::fd::OwnedFd,
}

impl RawSocket {
    fn open(dev: &str) -> Result<Self, String> {
        use std::os::fd::FromRawFd;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        if fd < 0 {
            return Err(format!("socket(AF_PACKET): {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is fresh and owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let idx = xdptcp::io::xdp::ifindex(dev).map_err(|e| e.to_string())?;
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = idx as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(format!("bind AF_PACKET: {}", std::io::Error::last_os_error()));
        }
        Ok(RawSocket { fd })
    }

    fn send(&self, frame: &[u8]) -> Result<(), String> {
        // SAFETY: `frame` is valid for reads of its length for the whole call.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n != frame.len() as isize {
            return Err(format!("send: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// One frame, or None after `timeout`.
    fn recv(&self, timeout: Duration) -> Result<Option<Vec<u8>>, String> {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is a valid pollfd for the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        if rc <= 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; 2048];
        // SAFETY: `buf` is valid for writes of its length for the whole call.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(format!("recv: {}", std::io::Error::last_os_error()));
        }
        buf.truncate(n as usize);
        Ok(Some(buf))
    }
}

/// A second program on the same interface is refused by name; generic mode is honoured;
/// zero-copy on veth fails cleanly and Auto falls back to copy.
#[test]
fn attach_refusals_and_modes() {
    if !privileged("attach_refusals_and_modes") {
        return;
    }
    let bed = Bed::up();
    let show = in_netns(&bed.srv, || {
        let mut first = Steering::load(&steer_cfg(80)).expect("load");
        first.attach(DEV_SRV, AttachMode::Generic).expect("attach generic");
        let seen = attached_program(DEV_SRV).expect("query").expect("attached");
        assert_eq!(seen.mode, "generic");

        let mut second = Steering::load(&steer_cfg(81)).expect("load");
        let err = second.attach(DEV_SRV, AttachMode::Native).unwrap_err();
        match &err {
            XdpError::AlreadyAttached { prog_id, .. } => assert_eq!(*prog_id, seen.prog_id),
            other => panic!("expected AlreadyAttached, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(DEV_SRV) && msg.contains("already attached"), "{msg}");

        let zc = XskConfig { bind: BindMode::ZeroCopy, ..small_xsk() };
        let e = XdpLink::bind(DEV_SRV, 0, &zc).unwrap_err();
        assert!(e.to_string().contains("zero-copy"), "{e}");
        let auto = XdpLink::bind(DEV_SRV, 0, &small_xsk()).expect("auto falls back to copy");
        assert!(!auto.is_zero_copy());
        drop(auto);

        first.detach();
        assert!(within_2s(|| attached_program(DEV_SRV).expect("query").is_none()));
        second.attach(DEV_SRV, AttachMode::Native).expect("attach after detach");
        assert_eq!(attached_program(DEV_SRV).expect("query").map(|p| p.mode), Some("native"));
        let show = Command::new("ip").args(["link", "show", "dev", DEV_SRV]).output().expect("ip");
        String::from_utf8_lossy(&show.stdout).into_owned()
    });
    assert!(xdp_in_link_show(&show), "{show}");
    assert!(within_2s(|| !bed.has_xdp()), "detached when Steering dropped: {}", bed.link_show());
}

const CHILD_ENV: &str = "XDPTCP_TEST_CHILD_NETNS";
const CHILD_READY: &str = "XDPTCP-CHILD-READY";

/// Not a test on its own: the child process of `kill_9_detaches_the_program`. Without its
/// environment variable it does nothing.
#[test]
fn child_process_holds_the_link() {
    let Ok(ns) = std::env::var(CHILD_ENV) else {
        return;
    };
    enter_netns(&ns);
    let mut steering = Steering::load(&steer_cfg(80)).expect("child: load");
    steering.attach(DEV_SRV, AttachMode::Native).expect("child: attach");
    let link = XdpLink::bind(DEV_SRV, 0, &small_xsk()).expect("child: bind");
    steering.register_xsk(0, link.as_fd()).expect("child: register");
    println!("{CHILD_READY}");
    // Bounded: the parent kills us long before this.
    thread::sleep(Duration::from_secs(60));
    panic!("child: not killed within 60 s");
}

/// A process holding the attachment and an AF_XDP socket is killed with SIGKILL: no Drop
/// runs, yet the BPF link dies with its fd and the program leaves the interface.
#[test]
fn kill_9_detaches_the_program() {
    if !privileged("kill_9_detaches_the_program") {
        return;
    }
    let bed = Bed::up();
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_process_holds_the_link", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &bed.srv)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(CHILD_READY) {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30));
    if ready.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never attached");
    }
    assert!(bed.has_xdp(), "child attached: {}", bed.link_show());

    child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL
    let status = child.wait().expect("reap the child");
    assert!(!status.success());

    let deadline = Instant::now() + Duration::from_secs(5);
    while bed.has_xdp() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!bed.has_xdp(), "XDP outlived kill -9: {}", bed.link_show());
}
