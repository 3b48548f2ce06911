//! RFC 5961 (blind in-window attacks), table-driven, on an ESTABLISHED connection; and the
//! per-connection rate limit of challenge ACKs (never a global counter: CVE-2016-5696).

mod common;
use common::*;
use xdptcp::tcp::{CloseReason, ConnId, Event, State};
use xdptcp::time::Duration;
use xdptcp::wire::TcpFlags;

struct Est {
    b: Host,
    id: ConnId,
    peer: std::net::SocketAddr,
    /// Peer's next sequence number (our RCV.NXT) and our SND.NXT.
    rcv_nxt: u32,
    snd_nxt: u32,
}

/// A server connection established from crafted segments (window 65535, no options).
fn est() -> Est {
    let mut b = Host::new("198.18.0.1", plain_cfg(), 5);
    b.shard.listen(80, None, 16).unwrap();
    let peer: std::net::SocketAddr = "198.18.0.2:40000".parse().unwrap();
    b.deliver(&craft(peer, b.addr(80), 1000, 0, SYN, b""));
    let sa = Seg::parse(&b.take_one());
    b.deliver(&craft(peer, b.addr(80), 1001, sa.seq.wrapping_add(1), ACK, b""));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    Est { b, id, peer, rcv_nxt: 1001, snd_nxt: sa.seq.wrapping_add(1) }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Abort,
    ChallengeAck,
    SilentDrop,
    Accept,
}

/// Each row: what arrives (sequence offset from RCV.NXT, ACK offset from SND.NXT, flags) and
/// what RFC 5961 requires.
#[test]
fn rfc5961_table() {
    // Our receive window: the peer's SYN offered no window scale, so the window field says at
    // most 65535 and that is RCV.WND (the buffer behind it is larger).
    let w = 65_535i64;
    let rows: &[(&str, i64, i64, TcpFlags, Expect)] = &[
        // §3.2: RST
        ("RST exactly at RCV.NXT aborts", 0, 0, RST, Expect::Abort),
        ("RST in window, not exact: challenge ACK", 100, 0, RST, Expect::ChallengeAck),
        ("RST at the far edge of the window: challenge ACK", w - 1, 0, RST, Expect::ChallengeAck),
        ("RST beyond the window: dropped", w, 0, RST, Expect::SilentDrop),
        ("RST before RCV.NXT: dropped", -1, 0, RST, Expect::SilentDrop),
        ("RST+ACK exact aborts", 0, 0, RST | ACK, Expect::Abort),
        // §4.2: SYN in a synchronized state, wherever it lands
        ("SYN in window: challenge ACK", 0, 0, SYN, Expect::ChallengeAck),
        ("SYN out of window: challenge ACK", 10_000_000, 0, SYN, Expect::ChallengeAck),
        ("SYN+ACK in window: challenge ACK", 5, 0, synack(), Expect::ChallengeAck),
        // §5.2: ACK acceptability (SND.UNA - MAX.SND.WND =< SEG.ACK =< SND.NXT)
        ("ACK of data never sent: dropped with an ACK", 0, 10, ACK, Expect::ChallengeAck),
        ("ACK too old (below SND.UNA - MAX.SND.WND): dropped with an ACK", 0, -70_000, ACK, Expect::ChallengeAck),
        // Linux bounds the range below SND.UNA by the bytes ever acknowledged too (`tcp_ack`:
        // "do not accept ACK for bytes we never sent"); nothing was sent yet here.
        ("ACK below anything ever sent, within MAX.SND.WND: dropped with an ACK", 0, -1000, ACK, Expect::ChallengeAck),
        ("ACK exact: accepted", 0, 0, ACK, Expect::Accept),
    ];
    for &(what, dseq, dack, flags, expect) in rows {
        let mut e = est();
        let seq = (e.rcv_nxt as i64 + dseq) as u32;
        let ack = (e.snd_nxt as i64 + dack) as u32;
        e.b.deliver(&craft(e.peer, e.b.addr(80), seq, ack, flags, b""));
        let out = e.b.take_segs();
        let state = e.b.state(e.id);
        match expect {
            Expect::Abort => {
                assert!(out.is_empty(), "{what}: {out:?}");
                assert_eq!(state, Some(State::Closed), "{what}");
                assert!(e.b.take_events().contains(&Event::Closed(e.id, CloseReason::Reset)), "{what}");
            }
            Expect::ChallengeAck => {
                assert_eq!(out.len(), 1, "{what}: {out:?}");
                assert!(out[0].is(ACK), "{what}");
                assert_eq!((out[0].seq, out[0].ack), (e.snd_nxt, e.rcv_nxt), "{what}");
                assert_eq!(state, Some(State::Established), "{what}");
            }
            Expect::SilentDrop => {
                assert!(out.is_empty(), "{what}: {out:?}");
                assert_eq!(state, Some(State::Established), "{what}");
            }
            Expect::Accept => {
                assert!(out.is_empty(), "{what}: {out:?}");
                assert_eq!(state, Some(State::Established), "{what}");
            }
        }
    }
}

/// RFC 5961 §7 and CVE-2016-5696: challenge ACKs are limited per connection (one per
/// `tcp_invalid_ratelimit`, 500 ms), so one connection's budget says nothing about another's.
#[test]
fn challenge_acks_are_rate_limited_per_connection() {
    let mut e = est();
    let bad_rst = |e: &Est| craft(e.peer, e.b.addr(80), e.rcv_nxt + 10, 0, RST, b"");
    let p = bad_rst(&e);
    e.b.deliver(&p);
    assert_eq!(e.b.take_segs().len(), 1);
    for _ in 0..10 {
        e.b.deliver(&p);
    }
    e.b.expect_nothing();
    assert_eq!(e.b.shard.counters().tcp_ext_tcp_challenge_ack, 1);
    assert_eq!(e.b.shard.counters().tcp_ext_tcp_ack_skipped_challenge, 10);
    // A second connection on the same shard still gets its challenge ACK.
    let peer2: std::net::SocketAddr = "198.18.0.3:40001".parse().unwrap();
    e.b.deliver(&craft(peer2, e.b.addr(80), 5000, 0, SYN, b""));
    let sa = Seg::parse(&e.b.take_one());
    e.b.deliver(&craft(peer2, e.b.addr(80), 5001, sa.seq.wrapping_add(1), ACK, b""));
    e.b.deliver(&craft(peer2, e.b.addr(80), 5011, 0, RST, b""));
    let ch = e.b.take_segs();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].dst, peer2);
    // And the first one gets another after 500 ms.
    e.b.advance(Duration::from_millis(500));
    e.b.deliver(&p);
    assert_eq!(e.b.take_segs().len(), 1);
}

/// RFC 9293 §3.10.7.4 first: an unacceptable data segment is answered with
/// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and dropped; data segments are never rate-limited.
#[test]
fn out_of_window_data_draws_ack() {
    let mut e = est();
    for _ in 0..3 {
        e.b.deliver(&craft(e.peer, e.b.addr(80), e.rcv_nxt.wrapping_sub(100), e.snd_nxt, ACK, b"old data"));
        let out = e.b.take_segs();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seq, out[0].ack), (e.snd_nxt, e.rcv_nxt));
    }
    assert_eq!(e.b.shard.readable(e.id), 0);
}
