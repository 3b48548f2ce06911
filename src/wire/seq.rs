//! TCP sequence numbers: 32-bit serial arithmetic (RFC 9293 §3.4, RFC 1982).
//!
//! There is deliberately no `PartialOrd`: serial order is not transitive across the wrap, so every
//! comparison names its intent (`before`, `after`, `between`), as the kernel's `before()` /
//! `after()` do. Nothing here can panic.

use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    pub const fn new(v: u32) -> Self {
        SeqNum(v)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
    /// `self + n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
    /// `self - n` modulo 2^32.
    #[inline]
    #[must_use]
    pub const fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
    /// Signed distance from `other` to `self` (positive when `self` is after `other`).
    #[inline]
    pub const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
    /// Bytes from `other` forward to `self`, modulo 2^32.
    #[inline]
    pub const fn distance_from(self, other: SeqNum) -> u32 {
        self.0.wrapping_sub(other.0)
    }
    /// `self < other` in sequence space.
    #[inline]
    pub const fn before(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }
    /// `self <= other` in sequence space.
    #[inline]
    pub const fn before_eq(self, other: SeqNum) -> bool {
        self.diff(other) <= 0
    }
    /// `self > other` in sequence space.
    #[inline]
    pub const fn after(self, other: SeqNum) -> bool {
        self.diff(other) > 0
    }
    /// `self >= other` in sequence space.
    #[inline]
    pub const fn after_eq(self, other: SeqNum) -> bool {
        self.diff(other) >= 0
    }
    /// `lo <= self <= hi` (kernel `between()`), measured forward from `lo` so it holds across the
    /// wrap for any window shorter than 2^31.
    #[inline]
    pub const fn between(self, lo: SeqNum, hi: SeqNum) -> bool {
        self.0.wrapping_sub(lo.0) <= hi.0.wrapping_sub(lo.0)
    }
    /// `lo <= self < lo + len` (the RFC 9293 §3.4 window test); false for an empty window.
    #[inline]
    pub const fn in_window(self, lo: SeqNum, len: u32) -> bool {
        self.0.wrapping_sub(lo.0) < len
    }
    /// The later of two sequence numbers.
    #[inline]
    pub const fn max(self, other: SeqNum) -> SeqNum {
        if self.after(other) {
            self
        } else {
            other
        }
    }
    /// The earlier of two sequence numbers.
    #[inline]
    pub const fn min(self, other: SeqNum) -> SeqNum {
        if self.before(other) {
            self
        } else {
            other
        }
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_across_the_wrap() {
        let a = SeqNum(u32::MAX - 5);
        let b = a.add(10);
        assert_eq!(b.0, 4);
        assert!(a.before(b) && b.after(a));
        assert!(!a.after(b) && !b.before(a));
        assert_eq!(b.diff(a), 10);
        assert!(SeqNum(0).between(a, b));
        assert!(!SeqNum(5).between(a, b));
        assert!(SeqNum(2).in_window(a, 10));
        assert!(!b.in_window(a, 10));
        assert!(!a.in_window(a, 0));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn half_space_is_the_horizon() {
        let a = SeqNum(0);
        assert!(SeqNum(0x7fff_ffff).after(a));
        assert!(SeqNum(0x8000_0001).before(a));
    }
}
