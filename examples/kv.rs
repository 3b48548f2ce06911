//! A line-protocol key-value server on xdptcp, with one store per core.
//!
//! ```text
//! SET <key> <value>\n   ->  OK\n
//! GET <key>\n           ->  VALUE <value>\n   or  NOT_FOUND\n
//! DEL <key>\n           ->  DELETED\n         or  NOT_FOUND\n
//! CORE\n                ->  CORE <index> OF <cores>\n
//! QUIT\n                ->  BYE\n, then the server closes
//! anything else         ->  ERROR unknown command\n
//! ```
//!
//! Each core builds its own `Kv` (the factory passed to `listen` runs once per core) and sees
//! only the connections the NIC steered to its queue: the store is per core, with no lock and
//! no sharing. A client that needs one store for every connection runs one queue, or a real
//! service would shard keys to cores; `CORE` says which store a connection talks to.
//!
//! Backpressure: a reply the send buffer cannot take now waits in the connection's output, and
//! the connection's requests are not read until it drains (`on_writable`), so a client that
//! sends without reading is held back by TCP's window instead of growing our memory.
//!
//! Run: `cargo run --release --example kv -- --iface eth0 --addr 198.18.0.1 --port 7000`
//! (root or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW), then `nc 198.18.0.1 7000`.

use clap::Parser;
use std::collections::HashMap;
use std::net::IpAddr;
use xdptcp::app::{Conn, CoreInfo, Handler};
use xdptcp::engine::Engine;
use xdptcp::tcp::{CloseReason, ConnId};

#[derive(Parser, Debug)]
struct Args {
    /// Interface to serve on.
    #[arg(long)]
    iface: String,
    /// Address to serve (default: every address of the interface).
    #[arg(long)]
    addr: Option<IpAddr>,
    #[arg(long, default_value_t = 7000)]
    port: u16,
    /// Receive queues to serve (default: all of the interface's).
    #[arg(long)]
    queues: Option<u32>,
}

/// A request line longer than this ends the connection.
const MAX_LINE: usize = 4096;
/// Output above this stops reading the connection's requests until it drains.
const OUT_HIGH: usize = 64 * 1024;

#[derive(Default)]
struct Session {
    /// Bytes of an unfinished request line.
    line: Vec<u8>,
    /// Replies the send buffer has not taken yet.
    out: Vec<u8>,
    /// Close once `out` is sent.
    closing: bool,
}

struct Kv {
    core: CoreInfo,
    store: HashMap<Vec<u8>, Vec<u8>>,
    sessions: HashMap<ConnId, Session>,
}

impl Kv {
    fn new(core: CoreInfo) -> Kv {
        Kv { core, store: HashMap::new(), sessions: HashMap::new() }
    }

    /// Executes one request line, appending the reply; false when the connection should close.
    fn execute(&mut self, line: &[u8], out: &mut Vec<u8>) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut parts = line.splitn(3, |&b| b == b' ');
        let cmd = parts.next().unwrap_or_default();
        let key = parts.next();
        let value = parts.next();
        match (cmd, key, value) {
            (b"SET", Some(k), Some(v)) => {
                self.store.insert(k.to_vec(), v.to_vec());
                out.extend_from_slice(b"OK\n");
            }
            (b"GET", Some(k), None) => match self.store.get(k) {
                Some(v) => {
                    out.extend_from_slice(b"VALUE ");
                    out.extend_from_slice(v);
                    out.push(b'\n');
                }
                None => out.extend_from_slice(b"NOT_FOUND\n"),
            },
            (b"DEL", Some(k), None) => {
                let r: &[u8] = if self.store.remove(k).is_some() { b"DELETED\n" } else { b"NOT_FOUND\n" };
                out.extend_from_slice(r);
            }
            (b"CORE", None, None) => {
                out.extend_from_slice(format!("CORE {} OF {}\n", self.core.index, self.core.cores).as_bytes());
            }
            (b"QUIT", None, None) => {
                out.extend_from_slice(b"BYE\n");
                return false;
            }
            _ => out.extend_from_slice(b"ERROR unknown command\n"),
        }
        true
    }

    /// Sends what output the connection takes; closes it once a closing session is flushed.
    fn flush(s: &mut Session, c: &mut Conn<'_>) {
        if !s.out.is_empty() {
            let n = c.send(&s.out).unwrap_or(0);
            s.out.drain(..n);
        }
        if s.out.is_empty() && s.closing {
            c.close();
        }
    }

    /// Reads and answers requests while the output has room.
    fn serve(&mut self, c: &mut Conn<'_>) {
        let Some(mut s) = self.sessions.remove(&c.id) else { return };
        let mut buf = [0u8; 4096];
        while !s.closing && s.out.len() < OUT_HIGH {
            let n = c.recv(&mut buf);
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if s.closing {
                    break; // after QUIT the rest is not read
                }
                if b != b'\n' {
                    s.line.push(b);
                    if s.line.len() > MAX_LINE {
                        s.out.extend_from_slice(b"ERROR line too long\n");
                        s.closing = true;
                    }
                    continue;
                }
                let line = std::mem::take(&mut s.line);
                if !self.execute(&line, &mut s.out) {
                    s.closing = true;
                }
            }
        }
        Self::flush(&mut s, c);
        self.sessions.insert(c.id, s);
    }
}

impl Handler for Kv {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.sessions.insert(c.id, Session::default());
    }
    fn on_data(&mut self, c: &mut Conn<'_>) {
        self.serve(c);
    }
    fn on_writable(&mut self, c: &mut Conn<'_>) {
        // Output drained: send the rest, then read the requests that waited.
        if let Some(s) = self.sessions.get_mut(&c.id) {
            Self::flush(s, c);
        }
        self.serve(c);
    }
    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        // The client is done sending: answer what it sent, then close.
        self.serve(c);
        if let Some(s) = self.sessions.get_mut(&c.id) {
            s.closing = true;
            Self::flush(s, c);
        }
    }
    fn on_closed(&mut self, id: ConnId, _reason: CloseReason) {
        self.sessions.remove(&id);
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut b = Engine::builder(&a.iface).listen(a.port, Kv::new);
    if let Some(addr) = a.addr {
        b = b.addr(addr);
    }
    if let Some(q) = a.queues {
        b = b.queues(q);
    }
    let engine = b.start()?;
    println!("kv: serving port {} on {} ({} queue(s)); SIGINT stops", a.port, a.iface, engine.queues());
    let last = engine.serve_until_signal(std::time::Duration::from_secs(5));
    println!("kv: stopped; {} connection(s) opened", last.tcp.tcp_passive_opens);
    Ok(())
}
