//! Load generators on kernel sockets (epoll, non-blocking): the `bench connect` and `bench bulk`
//! scenarios. They run in the peer namespace of the bed, against either backend, so a comparison
//! changes the server's stack and nothing else.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// What one connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// `GET /` with `Connection: close`: the server closes first (the short-connection HTTP/1.0
    /// pattern a terminating proxy sees). The response ends at EOF.
    HttpServerCloses,
    /// `GET /` keep-alive: the client closes after reading `Content-Length` bytes of body.
    HttpClientCloses,
    /// `bytes` to the echo server and back, then a `CLOSE` line: the server closes first.
    EchoServerCloses { bytes: usize },
    /// `bytes` to the echo server and back, then the client closes.
    EchoClientCloses { bytes: usize },
}

#[derive(Debug, Clone)]
pub struct ConnectPlan {
    pub target: SocketAddr,
    pub exchange: Exchange,
    pub concurrency: usize,
    pub duration: Duration,
    /// Most connections to start per second (0 = as fast as the loops go).
    pub rate: u64,
    pub timeout: Duration,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// Errors by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Errors {
    pub refused: u64,
    pub reset: u64,
    pub timeout: u64,
    pub short: u64,
    pub other: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.short + self.other
    }
}

#[derive(Debug, Default, Clone)]
pub struct ConnectReport {
    pub completed: u64,
    pub errors: Errors,
    pub elapsed: Duration,
    /// Microseconds from connect() to writable (the handshake as the client sees it).
    pub connect_us: Latency,
    /// Microseconds from the first request byte to the end of the response.
    pub request_us: Latency,
}

/// Latency samples in microseconds, kept in an HDR histogram: memory is fixed (23,552 counters
/// of 4 bytes, 92 KiB, for 1 µs..1 h) however long the run, where a Vec of every sample grew
/// by 4 bytes a connection, and every reported value is within 0.1 % of a recorded one (3
/// significant digits). A u32 counter per bucket saturates at 4 G samples of one value.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u32>);

impl Latency {
    /// Highest trackable value: one hour in microseconds. Longer samples are clamped to it
    /// (no connection timeout is anywhere near).
    const MAX_US: u64 = 3_600_000_000;

    pub fn new() -> Latency {
        // Bounds with max > 2 * min and 3 digits (0..=5 allowed) are always accepted.
        let h = Histogram::new_with_bounds(1, Self::MAX_US, 3).expect("1 µs..1 h at 3 digits is a valid histogram");
        Latency(h)
    }

    /// One sample from the microsecond count of a wall-clock duration.
    pub fn record_duration(&mut self, d: Duration) {
        self.record(d.as_micros().min(u128::from(u64::MAX)) as u64);
    }

    /// One sample in microseconds; out-of-range values count at the nearest bound.
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0..=1), or 0 for no samples. The value is the highest one
    /// the sample's histogram bucket stands for (HdrHistogram's convention), so a percentile
    /// never understates a latency.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        self.0.value_at_quantile(q.clamp(0.0, 1.0))
    }
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

impl From<&[u32]> for Latency {
    fn from(samples: &[u32]) -> Latency {
        let mut l = Latency::new();
        for &s in samples {
            l.record(u64::from(s));
        }
        l
    }
}

impl ConnectReport {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// One `key=value` per line, for `bench compare` and for people.
    pub fn to_kv(&self) -> String {
        let c = &self.connect_us;
        let (c50, c99, c999) = (c.percentile(0.5), c.percentile(0.99), c.percentile(0.999));
        let r = &self.request_us;
        let (r50, r99, r999) = (r.percentile(0.5), r.percentile(0.99), r.percentile(0.999));
        format!(
            "completed={}\nconn_per_sec={:.1}\nelapsed_s={:.3}\nconnect_p50_us={c50}\nconnect_p99_us={c99}\nconnect_p999_us={c999}\n\
             request_p50_us={r50}\nrequest_p99_us={r99}\nrequest_p999_us={r999}\nerr_refused={}\nerr_reset={}\nerr_timeout={}\n\
             err_short={}\nerr_other={}\nerrors={}\n",
            self.completed,
            self.per_second(),
            self.elapsed.as_secs_f64(),
            self.errors.refused,
            self.errors.reset,
            self.errors.timeout,
            self.errors.short,
            self.errors.other,
            self.errors.total(),
        )
    }
}

#[derive(Debug)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
}

struct Conn {
    phase: Phase,
    started: Instant,
    req_started: Instant,
    out: Vec<u8>,
    sent: usize,
    got: usize,
    want: Option<usize>,
    head: Vec<u8>,
}

fn sockaddr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: v.ip().octets() },
                sin6_scope_id: v.scope_id(),
            };
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn request_bytes(x: Exchange) -> Vec<u8> {
    match x {
        Exchange::HttpServerCloses => b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".to_vec(),
        Exchange::HttpClientCloses => b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
        Exchange::EchoServerCloses { bytes } => {
            let mut v: Vec<u8> = (0..bytes).map(|i| b'a' + (i % 26) as u8).collect();
            v.extend_from_slice(b"\nCLOSE\n");
            v
        }
        Exchange::EchoClientCloses { bytes } => (0..bytes).map(|i| b'a' + (i % 26) as u8).collect(),
    }
}

struct Epoll(RawFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 with a valid flag.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }
    /// A socket not added is never polled (its connection would wait for the stall limit),
    /// and one not modified keeps waking the loop for what it no longer waits on: callers
    /// count the error against the connection.
    fn ctl(&self, op: i32, fd: RawFd, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: fd as u64 };
        // SAFETY: valid epoll fd, valid target fd, `ev` lives for the call.
        if unsafe { libc::epoll_ctl(self.0, op, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

/// A non-blocking TCP socket (TCP_NODELAY) with its connect under way. `Err(None)`: no socket
/// could be made; `Err(Some(e))`: the connect failed at once (the socket is closed).
fn connect_nonblocking(
    family: libc::c_int,
    sa: &libc::sockaddr_storage,
    salen: libc::socklen_t,
) -> Result<RawFd, Option<io::Error>> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(None);
    }
    let one: libc::c_int = 1;
    // SAFETY: valid fd and option buffer.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: valid fd and sockaddr of `salen` bytes.
    let r = unsafe { libc::connect(fd, (sa as *const libc::sockaddr_storage).cast(), salen) };
    if r < 0 && errno() != libc::EINPROGRESS {
        let e = io::Error::last_os_error();
        close_fd(fd);
        return Err(Some(e));
    }
    Ok(fd)
}

/// The pending error of a socket (`SO_ERROR`), 0 when there is none.
fn socket_error(fd: RawFd) -> i32 {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd and out-buffers.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut err as *mut libc::c_int).cast(), &mut len) };
    err
}

fn close_fd(fd: RawFd) {
    // SAFETY: the fd is ours and closed once (it is removed from the table first).
    unsafe { libc::close(fd) };
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The bar of `bench connect` on stderr, over the run's duration in milliseconds; hidden when
/// not wanted or when stderr is not a terminal (a log file gets no control characters).
fn progress_bar(wanted: bool, duration: Duration) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(duration.as_millis().min(u128::from(u64::MAX)) as u64),
        ProgressDrawTarget::stderr(),
    );
    // The template is a constant: it parses.
    if let Ok(style) = ProgressStyle::with_template("[{bar:40}] {percent:>3}%  {msg}") {
        bar.set_style(style.progress_chars("#>-"));
    }
    bar
}

/// Runs the connect scenario: `concurrency` connections in flight at all times (or as `rate`
/// allows) for `duration`.
#[allow(clippy::disallowed_methods)] // a real load generator measures wall-clock time
pub fn run_connect(plan: &ConnectPlan) -> io::Result<ConnectReport> {
    let ep = Epoll::new()?;
    let (sa, salen) = sockaddr(&plan.target);
    let family = if plan.target.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let request = request_bytes(plan.exchange);
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut rep = ConnectReport::default();
    let start = Instant::now();
    let mut started = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = vec![0u8; 65536];
    let bar = progress_bar(plan.progress, plan.duration);
    let mut last_bar = start;
    loop {
        let now = Instant::now();
        // indicatif limits its redraws itself; this limits the message formatting in the loop.
        if !bar.is_hidden() && now.duration_since(last_bar) >= Duration::from_millis(200) {
            last_bar = now;
            let run = now.duration_since(start);
            bar.set_position(run.min(plan.duration).as_millis().min(u128::from(u64::MAX)) as u64);
            bar.set_message(format!(
                "{} done, {} errors, {:.0} conn/s",
                rep.completed,
                rep.errors.total(),
                rep.completed as f64 / run.as_secs_f64().max(1e-9)
            ));
        }
        let running = now.duration_since(start) < plan.duration;
        // Keep `concurrency` connections in flight.
        while running && conns.len() < plan.concurrency {
            if plan.rate > 0 && started as f64 >= now.duration_since(start).as_secs_f64() * plan.rate as f64 {
                break;
            }
            let fd = match connect_nonblocking(family, &sa, salen) {
                Ok(fd) => fd,
                Err(Some(e)) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                    rep.errors.refused += 1;
                    continue;
                }
                Err(Some(_)) => {
                    rep.errors.other += 1;
                    continue;
                }
                Err(None) => {
                    rep.errors.other += 1;
                    break;
                }
            };
            if ep.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLOUT | libc::EPOLLIN) as u32).is_err() {
                close_fd(fd);
                rep.errors.other += 1;
                break;
            }
            started += 1;
            conns.insert(
                fd,
                Conn {
                    phase: Phase::Connecting,
                    started: now,
                    req_started: now,
                    out: request.clone(),
                    sent: 0,
                    got: 0,
                    want: match plan.exchange {
                        Exchange::EchoClientCloses { .. } | Exchange::EchoServerCloses { .. } => Some(request.len()),
                        _ => None,
                    },
                    head: Vec::new(),
                },
            );
        }
        if !running && conns.is_empty() {
            break;
        }
        if !running && now.duration_since(start) > plan.duration + plan.timeout {
            // Give up on stragglers.
            for (fd, _) in conns.drain() {
                rep.errors.timeout += 1;
                close_fd(fd);
            }
            break;
        }
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 5) };
        let now = Instant::now();
        for ev in events.iter().take(n.max(0) as usize) {
            let fd = ev.u64 as RawFd;
            let flags = ev.events;
            let Some(c) = conns.get_mut(&fd) else { continue };
            let outcome = step(c, fd, flags, &mut buf, plan.exchange, now, &mut rep);
            if let Some(result) = outcome {
                conns.remove(&fd);
                let _ = ep.ctl(libc::EPOLL_CTL_DEL, fd, 0); // closed next; close removes it anyway
                close_fd(fd);
                if let Err(kind) = result {
                    match kind {
                        ErrKind::Refused => rep.errors.refused += 1,
                        ErrKind::Reset => rep.errors.reset += 1,
                        ErrKind::Short => rep.errors.short += 1,
                        ErrKind::Other => rep.errors.other += 1,
                    }
                } else {
                    rep.completed += 1;
                }
            }
        }
        // Time out connections that take too long.
        let expired: Vec<RawFd> =
            conns.iter().filter(|(_, c)| now.duration_since(c.started) > plan.timeout).map(|(fd, _)| *fd).collect();
        for fd in expired {
            conns.remove(&fd);
            let _ = ep.ctl(libc::EPOLL_CTL_DEL, fd, 0); // closed next; close removes it anyway
            close_fd(fd);
            rep.errors.timeout += 1;
        }
    }
    // The last figures, with the stragglers counted.
    bar.finish_with_message(format!("{} done, {} errors", rep.completed, rep.errors.total()));
    // Rates are over the window in which connections were started.
    rep.elapsed = plan.duration.min(start.elapsed());
    Ok(rep)
}

enum ErrKind {
    Refused,
    Reset,
    Short,
    Other,
}

/// Advances one connection; `Some` when it is finished (well or not).
fn step(
    c: &mut Conn,
    fd: RawFd,
    flags: u32,
    buf: &mut [u8],
    x: Exchange,
    now: Instant,
    rep: &mut ConnectReport,
) -> Option<Result<(), ErrKind>> {
    if let Phase::Connecting = c.phase {
        if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
            let err = socket_error(fd);
            return Some(Err(if err == libc::ECONNREFUSED { ErrKind::Refused } else { ErrKind::Other }));
        }
        if flags & libc::EPOLLOUT as u32 == 0 {
            return None;
        }
        rep.connect_us.record_duration(now.duration_since(c.started));
        c.phase = Phase::Sending;
        c.req_started = now;
    }
    if let Phase::Sending = c.phase {
        while c.sent < c.out.len() {
            let rest = &c.out[c.sent..];
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n < 0 {
                let e = errno();
                if e == libc::EAGAIN {
                    break;
                }
                return Some(Err(if e == libc::ECONNRESET || e == libc::EPIPE {
                    ErrKind::Reset
                } else {
                    ErrKind::Other
                }));
            }
            c.sent += n as usize;
        }
        if c.sent == c.out.len() {
            c.phase = Phase::Receiving;
        }
    }
    // Receive whatever is there (echo data may come back while we still send).
    loop {
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN {
                return None;
            }
            return Some(Err(if e == libc::ECONNRESET { ErrKind::Reset } else { ErrKind::Other }));
        }
        let n = n as usize;
        if n == 0 {
            // EOF: the server closed.
            let done = match x {
                Exchange::HttpServerCloses => c.got > 0 && c.head.windows(4).any(|w| w == b"\r\n\r\n"),
                Exchange::EchoServerCloses { .. } => c.want.is_some_and(|w| c.got >= w),
                _ => false,
            };
            if done {
                rep.request_us.record_duration(now.duration_since(c.req_started));
                return Some(Ok(()));
            }
            return Some(Err(ErrKind::Short));
        }
        c.got += n;
        if c.head.len() < 1024 {
            c.head.extend_from_slice(&buf[..n.min(1024)]);
        }
        if matches!(x, Exchange::HttpClientCloses) && c.want.is_none() {
            c.want = http_total_len(&c.head);
        }
        let complete = c.want.is_some_and(|w| c.got >= w);
        if complete && matches!(x, Exchange::HttpClientCloses | Exchange::EchoClientCloses { .. }) {
            rep.request_us.record_duration(now.duration_since(c.req_started));
            return Some(Ok(()));
        }
    }
}

/// Head length + Content-Length of an HTTP response head, once the head is complete.
fn http_total_len(head: &[u8]) -> Option<usize> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&head[..end]);
    let cl = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    })?;
    Some(end + cl)
}

/// One long transfer to a discard server for `duration`: bytes per second.
#[allow(clippy::disallowed_methods)] // wall-clock measurement
pub fn run_bulk(target: SocketAddr, duration: Duration, streams: usize) -> io::Result<(u64, Duration)> {
    use std::io::Write;
    let start = Instant::now();
    let mut hs = Vec::new();
    for _ in 0..streams.max(1) {
        hs.push(std::thread::spawn(move || -> io::Result<u64> {
            let mut s = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            let chunk = vec![0x5au8; 256 * 1024];
            let mut sent = 0u64;
            while start.elapsed() < duration {
                s.write_all(&chunk)?;
                sent += chunk.len() as u64;
            }
            s.shutdown(std::net::Shutdown::Write)?;
            let mut sink = [0u8; 16];
            let _ = std::io::Read::read(&mut s, &mut sink);
            Ok(sent)
        }));
    }
    let mut total = 0;
    for h in hs {
        total += h.join().map_err(|_| io::Error::other("bulk thread panicked"))??;
    }
    Ok((total, start.elapsed()))
}

/// What [`run_echo_check`] saw: connections that returned every byte intact, and why the
/// others did not.
#[derive(Debug, Default)]
pub struct EchoCheckReport {
    pub connections: usize,
    /// Connections whose echo came back complete and equal to what was sent, then EOF.
    pub verified: usize,
    /// Echoed bytes that matched, over all connections.
    pub bytes: u64,
    /// Connections whose echo differed from what was sent (first differing byte).
    pub mismatches: usize,
    /// Connect, read or write errors, timeouts, short echoes: one line each.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl EchoCheckReport {
    /// Verified echoed bytes per second, in Mbit/s: the goodput of one direction.
    pub fn goodput_mbit(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }

    pub fn to_kv(&self) -> String {
        format!(
            "connections={}\nverified={}\nbytes={}\nmismatches={}\nerrors={}\nelapsed_s={:.3}\ngoodput_mbit_per_sec={:.1}\n",
            self.connections,
            self.verified,
            self.bytes,
            self.mismatches,
            self.errors.len(),
            self.elapsed.as_secs_f64(),
            self.goodput_mbit()
        )
    }
}

/// Byte `off` of connection `conn`'s stream: a hash of both, so a segment delivered at the wrong
/// offset, or another connection's data, does not compare equal. The top bit is always set: the
/// stream never holds a LF, so it cannot form the echo app's `CLOSE` line.
pub fn echo_pattern(conn: u64, off: u64) -> u8 {
    let h = (off ^ (conn << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    0x80 | (h >> 57) as u8
}

/// `connections` concurrent connections each send `bytes` of [`echo_pattern`] to an echo server,
/// half-close, and read the echo back to EOF, checking every byte. One thread and non-blocking
/// sockets under epoll: a thread pair per connection (as this once was) left 200 threads and
/// the client's own softirq work on one core, and a reader that waited for the scheduler held
/// its ACKs for 200 ms and more, which measured the scheduler rather than the server's loss
/// recovery. A connection that makes no progress (nothing written or read) for `stall` fails.
#[allow(clippy::disallowed_methods)] // wall-clock measurement
pub fn run_echo_check(target: SocketAddr, connections: usize, bytes: u64, stall: Duration) -> EchoCheckReport {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    /// One connection's progress.
    struct Echo {
        s: std::net::TcpStream,
        conn: u64,
        connected: bool,
        sent: u64,
        /// The chunk being written (the stream from `sent - pos` on) and how much of it went.
        chunk: Vec<u8>,
        pos: usize,
        shut: bool,
        got: u64,
        last: Instant,
    }
    let start = Instant::now();
    let mut rep = EchoCheckReport { connections, ..EchoCheckReport::default() };
    let ep = match Epoll::new() {
        Ok(ep) => ep,
        Err(e) => {
            rep.errors.push(format!("epoll: {e}"));
            rep.elapsed = start.elapsed();
            return rep;
        }
    };
    let (sa, salen) = sockaddr(&target);
    let family = if target.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let mut conns: HashMap<RawFd, Echo> = HashMap::new();
    for conn in 0..connections as u64 {
        match connect_nonblocking(family, &sa, salen) {
            Ok(fd) => {
                // SAFETY: `fd` is a socket we just made and own; the stream closes it.
                let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
                if let Err(e) = ep.ctl(libc::EPOLL_CTL_ADD, fd, (libc::EPOLLIN | libc::EPOLLOUT) as u32) {
                    rep.errors.push(format!("conn {conn}: epoll_ctl: {e}"));
                    continue;
                }
                conns.insert(
                    fd,
                    Echo {
                        s,
                        conn,
                        connected: false,
                        sent: 0,
                        chunk: Vec::new(),
                        pos: 0,
                        shut: false,
                        got: 0,
                        last: start,
                    },
                );
            }
            Err(e) => rep.errors.push(format!("conn {conn}: connect: {}", e.unwrap_or_else(io::Error::last_os_error))),
        }
    }
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !conns.is_empty() {
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe { libc::epoll_wait(ep.0, events.as_mut_ptr(), events.len() as i32, 100) };
        let now = Instant::now();
        for ev in events.iter().take(n.max(0) as usize) {
            let (fd, flags) = (ev.u64 as RawFd, ev.events);
            let Some(e) = conns.get_mut(&fd) else { continue };
            let mut outcome: Option<Result<(), (bool, String)>> = None;
            let conn = e.conn;
            let err = |what: &str, x: io::Error| Some(Err((false, format!("conn {conn}: {what}: {x}"))));
            if !e.connected {
                if flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                    outcome = err("connect", io::Error::from_raw_os_error(socket_error(fd)));
                } else if flags & libc::EPOLLOUT as u32 != 0 {
                    e.connected = true;
                    e.last = now;
                }
            }
            if e.connected && outcome.is_none() {
                while e.sent < bytes && outcome.is_none() {
                    if e.pos == e.chunk.len() {
                        // The next 64 KiB of the stream, made once however many writes it takes.
                        let len = (bytes - e.sent).min(64 * 1024) as usize;
                        let from = e.sent;
                        e.chunk.clear();
                        e.chunk.extend((0..len as u64).map(|i| echo_pattern(conn, from + i)));
                        e.pos = 0;
                    }
                    match e.s.write(&e.chunk[e.pos..]) {
                        Ok(k) => {
                            e.pos += k;
                            e.sent += k as u64;
                            e.last = now;
                        }
                        Err(x) if x.kind() == io::ErrorKind::WouldBlock => break,
                        Err(x) if x.kind() == io::ErrorKind::Interrupted => {}
                        Err(x) => outcome = err("write", x),
                    }
                }
                if e.sent == bytes && !e.shut && outcome.is_none() {
                    match e.s.shutdown(std::net::Shutdown::Write) {
                        Ok(()) => {
                            e.shut = true;
                            if let Err(x) = ep.ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32) {
                                outcome = err("epoll_ctl", x);
                            }
                        }
                        Err(x) => outcome = err("shutdown", x),
                    }
                }
                while outcome.is_none() {
                    match e.s.read(&mut rbuf) {
                        Ok(0) if e.got == bytes => outcome = Some(Ok(())),
                        Ok(0) => {
                            outcome =
                                Some(Err((false, format!("conn {conn}: echo ended after {} of {bytes} bytes", e.got))))
                        }
                        Ok(k) => {
                            if let Some(i) = (0..k).find(|&i| rbuf[i] != echo_pattern(conn, e.got + i as u64)) {
                                outcome = Some(Err((true, format!("conn {conn}: byte {} differs", e.got + i as u64))));
                            }
                            e.got += k as u64;
                            e.last = now;
                        }
                        Err(x) if x.kind() == io::ErrorKind::WouldBlock => break,
                        Err(x) if x.kind() == io::ErrorKind::Interrupted => {}
                        Err(x) => outcome = err("read", x),
                    }
                }
            }
            match outcome {
                None => {}
                Some(Ok(())) => {
                    rep.verified += 1;
                    rep.bytes += bytes;
                    conns.remove(&fd);
                }
                Some(Err((mismatch, why))) => {
                    rep.mismatches += usize::from(mismatch);
                    rep.errors.push(why);
                    conns.remove(&fd);
                }
            }
        }
        conns.retain(|_, e| {
            let stalled = now.duration_since(e.last) > stall;
            if stalled {
                rep.errors
                    .push(format!("conn {}: no progress for {stall:?} ({} of {bytes} bytes back)", e.conn, e.got));
            }
            !stalled
        });
    }
    rep.elapsed = start.elapsed();
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within HdrHistogram's 3 significant digits of `want`.
    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) * 1000 <= want
    }

    #[test]
    fn no_samples_report_zero() {
        let l = Latency::new();
        assert!(l.is_empty());
        assert_eq!((l.percentile(0.5), l.percentile(0.99), l.percentile(0.999)), (0, 0, 0));
    }

    /// Below 2048 the histogram is exact: one value is every percentile.
    #[test]
    fn constant_samples_are_every_percentile() {
        let mut l = Latency::new();
        for _ in 0..10_000 {
            l.record(250);
        }
        assert_eq!((l.percentile(0.5), l.percentile(0.99), l.percentile(0.999)), (250, 250, 250));
        assert_eq!(l.len(), 10_000);
    }

    /// 1..=100,000 µs once each: the q-th percentile is q * 100,000, to 3 significant digits.
    #[test]
    fn uniform_samples_give_their_quantiles() {
        let mut l = Latency::new();
        for us in 1..=100_000u64 {
            l.record(us);
        }
        for (q, want) in [(0.5, 50_000), (0.99, 99_000), (0.999, 99_900), (1.0, 100_000)] {
            let got = l.percentile(q);
            assert!(near(got, want), "p{q}: {got} vs {want}");
        }
    }

    /// A fast majority and a slow tail: p50 and p99 sit in the fast mode, p99.9 in the tail.
    #[test]
    fn bimodal_samples_put_the_tail_above_p99() {
        let mut l = Latency::new();
        for _ in 0..9_950 {
            l.record(120);
        }
        for _ in 0..50 {
            l.record(40_000);
        }
        assert_eq!(l.percentile(0.5), 120);
        assert_eq!(l.percentile(0.99), 120);
        assert!(near(l.percentile(0.999), 40_000), "{}", l.percentile(0.999));
    }

    /// Zero and values past an hour are clamped, not lost: the count stays right.
    #[test]
    fn out_of_range_samples_are_clamped() {
        let mut l = Latency::new();
        l.record(0);
        l.record(u64::MAX);
        l.record_duration(Duration::from_secs(10 * 3600));
        assert_eq!(l.len(), 3);
        assert!(l.percentile(1.0) >= Latency::MAX_US);
        assert!(l.percentile(0.0) <= 1);
    }

    #[test]
    fn from_u32_samples_matches_recording_them() {
        let v: Vec<u32> = (1..=1000).collect();
        let l = Latency::from(v.as_slice());
        assert_eq!(l.len(), 1000);
        assert_eq!(l.percentile(0.5), 500);
        assert_eq!(l.percentile(0.99), 990);
    }

    /// `--kv` output and a stderr that is a file or a pipe get no bar (no control characters).
    #[test]
    fn progress_bar_hidden_unless_wanted_on_a_terminal() {
        assert!(progress_bar(false, Duration::from_secs(1)).is_hidden());
        if !std::io::stderr().is_terminal() {
            assert!(progress_bar(true, Duration::from_secs(1)).is_hidden());
        }
    }

    /// The echo stream never contains a LF (no `CLOSE` line) and differs between connections
    /// and offsets.
    #[test]
    fn echo_pattern_has_no_line_feed_and_depends_on_both_inputs() {
        let a: Vec<u8> = (0..4096).map(|o| echo_pattern(1, o)).collect();
        let b: Vec<u8> = (0..4096).map(|o| echo_pattern(2, o)).collect();
        let shifted: Vec<u8> = (1..4097).map(|o| echo_pattern(1, o)).collect();
        assert!(!a.contains(&b'\n'));
        assert_ne!(a, b);
        assert_ne!(a, shifted);
    }

    #[test]
    fn kv_keeps_its_field_names() {
        let mut r = ConnectReport { completed: 3, elapsed: Duration::from_secs(1), ..ConnectReport::default() };
        r.connect_us.record(100);
        r.request_us.record(200);
        let kv = r.to_kv();
        for k in [
            "completed=3",
            "connect_p50_us=100",
            "connect_p99_us=100",
            "connect_p999_us=100",
            "request_p50_us=200",
            "request_p99_us=200",
            "request_p999_us=200",
            "errors=0",
        ] {
            assert!(kv.lines().any(|l| l == k), "{k} in {kv}");
        }
    }

    /// A loopback echo server for `run_echo_check`: echoes each connection until its EOF,
    /// flipping the byte at `flip` (counted over the connection) when given.
    fn echo_server(flip: Option<u64>) -> SocketAddr {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut off = 0u64;
                    loop {
                        let n = match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if let Some(f) = flip.filter(|f| (off..off + n as u64).contains(f)) {
                            buf[(f - off) as usize] ^= 1;
                        }
                        off += n as u64;
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn echo_check_verifies_every_connection_on_one_thread() {
        let r = run_echo_check(echo_server(None), 8, 300_000, Duration::from_secs(20));
        assert_eq!((r.verified, r.mismatches, r.errors.len()), (8, 0, 0), "{:?}", r.errors);
        assert_eq!(r.bytes, 8 * 300_000);
    }

    #[test]
    fn echo_check_reports_a_changed_byte() {
        let r = run_echo_check(echo_server(Some(123_457)), 2, 200_000, Duration::from_secs(20));
        assert_eq!((r.verified, r.mismatches), (0, 2), "{:?}", r.errors);
        assert!(r.errors.iter().all(|e| e.contains("byte 123457 differs")), "{:?}", r.errors);
    }

    #[test]
    fn echo_check_reports_a_refused_connect() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let r = run_echo_check(addr, 2, 1000, Duration::from_secs(5));
        assert_eq!((r.verified, r.errors.len()), (0, 2), "{:?}", r.errors);
    }
}
