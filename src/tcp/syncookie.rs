//! SYN cookies (RFC 4987 §3.6): the SYN-ACK's sequence number encodes what the SYN queue would
//! have held, so a listener keeps no state for a SYN until the final ACK proves the peer is real.
//!
//! The pure core is [`generate`] / [`check`]; the listener decides when to use them (kernel
//! `__cookie_v4_init_sequence` / `__cookie_v4_check` vs `cookie_v4_check`).
//!
//! Cookie layout, as RFC 4987 §3.6 describes it:
//!
//! ```text
//!  31    27 26  24 23                                            0
//! +--------+------+-----------------------------------------------+
//! | t mod 32| MSS |  SipHash-2-4(key, 4-tuple, client ISN, t) & 0xffffff |
//! +--------+------+-----------------------------------------------+
//! ```
//!
//! `t` is a counter that advances every 64 seconds. When the SYN carried timestamps, the low six
//! bits of our TSval carry the options the SYN asked for (as Linux's `cookie_init_timestamp`
//! does): bits 0-3 the peer's window scale (15 = none), bit 4 SACK-permitted, bit 5 ECN. The
//! final ACK echoes that TSval in TSecr, and [`decode_ts_options`] reads them back.

use super::counters::DropReason;
use super::secrets::{keyed_hash, Key};
use super::tuple::FourTuple;
use crate::time::Instant;
use crate::wire::SeqNum;

/// RFC 4987 §3.6: t "increases every 64 seconds".
pub const COUNTER_PERIOD_SECS: u64 = 64;
/// A cookie is accepted in the period it was made in and the next one (64 to 128 s), close to
/// Linux's two minutes (`MAX_SYNCOOKIE_AGE`).
pub const MAX_COOKIE_AGE_PERIODS: u32 = 1;

/// MSS values a cookie can carry (3 bits). Chosen for the common paths: the RFC 879 default,
/// tunnels and PPPoE, Ethernet, and jumbo frames; a SYN's MSS is rounded down to an entry.
pub const MSS_TABLE: [u16; 8] = [536, 1200, 1300, 1360, 1400, 1440, 1460, 8960];

/// Options carried in the low bits of TSval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieOptions {
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub ecn: bool,
}

pub const TS_OPT_BITS: u32 = 6;
const TS_OPT_MASK: u32 = (1 << TS_OPT_BITS) - 1;
const TS_WSCALE_NONE: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;
const TS_ECN: u32 = 1 << 5;

/// The cookie counter `t` for an instant.
pub fn counter(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000_000 / COUNTER_PERIOD_SECS) as u32
}

/// Index of the largest table MSS not above `mss`.
fn mss_index(mss: u16) -> usize {
    let mut idx = 0;
    for (i, &m) in MSS_TABLE.iter().enumerate() {
        if m <= mss {
            idx = i;
        }
    }
    idx
}

fn hash24(key: &Key, t: &FourTuple, client_isn: SeqNum, counter: u32) -> u32 {
    (keyed_hash(key, t, &[client_isn.0, counter]) as u32) & 0x00ff_ffff
}

/// Makes the cookie (our ISS) for a SYN from `t` with sequence `client_isn` and MSS option
/// `mss`. Returns the cookie and the MSS it encodes (the SYN's MSS rounded down to the table).
pub fn generate(key: &Key, t: &FourTuple, client_isn: SeqNum, mss: u16, counter: u32) -> (SeqNum, u16) {
    let idx = mss_index(mss);
    let c = ((counter & 31) << 27) | ((idx as u32) << 24) | hash24(key, t, client_isn, counter);
    (SeqNum(c), MSS_TABLE.get(idx).copied().unwrap_or(MSS_TABLE[0]))
}

/// Checks the cookie acknowledged by a final ACK (`ack` = cookie + 1, `client_isn` = the ACK's
/// sequence number - 1) against the current and the previous key. Returns the encoded MSS.
pub fn check(keys: [&Key; 2], t: &FourTuple, ack: SeqNum, client_isn: SeqNum, counter: u32) -> Result<u16, DropReason> {
    let cookie = ack.sub(1).0;
    let age = counter.wrapping_sub(cookie >> 27) & 31;
    let made_at = counter.wrapping_sub(age);
    let idx = ((cookie >> 24) & 7) as usize;
    let authentic = keys.iter().any(|k| hash24(k, t, client_isn, made_at) == cookie & 0x00ff_ffff);
    if !authentic {
        return Err(DropReason::CookieInvalid);
    }
    if age > MAX_COOKIE_AGE_PERIODS {
        return Err(DropReason::CookieExpired);
    }
    MSS_TABLE.get(idx).copied().ok_or(DropReason::CookieInvalid)
}

/// Our TSval for a cookie SYN-ACK: the timestamp clock with its low bits replaced by the options,
/// never ahead of `ts_now` (so the peer's PAWS never sees our clock jump forward and back).
pub fn encode_ts_options(ts_now: u32, o: CookieOptions) -> u32 {
    let mut bits = match o.window_scale {
        Some(w) => u32::from(w.min(14)),
        None => TS_WSCALE_NONE,
    };
    if o.sack_permitted {
        bits |= TS_SACK;
    }
    if o.ecn {
        bits |= TS_ECN;
    }
    let mut ts = (ts_now & !TS_OPT_MASK) | bits;
    if ts > ts_now {
        ts = ts.wrapping_sub(TS_OPT_MASK + 1);
    }
    ts
}

/// Reads the options back from the TSecr of the final ACK. `None` if the bits are impossible
/// (a window scale above 14 that is not the "none" marker).
pub fn decode_ts_options(tsecr: u32) -> Option<CookieOptions> {
    let w = tsecr & 0xf;
    let window_scale = match w {
        TS_WSCALE_NONE => None,
        0..=14 => Some(w as u8),
        _ => return None,
    };
    Some(CookieOptions { window_scale, sack_permitted: tsecr & TS_SACK != 0, ecn: tsecr & TS_ECN != 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::secrets::Secrets;

    fn tuple() -> FourTuple {
        FourTuple::new("198.18.0.1:80".parse().unwrap(), "198.18.0.2:40000".parse().unwrap())
    }

    #[test]
    fn generate_then_check() {
        let s = Secrets::from_seed(1);
        let (c, mss) = generate(&s.cookie_key, &tuple(), SeqNum(1000), 1460, 5);
        assert_eq!(mss, 1460);
        let keys = [&s.cookie_key, &s.cookie_key_prev];
        assert_eq!(check(keys, &tuple(), c.add(1), SeqNum(1000), 5), Ok(1460));
        assert_eq!(check(keys, &tuple(), c.add(1), SeqNum(1000), 6), Ok(1460));
        assert_eq!(check(keys, &tuple(), c.add(1), SeqNum(1000), 7), Err(DropReason::CookieExpired));
        assert_eq!(check(keys, &tuple(), c.add(2), SeqNum(1000), 5), Err(DropReason::CookieInvalid));
        assert_eq!(check(keys, &tuple(), c.add(1), SeqNum(1001), 5), Err(DropReason::CookieInvalid));
    }

    #[test]
    fn mss_rounds_down_to_table() {
        let s = Secrets::from_seed(1);
        assert_eq!(generate(&s.cookie_key, &tuple(), SeqNum(1), 1450, 0).1, 1440);
        assert_eq!(generate(&s.cookie_key, &tuple(), SeqNum(1), 100, 0).1, 536);
        assert_eq!(generate(&s.cookie_key, &tuple(), SeqNum(1), 9000, 0).1, 8960);
    }

    #[test]
    fn ts_options_roundtrip_and_never_jump_ahead() {
        let o = CookieOptions { window_scale: Some(7), sack_permitted: true, ecn: false };
        for now in [0u32, 63, 64, 1_000_001, u32::MAX] {
            let ts = encode_ts_options(now, o);
            assert_eq!(decode_ts_options(ts), Some(o));
            assert!(ts <= now || now < 64, "ts {ts} now {now}");
        }
        let none = CookieOptions { window_scale: None, sack_permitted: false, ecn: true };
        assert_eq!(decode_ts_options(encode_ts_options(5000, none)), Some(none));
    }
}
