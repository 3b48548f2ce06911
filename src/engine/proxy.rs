//! The relay behind `serve --app proxy --upstream HOST:PORT` (or `--upstream unix:PATH`): each
//! connection the stack accepts is relayed, both ways, to a kernel connection to the upstream
//! server (TCP, or a Unix stream socket on the same host), opened from the same core (HAProxy's
//! `mode tcp`, with `send-proxy` when `--proxy-protocol` asks for it).
//!
//! # Shape
//!
//! One [`Relay`] per core, built by the handler factory: it owns an epoll instance covering
//! every upstream socket of that core. [`Handler::wait_fds`] hands the epoll descriptor to the
//! core's sleep, so an idle core wakes for a frame on its AF_XDP socket or an upstream event
//! alike, and [`Handler::on_poll`] drains the ready events once per loop turn. Each socket is
//! registered once, edge-triggered: the session remembers what the edges said (readable, full),
//! so a change of direction costs no `epoll_ctl`.
//!
//! # No buffers of its own
//!
//! The two TCP buffers are the relay's buffers, so each direction is bounded and the windows
//! carry the backpressure:
//! - client → upstream: the bytes stay in the stack's receive buffer until a `sendmsg` to the
//!   upstream takes them (`recv_with`, no copy in between). When the upstream socket is full
//!   the relay stops taking them, the receive buffer fills and the window offered to the
//!   client closes; `EPOLLOUT` resumes the flow.
//! - upstream → client: the relay reads from the upstream socket only as much as the client's
//!   send buffer takes now, through one per-core scratch buffer. With no room left it stops
//!   reading, the kernel's receive buffer fills and its window closes on the upstream;
//!   `on_writable` resumes the flow.
//!
//! # Endings
//!
//! - A FIN becomes a half-close on the other side: the client's FIN a `shutdown(SHUT_WR)` of
//!   the upstream socket once everything the client sent before it was written, the
//!   upstream's EOF a FIN to the client after what is queued for it ([`Conn::shutdown`]).
//! - A RST, from either side, ends the other side at once: a client RST closes the upstream
//!   socket with `SO_LINGER` 0 (the kernel sends a RST); an upstream reset, a failed or timed
//!   out connect, or an idle timeout resets the client ([`Conn::abort`]).
//! - A Unix stream socket has no RST: where a TCP upstream is reset, a Unix one is closed, and
//!   the server reads a clean end of stream after everything the relay wrote (`ECONNRESET`
//!   only if the relay had not read all the server sent). A client that resets, or an upload
//!   cut short, looks to the server like a half-close: a protocol that ends its requests with
//!   the stream, not with a length, cannot tell a truncated one over a Unix socket (as behind
//!   HAProxy, `unix@`).
//! - A Unix listener with a full backlog refuses a connect at once (`EAGAIN`) where TCP would
//!   drop the SYN and retry: the connection waits in line, the relay tries the first in line
//!   again every [`BACKLOG_RETRY`] (one `connect` per try while the backlog stays full, however
//!   many wait), in arrival order until each one's connect timeout
//!   (`proxy_connect_backlog_full` counts those connections).
//!
//! # One segment for the header and the request
//!
//! With a PROXY header the upstream connection is opened as HAProxy's `option
//! tcp-smart-connect` opens it: `TCP_QUICKACK` off before `connect`, so Linux holds the
//! handshake's last ACK for the first write instead of sending it alone. The header then waits
//! for the client's first bytes (`--proxy-header-wait-us`, 1 ms by default), and goes in the same
//! `sendmsg`: on the upstream, one segment opens the connection, carries the header and the
//! request, and the server reads both in one wake-up. A client that sends nothing first (a
//! server-speaks-first protocol) has its header sent when the wait ends.
//!
//! # Counters
//!
//! - Every accepted connection ends in exactly one of the terminal counters (`closed`,
//!   `connect_failed`, `connect_timeout`, `idle_timeout`, `client_reset`, `client_timeout`,
//!   `upstream_reset`, `socket_failed`, `aborted`) or is still `open`.

use crate::app::proxy_protocol::{self, Header, Version};
use crate::app::{AppCounter, Conn, Conns, Handler};
use crate::tcp::{CloseReason, ConnId};
use crate::time::{Duration, Instant};
use hashbrown::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// How long an upstream connect may take before the client is reset (HAProxy's `timeout
/// connect` in its example configurations).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a relayed connection may move no byte either way before both sides are reset
/// (nginx's stream `proxy_timeout` is 10 minutes, HAProxy's examples use under a minute).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the PROXY header waits for the client's first bytes, to go with them in one
/// segment. An HTTP client writes its request right after its handshake's last ACK, tens of
/// microseconds later on a LAN.
pub const DEFAULT_HEADER_WAIT: Duration = Duration::from_millis(1);
/// Bytes read from an upstream socket at once: one per-core buffer, whatever the number of
/// connections.
const SCRATCH: usize = 64 * 1024;
/// epoll events taken per turn.
const EVENTS: usize = 256;
/// How often the timeouts are checked.
const SWEEP: Duration = Duration::from_millis(250);
/// How often the first connection waiting for a place in a full Unix listener's backlog is
/// tried again.
pub const BACKLOG_RETRY: Duration = Duration::from_millis(2);

/// Where the relay connects: a TCP address, or the path of a Unix stream socket on this host
/// (nginx's `listen unix:PATH`, HAProxy's `server ... unix@PATH`). A local server reached over
/// a Unix socket costs no TCP handshake, no ACKs and no TIME-WAIT per relayed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl From<SocketAddr> for Upstream {
    fn from(a: SocketAddr) -> Upstream {
        Upstream::Tcp(a)
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Tcp(a) => write!(f, "{a}"),
            Upstream::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Bytes of a path in `sockaddr_un.sun_path`, its terminating NUL left out.
const UNIX_PATH_MAX: usize = 107;

impl Upstream {
    /// `unix:PATH` for a Unix socket (nginx's spelling), else `HOST:PORT` resolved to its first
    /// address.
    pub fn parse(s: &str) -> Result<Upstream, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.starts_with('@') {
                return Err(format!("{s}: abstract Unix sockets are not supported; give a path"));
            }
            // Absolute: a relative path would be resolved against whatever the working
            // directory is at each connect.
            if !path.starts_with('/') || path.len() > UNIX_PATH_MAX || path.contains('\0') {
                return Err(format!("{s}: expected unix:/ABSOLUTE/PATH of at most {UNIX_PATH_MAX} bytes"));
            }
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        use std::net::ToSocketAddrs;
        s.to_socket_addrs()
            .map_err(|e| format!("{s}: expected HOST:PORT (e.g. 127.0.0.1:8080) or unix:PATH: {e}"))?
            .next()
            .map(Upstream::Tcp)
            .ok_or_else(|| format!("{s}: the name has no address"))
    }
}

/// What the relay does (`serve --upstream`, `--proxy-protocol`, `--proxy-*-timeout`).
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub upstream: Upstream,
    pub proxy_protocol: Version,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long the PROXY header waits for the client's first bytes (zero: it goes as soon as
    /// the upstream connection is up).
    pub header_wait: Duration,
}

impl ProxyConfig {
    pub fn new(upstream: impl Into<Upstream>) -> ProxyConfig {
        ProxyConfig {
            upstream: upstream.into(),
            proxy_protocol: Version::Off,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            header_wait: DEFAULT_HEADER_WAIT,
        }
    }
}

/// One core's relay outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayCounters {
    pub accepted: u64,
    pub upstream_connected: u64,
    pub connect_failed: u64,
    pub connect_timeout: u64,
    pub idle_timeout: u64,
    pub client_reset: u64,
    pub client_timeout: u64,
    pub upstream_reset: u64,
    pub socket_failed: u64,
    pub aborted: u64,
    pub closed: u64,
    /// Connections whose Unix connect found the listener's backlog full at least once.
    pub connect_backlog_full: u64,
    pub client_half_close: u64,
    pub upstream_half_close: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting { deadline: Instant },
    Open,
}

struct Session {
    /// The upstream socket; `None` once both of its directions are done (closed early to give
    /// the descriptor back while the client's side finishes).
    fd: Option<OwnedFd>,
    phase: Phase,
    /// The PROXY header not yet written, and how much of it was.
    head: Option<Header>,
    head_sent: usize,
    /// Until when the header waits for the client's first bytes (in `Relay::held` too).
    hold: Option<Instant>,
    /// Waiting in line for a place in the Unix listener's backlog (in `Relay::waiting` too);
    /// the socket is registered with epoll once it connects.
    waiting: bool,
    /// The client sent FIN.
    client_eof: bool,
    /// The upstream socket's write side is shut (the client's FIN passed on).
    up_shut: bool,
    /// The upstream sent EOF (passed on to the client as a FIN).
    upstream_eof: bool,
    /// The upstream socket took less than offered: wait for EPOLLOUT.
    up_blocked: bool,
    /// The upstream socket may have bytes or an EOF to read (set by an EPOLLIN edge, cleared
    /// by a read that finds nothing).
    can_read: bool,
    /// The client's send buffer is full: wait for `on_writable`.
    down_blocked: bool,
    last_active: Instant,
}

/// Why a session ends early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fail {
    /// The upstream socket reported an error (RST, unreachable): reset the client.
    Upstream,
    /// The client connection is gone (its `Closed` event follows and ends the session).
    Client,
}

/// The relay of one core.
pub struct Relay {
    cfg: ProxyConfig,
    epoll: Option<OwnedFd>,
    sessions: HashMap<ConnId, Session>,
    events: Vec<libc::epoll_event>,
    scratch: Box<[u8]>,
    k: RelayCounters,
    next_sweep: Instant,
    expired: Vec<ConnId>,
    /// Sessions whose header waits for the client's first bytes, by deadline (accept order,
    /// so deadlines only grow); an entry whose session sent its header meanwhile is skipped.
    held: std::collections::VecDeque<(Instant, ConnId)>,
    /// Sessions waiting for a place in the Unix listener's backlog, in arrival order (an entry
    /// whose session is gone is skipped), and when the first is tried again. The backlog is
    /// one for all: while it is full, one `connect` per try tells, and a newcomer waits behind.
    waiting: std::collections::VecDeque<ConnId>,
    backlog_retry_at: Option<Instant>,
    /// The full backlog was reported (once per relay).
    warned_backlog: bool,
}

impl Relay {
    /// A relay to `cfg.upstream`. Without an epoll instance (the descriptor limit reached at
    /// start) every connection is reset and counted in `socket_failed`.
    pub fn new(cfg: ProxyConfig) -> Relay {
        let epoll = match epoll_create() {
            Ok(fd) => Some(fd),
            Err(e) => {
                eprintln!("xdptcp: proxy: epoll_create1: {e}; every connection will be reset");
                None
            }
        };
        Relay {
            cfg,
            epoll,
            sessions: HashMap::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            scratch: vec![0u8; SCRATCH].into_boxed_slice(),
            k: RelayCounters::default(),
            next_sweep: Instant::ZERO,
            expired: Vec::new(),
            held: std::collections::VecDeque::new(),
            waiting: std::collections::VecDeque::new(),
            backlog_retry_at: None,
            warned_backlog: false,
        }
    }

    /// The outcomes counted so far.
    pub fn outcomes(&self) -> &RelayCounters {
        &self.k
    }

    /// Relayed connections open now.
    pub fn open(&self) -> usize {
        self.sessions.len()
    }

    fn epfd(&self) -> RawFd {
        self.epoll.as_ref().map_or(-1, |e| e.as_raw_fd())
    }

    /// Ends session `id` early with the client reset (its `Closed` event then finds nothing).
    fn reset_both(&mut self, id: ConnId, c: &mut Conn<'_>) {
        if let Some(mut s) = self.sessions.remove(&id) {
            if let Some(fd) = s.fd.take() {
                close_with_reset(fd);
            }
        }
        c.abort();
    }

    /// The upstream connect finished (`ok`) or failed.
    fn on_connect_done(&mut self, id: ConnId, c: &mut Conn<'_>, ok: bool) {
        if !ok {
            self.k.connect_failed += 1;
            self.reset_both(id, c);
            return;
        }
        self.k.upstream_connected += 1;
        if let Some(s) = self.sessions.get_mut(&id) {
            s.phase = Phase::Open;
            s.last_active = c.now;
            s.can_read = true;
        }
        self.pump(id, c, true, true);
    }

    /// Moves what can move in the directions asked for, and handles a failure.
    fn pump(&mut self, id: ConnId, c: &mut Conn<'_>, up: bool, down: bool) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        let mut r = Ok(());
        if up {
            r = pump_up(s, c, &mut self.k);
        }
        if down && r.is_ok() {
            r = pump_down(s, c, &mut self.scratch, &mut self.k);
        }
        match r {
            Ok(()) => {}
            Err(Fail::Upstream) => {
                self.k.upstream_reset += 1;
                self.reset_both(id, c);
            }
            Err(Fail::Client) => {
                // The client's Closed event follows in this turn's events; until then nothing
                // is read from the upstream.
                s.down_blocked = true;
            }
        }
    }

    /// Whether `held`'s entry (`t`, `id`) is live: session `id` still holds its header until
    /// `t` (not gone, its header not sent, not a new session of the same id).
    fn holds(&self, id: ConnId, t: Instant) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.hold == Some(t))
    }

    /// Counts a connection whose Unix connect found the listener's backlog full, and says so
    /// once: the server accepts more slowly than clients come, or its backlog is small.
    fn backlog_full(&mut self) {
        self.k.connect_backlog_full += 1;
        if !self.warned_backlog {
            self.warned_backlog = true;
            eprintln!(
                "xdptcp: proxy: {}: the listener's backlog is full; connects are retried for up to {} ms \
                 (raise the server's listen backlog and net.core.somaxconn)",
                self.cfg.upstream,
                self.cfg.connect_timeout.as_millis()
            );
        }
    }

    /// Whether a session waits in line for the backlog (the line's dead heads dropped).
    fn line_is_waiting(&mut self) -> bool {
        while let Some(id) = self.waiting.front() {
            if self.sessions.get(id).is_some_and(|s| s.waiting) {
                return true;
            }
            self.waiting.pop_front();
        }
        false
    }

    /// Tries the connections waiting for the backlog, first in line first, until one finds it
    /// full again (it keeps its place, and the line is tried again after [`BACKLOG_RETRY`]).
    /// One whose connect timeout passed is reset instead (`connect_timeout`).
    fn retry_waiting(&mut self, conns: &mut Conns<'_>) {
        let ep = self.epfd();
        self.backlog_retry_at = None;
        while let Some(id) = self.waiting.pop_front() {
            let Some(s) = self.sessions.get_mut(&id).filter(|s| s.waiting) else { continue };
            let c = &mut conns.conn(id);
            if matches!(s.phase, Phase::Connecting { deadline } if c.now >= deadline) {
                self.k.connect_timeout += 1;
                self.reset_both(id, c);
                continue;
            }
            let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else { continue };
            match connect_upstream(fd, &self.cfg.upstream) {
                Some(Started::Busy) => {
                    self.waiting.push_front(id);
                    self.backlog_retry_at = Some(c.now + BACKLOG_RETRY);
                    return;
                }
                Some(started) => {
                    s.waiting = false;
                    if !register(ep, fd, id) {
                        self.k.socket_failed += 1;
                        self.reset_both(id, c);
                    } else if started == Started::Connected {
                        self.on_connect_done(id, c, true);
                    }
                }
                None => {
                    self.k.connect_failed += 1;
                    self.reset_both(id, c);
                }
            }
        }
    }

    /// Resets the connections whose connect or idle time ran out.
    fn sweep(&mut self, conns: &mut Conns<'_>) {
        let now = conns.now;
        let idle = self.cfg.idle_timeout;
        self.expired.clear();
        for (id, s) in &self.sessions {
            let due = match s.phase {
                Phase::Connecting { deadline } => now >= deadline,
                Phase::Open => now.saturating_since(s.last_active) >= idle,
            };
            if due {
                self.expired.push(*id);
            }
        }
        let expired = std::mem::take(&mut self.expired);
        for id in &expired {
            match self.sessions.get(id).map(|s| s.phase) {
                Some(Phase::Connecting { .. }) => self.k.connect_timeout += 1,
                Some(Phase::Open) => self.k.idle_timeout += 1,
                None => continue,
            }
            self.reset_both(*id, &mut conns.conn(*id));
        }
        self.expired = expired;
    }
}

impl Handler for Relay {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.k.accepted += 1;
        let (Some(peer), Some(local)) = (c.peer(), c.local()) else {
            self.k.aborted += 1;
            c.abort();
            return;
        };
        let Some(ep) = self.epoll.as_ref().map(|e| e.as_raw_fd()) else {
            self.k.socket_failed += 1;
            c.abort();
            return;
        };
        let head = proxy_protocol::header(self.cfg.proxy_protocol, peer, local);
        // A header is written within `header_wait`: the handshake's last ACK can wait for it.
        let Ok(fd) = upstream_socket(&self.cfg.upstream, head.is_some()) else {
            self.k.socket_failed += 1;
            c.abort();
            return;
        };
        // Behind a line for a full backlog, a newcomer waits its turn without a connect.
        let behind = matches!(self.cfg.upstream, Upstream::Unix(_)) && self.line_is_waiting();
        let started = if behind { Some(Started::Busy) } else { connect_upstream(fd.as_raw_fd(), &self.cfg.upstream) };
        let Some(started) = started else {
            self.k.connect_failed += 1;
            c.abort();
            return;
        };
        let mut s = Session {
            fd: None,
            phase: Phase::Connecting { deadline: c.now + self.cfg.connect_timeout },
            hold: (head.is_some() && self.cfg.header_wait > Duration::ZERO).then(|| c.now + self.cfg.header_wait),
            waiting: false,
            head,
            head_sent: 0,
            client_eof: false,
            up_shut: false,
            upstream_eof: false,
            up_blocked: false,
            can_read: false,
            down_blocked: false,
            last_active: c.now,
        };
        if started == Started::Busy {
            // Not registered yet: an unconnected Unix socket polls as hung up.
            self.backlog_full();
            s.waiting = true;
            self.waiting.push_back(c.id);
            self.backlog_retry_at.get_or_insert(c.now + BACKLOG_RETRY);
        } else if !register(ep, fd.as_raw_fd(), c.id) {
            self.k.socket_failed += 1;
            c.abort();
            return;
        }
        s.fd = Some(fd);
        if let Some(t) = s.hold {
            self.held.push_back((t, c.id));
        }
        self.sessions.insert(c.id, s);
        if started == Started::Connected {
            self.on_connect_done(c.id, c, true);
        }
    }

    fn on_data(&mut self, c: &mut Conn<'_>) {
        self.pump(c.id, c, true, false);
    }

    fn on_writable(&mut self, c: &mut Conn<'_>) {
        if let Some(s) = self.sessions.get_mut(&c.id) {
            s.down_blocked = false;
        }
        self.pump(c.id, c, false, true);
    }

    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        // Not the end: the upstream still answers, and the client still reads.
        if let Some(s) = self.sessions.get_mut(&c.id) {
            s.client_eof = true;
        }
        self.pump(c.id, c, true, false);
    }

    fn on_closed(&mut self, id: ConnId, reason: CloseReason) {
        let Some(mut s) = self.sessions.remove(&id) else { return };
        let fd = s.fd.take();
        match reason {
            // Both FINs exchanged: the upstream finished too, unless bytes the client sent
            // before its FIN were still waiting for the upstream (it had half-closed first
            // and reads slowly). Those are lost: the upstream is reset rather than shown a
            // clean end of a stream it did not get whole.
            CloseReason::Normal if !s.client_eof || s.up_shut => {
                self.k.closed += 1;
                drop(fd);
                return;
            }
            CloseReason::Normal => self.k.aborted += 1,
            CloseReason::Reset => self.k.client_reset += 1,
            CloseReason::TimedOut => self.k.client_timeout += 1,
            // The engine stops or the listener closed (abort_all, unlisten).
            CloseReason::Aborted | CloseReason::Refused | CloseReason::Unreachable => self.k.aborted += 1,
        }
        if let Some(fd) = fd {
            close_with_reset(fd);
        }
    }

    fn on_poll(&mut self, conns: &mut Conns<'_>) {
        let ep = self.epfd();
        // Nothing relayed, nothing to wait for: no system call in the turn (a SYN flood keeps
        // the loop turning with no session at all).
        if ep < 0 || self.sessions.is_empty() {
            self.held.clear();
            self.waiting.clear();
            self.backlog_retry_at = None;
            return;
        }
        // The line for a full Unix backlog, due again.
        if self.backlog_retry_at.is_some_and(|t| conns.now >= t) {
            self.retry_waiting(conns);
        }
        // Headers whose wait for the client's first bytes ended go alone.
        while let Some(&(t, id)) = self.held.front() {
            if conns.now < t {
                break;
            }
            self.held.pop_front();
            if self.holds(id, t) {
                self.pump(id, &mut conns.conn(id), true, false);
            }
        }
        // SAFETY: `events` is a valid buffer of EVENTS entries; timeout 0 never blocks.
        let n = unsafe { libc::epoll_wait(ep, self.events.as_mut_ptr(), EVENTS as i32, 0) };
        for i in 0..n.max(0) as usize {
            let ev = self.events[i];
            let (bits, id) = (ev.events, conn_id(ev.u64));
            let Some(s) = self.sessions.get(&id) else { continue };
            let mut c = conns.conn(id);
            let err = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            match s.phase {
                Phase::Connecting { .. } => {
                    // Linux reports a finished connect as EPOLLOUT, a failed one with EPOLLERR
                    // (and HUP); SO_ERROR is read only when the two disagree.
                    let out = bits & libc::EPOLLOUT as u32 != 0;
                    let ok = out && (!err || s.fd.as_ref().is_some_and(|fd| so_error(fd.as_raw_fd()) == 0));
                    self.on_connect_done(id, &mut c, ok);
                }
                // A socket error (the upstream reset) ends the client at once, even while the
                // client is too slow for the relay to be reading the upstream (EPOLLERR is
                // reported whatever the interest, and the read that would meet it waits).
                Phase::Open if err && s.fd.as_ref().is_some_and(|fd| so_error(fd.as_raw_fd()) != 0) => {
                    self.k.upstream_reset += 1;
                    self.reset_both(id, &mut c);
                }
                Phase::Open => {
                    let up = bits & libc::EPOLLOUT as u32 != 0 || err;
                    let down = bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 || err;
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.up_blocked &= !up;
                        s.can_read |= down;
                    }
                    self.pump(id, &mut c, up, down);
                }
            }
        }
        if conns.now >= self.next_sweep {
            self.next_sweep = conns.now + SWEEP;
            self.sweep(conns);
        }
        // The first entry is one that still waits, so `next_deadline` does not wake the core
        // for a header that went with its request.
        while let Some(&(t, id)) = self.held.front() {
            if self.holds(id, t) {
                break;
            }
            self.held.pop_front();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.held.front().map(|&(t, _)| t), self.backlog_retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wait_fds(&self, out: &mut Vec<RawFd>) {
        if let Some(e) = &self.epoll {
            out.push(e.as_raw_fd());
        }
    }

    fn counters(&self, out: &mut Vec<AppCounter>) {
        let k = &self.k;
        let c = |name, help, value| AppCounter { name, help, value, gauge: false };
        let g = |name, help, value| AppCounter { name, help, value, gauge: true };
        let upstream_fds = self.sessions.values().filter(|s| s.fd.is_some()).count() as u64;
        out.extend([
            g("proxy_open", "Relayed connections open", self.sessions.len() as u64),
            g("proxy_upstream_fds", "Upstream sockets open", upstream_fds),
            c("proxy_accepted", "Client connections accepted by the relay", k.accepted),
            c("proxy_upstream_connected", "Upstream connects that succeeded", k.upstream_connected),
            c("proxy_connect_failed", "Upstream connects refused or failed (client reset)", k.connect_failed),
            c("proxy_connect_timeout", "Upstream connects that timed out (client reset)", k.connect_timeout),
            c(
                "proxy_idle_timeout",
                "Relayed connections idle too long (client reset, upstream reset or closed)",
                k.idle_timeout,
            ),
            c("proxy_client_reset", "Clients that reset (upstream reset, or closed if Unix)", k.client_reset),
            c(
                "proxy_client_timeout",
                "Clients whose retransmissions ran out (upstream reset, or closed if Unix)",
                k.client_timeout,
            ),
            c("proxy_upstream_reset", "Upstream sockets that failed or reset (client reset)", k.upstream_reset),
            c("proxy_socket_failed", "Upstream sockets that could not be made (descriptor limit)", k.socket_failed),
            c(
                "proxy_aborted",
                "Relayed connections ended by a stop or with bytes lost (client reset, upstream reset or closed)",
                k.aborted,
            ),
            c("proxy_closed", "Relayed connections that ended cleanly both ways", k.closed),
            c(
                "proxy_connect_backlog_full",
                "Connections whose Unix connect found the listener's backlog full (retried)",
                k.connect_backlog_full,
            ),
            c("proxy_client_half_close", "Client FINs passed on as an upstream shutdown", k.client_half_close),
            c("proxy_upstream_half_close", "Upstream EOFs passed on as a FIN to the client", k.upstream_half_close),
            c("proxy_bytes_up", "Bytes relayed client to upstream (PROXY header excluded)", k.bytes_up),
            c("proxy_bytes_down", "Bytes relayed upstream to client", k.bytes_down),
        ]);
    }
}

/// Client → upstream: the PROXY header first, then what the client sent, straight from the
/// receive buffer; the client's FIN once all of it went.
fn pump_up(s: &mut Session, c: &mut Conn<'_>, k: &mut RelayCounters) -> Result<(), Fail> {
    if s.phase != Phase::Open || s.up_shut {
        return Ok(());
    }
    let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else { return Ok(()) };
    if s.up_blocked {
        // Full: the EPOLLOUT edge says when there is room again.
        return Ok(());
    }
    // The PROXY header goes first, in the same sendmsg as the client's first bytes when there
    // are some (one system call, and one segment for a short request).
    let head = s.head;
    let mut head_rest: &[u8] = head.as_ref().and_then(|h| h.as_bytes().get(s.head_sent..)).unwrap_or(&[]);
    if !head_rest.is_empty() && c.readable() == 0 && !s.client_eof && s.hold.is_some_and(|t| c.now < t) {
        // The header waits for the client's first bytes (or the end of the wait, `on_poll`).
        return Ok(());
    }
    s.hold = None;
    if !head_rest.is_empty() && c.readable() == 0 {
        let n = write_vectored(fd, &[head_rest]).map_err(|_| Fail::Upstream)?;
        s.head_sent += n;
        head_rest = head_rest.get(n..).unwrap_or(&[]);
    }
    while c.readable() > 0 || !head_rest.is_empty() {
        if c.readable() == 0 {
            // Only the header is left: it waits for EPOLLOUT.
            s.up_blocked = true;
            return Ok(());
        }
        let mut failed = false;
        let mut short = false;
        let mut head_taken = 0;
        let n = c.recv_with(&mut |a, b| match write_vectored(fd, &[head_rest, a, b]) {
            Ok(n) => {
                short = n < head_rest.len() + a.len() + b.len();
                head_taken = n.min(head_rest.len());
                n - head_taken
            }
            Err(_) => {
                failed = true;
                0
            }
        });
        s.head_sent += head_taken;
        head_rest = head_rest.get(head_taken..).unwrap_or(&[]);
        k.bytes_up += n as u64;
        if n + head_taken > 0 {
            s.last_active = c.now;
        }
        if failed {
            return Err(Fail::Upstream);
        }
        if short {
            // The rest waits in the receive buffer (the client's window closes) for EPOLLOUT.
            s.up_blocked = true;
            return Ok(());
        }
    }
    s.head = None;
    if s.client_eof && !s.up_shut {
        s.up_shut = true;
        k.client_half_close += 1;
        if s.upstream_eof {
            // Both directions are done: close(2) sends the FIN (nothing is left unread), and
            // the descriptor goes back at once.
            s.fd = None;
        } else {
            // SAFETY: shutdown(2) on a socket we own.
            unsafe { libc::shutdown(fd, libc::SHUT_WR) };
        }
    }
    Ok(())
}

/// Upstream → client: reads only what the client's send buffer takes now; the upstream's EOF
/// becomes a FIN to the client.
fn pump_down(s: &mut Session, c: &mut Conn<'_>, scratch: &mut [u8], k: &mut RelayCounters) -> Result<(), Fail> {
    if s.phase != Phase::Open || s.upstream_eof || !s.can_read {
        return Ok(());
    }
    let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else { return Ok(()) };
    // Bounded by the client's send buffer: the loop ends when it is full, when the socket is
    // empty (the next EPOLLIN edge resumes), or at EOF.
    loop {
        let room = c.send_capacity();
        if room == 0 {
            // The upstream's bytes wait in its socket (its window closes) until the client
            // acknowledges some and on_writable resumes.
            s.down_blocked = true;
            c.want_writable();
            return Ok(());
        }
        let want = room.min(scratch.len());
        // SAFETY: reads at most `want` bytes into `scratch`, which is at least that long.
        let r = unsafe { libc::read(fd, scratch.as_mut_ptr().cast(), want) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => {
                    s.can_read = false;
                    Ok(())
                }
                io::ErrorKind::Interrupted => continue,
                _ => Err(Fail::Upstream),
            };
        }
        let n = r as usize;
        if n == 0 {
            s.upstream_eof = true;
            c.shutdown();
            k.upstream_half_close += 1;
            if s.up_shut {
                s.fd = None;
            }
            return Ok(());
        }
        match c.send(&scratch[..n]) {
            Ok(sent) if sent == n => {}
            // At most `room` bytes were read, so the send buffer takes them all; anything else
            // means the client's connection is no longer open.
            _ => return Err(Fail::Client),
        }
        k.bytes_down += n as u64;
        s.last_active = c.now;
    }
}

fn token(id: ConnId) -> u64 {
    u64::from(id.index) << 32 | u64::from(id.generation)
}

fn conn_id(t: u64) -> ConnId {
    ConnId { index: (t >> 32) as u32, generation: t as u32 }
}

fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 with a valid flag; the result is checked before it is owned.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor only this value owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How a connect started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    /// Connected already (a Unix socket: Linux queues the connection on the listener at once).
    Connected,
    /// Under way (TCP): EPOLLOUT says when it is done.
    InProgress,
    /// A Unix listener's backlog is full (`EAGAIN`, where TCP would drop the SYN and retry by
    /// itself): the same socket may try again.
    Busy,
}

/// Registers an upstream socket with the relay's epoll instance, edge-triggered, once for the
/// life of the socket: the session keeps what the edges said (`can_read`, `up_blocked`), so
/// no epoll_ctl per change of direction.
fn register(ep: RawFd, fd: RawFd, id: ConnId) -> bool {
    let events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
    let mut ev = libc::epoll_event { events, u64: token(id) };
    // SAFETY: epoll_ctl on descriptors we own, with a valid event.
    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) == 0 }
}

/// A non-blocking socket for `to`, not yet connected (an error: no descriptor left). Over TCP,
/// Nagle is off (the relay passes on what it has at once, as it got it), and with `hold_ack`
/// (something is written soon) `TCP_QUICKACK` is off before the connect: Linux then sends the
/// handshake's last ACK with the first write (`tcp_rcv_synsent_state_process` delays it in
/// ping-pong mode, up to 200 ms if nothing is written), as HAProxy's `option
/// tcp-smart-connect` does.
fn upstream_socket(to: &Upstream, hold_ack: bool) -> io::Result<OwnedFd> {
    let family = match to {
        Upstream::Tcp(a) if a.is_ipv4() => libc::AF_INET,
        Upstream::Tcp(_) => libc::AF_INET6,
        Upstream::Unix(_) => libc::AF_UNIX,
    };
    // SAFETY: socket(2) with constant arguments; the result is checked before it is owned.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor only this value owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if family != libc::AF_UNIX {
        set_int(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        if hold_ack {
            set_int(raw, libc::IPPROTO_TCP, libc::TCP_QUICKACK, 0);
        }
    }
    Ok(fd)
}

/// connect(2) of socket `raw` to `to`, without blocking. None: refused at once.
fn connect_upstream(raw: RawFd, to: &Upstream) -> Option<Started> {
    let r = match to {
        Upstream::Tcp(SocketAddr::V4(a)) => {
            // SAFETY: sockaddr_in is plain data for which all-zero bytes are valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: a valid sockaddr_in of the length passed, alive for the call.
            unsafe { libc::connect(raw, (&sin as *const libc::sockaddr_in).cast(), len) }
        }
        Upstream::Tcp(SocketAddr::V6(a)) => {
            // SAFETY: sockaddr_in6 is plain data for which all-zero bytes are valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            let len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            // SAFETY: a valid sockaddr_in6 of the length passed, alive for the call.
            unsafe { libc::connect(raw, (&sin6 as *const libc::sockaddr_in6).cast(), len) }
        }
        Upstream::Unix(path) => {
            // SAFETY: sockaddr_un is plain data for which all-zero bytes are valid.
            let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            // `Upstream::parse` bounds the length; a longer path built by hand is refused here
            // rather than cut (the trailing zero byte stays).
            if bytes.len() > UNIX_PATH_MAX {
                return None;
            }
            for (d, b) in sun.sun_path.iter_mut().zip(bytes) {
                *d = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            // SAFETY: a valid, NUL-terminated sockaddr_un of the length passed, alive for the
            // call.
            unsafe { libc::connect(raw, (&sun as *const libc::sockaddr_un).cast(), len) }
        }
    };
    if r == 0 {
        return Some(Started::Connected);
    }
    match (io::Error::last_os_error().raw_os_error(), to) {
        (Some(libc::EINPROGRESS), _) => Some(Started::InProgress),
        (Some(libc::EAGAIN), Upstream::Unix(_)) => Some(Started::Busy),
        _ => None,
    }
}

fn set_int(fd: RawFd, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt with a valid int option value of the size passed.
    let _ = unsafe {
        libc::setsockopt(fd, level, name, (&v as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    };
}

/// The pending error of a socket (SO_ERROR): 0 when its connect succeeded.
fn so_error(fd: RawFd) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: getsockopt into a valid int of the size passed.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut v as *mut i32).cast(), &mut len) };
    if r != 0 {
        return -1;
    }
    v
}

/// Closes a socket with a RST (SO_LINGER with a zero timeout: Linux `tcp_close` then sends a
/// RST and discards what is queued) instead of a FIN: the upstream learns the client is gone,
/// not that its stream ended cleanly. A Unix socket has no RST: it is just closed.
fn close_with_reset(fd: OwnedFd) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid linger value of the size passed.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(fd);
}

/// Writes as much of `parts`, in order, as the socket takes now (one `sendmsg`, MSG_NOSIGNAL
/// so a reset upstream is an EPIPE error, not a SIGPIPE). Returns the bytes taken (0 when full);
/// an error for anything but a full socket.
fn write_vectored(fd: RawFd, parts: &[&[u8]]) -> io::Result<usize> {
    let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 3];
    let mut n = 0;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        let Some(slot) = iov.get_mut(n) else { break };
        *slot = libc::iovec { iov_base: p.as_ptr() as *mut libc::c_void, iov_len: p.len() };
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    sendmsg_some(fd, iov.get(..n).unwrap_or(&[]))
}

/// sendmsg(2) of `iov` without blocking and with MSG_NOSIGNAL (a peer that reset gives EPIPE
/// instead of SIGPIPE; writev has no flags). Bytes written; 0 when the socket buffer is full.
/// The kernel-socket baseline server writes through this too.
pub fn sendmsg_some(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data for which all-zero bytes are valid (no name, no control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: `msg` points at `iov.len()` iovecs that each describe live, readable bytes
        // for the duration of the call; sendmsg only reads them.
        let r = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
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

/// Raises the soft limit on open descriptors to the hard limit: every relayed connection holds
/// one upstream socket (HAProxy and nginx raise theirs at start too). Returns the new limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    // SAFETY: rlimit is plain data; getrlimit/setrlimit with valid pointers.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return Err(io::Error::last_os_error());
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(r.rlim_cur as u64)
    }
}

/// The relay against a real upstream on loopback (no privileges needed) and a client side
/// played by a [`crate::app::Transport`] double: every step is driven by hand.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Transport;
    use crate::tcp::ApiError;
    use std::io::{ErrorKind, Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};

    /// One client connection as the relay sees it.
    #[derive(Default)]
    struct Client {
        /// Sent by the client, not yet read by the relay.
        inbox: Vec<u8>,
        /// Sent by the relay to the client.
        outbox: Vec<u8>,
        /// Send-buffer space left.
        room: usize,
        shut: bool,
        aborted: bool,
        want_writable: bool,
    }

    struct Fake {
        c: Client,
    }

    const PEER: &str = "198.18.0.2:40000";
    const LOCAL: &str = "198.18.0.1:80";

    impl Transport for Fake {
        fn recv(&mut self, _: ConnId, buf: &mut [u8]) -> usize {
            let n = buf.len().min(self.c.inbox.len());
            buf[..n].copy_from_slice(&self.c.inbox[..n]);
            self.c.inbox.drain(..n);
            n
        }
        fn recv_with(&mut self, _: ConnId, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize {
            let n = f(&self.c.inbox, &[]);
            self.c.inbox.drain(..n);
            n
        }
        fn readable(&self, _: ConnId) -> usize {
            self.c.inbox.len()
        }
        fn endpoints(&self, _: ConnId) -> Option<(SocketAddr, SocketAddr)> {
            Some((LOCAL.parse().unwrap(), PEER.parse().unwrap()))
        }
        fn send(&mut self, _: ConnId, data: &[u8]) -> Result<usize, ApiError> {
            if self.c.aborted || self.c.shut {
                return Err(ApiError::Closed);
            }
            let n = data.len().min(self.c.room);
            self.c.outbox.extend_from_slice(&data[..n]);
            self.c.room -= n;
            Ok(n)
        }
        fn send_capacity(&self, _: ConnId) -> usize {
            self.c.room
        }
        fn want_writable(&mut self, _: ConnId) {
            self.c.want_writable = true;
        }
        fn shutdown(&mut self, _: ConnId) {
            self.c.shut = true;
        }
        fn close(&mut self, _: ConnId) {
            self.c.shut = true;
        }
        fn abort(&mut self, _: ConnId) {
            self.c.aborted = true;
        }
    }

    const ID: ConnId = ConnId { index: 3, generation: 7 };
    const T0: Instant = Instant::from_secs(100);

    struct Rig {
        relay: Relay,
        fake: Fake,
        now: Instant,
    }

    impl Rig {
        fn new(upstream: impl Into<Upstream>, v: Version) -> Rig {
            let cfg = ProxyConfig { proxy_protocol: v, ..ProxyConfig::new(upstream) };
            Rig { relay: Relay::new(cfg), fake: Fake { c: Client { room: 1 << 20, ..Client::default() } }, now: T0 }
        }
        fn with_conn(&mut self, f: impl FnOnce(&mut Relay, &mut Conn<'_>)) {
            f(&mut self.relay, &mut Conn::with_transport(ID, self.now, &mut self.fake));
        }
        fn poll(&mut self) {
            self.relay.on_poll(&mut Conns::with_transport(self.now, &mut self.fake));
        }
        /// Polls until `done` holds (bounded: a relay that never gets there fails the test).
        fn drive(&mut self, what: &str, done: impl Fn(&Rig) -> bool) {
            for _ in 0..5000 {
                self.poll();
                if done(self) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            panic!("{what}: not reached; counters {:?}", self.relay.outcomes());
        }
    }

    fn upstream() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    fn accept(l: &TcpListener) -> TcpStream {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        s
    }

    fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        s.read_exact(&mut v).unwrap();
        v
    }

    #[test]
    fn relays_both_ways_after_the_header_and_passes_half_closes_on() {
        for (v, head) in [
            (Version::V1, b"PROXY TCP4 198.18.0.2 198.18.0.1 40000 80\r\n".to_vec()),
            (
                Version::V2,
                proxy_protocol::header(Version::V2, PEER.parse().unwrap(), LOCAL.parse().unwrap())
                    .unwrap()
                    .as_bytes()
                    .to_vec(),
            ),
            (Version::Off, Vec::new()),
        ] {
            let (l, addr) = upstream();
            let mut r = Rig::new(addr, v);
            // The client spoke before the upstream connect finished: its bytes wait.
            r.fake.c.inbox.extend_from_slice(b"hello");
            r.with_conn(|h, c| h.on_accept(c));
            let mut up = accept(&l);
            r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
            let mut want = head.clone();
            want.extend_from_slice(b"hello");
            assert_eq!(read_n(&mut up, want.len()), want, "{v:?}: the header, then the client's bytes");

            up.write_all(b"world").unwrap();
            r.drive("reply", |r| r.fake.c.outbox == b"world");
            // The upstream's FIN becomes the client's.
            up.shutdown(Shutdown::Write).unwrap();
            r.drive("upstream EOF", |r| r.fake.c.shut);
            assert_eq!(r.relay.outcomes().upstream_half_close, 1);
            // The client half-closes after a last word: the upstream gets it, then EOF.
            r.fake.c.inbox.extend_from_slice(b"bye");
            r.with_conn(|h, c| h.on_peer_closed(c));
            let mut rest = Vec::new();
            up.read_to_end(&mut rest).unwrap();
            assert_eq!(rest, b"bye");
            let k = r.relay.outcomes().clone();
            assert_eq!((k.client_half_close, k.bytes_up, k.bytes_down), (1, 8, 5), "{v:?}");
            // Both directions done: the upstream socket is already closed.
            let mut out = Vec::new();
            r.relay.counters(&mut out);
            let get = |n: &str| out.iter().find(|c| c.name == n).map(|c| c.value);
            assert_eq!(get("proxy_upstream_fds"), Some(0));
            r.relay.on_closed(ID, CloseReason::Normal);
            assert_eq!((r.relay.outcomes().closed, r.relay.open()), (1, 0));
        }
    }

    /// Whatever the upstream has to read now, without waiting.
    fn read_now(s: &mut TcpStream) -> Vec<u8> {
        s.set_nonblocking(true).unwrap();
        let mut v = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => v.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        s.set_nonblocking(false).unwrap();
        v
    }

    const V1_HEAD: &[u8] = b"PROXY TCP4 198.18.0.2 198.18.0.1 40000 80\r\n";

    /// The header waits for the client's first bytes and goes with them, in one write.
    #[test]
    fn the_header_waits_for_the_clients_first_bytes() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::V1);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        assert_eq!(r.relay.next_deadline(), Some(T0 + DEFAULT_HEADER_WAIT), "the core wakes for the wait's end");
        r.now = T0 + DEFAULT_HEADER_WAIT - Duration::from_micros(1);
        for _ in 0..20 {
            r.poll();
        }
        // A wait on the upstream's side too: anything the relay had written would be there.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(read_now(&mut up), b"", "nothing written while the header waits");
        r.fake.c.inbox.extend_from_slice(b"GET /");
        r.with_conn(|h, c| h.on_data(c));
        let mut want = V1_HEAD.to_vec();
        want.extend_from_slice(b"GET /");
        assert_eq!(read_n(&mut up, want.len()), want);
        r.poll();
        assert_eq!(r.relay.next_deadline(), None, "nothing waits any more");
    }

    /// Segments a socket received (`tcpi_segs_in` of TCP_INFO, at its offset in Linux's
    /// `struct tcp_info`, which the libc crate's glibc layout stops short of).
    fn segs_in(s: &TcpStream) -> u32 {
        let mut buf = [0u8; 256];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: getsockopt(TCP_INFO) into a buffer of the length passed.
        let r = unsafe {
            libc::getsockopt(s.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, buf.as_mut_ptr().cast(), &mut len)
        };
        assert!(r == 0 && len >= 144, "TCP_INFO: {r}, {len} bytes");
        u32::from_ne_bytes([buf[140], buf[141], buf[142], buf[143]])
    }

    /// The upstream receives the handshake's last ACK, the header and the request in one
    /// segment (after its SYN): `TCP_QUICKACK` off before the connect holds the ACK for the
    /// write, and the header waited for the request.
    #[test]
    fn the_upstream_gets_the_handshakes_end_the_header_and_the_request_in_one_segment() {
        for (v, want) in [(Version::V1, 2), (Version::Off, 3)] {
            let (l, addr) = upstream();
            let mut r = Rig::new(addr, v);
            r.with_conn(|h, c| h.on_accept(c));
            r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
            r.fake.c.inbox.extend_from_slice(b"GET / HTTP/1.0\r\n\r\n");
            r.with_conn(|h, c| h.on_data(c));
            // Accepted only now: with the ACK held, the upstream's connection is made by the
            // segment that carries the request.
            let mut up = accept(&l);
            let n = if v == Version::V1 { V1_HEAD.len() } else { 0 } + 18;
            read_n(&mut up, n);
            // Without a header the request goes as it comes: the ACK went alone before it.
            assert_eq!(segs_in(&up), want, "{v:?}: SYN, then {}", want - 1);
        }
    }

    /// A client that waits for the server to speak first: its header goes when the wait ends,
    /// and the server's greeting comes back.
    #[test]
    fn a_server_speaks_first_gets_its_header_when_the_wait_ends() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::V1);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        r.now = T0 + DEFAULT_HEADER_WAIT;
        r.poll();
        assert_eq!(read_n(&mut up, V1_HEAD.len()), V1_HEAD);
        up.write_all(b"220 ready\r\n").unwrap();
        r.drive("greeting", |r| r.fake.c.outbox == b"220 ready\r\n");
        r.fake.c.inbox.extend_from_slice(b"QUIT\r\n");
        r.with_conn(|h, c| h.on_data(c));
        assert_eq!(read_n(&mut up, 6), b"QUIT\r\n");
        assert_eq!(r.relay.next_deadline(), None);
    }

    /// No wait asked for: the header goes as soon as the upstream connection is up. A client
    /// that closes without a byte has its header, then its FIN, passed on at once.
    #[test]
    fn without_a_wait_or_with_a_fin_the_header_goes_at_once() {
        let (l, addr) = upstream();
        let cfg = ProxyConfig { proxy_protocol: Version::V1, header_wait: Duration::ZERO, ..ProxyConfig::new(addr) };
        let mut r = Rig::new(addr, Version::V1);
        r.relay = Relay::new(cfg);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        assert_eq!(read_n(&mut up, V1_HEAD.len()), V1_HEAD);
        assert_eq!(r.relay.next_deadline(), None);

        let mut r = Rig::new(addr, Version::V1);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        r.with_conn(|h, c| h.on_peer_closed(c));
        let mut all = Vec::new();
        up.read_to_end(&mut all).unwrap();
        assert_eq!(all, V1_HEAD, "the header, then EOF");
    }

    #[test]
    fn a_client_that_does_not_read_stops_the_reading_of_the_upstream() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::Off);
        r.fake.c.room = 10;
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        up.write_all(&[7u8; 100]).unwrap();
        r.drive("send buffer full", |r| r.fake.c.want_writable);
        assert_eq!(r.fake.c.outbox.len(), 10, "only what the send buffer took");
        let s = &r.relay.sessions[&ID];
        assert!(s.down_blocked && s.can_read, "not read while the client is full: the window closes");
        for _ in 0..20 {
            r.poll();
        }
        assert_eq!(r.fake.c.outbox.len(), 10, "nothing more read while the client is full");
        // The client acknowledged: room again, and the rest flows.
        r.fake.c.room = 1000;
        r.fake.c.want_writable = false;
        r.with_conn(|h, c| h.on_writable(c));
        r.drive("the rest", |r| r.fake.c.outbox.len() == 100);
        assert_eq!(r.relay.outcomes().bytes_down, 100);
    }

    /// The upstream resets while the client is too slow for the relay to be reading it: the
    /// client is reset at once, not when it catches up.
    #[test]
    fn an_upstream_reset_reaches_a_client_that_does_not_read() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::Off);
        r.fake.c.room = 10;
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        up.write_all(&[7u8; 100]).unwrap();
        r.drive("send buffer full", |r| r.fake.c.want_writable);
        close_with_reset(OwnedFd::from(up));
        r.drive("client reset", |r| r.fake.c.aborted);
        assert_eq!((r.relay.outcomes().upstream_reset, r.relay.open()), (1, 0));
    }

    #[test]
    fn a_refused_connect_resets_the_client() {
        let (l, addr) = upstream();
        drop(l);
        let mut r = Rig::new(addr, Version::V1);
        r.with_conn(|h, c| h.on_accept(c));
        r.drive("client reset", |r| r.fake.c.aborted);
        assert_eq!(r.relay.outcomes().connect_failed, 1);
        assert_eq!(r.relay.open(), 0);
        // The client's Closed event that follows finds nothing to count twice.
        r.relay.on_closed(ID, CloseReason::Aborted);
        assert_eq!(r.relay.outcomes().aborted, 0);
    }

    #[test]
    fn an_upstream_reset_resets_the_client_and_a_client_reset_resets_the_upstream() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        let up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        close_with_reset(OwnedFd::from(up));
        r.drive("client reset", |r| r.fake.c.aborted);
        assert_eq!((r.relay.outcomes().upstream_reset, r.relay.open()), (1, 0));

        let mut r = Rig::new(addr, Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        r.relay.on_closed(ID, CloseReason::Reset);
        let e = up.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "SO_LINGER 0: the upstream sees a RST");
        assert_eq!(r.relay.outcomes().client_reset, 1);
    }

    #[test]
    fn an_idle_connection_is_reset_both_ways() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = accept(&l);
        r.drive("connected", |r| r.relay.outcomes().upstream_connected == 1);
        r.now = T0 + Duration::from_secs(DEFAULT_IDLE_TIMEOUT.as_millis() / 1000 - 1);
        r.poll();
        assert!(!r.fake.c.aborted, "not idle long enough yet");
        r.now = T0 + DEFAULT_IDLE_TIMEOUT + SWEEP;
        r.poll();
        assert!(r.fake.c.aborted);
        assert_eq!(up.read(&mut [0u8; 8]).unwrap_err().kind(), ErrorKind::ConnectionReset);
        assert_eq!((r.relay.outcomes().idle_timeout, r.relay.open()), (1, 0));
    }

    #[test]
    fn a_connect_that_does_not_finish_in_time_resets_the_client() {
        let (l, addr) = upstream();
        let mut r = Rig::new(addr, Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        // Still connecting as far as the relay knows (no poll yet), and the deadline passed.
        r.now = T0 + DEFAULT_CONNECT_TIMEOUT + SWEEP;
        r.relay.sweep(&mut Conns::with_transport(r.now, &mut r.fake));
        assert!(r.fake.c.aborted);
        assert_eq!((r.relay.outcomes().connect_timeout, r.relay.open()), (1, 0));
        drop(l);
    }

    /// A Unix stream listener at a fresh path (removed with the returned guard).
    struct UnixUpstream {
        l: std::os::unix::net::UnixListener,
        path: PathBuf,
    }

    impl UnixUpstream {
        fn new(tag: &str) -> UnixUpstream {
            let path = std::env::temp_dir().join(format!("xdptcp-relay-{tag}-{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&path);
            let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
            UnixUpstream { l, path }
        }
        fn to(&self) -> Upstream {
            Upstream::Unix(self.path.clone())
        }
        fn accept(&self) -> std::os::unix::net::UnixStream {
            let (s, _) = self.l.accept().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            s
        }
    }

    impl Drop for UnixUpstream {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    #[test]
    fn upstreams_are_named_as_nginx_names_them() {
        assert_eq!(Upstream::parse("unix:/run/app.sock"), Ok(Upstream::Unix("/run/app.sock".into())));
        assert_eq!(Upstream::parse("127.0.0.1:8080"), Ok(Upstream::Tcp("127.0.0.1:8080".parse().unwrap())));
        assert_eq!(Upstream::parse("[::1]:8080"), Ok(Upstream::Tcp("[::1]:8080".parse().unwrap())));
        for bad in [
            "unix:",
            "127.0.0.1",
            "/run/app.sock",
            "unix:/a\0b",
            "unix:@abstract",
            "unix:app.sock",
            "unix: /run/app.sock",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?}");
        }
        // sun_path holds 108 bytes with its terminating zero.
        let longest = format!("unix:/{}", "a".repeat(UNIX_PATH_MAX - 1));
        assert!(Upstream::parse(&longest).is_ok());
        assert!(Upstream::parse(&format!("{longest}a")).is_err());
        for s in ["unix:/run/app.sock", "127.0.0.1:8080"] {
            assert_eq!(Upstream::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn relays_over_a_unix_socket_with_the_header_and_half_closes() {
        let u = UnixUpstream::new("both");
        let mut r = Rig::new(u.to(), Version::V1);
        r.fake.c.inbox.extend_from_slice(b"hello");
        r.with_conn(|h, c| h.on_accept(c));
        // A Unix connect is done at once: the header and the client's bytes follow.
        assert_eq!(r.relay.outcomes().upstream_connected, 1);
        let mut up = u.accept();
        let mut want = b"PROXY TCP4 198.18.0.2 198.18.0.1 40000 80\r\n".to_vec();
        want.extend_from_slice(b"hello");
        let mut got = vec![0u8; want.len()];
        up.read_exact(&mut got).unwrap();
        assert_eq!(got, want, "the client's address, then its bytes");

        up.write_all(b"world").unwrap();
        r.drive("reply", |r| r.fake.c.outbox == b"world");
        up.shutdown(Shutdown::Write).unwrap();
        r.drive("upstream EOF", |r| r.fake.c.shut);
        r.fake.c.inbox.extend_from_slice(b"bye");
        r.with_conn(|h, c| h.on_peer_closed(c));
        let mut rest = Vec::new();
        up.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye", "the client's last bytes, then the end of the stream");
        let k = r.relay.outcomes().clone();
        assert_eq!((k.client_half_close, k.upstream_half_close, k.bytes_up, k.bytes_down), (1, 1, 8, 5));
        r.relay.on_closed(ID, CloseReason::Normal);
        assert_eq!((r.relay.outcomes().closed, r.relay.open()), (1, 0));
    }

    #[test]
    fn a_unix_upstream_that_is_not_there_resets_the_client() {
        let path = std::env::temp_dir().join(format!("xdptcp-relay-none-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut r = Rig::new(Upstream::Unix(path), Version::V1);
        r.with_conn(|h, c| h.on_accept(c));
        assert!(r.fake.c.aborted, "ENOENT: the client is reset at once");
        assert_eq!((r.relay.outcomes().connect_failed, r.relay.open()), (1, 0));
    }

    #[test]
    fn a_unix_upstream_that_drops_unread_bytes_resets_the_client_and_a_client_reset_ends_it() {
        // The server closes with the client's bytes unread: Linux marks the relay's end
        // ECONNRESET (`unix_release_sock`), the nearest a Unix socket has to a RST.
        let u = UnixUpstream::new("reset");
        let mut r = Rig::new(u.to(), Version::Off);
        r.fake.c.inbox.extend_from_slice(b"request");
        r.with_conn(|h, c| h.on_accept(c));
        let up = u.accept();
        r.drive("sent", |r| r.relay.outcomes().bytes_up == 7);
        drop(up);
        r.drive("client reset", |r| r.fake.c.aborted);
        assert_eq!((r.relay.outcomes().upstream_reset, r.relay.open()), (1, 0));

        // The client resets: the server reads the end of its stream at once.
        let mut r = Rig::new(u.to(), Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = u.accept();
        r.relay.on_closed(ID, CloseReason::Reset);
        let mut rest = Vec::new();
        up.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!((r.relay.outcomes().client_reset, r.relay.open()), (1, 0));
    }

    /// A Unix listener whose backlog takes one connection (listen(2) with 0: Linux refuses the
    /// next while one waits to be accepted).
    fn unix_listener_with_a_backlog_of_one(tag: &str) -> UnixUpstream {
        let u = UnixUpstream::new(tag);
        // SAFETY: listen(2) again on a listening socket we own only changes its backlog.
        assert_eq!(unsafe { libc::listen(u.l.as_raw_fd(), 0) }, 0);
        u
    }

    #[test]
    fn a_full_unix_backlog_is_retried_until_the_server_accepts() {
        let u = unix_listener_with_a_backlog_of_one("backlog");
        let mut r = Rig::new(u.to(), Version::Off);
        r.with_conn(|h, c| h.on_accept(c));
        assert_eq!(r.relay.outcomes().upstream_connected, 1, "the backlog's one place");
        // The second finds the backlog full: not reset, tried again shortly.
        let second = ConnId { index: 4, generation: 1 };
        r.relay.on_accept(&mut Conn::with_transport(second, r.now, &mut r.fake));
        assert!(!r.fake.c.aborted, "a full backlog is not a refusal");
        assert_eq!((r.relay.outcomes().connect_backlog_full, r.relay.open()), (1, 2));
        assert_eq!(r.relay.next_deadline(), Some(r.now + BACKLOG_RETRY), "the core wakes for the retry");
        r.now = r.now + BACKLOG_RETRY;
        r.poll();
        assert_eq!(r.relay.outcomes().upstream_connected, 1, "still full");
        // The server accepts the first: the retry gets the place.
        let _first = u.accept();
        r.now = r.now + BACKLOG_RETRY;
        r.poll();
        let k = r.relay.outcomes().clone();
        assert_eq!((k.upstream_connected, k.connect_failed, k.connect_timeout), (2, 0, 0));
        assert!(!r.fake.c.aborted);
    }

    #[test]
    fn a_unix_backlog_that_stays_full_resets_the_client_at_the_connect_timeout() {
        let u = unix_listener_with_a_backlog_of_one("full");
        let mut r = Rig::new(u.to(), Version::Off);
        r.relay.cfg.connect_timeout = Duration::from_millis(20);
        r.relay.on_accept(&mut Conn::with_transport(ConnId { index: 9, generation: 1 }, r.now, &mut r.fake));
        r.with_conn(|h, c| h.on_accept(c));
        assert!(!r.fake.c.aborted);
        let t0 = r.now;
        while r.now < t0 + Duration::from_millis(600) && !r.fake.c.aborted {
            r.now = r.now + BACKLOG_RETRY;
            r.poll();
        }
        assert!(r.fake.c.aborted, "the client is reset once the connect timeout passed");
        let k = r.relay.outcomes().clone();
        assert_eq!((k.connect_timeout, k.connect_backlog_full, k.upstream_connected), (1, 1, 1));
        assert_eq!(r.relay.open(), 1, "only the connected one is left");
        assert!(r.relay.waiting.is_empty() && r.relay.next_deadline().is_none(), "no line left, no wake-up");
    }

    #[test]
    fn the_line_for_a_full_unix_backlog_keeps_arrival_order() {
        let u = unix_listener_with_a_backlog_of_one("line");
        let mut r = Rig::new(u.to(), Version::Off);
        let (a, b, c) = (ConnId { index: 1, generation: 1 }, ConnId { index: 2, generation: 1 }, ID);
        let waits = |r: &Rig, id| r.relay.sessions.get(&id).is_some_and(|s| s.waiting);
        r.relay.on_accept(&mut Conn::with_transport(a, r.now, &mut r.fake));
        r.relay.on_accept(&mut Conn::with_transport(b, r.now, &mut r.fake));
        assert!(!waits(&r, a) && waits(&r, b), "a has the backlog's place, b waits");
        // The place frees up before b's next try, and c arrives: c goes behind b, with no
        // connect of its own (which would have taken b's place).
        let _a_up = u.accept();
        r.relay.on_accept(&mut Conn::with_transport(c, r.now, &mut r.fake));
        assert!(waits(&r, c), "a newcomer waits behind the line");
        r.now = r.now + BACKLOG_RETRY;
        r.poll();
        assert!(!waits(&r, b) && waits(&r, c), "b connects first; c finds the backlog full again");
        let _b_up = u.accept();
        r.now = r.now + BACKLOG_RETRY;
        r.poll();
        assert!(!waits(&r, c));
        let k = r.relay.outcomes().clone();
        assert_eq!((k.upstream_connected, k.connect_backlog_full, k.connect_timeout), (3, 2, 0));
    }

    #[test]
    fn a_unix_server_that_reads_late_holds_the_client_back_and_gets_every_byte() {
        let u = UnixUpstream::new("late");
        let mut r = Rig::new(u.to(), Version::V1);
        let total = 8 << 20;
        r.fake.c.inbox.extend(std::iter::repeat_n(b'y', total));
        r.with_conn(|h, c| h.on_accept(c));
        let mut up = u.accept();
        // The socket's buffer took what it could; the rest waits in the client's receive
        // buffer (its window closes) until the server reads.
        assert!(!r.fake.c.inbox.is_empty(), "8 MiB do not fit a Unix socket's buffer");
        let reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            up.read_to_end(&mut v).map(|_| v)
        });
        r.drive("everything relayed", |r| r.fake.c.inbox.is_empty());
        r.with_conn(|h, c| h.on_peer_closed(c));
        let got = reader.join().unwrap().unwrap();
        let head = b"PROXY TCP4 198.18.0.2 198.18.0.1 40000 80\r\n";
        assert_eq!(got.len(), head.len() + total);
        assert!(got.starts_with(head) && got[head.len()..].iter().all(|&b| b == b'y'));
        assert_eq!(r.relay.outcomes().bytes_up, total as u64);
    }
}
