//! xdptcp: a kernel-bypass TCP stack on AF_XDP.
//!
//! The crate is layered, lowest first; each layer imports only the layers above it in this list:
//!
//! | layer    | owns |
//! |----------|------|
//! | [`wire`] | zero-copy views and emitters for Ethernet, ARP, IPv4, IPv6, TCP, ICMP; checksums; sequence numbers |
//! | [`tcp`]  | the protocol, sans-IO: a [`tcp::Shard`] takes `(now, segment)` and emits frames and events |
//! | [`net`]  | local addresses, the neighbour cache, ICMP, dispatch from a frame to a protocol |
//! | [`io`]   | frame I/O behind one trait: AF_XDP (`io::xdp`) and an in-memory link (`io::mem`) |
//! | [`app`]  | the handler trait applications implement, and the bundled apps |
//! | [`engine`] | the per-core run-to-completion loop, core pinning, the clock, control, stats, and its public API ([`engine::Engine::builder`]) |
//! | [`rig`]  | the measuring rig: the kernel-socket baseline server, load generators, floods |
//! | `cli`    | the `xdptcp` binary |
//!
//! # Your service on the stack
//!
//! An application implements [`app::Handler`]: callbacks for a connection accepted, data to
//! read, send space freed, the peer's FIN, the end. [`engine::Engine::builder`] names the
//! interface and the ports; each port gets a factory that builds one handler per core, so a
//! handler's state is per core and needs no lock. The core calls its handler between receiving
//! a batch and transmitting, so replies ride on the same batch (and carry the ACK).
//!
//! ```no_run
//! use xdptcp::app::{Conn, CoreInfo, Handler};
//! use xdptcp::engine::Engine;
//!
//! /// Echoes in upper case, and counts what it served on its core.
//! struct Upper {
//!     core: CoreInfo,
//!     bytes: u64,
//! }
//!
//! impl Handler for Upper {
//!     fn on_data(&mut self, c: &mut Conn<'_>) {
//!         let mut buf = [0u8; 2048];
//!         // Read only what the send buffer takes: the rest waits, and TCP's window holds
//!         // the client back.
//!         while c.readable() > 0 {
//!             let room = c.send_capacity().min(buf.len());
//!             if room == 0 {
//!                 c.want_writable(); // on_writable comes when the client has read some
//!                 break;
//!             }
//!             let n = c.recv(&mut buf[..room]);
//!             buf[..n].make_ascii_uppercase();
//!             self.bytes += c.send(&buf[..n]).unwrap_or(0) as u64;
//!         }
//!     }
//!     fn on_writable(&mut self, c: &mut Conn<'_>) {
//!         self.on_data(c);
//!     }
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     let engine = Engine::builder("eth0")
//!         .addr("198.18.0.1".parse()?)
//!         .listen(7000, |core| Upper { core, bytes: 0 })
//!         .start()?;
//!     // SIGINT stops; SIGTERM drains for up to 5 s.
//!     let stats = engine.serve_until_signal(std::time::Duration::from_secs(5));
//!     println!("{} connections", stats.tcp.tcp_passive_opens);
//!     Ok(())
//! }
//! ```
//!
//! `examples/kv.rs` (a key-value server with per-core stores) and `examples/upper.rs`
//! (half-close and backpressure) are complete programs.
//!
//! # The sans-IO contract
//!
//! `wire` and `tcp` are pure: frames and a clock value in, frames and events out. They make no
//! system calls, read no clock, draw no random numbers (secrets are handed in by the engine) and
//! never panic on anything that came off the wire: malformed input is a typed error and a drop
//! counter. Only `io::xdp` and `engine` touch the operating system.

pub mod app;
pub mod engine;
pub mod io;
pub mod net;
pub mod rig;
pub mod tcp;
pub mod time;
pub mod wire;
