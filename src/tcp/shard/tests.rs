//! The connection table (`ConnIndex`) seen through the shard's API.

use super::*;
use crate::wire::TcpOptions;
use std::net::{Ipv6Addr, SocketAddrV6};

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED))
}

/// A segment from `from` to `to`, as a peer that is not simulated would send it.
fn craft(from: SocketAddr, to: SocketAddr, seq: u32, ack: u32, flags: TcpFlags, o: TcpOptions) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let seg = OutSegment { seq: SeqNum(seq), ack: SeqNum(ack), flags, window: 65535, options: o, payload: (&[], &[]) };
    assert!(emit(&mut out, &FourTuple::new(from, to), &seg, 64));
    out.pop().unwrap_or_default()
}

/// A tuple is the addresses and ports (RFC 9293 §3.1); an IPv6 scope id or flow label in the
/// `SocketAddr` the application passes is not part of it. `connect` with a scope id makes
/// a connection that `find`, `owns` and `state_of` find under the tuple it was given, that a
/// second `connect` to the same tuple does not duplicate, and that the peer's SYN-ACK reaches.
#[test]
fn connect_with_an_ipv6_scope_id_is_one_connection() {
    let mut s = Shard::new(Config::default(), Secrets::from_seed(1));
    let now = Instant::from_secs(10);
    let local = SocketAddr::new(v6("fe80::1"), 40000);
    let remote = SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap_or(Ipv6Addr::LOCALHOST), 80, 7, 3));
    let id = s.connect(now, local, remote).unwrap_or_else(|e| panic!("{e}"));
    let asked = FourTuple::new(local, remote);
    assert_eq!(s.find(&asked), Some(id), "find with the tuple connect was given");
    assert!(s.owns(&asked));
    assert_eq!(s.state_of(&asked), Some(State::SynSent));
    assert_eq!(s.connect(now, local, remote), Err(ApiError::AlreadyExists), "a second connection on one tuple");
    let mut out: Vec<Vec<u8>> = Vec::new();
    s.poll_transmit(now, &mut out);
    let (_, _, syn) = parse_ip_tcp(&out[0]).unwrap_or_else(|e| panic!("{e:?}"));
    let wire_remote = SocketAddr::new(remote.ip(), 80);
    let synack = craft(
        wire_remote,
        local,
        5000,
        syn.seq.0.wrapping_add(1),
        TcpFlags::SYN | TcpFlags::ACK,
        TcpOptions { mss: Some(1220), ..TcpOptions::default() },
    );
    s.handle_ip(now, &synack, &mut out);
    assert_eq!(s.state(id), Some(State::Established));
    assert_eq!(s.conn_count(), 1);
}
