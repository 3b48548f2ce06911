//! The UMEM of one AF_XDP socket, and the bookkeeping of where each of its frames is.
//!
//! Every frame is, at any time, in exactly one place:
//!
//! | place | owner | how it leaves |
//! |---|---|---|
//! | free list | us | lent to a transmit (`send_frame`), or moved to the fill ring |
//! | fill ring (and the kernel's rx path) | kernel | comes back on the rx ring |
//! | in our hands during `rx_burst` | us | back to the fill ring after the callback |
//! | tx pending (written, not yet on the ring) | us | submitted to the tx ring |
//! | tx ring / in flight | kernel | comes back on the completion ring → free list |
//!
//! [`FrameCounts`] reports those numbers; between bursts they always add up to the total,
//! and once every transmit has completed `free` is back at its initial value.

use std::num::NonZeroU32;

use xsk_rs::config::{FrameSize, QueueSize, UmemConfig};
use xsk_rs::umem::frame::FrameDesc;
use xsk_rs::umem::Umem;

use super::XdpError;

/// Where the frames of one link's UMEM are (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounts {
    /// Frames in the UMEM.
    pub total: usize,
    /// On our free list, ready to be lent for a transmit.
    pub free: usize,
    /// Given to the kernel for receiving (fill ring, or received and not yet consumed).
    pub fill: usize,
    /// Written by the stack, not yet handed to the tx ring (`flush` does).
    pub tx_pending: usize,
    /// On the tx ring or sent and not yet back on the completion ring.
    pub tx_in_flight: usize,
}

impl FrameCounts {
    /// True when every frame is accounted for exactly once.
    pub fn is_balanced(&self) -> bool {
        self.free
            .checked_add(self.fill)
            .and_then(|n| n.checked_add(self.tx_pending))
            .and_then(|n| n.checked_add(self.tx_in_flight))
            == Some(self.total)
    }
}

/// The geometry of a UMEM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UmemSpec {
    pub frame_count: u32,
    pub frame_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub huge_pages: bool,
}

/// A fresh UMEM, the descriptors of all its frames, and the largest frame it carries.
pub(crate) fn create(spec: UmemSpec) -> Result<(Umem, Vec<FrameDesc>, usize), XdpError> {
    let cfg_err = |what: &str, e: &dyn std::fmt::Display| XdpError::Config(format!("{what}: {e}"));
    let frame_size = FrameSize::new(spec.frame_size).map_err(|e| cfg_err("UMEM frame size", &e))?;
    let fill = QueueSize::new(spec.fill_size).map_err(|e| cfg_err("fill ring size", &e))?;
    let comp = QueueSize::new(spec.comp_size).map_err(|e| cfg_err("completion ring size", &e))?;
    let config = UmemConfig::builder()
        .frame_size(frame_size)
        .fill_queue_size(fill)
        .comp_queue_size(comp)
        // No user headroom: the stack writes headers from the first byte of the frame.
        .frame_headroom(0)
        .build()
        .map_err(|e| cfg_err("UMEM config", &e))?;
    let count = NonZeroU32::new(spec.frame_count).ok_or_else(|| XdpError::Config("UMEM frame count is zero".into()))?;
    let (umem, descs) = Umem::new(config, count, spec.huge_pages).map_err(|e| XdpError::xsk("create UMEM", &e))?;
    Ok((umem, descs, config.mtu() as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_balance() {
        let c = FrameCounts { total: 10, free: 4, fill: 4, tx_pending: 1, tx_in_flight: 1 };
        assert!(c.is_balanced());
        assert!(!FrameCounts { free: 5, ..c }.is_balanced());
    }
}
