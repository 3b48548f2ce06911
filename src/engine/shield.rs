//! The SYN shield's control side. The data side is `bpf/shield.h`: with the shield on, the
//! XDP program answers each pure SYN to a listening port with the stack's own SYN cookie by
//! `XDP_TX`, so a flood never reaches the AF_XDP rings or the cores; the final ACK reaches a
//! core as before, which validates the cookie and makes the connection.
//!
//! What the engine does for it:
//!
//! - writes the program's settings (`shield_cfg`): the TCP configuration the SYN-ACK must
//!   reflect (MSS, window, window scale, which options are on, TTL), the timestamp key, and
//!   the offset from CLOCK_MONOTONIC to the engine's clock, so that the program's cookie
//!   counter and TSval are those a core would use at the same instant;
//! - writes the cookie key of each 10-minute epoch into `shield_keys` ahead of its use
//!   (the keys the cores rotate, [`super::secret_file::cookie_key`] of the same master);
//! - in [`ShieldMode::Auto`], switches the shield on while SYNs to listening ports arrive
//!   faster than a rate or a core's SYN queue overflowed, and off again after a quiet spell
//!   (hysteresis: the rate must fall below half the threshold for [`AUTO_HOLD`]), as Linux's
//!   `tcp_syncookies=1` sends cookies only under pressure;
//! - tells the cores while cookies may be out there ([`ShieldShared::is_active`]), so they
//!   check cookie ACKs (`Shard::note_cookies_out`), and learns from them when a SYN queue
//!   overflows ([`ShieldShared::note_overflows`]).
//!
//! One thread, woken every [`TICK`], does the writing; it holds no capability (the map
//! descriptors it writes through were opened at load).

use crate::time::{Duration, Instant};
use core::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `serve --syn-shield`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShieldMode {
    /// The program never answers a SYN (every SYN reaches a core, as before).
    #[default]
    Off,
    /// On while SYNs exceed [`ShieldConfig::on_rate`] or a SYN queue overflows.
    Auto,
    /// Always on.
    On,
}

impl fmt::Display for ShieldMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShieldMode::Off => "off",
            ShieldMode::Auto => "auto",
            ShieldMode::On => "on",
        })
    }
}

/// The shield's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShieldConfig {
    pub mode: ShieldMode,
    /// [`ShieldMode::Auto`]: pure SYNs per second (to listening ports, all queues) at which
    /// the shield switches on.
    pub on_rate: u64,
}

/// Default of [`ShieldConfig::on_rate`]: well above what legitimate clients of one server
/// usually open per second, well below what a flood sends, and a rate the cores answer
/// without strain (the shield is the cheaper path, not the only correct one: the cores make
/// cookies too once their SYN queue is full).
pub const DEFAULT_ON_RATE: u64 = 10_000;

impl Default for ShieldConfig {
    fn default() -> Self {
        ShieldConfig { mode: ShieldMode::Off, on_rate: DEFAULT_ON_RATE }
    }
}

/// How often the controller samples the SYN rate and writes keys.
pub const TICK: Duration = Duration::from_millis(100);
/// [`ShieldMode::Auto`]: how long the SYN rate must stay below half the threshold, with no
/// SYN-queue overflow, before the shield goes off. Long enough that a flood sent in bursts
/// does not switch it every burst.
pub const AUTO_HOLD: Duration = Duration::from_secs(10);
/// How often a core tells its shard that cookies may be out there while the shield is on
/// (the shard checks cookie ACKs for two minutes after the last time).
pub const NOTE_INTERVAL: Duration = Duration::from_secs(1);

/// What the controller and the cores share.
#[derive(Debug, Default)]
pub struct ShieldShared {
    active: AtomicBool,
    /// The listeners are closing (graceful stop): never answer again.
    stopped: AtomicBool,
    overflows: AtomicU64,
    switches: AtomicU64,
    syn_rate: AtomicU64,
}

impl ShieldShared {
    /// The program is answering SYNs (cookies are going out).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// The listeners are closing: the shield must not answer again.
    pub fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// A core saw `n` more SYNs that found its SYN queue full.
    pub fn note_overflows(&self, n: u64) {
        self.overflows.fetch_add(n, Ordering::Relaxed);
    }

    /// The shield went on or off (the controller says so; a change counts as a switch).
    pub fn set_active(&self, on: bool) {
        if self.active.swap(on, Ordering::Relaxed) != on {
            self.switches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The shield as `serve` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldStatus {
    pub mode: ShieldMode,
    /// The program answers SYNs now.
    pub active: bool,
    /// Times it went on or off (Auto).
    pub switches: u64,
    /// Pure SYNs per second to listening ports, over the last [`TICK`].
    pub syn_rate: u64,
}

impl ShieldShared {
    pub fn status(&self, mode: ShieldMode) -> ShieldStatus {
        ShieldStatus {
            mode,
            active: self.is_active(),
            switches: self.switches.load(Ordering::Relaxed),
            syn_rate: self.syn_rate.load(Ordering::Relaxed),
        }
    }
}

/// The decision of [`ShieldMode::Auto`], pure: fed one sample per tick.
#[derive(Debug, Clone, Copy, Default)]
pub struct AutoSwitch {
    on: bool,
    /// Since when the rate has been low with no overflow, while on.
    quiet_since: Option<Instant>,
}

impl AutoSwitch {
    /// One sample: the SYN rate of the last tick and whether a SYN queue overflowed in it.
    /// Returns whether the shield should be on. On as soon as `syn_rate >= on_rate` or a
    /// queue overflowed; off once the rate has stayed below `on_rate / 2` with no overflow
    /// for [`AUTO_HOLD`].
    pub fn step(&mut self, now: Instant, syn_rate: u64, overflowed: bool, on_rate: u64) -> bool {
        let high = syn_rate >= on_rate || overflowed;
        let low = syn_rate < on_rate / 2 && !overflowed;
        if high {
            self.on = true;
            self.quiet_since = None;
        } else if self.on && low {
            let since = *self.quiet_since.get_or_insert(now);
            if now.saturating_since(since) >= AUTO_HOLD {
                self.on = false;
                self.quiet_since = None;
            }
        } else {
            self.quiet_since = None;
        }
        self.on
    }

    pub fn is_on(&self) -> bool {
        self.on
    }
}

#[cfg(feature = "xdp")]
pub use ctl::{clock_offset_ns, shield_config_raw, Controller, ControllerParts};

#[cfg(feature = "xdp")]
mod ctl {
    use super::{AutoSwitch, ShieldConfig, ShieldMode, ShieldShared, TICK};
    use crate::engine::secret_file::{cookie_key, COOKIE_KEY_PERIOD};
    use crate::io::xdp::abi::{
        ShieldConfigRaw, ShieldKeyRaw, SHIELD_F_ON, SHIELD_F_SACK, SHIELD_F_TIMESTAMPS, SHIELD_F_WINDOW_SCALING,
        SHIELD_KEY_GRACE_NS, SHIELD_KEY_PERIOD_NS,
    };
    use crate::io::xdp::{Steering, XskStat};
    use crate::tcp::{self, secrets::Key};
    use crate::time::Clock;
    use anyhow::{Context, Result};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    // The program's key epochs are the cores' (bpf/shared.h SHIELD_KEY_PERIOD_NS).
    const _: () = assert!(COOKIE_KEY_PERIOD.as_nanos() == SHIELD_KEY_PERIOD_NS);

    /// The program's settings for a shard configuration `cfg`: the SYN-ACK it sends is the
    /// one `Shard` sends for a cookie (listener.rs `on_syn`).
    pub fn shield_config_raw(cfg: &tcp::Config, ts_key: &Key, clock_offset_ns: i64, on: bool) -> ShieldConfigRaw {
        let mut flags = 0;
        for (set, bit) in [
            (on, SHIELD_F_ON),
            (cfg.timestamps, SHIELD_F_TIMESTAMPS),
            (cfg.window_scaling, SHIELD_F_WINDOW_SCALING),
            (cfg.sack, SHIELD_F_SACK),
        ] {
            if set {
                flags |= bit;
            }
        }
        ShieldConfigRaw {
            clock_offset_ns,
            ts_key: *ts_key,
            flags,
            mss_v4: cfg.mss_v4,
            mss_v6: cfg.mss_v6,
            window: cfg.rcv_buf.min(65535) as u16,
            rcv_wscale: cfg.rcv_wscale(),
            ttl: cfg.ttl,
            pad: 0,
        }
    }

    /// CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads), in nanoseconds.
    fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into `ts`, which outlives the call.
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        }
        (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
    }

    /// `clock.now()` minus CLOCK_MONOTONIC, in nanoseconds: what the program adds to
    /// `bpf_ktime_get_ns()` to read the engine's clock. Both clocks run at the same rate
    /// (the engine's is CLOCK_MONOTONIC shifted once), so one reading holds for good; the
    /// tightest of a few bracketed readings is taken (well under a microsecond off).
    pub fn clock_offset_ns(clock: &impl Clock) -> i64 {
        let mut best = (u64::MAX, 0i64);
        for _ in 0..8 {
            let a = monotonic_ns();
            let e = clock.now().as_nanos();
            let b = monotonic_ns();
            let width = b.wrapping_sub(a);
            if width < best.0 {
                let mid = a.wrapping_add(width / 2);
                best = (width, e.wrapping_sub(mid) as i64);
            }
        }
        best.1
    }

    /// The controller thread (see the module documentation). Dropping it stops the thread.
    pub struct Controller {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        steering: Arc<Steering>,
        raw: ShieldConfigRaw,
        shared: Arc<ShieldShared>,
    }

    /// Everything the controller needs.
    pub struct ControllerParts<C> {
        pub steering: Arc<Steering>,
        pub cfg: ShieldConfig,
        pub raw: ShieldConfigRaw,
        pub master: Key,
        pub clock: C,
        pub shared: Arc<ShieldShared>,
    }

    /// Writes the keys of the program's epoch (`now`) and the next one, unless already
    /// written; returns the epoch. The next epoch's slot is the previous epoch's, which the
    /// program stopped reading when it moved to this one.
    fn write_keys(steering: &Steering, master: &Key, now_ns: u64, written: &mut Option<u64>) -> Result<()> {
        let epoch = now_ns.saturating_sub(SHIELD_KEY_GRACE_NS) / SHIELD_KEY_PERIOD_NS;
        if *written == Some(epoch) {
            return Ok(());
        }
        let first = written.is_none();
        for e in [epoch, epoch + 1] {
            // After the first time, only the next epoch is new: rewriting the current one's
            // slot while the program reads it is what the two slots avoid.
            if first || e == epoch + 1 {
                steering
                    .set_shield_key(&ShieldKeyRaw { epoch: e, key: cookie_key(master, e) })
                    .context("write a SYN shield key")?;
            }
        }
        *written = Some(epoch);
        Ok(())
    }

    impl Controller {
        /// Writes the settings and the first keys, then starts the thread. In
        /// [`ShieldMode::On`] the shield is on when this returns.
        pub fn start<C: Clock + Send + 'static>(p: ControllerParts<C>) -> Result<Controller> {
            let mut written = None;
            write_keys(&p.steering, &p.master, p.clock.now().as_nanos(), &mut written)?;
            let on = p.cfg.mode == ShieldMode::On;
            p.steering
                .set_shield(&ShieldConfigRaw {
                    flags: if on { p.raw.flags | SHIELD_F_ON } else { p.raw.flags },
                    ..p.raw
                })
                .context("write the SYN shield settings")?;
            p.shared.active.store(on, Ordering::Relaxed);
            let stop = Arc::new(AtomicBool::new(false));
            let st = Arc::clone(&stop);
            let (steering, raw, shared) = (Arc::clone(&p.steering), p.raw, Arc::clone(&p.shared));
            let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
            let thread = std::thread::Builder::new()
                .name("xdptcp-shield".into())
                .spawn(move || {
                    // Spawned while the main thread still holds its capabilities; this thread
                    // needs none (engine::caps), and `serve` checks that no thread kept any
                    // right after the start: drop them before the start returns.
                    if let Err(e) = crate::engine::caps::drop_capabilities() {
                        eprintln!("xdptcp: SYN shield thread: {e}");
                    }
                    let _ = ready_tx.send(());
                    run(p, written, &st)
                })
                .context("spawn the SYN shield thread")?;
            let _ = ready_rx.recv();
            Ok(Controller { stop, thread: Some(thread), steering, raw, shared })
        }

        /// The listeners are closing (`Engine::stop_listening`): the program stops answering
        /// SYNs now, and `auto` never switches it on again; SYNs then reach the cores, which
        /// refuse them as a closed port does, where a cookie would only lead the client to an
        /// ACK answered with a RST.
        pub fn stop_answering(&self) {
            self.shared.mark_stopped();
            if let Err(e) = self.steering.set_shield(&self.raw) {
                eprintln!("xdptcp: SYN shield: switch off: {e}");
            }
            self.shared.set_active(false);
        }
    }

    impl Drop for Controller {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn run<C: Clock>(p: ControllerParts<C>, mut written: Option<u64>, stop: &AtomicBool) {
        let mut auto = AutoSwitch::default();
        let mut last = (p.clock.now(), p.steering.stat(XskStat::Syn).unwrap_or(0), 0u64);
        let mut warned = false;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_nanos(TICK.as_nanos()));
            let now = p.clock.now();
            let mut r = write_keys(&p.steering, &p.master, now.as_nanos(), &mut written);
            let syns = p.steering.stat(XskStat::Syn).unwrap_or(last.1);
            let overflows = p.shared.overflows.load(Ordering::Relaxed);
            let dt = now.saturating_since(last.0).as_nanos().max(1);
            let rate = (syns.saturating_sub(last.1) as u128 * 1_000_000_000 / u128::from(dt)) as u64;
            p.shared.syn_rate.store(rate, Ordering::Relaxed);
            if p.cfg.mode == ShieldMode::Auto && !p.shared.is_stopped() {
                let was = auto.is_on();
                let on = auto.step(now, rate, overflows != last.2, p.cfg.on_rate);
                if on != was {
                    let flags = if on { p.raw.flags | SHIELD_F_ON } else { p.raw.flags };
                    r = r.and(
                        p.steering.set_shield(&ShieldConfigRaw { flags, ..p.raw }).context("switch the SYN shield"),
                    );
                    p.shared.set_active(on);
                }
            }
            last = (now, syns, overflows);
            if let Err(e) = r {
                // A map write through a descriptor held since load does not fail; if it ever
                // does, say it once (the stack still makes cookies itself).
                if !warned {
                    eprintln!("xdptcp: SYN shield: {e:#}");
                    warned = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    /// On at the threshold or on an overflow, at once; off only after the rate has stayed
    /// below half of it, with no overflow, for AUTO_HOLD; a blip above half resets the wait.
    #[test]
    fn auto_switch_has_hysteresis() {
        let mut a = AutoSwitch::default();
        assert!(!a.step(at(0), 9_999, false, 10_000));
        assert!(a.step(at(100), 10_000, false, 10_000));
        // Between half and the threshold: stays on, however long.
        assert!(a.step(at(20_000), 6_000, false, 10_000));
        // Low from 20.1 s; a blip at 25 s (above half) restarts the wait.
        assert!(a.step(at(20_100), 100, false, 10_000));
        assert!(a.step(at(25_000), 5_000, false, 10_000));
        assert!(a.step(at(25_100), 100, false, 10_000));
        assert!(a.step(at(35_000), 100, false, 10_000));
        assert!(!a.step(at(35_100), 100, false, 10_000));
        // An overflow alone switches it on, and holds it on.
        assert!(a.step(at(40_000), 0, true, 10_000));
        assert!(a.step(at(45_000), 0, false, 10_000));
        assert!(!a.step(at(55_000), 0, false, 10_000));
    }

    #[test]
    fn switches_are_counted_once_each() {
        let s = ShieldShared::default();
        s.set_active(true);
        s.set_active(true);
        s.set_active(false);
        assert_eq!(
            s.status(ShieldMode::Auto),
            ShieldStatus { mode: ShieldMode::Auto, active: false, switches: 2, syn_rate: 0 }
        );
    }
}
