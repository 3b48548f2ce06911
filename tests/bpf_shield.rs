//! The SYN shield of the steering program (`bpf/shield.h`) through BPF_PROG_TEST_RUN, on
//! crafted frames: no NIC, but the real verifier and the real program.
//!
//! The reference for every byte of a SYN-ACK is the stack itself: the same SYN fed to a
//! `Shard` with the same configuration and secrets, cookies always on, at the instant the
//! program ran (the engine clock is CLOCK_MONOTONIC plus the offset the test wrote, read just
//! before and just after the run; the reply must equal the stack's at one of the two). The
//! Ethernet header is checked against the SYN's (addresses swapped), and the reply is parsed
//! back with every checksum verified. Then the validator: the client's final ACK, built from
//! the program's SYN-ACK, makes a connection in a fresh shard (with the options the cookie
//! carried), and the same ACK with the cookie altered, the tuple changed, the key rotated away
//! or the cookie aged does not.
//!
//! Needs root (CAP_BPF); without it the tests skip loudly, except under CI=true.
#![cfg(feature = "xdp")]

mod bed;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bed::*;
use xdptcp::engine::shield::shield_config_raw;
use xdptcp::io::xdp::abi::{ShieldKeyRaw, SHIELD_KEY_PERIOD_NS};
use xdptcp::io::xdp::{AddressMode, SteerConfig, SteerStats, Steering, XskStat};
use xdptcp::tcp::{self, syncookie, FourTuple, Secrets, Shard, SynCookies};
use xdptcp::time::{Duration, Instant};
use xdptcp::wire::{
    checksum, ip_proto, ChecksumCaps, EtherType, EthernetRepr, Ipv4Packet, Ipv4Repr, Ipv6Repr, SeqNum, TcpFlags,
    TcpOptions, TcpRepr,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const PORT: u16 = 8080;
const CLIENT_PORT: u16 = 40000;
/// The engine clock the tests set: 5000.3 s, inside key epoch 8 (4801-5401 s with the grace)
/// and cookie counter 78 (4992-5056 s), with room for the tests to run.
const ENGINE_NOW_NS: u64 = 5_000_300_000_000;
const EPOCH: u64 = 8;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------------
// The rig: the program with the shield configured, and the stack's configuration and keys.

struct Rig {
    steer: Steering,
    cfg: tcp::Config,
    secrets: Secrets,
    /// Engine clock = CLOCK_MONOTONIC + offset.
    offset: i64,
}

fn steer_config() -> SteerConfig {
    SteerConfig {
        listen: vec![SocketAddr::new(IpAddr::V4(IP4_STACK), PORT), SocketAddr::new(IpAddr::V6(IP6_STACK), PORT)],
        client_ports: None,
        owned: vec![IpAddr::V4(IP4_STACK), IpAddr::V6(IP6_STACK)],
        address_mode: AddressMode::Shared,
    }
}

impl Rig {
    /// The shield `on` (or off) with the stack configuration `cfg`, the engine clock at
    /// `engine_now_ns`, and the key of `epoch` written.
    fn at(cfg: tcp::Config, on: bool, engine_now_ns: u64, epoch: u64) -> Rig {
        let steer = Steering::load(&steer_config()).expect("load the steering program (verifier)");
        let secrets = Secrets::from_seed(0x5eed);
        let offset = engine_now_ns as i64 - monotonic_ns() as i64;
        steer.set_shield(&shield_config_raw(&cfg, &secrets.ts_key, offset, on)).expect("shield settings");
        steer.set_shield_key(&ShieldKeyRaw { epoch, key: secrets.cookie_key }).expect("shield key");
        Rig { steer, cfg, secrets, offset }
    }

    fn new(cfg: tcp::Config) -> Rig {
        Rig::at(cfg, true, ENGINE_NOW_NS, EPOCH)
    }

    fn engine_now(&self) -> Instant {
        Instant::from_nanos((monotonic_ns() as i64 + self.offset) as u64)
    }

    /// Runs `frame`: verdict, output frame, counter deltas, and the engine clock just before
    /// and just after.
    fn run(&self, frame: &[u8]) -> Run {
        let before = self.steer.stats().expect("counters");
        let t0 = self.engine_now();
        let (verdict, out) = self.steer.test_run_frame(frame).expect("BPF_PROG_TEST_RUN");
        let t1 = self.engine_now();
        let after = self.steer.stats().expect("counters");
        Run { verdict, out, before, after, t0, t1 }
    }

    /// The stack's answer to `ip` (an IP packet) at `now`, cookies always on.
    fn stack_answer(&self, now: Instant, ip: &[u8]) -> Vec<Vec<u8>> {
        let mut shard =
            Shard::new(tcp::Config { syncookies: SynCookies::Always, ..self.cfg.clone() }, self.secrets.clone());
        shard.listen(PORT, None, 128).expect("listen");
        let mut tx: Vec<Vec<u8>> = Vec::new();
        shard.handle_ip(now, ip, &mut tx);
        tx
    }
}

struct Run {
    verdict: u32,
    out: Vec<u8>,
    before: SteerStats,
    after: SteerStats,
    t0: Instant,
    t1: Instant,
}

impl Run {
    fn delta(&self, s: XskStat) -> u64 {
        self.after.get(s) - self.before.get(s)
    }
}

// ---------------------------------------------------------------------------------------
// Frames

/// Ethernet (peer to stack) + IP + `tcp`, checksums filled; `pad` zero bytes of link padding.
fn frame(v6: bool, src: IpAddr, tcp: &TcpRepr<'_>, pad: usize) -> Vec<u8> {
    let tl = tcp.buffer_len();
    let (ip_len, ethertype) = if v6 { (40, EtherType::Ipv6) } else { (20, EtherType::Ipv4) };
    let eth = EthernetRepr { src: MAC_PEER, dst: MAC_STACK, vlan: None, ethertype };
    let mut f = vec![0u8; 14 + ip_len + tl + pad];
    eth.emit(&mut f);
    let ps = match (src, v6) {
        (IpAddr::V4(s), false) => {
            let ip = Ipv4Repr {
                src: s,
                dst: IP4_STACK,
                protocol: ip_proto::TCP,
                payload_len: tl,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 7,
                dont_frag: true,
            };
            ip.emit(&mut f[14..], ChecksumCaps::default());
            checksum::pseudo_header_v4(s, IP4_STACK, ip_proto::TCP, tl as u16)
        }
        (IpAddr::V6(s), true) => {
            let ip = Ipv6Repr {
                src: s,
                dst: IP6_STACK,
                next_header: ip_proto::TCP,
                payload_len: tl,
                hop_limit: 64,
                traffic_class: 0,
                upper_offset: 40,
            };
            ip.emit(&mut f[14..]);
            checksum::pseudo_header_v6(s, IP6_STACK, ip_proto::TCP, tl as u32)
        }
        _ => panic!("family mismatch"),
    };
    tcp.emit(&mut f[14 + ip_len..14 + ip_len + tl], Some(ps));
    f
}

fn seg(flags: TcpFlags, options: TcpOptions, payload: &'static [u8]) -> TcpRepr<'static> {
    TcpRepr {
        src_port: CLIENT_PORT,
        dst_port: PORT,
        seq: SeqNum(0x1234_5678),
        ack: SeqNum(0),
        flags,
        window: 64240,
        urgent: 0,
        options,
        payload,
    }
}

fn linux_options() -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((0xa1b2_c3d4, 0)),
        ..TcpOptions::default()
    }
}

fn syn4(options: TcpOptions) -> Vec<u8> {
    frame(false, IpAddr::V4(IP4_PEER), &seg(TcpFlags::SYN, options, &[]), 0)
}

fn syn6(options: TcpOptions) -> Vec<u8> {
    frame(true, IpAddr::V6(IP6_PEER), &seg(TcpFlags::SYN, options, &[]), 0)
}

/// The IP packet of a frame (no link header, no link padding).
fn ip_of(f: &[u8]) -> &[u8] {
    let ip = &f[14..];
    let len = if ip[0] >> 4 == 4 {
        usize::from(u16::from_be_bytes([ip[2], ip[3]]))
    } else {
        40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))
    };
    &ip[..len]
}

/// A TCP header with raw option bytes (`opts`, a multiple of 4), checksums right.
fn syn4_raw_options(opts: &[u8]) -> Vec<u8> {
    let mut f = syn4(TcpOptions::default());
    let tcp_at = 34;
    let mut tcp = f[tcp_at..tcp_at + 20].to_vec();
    tcp.extend_from_slice(opts);
    tcp[12] = ((tcp.len() / 4) as u8) << 4;
    f.truncate(tcp_at);
    f.extend_from_slice(&tcp);
    let total = (20 + tcp.len()) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    refill_tcp_checksum4(&mut f);
    f
}

fn refill_tcp_checksum4(f: &mut [u8]) {
    let ip = Ipv4Packet::new_unchecked(&f[14..34]);
    let (s, d) = (ip.src_addr(), ip.dst_addr());
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let tcp = &mut f[34..14 + total];
    tcp[16..18].fill(0);
    let ps = checksum::pseudo_header_v4(s, d, ip_proto::TCP, tcp.len() as u16);
    let c = checksum::finish(checksum::sum(tcp) + ps);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

// ---------------------------------------------------------------------------------------
// Assertions

/// Asserts the program answered `f` with exactly the stack's cookie SYN-ACK; returns it.
fn assert_answered(rig: &Rig, f: &[u8], what: &str) -> Vec<u8> {
    let r = rig.run(f);
    assert_eq!(r.verdict, XDP_TX, "{what}: verdict");
    assert_eq!(r.delta(XskStat::ShieldSynack), 1, "{what}: shield_synack");
    assert_eq!(r.delta(XskStat::Syn), 1, "{what}: syn");
    assert_eq!(r.delta(XskStat::Redirected) + r.delta(XskStat::NoSocket), 0, "{what}: not steered");
    // Ethernet: the SYN's addresses swapped, the EtherType kept.
    assert_eq!(&r.out[0..6], &f[6..12], "{what}: destination MAC is the SYN's source");
    assert_eq!(&r.out[6..12], &f[0..6], "{what}: source MAC is the SYN's destination");
    assert_eq!(&r.out[12..14], &f[12..14], "{what}: EtherType");
    // The rest: the stack's SYN-ACK at the instant the program ran.
    let ip = ip_of(f);
    let want: Vec<Vec<u8>> =
        [r.t0, r.t1].iter().map(|&t| rig.stack_answer(t, ip).pop().expect("stack answers")).collect();
    assert!(
        r.out[14..] == want[0][..] || r.out[14..] == want[1][..],
        "{what}: the program's SYN-ACK differs from the stack's\n program: {:02x?}\n stack:   {:02x?}",
        &r.out[14..],
        want[0]
    );
    // And independently of the stack's emitter: both checksums verify, it answers the SYN.
    let (src, dst, synack) = tcp::parse_ip_tcp(&r.out[14..]).expect("the reply parses, checksums verified");
    let (syn_src, syn_dst, syn) = tcp::parse_ip_tcp(ip).expect("the SYN parses");
    assert_eq!((src, dst), (syn_dst, syn_src), "{what}: addresses swapped");
    assert_eq!((synack.src_port, synack.dst_port), (syn.dst_port, syn.src_port), "{what}: ports swapped");
    assert_eq!(synack.flags, TcpFlags::SYN | TcpFlags::ACK, "{what}: flags");
    assert_eq!(synack.ack, syn.seq.add(1), "{what}: ack = seq + 1");
    assert!(synack.payload.is_empty(), "{what}: no payload");
    r.out
}

/// Asserts the program left `f` to the stack untouched (steered: XDP_PASS without a socket).
fn assert_steered(rig: &Rig, f: &[u8], what: &str) -> Run {
    let r = rig.run(f);
    assert_eq!(r.verdict, XDP_PASS, "{what}: verdict (steered, no socket in xsks_map)");
    assert_eq!(r.out, f, "{what}: frame untouched");
    assert_eq!(r.delta(XskStat::ShieldSynack), 0, "{what}: not answered");
    r
}

/// Asserts the program dropped `f`, counting `why`.
fn assert_dropped(rig: &Rig, f: &[u8], why: XskStat, what: &str) {
    let r = rig.run(f);
    assert_eq!(r.verdict, XDP_DROP, "{what}: verdict");
    assert_eq!(r.delta(why), 1, "{what}: {why:?}");
    assert_eq!(r.delta(XskStat::ShieldSynack), 0, "{what}: not answered");
}

// ---------------------------------------------------------------------------------------
// The validator

/// The client's final ACK for `synack_frame` (the program's reply to `syn_frame`), as a
/// Linux client sends it: timestamps echoed when the SYN-ACK carried them.
fn final_ack(syn_frame: &[u8], synack_frame: &[u8]) -> Vec<u8> {
    let (_, _, syn) = tcp::parse_ip_tcp(ip_of(syn_frame)).unwrap();
    let (src, _, sa) = tcp::parse_ip_tcp(&synack_frame[14..]).unwrap();
    let options = TcpOptions {
        timestamps: sa.options.timestamps.map(|(v, _)| (syn.options.timestamps.map_or(0, |t| t.0) + 1, v)),
        ..TcpOptions::default()
    };
    let ack = TcpRepr {
        seq: syn.seq.add(1),
        ack: sa.seq.add(1),
        flags: TcpFlags::ACK,
        options,
        window: 502,
        ..seg(TcpFlags::ACK, options, &[])
    };
    let client = match src {
        IpAddr::V4(_) => IpAddr::V4(IP4_PEER),
        IpAddr::V6(_) => IpAddr::V6(IP6_PEER),
    };
    frame(src.is_ipv6(), client, &ack, 0)
}

/// A shard as an engine core runs it (cookies on overflow), told that cookies are out.
fn core_shard(rig: &Rig, now: Instant) -> Shard {
    let mut s = Shard::new(rig.cfg.clone(), rig.secrets.clone());
    s.listen(PORT, None, 128).unwrap();
    s.note_cookies_out(now);
    s
}

fn tuple_of(ack_frame: &[u8]) -> FourTuple {
    let (src, dst, a) = tcp::parse_ip_tcp(ip_of(ack_frame)).unwrap();
    FourTuple::new(SocketAddr::new(dst, a.dst_port), SocketAddr::new(src, a.src_port))
}

/// Feeds `ack` to a core's shard at `now`: the connection made, if any.
fn validate(shard: &mut Shard, now: Instant, ack: &[u8]) -> Option<tcp::TcbInfo> {
    let mut tx: Vec<Vec<u8>> = Vec::new();
    shard.handle_ip(now, ip_of(ack), &mut tx);
    shard.find(&tuple_of(ack)).and_then(|id| shard.info(id))
}

// ---------------------------------------------------------------------------------------
// Tests

/// IPv4 and IPv6, with Linux's SYN options and with none: exactly the stack's SYN-ACK; the
/// final ACK makes a connection with what the cookie carried.
#[test]
fn answers_syns_with_the_stacks_cookie_synack() {
    if !privileged("answers_syns_with_the_stacks_cookie_synack") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    for (what, syn) in [
        ("v4 linux options", syn4(linux_options())),
        ("v4 no options", syn4(TcpOptions::default())),
        ("v6 linux options", syn6(linux_options())),
        ("v6 no options", syn6(TcpOptions::default())),
    ] {
        let reply = assert_answered(&rig, &syn, what);
        let ack = final_ack(&syn, &reply);
        let now = rig.engine_now() + Duration::from_millis(1);
        let mut shard = core_shard(&rig, now);
        let info = validate(&mut shard, now, &ack).unwrap_or_else(|| panic!("{what}: no connection"));
        assert_eq!(shard.counters().tcp_ext_syncookies_recv, 1, "{what}");
        let linux = what.contains("linux");
        assert_eq!(info.ts_ok, linux, "{what}: timestamps");
        assert_eq!(info.sack_ok, linux, "{what}: SACK");
        assert_eq!(info.snd_wscale, if linux { 7 } else { 0 }, "{what}: peer's window scale");
        // The peer's MSS (at most ours), rounded down to the cookie table, less the timestamp
        // option. A SYN without one: RFC 9293 §3.7.1's default, 536 on IPv4, 1220 on IPv6
        // (1200 in the table).
        let v6 = what.starts_with("v6");
        let ours = if v6 { 1440 } else { 1460 };
        let default = if v6 { 1200 } else { 536 };
        assert_eq!(info.smss, if linux { ours - 12 } else { default }, "{what}: MSS");
    }
}

/// Option mixes: each answered exactly as the stack answers it.
#[test]
fn option_mixes_match_the_stack() {
    if !privileged("option_mixes_match_the_stack") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    let ts = Some((77, 0));
    let cases = [
        ("MSS only", TcpOptions { mss: Some(1400), ..TcpOptions::default() }),
        ("timestamps only", TcpOptions { timestamps: ts, ..TcpOptions::default() }),
        ("TS + WS, no SACK", TcpOptions { timestamps: ts, window_scale: Some(3), ..TcpOptions::default() }),
        ("TS + SACK, no WS", TcpOptions { timestamps: ts, sack_permitted: true, ..TcpOptions::default() }),
        ("WS 15 is clamped", TcpOptions { timestamps: ts, window_scale: Some(15), ..TcpOptions::default() }),
        ("SACK and WS without TS", TcpOptions { sack_permitted: true, window_scale: Some(7), ..TcpOptions::default() }),
        ("jumbo MSS", TcpOptions { mss: Some(9000), timestamps: ts, ..TcpOptions::default() }),
        ("tiny MSS", TcpOptions { mss: Some(100), ..TcpOptions::default() }),
    ];
    for (what, o) in cases {
        assert_answered(&rig, &syn4(o), &format!("v4 {what}"));
        assert_answered(&rig, &syn6(o), &format!("v6 {what}"));
    }
    // ECN setup SYN (ECE and CWR, RFC 3168 §6.1.1): the cookie's ECN bit.
    let ecn = frame(
        false,
        IpAddr::V4(IP4_PEER),
        &seg(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR, linux_options(), &[]),
        0,
    );
    assert_answered(&rig, &ecn, "ECN SYN");
    // Raw options: NOPs, an unknown kind, a repeated MSS (the last wins), EOL and what follows.
    let raw = [1, 1, 30, 4, 9, 9, 2, 4, 0x05, 0xb4, 2, 4, 0x04, 0xd8, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 0, 2, 4, 0];
    assert_answered(&rig, &syn4_raw_options(&raw), "raw option list");
    // Link padding after the segment (a minimum-size Ethernet frame): cut from the reply.
    let padded = frame(false, IpAddr::V4(IP4_PEER), &seg(TcpFlags::SYN, TcpOptions::default(), &[]), 6);
    let out = assert_answered(&rig, &padded, "padded SYN");
    assert_eq!(out.len(), 14 + 20 + 24, "padding gone");
}

/// The stack's TCP settings shape the SYN-ACK the same way in both.
#[test]
fn stack_settings_shape_the_synack() {
    if !privileged("stack_settings_shape_the_synack") {
        return;
    }
    let base = tcp::Config::default();
    for (what, cfg) in [
        ("timestamps off", tcp::Config { timestamps: false, ..base.clone() }),
        ("SACK off", tcp::Config { sack: false, ..base.clone() }),
        ("window scaling off", tcp::Config { window_scaling: false, ..base.clone() }),
        (
            "small buffer, MSS, TTL",
            tcp::Config { rcv_buf: 32 * 1024, mss_v4: 1400, mss_v6: 1380, ttl: 33, ..base.clone() },
        ),
        ("large buffer", tcp::Config { rcv_buf: 16 << 20, ..base.clone() }),
    ] {
        let rig = Rig::new(cfg);
        assert_answered(&rig, &syn4(linux_options()), &format!("v4 {what}"));
        assert_answered(&rig, &syn6(linux_options()), &format!("v6 {what}"));
    }
}

/// The cookie's MSS, read back by the validator (syncookie::check): the table entry at or
/// below the smaller of the peer's MSS and ours.
#[test]
fn cookie_mss_follows_the_table() {
    if !privileged("cookie_mss_follows_the_table") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    for mss in [1u16, 535, 536, 1199, 1200, 1299, 1300, 1360, 1400, 1439, 1440, 1459, 1460, 8960, 65535] {
        let syn = syn4(TcpOptions { mss: Some(mss), ..TcpOptions::default() });
        let r = rig.run(&syn);
        assert_eq!(r.verdict, XDP_TX, "MSS {mss}");
        let (_, _, sa) = tcp::parse_ip_tcp(&r.out[14..]).unwrap();
        let t = FourTuple::new(
            SocketAddr::new(IpAddr::V4(IP4_STACK), PORT),
            SocketAddr::new(IpAddr::V4(IP4_PEER), CLIENT_PORT),
        );
        let keys = [&rig.secrets.cookie_key, &rig.secrets.cookie_key_prev];
        let got = syncookie::check(keys, &t, sa.seq.add(1), SeqNum(0x1234_5678), syncookie::counter(r.t1));
        let want = *syncookie::MSS_TABLE.iter().rfind(|&&m| m <= mss.min(1460)).unwrap_or(&536);
        assert_eq!(got, Ok(want), "MSS {mss}");
    }
}

/// A valid ACK makes a connection; the same ACK with the cookie altered, from another port,
/// after the key rotated twice, or once the cookie aged out, does not. Without being told that
/// cookies are out (OnOverflow, no overflow), a core does not check cookies at all.
#[test]
fn validator_rejects_altered_and_stale_cookies() {
    if !privileged("validator_rejects_altered_and_stale_cookies") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    let syn = syn4(linux_options());
    let reply = assert_answered(&rig, &syn, "SYN");
    let ack = final_ack(&syn, &reply);
    let now = rig.engine_now() + Duration::from_millis(2);
    let mut s = core_shard(&rig, now);
    assert!(validate(&mut s, now, &ack).is_some(), "the real ACK");

    // ack field at 34 + 8; re-checksum after each change. (The MSS index bits are not in the
    // hash, in the stack's cookies as in Linux's: the peer chose its MSS anyway.)
    let altered = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut a = ack.clone();
        f(&mut a);
        refill_tcp_checksum4(&mut a);
        a
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ack + 1", altered(&|a| a[45] = a[45].wrapping_add(1))),
        ("a hash bit flipped", altered(&|a| a[44] ^= 0x10)),
        ("the counter changed", altered(&|a| a[42] ^= 0x08)),
        ("another client ISN", altered(&|a| a[41] = a[41].wrapping_add(1))),
        ("another client port", altered(&|a| a[35] ^= 1)),
    ];
    for (what, a) in &cases {
        let mut s = core_shard(&rig, now);
        assert!(validate(&mut s, now, a).is_none(), "{what}: connection made");
        assert_eq!(s.counters().tcp_ext_syncookies_failed, 1, "{what}: counted as a failed cookie");
    }
    // The key rotated twice: neither the current nor the previous key made it.
    let mut s = core_shard(&rig, now);
    s.rotate_cookie_key([1; 16]);
    s.rotate_cookie_key([2; 16]);
    assert!(validate(&mut s, now, &ack).is_none(), "rotated key");
    // Once: the previous key still makes it.
    let mut s = core_shard(&rig, now);
    s.rotate_cookie_key([1; 16]);
    assert!(validate(&mut s, now, &ack).is_some(), "previous key");
    // Aged: two counter periods later.
    let later = now + Duration::from_secs(2 * syncookie::COUNTER_PERIOD_SECS);
    let mut s = core_shard(&rig, later);
    assert!(validate(&mut s, later, &ack).is_none(), "stale cookie");
    // Not told that cookies are out: the ACK is not checked (and reset).
    let mut s = Shard::new(rig.cfg.clone(), rig.secrets.clone());
    s.listen(PORT, None, 128).unwrap();
    assert!(validate(&mut s, now, &ack).is_none(), "unchecked");
}

/// Bad checksums and segments the stack refuses are dropped, counted, never answered.
#[test]
fn refuses_what_the_stack_refuses() {
    if !privileged("refuses_what_the_stack_refuses") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    let mut f = syn4(linux_options());
    f[24] ^= 0x01; // IPv4 header checksum
    assert_dropped(&rig, &f, XskStat::ShieldDropChecksum, "v4 bad IP checksum");
    let mut f = syn4(linux_options());
    f[34 + 16] ^= 0x01; // TCP checksum
    assert_dropped(&rig, &f, XskStat::ShieldDropChecksum, "v4 bad TCP checksum");
    let mut f = syn4(linux_options());
    f[34 + 4] ^= 0x80; // sequence number changed, checksum not
    assert_dropped(&rig, &f, XskStat::ShieldDropChecksum, "v4 corrupted");
    let mut f = syn6(linux_options());
    f[54 + 16] ^= 0x01;
    assert_dropped(&rig, &f, XskStat::ShieldDropChecksum, "v6 bad TCP checksum");
    let mut f = syn6(TcpOptions::default());
    f[22] ^= 0x01; // source address
    assert_dropped(&rig, &f, XskStat::ShieldDropChecksum, "v6 pseudo-header");

    // An illegal option length ends the list; the SYN is answered with the options before it,
    // as the stack answers it (Linux `tcp_parse_options`, RFC 9293 MUST-68).
    for (what, opts) in [
        ("option length 1", vec![2, 1, 0, 0]),
        ("option past the header", vec![1, 1, 8, 10]),
        ("kind without length", vec![1, 1, 1, 2]),
        ("MSS then a zero length", vec![2, 4, 0x05, 0xb4, 1, 1, 254, 0]),
    ] {
        assert_answered(&rig, &syn4_raw_options(&opts), what);
    }
    // Data offset below 5.
    let mut f = syn4(TcpOptions::default());
    f[34 + 12] = 4 << 4;
    refill_tcp_checksum4(&mut f);
    assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, "data offset 4");
    // A header longer than the segment.
    let mut f = syn4(TcpOptions::default());
    f[34 + 12] = 6 << 4;
    f.extend_from_slice(&[1, 1, 1, 1]);
    refill_tcp_checksum4(&mut f);
    assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, "header past the segment");
    // The IP length says more than the frame holds.
    let mut f = syn4(TcpOptions::default());
    f[17] += 4;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, "truncated");
    // Sources no TCP peer has, and source port 0 (checksums right).
    for src in [Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::BROADCAST, Ipv4Addr::UNSPECIFIED] {
        let f = frame(false, IpAddr::V4(src), &seg(TcpFlags::SYN, linux_options(), &[]), 0);
        assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, &format!("source {src}"));
    }
    for src in [Ipv6Addr::UNSPECIFIED, "ff02::1".parse().unwrap()] {
        let f = frame(true, IpAddr::V6(src), &seg(TcpFlags::SYN, linux_options(), &[]), 0);
        assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, &format!("source {src}"));
    }
    let f = frame(false, IpAddr::V4(IP4_PEER), &TcpRepr { src_port: 0, ..seg(TcpFlags::SYN, linux_options(), &[]) }, 0);
    assert_dropped(&rig, &f, XskStat::ShieldDropMalformed, "source port 0");
}

/// What the shield leaves to the stack, untouched: other ports, anything but a pure SYN, SYNs
/// with data, VLAN tags or IP options; and everything while the shield is off.
#[test]
fn leaves_the_rest_to_the_stack() {
    if !privileged("leaves_the_rest_to_the_stack") {
        return;
    }
    let rig = Rig::new(tcp::Config::default());
    let f = frame(
        false,
        IpAddr::V4(IP4_PEER),
        &TcpRepr { dst_port: PORT + 1, ..seg(TcpFlags::SYN, linux_options(), &[]) },
        0,
    );
    let r = rig.run(&f);
    assert_eq!(
        (r.verdict, r.delta(XskStat::ShieldSynack), r.delta(XskStat::Syn)),
        (XDP_PASS, 0, 0),
        "not a listening port"
    );
    assert_eq!(r.out, f, "untouched");
    for (what, flags) in [
        ("ACK", TcpFlags::ACK),
        ("SYN-ACK", TcpFlags::SYN | TcpFlags::ACK),
        ("RST", TcpFlags::RST),
        ("SYN+RST", TcpFlags::SYN | TcpFlags::RST),
        ("SYN+FIN", TcpFlags::SYN | TcpFlags::FIN),
        ("FIN", TcpFlags::FIN | TcpFlags::ACK),
    ] {
        for v6 in [false, true] {
            let src = if v6 { IpAddr::V6(IP6_PEER) } else { IpAddr::V4(IP4_PEER) };
            let r = assert_steered(&rig, &frame(v6, src, &seg(flags, linux_options(), &[]), 0), what);
            assert_eq!(r.delta(XskStat::Syn), 0, "{what}: not a pure SYN");
            assert_eq!(r.delta(XskStat::NoSocket), 1, "{what}: steered");
        }
    }
    let r = assert_steered(
        &rig,
        &frame(false, IpAddr::V4(IP4_PEER), &seg(TcpFlags::SYN, linux_options(), b"data"), 0),
        "SYN with data",
    );
    assert_eq!(r.delta(XskStat::ShieldToStack), 1, "SYN with data: to the stack");
    assert_steered(&rig, &syn4_with_ip_options(IP4_STACK, PORT), "IPv4 options");
    assert_steered(
        &rig,
        &tcp4_frame(Some(7), IP4_PEER, IP4_STACK, &seg(TcpFlags::SYN, linux_options(), &[])),
        "VLAN tag",
    );

    let off = Rig::at(tcp::Config::default(), false, ENGINE_NOW_NS, EPOCH);
    let r = assert_steered(&off, &syn4(linux_options()), "shield off");
    assert_eq!(r.delta(XskStat::Syn), 1, "shield off: the SYN is still counted (auto watches the rate)");
    assert_eq!(r.delta(XskStat::NoSocket), 1, "shield off: steered");
}

/// The key in use: an epoch's key from SHIELD_KEY_GRACE after the epoch starts (the cores
/// switch at the start), the previous one until then; with no key for the epoch, the SYN goes
/// to the stack.
#[test]
fn key_epochs_and_grace() {
    if !privileged("key_epochs_and_grace") {
        return;
    }
    let boundary = 10 * SHIELD_KEY_PERIOD_NS; // epoch 10 starts here for the cores
                                              // Half a second in: the program still uses epoch 9's key.
    let rig = Rig::at(tcp::Config::default(), true, boundary + 500_000_000, 10);
    let r = assert_steered(&rig, &syn4(linux_options()), "only the next epoch's key");
    assert_eq!(r.delta(XskStat::ShieldToStack), 1, "no key: to the stack");
    let rig = Rig::at(tcp::Config::default(), true, boundary + 500_000_000, 9);
    assert_answered(&rig, &syn4(linux_options()), "previous epoch's key in the grace");
    // Two seconds in: epoch 10's key.
    let rig = Rig::at(tcp::Config::default(), true, boundary + 2_000_000_000, 10);
    assert_answered(&rig, &syn4(linux_options()), "this epoch's key after the grace");
    let rig = Rig::at(tcp::Config::default(), true, boundary + 2_000_000_000, 9);
    assert_steered(&rig, &syn4(linux_options()), "a stale key is never used");
}
