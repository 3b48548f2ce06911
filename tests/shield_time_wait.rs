//! The SYN shield meets TIME-WAIT, sans-IO: the XDP program answered a SYN that reuses a tuple
//! the server holds in TIME-WAIT (it cannot see TIME-WAIT), so the server's first segment of
//! the new incarnation is the cookie ACK. The shard takes it as the reusing SYN would have been
//! taken (RFC 6191: newer timestamps or a higher sequence number), ends TIME-WAIT and makes the
//! connection; an ACK that would not have been a valid reuse, or the old incarnation's own ACK,
//! leaves TIME-WAIT alone.

mod common;

use common::*;
use xdptcp::tcp::secrets::{ts_clock, ts_offset};
use xdptcp::tcp::syncookie::{self, CookieOptions};
use xdptcp::tcp::{Config, FourTuple, Secrets, State};
use xdptcp::time::Duration;
use xdptcp::wire::{SeqNum, TcpOptions};

const SERVER_SEED: u64 = 2;

/// Client a.40000 and server b.80 (timestamps on), closed by the server first: b holds the
/// tuple in TIME-WAIT. Returns (client, server, last client TSval, TIME-WAIT's RCV.NXT,
/// TIME-WAIT's SND.NXT).
fn server_in_time_wait() -> (Host, Host, u32, u32, u32) {
    let mut a = Host::new("198.18.0.2", Config::default(), 1);
    let mut b = Host::new("198.18.0.1", Config::default(), SERVER_SEED);
    let (ida, idb) = handshake(&mut a, &mut b);
    b.close(idb);
    let b_fin = Seg::parse(&b.take_one());
    a.deliver(&craft_of(&b, &b_fin));
    let _ = a.take();
    a.close(ida);
    let a_fin = a.take_one();
    let a_fin_seg = Seg::parse(&a_fin);
    b.deliver(&a_fin);
    let _ = b.take();
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    let tsval = a_fin_seg.options.timestamps.expect("timestamps").0;
    (a, b, tsval, a_fin_seg.seq.wrapping_add(1), b_fin.seq.wrapping_add(1))
}

/// The segment `s` again, as bytes (the client's delivery of what the server sent).
fn craft_of(_from: &Host, s: &Seg) -> Vec<u8> {
    craft_opts(s.src, s.dst, s.seq, s.ack, s.flags, &s.payload, s.options, s.window)
}

/// The client's final ACK of a handshake the XDP program answered: the program's cookie for
/// client ISN `isn` at the server's clock, echoed, with data.
fn cookie_ack(a: &Host, b: &Host, isn: u32, tsval: u32) -> Vec<u8> {
    let secrets = Secrets::from_seed(SERVER_SEED);
    let t = FourTuple::new(b.addr(80), a.addr(40000));
    let (cookie, _) = syncookie::generate(&secrets.cookie_key, &t, SeqNum(isn), 1460, syncookie::counter(b.now));
    let o = CookieOptions { window_scale: Some(7), sack_permitted: true, ecn: false };
    let ts_now = ts_clock(b.now).wrapping_add(ts_offset(&secrets.ts_key, &t));
    let tsecr = syncookie::encode_ts_options(ts_now, o);
    let options = TcpOptions { timestamps: Some((tsval, tsecr)), ..TcpOptions::default() };
    craft_opts(a.addr(40000), b.addr(80), isn.wrapping_add(1), cookie.0.wrapping_add(1), ACK, b"hello", options, 502)
}

/// A newer TSval (and a lower ISN: the timestamps decide): TIME-WAIT ends, the connection is
/// made from the cookie, and the data it carried is there.
#[test]
fn cookie_ack_with_newer_timestamps_ends_time_wait() {
    let (a, mut b, tsval, rcv_nxt, _) = server_in_time_wait();
    b.advance(Duration::from_secs(1));
    b.shard.note_cookies_out(b.now);
    b.deliver(&cookie_ack(&a, &b, rcv_nxt.wrapping_sub(1_000_000), tsval.wrapping_add(1000)));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::Established));
    assert_eq!(b.shard.time_wait_len(), 0);
    let c = b.shard.counters();
    assert_eq!((c.tcp_ext_tw_recycled, c.tcp_ext_syncookies_recv, c.tcp_passive_opens), (1, 1, 2));
    let id = b.shard.accept(80).expect("on the accept queue");
    assert_eq!(b.recv_all(id), b"hello");
    let info = b.shard.info(id).unwrap();
    assert!(info.ts_ok && info.sack_ok);
    assert_eq!(info.snd_wscale, 7);
}

/// An older TSval (PAWS would refuse the SYN) and a lower sequence number: not a reuse TIME-WAIT
/// allows, so the ACK is TIME-WAIT's to judge and the entry stays.
#[test]
fn cookie_ack_that_would_not_reuse_leaves_time_wait() {
    let (a, mut b, tsval, rcv_nxt, _) = server_in_time_wait();
    b.advance(Duration::from_secs(1));
    b.shard.note_cookies_out(b.now);
    b.deliver(&cookie_ack(&a, &b, rcv_nxt.wrapping_sub(1_000_000), tsval.wrapping_sub(1000)));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    assert_eq!(b.shard.counters().tcp_passive_opens, 1);
}

/// The old incarnation's ACK of our FIN (SEG.SEQ = RCV.NXT, SEG.ACK = SND.NXT), with a newer
/// TSval: never taken for a cookie (not even checked), TIME-WAIT stays.
#[test]
fn old_incarnations_ack_is_not_a_cookie() {
    let (a, mut b, tsval, rcv_nxt, snd_nxt) = server_in_time_wait();
    b.advance(Duration::from_secs(1));
    b.shard.note_cookies_out(b.now);
    let options = TcpOptions { timestamps: Some((tsval.wrapping_add(10), 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(a.addr(40000), b.addr(80), rcv_nxt, snd_nxt, ACK, &[], options, 502));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    assert_eq!(b.shard.counters().tcp_ext_syncookies_failed, 0);
}

/// Not told that cookies are out (no shield, no overflow): a cookie ACK in TIME-WAIT is not
/// checked at all.
#[test]
fn without_cookies_out_time_wait_judges() {
    let (a, mut b, tsval, rcv_nxt, _) = server_in_time_wait();
    b.advance(Duration::from_secs(1));
    b.deliver(&cookie_ack(&a, &b, rcv_nxt.wrapping_sub(1_000_000), tsval.wrapping_add(1000)));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    assert_eq!(b.shard.counters().tcp_ext_syncookies_failed, 0);
}
