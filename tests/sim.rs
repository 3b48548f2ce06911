//! Deterministic simulation: many connections between two shards through a link that drops,
//! duplicates, reorders and delays segments, driven by a seeded generator and a virtual clock.
//! Every byte must arrive once and in order, every connection must end in CLOSED or TIME-WAIT on
//! both sides, and the run must finish within a bounded number of steps (no livelock).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use xdptcp::tcp::secrets::{isn, ts_offset};
use xdptcp::tcp::{Config, ConnId, Counters, Event, FourTuple, Secrets, Shard, State};
use xdptcp::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

#[derive(Clone, Copy)]
struct Impairments {
    loss: f64,
    dup: f64,
    min_delay_ms: u64,
    max_delay_ms: u64,
}

struct Link {
    rng: Rng,
    imp: Impairments,
    /// (deliver at, to side 0 = client / 1 = server, sequence for stable order, packet)
    inflight: Vec<(Instant, usize, u64, Vec<u8>)>,
    seq: u64,
    sent: u64,
    dropped: u64,
}

impl Link {
    fn push(&mut self, now: Instant, to: usize, pkt: Vec<u8>) {
        self.sent += 1;
        if self.rng.chance(self.imp.loss) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.imp.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let d = self.rng.range(self.imp.min_delay_ms, self.imp.max_delay_ms + 1);
            self.seq += 1;
            self.inflight.push((now + Duration::from_millis(d), to, self.seq, pkt.clone()));
        }
    }
    fn next_time(&self) -> Option<Instant> {
        self.inflight.iter().map(|x| x.0).min()
    }
    fn take_due(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let mut due: Vec<_> = Vec::new();
        let mut keep = Vec::new();
        for x in self.inflight.drain(..) {
            if x.0 <= now {
                due.push(x);
            } else {
                keep.push(x);
            }
        }
        self.inflight = keep;
        due.sort_by_key(|x| (x.0, x.2));
        due.into_iter().map(|x| (x.1, x.3)).collect()
    }
}

fn payload(len: usize, salt: u16) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ salt as u8).collect()
}

#[derive(Default)]
struct ClientConn {
    port: u16,
    to_send: Vec<u8>,
    sent: usize,
    shut: bool,
    got: Vec<u8>,
    closed: bool,
    peer_closed: bool,
}

#[derive(Default)]
struct ServerConn {
    got: Vec<u8>,
    responded: bool,
}

/// Compares without printing megabytes: lengths and the first differing offset.
fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        panic!("{what}: got {} bytes, want {}, first difference at {at:?}", got.len(), want.len());
    }
}

fn drain(shard: &mut Shard, id: ConnId, into: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = shard.recv(id, &mut buf) {
        if n == 0 {
            break;
        }
        into.extend_from_slice(&buf[..n]);
    }
}

fn run(seed: u64, conns: u16, imp: Impairments) {
    run_from(seed, conns, imp, Instant::from_secs(10));
}

/// The run, starting at `start` (the ISNs and timestamps follow from it, RFC 6528 / RFC 7323).
fn run_from(seed: u64, conns: u16, imp: Impairments, start: Instant) {
    run_with(seed, conns, imp, start, Config::default());
}

/// The run with `base` as both sides' configuration (buffers set here). Returns both shards'
/// counters added up.
fn run_with(seed: u64, conns: u16, imp: Impairments, start: Instant, base: Config) -> Counters {
    let cfg = Config { rcv_buf: 64 * 1024, snd_buf: 64 * 1024, ..base };
    let mut client = Shard::new(cfg.clone(), Secrets::from_seed(seed ^ 1));
    let mut server = Shard::new(cfg, Secrets::from_seed(seed ^ 2));
    server.listen(80, None, 1024).unwrap();
    let cip: IpAddr = "198.18.0.2".parse().unwrap();
    let sip: IpAddr = "198.18.0.1".parse().unwrap();
    let saddr = SocketAddr::new(sip, 80);
    let mut link = Link { rng: Rng(seed), imp, inflight: Vec::new(), seq: 0, sent: 0, dropped: 0 };
    let mut rng = Rng(seed.wrapping_mul(7));
    let mut now = start;
    let mut cconns: HashMap<ConnId, ClientConn> = HashMap::new();
    let mut sconns: HashMap<ConnId, ServerConn> = HashMap::new();
    let req_len = |port: u16| (port as usize * 7919) % 40_000 + 1;
    let resp_len = |port: u16| (port as usize * 104_729) % 60_000;
    for i in 0..conns {
        let port = 20_000 + i;
        let id = client.connect(now, SocketAddr::new(cip, port), saddr).unwrap();
        cconns.insert(id, ClientConn { port, to_send: payload(req_len(port), port), ..Default::default() });
    }
    let mut out: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    let mut steps = 0u64;
    loop {
        steps += 1;
        assert!(steps < 2_000_000, "livelock: seed {seed}");
        // Client application.
        while let Some(ev) = client.poll_event() {
            match ev {
                Event::Connected(id) | Event::Writable(id) => {
                    let c = cconns.get_mut(&id).unwrap();
                    if !c.shut {
                        let n = client.send(id, &c.to_send[c.sent..]).unwrap();
                        c.sent += n;
                        if c.sent == c.to_send.len() {
                            client.shutdown(now, id, &mut out[0]).unwrap();
                            c.shut = true;
                        }
                    }
                }
                Event::Readable(id) => drain(&mut client, id, &mut cconns.get_mut(&id).unwrap().got),
                Event::PeerClosed(id) => {
                    let c = cconns.get_mut(&id).unwrap();
                    drain(&mut client, id, &mut c.got);
                    c.peer_closed = true;
                    client.close(now, id, &mut out[0]).unwrap();
                }
                Event::Closed(id, reason) => {
                    let c = cconns.get_mut(&id).unwrap();
                    assert_eq!(reason, xdptcp::tcp::CloseReason::Normal, "client port {} seed {seed}", c.port);
                    c.closed = true;
                }
                Event::AcceptReady { .. } => unreachable!(),
            }
        }
        // Server application: read the request to its end, answer, close.
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::AcceptReady { port } => {
                    while let Some(id) = server.accept(port) {
                        sconns.insert(id, ServerConn::default());
                    }
                }
                Event::Readable(id) => drain(&mut server, id, &mut sconns.get_mut(&id).unwrap().got),
                Event::PeerClosed(id) => {
                    let s = sconns.get_mut(&id).unwrap();
                    drain(&mut server, id, &mut s.got);
                    let t = server.tuple(id).unwrap();
                    let port = t.remote.port();
                    same_bytes(&s.got, &payload(req_len(port), port), &format!("request of port {port}, seed {seed}"));
                    let resp = payload(resp_len(port), port ^ 0x5555);
                    assert_eq!(server.send(id, &resp).unwrap(), resp.len().min(64 * 1024));
                    s.responded = true;
                    server.close(now, id, &mut out[1]).unwrap();
                }
                Event::Writable(_) | Event::Connected(_) | Event::Closed(..) => {}
            }
        }
        client.poll_transmit(now, &mut out[0]);
        server.poll_transmit(now, &mut out[1]);
        for p in out[0].drain(..) {
            link.push(now, 1, p);
        }
        for p in out[1].drain(..) {
            link.push(now, 0, p);
        }
        let done = cconns.values().all(|c| c.closed);
        let next = [link.next_time(), client.poll_timeout(), server.poll_timeout()].into_iter().flatten().min();
        let Some(next) = next else { break };
        if done && link.inflight.is_empty() && next > now + Duration::from_secs(120) {
            break;
        }
        now = now.max(next);
        for (to, p) in link.take_due(now) {
            // Corruption is modelled too: one packet in a thousand gets a flipped bit, which the
            // checksum must catch.
            let mut p = p;
            if rng.chance(0.001) {
                let i = rng.range(0, p.len() as u64) as usize;
                p[i] ^= 0x10;
            }
            if to == 0 {
                client.handle_ip(now, &p, &mut out[0]);
            } else {
                server.handle_ip(now, &p, &mut out[1]);
            }
        }
        client.handle_timeout(now, &mut out[0]);
        server.handle_timeout(now, &mut out[1]);
        if now > start + Duration::from_secs(3600) {
            panic!("simulation did not finish in an hour of virtual time, seed {seed}");
        }
    }
    // Every byte arrived once and in order, both ways.
    for c in cconns.values() {
        assert!(c.closed && c.peer_closed, "port {} not finished, seed {seed}", c.port);
        same_bytes(
            &c.got,
            &payload(resp_len(c.port), c.port ^ 0x5555),
            &format!("response to {}, seed {seed}", c.port),
        );
    }
    assert_eq!(sconns.len(), conns as usize);
    assert!(sconns.values().all(|s| s.responded));
    // Every connection ended in CLOSED or TIME-WAIT on both sides.
    for c in cconns.values() {
        let t = FourTuple::new(SocketAddr::new(cip, c.port), saddr);
        let st = client.state_of(&t);
        assert!(st.is_none() || st == Some(State::TimeWait), "client {t}: {st:?}");
        let rt = FourTuple::new(saddr, SocketAddr::new(cip, c.port));
        let st = server.state_of(&rt);
        assert!(st.is_none() || st == Some(State::TimeWait), "server {rt}: {st:?}");
    }
    assert_eq!(client.conn_count(), 0);
    assert_eq!(server.conn_count(), 0);
    assert!(link.dropped > 0 || imp.loss == 0.0);
    let mut c = client.counters().clone();
    c.merge(server.counters());
    c
}

#[test]
fn clean_link_many_connections() {
    run(1, 50, Impairments { loss: 0.0, dup: 0.0, min_delay_ms: 1, max_delay_ms: 1 });
}

#[test]
fn lossy_reordering_duplicating_link() {
    for seed in 1..=4 {
        run(seed, 30, Impairments { loss: 0.05, dup: 0.03, min_delay_ms: 1, max_delay_ms: 30 });
    }
}

#[test]
fn very_lossy_link() {
    run(77, 10, Impairments { loss: 0.2, dup: 0.05, min_delay_ms: 5, max_delay_ms: 50 });
}

/// SACK on (Linux's default) and off, at 1 %, 5 % and 20 % loss with reordering (delays
/// spread over 1..30 ms) and duplication: every byte arrives once and in order either way (the
/// checks in `run_with`). With SACK on, the losses are repaired by RFC 6675 recoveries, which
/// RACK (RFC 8985 §6) feeds, and Tail Loss Probes (§7) go out; the same runs with RACK-TLP
/// off time out more often. With SACK off, no SACK recovery and no probe can happen.
#[test]
fn sack_on_and_off_under_loss_with_reordering() {
    let (mut timeouts_rack_tlp, mut timeouts_plain, mut probes) = (0u64, 0u64, 0u64);
    for (loss, seeds) in [(0.01, 31..=32u64), (0.05, 33..=34), (0.20, 35..=35)] {
        let imp = Impairments { loss, dup: 0.02, min_delay_ms: 1, max_delay_ms: 30 };
        let conns = if loss > 0.1 { 8 } else { 20 };
        for seed in seeds {
            for (sack, rack_tlp) in [(true, true), (true, false), (false, true)] {
                let cfg = Config { sack, tlp: rack_tlp, rack: rack_tlp, ..Config::default() };
                let c = run_with(seed, conns, imp, Instant::from_secs(10), cfg);
                if sack {
                    assert!(c.tcp_ext_tcp_sack_recovery > 0, "loss {loss} seed {seed}: no SACK recovery ran");
                    if rack_tlp {
                        timeouts_rack_tlp += c.tcp_ext_tcp_timeouts;
                        probes += c.tcp_ext_tcp_loss_probes;
                    } else {
                        timeouts_plain += c.tcp_ext_tcp_timeouts;
                        assert_eq!(c.tcp_ext_tcp_loss_probes, 0);
                    }
                } else {
                    assert_eq!(c.tcp_ext_tcp_sack_recovery, 0);
                    assert_eq!(c.tcp_ext_tcp_sack_discard, 0);
                    assert_eq!(c.tcp_ext_tcp_loss_probes, 0, "no TLP without SACK");
                }
            }
        }
    }
    println!("timeouts: RACK-TLP {timeouts_rack_tlp}, without {timeouts_plain}; probes {probes}");
    assert!(probes > 0, "no tail loss probe was sent");
    assert!(timeouts_rack_tlp < timeouts_plain, "RACK-TLP {timeouts_rack_tlp} timeouts, without {timeouts_plain}");
}

/// Heavy loss with SACK on: timeouts come while the scoreboard holds SACKed data, which
/// go-back-N then skips (Linux `tcp_timeout_mark_lost`). Every byte still arrives once and in
/// order (the checks in `run_with`), also with the client's ISS just below 2^32.
#[test]
fn timeouts_with_a_kept_scoreboard_under_heavy_loss() {
    let imp = Impairments { loss: 0.25, dup: 0.02, min_delay_ms: 1, max_delay_ms: 60 };
    let mut timeouts = 0;
    for seed in 41..=46u64 {
        let start =
            if seed % 2 == 0 { start_for_client_iss(seed, 0u32.wrapping_sub(30_000)) } else { Instant::from_secs(10) };
        let c = run_with(seed, 8, imp, start, Config::default());
        assert!(c.tcp_ext_tcp_sack_recovery > 0, "seed {seed}: no SACK recovery");
        timeouts += c.tcp_ext_tcp_timeouts;
    }
    assert!(timeouts > 0, "no timeout at 25 % loss");
}

/// The instant at which the client (secrets from `seed ^ 1`) picks `iss` for its connection from
/// port 20000 (RFC 6528: ISN = keyed hash + a 4 µs clock).
fn start_for_client_iss(seed: u64, iss: u32) -> Instant {
    let t = FourTuple::new("198.18.0.2:20000".parse().unwrap(), "198.18.0.1:80".parse().unwrap());
    let h = isn(&Secrets::from_seed(seed ^ 1).isn_key, Instant::from_nanos(0), &t).0;
    let at = Instant::from_nanos(u64::from(iss.wrapping_sub(h)) * 4_000 + (1u64 << 32) * 4_000);
    assert_eq!(isn(&Secrets::from_seed(seed ^ 1).isn_key, at, &t).0, iss);
    at
}

/// The instant at which the server's timestamp clock for the connection from port 20000 reads
/// `tsval` (RFC 7323 §5.4: TSval = a 1 ms clock + a per-connection offset).
fn start_for_server_tsval(seed: u64, tsval: u32) -> Instant {
    let t = FourTuple::new("198.18.0.1:80".parse().unwrap(), "198.18.0.2:20000".parse().unwrap());
    let off = ts_offset(&Secrets::from_seed(seed ^ 2).ts_key, &t);
    let at = Instant::from_millis(u64::from(tsval.wrapping_sub(off)) + (1u64 << 32));
    assert_eq!(xdptcp::tcp::secrets::ts_clock(at).wrapping_add(off), tsval);
    at
}

/// RFC 9293 §3.4: the client's ISS sits 20,000 bytes below 2^32, so its request crosses the
/// wrap, over a lossy, reordering link.
#[test]
fn isn_near_the_wrap_on_a_lossy_link() {
    for seed in 11..=13 {
        let start = start_for_client_iss(seed, 0u32.wrapping_sub(20_000));
        run_from(seed, 20, Impairments { loss: 0.05, dup: 0.03, min_delay_ms: 1, max_delay_ms: 30 }, start);
    }
}

/// RFC 7323 §5: the server's timestamps wrap 300 ms into the run; PAWS must take the wrapped
/// TSvals as newer (serial arithmetic), or the connection stalls.
#[test]
fn timestamps_wrap_during_the_run() {
    for seed in 21..=23 {
        let start = start_for_server_tsval(seed, 0u32.wrapping_sub(300));
        run_from(seed, 20, Impairments { loss: 0.05, dup: 0.03, min_delay_ms: 1, max_delay_ms: 30 }, start);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]
    /// Anywhere near the wrap: the client's ISS within 64 KiB either side of 2^32, or the
    /// server's TSval within 2 s of it, a random seed, a lossy link.
    #[test]
    fn wraparound_anywhere(seed in 100u64..10_000, back in 0u32..65_536, tsval_wrap in proptest::bool::ANY) {
        let start = if tsval_wrap {
            start_for_server_tsval(seed, 0u32.wrapping_sub(back % 2_000))
        } else {
            start_for_client_iss(seed, 0u32.wrapping_sub(back).wrapping_add(32_768))
        };
        run_from(seed, 4, Impairments { loss: 0.03, dup: 0.02, min_delay_ms: 1, max_delay_ms: 20 }, start);
    }
}
