//! LISTEN, the SYN queue, the accept queue and SYN cookies (RFC 9293 §3.10.7.2, RFC 4987).

mod common;
use common::*;
use xdptcp::tcp::{Config, DropReason, State, SynCookies, Verdict};
use xdptcp::time::Duration;
use xdptcp::wire::{TcpFlags, TcpOptions};

fn server(cfg: Config) -> Host {
    let mut b = Host::new("198.18.0.1", cfg, 2);
    b.shard.listen(80, None, 4).unwrap();
    b
}

fn client_addr(port: u16) -> std::net::SocketAddr {
    format!("198.18.0.2:{port}").parse().unwrap()
}

fn linux_syn_options(tsval: u32) -> TcpOptions {
    TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some((tsval, 0)),
        ..TcpOptions::default()
    }
}

/// RFC 9293 §3.10.7.1: no listener: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> for a segment
/// without ACK, <SEQ=SEG.ACK><CTL=RST> for one with ACK, nothing for a RST.
#[test]
fn closed_port_resets_per_rfc9293_3_10_7_1() {
    let mut b = server(plain_cfg());
    let c = client_addr(5000);
    b.deliver(&craft(c, b.addr(81), 1000, 0, SYN, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(rstack()));
    assert_eq!((r.seq, r.ack), (0, 1001));
    b.deliver(&craft(c, b.addr(81), 1000, 0, SYN | FIN, b"")); // impossible flags: dropped
    b.expect_nothing();
    b.deliver(&craft(c, b.addr(81), 1000, 0, TcpFlags::NONE, b"abc"));
    let r = Seg::parse(&b.take_one());
    assert_eq!((r.seq, r.ack), (0, 1003));
    b.deliver(&craft(c, b.addr(81), 1000, 5555, ACK, b"data"));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(RST));
    assert_eq!(r.seq, 5555);
    assert_eq!(b.deliver(&craft(c, b.addr(81), 1000, 5555, RST, b"")), Verdict::Drop(DropReason::RstNoConnection));
    b.expect_nothing();
    assert_eq!(b.shard.counters().tcp_out_rsts, 3);
}

/// RFC 9293 §3.10.7.2: in LISTEN a RST is ignored, and an ACK is answered <SEQ=SEG.ACK><CTL=RST>.
#[test]
fn listen_ignores_rst_and_resets_ack() {
    let mut b = server(plain_cfg());
    let c = client_addr(5000);
    assert_eq!(b.deliver(&craft(c, b.addr(80), 1, 2, RST, b"")), Verdict::Drop(DropReason::RstNoConnection));
    b.expect_nothing();
    b.deliver(&craft(c, b.addr(80), 1, 777, ACK, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(RST));
    assert_eq!(r.seq, 777);
}

/// The SYN-ACK echoes only the options the SYN offered (RFC 7323 §2.2, §3.2) and the window of
/// a SYN-ACK is never scaled.
#[test]
fn synack_echoes_offered_options() {
    let mut b = server(Config::default());
    let c = client_addr(5000);
    b.deliver(&craft_opts(c, b.addr(80), 100, 0, SYN, b"", linux_syn_options(4242), 64240));
    let sa = Seg::parse(&b.take_one());
    assert!(sa.is(synack()));
    assert_eq!(sa.options.mss, Some(1460));
    assert!(sa.options.window_scale.is_some());
    assert_eq!(sa.options.timestamps.map(|t| t.1), Some(4242));
    b.deliver(&craft(client_addr(5001), b.addr(80), 100, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    assert_eq!(sa.options.window_scale, None);
    assert_eq!(sa.options.timestamps, None);
    assert!(!sa.options.sack_permitted);
}

/// A retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again (Linux `tcp_check_req`); the SYN-ACK
/// itself is retransmitted `tcp_synack_retries` times with doubling intervals, then the entry goes.
#[test]
fn synack_retransmission_and_retry_limit() {
    let cfg = Config { synack_retries: 2, timestamps: false, ..Config::default() };
    let mut b = server(cfg);
    let c = client_addr(5000);
    let syn = craft(c, b.addr(80), 100, 0, SYN, b"");
    b.deliver(&syn);
    let first = Seg::parse(&b.take_one());
    b.deliver(&syn);
    let again = Seg::parse(&b.take_one());
    assert_eq!(first, again);
    let t0 = b.now;
    b.run_until(t0 + Duration::from_millis(999));
    b.expect_nothing();
    b.run_until(t0 + Duration::from_secs(1));
    assert_eq!(Seg::parse(&b.take_one()), first, "1st retransmission after 1 s");
    b.run_until(t0 + Duration::from_millis(2999));
    b.expect_nothing();
    b.run_until(t0 + Duration::from_secs(3));
    assert_eq!(Seg::parse(&b.take_one()), first, "2nd retransmission 2 s later");
    assert_eq!(b.state_of(80, c), Some(State::SynReceived));
    b.run_until(t0 + Duration::from_secs(7));
    b.expect_nothing();
    assert_eq!(b.state_of(80, c), None, "entry dropped after tcp_synack_retries");
    assert_eq!(b.shard.syn_queue_len(), 0);
}

/// RFC 4987 §3.6, Linux `tcp_syncookies=1`: while the SYN queue has room, SYNs get queue entries;
/// once it is full, SYNs are answered with cookies, and a cookie ACK completes a connection.
#[test]
fn cookies_switch_on_when_syn_queue_overflows() {
    let mut b = server(plain_cfg()); // backlog 4
    let mut synacks = Vec::new();
    for port in 0..6u16 {
        b.deliver(&craft(client_addr(6000 + port), b.addr(80), 1000, 0, SYN, b""));
        synacks.push(Seg::parse(&b.take_one()));
    }
    assert_eq!(b.shard.syn_queue_len(), 4, "queue bounded by the backlog");
    let c = b.shard.counters();
    assert_eq!((c.tcp_ext_syncookies_sent, c.tcp_ext_tcp_req_q_full_do_cookies), (2, 2));
    // The 6th client completes with its cookie: no queue entry needed.
    let sa = &synacks[5];
    b.deliver(&craft(client_addr(6005), b.addr(80), 1001, sa.seq.wrapping_add(1), ACK, b"GET"));
    assert_eq!(b.shard.counters().tcp_ext_syncookies_recv, 1);
    let id = b.shard.accept(80).expect("cookie connection accepted");
    assert_eq!(b.state(id), Some(State::Established));
    assert_eq!(b.recv_all(id), b"GET");
    // The cookie carried the MSS: table entry not above the SYN's (none: 536).
    assert_eq!(b.shard.info(id).unwrap().smss, 536);
}

/// `tcp_syncookies=0`: a full SYN queue drops SYNs (TcpExtTCPReqQFullDrop, ListenDrops).
#[test]
fn cookies_off_drops_syns_when_queue_full() {
    let cfg = Config { syncookies: SynCookies::Off, timestamps: false, ..Config::default() };
    let mut b = server(cfg);
    for port in 0..6u16 {
        b.deliver(&craft(client_addr(6000 + port), b.addr(80), 1000, 0, SYN, b""));
    }
    assert_eq!(b.take().len(), 4);
    let c = b.shard.counters();
    assert_eq!((c.tcp_ext_tcp_req_q_full_drop, c.tcp_ext_listen_drops, c.tcp_ext_syncookies_sent), (2, 2, 0));
}

/// `tcp_syncookies=2`: every SYN gets a cookie; the SYN queue stays empty however many arrive,
/// so memory stays flat under a flood.
#[test]
fn cookies_always_keep_memory_flat() {
    let cfg = Config { syncookies: SynCookies::Always, ..Config::default() };
    let mut b = server(cfg);
    for i in 0..10_000u32 {
        let src = std::net::SocketAddr::new(
            std::net::IpAddr::V4((0xc612_0000u32 | (i % 65_000)).into()),
            1024 + (i % 60_000) as u16,
        );
        b.shard.handle_ip(b.now, &craft(src, b.addr(80), i, 0, SYN, b""), &mut b.out);
        b.out.clear();
    }
    assert_eq!(b.shard.syn_queue_len(), 0);
    assert_eq!(b.shard.conn_count(), 0);
    assert_eq!(b.shard.timer_heap_len(), 0);
    assert_eq!(b.shard.counters().tcp_ext_syncookies_sent, 10_000);
}

/// A forged cookie (wrong value) and a stale one (older than the age limit) never create a
/// connection; each is counted and answered as LISTEN answers a stray ACK, with a RST.
#[test]
fn forged_and_stale_cookies_are_refused() {
    let cfg = Config { syncookies: SynCookies::Always, timestamps: false, ..Config::default() };
    let mut b = server(cfg);
    let c = client_addr(7000);
    b.deliver(&craft(c, b.addr(80), 5000, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    // Forged: one off.
    let v = b.deliver(&craft(c, b.addr(80), 5001, sa.seq.wrapping_add(2), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::CookieInvalid));
    assert!(Seg::parse(&b.take_one()).is(RST));
    // Wrong client ISN for the same cookie.
    let v = b.deliver(&craft(c, b.addr(80), 5002, sa.seq.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::CookieInvalid));
    b.take();
    // Stale: more than two 64 s periods later.
    b.now = b.now + Duration::from_secs(200);
    let v = b.deliver(&craft(c, b.addr(80), 5001, sa.seq.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::CookieExpired));
    b.take();
    assert_eq!(b.shard.conn_count(), 0);
    assert_eq!(b.shard.counters().tcp_ext_syncookies_failed, 3);
    assert!(b.shard.accept(80).is_none());
}

/// The cookie's timestamp bits carry window scale and SACK-permitted (Linux
/// `cookie_init_timestamp`): the connection made from the final ACK uses what the SYN asked for.
#[test]
fn cookie_carries_wscale_and_sack_in_timestamp() {
    let cfg = Config { syncookies: SynCookies::Always, sack: true, ..Config::default() };
    let mut b = server(cfg);
    let c = client_addr(7001);
    b.deliver(&craft_opts(c, b.addr(80), 9000, 0, SYN, b"", linux_syn_options(111), 64240));
    let sa = Seg::parse(&b.take_one());
    let (tsval, tsecr) = sa.options.timestamps.unwrap();
    assert_eq!(tsecr, 111);
    assert_eq!(tsval & 0xf, 7, "window scale 7 in the low bits");
    assert_ne!(tsval & 0x10, 0, "SACK-permitted bit");
    let ack_opts = TcpOptions { timestamps: Some((112, tsval)), ..TcpOptions::default() };
    b.deliver(&craft_opts(c, b.addr(80), 9001, sa.seq.wrapping_add(1), ACK, b"", ack_opts, 502));
    let id = b.shard.accept(80).unwrap();
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.snd_wscale, 7);
    assert_eq!(info.snd_wnd, 502 << 7);
    assert!(info.sack_ok && info.ts_ok);
    assert_eq!(info.smss, 1460 - 12);
}

/// Linux default (`tcp_abort_on_overflow=0`): a final ACK that finds the accept queue full is
/// dropped and counted; the SYN-ACK retransmission later lets the client ACK again.
#[test]
fn accept_queue_overflow_drops_final_ack() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 2);
    b.shard.listen(80, None, 2).unwrap();
    let (c1, c2, c3) = (client_addr(8001), client_addr(8002), client_addr(8003));
    let synack_for = |b: &mut Host, c| {
        b.deliver(&craft(c, b.addr(80), 100, 0, SYN, b""));
        Seg::parse(&b.take_one()).seq
    };
    let s1 = synack_for(&mut b, c1);
    let s2 = synack_for(&mut b, c2);
    b.deliver(&craft(c1, b.addr(80), 101, s1.wrapping_add(1), ACK, b""));
    let s3 = synack_for(&mut b, c3);
    b.deliver(&craft(c2, b.addr(80), 101, s2.wrapping_add(1), ACK, b""));
    // Accept queue full (2 of 2): c3's final ACK is dropped, its SYN-RECEIVED entry kept.
    let v = b.deliver(&craft(c3, b.addr(80), 101, s3.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::AcceptQueueFull));
    assert_eq!(b.shard.counters().tcp_ext_listen_overflows, 1);
    assert_eq!(b.state_of(80, c3), Some(State::SynReceived));
    b.expect_nothing();
    // The application accepts one; the SYN-ACK retransmission makes the client ACK again.
    assert!(b.shard.accept(80).is_some());
    let t0 = b.now;
    b.run_until(t0 + Duration::from_secs(1));
    assert!(Seg::parse(&b.take_one()).is(synack()));
    b.deliver(&craft(c3, b.addr(80), 101, s3.wrapping_add(1), ACK, b""));
    assert_eq!(b.state_of(80, c3), Some(State::Established));
}

/// `tcp_abort_on_overflow=1`: the final ACK of an overflowing accept queue is answered with a RST.
#[test]
fn accept_queue_overflow_with_abort_resets() {
    let cfg = Config { abort_on_overflow: true, timestamps: false, ..Config::default() };
    let mut b = Host::new("198.18.0.1", cfg, 2);
    b.shard.listen(80, None, 1).unwrap();
    let c1 = client_addr(9001);
    let c2 = client_addr(9002);
    b.deliver(&craft(c1, b.addr(80), 100, 0, SYN, b""));
    let sa1 = Seg::parse(&b.take_one());
    b.deliver(&craft(c2, b.addr(80), 100, 0, SYN, b""));
    let sa2 = Seg::parse(&b.take_one());
    b.deliver(&craft(c1, b.addr(80), 101, sa1.seq.wrapping_add(1), ACK, b""));
    let v = b.deliver(&craft(c2, b.addr(80), 101, sa2.seq.wrapping_add(1), ACK, b""));
    assert_eq!(v, Verdict::Drop(DropReason::AcceptQueueFull));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(RST));
    assert_eq!(r.seq, sa2.seq.wrapping_add(1));
    assert_eq!(b.state_of(80, c2), None);
}

/// RFC 9293 §3.10.7.4 with RFC 5961 §3 in passive SYN-RECEIVED: an exact RST returns to LISTEN;
/// an in-window one draws a challenge ACK.
#[test]
fn syn_received_rst_handling() {
    let mut b = server(plain_cfg());
    let c = client_addr(9100);
    b.deliver(&craft(c, b.addr(80), 100, 0, SYN, b""));
    b.take();
    b.deliver(&craft(c, b.addr(80), 150, 0, RST, b""));
    let ch = Seg::parse(&b.take_one());
    assert!(ch.is(ACK));
    assert_eq!(ch.ack, 101);
    assert_eq!(b.state_of(80, c), Some(State::SynReceived));
    b.deliver(&craft(c, b.addr(80), 101, 0, RST, b""));
    b.expect_nothing();
    assert_eq!(b.state_of(80, c), None);
}

/// An ACK of the wrong number in SYN-RECEIVED: <SEQ=SEG.ACK><CTL=RST>, the entry stays.
#[test]
fn syn_received_bad_ack_is_reset() {
    let mut b = server(plain_cfg());
    let c = client_addr(9200);
    b.deliver(&craft(c, b.addr(80), 100, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    b.deliver(&craft(c, b.addr(80), 101, sa.seq.wrapping_add(5), ACK, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(RST));
    assert_eq!(r.seq, sa.seq.wrapping_add(5));
    assert_eq!(b.state_of(80, c), Some(State::SynReceived));
}
