//! What a TIME-WAIT entry and an idle connection cost a shard, counted exactly: a counting
//! global allocator sees every byte the process asks for, and the resident set (VmRSS) adds
//! what the allocator itself spends per allocation.
//!
//! - TIME-WAIT: a `Shard` takes 1,000,000 IPv4 connections through their whole life (cookie
//!   ACK, accept, our FIN, the peer's FIN+ACK) so that each leaves a TIME-WAIT entry behind and
//!   at most one TCB is alive at a time. The growth of the bytes held, divided by the entries,
//!   is the cost of one entry with everything included: its record, the index, the ring's spare
//!   room, and whatever else the shard kept (timer heap capacity, for one). At most 64 bytes.
//! - Established: 1,000,000 IPv4 connections opened (cookie ACK, accept) and left idle, their
//!   handles held. The growth per connection is the TCB with everything the shard keeps for it
//!   (the box and its allocator header, the slab slot, the tuple index), without buffers, which
//!   an idle connection does not hold. At most 512 bytes, both as counted and as RSS growth.
//!
//! `tests/ops_memory.rs` measures the same as RSS growth of `serve`, app state included. No time
//! is asserted; simulated time moves 50 µs per connection, so all 1,000,000 TIME-WAIT entries
//! are alive at the end (60 s of TIME-WAIT). The two tests take turns (one lock): each reads the
//! whole process's counters.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use xdptcp::tcp::syncookie::{counter, generate};
use xdptcp::tcp::{Config, FourTuple, Secrets, Shard, State, SynCookies, TxSink, Verdict};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{SeqNum, TcpFlags, TcpOptions, TcpRepr};

/// The system allocator, counting the bytes held.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// counter is only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (hence from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
            HELD.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ENTRIES: u32 = 1_000_000;
/// Connections made before the first count: the shard's fixed allocations (listener, first
/// chunk, small tables) are not per entry.
const WARM_UP: u32 = 1024;
const PORT: u16 = 80;
/// The final ACK's TSecr echoes a cookie TSval whose low bits say "window scale 7, no SACK,
/// no ECN" (see `syncookie::encode_ts_options`).
const COOKIE_TSECR: u32 = 7;

/// Counts packets without keeping them.
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

fn server() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))
}

/// Client `i`: a distinct address (10.0.0.0/8) and a spread port.
fn client(i: u32) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).into(), 1024 + (i % 60000) as u16)
}

fn client_isn(i: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b9) ^ 0x5555_aaaa
}

fn seg(i: u32, ack: u32, flags: TcpFlags) -> TcpRepr<'static> {
    TcpRepr {
        src_port: client(i).port(),
        dst_port: PORT,
        seq: SeqNum(client_isn(i).wrapping_add(1)),
        ack: SeqNum(ack),
        flags,
        window: 502,
        urgent: 0,
        options: TcpOptions { timestamps: Some((1000, COOKIE_TSECR)), ..TcpOptions::default() },
        payload: &[],
    }
}

/// Client `i`'s whole connection: the cookie ACK (ESTABLISHED), accept, close (our FIN), the
/// peer's FIN+ACK (TIME-WAIT).
fn one_life(s: &mut Shard, secrets: &Secrets, now: Instant, i: u32, tx: &mut CountSink) {
    let t = FourTuple::new(SocketAddr::new(server(), PORT), client(i));
    let (cookie, _) = generate(&secrets.cookie_key, &t, SeqNum(client_isn(i)), 1460, counter(now));
    let ack = cookie.0.wrapping_add(1);
    assert_eq!(s.handle_segment(now, server(), client(i).ip(), &seg(i, ack, TcpFlags::ACK), tx), Verdict::Consumed);
    let id = s.accept(PORT).expect("accept");
    s.close(now, id, tx).expect("close");
    s.poll_transmit(now, tx);
    let fin = seg(i, ack.wrapping_add(1), TcpFlags::FIN | TcpFlags::ACK);
    assert_eq!(s.handle_segment(now, server(), client(i).ip(), &fin, tx), Verdict::Consumed);
    s.poll_transmit(now, tx);
    while s.poll_event().is_some() {}
}

/// The tests take turns: each measures the whole process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The resident set of this process, in bytes (`VmRSS` of /proc/self/status).
fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_million_idle_connections_cost_at_most_512_bytes_each() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = Config { syncookies: SynCookies::Always, ..Config::default() };
    let secrets = Secrets::from_seed(2);
    let mut s = Shard::new(cfg, secrets.clone());
    s.listen(PORT, None, 4096).unwrap();
    let mut tx = CountSink::default();
    let mut now = Instant::from_secs(1_000_000);
    let mut ids = Vec::with_capacity((WARM_UP + ENTRIES) as usize);
    let (mut held0, mut rss0) = (0, 0);
    for i in 0..WARM_UP + ENTRIES {
        if i == WARM_UP {
            (held0, rss0) = (HELD.load(Ordering::Relaxed), rss());
        }
        let t = FourTuple::new(SocketAddr::new(server(), PORT), client(i));
        let (cookie, _) = generate(&secrets.cookie_key, &t, SeqNum(client_isn(i)), 1460, counter(now));
        let ack = cookie.0.wrapping_add(1);
        let v = s.handle_segment(now, server(), client(i).ip(), &seg(i, ack, TcpFlags::ACK), &mut tx);
        assert_eq!(v, Verdict::Consumed);
        ids.push(s.accept(PORT).expect("accept"));
        while s.poll_event().is_some() {}
        now = now + Duration::from_micros(50);
        if i % 1024 == 0 {
            s.handle_timeout(now, &mut tx);
        }
    }
    let (held1, rss1) = (HELD.load(Ordering::Relaxed), rss());
    assert_eq!(s.conn_count(), (WARM_UP + ENTRIES) as usize);
    assert!(ids.iter().all(|id| s.state(*id) == Some(State::Established)));
    // The handles are the application's, not the shard's.
    let handles = ids.capacity() * std::mem::size_of_val(&ids[0]);
    let counted = (held1 - held0).saturating_sub(handles) as f64 / f64::from(ENTRIES);
    let resident = rss1.saturating_sub(rss0).saturating_sub(handles) as f64 / f64::from(ENTRIES);
    eprintln!(
        "{ENTRIES} idle connections: {counted:.1} bytes each as counted, {resident:.1} as RSS growth \
         (Tcb {} bytes; timer heap {} entries)",
        std::mem::size_of::<xdptcp::tcp::conn::Tcb>(),
        s.timer_heap_len(),
    );
    assert!(counted <= 512.0, "an idle connection costs {counted:.1} bytes (issue 10: at most 512)");
    assert!(resident <= 512.0, "an idle connection costs {resident:.1} bytes of RSS (issue 10: at most 512)");
}

#[test]
fn a_million_time_wait_entries_cost_at_most_64_bytes_each() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cfg = Config { syncookies: SynCookies::Always, max_tw_buckets: 1 << 21, ..Config::default() };
    let secrets = Secrets::from_seed(1);
    let mut s = Shard::new(cfg, secrets.clone());
    s.listen(PORT, None, 4096).unwrap();
    let mut tx = CountSink::default();
    let step = Duration::from_micros(50);
    let mut now = Instant::from_secs(1_000_000);
    let mut held0 = 0;
    for i in 0..WARM_UP + ENTRIES {
        if i == WARM_UP {
            held0 = HELD.load(Ordering::Relaxed);
        }
        one_life(&mut s, &secrets, now, i, &mut tx);
        now = now + step;
        // The stale retransmission timers of the closed connections fire as in a real run.
        if i % 1024 == 0 {
            s.handle_timeout(now, &mut tx);
        }
    }
    let held1 = HELD.load(Ordering::Relaxed);
    let total = (WARM_UP + ENTRIES) as usize;
    assert_eq!((s.conn_count(), s.time_wait_len(), s.time_wait_slots()), (0, total, total));
    let last = FourTuple::new(SocketAddr::new(server(), PORT), client(WARM_UP + ENTRIES - 1));
    assert_eq!(s.state_of(&last), Some(State::TimeWait));
    let per_entry = (held1 - held0) as f64 / f64::from(ENTRIES);
    let table = s.time_wait_bytes() as f64 / total as f64;
    eprintln!(
        "{ENTRIES} TIME-WAIT entries: heap {held0} -> {held1} bytes, {per_entry:.1} bytes per entry \
         (the TIME-WAIT table alone: {} bytes, {table:.1} per entry; timer heap {} entries)",
        s.time_wait_bytes(),
        s.timer_heap_len(),
    );
    assert!(per_entry <= 64.0, "a TIME-WAIT entry costs {per_entry:.1} bytes (issue 10: at most 64)");
}
