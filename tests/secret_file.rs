//! `serve --cookie-secret-file`: hosts that read the same file accept each other's SYN cookies
//! (an ECMP rehash moves the final ACK to another host), with the same ISN and timestamp keys;
//! and the file is refused, with one line naming the flag, the path and the fix, when it is
//! missing, readable or writable by others, or of the wrong size.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use xdptcp::engine::secret_file::{
    cookie_epoch, cookie_key, FleetClock, FleetSecrets, SecretFileError, COOKIE_KEY_PERIOD, FLAG, SECRET_LEN,
};
use xdptcp::tcp::{Config, DropReason, Shard, State, SynCookies, Verdict};
use xdptcp::time::{Clock, Duration, Instant};
use xdptcp::wire::TcpOptions;

/// A file under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8], mode: u32) -> TempFile {
        let path = std::env::temp_dir().join(format!("xdptcp-secret-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// 48 bytes no key of which is zero; `seed` makes another fleet's file.
fn secret_bytes(seed: u8) -> Vec<u8> {
    (0..SECRET_LEN as u8).map(|i| i.wrapping_mul(37).wrapping_add(seed) | 1).collect()
}

/// A host of the fleet: a shard whose secrets come from the file, at the epoch of `now` (as
/// `Engine::start` and the core loop install them), listening on port 80.
fn fleet_host(ip: &str, secrets: &FleetSecrets, now: Instant, cfg: Config) -> Host {
    let mut shard = Shard::new(cfg, secrets.shard_secrets(cookie_epoch(now)));
    shard.listen(80, None, 128).unwrap();
    Host { shard, ip: ip.parse().unwrap(), out: Vec::new(), now, events: Vec::new() }
}

fn client() -> std::net::SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

fn syn_options(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((tsval, 0)),
        ..TcpOptions::default()
    }
}

fn ack_options(tsval: u32, tsecr: u32) -> TcpOptions {
    TcpOptions { timestamps: Some((tsval, tsecr)), ..TcpOptions::default() }
}

/// A UNIX-time instant, as `FleetClock` reads it on every host of a fleet.
fn unix(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

/// The SYN reaches host A, which answers with a cookie; an ECMP rehash sends the final ACK to
/// host B, which read the same file: B validates the cookie, completes the connection with
/// A's ISN (the cookie), the options the cookie carried and the same timestamp offset.
#[test]
fn hosts_with_one_file_accept_each_others_cookies() {
    let file = TempFile::new("fleet", &secret_bytes(1), 0o600);
    // Each host reads the file itself.
    let on_a = FleetSecrets::load(&file.0).unwrap();
    let on_b = FleetSecrets::load(&file.0).unwrap();
    let cfg = Config { syncookies: SynCookies::Always, ..Config::default() };
    let t0 = unix(1_800_000_100);
    let mut a = fleet_host("198.18.0.1", &on_a, t0, cfg.clone());
    // B is the same address (anycast/ECMP) on another machine; its packets arrive 300 ms later.
    let mut b = fleet_host("198.18.0.1", &on_b, t0, cfg);
    let vip = a.addr(80);

    a.deliver(&craft_opts(client(), vip, 7000, 0, SYN, b"", syn_options(555), 65535));
    let sa = Seg::parse(&a.take_one());
    assert!(sa.is(synack()));
    assert_eq!(a.shard.counters().tcp_ext_syncookies_sent, 1);
    let (a_tsval, _) = sa.options.timestamps.expect("cookie SYN-ACK carries timestamps");

    b.now = t0 + Duration::from_millis(300);
    let ack = craft_opts(client(), vip, 7001, sa.seq.wrapping_add(1), ACK, b"GET /", ack_options(556, a_tsval), 1024);
    assert_eq!(b.deliver(&ack), Verdict::Consumed);
    assert_eq!(b.shard.counters().tcp_ext_syncookies_recv, 1);
    assert_eq!(b.shard.counters().tcp_ext_syncookies_failed, 0);
    let id = b.shard.accept(80).expect("B completes the handshake A started");
    assert_eq!(b.state(id), Some(State::Established));
    assert_eq!(b.recv_all(id), b"GET /");
    let info = b.shard.info(id).unwrap();
    // What A's cookie encoded: MSS 1460 (less 12 bytes of timestamp option), and window scale 7
    // in the TSval's low bits.
    assert_eq!((info.smss, info.snd_wscale, info.ts_ok), (1460 - 12, 7, true));
    assert_eq!(info.snd_una.0, sa.seq.wrapping_add(1), "B's ISN is A's cookie");

    // B answers in A's sequence space and on A's timestamp clock: same offset, so its TSval
    // follows the one the client saw in A's SYN-ACK (PAWS on the client accepts it).
    b.take();
    b.shard.send(id, b"200 OK").unwrap();
    b.flush();
    let data = b.take_segs().into_iter().find(|s| !s.payload.is_empty()).expect("B sends the reply");
    assert_eq!(data.seq, sa.seq.wrapping_add(1), "B's ISN is A's cookie");
    let (b_tsval, b_tsecr) = data.options.timestamps.expect("timestamps negotiated through the cookie");
    assert_eq!(b_tsecr, 556);
    let ahead = b_tsval.wrapping_sub(a_tsval);
    assert!((300..300 + 64).contains(&ahead), "B's TSval {ahead} ms after A's: same offset, same clock");
}

/// A cookie made just before an epoch boundary on A is accepted by B after it (B installed the
/// next key; the previous one is still accepted), and a host with another file refuses it.
#[test]
fn cookies_cross_an_epoch_boundary_and_other_fleets_refuse_them() {
    let file = TempFile::new("epoch", &secret_bytes(2), 0o400);
    let secrets = FleetSecrets::load(&file.0).unwrap();
    let other = FleetSecrets::parse(&secret_bytes(3)).unwrap();
    let cfg = Config { syncookies: SynCookies::Always, timestamps: false, ..Config::default() };
    let period = COOKIE_KEY_PERIOD.as_nanos() / 1_000_000_000;
    let boundary = 3_000_000 * period; // a multiple of the 600 s epoch and of the 64 s counter
    let t0 = unix(boundary - 1);
    let mut a = fleet_host("198.18.0.1", &secrets, t0, cfg.clone());
    let vip = a.addr(80);
    a.deliver(&craft(client(), vip, 9000, 0, SYN, b""));
    let sa = Seg::parse(&a.take_one());

    let t1 = unix(boundary + 2);
    assert_eq!(cookie_epoch(t1), cookie_epoch(t0) + 1);
    let mut b = fleet_host("198.18.0.1", &secrets, t1, cfg.clone());
    b.deliver(&craft(client(), vip, 9001, sa.seq.wrapping_add(1), ACK, b""));
    assert!(b.shard.accept(80).is_some(), "previous epoch's key still accepted on B");

    // The core loop's rotation gives the same keys as a fresh start at that epoch.
    let mut c = fleet_host("198.18.0.1", &secrets, t0, cfg.clone());
    c.now = t1;
    c.shard.rotate_cookie_key(cookie_key(secrets.cookie_master(), cookie_epoch(t1)));
    c.deliver(&craft(client(), vip, 9001, sa.seq.wrapping_add(1), ACK, b""));
    assert!(c.shard.accept(80).is_some(), "rotated key set accepts it too");

    let mut stranger = fleet_host("198.18.0.1", &other, t1, cfg);
    let v = stranger.deliver(&craft(client(), vip, 9001, sa.seq.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::CookieInvalid), "another file, another fleet");
}

/// Two engines started 50 ms apart read the same time with a `FleetClock` (UNIX time), where
/// `MonoClock`s (time since start) would differ by the 50 ms: the cookie epoch and counter
/// cannot depend on when each host started.
#[test]
fn fleet_clock_reads_unix_time() {
    let first = FleetClock::unix_aligned();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let second = FleetClock::unix_aligned();
    let (x, y) = (first.now().as_nanos(), second.now().as_nanos());
    assert!(x.abs_diff(y) < 20_000_000, "clocks made 50 ms apart agree: {x} vs {y}");
    #[allow(clippy::disallowed_methods)] // the test compares with the wall clock
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert!(second.now().as_nanos().abs_diff(wall) < 1_000_000_000);
    // Without a file the clock is time since start, as before.
    assert!(FleetClock::monotonic().now().as_nanos() < 10_000_000_000);
}

/// The error is one line with the flag, the path and the fix, and never the secret.
fn refused(file: &std::path::Path) -> String {
    let err: SecretFileError = FleetSecrets::load(file).expect_err("must be refused");
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "one line: {msg}");
    assert!(msg.starts_with(&format!("{FLAG} {}: ", file.display())), "{msg}");
    msg
}

#[test]
fn missing_file_is_refused_with_how_to_make_one() {
    let path = std::env::temp_dir().join(format!("xdptcp-secret-{}-absent", std::process::id()));
    let msg = refused(&path);
    assert!(msg.contains("no such file") && msg.contains("head -c 48 /dev/urandom"), "{msg}");
}

#[test]
fn group_or_other_access_is_refused_with_chmod() {
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o700, 0o666] {
        let f = TempFile::new(&format!("mode{mode:o}"), &secret_bytes(4), mode);
        let msg = refused(&f.0);
        assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
        assert!(msg.contains(&format!("chmod 600 {}", f.0.display())), "{msg}");
    }
    for mode in [0o600, 0o400] {
        let f = TempFile::new(&format!("ok{mode:o}"), &secret_bytes(4), mode);
        assert!(FleetSecrets::load(&f.0).is_ok(), "mode {mode:o} accepted");
    }
}

#[test]
fn wrong_size_or_format_is_refused_without_showing_the_contents() {
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", Vec::new(), "holds 0 bytes"),
        ("short", vec![0x5a; 47], "holds 47 bytes"),
        ("long", vec![0x5a; 64], "holds 64 bytes"),
        ("hex95", vec![b'c'; 95], "holds 95 hex digits"),
        ("zero", vec![0; 48], "all zero bytes"),
    ];
    for (name, bytes, what) in cases {
        let f = TempFile::new(name, &bytes, 0o600);
        let msg = refused(&f.0);
        assert!(msg.contains(what) && msg.contains("head -c 48 /dev/urandom"), "{msg}");
        assert!(!msg.contains("5a") && !msg.contains("ccc"), "no contents in: {msg}");
    }
    let dir = std::env::temp_dir();
    assert!(refused(&dir).contains("not a regular file"));
}

#[test]
fn hex_file_equals_raw_file_and_debug_is_redacted() {
    let raw = TempFile::new("raw", &secret_bytes(5), 0o600);
    let hex: String = secret_bytes(5).iter().map(|b| format!("{b:02x}")).collect();
    let text = TempFile::new("hex", format!("{hex}\n").as_bytes(), 0o600);
    let a = FleetSecrets::load(&raw.0).unwrap();
    assert_eq!(a, FleetSecrets::load(&text.0).unwrap());
    let shown = format!("{a:?} {:?}", a.shard_secrets(1));
    assert_eq!(shown, "FleetSecrets { .. } Secrets { .. }");
}
