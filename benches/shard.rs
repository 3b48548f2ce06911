//! One shard's protocol work per packet and per connection (STYLE §8.8), IP packets in and out,
//! no link layer:
//!
//! - `syn/cookie_synack`: a SYN to a listener in `SynCookies::Always`, answered with a cookie
//!   SYN-ACK. Stateless, so every iteration sees the same empty shard.
//! - `syn/queue_synack`: a SYN that takes a SYN-queue entry (cookies off), answered with a
//!   SYN-ACK. State accumulates: each run of up to `QUEUE_CHUNK` SYNs goes into a fresh shard
//!   built outside the timed section.
//! - `conn/life`: a whole connection between two shards on one core: handshake, a 100-byte
//!   request, a 200-byte response with the server's FIN, the client's FIN, the last ACK; then
//!   timers run (TIME-WAIT entries expire 60 s of simulated time later).
//! - `established/*`: one in-order 1448-byte data segment into an ESTABLISHED connection, the
//!   application's read, and the batch's transmit (an ACK every second segment).
//!
//! Every transmit goes into [`Sink`], one reused byte buffer, so the figures hold no allocator
//! work for outgoing packets. Figures: docs/bench-tcp.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::{parse_ip_tcp, Config, ConnId, Event, FourTuple, Secrets, Shard, State, SynCookies, TxSink, Verdict};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::checksum;
use xdptcp::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// Keeps transmitted IP packets back to back in one buffer that is cleared, not freed.
#[derive(Default)]
struct Sink {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Sink {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
    fn len(&self) -> usize {
        self.ends.len()
    }
    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    fn packets(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let starts = core::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(s, e)| &self.bytes[s..e])
    }
}

impl TxSink for Sink {
    fn send_ip(&mut self, _dst: IpAddr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        fill(&mut self.bytes[start..]);
        self.ends.push(start + len);
        true
    }
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 80;

fn server_addr() -> SocketAddr {
    SocketAddr::new(SERVER.into(), PORT)
}

/// The `i`-th of many distinct clients (16 M addresses in 10.0.0.0/8, ports 1024..61024).
fn client_addr(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).into(), 1024 + (i % 60000) as u16)
}

/// An IPv4 packet from `src` to `dst`, as a peer would send it (checksums filled in).
#[allow(clippy::too_many_arguments)]
fn craft(
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
    options: TcpOptions,
    window: u16,
) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let seg = OutSegment { seq: SeqNum(seq), ack: SeqNum(ack), flags, window, options, payload: (payload, &[]) };
    assert!(emit(&mut out, &FourTuple::new(src, dst), &seg, 64));
    out.pop().unwrap()
}

/// The options a Linux client puts in its SYN.
fn linux_syn_options(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((tsval, 0)),
        ..TcpOptions::default()
    }
}

fn syn_from(i: u32) -> Vec<u8> {
    let isn = i.wrapping_mul(0x9e37_79b9);
    craft(client_addr(i), server_addr(), isn, 0, TcpFlags::SYN, &[], linux_syn_options(i), 64240)
}

fn listening_shard(cfg: Config, backlog: usize) -> Shard {
    let mut s = Shard::new(cfg, Secrets::from_seed(1));
    s.listen(PORT, None, backlog).unwrap();
    s
}

fn now0() -> Instant {
    Instant::from_secs(1_000_000)
}

// -----------------------------------------------------------------------------------------
// SYN -> SYN-ACK
// -----------------------------------------------------------------------------------------

const SYN_VARIANTS: u32 = 4096;
const QUEUE_CHUNK: usize = 65536;

fn bench_syn(c: &mut Criterion) {
    let now = now0();
    let syns: Vec<Vec<u8>> = (0..QUEUE_CHUNK as u32).map(syn_from).collect();
    let mut g = c.benchmark_group("syn");
    g.throughput(Throughput::Elements(1));

    // (a) Cookies always: no state, one SYN-ACK per SYN.
    let cfg = Config { syncookies: SynCookies::Always, ..Config::default() };
    let mut shard = listening_shard(cfg, 4096);
    let mut sink = Sink::default();
    assert_eq!(shard.handle_ip(now, &syns[0], &mut sink), Verdict::Consumed);
    assert_eq!(sink.len(), 1);
    let (_, _, synack) = parse_ip_tcp(sink.packets().next().unwrap()).expect("SYN-ACK parses");
    assert!(synack.flags.syn() && synack.flags.ack() && synack.options.timestamps.is_some());
    sink.clear();
    let mut i = 0usize;
    g.bench_function("cookie_synack", |b| {
        b.iter(|| {
            i = (i + 1) % SYN_VARIANTS as usize;
            let v = shard.handle_ip(now, black_box(&syns[i]), &mut sink);
            sink.clear();
            v
        })
    });
    // The same into a `Vec<Vec<u8>>` sink, cleared each time: one allocation per SYN-ACK.
    let mut vec_sink: Vec<Vec<u8>> = Vec::with_capacity(4);
    g.bench_function("cookie_synack_vec_sink", |b| {
        b.iter(|| {
            i = (i + 1) % SYN_VARIANTS as usize;
            let v = shard.handle_ip(now, black_box(&syns[i]), &mut vec_sink);
            vec_sink.clear();
            v
        })
    });
    assert_eq!((shard.conn_count(), shard.syn_queue_len(), shard.timer_heap_len()), (0, 0, 0));

    // (b) SYN queue (cookies off): an entry, a timer and a SYN-ACK per SYN.
    let cfg = Config {
        syncookies: SynCookies::Off,
        max_syn_backlog: QUEUE_CHUNK,
        somaxconn: QUEUE_CHUNK,
        ..Config::default()
    };
    let fresh = || listening_shard(cfg.clone(), QUEUE_CHUNK);
    let mut check = fresh();
    for s in &syns {
        assert_eq!(check.handle_ip(now, s, &mut sink), Verdict::Consumed);
    }
    assert_eq!((check.syn_queue_len(), sink.len()), (QUEUE_CHUNK, QUEUE_CHUNK));
    sink.clear();
    drop(check);
    g.bench_function("queue_synack", |b| {
        // Benches time themselves here (the sans-IO rule is for src/tcp, not for benches).
        #[allow(clippy::disallowed_methods)]
        b.iter_custom(|iters| {
            let mut total = StdDuration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(QUEUE_CHUNK);
                let mut shard = fresh();
                let start = std::time::Instant::now();
                for s in &syns[..n] {
                    black_box(shard.handle_ip(now, s, &mut sink));
                    sink.clear();
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    g.finish();
}

// -----------------------------------------------------------------------------------------
// A whole connection
// -----------------------------------------------------------------------------------------

const REQUEST: [u8; 100] = [b'q'; 100];
const RESPONSE: [u8; 200] = [b'r'; 200];
/// Simulated time between connections: with 60 s of TIME-WAIT, the server holds 60,000
/// TIME-WAIT entries in steady state.
const CONN_STEP: Duration = Duration::from_millis(1);
/// Distinct client tuples before one repeats (far longer than TIME-WAIT at `CONN_STEP`).
const CLIENT_TUPLES: u32 = 1 << 20;

struct Pair {
    client: Shard,
    server: Shard,
    c_out: Sink,
    s_out: Sink,
    now: Instant,
    next: u32,
    buf: Vec<u8>,
    packets: u64,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            client: Shard::new(Config::default(), Secrets::from_seed(2)),
            server: listening_shard(Config::default(), 4096),
            c_out: Sink::default(),
            s_out: Sink::default(),
            now: now0(),
            next: 0,
            buf: vec![0u8; 4096],
            packets: 0,
        }
    }

    /// Runs one connection from connect to the client's CLOSED and the server's TIME-WAIT.
    fn life(&mut self) {
        let local = client_addr(self.next);
        self.next = (self.next + 1) % CLIENT_TUPLES;
        let now = self.now;
        self.client.connect(now, local, server_addr()).expect("connect");
        self.client.poll_transmit(now, &mut self.c_out);
        while !self.c_out.is_empty() {
            for p in self.c_out.packets() {
                self.server.handle_ip(now, p, &mut self.s_out);
                self.packets += 1;
            }
            self.c_out.clear();
            self.server_app();
            self.server.poll_transmit(now, &mut self.s_out);
            for p in self.s_out.packets() {
                self.client.handle_ip(now, p, &mut self.c_out);
                self.packets += 1;
            }
            self.s_out.clear();
            self.client_app();
            self.client.poll_transmit(now, &mut self.c_out);
        }
        self.now = now + CONN_STEP;
        self.client.handle_timeout(self.now, &mut self.c_out);
        self.server.handle_timeout(self.now, &mut self.s_out);
        // Nothing is due: no retransmission, no delayed ACK left behind.
        debug_assert!(self.c_out.is_empty() && self.s_out.is_empty());
    }

    /// An HTTP/1.0-like server: read the request, answer, close.
    fn server_app(&mut self) {
        let now = self.now;
        while let Some(ev) = self.server.poll_event() {
            match ev {
                Event::AcceptReady { port } => while self.server.accept(port).is_some() {},
                Event::Readable(id) => {
                    let n = self.server.recv(id, &mut self.buf).unwrap_or(0);
                    if n == REQUEST.len() {
                        self.server.send(id, &RESPONSE).unwrap();
                        self.server.close(now, id, &mut self.s_out).unwrap();
                    }
                }
                Event::Closed(id, _) => {
                    let _ = self.server.close(now, id, &mut self.s_out);
                }
                _ => {}
            }
        }
    }

    /// The client: send the request once connected, read the response, close after the FIN.
    fn client_app(&mut self) {
        let now = self.now;
        while let Some(ev) = self.client.poll_event() {
            match ev {
                Event::Connected(id) => {
                    self.client.send(id, &REQUEST).unwrap();
                }
                Event::Readable(id) => while self.client.recv(id, &mut self.buf).unwrap_or(0) > 0 {},
                Event::PeerClosed(id) => {
                    while self.client.recv(id, &mut self.buf).unwrap_or(0) > 0 {}
                    self.client.close(now, id, &mut self.c_out).unwrap();
                }
                Event::Closed(id, _) => {
                    let _ = self.client.close(now, id, &mut self.c_out);
                }
                _ => {}
            }
        }
    }
}

fn bench_conn(c: &mut Criterion) {
    let mut pair = Pair::new();
    pair.life();
    let per_conn = pair.packets;
    assert_eq!(
        (pair.client.conn_count(), pair.server.conn_count(), pair.server.time_wait_len()),
        (0, 0, 1),
        "client CLOSED and released, server in TIME-WAIT"
    );
    let sc = pair.server.counters();
    assert_eq!((sc.tcp_passive_opens, sc.tcp_out_rsts, sc.tcp_retrans_segs), (1, 0, 0));
    // Reach the steady state first: TIME-WAIT entries start expiring after 60 s.
    for _ in 0..61_000 {
        pair.life();
    }
    assert_eq!(pair.packets, per_conn * 61_001, "every connection takes the same packets");
    println!(
        "conn/life: {per_conn} packets per connection; steady state: {} TIME-WAIT entries, {} timer entries",
        pair.server.time_wait_len(),
        pair.server.timer_heap_len() + pair.client.timer_heap_len()
    );
    let mut g = c.benchmark_group("conn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("life", |b| b.iter(|| pair.life()));
    g.finish();
    let sc = pair.server.counters();
    assert_eq!((sc.tcp_out_rsts, sc.tcp_retrans_segs, pair.client.counters().tcp_retrans_segs), (0, 0, 0));
}

// -----------------------------------------------------------------------------------------
// Established data
// -----------------------------------------------------------------------------------------

const MSS_PAYLOAD: usize = 1448;
const PEER_TSVAL: u32 = 5000;

/// A server shard with one accepted ESTABLISHED connection from a Linux-like client.
/// Returns the shard, the connection, the client's next sequence number, the server's ISS + 1,
/// and the server's TSval to echo.
fn established() -> (Shard, ConnId, u32, u32, u32) {
    let now = now0();
    let mut s = listening_shard(Config::default(), 16);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let cl = client_addr(1);
    let isn = 0x1234_5678u32;
    let syn = craft(cl, server_addr(), isn, 0, TcpFlags::SYN, &[], linux_syn_options(PEER_TSVAL), 64240);
    assert_eq!(s.handle_ip(now, &syn, &mut out), Verdict::Consumed);
    let (_, _, sa) = parse_ip_tcp(&out[0]).unwrap();
    let (iss1, ts) = (sa.seq.0.wrapping_add(1), sa.options.timestamps.unwrap().0);
    let opts = TcpOptions { timestamps: Some((PEER_TSVAL, ts)), ..TcpOptions::default() };
    let ack = craft(cl, server_addr(), isn.wrapping_add(1), iss1, TcpFlags::ACK, &[], opts, 502);
    assert_eq!(s.handle_ip(now, &ack, &mut out), Verdict::Consumed);
    let id = s.accept(PORT).expect("accepted");
    while s.poll_event().is_some() {}
    assert_eq!(s.state(id), Some(State::Established));
    (s, id, isn.wrapping_add(1), iss1, ts)
}

/// The receive side of one bulk flow: the shard, its connection, and what it has done.
struct DataFlow {
    s: Shard,
    id: ConnId,
    seq: u32,
    sink: Sink,
    buf: Vec<u8>,
    read: u64,
    segs: u64,
    acks: u64,
}

impl DataFlow {
    fn new() -> (DataFlow, u32, u32) {
        let (s, id, seq, iss1, ts) = established();
        let f = DataFlow { s, id, seq, sink: Sink::default(), buf: vec![0u8; 4096], read: 0, segs: 0, acks: 0 };
        (f, iss1, ts)
    }

    /// What the engine does after a segment: the application reads, then the batch transmits.
    fn after(&mut self, now: Instant) {
        while let Some(ev) = self.s.poll_event() {
            if let Event::Readable(r) = ev {
                loop {
                    let n = self.s.recv(r, &mut self.buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    self.read += n as u64;
                }
            }
        }
        self.s.poll_transmit(now, &mut self.sink);
        self.acks += self.sink.len() as u64;
        self.segs += 1;
        self.sink.clear();
        self.seq = self.seq.wrapping_add(MSS_PAYLOAD as u32);
    }

    fn check(&self, what: &str) {
        assert_eq!(self.s.state(self.id), Some(State::Established));
        assert_eq!(self.read, self.segs * MSS_PAYLOAD as u64, "{what}: every byte read, in order");
        println!("established/{what}: {} ACKs for {} segments", self.acks, self.segs);
    }
}

fn bench_established(c: &mut Criterion) {
    let now = now0();
    let payload: Vec<u8> = (0..MSS_PAYLOAD as u32).map(|i| (i * 7) as u8).collect();
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(1));

    // Through handle_ip: IPv4 header checksum, TCP checksum over 1448 bytes, the segment, read.
    let (mut f, iss1, ts) = DataFlow::new();
    let opts = TcpOptions { timestamps: Some((PEER_TSVAL, ts)), ..TcpOptions::default() };
    let flags = TcpFlags::ACK | TcpFlags::PSH;
    let mut pkt = craft(client_addr(1), server_addr(), f.seq, iss1, flags, &payload, opts, 502);
    assert_eq!(pkt.len(), 1500);
    // Moves the packet to the flow's next sequence number, fixing the checksum (RFC 1624).
    let renumber = |pkt: &mut [u8], seq: u32| {
        let old = u32::from_be_bytes([pkt[24], pkt[25], pkt[26], pkt[27]]);
        pkt[24..28].copy_from_slice(&seq.to_be_bytes());
        let ck = u16::from_be_bytes([pkt[36], pkt[37]]);
        pkt[36..38].copy_from_slice(&checksum::update_u32(ck, old, seq).to_be_bytes());
    };
    let one = |f: &mut DataFlow, pkt: &mut [u8]| {
        renumber(pkt, f.seq);
        let v = f.s.handle_ip(now, black_box(pkt), &mut f.sink);
        f.after(now);
        v
    };
    for _ in 0..1000 {
        assert_eq!(one(&mut f, &mut pkt), Verdict::Consumed);
    }
    g.bench_function("data_1448B_handle_ip", |b| b.iter(|| one(&mut f, &mut pkt)));
    assert_eq!(f.s.counters().tcp_in_errs, 0);
    f.check("data_1448B_handle_ip");

    // The same through handle_segment, already parsed: what is left when the NIC verified the
    // checksums and the link layer parsed the headers.
    let (mut f, iss1, ts) = DataFlow::new();
    let opts = TcpOptions { timestamps: Some((PEER_TSVAL, ts)), ..TcpOptions::default() };
    let pkt = craft(client_addr(1), server_addr(), f.seq, iss1, flags, &payload, opts, 502);
    let (src, dst, repr) = parse_ip_tcp(&pkt).unwrap();
    let one = |f: &mut DataFlow| {
        let seg = TcpRepr { seq: SeqNum(f.seq), ..repr };
        let v = f.s.handle_segment(now, dst, src, black_box(&seg), &mut f.sink);
        f.after(now);
        v
    };
    for _ in 0..1000 {
        assert_eq!(one(&mut f), Verdict::Consumed);
    }
    g.bench_function("data_1448B_handle_segment", |b| b.iter(|| one(&mut f)));
    f.check("data_1448B_handle_segment");
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_syn, bench_conn, bench_established
}
criterion_main!(benches);
