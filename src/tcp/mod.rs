//! The TCP protocol, sans-IO. Read RFC 9293 §3.10, RFC 5961, RFC 7323, RFC 6298, RFC 4987.

// No panic on anything that comes off the wire (STYLE.md §4).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use core::net::IpAddr;

/// Where the TCP layer writes the IP packets it sends.
///
/// The layer below (net) prepends the link header and resolves the next hop; tests collect the
/// packets in a `Vec`.
pub trait TxSink {
    /// Lends a buffer of exactly `len` bytes for one IP packet to `dst`; `fill` writes the whole
    /// IP packet (header included). Returns false, without calling `fill`, when no frame is free.
    fn send_ip(&mut self, dst: IpAddr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool;
}

/// A sink that keeps every packet: for tests and simulation.
impl TxSink for Vec<Vec<u8>> {
    fn send_ip(&mut self, _dst: IpAddr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut p = vec![0u8; len];
        fill(&mut p);
        self.push(p);
        true
    }
}

pub mod buffer;
pub mod cc;
pub mod config;
pub mod conn;
mod conn_index;
pub mod counters;
pub mod emit;
pub mod event;
pub mod icmp;
pub mod listener;
pub mod owners;
pub mod rack;
pub mod rst_limit;
pub mod rtt;
pub mod sack;
pub mod secrets;
pub mod shard;
pub mod state;
pub mod syncookie;
pub mod time_wait;
pub mod tuple;

pub use config::{Config, CongestionControl, SynCookies};
pub use conn::{ApiError, TcbInfo};
pub use counters::{Counters, DropReason};
pub use event::{CloseReason, Event};
pub use icmp::IcmpError;
pub use owners::FlowOwners;
pub use secrets::Secrets;
pub use shard::{parse_ip_tcp, Shard, Verdict};
pub use state::State;
pub use tuple::{ConnId, FourTuple};
