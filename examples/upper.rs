//! A streaming protocol on xdptcp that uses half-close and backpressure: every byte the client
//! sends comes back in upper case, and when the client half-closes (FIN after its last byte)
//! the server sends a trailer line, `\n-- <n> bytes\n`, then half-closes too.
//!
//! - Backpressure: the server reads only as much as the send buffer can take now
//!   (`send_capacity`). What it does not read stays in the receive buffer, the advertised window
//!   shrinks, and a client that sends without reading is held back by TCP itself. With no room
//!   left it asks for `on_writable` (`want_writable`), which resumes the reading once the client
//!   has read some.
//! - Half-close: the client's FIN (`on_peer_closed`) is not the end of the conversation; the
//!   server finishes the stream, then `shutdown()` sends its own FIN. The connection is
//!   released when both directions are closed (`on_closed`).
//!
//! Run: `cargo run --release --example upper -- --iface eth0 --addr 198.18.0.1 --port 7001`,
//! then e.g. `printf 'hello' | nc -N 198.18.0.1 7001`.

use clap::Parser;
use std::collections::HashMap;
use std::net::IpAddr;
use xdptcp::app::{Conn, Handler};
use xdptcp::engine::Engine;
use xdptcp::tcp::{CloseReason, ConnId};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    iface: String,
    #[arg(long)]
    addr: Option<IpAddr>,
    #[arg(long, default_value_t = 7001)]
    port: u16,
    #[arg(long)]
    queues: Option<u32>,
}

#[derive(Default)]
struct Stream {
    /// Bytes transformed and sent so far.
    bytes: u64,
    /// The client half-closed.
    peer_done: bool,
    /// The trailer not yet taken by the send buffer (set once input is exhausted).
    trailer: Option<Vec<u8>>,
    /// Our FIN is queued.
    shut: bool,
}

#[derive(Default)]
struct Upper {
    streams: HashMap<ConnId, Stream>,
}

impl Upper {
    /// Moves as much input to output as the send buffer takes, then the trailer and the FIN
    /// once the client is done and everything it sent went out.
    fn pump(&mut self, c: &mut Conn<'_>) {
        let Some(s) = self.streams.get_mut(&c.id) else { return };
        loop {
            if c.readable() == 0 {
                break;
            }
            let room = c.send_capacity();
            if room == 0 {
                // The rest waits in the receive buffer (the window closes on the client) until
                // the client reads and its ACKs free room here.
                c.want_writable();
                break;
            }
            let mut chunk = [0u8; 4096];
            let want = room.min(chunk.len());
            let n = c.recv(&mut chunk[..want]);
            chunk[..n].make_ascii_uppercase();
            // At most `room` bytes were read, so the send buffer takes them all.
            let sent = c.send(&chunk[..n]).unwrap_or(0);
            s.bytes += sent as u64;
            if sent < n {
                c.abort(); // cannot happen with the capacity checked; never lose bytes silently
                return;
            }
        }
        if s.peer_done && c.readable() == 0 && !s.shut {
            let t = s.trailer.get_or_insert_with(|| format!("\n-- {} bytes\n", s.bytes).into_bytes());
            let n = c.send(t).unwrap_or(0);
            t.drain(..n);
            if t.is_empty() {
                c.shutdown();
                s.shut = true;
            }
        }
    }
}

impl Handler for Upper {
    fn on_accept(&mut self, c: &mut Conn<'_>) {
        self.streams.insert(c.id, Stream::default());
    }
    fn on_data(&mut self, c: &mut Conn<'_>) {
        self.pump(c);
    }
    fn on_writable(&mut self, c: &mut Conn<'_>) {
        self.pump(c);
    }
    fn on_peer_closed(&mut self, c: &mut Conn<'_>) {
        // Not a close: the client is done sending and still reads the rest.
        if let Some(s) = self.streams.get_mut(&c.id) {
            s.peer_done = true;
        }
        self.pump(c);
    }
    fn on_closed(&mut self, id: ConnId, _reason: CloseReason) {
        self.streams.remove(&id);
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let mut b = Engine::builder(&a.iface).listen(a.port, |_core| Upper::default());
    if let Some(addr) = a.addr {
        b = b.addr(addr);
    }
    if let Some(q) = a.queues {
        b = b.queues(q);
    }
    let engine = b.start()?;
    println!("upper: serving port {} on {} ({} queue(s)); SIGINT stops", a.port, a.iface, engine.queues());
    engine.serve_until_signal(std::time::Duration::from_secs(5));
    Ok(())
}
