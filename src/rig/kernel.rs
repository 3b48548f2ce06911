//! Kernel-socket counterparts: a load client (what `demo` and the interop tests drive the stack
//! with, from the Linux kernel's own TCP) and a kernel-socket server for the bundled apps (the
//! baseline and the fallback on hosts without XDP).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

/// Who closes first in a client exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// The client shuts down its side after reading the echo; the server follows.
    Client,
    /// The client sends a `CLOSE` line; the echo server closes first.
    Server,
}

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub target: SocketAddr,
    pub connections: usize,
    pub concurrency: usize,
    /// Bytes each connection sends (and expects echoed).
    pub bytes: usize,
    pub closer: Closer,
    pub timeout: StdDuration,
}

#[derive(Debug, Default)]
pub struct ClientReport {
    pub ok: u64,
    pub connect_errors: u64,
    pub io_errors: u64,
    pub mismatches: u64,
    /// The first I/O error, as "call: error" (e.g. a reset on a read), for the report.
    pub first_io_error: Option<String>,
    pub bytes_each_way: u64,
    pub elapsed: StdDuration,
}

/// The pattern connection `conn` sends: position and connection mixed, so a misplaced or
/// foreign byte is caught (xskxceiver-style `seq << 16 | i`).
pub fn pattern_byte(conn: usize, i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 11) as u8 ^ (conn as u8).wrapping_mul(31)
}

/// Why one exchange failed.
enum Fail {
    Connect,
    /// The call and the error ("read: Connection reset by peer"), for the report.
    Io(String),
    /// The bytes that came back were not the bytes sent.
    Mismatch,
}

fn io_fail(call: &'static str) -> impl Fn(std::io::Error) -> Fail {
    move |e| Fail::Io(format!("{call}: {e}"))
}

fn one_echo(plan: &ClientPlan, conn: usize) -> Result<(), Fail> {
    let mut s = TcpStream::connect_timeout(&plan.target, plan.timeout).map_err(|_| Fail::Connect)?;
    s.set_read_timeout(Some(plan.timeout)).map_err(io_fail("setsockopt"))?;
    s.set_write_timeout(Some(plan.timeout)).map_err(io_fail("setsockopt"))?;
    s.set_nodelay(true).map_err(io_fail("setsockopt"))?;
    let mut payload: Vec<u8> = (0..plan.bytes).map(|i| pattern_byte(conn, i)).collect();
    if plan.closer == Closer::Server {
        payload.extend_from_slice(b"\nCLOSE\n");
    }
    let mut reader = s.try_clone().map_err(io_fail("dup"))?;
    let expect = payload.len();
    let rd = std::thread::spawn(move || -> Result<Vec<u8>, Fail> {
        let mut got = Vec::with_capacity(expect);
        let mut buf = [0u8; 65536];
        while got.len() < expect {
            let n = reader.read(&mut buf).map_err(io_fail("read"))?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(got)
    });
    s.write_all(&payload).map_err(io_fail("write"))?;
    let got = rd.join().map_err(|_| Fail::Io("the reader thread panicked".to_string()))??;
    if got != payload {
        return Err(Fail::Mismatch);
    }
    if plan.closer == Closer::Client {
        // The server closes when it sees our FIN.
        s.shutdown(Shutdown::Write).map_err(io_fail("shutdown"))?;
    }
    // Either way the server's FIN comes next: read to EOF.
    let mut rest = [0u8; 16];
    let n = s.read(&mut rest).map_err(io_fail("read to EOF"))?;
    if n != 0 {
        return Err(Fail::Mismatch);
    }
    Ok(())
}

/// Runs `plan.connections` echo exchanges over `plan.concurrency` threads.
#[allow(clippy::disallowed_methods)] // wall-clock timing of a real run
pub fn run_echo_clients(plan: &ClientPlan) -> ClientReport {
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let cerr = Arc::new(AtomicU64::new(0));
    let ioerr = Arc::new(AtomicU64::new(0));
    let mism = Arc::new(AtomicU64::new(0));
    let first_io: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let start = std::time::Instant::now();
    let mut hs = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (next, ok, cerr, ioerr, mism, plan, first_io) =
            (next.clone(), ok.clone(), cerr.clone(), ioerr.clone(), mism.clone(), plan.clone(), first_io.clone());
        hs.push(std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize;
            if i >= plan.connections {
                return;
            }
            match one_echo(&plan, i) {
                Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                Err(Fail::Connect) => cerr.fetch_add(1, Ordering::Relaxed),
                Err(Fail::Mismatch) => mism.fetch_add(1, Ordering::Relaxed),
                Err(Fail::Io(why)) => {
                    if let Ok(mut f) = first_io.lock() {
                        f.get_or_insert(why);
                    }
                    ioerr.fetch_add(1, Ordering::Relaxed)
                }
            };
        }));
    }
    for h in hs {
        let _ = h.join();
    }
    ClientReport {
        ok: ok.load(Ordering::Relaxed),
        connect_errors: cerr.load(Ordering::Relaxed),
        io_errors: ioerr.load(Ordering::Relaxed),
        mismatches: mism.load(Ordering::Relaxed),
        first_io_error: first_io.lock().ok().and_then(|f| f.clone()),
        bytes_each_way: (plan.bytes * plan.connections) as u64,
        elapsed: start.elapsed(),
    }
}

/// A kernel-socket echo server (one thread per connection): the baseline for comparisons.
pub fn serve_echo_kernel(listener: TcpListener, stop: impl Fn() -> bool + Send + 'static) {
    listener.set_nonblocking(true).ok();
    while !stop() {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false).ok();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(_) => std::thread::sleep(StdDuration::from_millis(1)),
        }
    }
}

/// A bounded SYN flood from spoofed sources in 198.18.0.0/15 (RFC 2544's benchmarking range, so
/// no packet ever names a real host), through a raw IPv4 socket.
/// What a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FloodKind {
    /// SYNs with Linux-like options.
    #[default]
    Syn,
    /// Bare ACKs with random sequence and acknowledgment numbers.
    Ack,
    /// RSTs with random sequence numbers.
    Rst,
}

#[derive(Debug, Clone)]
pub struct FloodPlan {
    pub target: std::net::SocketAddrV4,
    pub kind: FloodKind,
    /// Stop after this many segments...
    pub count: u64,
    /// ... or after this long, whichever comes first.
    pub duration: StdDuration,
    /// Segments per second; 0 = as fast as possible.
    pub rate: u64,
    pub seed: u64,
}

#[derive(Debug, Default, Clone)]
pub struct FloodReport {
    pub sent: u64,
    pub send_errors: u64,
    pub elapsed: StdDuration,
}

/// Sends the flood. Needs CAP_NET_RAW.
#[allow(clippy::disallowed_methods)] // wall-clock pacing of a real run
pub fn syn_flood(plan: &FloodPlan) -> std::io::Result<FloodReport> {
    use crate::tcp::emit::{emit, OutSegment};
    use crate::tcp::FourTuple;
    use crate::wire::{SeqNum, TcpFlags, TcpOptions};
    use std::net::{Ipv4Addr, SocketAddr};
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; OwnedFd closes it on drop.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let dst = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from(*plan.target.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let mut rng = plan.seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let start = std::time::Instant::now();
    let mut rep = FloodReport::default();
    let mut pkts: Vec<Vec<u8>> = Vec::with_capacity(1);
    let opts = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..TcpOptions::default() };
    while rep.sent < plan.count && start.elapsed() < plan.duration {
        if plan.rate > 0 {
            let elapsed = start.elapsed();
            if rep.sent >= (elapsed.as_secs_f64() * plan.rate as f64) as u64 {
                // Sleep, not spin, until the next SYN is due: on the bed the generator shares
                // its core with others, and a paced flood must cost what its rate costs. A
                // sleep overshoots by the timer slack; the SYNs due meanwhile go out together
                // (a few at the benches' rates).
                let next = StdDuration::from_secs_f64((rep.sent + 1) as f64 / plan.rate as f64);
                std::thread::sleep(next.saturating_sub(elapsed));
                continue;
            }
        }
        let r = next();
        // 198.18.0.0/15 minus the bed's own 198.18.0.0/24.
        let host = 256 + (r as u32 % (131_072 - 256));
        let src = Ipv4Addr::from(0xc612_0000u32 + host);
        let sport = 1024 + ((r >> 20) as u16 % 64_000);
        let t = FourTuple::new(SocketAddr::new(src.into(), sport), SocketAddr::V4(plan.target));
        let seq = SeqNum((r >> 32) as u32);
        let seg = match plan.kind {
            FloodKind::Syn => OutSegment { options: opts, ..OutSegment::control(seq, SeqNum(0), TcpFlags::SYN, 64240) },
            // ACKs and RSTs from tuples that match nothing: the commonest floods after SYN.
            FloodKind::Ack => OutSegment::control(seq, SeqNum(next() as u32), TcpFlags::ACK, 64240),
            FloodKind::Rst => OutSegment::control(seq, SeqNum(0), TcpFlags::RST, 0),
        };
        pkts.clear();
        emit(&mut pkts, &t, &seg, 64);
        let Some(p) = pkts.first() else { continue };
        // SAFETY: `p` is a valid buffer of `p.len()` bytes and `dst` a valid sockaddr_in.
        let n = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(&owned),
                p.as_ptr().cast(),
                p.len(),
                0,
                (&dst as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            rep.send_errors += 1;
            if rep.send_errors > 1000 && rep.sent == 0 {
                return Err(std::io::Error::last_os_error());
            }
            std::thread::yield_now();
        } else {
            rep.sent += 1;
        }
    }
    rep.elapsed = start.elapsed();
    Ok(rep)
}
