//! The per-core run-to-completion loop, core pinning, the clock, control and statistics.
//!
//! One thread per NIC queue, pinned to one core, owns that queue's [`Core`]: a `Shard`, the
//! network layer and the application. Nothing is shared on the fast path; control (statistics
//! snapshots, stop) arrives over a crossbeam channel polled once per loop, and segments for a
//! flow that another core owns are handed over through per-core inboxes.

use crate::app::{self, Handler};
use crate::io::{FrameIo, IoStats};
use crate::net::{FrameSink, FrameVerdict, Net, NetCounters};
use crate::tcp::{Counters, Shard, Verdict};
use crate::time::{Clock, Instant};
use crossbeam_channel::{Receiver, Sender};
use owners::OwnerDirectory;
use std::sync::Arc;

#[cfg(feature = "xdp")]
pub mod builder;
pub mod caps;
pub mod clock;
pub mod control;
pub mod metrics;
pub mod nic;
pub mod ops;
pub mod owners;
pub mod pcap;
pub mod preflight;
pub mod proxy;
pub mod secret_file;
pub mod shield;
pub mod stats_file;
#[cfg(feature = "xdp")]
pub mod xdp;

#[cfg(feature = "xdp")]
pub use builder::EngineBuilder;
pub use clock::MonoClock;
#[cfg(feature = "xdp")]
pub use xdp::{Engine, EngineConfig};

/// Frames taken from the ring per burst (DESIGN.md: rx batch of at most 64 frames).
pub const RX_BATCH: usize = 64;

/// A frame handed from the core that received it to the core that holds its flow (its packets
/// moved queue). The buffer comes from the sender's preallocated pool and goes back to it once
/// the owner has processed the frame: no allocation per hand-over.
#[derive(Debug)]
pub struct Handover {
    pub buf: Vec<u8>,
    pub from: u16,
}

/// Sizes of the hand-over links and the flow directory ([`connect_cores`]).
#[derive(Debug, Clone, Copy)]
pub struct HandoverConfig {
    /// Slots of the flow directory (8 bytes each): a flow held by any core takes one.
    pub directory_slots: usize,
    /// Frames a core can have in flight to others, and the depth of each inbox.
    pub depth: usize,
    /// Largest frame (the UMEM frame size).
    pub frame_size: usize,
}

impl Default for HandoverConfig {
    fn default() -> Self {
        HandoverConfig { directory_slots: 1 << 20, depth: 1024, frame_size: 4096 }
    }
}

/// Wakes a core that sleeps in poll(2) (its queue idle) when a frame is handed to it: an
/// eventfd it polls beside its AF_XDP socket, written only while it says it sleeps.
#[derive(Debug)]
pub struct Waker {
    fd: Option<std::os::fd::OwnedFd>,
    sleeping: std::sync::atomic::AtomicBool,
}

impl Waker {
    fn new() -> Waker {
        // SAFETY: eventfd(2) with constant flags; the result is checked before it is owned.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        // SAFETY: `raw` is a fresh descriptor this value alone owns.
        let fd = (raw >= 0).then(|| unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) });
        if fd.is_none() {
            eprintln!(
                "xdptcp: eventfd: {}; a sleeping core notices frames handed to it only when its sleep ends (2 ms at most)",
                std::io::Error::last_os_error()
            );
        }
        Waker { fd, sleeping: std::sync::atomic::AtomicBool::new(false) }
    }

    fn wake(&self) {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{fence, Ordering};
        // The frame was queued before this load, and the core stores `sleeping` before it
        // looks at its queue: with a full fence on both sides, one of the two sees the other.
        fence(Ordering::SeqCst);
        // The first hand-over to a sleeping core writes the eventfd; those after it, until the
        // core sleeps again, find it awake (or waking) and need not.
        if !self.sleeping.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Some(fd) = &self.fd {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to an eventfd we own.
            let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Empties the eventfd after a sleep.
    fn drain(&self) {
        use std::os::fd::AsRawFd;
        if let Some(fd) = &self.fd {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 from a non-blocking eventfd we own.
            let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
    }
}

/// One core's ends of the hand-over links.
pub struct Links {
    /// Inboxes of all cores, index-aligned (bounded, preallocated).
    inboxes: Vec<Sender<Handover>>,
    /// Buffer pools of all cores, index-aligned: a processed frame's buffer goes home.
    pools: Vec<Sender<Vec<u8>>>,
    inbox: Receiver<Handover>,
    pool: Receiver<Vec<u8>>,
    dir: Arc<OwnerDirectory>,
    /// Wakers of all cores, index-aligned.
    wakers: Vec<Arc<Waker>>,
}

/// One core's state: everything its loop touches. `H` is the application (a trait object for
/// the server's app mux, a concrete type where the caller wants it back, as the bench client).
pub struct Core<H: Handler + ?Sized = dyn Handler + Send> {
    pub index: usize,
    pub shard: Shard,
    pub net: Net,
    pub app: Box<H>,
    /// Links to the other cores of the engine; none with one core.
    links: Option<Links>,
    /// Frames this core handed to another.
    pub forwarded: u64,
    /// Frames that could not be handed over: the owner's inbox was full, or every buffer of
    /// this core's pool was in flight. Dropped (TCP retransmits them).
    pub handover_dropped: u64,
    /// The clock that times a sample of received frames (one in [`WORK_SAMPLE`]): what the
    /// stack spends on a frame, from parsing to the reply or the hand-over. None: not timed.
    pub work_clock: Option<MonoClock>,
    /// Nanoseconds spent on the timed frames, and how many were timed.
    pub work_ns: u64,
    pub work_samples: u64,
    last_housekeeping: Instant,
}

/// One received frame in this many is timed for [`CoreStats::frame_ns`].
pub const WORK_SAMPLE: u64 = 8;
/// A timed frame that took this long was preempted or interrupted: left out of the mean.
const WORK_SAMPLE_PREEMPTED_NS: u64 = 50_000;

/// What a core reports.
#[derive(Debug, Clone, Default)]
pub struct CoreStats {
    pub core: usize,
    pub tcp: Counters,
    pub net: NetCounters,
    pub io: IoStats,
    pub conns: usize,
    pub syn_queue: usize,
    pub time_wait: usize,
    pub forwarded: u64,
    pub handover_dropped: u64,
    /// Flows this core could not record in the directory (its bucket was full).
    pub directory_full: u64,
    /// Nanoseconds spent on the sampled received frames, and how many were sampled (see
    /// [`CoreStats::frame_ns`]).
    pub work_ns: u64,
    pub work_samples: u64,
    /// Frames `--pcap` could not capture: its writer was behind.
    pub pcap_dropped: u64,
    /// The applications' own counters ([`Handler::counters`]), by name.
    pub app: Vec<app::AppCounter>,
}

impl CoreStats {
    /// Sums a set of per-core reports.
    pub fn total(all: &[CoreStats]) -> CoreStats {
        let mut t = CoreStats::default();
        for s in all {
            t.tcp.merge(&s.tcp);
            t.net.rx_frames += s.net.rx_frames;
            t.net.rx_tcp += s.net.rx_tcp;
            t.net.rx_arp += s.net.rx_arp;
            t.net.rx_icmp += s.net.rx_icmp;
            t.net.tx_arp += s.net.tx_arp;
            t.net.tx_icmp += s.net.tx_icmp;
            t.net.rx_not_ours += s.net.rx_not_ours;
            t.net.rx_malformed += s.net.rx_malformed;
            t.net.rx_fragments += s.net.rx_fragments;
            t.net.tx_no_neighbour += s.net.tx_no_neighbour;
            t.net.tx_no_frame += s.net.tx_no_frame;
            t.io.rx_frames += s.io.rx_frames;
            t.io.tx_frames += s.io.tx_frames;
            t.io.tx_no_frame += s.io.tx_no_frame;
            t.io.wakeups += s.io.wakeups;
            t.conns += s.conns;
            t.syn_queue += s.syn_queue;
            t.time_wait += s.time_wait;
            t.forwarded += s.forwarded;
            t.handover_dropped += s.handover_dropped;
            t.directory_full += s.directory_full;
            t.work_ns += s.work_ns;
            t.work_samples += s.work_samples;
            t.pcap_dropped += s.pcap_dropped;
            for c in &s.app {
                match t.app.iter_mut().find(|x| x.name == c.name) {
                    Some(x) => x.value += c.value,
                    None => t.app.push(*c),
                }
            }
        }
        t
    }

    /// The application counter `name`, 0 when no handler reports it.
    pub fn app_counter(&self, name: &str) -> u64 {
        self.app.iter().find(|c| c.name == name).map_or(0, |c| c.value)
    }

    /// Mean nanoseconds the stack spent on a received frame (parse, TCP, the reply written or
    /// the frame handed over), from a sample of one frame in [`WORK_SAMPLE`]; none if nothing
    /// was timed. Per-turn costs (the application, timers, ring syscalls) are not in it.
    pub fn frame_ns(&self) -> Option<f64> {
        (self.work_samples > 0).then(|| self.work_ns as f64 / self.work_samples as f64)
    }
}

impl<H: Handler + ?Sized> Core<H> {
    pub fn new(index: usize, shard: Shard, net: Net, app: Box<H>) -> Self {
        Core {
            index,
            shard,
            net,
            app,
            links: None,
            forwarded: 0,
            handover_dropped: 0,
            work_clock: None,
            work_ns: 0,
            work_samples: 0,
            last_housekeeping: Instant::ZERO,
        }
    }

    /// One turn of the loop at instant `now` (read once per batch): frames handed over by other
    /// cores, a receive burst, the application, transmission, timers, flush. Returns the frames
    /// received, handed-over ones included.
    pub fn poll(&mut self, now: Instant, io: &mut dyn FrameIo) -> usize {
        let handed = self.poll_inbox(now, io.tx());
        let Core { index, shard, net, links, forwarded, handover_dropped, work_clock, work_ns, work_samples, .. } =
            self;
        let me = *index as u16;
        let mut seen = 0u64;
        let n = io.rx_burst(RX_BATCH, &mut |frame: &[u8], tx: &mut dyn FrameSink| {
            seen += 1;
            let timed = work_clock.as_ref().filter(|_| seen % WORK_SAMPLE == 1);
            let t0 = timed.map(|c| c.now());
            if let FrameVerdict::Tcp(Verdict::Foreign(owner)) = net.handle_frame(now, frame, shard, tx) {
                // A flow that moved queue: one hop to its owner, in a pooled buffer.
                match links.as_ref().map(|l| l.hand_over(me, owner, frame)) {
                    Some(true) => *forwarded += 1,
                    _ => *handover_dropped += 1,
                }
            }
            if let (Some(c), Some(t0)) = (timed, t0) {
                // A sample that long was preempted (the cores are shared): not the frame's cost.
                let ns = c.now().saturating_since(t0).as_nanos();
                if ns < WORK_SAMPLE_PREEMPTED_NS {
                    *work_ns += ns;
                    *work_samples += 1;
                }
            }
        });
        self.run_app_and_transmit(now, io.tx());
        if self.shard.poll_timeout().is_some_and(|t| t <= now) {
            self.shard.handle_timeout(now, &mut self.net.tx(now, io.tx()));
            self.run_app_and_transmit(now, io.tx());
        }
        io.flush();
        if now.saturating_since(self.last_housekeeping) >= crate::time::Duration::from_secs(1) {
            self.last_housekeeping = now;
            let ttl = self.net.cfg.neighbour_ttl;
            self.net.neigh.expire(now, ttl);
        }
        n + handed
    }

    fn run_app_and_transmit(&mut self, now: Instant, link: &mut dyn FrameSink) {
        let Core { shard, net, app, .. } = self;
        let mut tx = net.tx(now, link);
        app::dispatch(shard, app.as_mut(), now, &mut tx);
        shard.poll_transmit(now, &mut tx);
    }

    /// Frames other cores handed over: processed here whatever the directory says by now (a
    /// flow that went meanwhile meets LISTEN or CLOSED here), then their buffers go home.
    fn poll_inbox(&mut self, now: Instant, link: &mut dyn FrameSink) -> usize {
        let Some(links) = self.links.as_ref() else { return 0 };
        let mut got = 0;
        for _ in 0..HANDOVER_BURST {
            let Ok(h) = links.inbox.try_recv() else { break };
            got += 1;
            self.shard.count_foreign();
            self.shard.set_defer(false);
            self.net.handle_frame(now, &h.buf, &mut self.shard, link);
            self.shard.set_defer(true);
            if let Some(home) = links.pools.get(usize::from(h.from)) {
                let _ = home.try_send(h.buf);
            }
        }
        got
    }

    /// The descriptor to poll beside the AF_XDP socket while the core sleeps: it becomes
    /// readable when a frame is handed to this core. Call [`Core::going_to_sleep`] before the
    /// wait and [`Core::woke`] after it.
    pub fn wake_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.links.as_ref().and_then(|l| l.wakers.get(self.index)).and_then(|w| w.fd.as_ref()).map(|f| f.as_fd())
    }

    /// The core is about to sleep: from now on hand-overs write its eventfd. Returns false,
    /// and the core stays awake, when frames were handed over already.
    pub fn going_to_sleep(&self) -> bool {
        use std::sync::atomic::{fence, Ordering};
        let Some(l) = self.links.as_ref() else { return true };
        let Some(w) = l.wakers.get(self.index) else { return true };
        w.sleeping.store(true, Ordering::Relaxed);
        // Pairs with the fence in `Waker::wake`.
        fence(Ordering::SeqCst);
        if l.inbox.is_empty() {
            return true;
        }
        // Awake after all: hand-overs need not write the eventfd.
        w.sleeping.store(false, Ordering::Relaxed);
        false
    }

    /// The core woke: hand-overs stop writing its eventfd, and the eventfd is emptied when the
    /// sleep saw it readable (`written`), so the next sleep is not cut short by an old wake.
    pub fn woke(&self, written: bool) {
        let Some(w) = self.links.as_ref().and_then(|l| l.wakers.get(self.index)) else { return };
        w.sleeping.store(false, std::sync::atomic::Ordering::Relaxed);
        if written {
            w.drain();
        }
    }

    /// Graceful stop, first step: every listener closes (new SYNs meet a closed port, and
    /// connections not yet accepted are reset, see [`Shard::unlisten`]); accepted connections
    /// go on until they finish or [`Core::abort_all`] ends them. Returns how many pending
    /// connections were reset or dropped.
    pub fn stop_listening(&mut self, now: Instant, io: &mut dyn FrameIo) -> usize {
        let Core { shard, net, .. } = self;
        let mut n = 0;
        for port in shard.listening_ports() {
            n += shard.unlisten(now, port, &mut net.tx(now, io.tx())).unwrap_or(0);
        }
        self.run_app_and_transmit(now, io.tx());
        io.flush();
        n
    }

    /// Ends every connection with a RST (the engine stops) and sends the RSTs at once.
    pub fn abort_all(&mut self, now: Instant, io: &mut dyn FrameIo) -> usize {
        let Core { shard, net, .. } = self;
        let n = shard.abort_all(now, &mut net.tx(now, io.tx()));
        self.run_app_and_transmit(now, io.tx());
        io.flush();
        n
    }

    pub fn stats(&self, io: &dyn FrameIo) -> CoreStats {
        CoreStats {
            core: self.index,
            tcp: self.shard.counters().clone(),
            net: self.net.counters,
            io: io.stats(),
            conns: self.shard.conn_count(),
            syn_queue: self.shard.syn_queue_len(),
            time_wait: self.shard.time_wait_len(),
            forwarded: self.forwarded,
            handover_dropped: self.handover_dropped,
            directory_full: self.links.as_ref().map_or(0, |l| l.dir.full_of(self.index)),
            work_ns: self.work_ns,
            work_samples: self.work_samples,
            pcap_dropped: 0,
            app: {
                let mut v = Vec::new();
                self.app.counters(&mut v);
                v
            },
        }
    }
}

/// Frames taken from the inbox per turn (the rest wait for the next one).
const HANDOVER_BURST: usize = 256;

impl Links {
    /// Copies `frame` into a buffer of this core's pool and puts it in `owner`'s inbox. False
    /// when no buffer is free or the inbox is full (the frame is dropped; TCP retransmits).
    fn hand_over(&self, me: u16, owner: u16, frame: &[u8]) -> bool {
        let Ok(mut buf) = self.pool.try_recv() else { return false };
        let home = self.pools.get(usize::from(me));
        let inbox = self.inboxes.get(usize::from(owner));
        let (Some(inbox), true) = (inbox, frame.len() <= buf.capacity()) else {
            let _ = home.map(|p| p.try_send(buf));
            return false;
        };
        buf.clear();
        buf.extend_from_slice(frame);
        match inbox.try_send(Handover { buf, from: me }) {
            Ok(()) => {
                if let Some(w) = self.wakers.get(usize::from(owner)) {
                    w.wake();
                }
                true
            }
            Err(e) => {
                let _ = home.map(|p| p.try_send(e.into_inner().buf));
                false
            }
        }
    }
}

/// Joins the cores of one engine: a flow directory they share (see [`owners`]), and bounded,
/// preallocated hand-over links between every pair. Returns the directory.
pub fn connect_cores<H: Handler + ?Sized>(cores: &mut [Core<H>], cfg: &HandoverConfig) -> Arc<OwnerDirectory> {
    let n = cores.len();
    let dir = OwnerDirectory::new(cfg.directory_slots, n);
    if n <= 1 {
        return dir;
    }
    let (inboxes, inbox_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| crossbeam_channel::bounded(cfg.depth)).unzip();
    let (pools, pool_rx): (Vec<_>, Vec<_>) = (0..n).map(|_| crossbeam_channel::bounded(cfg.depth)).unzip();
    for p in &pools {
        for _ in 0..cfg.depth {
            let _ = p.try_send(Vec::with_capacity(cfg.frame_size));
        }
    }
    let wakers: Vec<Arc<Waker>> = (0..n).map(|_| Arc::new(Waker::new())).collect();
    for ((c, inbox), pool) in cores.iter_mut().zip(inbox_rx).zip(pool_rx) {
        c.shard.set_owners(Box::new(dir.for_core(c.index as u16)));
        c.links = Some(Links {
            inboxes: inboxes.clone(),
            pools: pools.clone(),
            inbox,
            pool,
            dir: Arc::clone(&dir),
            wakers: wakers.clone(),
        });
    }
    dir
}

/// Control messages from the main thread.
#[derive(Debug)]
pub enum Control {
    Snapshot(Sender<CoreStats>),
    /// Graceful stop, first step: close the listeners ([`Core::stop_listening`]); the loop
    /// goes on serving the open connections.
    StopListening,
    /// Reset every open connection ([`Core::abort_all`]); the loop goes on.
    AbortAll,
    /// Reset every open connection and leave the loop.
    Stop,
    /// One page of the core's socket listing (`xdptcp ss`, see [`control`]).
    List(ListPage),
}

/// A request for one page of a core's socket listing: the core appends up to `max` entries
/// from position `from` to `buf` ([`Shard::list_sockets`]) and sends the buffer back with the
/// position to continue from (`None`: done). The requester lends the buffer, so the core
/// allocates nothing to answer.
#[derive(Debug)]
pub struct ListPage {
    pub from: usize,
    pub max: usize,
    pub buf: Vec<crate::tcp::shard::SockEntry>,
    pub reply: Sender<(Vec<crate::tcp::shard::SockEntry>, Option<usize>)>,
}

impl ListPage {
    /// Answers from `shard` (called by a core from its loop).
    pub fn answer(self, shard: &Shard) {
        let ListPage { from, max, mut buf, reply } = self;
        let next = shard.list_sockets(from, max, &mut buf);
        let _ = reply.try_send((buf, next));
    }
}

/// Statistics of every core behind `ctl` that answers within `timeout` (in core order).
#[allow(clippy::disallowed_methods)] // a wall-clock bound on waiting for the cores
pub fn snapshot_of(ctl: &[Sender<Control>], timeout: std::time::Duration) -> Vec<CoreStats> {
    // Ask every core first, then wait for all under one deadline: a core that does not
    // answer (or whose control queue is full) is left out, and the caller never stalls on it.
    let asked: Vec<_> = ctl
        .iter()
        .filter_map(|c| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            c.try_send(Control::Snapshot(tx)).is_ok().then_some(rx)
        })
        .collect();
    let deadline = std::time::Instant::now() + timeout;
    asked.into_iter().filter_map(|rx| rx.recv_deadline(deadline).ok()).collect()
}

/// Fills `buf` from the kernel's random source (getrandom(2)): the keys of ISNs, timestamps and
/// cookies.
pub fn os_random(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the call.
        let r = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += r as usize;
    }
    Ok(())
}

/// Secrets drawn from the OS, shared by every core of an engine.
pub fn random_secrets() -> std::io::Result<crate::tcp::Secrets> {
    let mut k = [0u8; 64];
    os_random(&mut k)?;
    let key = |i: usize| -> [u8; 16] {
        let mut o = [0u8; 16];
        o.copy_from_slice(&k[i * 16..i * 16 + 16]);
        o
    };
    Ok(crate::tcp::Secrets { isn_key: key(0), ts_key: key(1), cookie_key: key(2), cookie_key_prev: key(3) })
}

/// SIGINT and SIGTERM as flags the main thread polls (signal-hook registers the handlers; each
/// does atomic operations only, async-signal-safe).
///
/// SIGTERM asks for a graceful stop (listeners close, open connections get a deadline); SIGINT
/// for an immediate one (every connection reset). A second signal of either kind turns a drain
/// into the immediate stop, which still resets the connections, writes the summary and marks
/// the stats file final; only a third ends the process on the spot (exit status 128 + signal),
/// for a stop that hangs. The kernel detaches the XDP program with the last descriptor of its
/// link either way.
pub mod signals {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    static INT: AtomicBool = AtomicBool::new(false);
    static TERM: AtomicBool = AtomicBool::new(false);
    static RECEIVED: AtomicU32 = AtomicU32::new(0);

    /// Installs the handlers (idempotent).
    pub fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for sig in [libc::SIGINT, libc::SIGTERM] {
                let action = move || {
                    let n = RECEIVED.fetch_add(1, Ordering::SeqCst) + 1;
                    if sig == libc::SIGTERM && n == 1 {
                        TERM.store(true, Ordering::SeqCst);
                    } else {
                        INT.store(true, Ordering::SeqCst);
                    }
                    if n >= 3 {
                        signal_hook::low_level::exit(128 + sig);
                    }
                };
                // SAFETY: the action does atomic operations and, on the third signal, _exit(2):
                // all async-signal-safe; it allocates nothing and takes no lock.
                let _ = unsafe { signal_hook::low_level::register(sig, action) };
            }
        });
    }

    /// SIGINT or SIGTERM arrived (or [`request_stop`] was called).
    pub fn stop_requested() -> bool {
        INT.load(Ordering::SeqCst) || TERM.load(Ordering::SeqCst)
    }

    /// Stop now, without a drain: SIGINT, or a second signal.
    pub fn immediate_stop_requested() -> bool {
        INT.load(Ordering::SeqCst)
    }

    /// SIGTERM arrived first: a graceful stop.
    pub fn drain_requested() -> bool {
        TERM.load(Ordering::SeqCst)
    }

    /// Asks for an immediate stop, as SIGINT does.
    pub fn request_stop() {
        INT.store(true, Ordering::SeqCst);
    }
}
