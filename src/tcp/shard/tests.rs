//! The connection table (`ConnIndex`) and the timer wake-ups (`Wakeups`) checked against their
//! invariants with the shard's insides in view, while two shards run connections that reuse a
//! handful of tuples (IPv4 and IPv6 with the same leading bytes) over a lossy link, and the
//! applications hold, release and abort handles at random.

use super::*;
use crate::time::Duration;
use crate::wire::TcpOptions;
use std::collections::HashSet;
use std::net::{Ipv6Addr, SocketAddrV6};

impl Shard {
    /// Checks everything the table and the wake-ups promise, once output is done (after
    /// `poll_transmit`; a TCB still queued for output is settled by the next one).
    fn check_invariants(&self) {
        // Every entry names a TCB, and the table finds that TCB for its tuple; no slot twice.
        let mut seen = HashSet::new();
        for index in self.conns.indexes() {
            assert!(seen.insert(index), "slot {index} filed twice");
            let slot = &self.slab[index as usize];
            let tcb = slot.tcb.as_deref().unwrap_or_else(|| panic!("slot {index} filed but empty"));
            assert_eq!(self.conn_get(&tcb.tuple()), Some(tcb.id), "{:?}", tcb.tuple());
        }
        assert_eq!(seen.len(), self.conns.len());
        let mut listed = Vec::new();
        let mut from = 0;
        while let Some(next) = self.list_sockets(from, 3, &mut listed) {
            from = next;
        }
        for (i, slot) in self.slab.iter().enumerate() {
            let Some(tcb) = slot.tcb.as_deref() else { continue };
            assert_eq!(tcb.id, ConnId { index: i as u32, generation: slot.generation });
            if tcb.in_dirty {
                continue;
            }
            let t = tcb.tuple();
            let filed = self.conn_get(&t) == Some(tcb.id);
            // Filed exactly while the connection is neither CLOSED nor TIME-WAIT (which the
            // compact table holds), whether or not the application still holds the handle.
            let live = !matches!(tcb.state, State::Closed | State::TimeWait);
            assert_eq!(filed, live, "{t:?} in {:?}, filed {filed}", tcb.state);
            if filed {
                assert_eq!(self.find(&t), Some(tcb.id));
                assert_eq!(self.state_of(&t), Some(tcb.state));
                assert!(self.owns(&t));
                assert!(!self.syn_queue.contains_key(&t), "{t:?} both a TCB and a SYN-queue entry");
                assert!(!self.time_wait.contains(&t), "{t:?} both a TCB and in TIME-WAIT");
                let n = listed.iter().filter(|e| e.remote == Some(t.remote) && e.local.1 == t.local.port()).count();
                let n_tw = usize::from(self.time_wait.contains(&t));
                assert_eq!(n - n_tw, 1, "{t:?} listed {n} times");
            }
            // A deadline is always covered by a remembered heap entry at or before it.
            if let Some(at) = tcb.timers.next() {
                let key = TimerKey::Conn(tcb.id);
                let woken = self.timers.iter().any(|Reverse((q, k))| {
                    *k == key && *q <= at && {
                        let mut w = tcb.queued;
                        w.take(*q)
                    }
                });
                assert!(woken, "{t:?} in {:?} due at {at:?} and no wake-up for it", tcb.state);
            }
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED))
}

/// Two shards, connections over six tuples at most (three client ports, IPv4 198.18.0.x and
/// IPv6 c612:x:: whose first four bytes are the IPv4 address's), a link that loses one packet
/// in ten and reorders within 40 ms, and applications that connect, send, shut down, close,
/// abort, or keep a dead connection's handle for a while. The invariants hold after every step.
#[test]
fn table_and_wakeups_hold_under_tuple_reuse() {
    let cfg = Config { time_wait: Duration::from_secs(2), keepalive: true, ..Config::default() };
    for seed in 1..=3u64 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut sh =
            [Shard::new(cfg.clone(), Secrets::from_seed(seed)), Shard::new(cfg.clone(), Secrets::from_seed(seed + 9))];
        sh[1].listen(80, None, 64).unwrap_or(());
        let client_ip = [IpAddr::V4([198, 18, 0, 2].into()), v6("c612:2::")];
        let server_ip = [IpAddr::V4([198, 18, 0, 1].into()), v6("c612:1::")];
        let mut held: [Vec<ConnId>; 2] = [Vec::new(), Vec::new()];
        let mut link: Vec<(Instant, usize, Vec<u8>)> = Vec::new();
        let mut now = Instant::from_secs(100);
        let mut max_heap = 0usize;
        for step in 0..20_000u32 {
            let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
            match rng.below(12) {
                0 | 1 => {
                    let f = rng.below(2) as usize;
                    let local = SocketAddr::new(client_ip[f], 1000 + rng.below(3) as u16);
                    if let Ok(id) = sh[0].connect(now, local, SocketAddr::new(server_ip[f], 80)) {
                        held[0].push(id);
                    }
                }
                2..=5 => {
                    let side = rng.below(2) as usize;
                    if !held[side].is_empty() {
                        let i = rng.below(held[side].len() as u64) as usize;
                        let id = held[side][i];
                        match rng.below(10) {
                            0..=4 => {
                                let _ = sh[side].send(id, &[7u8; 3000]);
                            }
                            5 => {
                                let _ = sh[side].shutdown(now, id, &mut out[side]);
                            }
                            6 | 7 => {
                                let _ = sh[side].close(now, id, &mut out[side]);
                                held[side].swap_remove(i);
                            }
                            8 => {
                                let _ = sh[side].abort(now, id, &mut out[side]);
                                held[side].swap_remove(i);
                            }
                            _ => {
                                let mut buf = [0u8; 4096];
                                let _ = sh[side].recv(id, &mut buf);
                            }
                        }
                    }
                }
                _ => {
                    // Time passes to the next packet or timer, or a little.
                    let next = [link.iter().map(|x| x.0).min(), sh[0].poll_timeout(), sh[1].poll_timeout()]
                        .into_iter()
                        .flatten()
                        .min();
                    let step = now + Duration::from_millis(rng.below(30));
                    now = next.map_or(step, |n| n.min(step)).max(now);
                }
            }
            while let Some(id) = sh[1].accept(80) {
                held[1].push(id);
            }
            for (side, s) in sh.iter_mut().enumerate() {
                while s.poll_event().is_some() {}
                s.handle_timeout(now, &mut out[side]);
            }
            let due: Vec<_> = link.iter().filter(|x| x.0 <= now).cloned().collect();
            link.retain(|x| x.0 > now);
            for (_, to, p) in due {
                let _ = sh[to].handle_ip(now, &p, &mut out[to]);
            }
            for (side, s) in sh.iter_mut().enumerate() {
                s.poll_transmit(now, &mut out[side]);
                s.check_invariants();
                max_heap = max_heap.max(s.timer_heap_len());
            }
            for (side, o) in out.into_iter().enumerate() {
                for p in o {
                    if rng.below(10) != 0 {
                        link.push((now + Duration::from_millis(1 + rng.below(40)), 1 - side, p));
                    }
                }
            }
            if step % 5_000 == 0 {
                // Now and then every application lets go of everything.
                for (side, s) in sh.iter_mut().enumerate() {
                    let mut o = Vec::new();
                    for id in held[side].drain(..) {
                        let _ = s.close(now, id, &mut o);
                    }
                }
            }
        }
        assert!(max_heap < 200, "seed {seed}: {max_heap} timer-heap entries");
    }
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

/// With keepalive on, a connection's next deadline is its keepalive, two hours on; a freed TCB
/// used to leave that heap entry behind until its time. Rounds of connections that open, get
/// their keepalive wake-up and are aborted leave the heap within a small multiple of what the
/// live connections hold, not one entry per connection closed in the last two hours.
#[test]
fn closed_connections_do_not_pile_up_in_the_timer_heap() {
    let cfg = Config { keepalive: true, ..Config::default() };
    let mut sh = [Shard::new(cfg.clone(), Secrets::from_seed(1)), Shard::new(cfg, Secrets::from_seed(2))];
    sh[1].listen(80, None, 1024).unwrap_or(());
    let server = SocketAddr::new(IpAddr::V4([198, 18, 0, 1].into()), 80);
    let mut now = Instant::from_secs(100);
    let mut port = 10_000u16;
    // Delivers everything both shards sent until neither sends more.
    let exchange = |sh: &mut [Shard; 2], now: Instant| {
        let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        for (side, s) in sh.iter_mut().enumerate() {
            s.poll_transmit(now, &mut out[side]);
        }
        while out.iter().any(|o| !o.is_empty()) {
            let sent = core::mem::take(&mut out);
            for (side, o) in sent.into_iter().enumerate() {
                for p in o {
                    sh[1 - side].handle_ip(now, &p, &mut out[1 - side]);
                }
            }
            for (side, s) in sh.iter_mut().enumerate() {
                s.poll_transmit(now, &mut out[side]);
            }
        }
    };
    for _round in 0..30 {
        let mut ids = Vec::new();
        for _ in 0..200 {
            port += 1;
            let local = SocketAddr::new(IpAddr::V4([198, 18, 0, 2].into()), port);
            ids.push(sh[0].connect(now, local, server).unwrap_or_else(|e| panic!("{e}")));
        }
        exchange(&mut sh, now);
        let mut accepted = Vec::new();
        while let Some(id) = sh[1].accept(80) {
            accepted.push(id);
        }
        assert_eq!(accepted.len(), 200);
        // The wake-ups of the handshake pass; each connection asks for its keepalive one.
        now = now + Duration::from_secs(2);
        let mut sink: Vec<Vec<u8>> = Vec::new();
        for s in sh.iter_mut() {
            s.handle_timeout(now, &mut sink);
        }
        for id in ids {
            let _ = sh[0].abort(now, id, &mut sink);
        }
        for id in accepted {
            let _ = sh[1].abort(now, id, &mut sink);
        }
        sink.clear();
        for s in sh.iter_mut() {
            while s.poll_event().is_some() {}
        }
    }
    for s in &sh {
        assert_eq!(s.conn_count(), 0);
        // 6,000 connections came and went; 200 at a time held two wake-ups each at most.
        assert!(
            s.timer_heap_len() <= 2 * 2 * 200 + 2 * 1024,
            "{} heap entries, no connection left",
            s.timer_heap_len()
        );
    }
}
