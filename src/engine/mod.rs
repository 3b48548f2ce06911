//! The per-core run-to-completion loop, core pinning, the clock, control and statistics.
//!
//! One thread per NIC queue, pinned to one core, owns that queue's [`Core`]: a `Shard`, the
//! network layer and the application. Nothing is shared on the fast path; control (statistics
//! snapshots, stop) arrives over a crossbeam channel polled once per loop, and segments for a
//! flow that another core owns are handed over through per-core inboxes.

use crate::app::{self, Handler};
use crate::io::{FrameIo, IoStats};
use crate::net::{frame_tuple, FrameSink, FrameVerdict, Net, NetCounters};
use crate::tcp::{Counters, Shard, Verdict};
use crate::time::Instant;
use crossbeam_channel::{Receiver, Sender};

pub mod clock;
pub mod kernel;
pub mod kernel_server;
pub mod loadgen;
pub mod nic;
#[cfg(feature = "xdp")]
pub mod xdp;

pub use clock::MonoClock;

/// Frames taken from the ring per burst (DESIGN.md: rx batch of at most 64 frames).
pub const RX_BATCH: usize = 64;

/// A frame handed from the core that received it to the next one, because its flow was not the
/// receiver's (on veth the receive queue follows the sender's transmit hash, which the kernel may
/// change after a SYN timeout).
#[derive(Debug)]
pub struct Forward {
    pub frame: Vec<u8>,
    /// Cores that have declined it so far.
    pub hops: u8,
}

/// One core's state: everything its loop touches. `H` is the application (a trait object for
/// the server's app mux, a concrete type where the caller wants it back, as the bench client).
pub struct Core<H: Handler + ?Sized = dyn Handler + Send> {
    pub index: usize,
    pub shard: Shard,
    pub net: Net,
    pub app: Box<H>,
    /// Inboxes of all cores (index-aligned); empty with one core.
    pub peers: Vec<Sender<Forward>>,
    pub inbox: Option<Receiver<Forward>>,
    /// Frames this core handed to another.
    pub forwarded: u64,
    scratch: Vec<Vec<u8>>,
    last_housekeeping: Instant,
}

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
        }
        t
    }
}

impl<H: Handler + ?Sized> Core<H> {
    pub fn new(index: usize, shard: Shard, net: Net, app: Box<H>) -> Self {
        Core {
            index,
            shard,
            net,
            app,
            peers: Vec::new(),
            inbox: None,
            forwarded: 0,
            scratch: Vec::new(),
            last_housekeeping: Instant::ZERO,
        }
    }

    /// One turn of the loop at instant `now` (read once per batch): frames handed over by other
    /// cores, a receive burst, the application, transmission, timers, flush. Returns the frames
    /// received.
    pub fn poll(&mut self, now: Instant, io: &mut dyn FrameIo) -> usize {
        self.poll_inbox(now, io.tx());
        let Core { shard, net, scratch, .. } = self;
        let n = io.rx_burst(RX_BATCH, &mut |frame: &[u8], tx: &mut dyn FrameSink| {
            if net.handle_frame(now, frame, shard, tx) == FrameVerdict::Tcp(Verdict::NotMine) {
                // Rare (a flow that moved queues): the copy is the price of correctness.
                scratch.push(frame.to_vec());
            }
        });
        if !self.scratch.is_empty() {
            let frames = core::mem::take(&mut self.scratch);
            for f in frames {
                self.forward(Forward { frame: f, hops: 1 }, now, io.tx());
            }
        }
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
        n
    }

    fn run_app_and_transmit(&mut self, now: Instant, link: &mut dyn FrameSink) {
        let Core { shard, net, app, .. } = self;
        let mut tx = net.tx(now, link);
        app::dispatch(shard, app.as_mut(), now, &mut tx);
        shard.poll_transmit(now, &mut tx);
    }

    fn poll_inbox(&mut self, now: Instant, link: &mut dyn FrameSink) {
        let Some(inbox) = self.inbox.as_ref() else { return };
        let mut got = Vec::new();
        while let Ok(f) = inbox.try_recv() {
            got.push(f);
        }
        for f in got {
            self.on_forwarded(f, now, link);
        }
    }

    /// A frame another core declined: process it if the flow is ours, or if every core has now
    /// seen it (then LISTEN or CLOSED decide: a cookie, or a RST); else pass it on.
    fn on_forwarded(&mut self, f: Forward, now: Instant, link: &mut dyn FrameSink) {
        let owned = frame_tuple(&f.frame).is_some_and(|t| self.shard.owns(&t));
        let last = usize::from(f.hops) + 1 >= self.peers.len();
        if owned || last {
            if owned {
                self.shard.count_foreign();
            }
            self.shard.set_defer(false);
            self.net.handle_frame(now, &f.frame, &mut self.shard, link);
            self.shard.set_defer(self.peers.len() > 1);
        } else {
            self.forward(Forward { frame: f.frame, hops: f.hops + 1 }, now, link);
        }
    }

    fn forward(&mut self, f: Forward, now: Instant, link: &mut dyn FrameSink) {
        let n = self.peers.len();
        if n <= 1 {
            self.shard.set_defer(false);
            self.net.handle_frame(now, &f.frame, &mut self.shard, link);
            return;
        }
        let next = (self.index + 1) % n;
        self.forwarded += 1;
        if let Some(p) = self.peers.get(next) {
            let _ = p.send(f);
        }
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
        }
    }
}

/// Wires the inboxes of `cores` together for hand-over of foreign flows.
pub fn connect_cores<H: Handler + ?Sized>(cores: &mut [Core<H>]) {
    let n = cores.len();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| crossbeam_channel::unbounded::<Forward>()).unzip();
    for (c, rx) in cores.iter_mut().zip(rxs) {
        c.peers = txs.clone();
        c.inbox = Some(rx);
        c.shard.set_defer(n > 1);
    }
}

/// Control messages from the main thread.
#[derive(Debug)]
pub enum Control {
    Snapshot(Sender<CoreStats>),
    Stop,
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

/// SIGINT / SIGTERM as a flag the loops poll.
pub mod signals {
    use std::sync::atomic::{AtomicBool, Ordering};

    static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }

    /// Installs the handlers (idempotent).
    pub fn install() {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: `on_signal` is async-signal-safe (one atomic store) and lives forever.
            unsafe {
                libc::signal(sig, on_signal as *const () as libc::sighandler_t);
            }
        }
    }

    pub fn stop_requested() -> bool {
        STOP.load(Ordering::SeqCst)
    }

    pub fn request_stop() {
        STOP.store(true, Ordering::SeqCst);
    }
}
