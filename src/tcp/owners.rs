//! Which shard holds a flow, when an engine runs several.
//!
//! DESIGN.md "Sharding across cores": a flow belongs to the core whose queue receives its
//! packets, and everything about it (SYN-queue entry, TCB, TIME-WAIT entry) lives there. Flows do
//! move queues (veth follows the sender's transmit hash, which Linux rehashes; `ethtool -X`
//! rewrites the RSS table), so a shard that finds no state for a segment asks the directory
//! whether another shard holds the flow before LISTEN or CLOSED judge it. The directory is the
//! engine's (shared by the cores); the shard only reports what it holds.

use super::tuple::FourTuple;
use crate::time::Instant;

/// The engine's flow directory, as one shard sees it.
pub trait FlowOwners: Send {
    /// The index of another shard that holds state for `t`, if one does.
    fn owner_elsewhere(&self, t: &FourTuple) -> Option<u16>;
    /// This shard now holds state for `t` (idempotent).
    fn claim(&self, t: &FourTuple);
    /// This shard no longer holds state for `t` (idempotent).
    fn release(&self, t: &FourTuple);
    /// This shard answered a SYN to listening port `port` with a cookie at `now`.
    fn cookie_sent(&self, port: u16, now: Instant);
    /// When any shard last answered a SYN to `port` with a cookie: a cookie ACK may land on
    /// another core than the one that sent the cookie, and must be checked there (Linux keeps
    /// one overflow stamp for a SO_REUSEPORT group, `synq_overflow_ts`).
    fn last_cookie(&self, port: u16) -> Option<Instant>;
}
