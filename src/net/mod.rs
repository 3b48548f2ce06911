//! L2/L3 glue between frames and the protocols: local addresses, the neighbour (ARP) cache,
//! ICMP (echo, errors handed to TCP), and dispatch from a frame to the right protocol.

/// What a link offers the stack for transmitting: frames lent one at a time.
///
/// Implemented by `io::xdp` (UMEM frames on the TX ring) and `io::mem` (in-memory link).
pub trait FrameSink {
    /// Lends a buffer of exactly `len` bytes for one outgoing Ethernet frame; `fill` writes the
    /// whole frame into it, which is then queued for transmission. Returns false, without calling
    /// `fill`, when no frame is free or `len` exceeds the frame size: the caller counts it.
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool;
}

/// A sink that keeps every frame: for tests.
impl FrameSink for Vec<Vec<u8>> {
    fn send_frame(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut f = vec![0u8; len];
        fill(&mut f);
        self.push(f);
        true
    }
}
