//! TIME-WAIT through the shard's public API, for what the compact table (a ring in arrival
//! order, no timer per entry: `src/tcp/time_wait/table.rs`) must keep: IPv6 and IPv4 entries
//! side by side, timestamps on the ACKs it sends (the offset is derived, not stored), the
//! shard's `poll_timeout` waking for the oldest entry, the socket listing, and
//! `tcp_max_tw_buckets` counting both families. RFC 1337 and RFC 6191 have their tests in
//! tcp_close.rs, tcp_review.rs, tcp_hardening.rs and the differential scenarios.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, FourTuple, State};
use xdptcp::time::Duration;

const TW: Duration = Duration::from_secs(60);

/// `a` (the client, on `port`) closes first: `a` ends in TIME-WAIT. Returns B's FIN.
fn client_time_wait(a: &mut Host, b: &mut Host, port: u16) -> Vec<u8> {
    if b.shard.listening_ports().is_empty() {
        b.shard.listen(80, None, 128).unwrap();
    }
    let ida = a.connect(port, b.addr(80));
    b.deliver(&a.take_one());
    a.deliver(&b.take_one());
    b.deliver(&a.take_one());
    let idb = b.shard.accept(80).unwrap();
    a.close(ida);
    b.deliver(&a.take_one());
    b.close(idb);
    // B's ACK of A's FIN, then its own FIN.
    let out = b.take();
    for p in &out {
        a.deliver(p);
    }
    b.deliver(&a.take_one());
    let fin = out.last().unwrap().clone();
    assert_eq!(a.state_of(port, b.addr(80)), Some(State::TimeWait));
    fin
}

/// An IPv6 entry next to IPv4 ones: each answers a retransmitted FIN with the ACK the
/// connection would have sent (timestamps included, TSval on the connection's clock), and
/// each ends 2·MSL after it began, the shard waking for it on its own.
#[test]
fn ipv6_and_ipv4_entries_answer_and_end_on_time() {
    let cfg = Config::default();
    let (mut a4, mut b4) = (Host::new("198.18.0.2", cfg.clone(), 1), Host::new("198.18.0.1", cfg.clone(), 2));
    let (mut a6, mut b6) = (Host::new("fd00::2", cfg.clone(), 1), Host::new("fd00::1", cfg, 2));
    let fin4 = client_time_wait(&mut a4, &mut b4, 40000);
    let fin6 = client_time_wait(&mut a6, &mut b6, 40000);
    let t0 = a6.now;
    assert_eq!((a6.shard.time_wait_len(), a6.shard.conn_count()), (1, 0), "a compact entry, no TCB");
    // B's FIN comes again at once and 10 s later: the entry answers as the connection would
    // have, its TSval moving on with the connection's timestamp clock.
    for (a, fin) in [(&mut a4, &fin4), (&mut a6, &fin6)] {
        a.deliver(fin);
        let ack1 = Seg::parse(&a.take_one());
        let first = ack1.options.timestamps.expect("timestamps, as the connection had").0;
        a.run_until(t0 + Duration::from_secs(10));
        a.deliver(fin);
        let ack2 = Seg::parse(&a.take_one());
        assert!(ack2.is(ACK));
        assert_eq!((ack2.seq, ack2.ack, ack2.window), (ack1.seq, ack1.ack, ack1.window));
        let (tsval, tsecr) = ack2.options.timestamps.expect("timestamps, as the connection had");
        assert_eq!(tsecr, ack1.options.timestamps.unwrap().1);
        assert_eq!(tsval.wrapping_sub(first), 10_000, "the connection's clock, 10 s on");
    }
    // The FIN restarted 2·MSL at t0 + 10 s; the shard's next wake-up is the entry's end.
    let end = t0 + Duration::from_secs(10) + TW;
    assert_eq!(a6.shard.poll_timeout(), Some(end));
    a6.run_until(end - Duration::from_millis(1));
    assert_eq!(a6.state_of(40000, b6.addr(80)), Some(State::TimeWait));
    a6.run_until(end);
    assert_eq!(a6.state_of(40000, b6.addr(80)), None);
    assert_eq!((a6.shard.time_wait_len(), a6.shard.time_wait_slots(), a6.shard.poll_timeout()), (0, 0, None));
}

/// The listing shows every entry once, oldest first, both families.
#[test]
fn listing_shows_every_entry_once() {
    let cfg = plain_cfg();
    let mut a = Host::new("198.18.0.2", cfg.clone(), 1);
    let mut b = Host::new("198.18.0.1", cfg, 2);
    for port in 40000..40010 {
        client_time_wait(&mut a, &mut b, port);
    }
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(next) = a.shard.list_sockets(from, 3, &mut out) {
        from = next;
    }
    let ports: Vec<u16> = out.iter().filter(|e| e.state == State::TimeWait).map(|e| e.local.1).collect();
    assert_eq!(ports, (40000..40010).collect::<Vec<_>>());
}

/// `tcp_max_tw_buckets` counts IPv4 and IPv6 entries together; at the limit a closing
/// connection closes at once (TcpExtTCPTimeWaitOverflow) and its tuple is free.
#[test]
fn max_tw_buckets_counts_both_families() {
    let cfg = Config { max_tw_buckets: 3, ..plain_cfg() };
    let (mut a4, mut b4) = (Host::new("198.18.0.2", cfg.clone(), 1), Host::new("198.18.0.1", cfg.clone(), 2));
    // One host, both families: a4 holds the IPv4 entries, and IPv6 ones through a second
    // local address of the same shard.
    for port in [40000, 40001] {
        client_time_wait(&mut a4, &mut b4, port);
    }
    let mut b6 = Host::new("fd00::1", cfg, 3);
    b6.shard.listen(80, None, 128).unwrap();
    let v6 = |port: u16| SocketAddr::new("fd00::2".parse().unwrap(), port);
    for port in [40002, 40003] {
        a4.ip = "fd00::2".parse().unwrap();
        let ida = a4.connect(port, b6.addr(80));
        b6.deliver(&a4.take_one());
        a4.deliver(&b6.take_one());
        b6.deliver(&a4.take_one());
        let idb = b6.shard.accept(80).unwrap();
        a4.close(ida);
        b6.deliver(&a4.take_one());
        b6.close(idb);
        for p in b6.take() {
            a4.deliver(&p);
        }
        b6.deliver(&a4.take_one());
    }
    let t = |port: u16| FourTuple::new(v6(port), b6.addr(80));
    assert_eq!(a4.shard.state_of(&t(40002)), Some(State::TimeWait));
    assert_eq!(a4.shard.state_of(&t(40003)), None, "the fourth entry was not made");
    assert_eq!((a4.shard.time_wait_len(), a4.shard.counters().tcp_ext_tcp_time_wait_overflow), (3, 1));
    assert_eq!(a4.shard.conn_count(), 0);
}
