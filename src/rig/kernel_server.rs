//! A kernel-socket server for the bundled applications: `echo`, `http` and `discard` with the
//! behaviour of `crate::app`, served by the Linux TCP stack instead of ours, so a comparison on
//! the same test bed changes the stack and nothing else.
//!
//! Shape (the same share-nothing layout as the AF_XDP engine): one thread per configured core,
//! pinned, each with its own epoll instance and its own listening socket per port. Every
//! listening socket is bound with `SO_REUSEPORT`, so the kernel hashes each incoming connection
//! to one thread's socket and no two threads ever touch one connection. Per-connection state
//! lives in a hashbrown map keyed by file descriptor.
//!
//! The applications' byte logic is not written here: `app::echo::EchoSession` and
//! `app::http::HttpSession` are the same state machines the stack's `echo` and `http` handlers
//! use (the `CLOSE` line, pipelining, keep-alive and `Connection: close`, the 431 on a head over
//! 16 KiB, the output high-water mark). This module owns the sockets around them: it reads into
//! one buffer per thread, feeds the session, and writes what the session owes (HTTP responses
//! with one `sendmsg` per batch, straight from the shared response bytes). `discard` reads and
//! drops.
//!
//! "Close" is `close(2)`: a FIN after the queued data, or a RST if unread data remains, which is
//! what `Conn::close` does in our stack.
//!
//! Accepted sockets get `TCP_NODELAY`, because our stack sends segments as soon as the app
//! writes (it has no Nagle algorithm); with Nagle on, the baseline would measure a different
//! policy.

use crate::app::echo::EchoSession;
use crate::app::http::{HttpSession, Responses};
use crate::app::AppKind;
use hashbrown::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// What to serve, where, and on how many threads.
#[derive(Debug, Clone)]
pub struct KernelServeConfig {
    /// Local address to listen on (IPv4 or IPv6; `0.0.0.0` / `::` for all).
    pub addr: IpAddr,
    /// One application per port. Port 0 is refused: with `SO_REUSEPORT` every thread binds its
    /// own socket, and each would get a different ephemeral port.
    pub apps: Vec<(u16, AppKind)>,
    /// Worker threads; each gets its own listening socket per port and its own epoll.
    pub threads: usize,
    /// Core to pin thread `i` to: `cores[i]`, or `i` when `cores` has no entry `i`.
    pub cores: Vec<usize>,
    /// `listen(2)` backlog of each socket (the kernel caps it at `net.core.somaxconn`).
    pub backlog: i32,
    /// Congestion control of the listening sockets (`TCP_CONGESTION`, which accepted
    /// connections inherit), e.g. "cubic"; `None` keeps the namespace's
    /// `net.ipv4.tcp_congestion_control`.
    pub congestion: Option<&'static str>,
}

/// Totals over all threads of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelServeStats {
    /// Connections accepted and registered.
    pub accepted: u64,
    /// Connections the server closed before stopping: by the app rules or after a socket error.
    pub closed: u64,
    /// Of `closed`, those that ended in a socket error (reset by the peer, ...).
    pub errors: u64,
    /// Connections still open when the stop flag was seen; they are closed then.
    pub open_at_stop: u64,
    /// `accept4`/`epoll_ctl` failures on new connections (EMFILE, ENOBUFS, ...).
    pub accept_errors: u64,
    /// Payload bytes read from / written to connections.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl KernelServeStats {
    fn add(&mut self, o: &KernelServeStats) {
        self.accepted += o.accepted;
        self.closed += o.closed;
        self.errors += o.errors;
        self.open_at_stop += o.open_at_stop;
        self.accept_errors += o.accept_errors;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }
}

/// Serves `cfg` until `stop` is set, then closes everything and returns the totals.
///
/// Binding happens before any thread starts, so a bad address or a port in use is an error
/// from here; after that, an error in one thread stops the others and is returned. Use
/// [`KernelServer::bind`] + [`KernelServer::serve`] to know when the sockets are listening.
pub fn run(cfg: &KernelServeConfig, stop: &AtomicBool) -> io::Result<KernelServeStats> {
    KernelServer::bind(cfg)?.serve(stop)
}

/// A bound, listening server whose threads have not started yet.
pub struct KernelServer {
    apps: Vec<App>,
    workers: Vec<WorkerSetup>,
}

/// One thread's sockets, made on the calling thread so setup errors surface before serving.
struct WorkerSetup {
    core: usize,
    epoll: OwnedFd,
    /// Listening sockets and the index of their app in `KernelServer::apps`; the epoll data of
    /// listener `i` is `LISTENER_TAG | i`.
    listeners: Vec<(OwnedFd, usize)>,
}

impl KernelServer {
    /// Creates every thread's listening sockets (`SO_REUSEADDR` + `SO_REUSEPORT`, non-blocking)
    /// and epoll instance. Connections that arrive before [`serve`](Self::serve) wait in the
    /// accept queues. Does not start any thread.
    pub fn bind(cfg: &KernelServeConfig) -> io::Result<KernelServer> {
        validate(cfg)?;
        let apps: Vec<App> = cfg.apps.iter().map(|(_, k)| App::new(k)).collect();
        let mut workers = Vec::with_capacity(cfg.threads);
        for i in 0..cfg.threads {
            let epoll = epoll_create()?;
            let mut listeners = Vec::with_capacity(cfg.apps.len());
            for (idx, (port, _)) in cfg.apps.iter().enumerate() {
                let addr = SocketAddr::new(cfg.addr, *port);
                let fd = listen_socket(addr, cfg.backlog).map_err(|e| annotate(e, &format!("listen on {addr}")))?;
                if let Some(cc) = cfg.congestion {
                    set_congestion(&fd, cc).map_err(|e| annotate(e, &format!("TCP_CONGESTION {cc}")))?;
                }
                epoll_ctl(&epoll, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), EV_IN, LISTENER_TAG | idx as u64)?;
                listeners.push((fd, idx));
            }
            workers.push(WorkerSetup { core: cfg.cores.get(i).copied().unwrap_or(i), epoll, listeners });
        }
        Ok(KernelServer { apps, workers })
    }

    /// Runs one pinned thread per configured thread until `stop` is set (noticed within
    /// [`POLL_TIMEOUT_MS`]), then closes every connection and socket and returns the totals.
    pub fn serve(self, stop: &AtomicBool) -> io::Result<KernelServeStats> {
        let KernelServer { apps, workers } = self;
        let failed = AtomicBool::new(false);
        let (apps, failed) = (&apps, &failed);
        std::thread::scope(|s| {
            let mut handles = Vec::with_capacity(workers.len());
            for (i, setup) in workers.into_iter().enumerate() {
                let h = std::thread::Builder::new().name(format!("kserve-{i}")).spawn_scoped(s, move || {
                    let r = worker_main(setup, apps, stop, failed);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                });
                match h {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        // Threads already started stop on `failed`; the scope joins them.
                        failed.store(true, Ordering::Relaxed);
                        return Err(annotate(e, "spawn server thread"));
                    }
                }
            }
            let mut total = KernelServeStats::default();
            let mut first_err = None;
            for h in handles {
                match h.join() {
                    Ok(Ok(st)) => total.add(&st),
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(io::Error::other("kernel server thread panicked"));
                    }
                }
            }
            first_err.map_or(Ok(total), Err)
        })
    }
}

fn validate(cfg: &KernelServeConfig) -> io::Result<()> {
    let bad = |m: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, m.to_string()));
    if cfg.threads == 0 {
        return bad("kernel server: threads must be at least 1");
    }
    if cfg.apps.is_empty() {
        return bad("kernel server: no application configured");
    }
    for (i, (port, _)) in cfg.apps.iter().enumerate() {
        if *port == 0 {
            return bad("kernel server: port 0 cannot be shared across threads; pick a port");
        }
        if cfg.apps.iter().skip(i + 1).any(|(p, _)| p == port) {
            return bad("kernel server: two applications on one port");
        }
    }
    Ok(())
}

fn annotate(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Tuning constants.

/// epoll_wait timeout: how soon a thread notices `stop` when idle.
pub const POLL_TIMEOUT_MS: i32 = 10;
/// Events taken per epoll_wait.
const EVENTS: usize = 256;
/// Connections accepted per listener wakeup before serving other events.
const ACCEPT_BURST: usize = 64;
/// Per-thread receive buffer (one, reused by every connection).
const READ_BUF: usize = 64 * 1024;
/// Bytes read from one connection per wakeup, so one fast sender cannot starve the rest
/// (level-triggered epoll reports the socket again if more is waiting).
const READ_BUDGET: usize = 256 * 1024;
/// Unsent output above which a connection is not read until it drains (see module docs); the
/// stack's echo handler stops reading at the same mark.
pub use crate::app::echo::OUT_HIGH_WATER;
/// Responses handed to one writev.
const IOV_BATCH: usize = 16;
/// Tags listener entries in epoll data; connections carry their (non-negative) fd.
const LISTENER_TAG: u64 = 1 << 63;

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;
const EV_TROUBLE: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

// ---------------------------------------------------------------------------------------------
// Applications: shared, read-only data built once per run.

enum App {
    Echo,
    Http(Responses),
    Discard,
}

impl App {
    fn new(kind: &AppKind) -> App {
        match kind {
            AppKind::Echo => App::Echo,
            AppKind::Http { body } => App::Http(Responses::new(*body)),
            AppKind::Discard => App::Discard,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-thread loop.

fn worker_main(
    setup: WorkerSetup,
    apps: &[App],
    stop: &AtomicBool,
    failed: &AtomicBool,
) -> io::Result<KernelServeStats> {
    if !core_affinity::set_for_current(core_affinity::CoreId { id: setup.core }) {
        eprintln!("xdptcp: kernel server: could not pin to core {}; running unpinned", setup.core);
    }
    let mut w = Worker {
        epoll: setup.epoll,
        listeners: setup.listeners.into_iter().map(|(fd, app)| (fd, &apps[app])).collect(),
        conns: HashMap::with_capacity(1024),
        buf: vec![0u8; READ_BUF].into_boxed_slice(),
        stats: KernelServeStats::default(),
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    while !stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
        let n = epoll_wait(&w.epoll, &mut events)?;
        for ev in events.iter().take(n) {
            // Copies out of the (packed on x86_64) struct.
            let (flags, data) = (ev.events, ev.u64);
            if data & LISTENER_TAG != 0 {
                w.accept_burst((data & !LISTENER_TAG) as usize);
            } else {
                w.on_conn_event(data as RawFd, flags);
            }
        }
    }
    w.stats.open_at_stop = w.conns.len() as u64;
    // Dropping the map closes every connection; the listeners and epoll close with `w`.
    Ok(w.stats)
}

/// One thread's state.
///
/// Level-triggered epoll, chosen over edge-triggered because it lets a wakeup do a bounded
/// amount of work (`READ_BUDGET`, `ACCEPT_BURST`, and stopping a read at the first short
/// `recv` instead of draining to EAGAIN) with no ready list of our own: anything left is
/// reported again. Backpressure is a change of interest set (`EPOLLIN` off while output is
/// backed up, `EPOLLOUT` on only while output is pending), which costs an `epoll_ctl` only when
/// a socket buffer fills, not per request.
struct Worker<'a> {
    epoll: OwnedFd,
    listeners: Vec<(OwnedFd, &'a App)>,
    conns: HashMap<RawFd, Conn<'a>>,
    buf: Box<[u8]>,
    stats: KernelServeStats,
}

impl<'a> Worker<'a> {
    fn accept_burst(&mut self, idx: usize) {
        let Some((lfd, app)) = self.listeners.get(idx) else { return };
        let (lfd, app) = (lfd.as_raw_fd(), *app);
        for _ in 0..ACCEPT_BURST {
            // SAFETY: `lfd` is an open listening socket owned by `self.listeners`; null address
            // pointers are allowed (we do not need the peer address).
            let fd = unsafe {
                libc::accept4(lfd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            };
            if fd < 0 {
                match io::Error::last_os_error().kind() {
                    io::ErrorKind::WouldBlock => return,
                    // The connection died in the queue, or a signal: try the next one.
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => continue,
                    // EMFILE/ENFILE/ENOBUFS: the listener stays readable and is retried on the
                    // next wakeup.
                    _ => {
                        self.stats.accept_errors += 1;
                        return;
                    }
                }
            }
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Best effort: a socket without TCP_NODELAY still serves correctly.
            let _ = set_int_opt(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
            let raw = fd.as_raw_fd();
            if epoll_ctl(&self.epoll, libc::EPOLL_CTL_ADD, raw, EV_IN, raw as u64).is_err() {
                self.stats.accept_errors += 1;
                continue; // dropping `fd` closes it
            }
            self.stats.accepted += 1;
            self.conns.insert(raw, Conn::new(fd, app));
        }
    }

    fn on_conn_event(&mut self, fd: RawFd, flags: u32) {
        // An event for a descriptor closed earlier in this batch finds nothing; if the number
        // was reused by an accept in the same batch, the event reaches the new connection, which
        // is harmless because every decision below rests on a syscall's result, never on the
        // flags alone.
        let Some(conn) = self.conns.get_mut(&fd) else { return };
        let keep = match conn.on_event(flags, &mut self.buf, &mut self.stats) {
            Ok(true) => {
                let want = conn.interest_wanted();
                if want == conn.interest {
                    Ok(true)
                } else {
                    conn.interest = want;
                    epoll_ctl(&self.epoll, libc::EPOLL_CTL_MOD, fd, want, fd as u64).map(|()| true)
                }
            }
            other => other,
        };
        match keep {
            Ok(true) => {}
            Ok(false) => {
                self.stats.closed += 1;
                self.conns.remove(&fd); // close(2) on drop; epoll forgets the fd with it
            }
            Err(_) => {
                self.stats.closed += 1;
                self.stats.errors += 1;
                self.conns.remove(&fd);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections.

struct Conn<'a> {
    fd: OwnedFd,
    app: ConnApp<'a>,
    /// The interest set registered with epoll.
    interest: u32,
    /// Close once the pending output is sent.
    close_after: bool,
    /// The peer's FIN was read; nothing more to read.
    peer_eof: bool,
}

enum ConnApp<'a> {
    Echo(EchoSession),
    Http(HttpConn<'a>),
    Discard,
}

impl<'a> Conn<'a> {
    fn new(fd: OwnedFd, app: &'a App) -> Self {
        let app = match app {
            App::Echo => ConnApp::Echo(EchoSession::default()),
            App::Http(r) => ConnApp::Http(HttpConn::new(r)),
            App::Discard => ConnApp::Discard,
        };
        Conn { fd, app, interest: EV_IN, close_after: false, peer_eof: false }
    }

    /// Output bytes not yet written.
    fn pending(&self) -> usize {
        match &self.app {
            ConnApp::Echo(e) => e.pending(),
            ConnApp::Http(h) => h.pending(),
            ConnApp::Discard => 0,
        }
    }

    fn wants_read(&self) -> bool {
        !self.peer_eof && self.pending() < OUT_HIGH_WATER
    }

    fn interest_wanted(&self) -> u32 {
        let mut m = 0;
        if self.wants_read() {
            m |= EV_IN;
        }
        if self.pending() > 0 {
            m |= EV_OUT;
        }
        m
    }

    /// Serves one readiness report. Returns whether the connection stays open; an error means
    /// the socket failed and must be closed.
    ///
    /// EPOLLERR/EPOLLHUP lead to a write (if output is pending) or a read (if reading), whose
    /// result reports the error or the EOF; when neither applies, the peer has closed and our
    /// output is sent, so the connection closes below. Either way no flag can spin the loop.
    fn on_event(&mut self, flags: u32, buf: &mut [u8], st: &mut KernelServeStats) -> io::Result<bool> {
        let trouble = flags & EV_TROUBLE != 0;
        if (flags & EV_OUT != 0 || trouble) && self.pending() > 0 {
            self.flush(st)?;
        }
        if (flags & EV_IN != 0 || trouble) && self.wants_read() {
            self.read_some(buf, st)?;
        }
        Ok(!(self.close_after && self.pending() == 0))
    }

    fn read_some(&mut self, buf: &mut [u8], st: &mut KernelServeStats) -> io::Result<()> {
        let mut budget = READ_BUDGET;
        while budget > 0 && self.wants_read() {
            let Some(n) = recv_some(&self.fd, buf)? else { break };
            if n == 0 {
                // The peer's FIN: every app closes once its output is sent.
                self.peer_eof = true;
                self.close_after = true;
                break;
            }
            st.bytes_in += n as u64;
            budget = budget.saturating_sub(n);
            let data = &buf[..n];
            match &mut self.app {
                ConnApp::Echo(e) => {
                    let fd = &self.fd;
                    st.bytes_out += e.feed(data, |d| send_some(fd, d))? as u64;
                    self.close_after |= e.close_after;
                }
                ConnApp::Http(h) => h.ingest(data, &mut self.close_after),
                ConnApp::Discard => {}
            }
            if n < buf.len() {
                // Probably drained: level-triggered epoll reports the socket again otherwise,
                // which saves the EAGAIN round trip on every request.
                break;
            }
        }
        // Responses are queued while parsing; send them in one go.
        if matches!(self.app, ConnApp::Http(_)) && self.pending() > 0 {
            self.flush(st)?;
        }
        Ok(())
    }

    /// Writes pending output until done or the socket buffer is full.
    fn flush(&mut self, st: &mut KernelServeStats) -> io::Result<()> {
        match &mut self.app {
            ConnApp::Echo(e) => {
                let fd = &self.fd;
                st.bytes_out += e.flush(|d| send_some(fd, d))? as u64;
                Ok(())
            }
            ConnApp::Http(h) => h.flush(&self.fd, st),
            ConnApp::Discard => Ok(()),
        }
    }
}

/// A connection's HTTP session (the byte logic of `app::http`, shared with the stack's
/// handler) and the responses it sends from.
struct HttpConn<'a> {
    resp: &'a Responses,
    session: HttpSession,
}

impl<'a> HttpConn<'a> {
    fn new(resp: &'a Responses) -> Self {
        HttpConn { resp, session: HttpSession::default() }
    }

    fn pending(&self) -> usize {
        self.session.pending(self.resp)
    }

    fn ingest(&mut self, data: &[u8], close_after: &mut bool) {
        self.session.ingest(data);
        *close_after |= self.session.close_after;
    }

    /// Writes what is owed with one sendmsg per batch of responses, straight from the shared
    /// response bytes.
    fn flush(&mut self, fd: &OwnedFd, st: &mut KernelServeStats) -> io::Result<()> {
        while self.pending() > 0 {
            let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; IOV_BATCH];
            let mut cnt = 0;
            self.session.unsent(self.resp, IOV_BATCH, |b| {
                if let Some(v) = iov.get_mut(cnt) {
                    *v = iovec_of(b);
                    cnt += 1;
                }
            });
            let n = writev_some(fd, &iov[..cnt])?;
            if n == 0 {
                return Ok(()); // full; EPOLLOUT reports when there is room
            }
            st.bytes_out += n as u64;
            self.session.advance(self.resp, n);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Thin libc wrappers.

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is open; the option value points at a live c_int of the length passed.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Sets the socket's congestion control by name (`TCP_CONGESTION`, tcp(7)).
fn set_congestion(fd: &OwnedFd, name: &str) -> io::Result<()> {
    // SAFETY: `fd` is open; the value points at `name.len()` live bytes.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A non-blocking listening socket on `addr` that other sockets of this user may share
/// (`SO_REUSEPORT`), and that can be re-bound while old connections sit in TIME-WAIT
/// (`SO_REUSEADDR`). IPv6 sockets keep the system's `IPV6_V6ONLY` default.
fn listen_socket(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let raw = cvt(unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_in is plain data for which all-zero bytes are valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            // SAFETY: `sin` is a valid sockaddr_in and the length passed is its size.
            cvt(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            })?;
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_in6 is plain data for which all-zero bytes are valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            // SAFETY: `sin6` is a valid sockaddr_in6 and the length passed is its size.
            cvt(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            })?;
        }
    }
    // SAFETY: `fd` is a bound stream socket.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 with a constant flag; the result is checked before use.
    let raw = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn epoll_ctl(epoll: &OwnedFd, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: data };
    // SAFETY: both descriptors are open and `ev` is a valid epoll_event for the call.
    cvt(unsafe { libc::epoll_ctl(epoll.as_raw_fd(), op, fd, &mut ev) }).map(drop)
}

/// Waits up to `POLL_TIMEOUT_MS`; returns how many entries of `events` were filled (0 on a
/// timeout or a signal).
fn epoll_wait(epoll: &OwnedFd, events: &mut [libc::epoll_event]) -> io::Result<usize> {
    let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
    // SAFETY: `events` is a writable array of at least `max` epoll_event entries.
    let r = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), max, POLL_TIMEOUT_MS) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
    }
    Ok(r as usize)
}

/// `Ok(None)` when nothing is buffered, `Ok(Some(0))` at EOF.
fn recv_some(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes and `fd` is open.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if r >= 0 {
            return Ok(Some(r as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(None),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

/// Bytes written; 0 when the socket buffer is full. MSG_NOSIGNAL: a peer that reset gives
/// EPIPE here instead of killing the process with SIGPIPE.
fn send_some(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `data` is readable for `data.len()` bytes and `fd` is open.
        let r = unsafe { libc::send(fd.as_raw_fd(), data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => return Ok(0),
            io::ErrorKind::Interrupted => continue,
            _ => return Err(e),
        }
    }
}

fn iovec_of(b: &[u8]) -> libc::iovec {
    // iov_base is `*mut` only because readv shares the type; sendmsg never writes through it.
    libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }
}

/// sendmsg(2) of `iov` (the relay's writer). Bytes written; 0 when full.
fn writev_some(fd: &OwnedFd, iov: &[libc::iovec]) -> io::Result<usize> {
    crate::engine::proxy::sendmsg_some(fd.as_raw_fd(), iov)
}
