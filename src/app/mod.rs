//! Applications: the handler trait the engine drives, and the bundled apps (`echo`, `http`,
//! `discard`). A handler runs inline on the core that owns the connection, between receiving a
//! batch and transmitting, so its replies ride on the same batch (and carry the ACK).

use crate::tcp::{ApiError, CloseReason, ConnId, Shard, TxSink};
use crate::time::Instant;

pub mod client;
pub mod discard;
pub mod echo;
pub mod http;

/// One connection, lent to a handler for the duration of a callback.
pub struct Conn<'a> {
    pub id: ConnId,
    pub now: Instant,
    shard: &'a mut Shard,
    tx: &'a mut dyn TxSink,
}

impl<'a> Conn<'a> {
    pub fn new(id: ConnId, now: Instant, shard: &'a mut Shard, tx: &'a mut dyn TxSink) -> Self {
        Conn { id, now, shard, tx }
    }
    /// Copies received bytes into `buf`; 0 when nothing is buffered.
    pub fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.shard.recv(self.id, buf).unwrap_or(0)
    }
    /// Zero-copy read: `f` sees the buffered bytes (up to two slices) and returns how many it
    /// consumed.
    pub fn recv_with(&mut self, f: &mut dyn FnMut(&[u8], &[u8]) -> usize) -> usize {
        self.shard.recv_with(self.id, f).unwrap_or(0)
    }
    pub fn readable(&self) -> usize {
        self.shard.readable(self.id)
    }
    /// The local port (which listener accepted it).
    pub fn local_port(&self) -> Option<u16> {
        self.shard.tuple(self.id).map(|t| t.local.port())
    }
    /// Queues bytes; returns how many the send buffer took (a `on_writable` follows a short
    /// write).
    pub fn send(&mut self, data: &[u8]) -> Result<usize, ApiError> {
        self.shard.send(self.id, data)
    }
    pub fn send_capacity(&self) -> usize {
        self.shard.send_capacity(self.id)
    }
    /// Half-close: FIN after the queued data.
    pub fn shutdown(&mut self) {
        let _ = self.shard.shutdown(self.now, self.id, self.tx);
    }
    /// Releases the connection: FIN after the queued data (RST if unread data remains).
    pub fn close(&mut self) {
        let _ = self.shard.close(self.now, self.id, self.tx);
    }
    pub fn abort(&mut self) {
        let _ = self.shard.abort(self.now, self.id, self.tx);
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
    n
}

/// Several applications on one core, chosen by the local port of each connection.
pub struct Mux {
    by_port: hashbrown::HashMap<u16, Box<dyn Handler + Send>>,
    conn_port: hashbrown::HashMap<ConnId, u16>,
}

impl Mux {
    pub fn new(apps: Vec<(u16, AppKind)>) -> Self {
        Mux { by_port: apps.into_iter().map(|(p, k)| (p, k.build())).collect(), conn_port: hashbrown::HashMap::new() }
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
}
