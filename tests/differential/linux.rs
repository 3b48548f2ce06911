//! The Linux side: two network namespaces joined by a veth pair. The DUT namespace runs the
//! kernel's TCP on 198.19.93.1; the driver namespace has no address at all (so its kernel
//! never answers), and the driver reads and writes raw frames there through AF_PACKET.

// The kernel runs on real time, so this side reads the wall clock (the sans-IO rule is for
// `src/tcp`, and the stack side of this harness keeps it).
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::driver::{Dut, DRIVER_IP, DUT_IP};
use crate::script::App;

const DEV_DUT: &str = "dfdut0";
const DEV_DRV: &str = "dfdrv0";
const MAC_DUT: [u8; 6] = [0x02, 0, 0xc6, 0x13, 0x5d, 0x01];
const MAC_DRV: [u8; 6] = [0x02, 0, 0xc6, 0x13, 0x5d, 0x02];
const ETH_P_IP: u16 = 0x0800;

/// Sysctls set in the DUT namespace before any scenario's own, so the kernel behaves the
/// same on every machine. The stack's `Config` is built from the same table.
pub const BASE_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.ipv4.tcp_timestamps", "0"),
    // Linux's defaults: SACK and D-SACK on, as in the stack's `Config`; blocks are compared.
    ("net.ipv4.tcp_sack", "1"),
    ("net.ipv4.tcp_dsack", "1"),
    ("net.ipv4.tcp_window_scaling", "1"),
    ("net.ipv4.tcp_rfc1337", "1"),
    // No rate limit on challenge ACKs and out-of-window ACKs: every step is answered.
    ("net.ipv4.tcp_invalid_ratelimit", "0"),
    ("net.ipv4.tcp_challenge_ack_limit", "2147483647"),
    ("net.ipv4.tcp_ecn", "0"),
    ("net.ipv4.tcp_fastopen", "0"),
    ("net.ipv4.tcp_autocorking", "0"),
    ("net.ipv4.tcp_no_metrics_save", "1"),
    ("net.ipv4.tcp_tw_reuse", "0"),
    ("net.ipv4.tcp_mtu_probing", "0"),
    ("net.ipv4.tcp_syn_retries", "6"),
    ("net.ipv4.tcp_synack_retries", "5"),
];

fn sh(args: &[&str]) {
    let o = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `f` on a thread that entered namespace `ns`; sockets it creates stay in `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let nsf = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: `nsf` is an open namespace fd; setns only affects this thread.
        let rc = unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// Two namespaces and a veth pair, removed on drop (also when a scenario panics).
pub struct Bed {
    pub dut_ns: String,
    pub drv_ns: String,
    pkt: Option<OwnedFd>,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.pkt.take();
        for ns in [&self.dut_ns, &self.drv_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Bed {
    pub fn new(sysctls: &[(String, String)]) -> Bed {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut bed = Bed { dut_ns: format!("xdtdiff-dut-{id}"), drv_ns: format!("xdtdiff-drv-{id}"), pkt: None };
        let (dut, drv) = (bed.dut_ns.clone(), bed.drv_ns.clone());
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        sh(&["ip", "netns", "add", &dut]);
        sh(&["ip", "netns", "add", &drv]);
        for ns in [&dut, &drv] {
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]);
        }
        sh(&[
            "ip",
            "-n",
            &dut,
            "link",
            "add",
            DEV_DUT,
            "address",
            &mac(MAC_DUT),
            "type",
            "veth",
            "peer",
            "name",
            DEV_DRV,
            "address",
            &mac(MAC_DRV),
            "netns",
            &drv,
        ]);
        for (ns, dev) in [(&dut, DEV_DUT), (&drv, DEV_DRV)] {
            // Full checksums on what the kernel sends (we verify them), and no GSO/GRO
            // batching: one frame is one segment.
            sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
            let _ = Command::new("ip")
                .args(["netns", "exec", ns, "ethtool", "-K", dev, "gso", "off", "tso", "off", "gro", "off"])
                .output();
        }
        sh(&["ip", "-n", &dut, "addr", "add", &format!("{DUT_IP}/24"), "dev", DEV_DUT]);
        sh(&["ip", "-n", &dut, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &dut, "link", "set", DEV_DUT, "up"]);
        sh(&["ip", "-n", &drv, "link", "set", DEV_DRV, "up"]);
        sh(&[
            "ip",
            "-n",
            &dut,
            "neigh",
            "add",
            &DRIVER_IP.to_string(),
            "lladdr",
            &mac(MAC_DRV),
            "dev",
            DEV_DUT,
            "nud",
            "permanent",
        ]);
        let mut cmd = vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            dut.clone(),
            "sysctl".into(),
            "-q".into(),
            "-w".into(),
        ];
        for (k, v) in BASE_SYSCTLS.iter().map(|(k, v)| (k.to_string(), v.to_string())).chain(sysctls.iter().cloned()) {
            cmd.push(format!("{k}={v}"));
        }
        sh(&cmd.iter().map(String::as_str).collect::<Vec<_>>());
        bed.pkt = Some(in_ns(&drv, packet_socket));
        bed
    }

    fn fd(&self) -> i32 {
        self.pkt.as_ref().expect("packet socket").as_raw_fd()
    }

    /// Sends an IPv4 packet to the DUT in an Ethernet frame.
    pub fn send_ip(&self, ip: &[u8]) {
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&MAC_DUT);
        f.extend_from_slice(&MAC_DRV);
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        f.extend_from_slice(ip);
        // SAFETY: the socket is open and bound; `f` is a valid buffer of `f.len()` bytes.
        let n = unsafe { libc::send(self.fd(), f.as_ptr().cast(), f.len(), 0) };
        assert_eq!(n, f.len() as isize, "AF_PACKET send: {}", std::io::Error::last_os_error());
    }

    /// The next IPv4 packet from the DUT's address, within `ms`.
    pub fn recv_ip(&self, ms: u64) -> Option<Vec<u8>> {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 65536];
        loop {
            let left = end.saturating_duration_since(Instant::now()).as_millis() as i32;
            let mut p = libc::pollfd { fd: self.fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, left) };
            if r <= 0 {
                return None;
            }
            // SAFETY: `buf` is writable for its whole length.
            let n = unsafe { libc::recv(self.fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 14 + 20 {
                continue;
            }
            let f = &buf[..n as usize];
            if f[12..14] != ETH_P_IP.to_be_bytes() || f[14 + 12..14 + 16] != DUT_IP.octets() {
                continue;
            }
            let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
            if total > f.len() - 14 {
                continue;
            }
            dump_frame(&f[..14 + total]);
            return Some(f[14..14 + total].to_vec());
        }
    }
}

/// With `XDPTCP_DIFF_DUMP=<dir>`, every frame the kernel sent is written there as `NNN.bin`
/// (how the SACK fixtures in `tests/data/` were captured; see its README).
fn dump_frame(f: &[u8]) {
    static N: AtomicU32 = AtomicU32::new(0);
    if let Some(dir) = std::env::var_os("XDPTCP_DIFF_DUMP") {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::path::Path::new(&dir).join(format!("{n:03}.bin"));
        std::fs::write(&path, f).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// An AF_PACKET socket bound to the driver's veth, for IPv4 frames (incoming only).
fn packet_socket() -> OwnedFd {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(ETH_P_IP.to_be())) };
    assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh socket we own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(DEV_DRV).expect("no NUL");
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert!(ifindex > 0, "if_nametoindex {DEV_DRV}");
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_IP.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32)
    };
    assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
    owned
}

fn setsockopt_int(fd: i32, level: i32, name: i32, v: i32) {
    // SAFETY: `v` lives across the call and its size is passed.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&v as *const i32).cast(), 4) };
    assert_eq!(rc, 0, "setsockopt {level}/{name}: {}", std::io::Error::last_os_error());
}

fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(a) = a else { panic!("IPv4 only") };
    // SAFETY: sockaddr_in is plain data.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as u16;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
    s
}

/// A TCP socket in the DUT namespace bound to `local`, SO_RCVBUF set first if asked.
fn dut_socket(ns: &str, local: SocketAddr, rcvbuf: Option<usize>) -> OwnedFd {
    in_ns(ns, move || {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh socket we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        if let Some(n) = rcvbuf {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, n as i32);
        }
        let sa = sockaddr(local);
        // SAFETY: `sa` is a valid sockaddr_in.
        let rc = unsafe {
            libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of::<libc::sockaddr_in>() as u32)
        };
        assert_eq!(rc, 0, "bind {local}: {}", std::io::Error::last_os_error());
        owned
    })
}

/// The Linux kernel as the DUT.
pub struct LinuxDut {
    bed: Bed,
    start: Instant,
    listener: Option<TcpListener>,
    stream: Option<TcpStream>,
    rcvbuf: Option<usize>,
}

impl LinuxDut {
    pub fn new(sysctls: &[(String, String)]) -> LinuxDut {
        LinuxDut { bed: Bed::new(sysctls), start: Instant::now(), listener: None, stream: None, rcvbuf: None }
    }

    fn stream(&mut self) -> Result<&mut TcpStream, String> {
        self.stream.as_mut().ok_or_else(|| "no connection".to_string())
    }
}

impl Dut for LinuxDut {
    fn inject(&mut self, ip: &[u8]) {
        self.bed.send_ip(ip);
    }

    fn next(&mut self, within_ms: u64) -> Option<Vec<u8>> {
        self.bed.recv_ip(within_ms)
    }

    fn wait(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn app(&mut self, a: &App, driver: SocketAddr) -> Result<String, String> {
        match a {
            App::RcvBuf(n) => {
                self.rcvbuf = Some(*n);
                Ok("ok".into())
            }
            App::Listen(p) => {
                let fd = dut_socket(&self.bed.dut_ns, SocketAddr::new(DUT_IP.into(), *p), self.rcvbuf);
                // SAFETY: a bound TCP socket.
                let rc = unsafe { libc::listen(fd.as_raw_fd(), 128) };
                assert_eq!(rc, 0, "listen: {}", std::io::Error::last_os_error());
                let l = TcpListener::from(fd);
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                self.listener = Some(l);
                Ok("ok".into())
            }
            App::Accept => {
                let l = self.listener.as_ref().ok_or("not listening")?;
                let end = Instant::now() + Duration::from_millis(500);
                loop {
                    match l.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true).map_err(|e| e.to_string())?;
                            self.stream = Some(s);
                            return Ok("accepted".into());
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok("nothing to accept".into()),
                        Err(e) => return Err(format!("accept: {e}")),
                    }
                }
            }
            App::Connect(p) => {
                let fd = dut_socket(&self.bed.dut_ns, SocketAddr::new(DUT_IP.into(), *p), self.rcvbuf);
                let s = TcpStream::from(fd);
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                let sa = sockaddr(driver);
                // SAFETY: `sa` is a valid sockaddr_in.
                let rc = unsafe {
                    libc::connect(
                        s.as_raw_fd(),
                        (&sa as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as u32,
                    )
                };
                let err = std::io::Error::last_os_error();
                if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
                    return Err(format!("connect: {err}"));
                }
                self.stream = Some(s);
                Ok("connecting".into())
            }
            App::Status => {
                let s = self.stream()?;
                match s.take_error() {
                    Ok(Some(e)) => Ok(format!("failed ({e})")),
                    Err(e) => Ok(format!("failed ({e})")),
                    Ok(None) => match s.peer_addr() {
                        Ok(_) => Ok("connected".into()),
                        Err(_) => Ok("pending".into()),
                    },
                }
            }
            App::Send(n) => {
                let data: Vec<u8> = (0..*n).map(|i| b'A' + (i % 26) as u8).collect();
                match self.stream()?.write(&data) {
                    Ok(k) => Ok(format!("sent {k}")),
                    Err(e) => Err(format!("write: {e}")),
                }
            }
            App::Read => {
                let s = self.stream()?;
                let mut total = 0usize;
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => return Ok(format!("read {total}, eof")),
                        Ok(k) => total += k,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(format!("read {total}")),
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(format!("read {total}, reset")),
                        Err(e) => return Ok(format!("read {total}, error ({e})")),
                    }
                }
            }
            App::ReadN(n) => {
                let s = self.stream()?;
                let mut buf = vec![0u8; *n];
                match s.read(&mut buf) {
                    Ok(k) => Ok(format!("read {k}")),
                    Err(e) => Ok(format!("read error ({e})")),
                }
            }
            App::Shutdown => self.stream()?.shutdown(Shutdown::Write).map(|_| "ok".into()).map_err(|e| e.to_string()),
            App::Close => {
                self.stream.take().ok_or("no connection")?;
                Ok("ok".into())
            }
        }
    }
}
