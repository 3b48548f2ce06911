//! The engine's clock: the only place the protocol's time comes from.

use crate::time::{Clock, Instant};

/// Monotonic time since the clock was made (CLOCK_MONOTONIC through `std::time::Instant`).
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    origin: std::time::Instant,
}

impl MonoClock {
    #[allow(clippy::disallowed_methods)] // the engine owns the clock (STYLE.md §2)
    pub fn new() -> Self {
        MonoClock { origin: std::time::Instant::now() }
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonoClock {
    #[allow(clippy::disallowed_methods)] // the engine owns the clock (STYLE.md §2)
    fn now(&self) -> Instant {
        // Start at 1 s so that "zero" never looks like a real instant.
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64 + 1_000_000_000)
    }
}
