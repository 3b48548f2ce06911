//! [`XdpLink`]: one AF_XDP socket on one queue of an interface, behind [`FrameIo`].
//!
//! Receive: frames come off the rx ring in batches, are lent to the caller in place (a slice
//! of the UMEM, no copy), and go straight back to the fill ring once the callback returns.
//! Transmit: the caller is lent free UMEM frames one at a time; written frames are queued
//! and handed to the tx ring a batch at a time, with a wakeup (`sendto`) when the ring asks
//! for one, and on every batch in copy mode, where the kernel transmits only inside that
//! system call. Completed frames return to the free list.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig};
use xsk_rs::socket::{RxQueue, Socket, TxQueue};
use xsk_rs::umem::frame::FrameDesc;
use xsk_rs::umem::{CompQueue, FillQueue, Umem};

use super::umem::{self, FrameCounts, UmemSpec};
use super::{Steering, XdpError};
use crate::io::{FrameIo, IoStats};
use crate::net::FrameSink;

/// Copy or zero-copy AF_XDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Copy mode: works on every driver (veth supports only this).
    Copy,
    /// Zero-copy only; binding fails where the driver lacks it (veth answers EOPNOTSUPP).
    ZeroCopy,
    /// Zero-copy when the driver offers it, else copy.
    #[default]
    Auto,
}

/// Sizes of one link's UMEM and rings. Ring sizes and the frame size are powers of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XskConfig {
    /// Frames in the UMEM.
    pub frame_count: u32,
    /// Bytes per frame (2048 or 4096); 256 of them are the kernel's XDP headroom, so the
    /// largest frame carried is `frame_size - 256`.
    pub frame_size: u32,
    /// Frames kept on the fill ring for receiving; the rest serve transmits.
    pub rx_frames: u32,
    /// Fill ring size (at least `rx_frames`).
    pub fill_size: u32,
    /// Completion ring size.
    pub comp_size: u32,
    /// Rx ring size.
    pub rx_size: u32,
    /// Tx ring size.
    pub tx_size: u32,
    /// Frames per rx burst and per tx submission.
    pub batch: usize,
    pub bind: BindMode,
    /// Bind with `XDP_USE_NEED_WAKEUP` and wake the kernel only when a ring asks.
    pub need_wakeup: bool,
    /// Back the UMEM with huge pages (needs `vm.nr_hugepages`).
    pub huge_pages: bool,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_count: 4096,
            frame_size: 2048,
            rx_frames: 2048,
            fill_size: 2048,
            comp_size: 2048,
            rx_size: 2048,
            tx_size: 2048,
            batch: 64,
            bind: BindMode::Auto,
            need_wakeup: true,
            huge_pages: false,
        }
    }
}

impl XskConfig {
    fn validate(&self) -> Result<(), XdpError> {
        let err = |m: String| Err(XdpError::Config(m));
        for (name, v) in [
            ("fill_size", self.fill_size),
            ("comp_size", self.comp_size),
            ("rx_size", self.rx_size),
            ("tx_size", self.tx_size),
            ("frame_size", self.frame_size),
        ] {
            if !v.is_power_of_two() {
                return err(format!("{name} = {v} is not a power of two"));
            }
        }
        if self.batch == 0 {
            return err("batch is zero".into());
        }
        if self.rx_frames == 0 || self.rx_frames > self.fill_size {
            return err(format!(
                "rx_frames = {} must be in 1..={} (the fill ring size)",
                self.rx_frames, self.fill_size
            ));
        }
        let tx_frames = u64::from(self.frame_count).saturating_sub(u64::from(self.rx_frames));
        if tx_frames < self.batch as u64 {
            return err(format!(
                "{} frames leave {tx_frames} for transmit, fewer than one batch ({})",
                self.frame_count, self.batch
            ));
        }
        Ok(())
    }
}

/// Counters the kernel keeps for an AF_XDP socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskKernelStats {
    /// Received frames dropped for other reasons (frame too large for a UMEM frame...).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full (the stack fell behind).
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// The receive half: rx ring, fill ring and the batch buffer.
struct RxPath {
    q: RxQueue,
    fq: FillQueue,
    /// Batch buffer; entries `..n` are valid right after a consume.
    descs: Vec<FrameDesc>,
    /// Frames the kernel holds for receiving.
    in_fill: usize,
    /// How many frames we aim to keep there.
    fill_target: usize,
    rx_frames: u64,
    wakeups: u64,
}

/// The transmit half: tx ring, completion ring, free list.
struct TxPath {
    q: TxQueue,
    cq: CompQueue,
    free: Vec<FrameDesc>,
    /// Written, not yet on the tx ring.
    pending: Vec<FrameDesc>,
    /// Completion batch buffer.
    comp: Vec<FrameDesc>,
    in_flight: usize,
    batch: usize,
    tx_ring_size: u32,
    /// Largest frame a UMEM frame holds.
    mtu: usize,
    /// Copy mode: the kernel sends only inside `sendto`, so every batch needs one.
    always_kick: bool,
    tx_frames: u64,
    tx_no_frame: u64,
    wakeups: u64,
    wakeup_errors: u64,
    /// The last flush's kick moved the ring's consumer (copy mode: the kernel took frames
    /// inside `sendto`), so another kick would take more.
    took: bool,
}

/// Copy mode sends at most a budget of frames (32 by default) per `sendto`; a full batch
/// may need a few. Bounded so a stuck ring never spins the core.
const MAX_KICKS_PER_FLUSH: u32 = 16;

impl TxPath {
    /// Moves completed frames back to the free list.
    fn reclaim(&mut self) {
        loop {
            // SAFETY: the completion ring of this socket only ever returns addresses of
            // frames we submitted from this socket's UMEM.
            let n = unsafe { self.cq.consume(&mut self.comp) };
            if n == 0 {
                break;
            }
            self.free.extend(self.comp.iter().take(n).copied());
            self.in_flight = self.in_flight.saturating_sub(n);
            if n < self.comp.len() {
                break;
            }
        }
    }

    fn send_frame(&mut self, umem: &Umem, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        if len == 0 || len > self.mtu {
            return false;
        }
        if self.free.is_empty() {
            self.reclaim();
        }
        let Some(mut desc) = self.free.pop() else {
            self.tx_no_frame = self.tx_no_frame.wrapping_add(1);
            return false;
        };
        {
            // SAFETY: `desc` was on the free list: it names a frame of `umem` that neither the
            // kernel (fill, tx or completion ring) nor any other borrow holds.
            let mut data = unsafe { umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            if cursor.buf_len() < len {
                self.free.push(desc);
                return false;
            }
            cursor.set_pos(len);
            fill(data.contents_mut());
        }
        self.pending.push(desc);
        if self.pending.len() >= self.batch {
            self.submit();
            self.kick();
        }
        true
    }

    /// Hands pending frames to the tx ring, as many as it has room for.
    fn submit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let want = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        let room = self.q.nb_free(want) as usize;
        let n = room.min(self.pending.len());
        if n == 0 {
            return;
        }
        // SAFETY: pending frames belong to this socket's UMEM, were written through
        // `data_mut`, and are on no ring; after this call the kernel owns them until they
        // come back on the completion ring.
        let sent = unsafe { self.q.produce(self.pending.get(..n).unwrap_or(&[])) };
        self.pending.drain(..sent);
        self.in_flight += sent;
        self.tx_frames = self.tx_frames.wrapping_add(sent as u64);
    }

    /// Entries on the tx ring that the kernel has not consumed yet.
    fn ring_outstanding(&mut self) -> u32 {
        self.tx_ring_size.saturating_sub(self.q.nb_free_exact())
    }

    /// Wakes the kernel's transmit path when it needs it.
    fn kick(&mut self) {
        self.took = false;
        if self.in_flight == 0 || !(self.always_kick || self.q.needs_wakeup()) {
            return;
        }
        for _ in 0..MAX_KICKS_PER_FLUSH {
            let before = self.ring_outstanding();
            if self.q.wakeup().is_err() {
                self.wakeup_errors = self.wakeup_errors.wrapping_add(1);
                return;
            }
            self.wakeups = self.wakeups.wrapping_add(1);
            if !self.always_kick {
                return;
            }
            let after = self.ring_outstanding();
            self.took = after < before;
            if after == 0 || after >= before {
                return;
            }
            // The completion ring must have room for the next round.
            self.reclaim();
        }
    }
}

/// Lends free UMEM frames for replies while a received frame is borrowed.
struct Lender<'a> {
    umem: &'a Umem,
    tx: &'a mut TxPath,
}

impl FrameSink for Lender<'_> {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        self.tx.send_frame(self.umem, len, fill)
    }
}

/// One AF_XDP socket bound to one queue of an interface: UMEM, fill/completion/rx/tx rings.
///
/// Register it with the steering program ([`Steering::register_xsk`]) so that frames reach
/// it: `steering.register_xsk(queue, link.as_fd())`.
///
/// [`Steering::register_xsk`]: super::Steering::register_xsk
pub struct XdpLink {
    // Drop order is declaration order. Every ring holds a handle on the socket, which is
    // deleted when the last of them goes; the UMEM must outlive the socket, so it is last.
    // (xsk-rs also keeps a UMEM handle inside the socket, so this is belt and braces.)
    rx: RxPath,
    tx: TxPath,
    total_frames: usize,
    zero_copy: bool,
    ifname: String,
    queue: u32,
    umem: Umem,
}

impl std::fmt::Debug for XdpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpLink")
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .field("frames", &self.frame_counts())
            .finish_non_exhaustive()
    }
}

type Rings = (TxQueue, RxQueue, Option<(FillQueue, CompQueue)>);

fn bind_socket(cfg: &XskConfig, umem: &Umem, ifname: &str, queue: u32, copy: bool) -> Result<Rings, XdpError> {
    let iface: Interface =
        ifname.parse().map_err(|_| XdpError::Config(format!("interface name {ifname:?} contains a NUL")))?;
    let qs = |v: u32| QueueSize::new(v).map_err(|e| XdpError::Config(e.to_string()));
    let mut flags = if copy { BindFlags::XDP_COPY } else { BindFlags::XDP_ZEROCOPY };
    if cfg.need_wakeup {
        flags |= BindFlags::XDP_USE_NEED_WAKEUP;
    }
    let sc = SocketConfig::builder()
        .rx_queue_size(qs(cfg.rx_size)?)
        .tx_queue_size(qs(cfg.tx_size)?)
        // The steering program is ours (loader.rs); libxdp must not load its default one.
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(flags)
        .build();
    // SAFETY: `umem` was created for this link and is bound by this one socket only (not
    // shared), and libxdp's program load is inhibited, which is what `Socket::new` requires
    // of a shared UMEM anyway.
    unsafe { Socket::new(sc, umem, &iface, queue) }.map_err(|e| {
        XdpError::xsk(
            &format!(
                "bind AF_XDP socket to {ifname} queue {queue} in {} mode",
                if copy { "copy" } else { "zero-copy" }
            ),
            &e,
        )
    })
}

impl XdpLink {
    /// Creates the UMEM and binds an AF_XDP socket to `queue` of `ifname` (in the calling
    /// thread's network namespace), then fills the fill ring.
    pub fn bind(ifname: &str, queue: u32, cfg: &XskConfig) -> Result<Self, XdpError> {
        cfg.validate()?;
        let (umem, mut descs, mtu) = umem::create(UmemSpec {
            frame_count: cfg.frame_count,
            frame_size: cfg.frame_size,
            fill_size: cfg.fill_size,
            comp_size: cfg.comp_size,
            huge_pages: cfg.huge_pages,
        })?;
        let (zero_copy, (tx_q, rx_q, rings)) = match cfg.bind {
            BindMode::Copy => (false, bind_socket(cfg, &umem, ifname, queue, true)?),
            BindMode::ZeroCopy => (true, bind_socket(cfg, &umem, ifname, queue, false)?),
            BindMode::Auto => match bind_socket(cfg, &umem, ifname, queue, false) {
                Ok(r) => (true, r),
                Err(_) => (false, bind_socket(cfg, &umem, ifname, queue, true)?),
            },
        };
        let Some((mut fq, cq)) = rings else {
            return Err(XdpError::Config("libxdp returned no fill/completion ring for a fresh UMEM".into()));
        };

        let total_frames = descs.len();
        let rx_frames = (cfg.rx_frames as usize).min(total_frames);
        let free = descs.split_off(rx_frames);
        // SAFETY: the descriptors were just created for this UMEM and are on no ring.
        let produced = unsafe { fq.produce(&descs) };
        if produced != descs.len() {
            return Err(XdpError::Config(format!("fill ring took {produced} of {} frames", descs.len())));
        }

        Ok(XdpLink {
            rx: RxPath {
                q: rx_q,
                fq,
                descs: vec![FrameDesc::default(); cfg.batch],
                in_fill: produced,
                fill_target: produced,
                rx_frames: 0,
                wakeups: 0,
            },
            tx: TxPath {
                q: tx_q,
                cq,
                free,
                pending: Vec::with_capacity(cfg.batch),
                comp: vec![FrameDesc::default(); cfg.batch.max(64)],
                in_flight: 0,
                batch: cfg.batch,
                tx_ring_size: cfg.tx_size,
                mtu,
                always_kick: !zero_copy,
                tx_frames: 0,
                tx_no_frame: 0,
                wakeups: 0,
                wakeup_errors: 0,
                took: false,
            },
            total_frames,
            zero_copy,
            ifname: ifname.to_owned(),
            queue,
            umem,
        })
    }

    /// Inserts this socket into the steering program's `xsks_map` at its own queue index, so
    /// the frames steered on that queue reach it. Same as
    /// `steering.register_xsk(link.queue(), link.as_fd())`.
    pub fn register(&self, steering: &Steering) -> Result<(), XdpError> {
        steering.register_xsk(self.queue, self.as_fd())
    }

    /// True when the socket is bound in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Largest frame (bytes, Ethernet header included) a transmit can carry.
    pub fn max_frame_len(&self) -> usize {
        self.tx.mtu
    }

    /// Where the UMEM's frames are; see [`FrameCounts`].
    pub fn frame_counts(&self) -> FrameCounts {
        FrameCounts {
            total: self.total_frames,
            free: self.tx.free.len(),
            fill: self.rx.in_fill,
            tx_pending: self.tx.pending.len(),
            tx_in_flight: self.tx.in_flight,
        }
    }

    /// Wakeups (`sendto`) that failed with an unexpected error.
    pub fn wakeup_errors(&self) -> u64 {
        self.tx.wakeup_errors
    }

    /// Whether frames wait to be sent (on the transmit ring, or written and waiting for room
    /// on it) while the kernel is taking them: copy mode sends a budget per kick, so a large
    /// burst outlasts one flush, and a core that slept now would leave the rest until something
    /// woke it. False when the last kick took nothing: a link that is down, or a queue the
    /// driver stopped, takes nothing, and a core that stayed awake for it would spin. (The
    /// ring's consumer, not the completion ring: in copy mode a frame completes when its skb
    /// is freed, which on veth may be later, in the peer's poll.) In zero-copy mode the driver
    /// drains the ring by itself and this stays false.
    pub fn tx_waiting(&mut self) -> bool {
        let t = &mut self.tx;
        t.took && (!t.pending.is_empty() || (t.in_flight > 0 && t.ring_outstanding() > 0))
    }

    /// Whether frames are written but wait for room on the transmit ring. A sleeping core then
    /// also waits for the socket to become writable (POLLOUT: the kernel has taken half the
    /// ring), which in zero-copy mode, where the driver drains the ring by itself and
    /// [`XdpLink::tx_waiting`] stays false, is the only sign that room came back.
    pub fn tx_blocked(&self) -> bool {
        !self.tx.pending.is_empty()
    }

    /// Blocks up to `timeout_ms` (-1: forever) until a frame is ready to receive.
    pub fn wait_rx(&mut self, timeout_ms: i32) -> io::Result<bool> {
        self.rx.q.poll(timeout_ms)
    }

    /// The kernel's counters for this socket.
    pub fn kernel_stats(&self) -> io::Result<XskKernelStats> {
        let s = self.rx.q.fd().xdp_statistics()?;
        Ok(XskKernelStats {
            rx_dropped: s.rx_dropped(),
            rx_invalid_descs: s.rx_invalid_descs(),
            tx_invalid_descs: s.tx_invalid_descs(),
            rx_ring_full: s.rx_ring_full(),
            rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
            tx_ring_empty: s.tx_ring_empty_descs(),
        })
    }

    /// Puts `got` received frames (the first entries of the batch buffer) back on the fill
    /// ring, and tops the ring up from the free list if an earlier refill fell short.
    fn refill(&mut self, got: usize) {
        let rx = &mut self.rx;
        let done = rx.descs.get(..got).unwrap_or(&[]);
        // SAFETY: these frames came off this socket's rx ring and the borrow lent to the
        // callback has ended; nothing else refers to them.
        let produced = unsafe { rx.fq.produce(done) };
        if produced == done.len() {
            rx.in_fill += produced;
        } else {
            // The ring refused (all or nothing): keep the frames on the free list rather than
            // lose them; the top-up below retries.
            self.tx.free.extend_from_slice(done);
        }
        let short = rx.fill_target.saturating_sub(rx.in_fill);
        if short > 0 && !self.tx.free.is_empty() {
            let k = short.min(self.tx.free.len());
            let from = self.tx.free.len() - k;
            // SAFETY: frames on the free list belong to this UMEM and are on no ring.
            let n = unsafe { rx.fq.produce(self.tx.free.get(from..).unwrap_or(&[])) };
            if n > 0 {
                self.tx.free.truncate(from);
                rx.in_fill += n;
            }
        }
    }
}

impl AsFd for XdpLink {
    /// The AF_XDP socket, for [`Steering::register_xsk`](super::Steering::register_xsk).
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the socket fd stays open as long as the rings that reference it, which
        // `self` owns; the returned borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.rx.q.fd().as_raw_fd()) }
    }
}

/// Asks the CPU to bring a received frame into its first-level cache while the frame before it
/// is handled: the stack's first touch of a frame is the TCP checksum over every byte, and in
/// copy mode the kernel wrote the frame moments earlier, out of that cache (`bench bulk`: the
/// checksum's loads stalled for most of the parse time). A hint: nothing is read or can fault.
#[inline]
fn prefetch(frame: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in frame.chunks(64) {
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch of any address is only a
        // hint (it neither reads for the program nor faults); these addresses lie in the UMEM.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = frame;
}

impl FrameSink for XdpLink {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        self.tx.send_frame(&self.umem, len, fill)
    }
}

impl FrameIo for XdpLink {
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize {
        // Completed transmits first, so the callback's replies find free frames.
        self.tx.reclaim();
        let n = max.min(self.rx.descs.len());
        if n == 0 {
            return 0;
        }
        let rx = &mut self.rx;
        // SAFETY: the rx ring of this socket only returns frames of this socket's UMEM.
        let got = unsafe { rx.q.consume(rx.descs.get_mut(..n).unwrap_or(&mut [])) };
        if got == 0 {
            if rx.fq.needs_wakeup() {
                // The driver sleeps until told the fill ring has frames (need-wakeup mode).
                let _ = rx.q.poll(0);
                rx.wakeups = rx.wakeups.wrapping_add(1);
            }
            return 0;
        }
        rx.in_fill = rx.in_fill.saturating_sub(got);
        rx.rx_frames = rx.rx_frames.wrapping_add(got as u64);
        let batch = rx.descs.get(..got).unwrap_or(&[]);
        for (i, desc) in batch.iter().enumerate() {
            // SAFETY: `desc` came off this socket's rx ring, so it names a frame of
            // `self.umem`, and the kernel gives it up until we put it back on the fill ring
            // (after this loop). The lender writes only frames from the free list, which are
            // distinct, so nothing writes this frame while the slice is borrowed.
            let frame = unsafe { self.umem.data(desc) }.contents();
            if let Some(next) = batch.get(i + 1) {
                // SAFETY: as above: the next descriptor of the same batch, read only.
                prefetch(unsafe { self.umem.data(next) }.contents());
            }
            let mut lender = Lender { umem: &self.umem, tx: &mut self.tx };
            on_frame(frame, &mut lender);
        }
        self.refill(got);
        got
    }

    fn tx(&mut self) -> &mut dyn FrameSink {
        self
    }

    fn flush(&mut self) {
        self.tx.submit();
        self.tx.kick();
        self.tx.reclaim();
    }

    fn stats(&self) -> IoStats {
        IoStats {
            rx_frames: self.rx.rx_frames,
            tx_frames: self.tx.tx_frames,
            tx_no_frame: self.tx.tx_no_frame,
            wakeups: self.rx.wakeups.wrapping_add(self.tx.wakeups),
        }
    }
}
