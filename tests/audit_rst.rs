//! Audit: resets and flag combinations a Linux peer (or a middlebox) sends, answered as Linux
//! answers them.
//!
//! * Linux `tcp_validate_incoming` / `tcp_reset_check`: after the peer's FIN (CLOSE-WAIT,
//!   CLOSING, LAST-ACK) a RST whose sequence number is RCV.NXT - 1 (the FIN's own number, as
//!   several stacks send it) resets the connection.
//! * `TcpFlags::is_impossible` drops SYN+RST and SYN+FIN before any state is looked up, citing
//!   "Linux drops both in `tcp_rcv_state_process`". Linux does so only in LISTEN. In
//!   SYN-SENT (`tcp_rcv_synsent_state_process`) an acceptable ACK with RST resets the attempt
//!   whatever SYN says, and a SYN-ACK's FIN does not stop the connection from being
//!   established (RFC 9293 §3.10.7.3: "If there are other controls or text in the segment,
//!   continue processing at the sixth step"); in synchronized states (`tcp_validate_incoming`)
//!   the RST check (step 2) comes before the SYN check (step 4), so SYN+RST at RCV.NXT resets,
//!   and SYN+FIN draws the RFC 5961 §4 challenge ACK like any SYN.
//! * Linux `tcp_keepalive_timer`: when the keepalive probes run out the connection is reset
//!   (`tcp_send_active_reset`, SK_RST_REASON_TCP_KEEPALIVE_TIMEOUT), not dropped silently.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{CloseReason, Config, ConnId, Event, State};
use xdptcp::time::Duration;
use xdptcp::wire::{TcpFlags, TcpOptions};

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// A server connection from crafted segments (no timestamps): (host, id, SND.NXT, RCV.NXT).
fn established(cfg: Config) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg, 21);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 0x1234_0000u32;
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let snd = sa.seq.wrapping_add(1);
    let rcv = isn.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, ACK, b""));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, snd, rcv)
}

/// CLOSE-WAIT: the peer's FIN is in (RCV.NXT = FIN + 1).
fn close_wait() -> (Host, ConnId, u32, u32) {
    let (mut b, id, snd, rcv) = established(plain_cfg());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, finack(), b""));
    let a = Seg::parse(&b.take_one());
    assert_eq!(a.ack, rcv.wrapping_add(1));
    assert_eq!(b.state(id), Some(State::CloseWait));
    b.take_events();
    (b, id, snd, rcv.wrapping_add(1))
}

#[test]
fn rst_at_rcv_nxt_minus_one_resets_close_wait() {
    let (mut b, id, snd, rcv) = close_wait();
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, rstack(), b""));
    assert_eq!(b.state(id), Some(State::Closed), "Linux tcp_reset_check: RST at RCV.NXT-1 in CLOSE-WAIT resets");
}

#[test]
fn rst_at_rcv_nxt_minus_one_resets_last_ack() {
    let (mut b, id, snd, rcv) = close_wait();
    b.shard.shutdown(b.now, id, &mut b.out).unwrap();
    b.flush();
    let fin = Seg::parse(&b.take_one());
    assert!(fin.flags.fin());
    assert_eq!(b.state(id), Some(State::LastAck));
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, RST, b""));
    assert_eq!(b.state(id), Some(State::Closed), "Linux tcp_reset_check: RST at RCV.NXT-1 in LAST-ACK resets");
}

/// SYN+RST at exactly RCV.NXT in ESTABLISHED: Linux's step 2 resets the connection.
#[test]
fn syn_rst_at_rcv_nxt_resets_established() {
    let (mut b, id, snd, rcv) = established(plain_cfg());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, TcpFlags::SYN | TcpFlags::RST, b""));
    assert_eq!(b.state(id), Some(State::Closed), "Linux: the RST check precedes the SYN check");
    assert!(b.take_events().contains(&Event::Closed(id, CloseReason::Reset)));
}

/// SYN+FIN in ESTABLISHED: a SYN in a synchronized state, RFC 5961 §4 challenge ACK (Linux
/// `syn_challenge`, TcpExtTCPSYNChallenge).
#[test]
fn syn_fin_in_established_draws_a_challenge_ack() {
    let (mut b, id, snd, rcv) = established(plain_cfg());
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, TcpFlags::SYN | TcpFlags::FIN, b""));
    let segs = b.take_segs();
    assert_eq!(b.state(id), Some(State::Established));
    assert!(
        segs.iter().any(|s| s.is(ACK) && s.seq == snd && s.ack == rcv),
        "challenge ACK <SEQ=SND.NXT><ACK=RCV.NXT> expected, got {segs:?}"
    );
}

/// SYN-SENT: a SYN-ACK that acknowledges our SYN and carries FIN. RFC 9293 §3.10.7.3 enters
/// ESTABLISHED, sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and goes on to the FIN (CLOSE-WAIT);
/// Linux establishes and ACKs the SYN. Either way the connection is made and the SYN acked.
#[test]
fn syn_ack_fin_in_syn_sent_establishes() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 22);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    let isn = 5_000_000u32;
    a.deliver(&craft(server, a.addr(40000), isn, syn.seq.wrapping_add(1), synack() | FIN, b""));
    let segs = a.take_segs();
    let st = a.state(id);
    assert!(
        matches!(st, Some(State::Established) | Some(State::CloseWait)),
        "state {st:?}; the segment was dropped"
    );
    assert!(segs.iter().any(|s| s.flags.ack() && !s.flags.syn() && s.ack.wrapping_sub(isn) >= 1), "{segs:?}");
}

/// SYN-SENT: an acceptable ACK with RST (and SYN): "If the ACK was acceptable then signal to
/// the user 'error: connection reset'... enter CLOSED" (RFC 9293 §3.10.7.3); Linux
/// `tcp_rcv_synsent_state_process` checks RST right after the ACK and calls `tcp_reset`.
#[test]
fn syn_rst_ack_in_syn_sent_refuses_the_connection() {
    let mut a = Host::new("198.18.0.2", plain_cfg(), 23);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    a.deliver(&craft(server, a.addr(40000), 0, syn.seq.wrapping_add(1), synack() | RST, b""));
    assert_eq!(a.state(id), Some(State::Closed), "the attempt goes on retransmitting its SYN");
}

/// Keepalive probes unanswered: Linux resets the connection (a RST goes to the peer, which
/// may be back and must not be left holding a half-open connection).
#[test]
fn keepalive_timeout_sends_a_reset() {
    let cfg = Config {
        keepalive: true,
        keepalive_time: Duration::from_secs(10),
        keepalive_intvl: Duration::from_secs(1),
        keepalive_probes: 3,
        ..plain_cfg()
    };
    let (mut b, id, _, _) = established(cfg);
    b.take();
    let mut seen = Vec::new();
    for _ in 0..200 {
        b.advance(Duration::from_millis(100));
        b.flush();
        seen.extend(b.take_segs());
        if b.state(id) == Some(State::Closed) {
            break;
        }
    }
    assert_eq!(b.state(id), Some(State::Closed), "keepalive gave up");
    let probes = seen.iter().filter(|s| s.is(ACK)).count();
    assert_eq!(probes, 3, "{seen:?}");
    assert!(seen.iter().any(|s| s.flags.rst()), "no RST when keepalive gave up: {seen:?}");
}
