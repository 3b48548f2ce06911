//! Applications: the handler trait the engine drives, and the bundled apps (`echo`, `http`,
//! `discard`). A handler runs inline on the core that owns the connection, between receiving a
//! batch and transmitting, so its replies ride on the same batch (and carry the ACK).

use crate::tcp::{ApiError, CloseReason, ConnId, Shard, TxSink};
use crate::time::Instant;
use core::net::SocketAddr;
use std::sync::Arc;

pub mod client;
pub mod discard;
pub mod echo;
pub mod http;
pub mod proxy_protocol;

/// The connection operations a handler uses, by connection. The stack's shard provides them
/// (the AF_XDP engine); another backend (kernel sockets, a test double) can provide them too,
/// so one handler runs unchanged on either.
pub trait Transport {
    /// Copies received bytes into `buf`; 0 when nothing is buffered.
    fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> usize;
    /// Zero-copy read: `f` sees the buffered bytes (up to two slices) and returns how many it
    /// consumed.
    fn recv_with(&mut self, id: ConnId, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize;
    /// Bytes buffered for reading.
    fn readable(&self, id: ConnId) -> usize;
    /// (local, remote) addresses.
    fn endpoints(&self, id: ConnId) -> Option<(SocketAddr, SocketAddr)>;
    /// Queues bytes; returns how many the send buffer took.
    fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, ApiError>;
    /// Bytes `send` would take now.
    fn send_capacity(&self, id: ConnId) -> usize;
    /// Asks for `on_writable` once send space frees (a short `send` asks by itself).
    fn want_writable(&mut self, id: ConnId);
    /// FIN after the queued data; reading goes on.
    fn shutdown(&mut self, id: ConnId);
    /// FIN after the queued data (RST if unread data remains); the connection is released.
    fn close(&mut self, id: ConnId);
    /// RST now.
    fn abort(&mut self, id: ConnId);
}

/// The stack's own connections: a shard and the frames it transmits.
struct ShardTransport<'a> {
    shard: &'a mut Shard,
    tx: &'a mut dyn TxSink,
    now: Instant,
}

impl Transport for ShardTransport<'_> {
    fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> usize {
        self.shard.recv(id, buf).unwrap_or(0)
    }
    fn recv_with(&mut self, id: ConnId, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize {
        self.shard.recv_with(id, f).unwrap_or(0)
    }
    fn readable(&self, id: ConnId) -> usize {
        self.shard.readable(id)
    }
    fn endpoints(&self, id: ConnId) -> Option<(SocketAddr, SocketAddr)> {
        self.shard.tuple(id).map(|t| (t.local, t.remote))
    }
    fn send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, ApiError> {
        self.shard.send(id, data)
    }
    fn send_capacity(&self, id: ConnId) -> usize {
        self.shard.send_capacity(id)
    }
    fn want_writable(&mut self, id: ConnId) {
        self.shard.want_writable(id);
    }
    fn shutdown(&mut self, id: ConnId) {
        let _ = self.shard.shutdown(self.now, id, self.tx);
    }
    fn close(&mut self, id: ConnId) {
        let _ = self.shard.close(self.now, id, self.tx);
    }
    fn abort(&mut self, id: ConnId) {
        let _ = self.shard.abort(self.now, id, self.tx);
    }
}

/// One connection, lent to a handler for the duration of a callback.
pub struct Conn<'a> {
    pub id: ConnId,
    pub now: Instant,
    io: ConnIo<'a>,
}

/// The shard directly on the engine's path (no virtual call per operation), any other
/// [`Transport`] through a trait object.
enum ConnIo<'a> {
    Shard(ShardTransport<'a>),
    Other(&'a mut dyn Transport),
}

impl<'a> Conn<'a> {
    /// A connection of the stack's own `shard`.
    pub fn new(id: ConnId, now: Instant, shard: &'a mut Shard, tx: &'a mut dyn TxSink) -> Self {
        Conn { id, now, io: ConnIo::Shard(ShardTransport { shard, tx, now }) }
    }
    /// A connection of another backend.
    pub fn with_transport(id: ConnId, now: Instant, t: &'a mut dyn Transport) -> Self {
        Conn { id, now, io: ConnIo::Other(t) }
    }
    fn t(&mut self) -> &mut dyn Transport {
        match &mut self.io {
            ConnIo::Shard(s) => s,
            ConnIo::Other(t) => *t,
        }
    }
    fn t_ref(&self) -> &dyn Transport {
        match &self.io {
            ConnIo::Shard(s) => s,
            ConnIo::Other(t) => *t,
        }
    }
    /// Copies received bytes into `buf`; 0 when nothing is buffered.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        let id = self.id;
        self.t().recv(id, buf)
    }
    /// Zero-copy read: `f` sees the buffered bytes (up to two slices) and returns how many it
    /// consumed.
    pub fn recv_with(&mut self, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize {
        let id = self.id;
        self.t().recv_with(id, f)
    }
    /// Bytes buffered for reading.
    pub fn readable(&self) -> usize {
        self.t_ref().readable(self.id)
    }
    /// The local port (which listener accepted it).
    pub fn local_port(&self) -> Option<u16> {
        self.local().map(|a| a.port())
    }
    /// The local address and port.
    pub fn local(&self) -> Option<SocketAddr> {
        self.t_ref().endpoints(self.id).map(|e| e.0)
    }
    /// The peer's address and port.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.t_ref().endpoints(self.id).map(|e| e.1)
    }
    /// Queues bytes; returns how many the send buffer took (an `on_writable` follows a short
    /// write).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, ApiError> {
        let id = self.id;
        self.t().send(id, data)
    }
    /// Bytes `send` would take now.
    pub fn send_capacity(&self) -> usize {
        self.t_ref().send_capacity(self.id)
    }
    /// Asks for `on_writable` once send space frees. A short `send` asks by itself; a handler
    /// that reads only what it can send (`send_capacity`) and finds no room calls this.
    pub fn want_writable(&mut self) {
        let id = self.id;
        self.t().want_writable(id);
    }
    /// Half-close: FIN after the queued data; reading goes on.
    pub fn shutdown(&mut self) {
        let id = self.id;
        self.t().shutdown(id);
    }
    /// Releases the connection: FIN after the queued data (RST if unread data remains).
    pub fn close(&mut self) {
        let id = self.id;
        self.t().close(id);
    }
    /// Resets the connection (RST).
    pub fn abort(&mut self) {
        let id = self.id;
        self.t().abort(id);
    }
}

/// What an application implements. Every method has a default that does nothing, except that
/// the defaults of `on_peer_closed` and `on_closed` release the connection, so a handler that
/// ignores closing never leaks one.
pub trait Handler {
    /// A passive open completed and the connection was accepted.
    fn on_accept(&mut self, _c: &mut Conn<'_>) {}
    /// An active open completed.
    fn on_connected(&mut self, _c: &mut Conn<'_>) {}
    /// New data can be read.
    fn on_data(&mut self, _c: &mut Conn<'_>) {}
    /// Send space became free after a short write.
    fn on_writable(&mut self, _c: &mut Conn<'_>) {}
    /// The peer sent FIN. The default closes our side too.
    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        c.close();
    }
    /// The connection is over (the handle is released by the engine right after).
    fn on_closed(&mut self, _id: ConnId, _reason: CloseReason) {}
    /// An active open the application wants now: (local, remote). The engine calls it until it
    /// returns `None`, once per loop, and reports each outcome through `on_connect_result`.
    fn poll_connect(&mut self, _now: Instant) -> Option<(core::net::SocketAddr, core::net::SocketAddr)> {
        None
    }
    /// The result of a `poll_connect` request: the new connection, or why it was not opened.
    fn on_connect_result(&mut self, _now: Instant, _r: Result<ConnId, ApiError>) {}
    /// Called once per turn of the core's loop, after the received batch: work that is not an
    /// answer to a connection event (the handler's own sockets, its own deadlines). `conns`
    /// lends any of the core's connections by id.
    fn on_poll(&mut self, _conns: &mut Conns<'_>) {}
    /// Descriptors the core's sleep also waits on (readable wakes it), e.g. the epoll instance
    /// of the handler's own sockets. Appended to `out`.
    fn wait_fds(&self, _out: &mut Vec<std::os::fd::RawFd>) {}
    /// The earliest of the handler's own deadlines (those `on_poll` keeps): a sleeping core
    /// wakes by then. Asked before every sleep, so it should be cheap.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// The handler's own counters, appended to `out` when the engine takes a statistics
    /// snapshot (about once a second, never per packet): they show in `serve`'s summary, its
    /// stats file and `/metrics`, summed over the cores by name.
    fn counters(&self, _out: &mut Vec<AppCounter>) {}
}

/// One counter (or gauge) a handler reports through [`Handler::counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppCounter {
    /// snake_case, unique within the handler (`proxy_accepted`); the metrics name is
    /// `xdptcp_<name>`.
    pub name: &'static str,
    /// One line for the metrics' HELP text.
    pub help: &'static str,
    pub value: u64,
    /// A level (open sessions) rather than a running total.
    pub gauge: bool,
}

/// Any connection of the core, lent by id to [`Handler::on_poll`].
pub struct Conns<'a> {
    pub now: Instant,
    io: ConnsIo<'a>,
}

enum ConnsIo<'a> {
    Shard(&'a mut Shard, &'a mut dyn TxSink),
    Other(&'a mut dyn Transport),
}

impl<'a> Conns<'a> {
    pub fn new(now: Instant, shard: &'a mut Shard, tx: &'a mut dyn TxSink) -> Self {
        Conns { now, io: ConnsIo::Shard(shard, tx) }
    }
    /// The connections of another backend (a test double, kernel sockets).
    pub fn with_transport(now: Instant, t: &'a mut dyn Transport) -> Self {
        Conns { now, io: ConnsIo::Other(t) }
    }
    /// The connection `id` (operations on a connection that is gone do nothing).
    pub fn conn(&mut self, id: ConnId) -> Conn<'_> {
        match &mut self.io {
            ConnsIo::Shard(shard, tx) => Conn::new(id, self.now, shard, *tx),
            ConnsIo::Other(t) => Conn::with_transport(id, self.now, *t),
        }
    }
}

/// Where a handler runs: the core (queue) it serves, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreInfo {
    pub index: usize,
    pub cores: usize,
}

/// Builds one core's handler for a listening port. The engine calls it once per core at start,
/// and each core then owns what it built: per-core state, no locks, no sharing.
pub type HandlerFactory = Arc<dyn Fn(CoreInfo) -> Box<dyn Handler + Send> + Send + Sync>;

/// The application on a listening port: a bundled one, or the user's own handler.
#[derive(Clone)]
pub enum App {
    Bundled(AppKind),
    Custom(HandlerFactory),
}

impl App {
    /// The user's handler, built per core by `make`.
    pub fn custom<H, F>(make: F) -> App
    where
        H: Handler + Send + 'static,
        F: Fn(CoreInfo) -> H + Send + Sync + 'static,
    {
        App::Custom(Arc::new(move |core| Box::new(make(core)) as Box<dyn Handler + Send>))
    }
    /// One core's handler.
    pub fn build(&self, core: CoreInfo) -> Box<dyn Handler + Send> {
        match self {
            App::Bundled(k) => k.build(),
            App::Custom(f) => f(core),
        }
    }
}

impl From<AppKind> for App {
    fn from(k: AppKind) -> App {
        App::Bundled(k)
    }
}

impl core::fmt::Debug for App {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            App::Bundled(k) => write!(f, "{k:?}"),
            App::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// The bundled applications, by name (`--app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppKind {
    Echo,
    /// HTTP/1.1 with a fixed response body of this many bytes.
    Http {
        body: usize,
    },
    Discard,
}

impl AppKind {
    pub fn build(&self) -> Box<dyn Handler + Send> {
        match self {
            AppKind::Echo => Box::new(echo::Echo::default()),
            AppKind::Http { body } => Box::new(http::Http::new(*body)),
            AppKind::Discard => Box::new(discard::Discard),
        }
    }
}

/// Runs every pending shard event through `h`, and opens the connections it asks for. Returns
/// the number of events handled.
pub fn dispatch<H: Handler + ?Sized>(shard: &mut Shard, h: &mut H, now: Instant, tx: &mut dyn TxSink) -> usize {
    use crate::tcp::Event;
    let mut n = 0;
    while let Some((local, remote)) = h.poll_connect(now) {
        let r = shard.connect(now, local, remote);
        h.on_connect_result(now, r);
    }
    while let Some(ev) = shard.poll_event() {
        n += 1;
        match ev {
            Event::AcceptReady { port } => {
                while let Some(id) = shard.accept(port) {
                    h.on_accept(&mut Conn::new(id, now, shard, tx));
                }
            }
            Event::Connected(id) => h.on_connected(&mut Conn::new(id, now, shard, tx)),
            Event::Readable(id) => h.on_data(&mut Conn::new(id, now, shard, tx)),
            Event::Writable(id) => h.on_writable(&mut Conn::new(id, now, shard, tx)),
            Event::PeerClosed(id) => {
                // Data that came with the FIN is read first.
                if shard.readable(id) > 0 {
                    h.on_data(&mut Conn::new(id, now, shard, tx));
                }
                h.on_peer_closed(&mut Conn::new(id, now, shard, tx));
            }
            Event::Closed(id, reason) => {
                h.on_closed(id, reason);
                let _ = shard.close(now, id, tx);
            }
        }
    }
    h.on_poll(&mut Conns::new(now, shard, tx));
    n
}

/// Several applications on one core, chosen by the local port of each connection.
pub struct Mux {
    by_port: hashbrown::HashMap<u16, Box<dyn Handler + Send>>,
    conn_port: hashbrown::HashMap<ConnId, u16>,
}

impl Mux {
    /// The handlers of `core`, one per port.
    pub fn new(apps: &[(u16, App)], core: CoreInfo) -> Self {
        Mux { by_port: apps.iter().map(|(p, a)| (*p, a.build(core))).collect(), conn_port: hashbrown::HashMap::new() }
    }

    fn route(&mut self, id: ConnId) -> Option<&mut Box<dyn Handler + Send>> {
        let port = self.conn_port.get(&id)?;
        self.by_port.get_mut(port)
    }
}

impl Handler for Mux {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        let Some(port) = c.local_port() else { return };
        self.conn_port.insert(c.id, port);
        if let Some(h) = self.route(c.id) {
            h.on_accept(c);
        }
    }
    fn on_connected(&mut self, c: &mut Conn<'_>) {
        if let Some(h) = self.route(c.id) {
            h.on_connected(c);
        }
    }
    fn on_data(&mut self, c: &mut Conn<'_>) {
        if let Some(h) = self.route(c.id) {
            h.on_data(c);
        }
    }
    fn on_writable(&mut self, c: &mut Conn<'_>) {
        if let Some(h) = self.route(c.id) {
            h.on_writable(c);
        }
    }
    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        match self.route(c.id) {
            Some(h) => h.on_peer_closed(c),
            None => c.close(),
        }
    }
    fn on_closed(&mut self, id: ConnId, reason: CloseReason) {
        if let Some(h) = self.route(id) {
            h.on_closed(id, reason);
        }
        self.conn_port.remove(&id);
    }
    fn on_poll(&mut self, conns: &mut Conns<'_>) {
        for h in self.by_port.values_mut() {
            h.on_poll(conns);
        }
    }
    fn wait_fds(&self, out: &mut Vec<std::os::fd::RawFd>) {
        for h in self.by_port.values() {
            h.wait_fds(out);
        }
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.by_port.values().filter_map(|h| h.next_deadline()).min()
    }
    fn counters(&self, out: &mut Vec<AppCounter>) {
        for h in self.by_port.values() {
            h.counters(out);
        }
    }
}
