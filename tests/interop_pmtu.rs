//! Path-MTU discovery against the Linux kernel, shared-address mode: `xdptcp serve` in one
//! namespace, a Linux router in a second and kernel clients in a third:
//!
//! ```text
//!   srv [stack] --1500-- [1500] rtr [1280] --1500-- cli [kernel]
//!   198.18.77.2          .77.1 rtr .78.1           198.18.78.2
//!   fd00:1877::2      fd00:1877::1 fd00:1878::1    fd00:1878::2
//! ```
//!
//! The router's end towards the client has the smaller MTU, so the stack's full-size segments
//! (the client advertises MSS 1460) make the router answer with ICMP fragmentation-needed /
//! packet-too-big, which the XDP program steers to the stack's AF_XDP socket and the TCP acts on
//! (RFC 1191, RFC 8201, RFC 5927). A second test forges packet-too-big messages from the router
//! namespace: one quoting a sequence number outside the flight, one claiming MTU 68.
//!
//! Privileged: as root these run; without root they print a loud skip message, and with
//! CI=true they fail instead of skipping. Each test builds its own namespaces (names carry the
//! pid) and removes them in a Drop guard, also when it fails.

#![cfg(feature = "xdp")]

mod bed;
use bed::{counter, privileged};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_xdptcp");
/// One bed at a time: the tests share addresses and the 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

const SRV4: Ipv4Addr = Ipv4Addr::new(198, 18, 77, 2);
const RTR_S4: &str = "198.18.77.1";
const RTR_C4: &str = "198.18.78.1";
const SRV6: &str = "fd00:1877::2";
const RTR_S6: &str = "fd00:1877::1";
const RTR_C6: &str = "fd00:1878::1";

/// Runs a command, panics with its output unless it succeeds.
fn must(args: &[&str]) -> Output {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Three namespaces (stack, router, client) and two veth pairs; removed on drop.
struct Bed {
    srv: String,
    rtr: String,
    cli: String,
    /// The stack's end (srv), the router's ends towards srv and cli, the client's end.
    dev_s: String,
    dev_rs: String,
    dev_rc: String,
    dev_c: String,
    server: Option<Child>,
}

impl Bed {
    /// `rtr_cli_mtu` is the MTU of the router's end towards the client; every other end has 1500.
    fn up(tag: &str, rtr_cli_mtu: u32) -> Bed {
        let pid = std::process::id();
        let ns = |role: &str| format!("xdptest-pmtu{tag}-{pid}-{role}");
        // Interface names: at most 15 characters ("xp" + tag + up to 7 pid digits + 2).
        let dev = |end: &str| format!("xp{tag}{pid}{end}");
        let bed = Bed {
            srv: ns("srv"),
            rtr: ns("rtr"),
            cli: ns("cli"),
            dev_s: dev("s"),
            dev_rs: dev("rs"),
            dev_rc: dev("rc"),
            dev_c: dev("c"),
            server: None,
        };
        // From here on the Drop guard removes whatever was built, also on a failed step.
        for n in [&bed.srv, &bed.rtr, &bed.cli] {
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        let pair = |a: &str, ns_a: &str, b: &str, ns_b: &str| {
            must(&["ip", "link", "add", "name", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b]);
        };
        pair(&bed.dev_s, &bed.srv, &bed.dev_rs, &bed.rtr);
        pair(&bed.dev_rc, &bed.rtr, &bed.dev_c, &bed.cli);
        let mtu_rc = rtr_cli_mtu.to_string();
        let ends = [
            (&bed.srv, &bed.dev_s, "1500", "198.18.77.2/24", "fd00:1877::2/64"),
            (&bed.rtr, &bed.dev_rs, "1500", "198.18.77.1/24", "fd00:1877::1/64"),
            (&bed.rtr, &bed.dev_rc, mtu_rc.as_str(), "198.18.78.1/24", "fd00:1878::1/64"),
            (&bed.cli, &bed.dev_c, "1500", "198.18.78.2/24", "fd00:1878::2/64"),
        ];
        for (n, d, mtu, a4, a6) in ends {
            must(&["ip", "-n", n, "link", "set", "dev", d, "mtu", mtu]);
            // Without this every frame reaches AF_XDP with a partial TCP checksum.
            must(&["ip", "netns", "exec", n, "ethtool", "-K", d, "tx", "off"]);
            must(&["ip", "-n", n, "addr", "add", a4, "dev", d]);
            must(&["ip", "-n", n, "-6", "addr", "add", a6, "dev", d, "nodad"]);
            must(&["ip", "-n", n, "link", "set", "dev", d, "up"]);
        }
        must(&[
            "ip",
            "netns",
            "exec",
            &bed.rtr,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ]);
        must(&["ip", "-n", &bed.srv, "route", "add", "default", "via", RTR_S4]);
        must(&["ip", "-n", &bed.srv, "-6", "route", "add", "default", "via", RTR_S6]);
        if rtr_cli_mtu < 1500 {
            // veth drops (without an ICMP) a frame longer than the receiving end's MTU, so
            // the client's own segments must fit the router's end: the route's MTU says so,
            // and advmss keeps the MSS the client advertises at what its 1500-byte link
            // allows. The stack therefore sends 1500-byte packets and learns the path MTU.
            let m = mtu_rc.as_str();
            must(&["ip", "-n", &bed.cli, "route", "add", "default", "via", RTR_C4, "mtu", m, "advmss", "1460"]);
            must(&["ip", "-n", &bed.cli, "-6", "route", "add", "default", "via", RTR_C6, "mtu", m, "advmss", "1440"]);
        } else {
            must(&["ip", "-n", &bed.cli, "route", "add", "default", "via", RTR_C4]);
            must(&["ip", "-n", &bed.cli, "-6", "route", "add", "default", "via", RTR_C6]);
        }
        // Keep a flow on one veth queue (see deploy/bed-up.sh).
        let _ = Command::new("ip").args(["netns", "exec", &bed.cli, "sysctl", "-qw", "net.core.txrehash=0"]).status();
        bed
    }

    fn serve(&mut self, addrs: &[&str]) {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.srv, BIN, "serve", "--iface", &self.dev_s]);
        for a in addrs {
            c.args(["--addr", a]);
        }
        c.args(["--port", "7", "--app", "echo", "--queues", "1", "--quiet", "--stats-file", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        self.server = Some(c.spawn().expect("start serve"));
        std::thread::sleep(Duration::from_millis(1500));
        if let Some(Ok(Some(st))) = self.server.as_mut().map(|s| s.try_wait()) {
            panic!("serve exited early: {st}");
        }
    }

    /// Stops `serve` with SIGINT and returns its summary.
    fn stop(&mut self) -> String {
        let Some(c) = self.server.take() else { return String::new() };
        // SAFETY: kill(2) on our child (`ip netns exec` execs into serve).
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGINT);
        }
        let o = c.wait_with_output().expect("wait serve");
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.status.success(), "serve exit: {}\n{out}", o.status);
        out
    }

    /// `xdptcp kclient` from the client namespace; returns its output and whether it succeeded.
    fn kclient(&self, target: &str, args: &[&str]) -> (String, bool) {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.cli, BIN, "kclient", "--target", target])
            .args(args)
            .output()
            .expect("run kclient");
        (String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr), o.status.success())
    }

    /// The router's IPv4 and IPv6 SNMP counters (`/proc/net/snmp`, `/proc/net/snmp6`), keyed
    /// as nstat names them (IpFragFails, Ip6FragFails, ...).
    fn router_snmp(&self) -> BTreeMap<String, u64> {
        let o = must(&["ip", "netns", "exec", &self.rtr, "cat", "/proc/net/snmp", "/proc/net/snmp6"]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let mut m = BTreeMap::new();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let l = lines[i];
            if let Some((prefix, names)) = l.split_once(": ") {
                // snmp: a line of names, then a line of values with the same prefix.
                if let Some((p2, values)) = lines.get(i + 1).and_then(|v| v.split_once(": ")) {
                    if p2 == prefix && values.split_whitespace().all(|v| v.parse::<i64>().is_ok()) {
                        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                            m.insert(format!("{prefix}{n}"), v.parse::<i64>().unwrap_or(0).max(0) as u64);
                        }
                        i += 2;
                        continue;
                    }
                }
            } else {
                // snmp6: one "Name value" per line.
                let mut w = l.split_whitespace();
                if let (Some(n), Some(v)) = (w.next(), w.next().and_then(|v| v.parse().ok())) {
                    m.insert(n.to_string(), v);
                }
            }
            i += 1;
        }
        m
    }

    /// Turns IPv4 forwarding of packets that enter the router on `dev` off or on (the per-device
    /// `forwarding` switch; such packets are then dropped without an ICMP error).
    fn forwarding(&self, dev: &str, on: bool) {
        let v = if on { 1 } else { 0 };
        must(&["ip", "netns", "exec", &self.rtr, "sysctl", "-qw", &format!("net.ipv4.conf.{dev}.forwarding={v}")]);
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace destroys the veth ends in it, and with them the pairs.
        for n in [&self.srv, &self.rtr, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", n]).stderr(Stdio::null()).status();
        }
    }
}

fn delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>, k: &str) -> u64 {
    b.get(k).copied().unwrap_or(0).saturating_sub(a.get(k).copied().unwrap_or(0))
}

/// Runs `f` on a new thread that has entered network namespace `ns`; sockets it creates stay
/// in that namespace wherever they are used afterwards.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns(2) on a valid namespace fd; it moves only this thread.
        let r = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Through a router whose next link has MTU 1280, 16 MiB echoed over IPv4 (4 connections of
/// 4 MiB) and again over IPv6 completes, content checked: the router drops every packet over
/// 1280 bytes, so only segments that shrank get through. The router sent only a few
/// fragmentation-needed / packet-too-big errors while forwarding tens of thousands of packets
/// (the stack shrank its segments at once), the XDP program steered the errors to the stack,
/// and its TCP acted on them (TcpExtTCPMTUPICMP).
#[test]
fn path_mtu_discovery_through_a_linux_router() {
    if !privileged("path_mtu_discovery_through_a_linux_router") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("a", 1280);
    bed.serve(&["198.18.77.2", SRV6]);
    let args = ["--conns", "4", "--concurrency", "4", "--bytes", "4194304", "--closer", "client", "--timeout", "20"];
    let s0 = bed.router_snmp();
    let (out4, ok4) = bed.kclient("198.18.77.2:7", &args);
    let s1 = bed.router_snmp();
    let (out6, ok6) = bed.kclient(&format!("[{SRV6}]:7"), &args);
    let s2 = bed.router_snmp();
    let summary = bed.stop();
    let frag_fails = delta(&s0, &s1, "IpFragFails");
    let dest_unreach = delta(&s0, &s1, "IcmpOutDestUnreachs");
    let forwarded4 = delta(&s0, &s1, "IpForwDatagrams");
    let too_big6 = delta(&s1, &s2, "Icmp6OutPktTooBigs");
    let forwarded6 = delta(&s1, &s2, "Ip6OutForwDatagrams");
    eprintln!(
        "{out4}{out6}{summary}router: IPv4 forwarded {forwarded4}, FragFails {frag_fails}, \
         IcmpOutDestUnreachs {dest_unreach}; IPv6 forwarded {forwarded6}, Icmp6OutPktTooBigs {too_big6}"
    );
    let all_ok = ": 4 ok, 0 connect errors, 0 io errors, 0 content mismatches";
    assert!(ok4 && out4.contains(all_ok), "IPv4 transfer through the 1280 link:\n{out4}\n{summary}");
    assert!(ok6 && out6.contains(all_ok), "IPv6 transfer through the 1280 link:\n{out6}\n{summary}");
    // The router did have to tell the stack, over both families ...
    assert!(frag_fails >= 1 && dest_unreach >= 1, "no fragmentation-needed sent by the router");
    assert!(too_big6 >= 1, "no packet-too-big sent by the router");
    // ... but only about the first window of each connection: 4 MiB each way is more than
    // 3,000 segments per connection, and the segments after the first errors fit.
    assert!(frag_fails <= 4 * 64, "IPv4: {frag_fails} packets too big for the 1280 link");
    assert!(too_big6 <= 4 * 64, "IPv6: {too_big6} packets too big for the 1280 link");
    assert!(forwarded4 > 2 * 16 * 1024 * 1024 / 1280, "IPv4: only {forwarded4} packets forwarded");
    assert!(forwarded6 > 2 * 16 * 1024 * 1024 / 1280, "IPv6: only {forwarded6} packets forwarded");
    // Steered by the XDP program and acted on by the TCP.
    assert!(counter(&summary, "xdp_match_icmp_error") >= 2, "ICMP errors not steered to AF_XDP:\n{summary}");
    assert!(counter(&summary, "TcpExtTCPMTUPICMP") >= 2, "packet-too-big not acted on:\n{summary}");
    assert!(counter(&summary, "TcpPassiveOpens") >= 8, "{summary}");
    assert_eq!(counter(&summary, "TcpEstabResets"), 0, "{summary}");
}

/// A data segment of the stack's connection, as the router's capture saw it.
#[derive(Clone)]
struct Seen {
    seq: u32,
    payload: usize,
    /// The IPv4 header and the first 8 bytes of the TCP header: what an ICMP error quotes.
    quote: Vec<u8>,
}

/// Captures (AF_PACKET, in the router namespace, on `dev`) the stack's IPv4 data segments
/// from port 7 to `cli_port` until `stop` is set.
fn capture(
    ns: &str,
    dev: String,
    cli_port: u16,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> std::thread::JoinHandle<()> {
    in_netns(ns, move || {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2)/setsockopt(2)/bind(2)/recv(2) with valid buffers and lengths.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
            let name = std::ffi::CString::new(dev.clone()).expect("name");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            assert!(sll.sll_ifindex > 0, "no {dev}");
            let r = libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                if n < 54 {
                    continue;
                }
                let f = &buf[..n as usize];
                let ip = &f[14..];
                if f[12..14] != [0x08, 0x00] || ip[9] != 6 || ip[12..16] != SRV4.octets() {
                    continue;
                }
                let ihl = usize::from(ip[0] & 0xf) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                let Some(tcp) = ip.get(ihl..ihl + 20) else { continue };
                if u16::from_be_bytes([tcp[0], tcp[1]]) != 7 || u16::from_be_bytes([tcp[2], tcp[3]]) != cli_port {
                    continue;
                }
                let payload = total.saturating_sub(ihl + usize::from(tcp[12] >> 4) * 4);
                if payload == 0 {
                    continue;
                }
                let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
                log.lock().expect("log").push(Seen { seq, payload, quote: ip[..ihl + 8].to_vec() });
            }
            libc::close(fd);
        }
    })
}

fn inet_checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Sends, from the router namespace, an ICMPv4 fragmentation-needed with next-hop MTU `mtu`
/// quoting `quote` (an IPv4 header plus 8 bytes of TCP) to the stack.
fn forge_frag_needed(ns: &str, mtu: u16, quote: Vec<u8>) {
    in_netns(ns, move || {
        let mut m = vec![3u8, 4, 0, 0, 0, 0];
        m.extend_from_slice(&mtu.to_be_bytes());
        m.extend_from_slice(&quote);
        let c = inet_checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        // SAFETY: socket(2)/sendto(2) with a valid buffer and sockaddr_in.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let mut sin: libc::sockaddr_in = std::mem::zeroed();
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(SRV4.octets());
            let n = libc::sendto(
                fd,
                m.as_ptr() as *const libc::c_void,
                m.len(),
                0,
                &sin as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            );
            assert_eq!(n, m.len() as isize, "sendto: {}", std::io::Error::last_os_error());
            libc::close(fd);
        }
    })
    .join()
    .expect("forge");
}

fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// How many data segments the capture holds so far: a mark for [`segments_after`].
fn mark(log: &Mutex<Vec<Seen>>) -> usize {
    log.lock().expect("log").len()
}

/// Waits (up to 10 s) until the capture holds `n` data segments after `since` (a [`mark`]),
/// and returns them.
fn segments_after(log: &Mutex<Vec<Seen>>, since: usize, n: usize, what: &str) -> Vec<Seen> {
    for _ in 0..1000 {
        let v = log.lock().expect("log").get(since..).unwrap_or_default().to_vec();
        if v.len() >= n {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = mark(log).saturating_sub(since);
    panic!("{what}: only {got} data segments from the stack in 10 s");
}

/// Forged packet-too-big messages from the router namespace about a live connection (MTU 1500
/// everywhere, so the router itself never sends one): one quoting a sequence number outside
/// SND.UNA..SND.NXT changes nothing (TcpExtOutOfWindowIcmps, segments stay full size); one
/// quoting a segment in flight but claiming MTU 68 lowers the MSS only to the floor
/// (`min_snd_mss` 536, less the timestamp option), never below, and the echo of everything
/// sent still completes, content checked.
#[test]
fn forged_packet_too_big_out_of_window_and_below_the_floor() {
    if !privileged("forged_packet_too_big_out_of_window_and_below_the_floor") {
        return;
    }
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::up("b", 1500);
    bed.serve(&["198.18.77.2"]);

    // The client: a kernel socket in the client namespace; one thread writes paced 16 KiB
    // chunks of a pattern until told to stop (at most 64 MiB), another reads the echo and
    // checks it.
    let stream =
        in_netns(&bed.cli, || TcpStream::connect_timeout(&SocketAddr::from((SRV4, 7)), Duration::from_secs(5)))
            .join()
            .expect("connect thread")
            .expect("connect to the stack");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.set_write_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let cli_port = stream.local_addr().expect("local addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let cap_stop = Arc::new(AtomicBool::new(false));
    let cap = capture(&bed.rtr, bed.dev_rs.clone(), cli_port, cap_stop.clone(), log.clone());
    let mut w = stream.try_clone().expect("clone");
    let (stop_w, written_w) = (stop.clone(), written.clone());
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut off = 0u64;
        let mut chunk = vec![0u8; 16 * 1024];
        while !stop_w.load(Ordering::Relaxed) && off < 64 << 20 {
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = pattern(off + i as u64);
            }
            w.write_all(&chunk)?;
            off += chunk.len() as u64;
            written_w.store(off, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
        w.shutdown(std::net::Shutdown::Write)
    });
    let mut r = stream;
    r.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let final_total = Arc::new(AtomicU64::new(u64::MAX));
    let final_r = final_total.clone();
    let reader = std::thread::spawn(move || -> Result<u64, String> {
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut idle = Duration::ZERO;
        while got != final_r.load(Ordering::Relaxed) {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    idle += Duration::from_millis(200);
                    if idle > Duration::from_secs(20) {
                        return Err(format!("no echo for 20 s after {got} bytes"));
                    }
                    continue;
                }
                Err(e) => return Err(format!("read after {got} bytes: {e}")),
            };
            idle = Duration::ZERO;
            for (i, &b) in buf[..n].iter().enumerate() {
                if b != pattern(got + i as u64) {
                    return Err(format!("content mismatch at byte {}", got + i as u64));
                }
            }
            got += n as u64;
        }
        Ok(got)
    });

    let fail = |what: &str, bed: &mut Bed| -> ! {
        stop.store(true, Ordering::Relaxed);
        let summary = bed.stop();
        panic!("{what}\n{summary}");
    };

    // Full-size segments first.
    let before = segments_after(&log, 0, 40, "warm-up");
    let full = before.iter().map(|s| s.payload).max().unwrap_or(0);
    if full < 1400 {
        fail(&format!("largest segment before any ICMP has {full} bytes of payload"), &mut bed);
    }
    // The stack sends the timestamp option with Linux, and the floor counts it (RFC 7323 §3.2
    // after RFC 6691): 536 less 12.
    let ts = 1460usize.saturating_sub(full);
    let floor = 536 - ts;

    // 1. Out of the flight: the quote of a live segment with the sequence number moved by half
    //    the sequence space, claiming MTU 576: would lower the MSS if it were believed.
    let mut q = before.last().expect("segment").quote.clone();
    let ihl = usize::from(q[0] & 0xf) * 4;
    let seq = u32::from_be_bytes([q[ihl + 4], q[ihl + 5], q[ihl + 6], q[ihl + 7]]).wrapping_add(0x8000_0000);
    q[ihl + 4..ihl + 8].copy_from_slice(&seq.to_be_bytes());
    forge_frag_needed(&bed.rtr, 576, q);
    std::thread::sleep(Duration::from_millis(20));
    let t1 = mark(&log);
    let after_oow = segments_after(&log, t1, 40, "after the out-of-window ICMP");
    let max_oow = after_oow.iter().map(|s| s.payload).max().unwrap_or(0);
    if max_oow != full {
        fail(
            &format!("after an out-of-window packet-too-big the largest segment has {max_oow} bytes, was {full}"),
            &mut bed,
        );
    }

    // 2. In the flight, MTU 68. Stop forwarding what the stack sends (the router's capture
    //    still sees it), so nothing it sends from now on is acknowledged. The client keeps
    //    writing, so the stack keeps sending (new data, or a retransmission from SND.UNA): the
    //    last data segment it sent is then unacknowledged, between SND.UNA and SND.NXT.
    bed.forwarding(&bed.dev_rs, false);
    std::thread::sleep(Duration::from_millis(20));
    let t2 = mark(&log);
    segments_after(&log, t2, 1, "while acknowledgements are held");
    std::thread::sleep(Duration::from_millis(100));
    let s = log.lock().expect("log").last().expect("segment").clone();
    forge_frag_needed(&bed.rtr, 68, s.quote.clone());
    std::thread::sleep(Duration::from_millis(50));
    let t3 = mark(&log);
    bed.forwarding(&bed.dev_rs, true);
    let after = segments_after(&log, t3, 200, "after the MTU-68 ICMP");
    let max_after = after.iter().map(|s| s.payload).max().unwrap_or(0);
    let at_floor = after.iter().filter(|s| s.payload >= floor).count();

    // Go on at the floor size until 4 MiB were sent in all (at most 20 s more), then stop the
    // writer and wait for every byte to come back.
    for _ in 0..2000 {
        if written.load(Ordering::Relaxed) >= 4 << 20 || writer.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    let wres = writer.join().expect("writer thread");
    final_total.store(written.load(Ordering::Relaxed), Ordering::Relaxed);
    let rres = reader.join().expect("reader thread");
    cap_stop.store(true, Ordering::Relaxed);
    cap.join().expect("capture thread");
    let total = written.load(Ordering::Relaxed);
    let summary = bed.stop();
    eprintln!(
        "{summary}segments: full size {full} bytes of payload, after the out-of-window ICMP at most {max_oow}, \
         after the MTU-68 ICMP (quoting seq {}, {} bytes) at most {max_after} ({at_floor} of {} at {floor}); \
         {total} bytes written",
        s.seq,
        s.payload,
        after.len()
    );
    assert!(wres.is_ok(), "writer: {wres:?}\n{summary}");
    let got = rres.unwrap_or_else(|e| panic!("reader: {e}\n{summary}"));
    assert_eq!(got, total, "echoed {got} of {total} bytes\n{summary}");
    assert!(total >= 4 << 20, "only {total} bytes written\n{summary}");
    // The in-flight error lowered the MSS to the floor and no further.
    assert_eq!(max_after, floor, "largest segment after the MTU-68 packet-too-big\n{summary}");
    assert!(at_floor >= 10, "too few segments at the floor size\n{summary}");
    assert!(counter(&summary, "TcpExtOutOfWindowIcmps") >= 1, "{summary}");
    assert_eq!(counter(&summary, "TcpExtTCPMTUPICMP"), 1, "only the in-flight one counts\n{summary}");
    assert!(counter(&summary, "xdp_match_icmp_error") >= 2, "{summary}");
    assert_eq!(counter(&summary, "TcpEstabResets"), 0, "{summary}");
}
