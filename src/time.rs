//! Time as the protocol sees it: a monotonic nanosecond count handed in by the engine.
//!
//! The `tcp` layer never reads a clock; every entry point takes an [`Instant`].

use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, Sub};

/// A point on a monotonic clock, in nanoseconds since an arbitrary origin (at most
/// `u64::MAX - 1`: the one value left out lets `Option<Instant>` take 8 bytes, which matters in
/// a connection's timers, held for every connection).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Instant(NonZeroU64);

/// A span of time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const fn from_nanos(ns: u64) -> Self {
        Duration(ns)
    }
    pub const fn from_micros(us: u64) -> Self {
        Duration(us.saturating_mul(1_000))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000_000))
    }
    pub const fn from_secs(s: u64) -> Self {
        Duration(s.saturating_mul(1_000_000_000))
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    pub const fn saturating_mul(self, k: u64) -> Self {
        Duration(self.0.saturating_mul(k))
    }
    pub fn min(self, o: Self) -> Self {
        if self.0 <= o.0 {
            self
        } else {
            o
        }
    }
    pub fn max(self, o: Self) -> Self {
        if self.0 >= o.0 {
            self
        } else {
            o
        }
    }
}

impl Instant {
    pub const ZERO: Instant = Instant::from_nanos(0);
    /// The latest instant there is (`u64::MAX - 1` ns): later times saturate to it.
    pub const MAX: Instant = Instant::from_nanos(u64::MAX - 1);
    pub const fn from_nanos(ns: u64) -> Self {
        // Stored inverted: every `ns` but u64::MAX gives a non-zero value.
        match NonZeroU64::new(!ns) {
            Some(v) => Instant(v),
            None => Instant(NonZeroU64::MIN),
        }
    }
    pub const fn from_millis(ms: u64) -> Self {
        Instant::from_nanos(ms.saturating_mul(1_000_000))
    }
    pub const fn from_secs(s: u64) -> Self {
        Instant::from_nanos(s.saturating_mul(1_000_000_000))
    }
    pub const fn as_nanos(self) -> u64 {
        !self.0.get()
    }
    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.as_nanos().saturating_sub(earlier.as_nanos()))
    }
}

impl Default for Instant {
    fn default() -> Self {
        Instant::ZERO
    }
}

impl Ord for Instant {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        self.as_nanos().cmp(&o.as_nanos())
    }
}

impl PartialOrd for Instant {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({})", self.as_nanos())
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant::from_nanos(self.as_nanos().saturating_add(d.0))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant::from_nanos(self.as_nanos().saturating_sub(d.0))
    }
}

impl Add for Duration {
    type Output = Duration;
    fn add(self, d: Duration) -> Duration {
        Duration(self.0.saturating_add(d.0))
    }
}

impl Sub for Duration {
    type Output = Duration;
    fn sub(self, d: Duration) -> Duration {
        Duration(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1_000_000_000, (self.0 / 1_000_000) % 1000)
    }
}

/// A source of [`Instant`]s. Only the engine owns one; tests advance a [`ManualClock`].
pub trait Clock {
    fn now(&self) -> Instant;
}

/// A clock that moves only when told to: the deterministic clock of tests and simulations.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(core::cell::Cell<u64>);

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        self.0.set(self.0.get().saturating_add(d.0));
    }
    pub fn set(&self, t: Instant) {
        self.0.set(t.as_nanos());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.get())
    }
}
