//! SYN+RST and SYN+FIN: dropped where only a listener could take them, judged bit by bit
//! where a connection exists.
//!
//! No TCP opens a connection with either, and Linux drops both in LISTEN
//! (`tcp_rcv_state_process`). A connection that exists reads them as RFC 9293 §3.10.7 reads
//! every segment, one control bit at a time and the RST first:
//! * SYN-SENT (§3.10.7.3, Linux `tcp_rcv_synsent_state_process`): an acceptable ACK with RST
//!   refuses the connection whatever SYN says; a SYN-ACK's FIN does not stop the connection
//!   from being made ("If there are other controls or text in the segment, continue
//!   processing at the sixth step"), and the FIN is then processed (CLOSE-WAIT).
//! * A passive SYN-RECEIVED (a SYN-queue entry; §3.10.7.4, Linux `tcp_check_req`): SYN+RST at
//!   RCV.NXT returns the entry to LISTEN; SYN+FIN is a SYN in the window, which does the same
//!   and resets the peer.
//! * Synchronized states (§3.10.7.4, Linux `tcp_validate_incoming`): the RST check (second)
//!   comes before the SYN check (fourth), so SYN+RST at RCV.NXT resets; SYN+FIN is a SYN in
//!   a synchronized state and draws the RFC 5961 §4 challenge ACK.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{CloseReason, Event, State};
use xdptcp::wire::TcpFlags;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

fn server() -> SocketAddr {
    "198.18.0.1:80".parse().unwrap()
}

/// ESTABLISHED, <SEQ=RCV.NXT><CTL=SYN,RST>: step two resets before step four sees the SYN.
#[test]
fn established_syn_rst_at_rcv_nxt_resets() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, TcpFlags::SYN | TcpFlags::RST, b""));
    assert_eq!(b.state(id), Some(State::Closed));
    assert!(b.take_events().contains(&Event::Closed(id, CloseReason::Reset)));
    assert_eq!(b.shard.counters().tcp_in_errs, 0, "a segment the connection judged is no error");
}

/// ESTABLISHED, SYN+RST in the window but not at RCV.NXT: the RFC 5961 §3.2 challenge ACK.
#[test]
fn established_syn_rst_in_the_window_draws_a_challenge_ack() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(100), snd, TcpFlags::SYN | TcpFlags::RST, b""));
    assert_eq!(b.state(id), Some(State::Established));
    let c = Seg::parse(&b.take_one());
    assert!(c.is(ACK) && (c.seq, c.ack) == (snd, rcv), "{c:?}");
    assert_eq!(b.shard.counters().tcp_ext_tcp_challenge_ack, 1);
}

/// ESTABLISHED, SYN+FIN: a SYN in a synchronized state; <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
/// (Linux `syn_challenge`, TcpExtTCPSYNChallenge), and the FIN is not taken.
#[test]
fn established_syn_fin_draws_a_challenge_ack() {
    let (mut b, id, snd, rcv) = established_from(peer());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, TcpFlags::SYN | TcpFlags::FIN, b""));
    assert_eq!(b.state(id), Some(State::Established));
    let c = Seg::parse(&b.take_one());
    assert!(c.is(ACK) && (c.seq, c.ack) == (snd, rcv), "{c:?}");
    assert_eq!(b.shard.counters().tcp_ext_tcp_syn_challenge, 1);
}

/// ```text
///     TCP A (us)                                           TCP B (peer)
/// 1.  SYN-SENT    --> <SEQ=100><CTL=SYN>                   --> SYN-RECEIVED
/// 2.  ESTABLISHED <-- <SEQ=300><ACK=101><CTL=SYN,ACK,FIN>  <-- CLOSE-WAIT... (its FIN at 301)
///     CLOSE-WAIT
/// 3.              --> <SEQ=101><ACK=302><CTL=ACK>          -->
/// ```
#[test]
fn syn_sent_syn_ack_fin_establishes_then_takes_the_fin() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 22);
    let id = a.connect(40000, server());
    let syn = Seg::parse(&a.take_one());
    let isn = 5_000_000u32;
    a.deliver(&craft(server(), a.addr(40000), isn, syn.seq.wrapping_add(1), synack() | FIN, b""));
    assert_eq!(a.state(id), Some(State::CloseWait));
    let ev = a.take_events();
    assert!(ev.contains(&Event::Connected(id)) && ev.contains(&Event::PeerClosed(id)), "{ev:?}");
    let ack = Seg::parse(&a.take_one());
    assert!(ack.is(ACK), "{ack:?}");
    assert_eq!((ack.seq, ack.ack), (syn.seq.wrapping_add(1), isn.wrapping_add(2)));
}

/// SYN-SENT, <ACK=ISS+1><CTL=SYN,RST,ACK>: "If the ACK was acceptable, then signal to the user
/// 'error: connection reset', drop the segment, enter CLOSED state" (§3.10.7.3, second).
#[test]
fn syn_sent_syn_rst_with_an_acceptable_ack_refuses_the_connection() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 23);
    let id = a.connect(40000, server());
    let syn = Seg::parse(&a.take_one());
    a.deliver(&craft(server(), a.addr(40000), 0, syn.seq.wrapping_add(1), synack() | RST, b""));
    assert_eq!(a.state(id), Some(State::Closed));
    assert!(a.take_events().contains(&Event::Closed(id, CloseReason::Refused)));
    a.expect_nothing();
}

/// SYN-SENT, SYN+RST with an unacceptable ACK: "If the RST bit is set, discard the segment".
#[test]
fn syn_sent_syn_rst_with_a_bad_ack_is_dropped() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 24);
    let id = a.connect(40000, server());
    let syn = Seg::parse(&a.take_one());
    a.deliver(&craft(server(), a.addr(40000), 0, syn.seq.wrapping_add(9), synack() | RST, b""));
    assert_eq!(a.state(id), Some(State::SynSent));
    a.expect_nothing();
}

/// LISTEN keeps dropping both (Linux `tcp_rcv_state_process`): no SYN-ACK, no SYN-queue entry,
/// no RST, counted in TcpInErrs.
#[test]
fn listen_drops_syn_fin_and_syn_rst() {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 25);
    b.shard.listen(80, None, 16).unwrap();
    for (i, flags) in [TcpFlags::SYN | TcpFlags::FIN, TcpFlags::SYN | TcpFlags::RST].into_iter().enumerate() {
        b.deliver(&craft(peer(), b.addr(80), 1000, 0, flags, b""));
        b.expect_nothing();
        assert_eq!(b.state_of(80, peer()), None, "{flags:?}");
        assert_eq!(b.shard.counters().tcp_in_errs, i as u64 + 1);
    }
}

/// A passive SYN-RECEIVED (a SYN-queue entry): SYN with the handshake's SYN-ACK sent, and the
/// peer's ISN `isn`. Returns the server host and our SYN-ACK's sequence number.
fn syn_received(seed: u64, isn: u32) -> (Host, u32) {
    let mut b = Host::new("198.18.0.1", plain_cfg(), seed);
    b.shard.listen(80, None, 16).unwrap();
    b.deliver(&craft(peer(), b.addr(80), isn, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    assert!(sa.is(synack()), "{sa:?}");
    assert_eq!(b.shard.syn_queue_len(), 1);
    (b, sa.seq)
}

/// SYN-RECEIVED, SYN+RST at RCV.NXT: the RST check comes first (§3.10.7.4 second) and the
/// entry goes back to LISTEN (Linux `tcp_check_req`, embryonic reset). The handshake's ACK that
/// follows finds no entry and is reset, as Linux does.
#[test]
fn syn_received_syn_rst_at_rcv_nxt_removes_the_entry() {
    let isn = 0x5000_0000u32;
    let (mut b, iss) = syn_received(26, isn);
    b.deliver(&craft(peer(), b.addr(80), isn.wrapping_add(1), 0, TcpFlags::SYN | TcpFlags::RST, b""));
    b.expect_nothing();
    assert_eq!(b.shard.syn_queue_len(), 0, "the entry is gone");
    b.deliver(&craft(peer(), b.addr(80), isn.wrapping_add(1), iss.wrapping_add(1), ACK, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(RST) && r.seq == iss.wrapping_add(1), "{r:?}");
    assert_eq!(b.state_of(80, peer()), None, "no connection from the ACK");
}

/// SYN-RECEIVED, SYN+FIN repeating the SYN's number: not a retransmitted SYN (which would get
/// the SYN-ACK again) but a SYN in the window (§3.10.7.4 fourth): the entry goes and the peer
/// gets a RST, as from Linux's `tcp_check_req`.
#[test]
fn syn_received_syn_fin_resets_the_entry() {
    let isn = 0x6000_0000u32;
    let (mut b, _) = syn_received(27, isn);
    b.deliver(&craft(peer(), b.addr(80), isn, 0, TcpFlags::SYN | TcpFlags::FIN, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.flags.rst() && !r.flags.syn(), "a RST, not the SYN-ACK again: {r:?}");
    assert_eq!(b.shard.syn_queue_len(), 0);
}
