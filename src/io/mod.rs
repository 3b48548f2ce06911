//! Frame I/O behind one small trait: AF_XDP (`xdp`, the only code that imports xsk-rs and
//! libbpf-rs) and an in-memory link pair (`mem`) for tests and simulation.

use crate::net::FrameSink;

pub mod mem;

/// Counters every link keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Transmit attempts refused for lack of a free frame.
    pub tx_no_frame: u64,
    /// Wakeups (`sendto` / `poll`) issued.
    pub wakeups: u64,
}

/// One receive/transmit queue of a link.
pub trait FrameIo {
    /// Receives up to `max` frames and calls `on_frame(frame, tx)` for each, in arrival order.
    /// The frame is borrowed from the link (a UMEM frame: no copy) and given back after the
    /// call; `tx` lends transmit frames meanwhile. Returns the number of frames received.
    fn rx_burst(&mut self, max: usize, on_frame: &mut dyn FnMut(&[u8], &mut dyn FrameSink)) -> usize;

    /// The transmit side, for frames not caused by a received one (timers, application writes).
    fn tx(&mut self) -> &mut dyn FrameSink;

    /// Hands queued transmit frames to the device (issuing a wakeup when the ring asks for one)
    /// and reclaims completed frames.
    fn flush(&mut self);

    fn stats(&self) -> IoStats;
}

#[cfg(feature = "xdp")]
pub mod xdp;
