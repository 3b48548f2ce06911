//! The whole per-core loop (STYLE §8.8): `Core::poll` over the in-memory link, with no
//! impairment and no delay, so every frame goes through Ethernet/IP/TCP parsing, the shard, the
//! application and the emitter of the core that receives it.
//!
//! - `engine/echo_pingpong_64_conns`: a client core (a shard that connected 64 connections
//!   and a small handler that writes a 100-byte request whenever the previous answer is back)
//!   and a server core (a shard listening on port 80 with `AppKind::Echo`) joined by
//!   `MemLink::pair`. One iteration is one turn of each loop: 64 requests in at the server,
//!   64 echoes in at the client, each answered within the same turn. Elements = frames received
//!   by the two cores (128); both loops run on the bench's one thread, so the time per element
//!   is the cost of one frame on one core, receive to reply.
//! - `engine/syn_flood_cookies`: 64 SYN frames from spoofed sources per iteration into a server
//!   core whose shard answers with cookies; elements = SYNs received (each answered).
//!
//! The in-memory link allocates a `Vec` per frame and keeps the wire in a heap under a mutex;
//! that cost is inside these figures (an AF_XDP link writes into UMEM frames instead).
//!
//! Several cores (DESIGN.md "Sharding across cores"), group `engine_cores`: server cores joined
//! by `connect_cores` (a flow directory of 2^20 slots and hand-over links of depth 256, as
//! `serve` builds them), each on a `Ring`, an in-memory queue that recycles its buffers (like
//! UMEM frames, so no allocation is timed). All cores run on the bench's one thread; only the
//! server cores' `Core::poll` calls are timed (`iter_custom`): putting frames on the queues,
//! the client and moving frames between queues are not. Elements = frames that arrive on a
//! server queue per iteration (64).
//! - `unmatched_ack_rst/{1,2,4}_cores`: 64 ACKs from random tuples (4096 distinct sources in
//!   198.18.0.0/15, random ports, cycled) to the listening port 80 arrive on core 0 of an engine
//!   of 1, 2 or 4 cores; none matches any state, so each is answered with one RST by core 0
//!   (with several cores after one directory lookup that finds no owner). Timed: core 0's turn.
//! - `flow/local_{1,2}_cores`: a client core with 64 connections in ping-pong (100-byte
//!   request, echo) with a server whose core 1 (core 0 with one core) holds all 64 flows; the
//!   requests arrive on the owner's queue. Timed: every server core's turn (on 2 cores core 0's
//!   turn is idle); each request is processed and echoed by the owner.
//! - `flow/handed_over_2_cores`: the same flows, held by core 1, but the requests arrive on core
//!   0's queue: core 0 finds the owner in the directory and copies the frame into a pooled
//!   buffer in core 1's inbox; core 1 takes it from the inbox, processes it and echoes it.
//!   Timed: core 0's turn then core 1's turn, per frame the hand-over plus the owner's work.
//!
//! Figures: docs/bench-tcp.md.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;
use xdptcp::app::{AppKind, Conn, Handler};
use xdptcp::engine::{connect_cores, Core, HandoverConfig, RX_BATCH};
use xdptcp::io::mem::{MemConfig, MemLink};
use xdptcp::io::{FrameIo, IoStats};
use xdptcp::net::{FrameSink, Net, NetConfig};
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{Config, FourTuple, Secrets, Shard, SynCookies};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{EtherType, EthernetAddress, EthernetRepr, SeqNum, TcpFlags, TcpOptions};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SERVER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const PORT: u16 = 80;
const CONNS: usize = 64;
const REQUEST: [u8; 100] = [b'x'; 100];
/// Simulated time per loop turn.
const TURN: Duration = Duration::from_micros(1);

fn net(mac: EthernetAddress, ip: Ipv4Addr) -> Net {
    Net::new(NetConfig {
        mac,
        addrs: vec![IpAddr::V4(ip)],
        own_address: true,
        vlan: None,
        neighbour_ttl: Duration::from_secs(300),
    })
}

fn server_core(cfg: Config) -> Core {
    let mut shard = Shard::new(cfg, Secrets::from_seed(1));
    shard.listen(PORT, None, 4096).unwrap();
    Core::new(0, shard, net(SERVER_MAC, SERVER), AppKind::Echo.build())
}

/// The client application: one request outstanding per connection; the next one leaves as soon
/// as the whole echo of the previous one has been read.
#[derive(Default)]
struct PingPong {
    got: std::collections::HashMap<xdptcp::tcp::ConnId, usize>,
    answers: u64,
}

impl Handler for PingPong {
    fn on_connected(&mut self, c: &mut Conn<'_>) {
        self.got.insert(c.id, 0);
        c.send(&REQUEST).unwrap();
    }
    fn on_data(&mut self, c: &mut Conn<'_>) {
        let mut buf = [0u8; 512];
        let mut n = 0;
        loop {
            let k = c.recv(&mut buf);
            if k == 0 {
                break;
            }
            n += k;
        }
        let got = self.got.entry(c.id).or_insert(0);
        *got += n;
        if *got >= REQUEST.len() {
            *got -= REQUEST.len();
            self.answers += 1;
            c.send(&REQUEST).unwrap();
        }
    }
}

/// Two cores joined by a clean in-memory link.
struct Bed {
    client: Core,
    server: Core,
    a: MemLink,
    b: MemLink,
    now: Instant,
}

impl Bed {
    fn turn(&mut self) -> usize {
        self.now = self.now + TURN;
        self.a.set_now(self.now);
        let n = self.client.poll(self.now, &mut self.a);
        n + self.server.poll(self.now, &mut self.b)
    }
}

fn pingpong_bed() -> Bed {
    let (a, b) = MemLink::pair(MemConfig::default(), 7);
    let now = Instant::from_secs(1000);
    a.set_now(now);
    let shard = Shard::new(Config::default(), Secrets::from_seed(2));
    let mut client = Core::new(
        0,
        shard,
        net(CLIENT_MAC, CLIENT),
        Box::new(PingPong::default()) as Box<dyn xdptcp::app::Handler + Send>,
    );
    client.net.neigh.learn(IpAddr::V4(SERVER), SERVER_MAC, now);
    let mut bed = Bed { client, server: server_core(Config::default()), a, b, now };
    for i in 0..CONNS {
        let local = SocketAddr::new(CLIENT.into(), 40000 + i as u16);
        bed.client.shard.connect(now, local, SocketAddr::new(SERVER.into(), PORT)).unwrap();
    }
    bed
}

fn bench_pingpong(c: &mut Criterion) {
    let mut bed = pingpong_bed();
    // Handshakes, then the ping-pong settles at one request and one echo per connection per turn.
    for _ in 0..1000 {
        bed.turn();
    }
    assert_eq!(bed.server.shard.conn_count(), CONNS);
    let per_turn = 2 * CONNS;
    assert!(per_turn <= 2 * RX_BATCH);
    for _ in 0..100 {
        assert_eq!(bed.turn(), per_turn, "steady state");
    }
    let frames0 = bed.server.stats(&bed.b).io.rx_frames + bed.client.stats(&bed.a).io.rx_frames;
    let mut turns = 0u64;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(per_turn as u64));
    g.bench_function("echo_pingpong_64_conns", |b| {
        b.iter(|| {
            turns += 1;
            bed.turn()
        })
    });
    g.finish();
    let s = bed.server.stats(&bed.b);
    let cl = bed.client.stats(&bed.a);
    assert_eq!(s.io.rx_frames + cl.io.rx_frames - frames0, turns * per_turn as u64, "every turn moved 128 frames");
    assert_eq!((s.tcp.tcp_retrans_segs, s.tcp.tcp_out_rsts, cl.tcp.tcp_retrans_segs), (0, 0, 0));
    assert_eq!((s.io.tx_no_frame, cl.io.tx_no_frame), (0, 0));
    println!(
        "engine/echo_pingpong_64_conns: {turns} turns, server rx {} tx {} frames, client rx {} tx {}",
        s.io.rx_frames, s.io.tx_frames, cl.io.rx_frames, cl.io.tx_frames
    );
}

/// An Ethernet frame carrying a SYN from the `i`-th spoofed source.
fn syn_frame(i: u32) -> Vec<u8> {
    let src = SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | i).into(), 1024 + (i % 60000) as u16);
    let options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((i, 0)),
        ..TcpOptions::default()
    };
    let seg = OutSegment {
        seq: SeqNum(i.wrapping_mul(0x9e37_79b9)),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 64240,
        options,
        payload: (&[], &[]),
    };
    client_frame(src, &seg)
}

/// Ethernet + IPv4 frame of `seg` from `src` to the server's port, as the client sends it.
fn client_frame(src: SocketAddr, seg: &OutSegment<'_>) -> Vec<u8> {
    let mut ip: Vec<Vec<u8>> = Vec::new();
    assert!(emit(&mut ip, &FourTuple::new(src, SocketAddr::new(SERVER.into(), PORT)), seg, 64));
    let eth = EthernetRepr { src: CLIENT_MAC, dst: SERVER_MAC, vlan: None, ethertype: EtherType::Ipv4 };
    let mut f = vec![0u8; eth.header_len()];
    eth.emit(&mut f);
    f.extend_from_slice(&ip[0]);
    f
}

fn bench_syn_flood(c: &mut Criterion) {
    const SOURCES: usize = 4096;
    let frames: Vec<Vec<u8>> = (0..SOURCES as u32).map(syn_frame).collect();
    let (mut a, mut b) = MemLink::pair(MemConfig::default(), 8);
    let mut server = server_core(Config { syncookies: SynCookies::Always, ..Config::default() });
    let now = Instant::from_secs(1000);
    a.set_now(now);
    let mut pos = 0usize;
    let mut turn = |a: &mut MemLink, b: &mut MemLink, server: &mut Core| {
        for f in &frames[pos..pos + RX_BATCH] {
            assert!(a.send_frame(f.len(), &mut |buf: &mut [u8]| buf.copy_from_slice(f)));
        }
        a.flush();
        pos = (pos + RX_BATCH) % SOURCES;
        let n = server.poll(now, b);
        // The flooder takes its SYN-ACKs off the wire, unread.
        a.rx_burst(RX_BATCH, &mut |_, _| {});
        n
    };
    assert_eq!(turn(&mut a, &mut b, &mut server), RX_BATCH);
    let tx0 = server.stats(&b).io.tx_frames;
    assert_eq!(tx0, RX_BATCH as u64, "a SYN-ACK per SYN");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(RX_BATCH as u64));
    g.bench_function("syn_flood_cookies", |bch| bch.iter(|| turn(&mut a, &mut b, &mut server)));
    g.finish();
    let s = server.stats(&b);
    assert_eq!(s.io.rx_frames, s.io.tx_frames, "every SYN answered");
    assert_eq!((s.conns, s.syn_queue), (0, 0));
    // Net learns the source of every frame for us, spoofed or not.
    println!(
        "engine/syn_flood_cookies: {} SYNs, {} SYN-ACKs; neighbour cache: {} entries",
        s.io.rx_frames,
        s.io.tx_frames,
        server.net.neigh.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Several cores: unmatched segments, hand-over, local flows
// ---------------------------------------------------------------------------------------------

/// Runs `f` and measures it on the wall clock (`iter_custom`: only the server cores are timed).
#[allow(clippy::disallowed_methods)] // bench-side wall clock (the sans-IO rule is for src/tcp)
fn timed<T>(f: impl FnOnce() -> T) -> (T, StdDuration) {
    let t = std::time::Instant::now();
    let r = f();
    (r, t.elapsed())
}

/// Transmit side of a [`Ring`]: frames go out in buffers taken from a spare list (allocated
/// once), as an AF_XDP link lends UMEM frames.
#[derive(Default)]
struct RingTx {
    out: Vec<Vec<u8>>,
    spare: Vec<Vec<u8>>,
}

impl FrameSink for RingTx {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut b = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(2048));
        b.clear();
        b.resize(len, 0);
        fill(&mut b);
        self.out.push(b);
        true
    }
}

/// One in-memory receive/transmit queue whose frames the bench moves by hand. Received frames
/// are kept (not freed) until [`Ring::recycle`], outside the timed section.
#[derive(Default)]
struct Ring {
    rx: VecDeque<Vec<u8>>,
    used: Vec<Vec<u8>>,
    tx: RingTx,
    rx_frames: u64,
    tx_frames: u64,
}

impl Ring {
    /// Puts `frame` on the receive side, in a recycled buffer.
    fn push(&mut self, frame: &[u8]) {
        let mut b = self.tx.spare.pop().unwrap_or_else(|| Vec::with_capacity(2048));
        b.clear();
        b.extend_from_slice(frame);
        self.rx.push_back(b);
    }
    fn recycle(&mut self) {
        self.tx_frames += self.tx.out.len() as u64;
        self.tx.spare.append(&mut self.used);
        self.tx.spare.append(&mut self.tx.out);
    }
}

impl FrameIo for Ring {
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize {
        let mut n = 0;
        while n < max {
            let Some(f) = self.rx.pop_front() else { break };
            on_frame(&f, &mut self.tx);
            self.used.push(f);
            n += 1;
        }
        self.rx_frames += n as u64;
        n
    }
    fn tx(&mut self) -> &mut dyn FrameSink {
        &mut self.tx
    }
    fn flush(&mut self) {}
    fn stats(&self) -> IoStats {
        IoStats {
            rx_frames: self.rx_frames,
            tx_frames: self.tx_frames + self.tx.out.len() as u64,
            ..IoStats::default()
        }
    }
}

/// `n` server cores listening on port 80 (echo), the same keys on each, joined as `serve`
/// joins them (with one core `connect_cores` adds nothing).
fn server_cores(n: usize) -> Vec<Core> {
    let mut cores: Vec<Core> = (0..n)
        .map(|i| {
            // The RST limit off: `unmatched_ack_rst` times the full answer, one RST per ACK.
            let cfg = Config { rst_rate_limit: 0, ..Config::default() };
            let mut shard = Shard::new(cfg, Secrets::from_seed(1));
            shard.listen(PORT, None, 4096).unwrap();
            Core::new(i, shard, net(SERVER_MAC, SERVER), AppKind::Echo.build())
        })
        .collect();
    connect_cores(&mut cores, &HandoverConfig::default());
    cores
}

/// A pure ACK (no options, no payload) from a random tuple in 198.18.0.0/15 to port 80.
fn stray_ack_frame(rng: &mut u64) -> Vec<u8> {
    let mut next = || {
        // xorshift64
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng
    };
    let x = next();
    // 198.18.0.0/15 without the bed's 198.18.0.0/24.
    let host = 0x100 + (x as u32 & 0x1_ffff) % (0x2_0000 - 0x100);
    let src = SocketAddr::new(Ipv4Addr::from(0xc612_0000 | host).into(), 1024 + ((x >> 20) % 60000) as u16);
    let y = next();
    let seg = OutSegment {
        seq: SeqNum(y as u32),
        ack: SeqNum((y >> 32) as u32),
        flags: TcpFlags::ACK,
        window: 64240,
        options: TcpOptions::default(),
        payload: (&[], &[]),
    };
    client_frame(src, &seg)
}

fn bench_unmatched(c: &mut Criterion) {
    const SOURCES: usize = 4096;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let frames: Vec<Vec<u8>> = (0..SOURCES).map(|_| stray_ack_frame(&mut rng)).collect();
    let mut g = c.benchmark_group("engine_cores");
    g.throughput(Throughput::Elements(RX_BATCH as u64));
    for n in [1usize, 2, 4] {
        let mut cores = server_cores(n);
        let mut ring = Ring::default();
        let now = Instant::from_secs(1000);
        let mut pos = 0usize;
        let mut batches = 0u64;
        g.bench_function(format!("unmatched_ack_rst/{n}_cores"), |b| {
            b.iter_custom(|iters| {
                let mut spent = StdDuration::ZERO;
                for _ in 0..iters {
                    for f in &frames[pos..pos + RX_BATCH] {
                        ring.push(f);
                    }
                    pos = (pos + RX_BATCH) % SOURCES;
                    let (got, t) = timed(|| cores[0].poll(now, &mut ring));
                    spent += t;
                    assert_eq!(got, RX_BATCH);
                    ring.recycle();
                    batches += 1;
                }
                spent
            })
        });
        let s = cores[0].stats(&ring);
        let frames_in = batches * RX_BATCH as u64;
        assert_eq!(s.io.rx_frames, frames_in);
        assert_eq!(s.tcp.tcp_out_rsts, frames_in, "{n} cores: one RST per ACK");
        assert_eq!((s.forwarded, s.handover_dropped, s.conns, s.syn_queue), (0, 0, 0, 0));
        let others: u64 = cores.iter().skip(1).map(|c| c.shard.counters().tcp_in_segs).sum();
        assert_eq!(others, 0, "the other cores saw nothing");
        println!(
            "engine_cores/unmatched_ack_rst/{n}_cores: {} ACKs on core 0, {} RSTs, nothing handed over",
            s.io.rx_frames, s.tcp.tcp_out_rsts
        );
    }
    g.finish();
}

/// A client core in ping-pong with an engine of `n` server cores, whose core `owner` holds all
/// the flows. The client's segments arrive on queue `landing`.
struct Flows {
    client: Core,
    client_ring: Ring,
    cores: Vec<Core>,
    rings: Vec<Ring>,
    landing: usize,
    now: Instant,
}

impl Flows {
    fn new(n: usize, owner: usize) -> Flows {
        let now = Instant::from_secs(1000);
        let mut client = Core::new(
            0,
            Shard::new(Config::default(), Secrets::from_seed(2)),
            net(CLIENT_MAC, CLIENT),
            Box::new(PingPong::default()) as Box<dyn xdptcp::app::Handler + Send>,
        );
        client.net.neigh.learn(IpAddr::V4(SERVER), SERVER_MAC, now);
        for i in 0..CONNS {
            let local = SocketAddr::new(CLIENT.into(), 40000 + i as u16);
            client.shard.connect(now, local, SocketAddr::new(SERVER.into(), PORT)).unwrap();
        }
        let mut f = Flows {
            client,
            client_ring: Ring::default(),
            cores: server_cores(n),
            rings: (0..n).map(|_| Ring::default()).collect(),
            landing: owner,
            now,
        };
        // Handshakes on the owner's queue, then the ping-pong settles.
        for _ in 0..1000 {
            f.client_turn();
            f.server_turn();
        }
        assert_eq!(f.cores[owner].shard.conn_count(), CONNS);
        f
    }

    /// The client's turn: the server's frames in, its requests out onto the landing queue. Then
    /// every queue's spare list is topped up from the buffers received, so the server cores
    /// never allocate.
    fn client_turn(&mut self) -> usize {
        self.now = self.now + TURN;
        let mut pool = std::mem::take(&mut self.client_ring.used);
        for r in &mut self.rings {
            pool.append(&mut r.used);
            r.tx_frames += r.tx.out.len() as u64;
            self.client_ring.rx.extend(r.tx.out.drain(..));
        }
        let n = self.client.poll(self.now, &mut self.client_ring);
        let land = &mut self.rings[self.landing];
        land.rx.extend(self.client_ring.tx.out.drain(..));
        pool.append(&mut self.client_ring.used);
        for r in self.rings.iter_mut().chain(std::iter::once(&mut self.client_ring)) {
            while r.tx.spare.len() < 2 * RX_BATCH {
                r.tx.spare.push(pool.pop().unwrap_or_else(|| Vec::with_capacity(2048)));
            }
        }
        self.client_ring.used = pool;
        n
    }

    /// Every server core's turn, in order; frames received.
    fn server_turn(&mut self) -> usize {
        let now = self.now;
        self.cores.iter_mut().zip(self.rings.iter_mut()).map(|(c, r)| c.poll(now, r)).sum()
    }
}

fn bench_flows(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_cores");
    g.throughput(Throughput::Elements(CONNS as u64));
    for (name, n, owner, landing) in
        [("flow/local_1_core", 1, 0, 0), ("flow/local_2_cores", 2, 1, 1), ("flow/handed_over_2_cores", 2, 1, 0)]
    {
        let mut f = Flows::new(n, owner);
        f.landing = landing;
        // Settle on the landing queue (the first turn's requests were already on the owner's).
        for _ in 0..10 {
            f.client_turn();
            f.server_turn();
        }
        let base: Vec<(u64, u64)> =
            f.cores.iter().map(|c| (c.forwarded, c.shard.counters().tcp_ext_foreign_shard)).collect();
        let rx0: u64 = f.rings.iter().map(|r| r.rx_frames).sum();
        let landed0 = f.rings[landing].rx_frames;
        let mut turns = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = StdDuration::ZERO;
                for _ in 0..iters {
                    assert_eq!(f.client_turn(), CONNS, "steady state");
                    spent += timed(|| f.server_turn()).1;
                    turns += 1;
                }
                spent
            })
        });
        let rx: u64 = f.rings.iter().map(|r| r.rx_frames).sum::<u64>() - rx0;
        assert_eq!(rx, turns * CONNS as u64, "{name}: 64 requests per iteration");
        assert_eq!(f.rings[landing].rx_frames - landed0, rx, "{name}: all on queue {landing}");
        let forwarded = f.cores[landing].forwarded - base[landing].0;
        let foreign = f.cores[owner].shard.counters().tcp_ext_foreign_shard - base[owner].1;
        let expect = if landing == owner { 0 } else { rx };
        assert_eq!((forwarded, foreign), (expect, expect), "{name}: frames handed over");
        for core in &f.cores {
            let s = core.shard.counters();
            assert_eq!((s.tcp_retrans_segs, s.tcp_out_rsts), (0, 0), "{name}");
            assert_eq!(core.handover_dropped, 0, "{name}");
        }
        assert_eq!(f.cores[owner].shard.conn_count(), CONNS);
        println!(
            "engine_cores/{name}: {turns} iterations, {rx} requests in on queue {landing}, {forwarded} handed over to core {owner}"
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(20)
}

fn short_config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(300))
        .measurement_time(StdDuration::from_secs(2))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_pingpong, bench_syn_flood
}
criterion_group! {
    name = cores;
    config = short_config();
    targets = bench_unmatched, bench_flows
}
criterion_main!(benches, cores);
