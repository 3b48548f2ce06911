//! The connection table at scale (STYLE §8.8): a shard holding about a million ESTABLISHED
//! connections, and the cost of a segment that only has to find its connection: a duplicate
//! pure ACK (no data, in window, SEG.ACK = SND.UNA) to a random connection. That is the hash
//! lookup, the slab access, the TCB's RFC 9293 §3.10.7.4 checks, and nothing to send.
//!
//! Connections are made the cheapest way the public API offers: the listener runs
//! `SynCookies::Always`, and each connection is one final ACK carrying a valid cookie (computed
//! here with the shard's key), which creates the TCB in ESTABLISHED with no SYN-queue entry.
//! The application accepts each one at once.
//!
//! Memory: the bench prints `size_of` figures and an estimate of the table overhead per
//! connection and per TIME-WAIT entry, and measures resident-set growth (`/proc/self/statm`)
//! while the tables are filled. Figures: docs/bench-tcp.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration as StdDuration;
use xdptcp::tcp::conn::Tcb;
use xdptcp::tcp::emit::{emit, OutSegment};
use xdptcp::tcp::syncookie::{counter, generate};
use xdptcp::tcp::{Config, ConnId, DropReason, FourTuple, Secrets, Shard, State, SynCookies, TxSink, Verdict};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// Counts transmitted packets without keeping them.
#[derive(Default)]
struct CountSink {
    packets: u64,
    scratch: Vec<u8>,
}

impl TxSink for CountSink {
    fn send_ip(&mut self, _dst: IpAddr, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        self.scratch.resize(len, 0);
        fill(&mut self.scratch);
        self.packets += 1;
        true
    }
}

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PORT: u16 = 80;
const SEED: u64 = 1;
/// The final ACK's TSecr echoes a cookie TSval whose low bits say "window scale 7, no SACK,
/// no ECN" (see `syncookie::encode_ts_options`).
const COOKIE_TSECR: u32 = 7;
const PEER_TSVAL: u32 = 1000;
/// Bytes of an IPv4 TIME-WAIT record (`time_wait::table`, private; asserted there).
const TW_RECORD_V4: usize = 36;
/// One segment per connection per iteration; the engine transmits once per batch this size.
const BATCH: usize = 64;

fn server_ip() -> IpAddr {
    IpAddr::V4(SERVER)
}

/// The `i`-th client: distinct address per connection (10.0.0.0/8), spread ports.
fn client(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).into(), 1024 + (i % 60000) as u16)
}

fn client_isn(i: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b9) ^ 0x5555_aaaa
}

fn tuple(i: u32) -> FourTuple {
    FourTuple::new(SocketAddr::new(server_ip(), PORT), client(i))
}

/// A segment from client `i` with the client's first data sequence number.
fn seg_from(i: u32, ack: u32, flags: TcpFlags) -> TcpRepr<'static> {
    TcpRepr {
        src_port: client(i).port(),
        dst_port: PORT,
        seq: SeqNum(client_isn(i).wrapping_add(1)),
        ack: SeqNum(ack),
        flags,
        window: 502,
        urgent: 0,
        options: TcpOptions { timestamps: Some((PEER_TSVAL, COOKIE_TSECR)), ..TcpOptions::default() },
        payload: &[],
    }
}

fn cookie_listener(max_connections: usize, max_tw_buckets: usize) -> Shard {
    let cfg = Config { syncookies: SynCookies::Always, max_connections, max_tw_buckets, ..Config::default() };
    let mut s = Shard::new(cfg, Secrets::from_seed(SEED));
    s.listen(PORT, None, 4096).unwrap();
    s
}

/// SEG.ACK of client `i`'s final ACK: the cookie the shard would have sent, plus one.
fn cookie_ack(secrets: &Secrets, now: Instant, i: u32) -> u32 {
    let (c, _) = generate(&secrets.cookie_key, &tuple(i), SeqNum(client_isn(i)), 1460, counter(now));
    c.0.wrapping_add(1)
}

/// One cookie ACK: a new ESTABLISHED connection, accepted.
fn open(s: &mut Shard, now: Instant, i: u32, ack: u32, tx: &mut CountSink) -> ConnId {
    let v = s.handle_segment(now, server_ip(), client(i).ip(), &seg_from(i, ack, TcpFlags::ACK), tx);
    assert_eq!(v, Verdict::Consumed, "cookie ACK {i}");
    let id = s.accept(PORT).expect("accept");
    while s.poll_event().is_some() {}
    id
}

/// Resident set size in bytes (`/proc/self/statm`, second field, 4 KiB pages).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = s.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("statm rss");
    pages * 4096
}

/// Buckets of a hashbrown table holding `n` items after growing one insert at a time: a power
/// of two with `n` at most 7/8 of it.
fn hashbrown_buckets(n: usize) -> usize {
    if n < 8 {
        return if n < 4 { 4 } else { 8 };
    }
    (n * 8).div_ceil(7).next_power_of_two()
}

/// glibc malloc: 8 bytes of chunk header, 16-byte granularity, 32-byte minimum.
fn malloc_chunk(n: usize) -> usize {
    (n + 8).div_ceil(16).max(2) * 16
}

/// A shard's tables with `n` established connections; returns the acks, for later segments.
#[allow(clippy::disallowed_methods)] // bench-side wall clock (the sans-IO rule is for src/tcp)
fn build(n: u32, max_connections: usize, now: Instant, measure_rss: bool) -> (Shard, Vec<u32>) {
    let secrets = Secrets::from_seed(SEED);
    let acks: Vec<u32> = (0..n).map(|i| cookie_ack(&secrets, now, i)).collect();
    let mut s = cookie_listener(max_connections, 1 << 18);
    let mut tx = CountSink::default();
    let rss0 = rss();
    let t0 = std::time::Instant::now();
    for (i, &ack) in acks.iter().enumerate() {
        open(&mut s, now, i as u32, ack, &mut tx);
        if i % BATCH == BATCH - 1 {
            s.poll_transmit(now, &mut tx);
        }
    }
    s.poll_transmit(now, &mut tx);
    let took = t0.elapsed();
    let grown = rss().saturating_sub(rss0);
    assert_eq!((s.conn_count(), tx.packets), (n as usize, 0));
    let buckets = hashbrown_buckets(n as usize);
    // After an earlier table was freed, the allocator hands its memory out again: the growth
    // is then not the table's size.
    let rss_note = if measure_rss {
        format!("RSS +{} MiB = {} bytes/connection", grown >> 20, grown / u64::from(n))
    } else {
        "RSS not measured (memory reused from an earlier table)".to_string()
    };
    println!(
        "conn_table: {n} connections (max_connections {max_connections}) built in {:.2} s, {:.0} ns each \
         (cookie check + TCB + insert + accept); {rss_note}; map {} buckets, load {:.1}%; timer entries {}",
        took.as_secs_f64(),
        took.as_nanos() as f64 / f64::from(n),
        buckets,
        100.0 * f64::from(n) / buckets as f64,
        s.timer_heap_len(),
    );
    (s, acks)
}

/// Per-connection and per-TIME-WAIT memory without buffers, from the type sizes, for tables
/// of `n` entries grown one insert at a time (see docs/bench-tcp.md).
fn print_estimates(n: usize) {
    let tcb = size_of::<Tcb>();
    let slot = size_of::<(u32, Option<Box<Tcb>>)>(); // Slot { generation, tcb }
    let conn_entry = size_of::<(FourTuple, ConnId)>();
    // Conn and Syn timer keys next to the deadline in the timer heap; the enum is private,
    // this stand-in has its shape (TIME-WAIT entries have no timer: see time_wait::table).
    #[allow(dead_code)]
    enum KeyShape {
        Conn(ConnId),
        Syn(FourTuple),
    }
    let heap_entry = size_of::<(Instant, KeyShape)>();
    println!(
        "sizes: Tcb {tcb} B (malloc chunk {}), slab slot {slot}, FourTuple {}, ConnId {}, \
         conn map entry {conn_entry} + 1 control byte, timer heap entry {heap_entry}, \
         TIME-WAIT record {TW_RECORD_V4} (IPv4) + index slot 8",
        malloc_chunk(tcb),
        size_of::<FourTuple>(),
        size_of::<ConnId>(),
    );
    let buckets = hashbrown_buckets(n);
    let per = |entry: usize| ((entry + 1) * buckets) as f64 / n as f64;
    // The slab Vec doubles too: its capacity is the next power of two.
    let slab = (slot * n.next_power_of_two()) as f64 / n as f64;
    println!(
        "estimate for {n} established connections (map {buckets} buckets, load {:.1}%): \
         {} (Tcb chunk) + {slab:.0} (slab) + {:.0} (map) = {:.0} B per connection",
        100.0 * n as f64 / buckets as f64,
        malloc_chunk(tcb),
        per(conn_entry),
        malloc_chunk(tcb) as f64 + slab + per(conn_entry),
    );
    // The TIME-WAIT index doubles when 3/4 full.
    let tw_slots = (n * 4).div_ceil(3).next_power_of_two();
    let tw_index = (8 * tw_slots) as f64 / n as f64;
    println!(
        "estimate for {n} TIME-WAIT entries: {TW_RECORD_V4} (record) + {tw_index:.1} (index, {tw_slots} slots) \
         = {:.1} B per entry; index alone at load 37.5%..75%: 21.3..10.7 B",
        TW_RECORD_V4 as f64 + tw_index,
    );
}

/// Fills a fresh shard with `n` TIME-WAIT entries, one connection at a time (cookie ACK,
/// accept, close: our FIN; the peer's FIN+ACK: TIME-WAIT), so at most one TCB is alive and the
/// resident-set growth is the TIME-WAIT table (and stale timers of the closed connections). Returns the shard and the time
/// of the last close.
fn time_wait_memory(n: u32) -> (Shard, Instant) {
    let secrets = Secrets::from_seed(SEED);
    let mut s = cookie_listener(1 << 20, n as usize);
    let mut tx = CountSink::default();
    let start = Instant::from_secs(1_000_000);
    // 50 µs apart: all n fit in the 60 s of TIME-WAIT, and stale timer entries of the closed
    // connections (the FIN's retransmission timer) expire as they would in a real run.
    let step = Duration::from_micros(50);
    let mut now = start;
    let rss0 = rss();
    for i in 0..n {
        let ack = cookie_ack(&secrets, now, i);
        let id = open(&mut s, now, i, ack, &mut tx);
        s.close(now, id, &mut tx).unwrap();
        s.poll_transmit(now, &mut tx);
        let fin = seg_from(i, ack.wrapping_add(1), TcpFlags::FIN | TcpFlags::ACK);
        assert_eq!(s.handle_segment(now, server_ip(), client(i).ip(), &fin, &mut tx), Verdict::Consumed);
        s.poll_transmit(now, &mut tx);
        now = now + step;
        if i % 1024 == 0 {
            s.handle_timeout(now, &mut tx);
        }
    }
    let grown = rss().saturating_sub(rss0);
    assert_eq!((s.conn_count(), s.time_wait_len()), (0, n as usize));
    assert_eq!(s.state_of(&tuple(n - 1)), Some(State::TimeWait));
    println!(
        "time_wait: {n} TIME-WAIT entries (table {} bytes), {} timer entries; RSS +{} MiB = {} bytes/entry",
        s.time_wait_bytes(),
        s.timer_heap_len(),
        grown >> 20,
        grown / u64::from(n),
    );
    (s, now)
}

/// Times batches of `BATCH` segments to random TIME-WAIT entries of `s` (entries `0..n`):
/// `flags` RST (lookup and verdict only: `rfc1337` drops it) or ACK at RCV.NXT (lookup, and
/// the 2·MSL restart of Linux's "bare ACK" rule). With `miss`, the RSTs come from clients
/// `n..2n`, which hold nothing: the TIME-WAIT lookup that every segment for an unknown flow
/// (a new SYN among them) makes, then the listener's drop of a RST.
fn bench_time_wait(c: &mut Criterion, name: &str, s: &mut Shard, n: u32, now: Instant, flags: TcpFlags, miss: bool) {
    let picks: Vec<u32> =
        random_picks(&vec![0; n as usize], 1 << 20).into_iter().map(|(i, _)| if miss { i + n } else { i }).collect();
    let mut tx = CountSink::default();
    let mut pos = 0usize;
    let mut batch = |s: &mut Shard, tx: &mut CountSink| {
        let mut hit = 0;
        for &i in &picks[pos..pos + BATCH] {
            // The peer's FIN took client_isn + 1: RCV.NXT is client_isn + 2.
            let seg = TcpRepr { seq: SeqNum(client_isn(i).wrapping_add(2)), ..seg_from(i, 0, flags) };
            match s.handle_segment(now, server_ip(), client(i).ip(), black_box(&seg), tx) {
                Verdict::Consumed | Verdict::Drop(DropReason::TimeWaitRst) => hit += 1,
                Verdict::Drop(DropReason::RstNoConnection) if miss => hit += 1,
                _ => {}
            }
        }
        s.poll_transmit(now, tx);
        pos = (pos + BATCH) % picks.len();
        hit
    };
    assert_eq!(batch(s, &mut tx), BATCH);
    let mut g = c.benchmark_group("conn_table");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| b.iter(|| batch(s, &mut tx)));
    g.finish();
    assert_eq!(tx.packets, 0, "{name}: nothing sent");
    assert_eq!(s.time_wait_len(), n as usize, "{name}: every entry stays");
}

/// A random sequence of (connection, SEG.ACK), read in order by the timed loop so that the
/// bench's own bookkeeping costs no cache miss.
fn random_picks(acks: &[u32], len: usize) -> Vec<(u32, u32)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % acks.len() as u64) as u32;
            (i, acks[i as usize])
        })
        .collect()
}

/// Times batches of `BATCH` duplicate ACKs to random connections, one transmit per batch.
fn bench_dup_acks(c: &mut Criterion, name: &str, s: &mut Shard, acks: &[u32], now: Instant) {
    let picks = random_picks(acks, 1 << 20);
    let mut tx = CountSink::default();
    let mut pos = 0usize;
    let mut batch = |s: &mut Shard, tx: &mut CountSink| {
        let mut consumed = 0;
        for &(i, ack) in &picks[pos..pos + BATCH] {
            let seg = seg_from(i, ack, TcpFlags::ACK);
            if s.handle_segment(now, server_ip(), client(i).ip(), black_box(&seg), tx) == Verdict::Consumed {
                consumed += 1;
            }
        }
        s.poll_transmit(now, tx);
        pos = (pos + BATCH) % picks.len();
        consumed
    };
    assert_eq!(batch(s, &mut tx), BATCH);
    let mut g = c.benchmark_group("conn_table");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| b.iter(|| batch(s, &mut tx)));
    g.finish();
    // Duplicate ACKs need no answer, and none went astray.
    assert_eq!(tx.packets, 0, "{name}: nothing sent");
    assert_eq!(s.counters().tcp_in_errs, 0);
}

/// The IPv4 packet a client sends: `seg` from client `i` to the server.
fn craft(i: u32, seg: &TcpRepr<'_>) -> Vec<u8> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let o = OutSegment {
        seq: seg.seq,
        ack: seg.ack,
        flags: seg.flags,
        window: seg.window,
        options: seg.options,
        payload: (&[], &[]),
    };
    assert!(emit(&mut out, &FourTuple::new(client(i), SocketAddr::new(server_ip(), PORT)), &o, 64));
    out.pop().unwrap()
}

/// The same through `handle_ip` (IPv4 and TCP checksums, parsing): 65,536 packets to random
/// connections made in advance, fed in order.
fn bench_dup_acks_ip(c: &mut Criterion, name: &str, s: &mut Shard, acks: &[u32], now: Instant) {
    let packets: Vec<Vec<u8>> =
        random_picks(acks, 1 << 16).into_iter().map(|(i, ack)| craft(i, &seg_from(i, ack, TcpFlags::ACK))).collect();
    let mut tx = CountSink::default();
    let mut pos = 0usize;
    let mut batch = |s: &mut Shard, tx: &mut CountSink| {
        let mut consumed = 0;
        for p in &packets[pos..pos + BATCH] {
            if s.handle_ip(now, black_box(p), tx) == Verdict::Consumed {
                consumed += 1;
            }
        }
        s.poll_transmit(now, tx);
        pos = (pos + BATCH) % packets.len();
        consumed
    };
    assert_eq!(batch(s, &mut tx), BATCH);
    let mut g = c.benchmark_group("conn_table");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(name, |b| b.iter(|| batch(s, &mut tx)));
    g.finish();
    assert_eq!(tx.packets, 0, "{name}: nothing sent");
    assert_eq!(s.counters().tcp_in_errs, 0);
}

fn bench_tables(c: &mut Criterion) {
    let full = 1usize << 20;
    print_estimates(full);
    // First, while the heap is fresh: TIME-WAIT memory, then the million connections.
    let (mut s, tw_now) = time_wait_memory(full as u32);
    bench_time_wait(c, "tw_rst_1M_entries", &mut s, full as u32, tw_now, TcpFlags::RST, false);
    bench_time_wait(c, "tw_ack_restart_1M_entries", &mut s, full as u32, tw_now, TcpFlags::ACK, false);
    bench_time_wait(c, "tw_miss_rst_1M_entries", &mut s, full as u32, tw_now, TcpFlags::RST, true);
    drop(s);

    let now = Instant::from_secs(2_000_000);
    // 2^20 connections, max_connections 2^20: the table is full.
    let (mut s, acks) = build(full as u32, full, now, true);
    let secrets = Secrets::from_seed(SEED);
    let extra = full as u32;
    let ack = cookie_ack(&secrets, now, extra);
    let seg = seg_from(extra, ack, TcpFlags::ACK);
    let v = s.handle_segment(now, server_ip(), client(extra).ip(), &seg, &mut CountSink::default());
    assert_eq!(v, Verdict::Drop(DropReason::TableFull));
    bench_dup_acks(c, "dup_ack_1M_conns", &mut s, &acks, now);
    bench_dup_acks_ip(c, "dup_ack_1M_conns_handle_ip", &mut s, &acks, now);
    drop(s);

    // 90% of max_connections.
    let n = full * 9 / 10;
    let (mut s, acks) = build(n as u32, full, now, false);
    bench_dup_acks(c, "dup_ack_90pct_of_1M", &mut s, &acks, now);
    drop(s);

    // 7/8 of 2^20: the hash map at its highest load (87.5%) before it doubles.
    let n = full * 7 / 8;
    let (mut s, acks) = build(n as u32, full, now, false);
    bench_dup_acks(c, "dup_ack_917k_conns_map_load_87pct", &mut s, &acks, now);
    drop(s);

    // Smaller tables, for the cost of cache and TLB misses: 64 Ki connections (about 45 MB
    // of TCBs and map, above the L3) and 1 Ki (all in cache).
    for (n, name) in [(1u32 << 16, "dup_ack_64k_conns"), (1 << 10, "dup_ack_1k_conns")] {
        let (mut s, acks) = build(n, full, now, false);
        bench_dup_acks(c, name, &mut s, &acks, now);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(StdDuration::from_millis(500))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_tables
}
criterion_main!(benches);
