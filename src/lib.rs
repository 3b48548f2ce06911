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
//! | [`engine`] | the per-core run-to-completion loop, core pinning, the clock, control, stats |
//! | `cli`    | the `xdptcp` binary |
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
pub mod tcp;
pub mod time;
pub mod wire;
