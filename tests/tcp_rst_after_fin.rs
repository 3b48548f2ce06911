//! A RST that carries the sequence number of the peer's FIN (RCV.NXT - 1).
//!
//! Once our ACK of its FIN is out, a peer that resets the connection may number the RST from
//! the last sequence number it sent, the FIN's: RCV.NXT - 1, just below the window, where RFC
//! 5961 §3.2 would drop it silently and the connection would linger in CLOSE-WAIT or LAST-ACK
//! until its timers ran out. Linux (`tcp_validate_incoming` -> `tcp_reset_check`) accepts it
//! in CLOSE-WAIT, LAST-ACK and CLOSING; so do we. Anywhere else, and at any other number, the
//! RFC 5961 rules stand.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{CloseReason, ConnId, Event, State};
use xdptcp::time::Duration;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// CLOSE-WAIT: the peer's FIN is in and acknowledged. Returns RCV.NXT = FIN + 1.
fn close_wait() -> (Host, ConnId, u32, u32) {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, finack(), b""));
    let a = Seg::parse(&b.take_one());
    assert_eq!(a.ack, rcv.wrapping_add(1));
    assert_eq!(b.state(id), Some(State::CloseWait));
    b.take_events();
    (b, id, snd, rcv.wrapping_add(1))
}

/// ```text
///     TCP A (peer)                                  TCP B (us)
/// 1.  FIN-WAIT-1 --> <SEQ=100><ACK=300><CTL=FIN,ACK> --> CLOSE-WAIT
/// 2.  FIN-WAIT-2 <-- <SEQ=300><ACK=101><CTL=ACK>     <-- CLOSE-WAIT
/// 3.  (reset)    --> <SEQ=100><CTL=RST,ACK>          --> CLOSED
/// ```
#[test]
fn close_wait_rst_at_the_fins_sequence_number_resets() {
    let (mut b, id, snd, rcv) = close_wait();
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, rstack(), b""));
    assert_eq!(b.state(id), Some(State::Closed));
    assert!(b.take_events().contains(&Event::Closed(id, CloseReason::Reset)));
    b.expect_nothing();
}

/// ```text
/// 3.  FIN-WAIT-2 <-- <SEQ=300><ACK=101><CTL=FIN,ACK> <-- LAST-ACK
/// 4.  (reset)    --> <SEQ=100><CTL=RST>              --> CLOSED
/// ```
#[test]
fn last_ack_rst_at_the_fins_sequence_number_closes() {
    let (mut b, id, snd, rcv) = close_wait();
    b.shard.shutdown(b.now, id, &mut b.out).unwrap();
    b.flush();
    assert!(Seg::parse(&b.take_one()).flags.fin());
    assert_eq!(b.state(id), Some(State::LastAck));
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, RST, b""));
    assert_eq!(b.state(id), Some(State::Closed));
    b.expect_nothing();
}

/// CLOSING (simultaneous close): our FIN and the peer's crossed; a RST at the peer's FIN
/// number ends it too.
#[test]
fn closing_rst_at_the_fins_sequence_number_closes() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.shard.shutdown(b.now, id, &mut b.out).unwrap();
    b.flush();
    assert!(Seg::parse(&b.take_one()).flags.fin());
    // The peer's FIN, not acknowledging ours.
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, finack(), b""));
    b.take();
    assert_eq!(b.state(id), Some(State::Closing));
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, RST, b""));
    assert_eq!(b.state(id), Some(State::Closed));
}

/// The exception is RCV.NXT - 1 after a FIN only. In ESTABLISHED the same number is below the
/// window (RFC 5961 §3.2: drop silently), and in CLOSE-WAIT RCV.NXT - 2 is too.
#[test]
fn rst_below_the_window_is_still_dropped() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, rstack(), b""));
    assert_eq!(b.state(id), Some(State::Established));
    b.expect_nothing();
    let (mut b, id, snd, rcv) = close_wait();
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(2), snd, rstack(), b""));
    assert_eq!(b.state(id), Some(State::CloseWait));
    b.expect_nothing();
    // In the window but not exact: still the RFC 5961 §3.2 challenge ACK.
    b.advance(Duration::from_secs(1));
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(1), snd, rstack(), b""));
    assert_eq!(b.state(id), Some(State::CloseWait));
    let c = Seg::parse(&b.take_one());
    assert!(c.is(ACK) && c.ack == rcv, "{c:?}");
}
