//! `serve --cookie-secret-file PATH`: the secrets that several hosts behind ECMP or anycast
//! share, so that a handshake an ECMP rehash moves from one host to another still completes.
//!
//! Without the file every engine draws its keys at start, and a SYN-cookie SYN-ACK sent by host
//! A can only be validated by host A. With the same file on every host:
//!
//! - the SYN-cookie master secret is shared, and every core of every host derives the same
//!   cookie key for a given epoch ([`cookie_key`]);
//! - the ISN key (RFC 6528) and the timestamp-offset key (RFC 7323 §5.4) are shared, so the host
//!   that completes a handshake another host started answers with the same timestamp offset;
//! - the engine's clock reads UNIX time ([`FleetClock`]), so the cookie epoch (UNIX time / 600 s),
//!   the cookie counter `t` (UNIX time / 64 s, `tcp::syncookie`) and the timestamp clock agree
//!   between hosts, up to their clock skew.
//!
//! File format: exactly [`SECRET_LEN`] (48) random bytes: bytes 0..16 the cookie master secret,
//! 16..32 the ISN key, 32..48 the timestamp-offset key. The same 48 bytes written as 96
//! hexadecimal digits (one line, trailing newline allowed) are accepted too, for secret stores
//! that hold text. Make one with `(umask 077; head -c 48 /dev/urandom > PATH)`.
//!
//! The file must be a regular file owned by the user running serve, with mode 0600 or 0400.
//! The secrets are never printed: errors name the path and the fix only, and `Debug` is redacted.

use super::MonoClock;
use crate::tcp::secrets::Key;
use crate::tcp::Secrets;
use crate::time::{Clock, Duration, Instant};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The flag, as errors name it.
pub const FLAG: &str = "--cookie-secret-file";

/// Size of the secret file in bytes (three 128-bit SipHash keys).
pub const SECRET_LEN: usize = 48;

/// How often every core derives a fresh SYN-cookie key from the master secret (cookies made
/// under the previous key stay valid for one more period).
pub const COOKIE_KEY_PERIOD: Duration = Duration::from_secs(600);

/// The command that makes a secret file, as errors and the runbook spell it.
fn make_cmd(path: &Path) -> String {
    format!("(umask 077; head -c {SECRET_LEN} /dev/urandom > {})", path.display())
}

/// The secrets of a fleet, read from the file. `Debug` prints no key.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetSecrets {
    cookie_master: Key,
    isn_key: Key,
    ts_key: Key,
}

impl fmt::Debug for FleetSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FleetSecrets { .. }")
    }
}

/// What is wrong with the contents of a secret file. Never carries the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// Neither 48 bytes nor 96 hex digits: the size found (bytes, or hex digits when the file is
    /// all hex).
    WrongSize { len: usize, hex: bool },
    /// One of the three keys is all zero bytes: not random (e.g. made from /dev/zero).
    ZeroKey,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::WrongSize { len, hex: true } => {
                write!(f, "holds {len} hex digits, not {} (or {SECRET_LEN} raw bytes)", SECRET_LEN * 2)
            }
            FormatError::WrongSize { len, hex: false } => {
                write!(f, "holds {len} bytes, not {SECRET_LEN} (or {} hex digits)", SECRET_LEN * 2)
            }
            FormatError::ZeroKey => f.write_str("holds a key of all zero bytes, not random bytes"),
        }
    }
}

/// Why the mode or the owner of a secret file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermProblem {
    /// Permission bits other than 0600 or 0400 (given: the `st_mode & 0o7777`).
    Mode(u32),
    /// Owned by another user (given: the owner, and the effective uid of this process).
    Owner { owner: u32, euid: u32 },
}

/// Checks the permission bits and the owner of a secret file: mode exactly 0600 or 0400 (no
/// group or other bits, no execute, no set-id or sticky bits), owner `euid`.
pub fn check_permissions(mode: u32, owner: u32, euid: u32) -> Result<(), PermProblem> {
    let perm = mode & 0o7777;
    if perm != 0o600 && perm != 0o400 {
        return Err(PermProblem::Mode(perm));
    }
    if owner != euid {
        return Err(PermProblem::Owner { owner, euid });
    }
    Ok(())
}

/// Why `serve` refuses the file. `Display` is one line naming the flag, the path and the fix.
#[derive(Debug)]
pub enum SecretFileError {
    Missing { path: PathBuf },
    Unreadable { path: PathBuf, err: std::io::Error },
    NotRegular { path: PathBuf },
    Perm { path: PathBuf, problem: PermProblem },
    Format { path: PathBuf, err: FormatError },
}

impl fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretFileError::Missing { path } => write!(
                f,
                "{FLAG} {}: no such file; create it once for the whole fleet with `{}` and copy the same file \
                 to every host",
                path.display(),
                make_cmd(path)
            ),
            SecretFileError::Unreadable { path, err } => write!(
                f,
                "{FLAG} {}: cannot read it ({err}); run serve as the file's owner, with the file at mode 0600 \
                 (`chmod 600 {}`)",
                path.display(),
                path.display()
            ),
            SecretFileError::NotRegular { path } => write!(
                f,
                "{FLAG} {}: not a regular file; give the path of the {SECRET_LEN}-byte secret file (make one with \
                 `{}`)",
                path.display(),
                make_cmd(path)
            ),
            SecretFileError::Perm { path, problem: PermProblem::Mode(m) } => write!(
                f,
                "{FLAG} {}: mode {m:04o}, but a secret file must be readable by its owner only (0600 or 0400); \
                 fix with `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            SecretFileError::Perm { path, problem: PermProblem::Owner { owner, euid } } => write!(
                f,
                "{FLAG} {}: owned by uid {owner}, but serve runs as uid {euid}; fix with `chown {euid} {}` \
                 (and keep mode 0600)",
                path.display(),
                path.display()
            ),
            SecretFileError::Format { path, err } => write!(
                f,
                "{FLAG} {}: {err}; make a new one with `{}` and copy it to every host of the fleet",
                path.display(),
                make_cmd(path)
            ),
        }
    }
}

impl std::error::Error for SecretFileError {}

impl FleetSecrets {
    /// Reads and checks the secret file: a regular file, owned by the effective user, mode 0600
    /// or 0400, holding 48 bytes (or 96 hex digits). Mode and owner are read from the open file
    /// (no race between the check and the read).
    pub fn load(path: &Path) -> Result<FleetSecrets, SecretFileError> {
        let p = || path.to_path_buf();
        // O_NONBLOCK: a FIFO at the path must not hang the start (it is refused below).
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(
                |err| match err.kind() {
                    std::io::ErrorKind::NotFound => SecretFileError::Missing { path: p() },
                    _ => SecretFileError::Unreadable { path: p(), err },
                },
            )?;
        let md = file.metadata().map_err(|err| SecretFileError::Unreadable { path: p(), err })?;
        if !md.file_type().is_file() {
            return Err(SecretFileError::NotRegular { path: p() });
        }
        check_permissions(md.mode(), md.uid(), effective_uid())
            .map_err(|problem| SecretFileError::Perm { path: p(), problem })?;
        let mut buf = Vec::with_capacity(256);
        // A little more than the largest valid file, so that a long file reads as too long.
        let read = file.take(4096).read_to_end(&mut buf);
        let parsed = match read {
            Ok(_) => FleetSecrets::parse(&buf).map_err(|err| SecretFileError::Format { path: p(), err }),
            Err(err) => Err(SecretFileError::Unreadable { path: p(), err }),
        };
        // Do not leave a copy of the secret in freed memory.
        buf.fill(0);
        std::hint::black_box(&buf);
        parsed
    }

    /// Parses the contents of a secret file: exactly 48 bytes, or 96 hex digits followed by
    /// optional ASCII whitespace (a trailing newline).
    pub fn parse(bytes: &[u8]) -> Result<FleetSecrets, FormatError> {
        let mut raw = [0u8; SECRET_LEN];
        if bytes.len() == SECRET_LEN {
            raw.copy_from_slice(bytes);
        } else {
            let text = trim_trailing_whitespace(bytes);
            let all_hex = !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit);
            if !all_hex || text.len() != SECRET_LEN * 2 {
                let len = if all_hex { text.len() } else { bytes.len() };
                return Err(FormatError::WrongSize { len, hex: all_hex });
            }
            for (out, pair) in raw.iter_mut().zip(text.chunks_exact(2)) {
                *out = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
            }
        }
        let key = |i: usize| -> Key {
            let mut k = [0u8; 16];
            k.copy_from_slice(&raw[i * 16..i * 16 + 16]);
            k
        };
        let s = FleetSecrets { cookie_master: key(0), isn_key: key(1), ts_key: key(2) };
        raw.fill(0);
        std::hint::black_box(&raw);
        if [&s.cookie_master, &s.isn_key, &s.ts_key].iter().any(|k| k.iter().all(|b| *b == 0)) {
            return Err(FormatError::ZeroKey);
        }
        Ok(s)
    }

    /// The master secret every core derives its cookie keys from ([`cookie_key`]).
    pub fn cookie_master(&self) -> &Key {
        &self.cookie_master
    }

    /// The secrets of a shard at cookie epoch `epoch`: the file's ISN and timestamp keys, the
    /// cookie key of `epoch` and, as the previous one, that of `epoch - 1`. Every host with the
    /// same file gets the same value for the same epoch.
    pub fn shard_secrets(&self, epoch: u64) -> Secrets {
        Secrets {
            isn_key: self.isn_key,
            ts_key: self.ts_key,
            cookie_key: cookie_key(&self.cookie_master, epoch),
            cookie_key_prev: cookie_key(&self.cookie_master, epoch.wrapping_sub(1)),
        }
    }
}

fn trim_trailing_whitespace(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(0, |i| i + 1);
    &b[..end]
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no argument, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// The SYN-cookie key of one epoch, derived from the master secret (SipHash-2-4 keyed by the
/// master, over the epoch number). Every core, and every host with the same master, derives the
/// same key for the same epoch.
pub fn cookie_key(master: &Key, epoch: u64) -> Key {
    use core::hash::Hasher;
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = siphasher::sip::SipHasher24::new_with_key(master);
        h.write_u64(epoch);
        h.write_u8(i as u8);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// The cookie-key epoch an engine instant falls in. With a [`FleetClock`] that reads UNIX time
/// this is UNIX time / 600 s, the same number on every host of the fleet.
pub fn cookie_epoch(now: Instant) -> u64 {
    now.as_nanos() / COOKIE_KEY_PERIOD.as_nanos()
}

/// The engine's clock. Without a secret file it is [`MonoClock`] unchanged (time since start).
/// With one it is the same monotonic clock shifted, once at start, by the wall clock
/// (CLOCK_REALTIME), so that it reads UNIX time.
///
/// Why: `MonoClock` counts from the start of the process, so two hosts read different times and
/// would compute different cookie epochs, cookie counters and timestamp clocks; a cookie made by
/// one would be refused by the other even with the same key. Reading CLOCK_REALTIME on every
/// packet would instead let an NTP step move TCP's timers backwards; sampling it once and then
/// advancing monotonically keeps timers sane, and hosts whose clocks were in sync at start stay
/// within their oscillators' drift. (The `tcp` layer stays clock-free: it only sees the `now`
/// the engine passes in.)
#[derive(Debug, Clone, Copy)]
pub struct FleetClock {
    mono: MonoClock,
    offset_ns: u64,
}

impl FleetClock {
    /// Time since start, as `MonoClock` (no secret file: nothing to agree on with other hosts).
    pub fn monotonic() -> FleetClock {
        FleetClock { mono: MonoClock::new(), offset_ns: 0 }
    }

    /// Monotonic time that read UNIX time (CLOCK_REALTIME) when it was made.
    #[allow(clippy::disallowed_methods)] // the engine owns the clock (STYLE.md §2): one wall-clock read at start
    pub fn unix_aligned() -> FleetClock {
        let mono = MonoClock::new();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        FleetClock { mono, offset_ns: unix.saturating_sub(mono.now().as_nanos()) }
    }
}

impl Clock for FleetClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.mono.now().as_nanos().saturating_add(self.offset_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (1..=48u8).collect()
    }

    #[test]
    fn secret_file_parses_raw_bytes_in_order() {
        let s = FleetSecrets::parse(&sample()).unwrap();
        assert_eq!(s.cookie_master()[0], 1);
        assert_eq!(s.isn_key[0], 17);
        assert_eq!(s.ts_key[15], 48);
    }

    #[test]
    fn secret_file_parses_hex_with_or_without_newline() {
        let hex: String = sample().iter().map(|b| format!("{b:02x}")).collect();
        let raw = FleetSecrets::parse(&sample()).unwrap();
        assert_eq!(FleetSecrets::parse(hex.as_bytes()).unwrap(), raw);
        assert_eq!(FleetSecrets::parse(format!("{hex}\n").as_bytes()).unwrap(), raw);
        assert_eq!(FleetSecrets::parse(hex.to_uppercase().as_bytes()).unwrap(), raw);
    }

    #[test]
    fn secret_file_refuses_wrong_sizes_and_zero_keys() {
        assert_eq!(FleetSecrets::parse(&[]), Err(FormatError::WrongSize { len: 0, hex: false }));
        assert_eq!(FleetSecrets::parse(&[7; 47]), Err(FormatError::WrongSize { len: 47, hex: false }));
        assert_eq!(FleetSecrets::parse(&[7; 64]), Err(FormatError::WrongSize { len: 64, hex: false }));
        // 48 bytes plus a newline is not hex and not 48 bytes.
        let mut nl = sample();
        nl.push(b'\n');
        assert_eq!(FleetSecrets::parse(&nl), Err(FormatError::WrongSize { len: 49, hex: false }));
        assert_eq!(FleetSecrets::parse(&[b'a'; 95]), Err(FormatError::WrongSize { len: 95, hex: true }));
        assert_eq!(FleetSecrets::parse(&[b'a'; 128]), Err(FormatError::WrongSize { len: 128, hex: true }));
        let mut bad_hex = vec![b'a'; 96];
        bad_hex[10] = b'g';
        assert_eq!(FleetSecrets::parse(&bad_hex), Err(FormatError::WrongSize { len: 96, hex: false }));
        assert_eq!(FleetSecrets::parse(&[0; 48]), Err(FormatError::ZeroKey));
        let mut one_zero = sample();
        one_zero[16..32].fill(0);
        assert_eq!(FleetSecrets::parse(&one_zero), Err(FormatError::ZeroKey));
    }

    #[test]
    fn secret_file_debug_is_redacted() {
        let s = FleetSecrets::parse(&[0xab; 48]).unwrap();
        let d = format!("{s:?} {:?}", s.shard_secrets(5));
        assert!(!d.contains("ab") && !d.contains("171"), "{d}");
    }

    #[test]
    fn secret_file_permissions_are_owner_only() {
        assert_eq!(check_permissions(0o100600, 0, 0), Ok(()));
        assert_eq!(check_permissions(0o100400, 1000, 1000), Ok(()));
        for bad in [0o644, 0o640, 0o604, 0o660, 0o606, 0o700, 0o500, 0o200, 0o000, 0o4600, 0o1600, 0o777] {
            assert_eq!(check_permissions(0o100000 | bad, 0, 0), Err(PermProblem::Mode(bad)), "{bad:o}");
        }
        assert_eq!(check_permissions(0o100600, 1000, 0), Err(PermProblem::Owner { owner: 1000, euid: 0 }));
    }

    #[test]
    fn secret_file_cookie_keys_depend_on_epoch_and_master_only() {
        let s = FleetSecrets::parse(&sample()).unwrap();
        let a = s.shard_secrets(100);
        let b = FleetSecrets::parse(&sample()).unwrap().shard_secrets(100);
        assert_eq!(
            (a.isn_key, a.ts_key, a.cookie_key, a.cookie_key_prev),
            (b.isn_key, b.ts_key, b.cookie_key, b.cookie_key_prev)
        );
        assert_eq!(a.cookie_key_prev, s.shard_secrets(99).cookie_key);
        assert_ne!(a.cookie_key, s.shard_secrets(101).cookie_key);
        assert_eq!(cookie_epoch(Instant::from_secs(1_800_000_000)), 3_000_000);
    }
}
