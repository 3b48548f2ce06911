//! Closing: FIN-WAIT-2 timeout, LAST-ACK FIN retransmission and its limit, TIME-WAIT re-ACK,
//! RFC 1337, RFC 6191, half-close, and the retry limits of every state.

mod common;
use common::*;
use xdptcp::tcp::{CloseReason, Config, Event, State};
use xdptcp::time::Duration;

fn pair_cfg(cfg: Config) -> (Host, Host) {
    (Host::new("198.18.0.2", cfg.clone(), 1), Host::new("198.18.0.1", cfg, 2))
}

/// Half-close: data keeps flowing towards the side that closed first, in CLOSE-WAIT.
#[test]
fn half_close_data_flows_in_close_wait() {
    let (mut a, mut b) = pair_cfg(plain_cfg());
    let (ida, idb) = handshake(&mut a, &mut b);
    a.shard.shutdown(a.now, ida, &mut a.out).unwrap();
    a.flush();
    exchange(&mut a, &mut b);
    assert_eq!(a.state(ida), Some(State::FinWait2));
    assert_eq!(b.state(idb), Some(State::CloseWait));
    assert!(b.take_events().contains(&Event::PeerClosed(idb)));
    b.shard.send(idb, b"still talking").unwrap();
    b.flush();
    exchange(&mut a, &mut b);
    assert_eq!(a.recv_all(ida), b"still talking");
    assert_eq!(a.shard.send(ida, b"x"), Err(xdptcp::tcp::ApiError::Shutdown));
    b.close(idb);
    exchange(&mut a, &mut b);
    assert_eq!(a.state(ida), Some(State::TimeWait));
    assert_eq!(b.state_of(80, a.addr(40000)), None);
}

/// Linux `tcp_fin_timeout`: an orphaned connection waits that long in FIN-WAIT-2, then goes.
#[test]
fn fin_wait_2_timeout_for_orphans() {
    let cfg = Config { fin_timeout: Duration::from_secs(30), ..plain_cfg() };
    let (mut a, mut b) = pair_cfg(cfg);
    let (ida, _idb) = handshake(&mut a, &mut b);
    a.close(ida);
    exchange(&mut a, &mut b);
    let t = (a.addr(40000), b.addr(80));
    assert_eq!(a.state_of(40000, t.1), Some(State::FinWait2));
    let t0 = a.now;
    a.run_until(t0 + Duration::from_secs(29));
    assert_eq!(a.state_of(40000, t.1), Some(State::FinWait2));
    a.run_until(t0 + Duration::from_secs(31));
    assert_eq!(a.state_of(40000, t.1), None);
    assert_eq!(a.shard.counters().tcp_ext_tcp_fin_wait2_timeouts, 1);
}

/// LAST-ACK retransmits its FIN (a loss probe, then RFC 6298 backoff) and gives up after
/// `tcp_orphan_retries`.
#[test]
fn last_ack_fin_retransmission_and_limit() {
    let cfg = Config { orphan_retries: 3, ..plain_cfg() };
    let (mut a, mut b) = pair_cfg(cfg);
    let (ida, idb) = handshake(&mut a, &mut b);
    a.close(ida);
    exchange(&mut a, &mut b);
    b.close(idb);
    let fin = Seg::parse(&b.take_one());
    assert!(fin.is(finack()));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::LastAck));
    // The FIN is lost, again and again.
    let t0 = b.now;
    let mut resent = Vec::new();
    for s in 1..=20 {
        b.run_until(t0 + Duration::from_secs(s));
        for p in b.take_segs() {
            assert_eq!(p, fin);
            resent.push(b.now);
        }
    }
    // One tail-loss probe first (RFC 8985 §7, on by default as in Linux, where it also counts
    // for nothing against the retries), then `tcp_orphan_retries` timeouts.
    assert_eq!(b.shard.counters().tcp_ext_tcp_loss_probes, 1);
    assert_eq!(resent.len(), 1 + 3, "a probe and tcp_orphan_retries retransmissions: {resent:?}");
    assert_eq!(b.state_of(80, a.addr(40000)), None, "gave up");
    assert_eq!(b.shard.counters().tcp_ext_tcp_abort_on_timeout, 1);
}

/// A closes first, B follows: returns (A, B, B's FIN as sent, A's last ACK) with A in TIME-WAIT.
fn a_in_time_wait(cfg: Config) -> (Host, Host, Vec<u8>, Seg) {
    let (mut a, mut b) = pair_cfg(cfg);
    let (ida, idb) = handshake(&mut a, &mut b);
    a.close(ida);
    exchange(&mut a, &mut b);
    b.close(idb);
    let fin = b.take_one();
    a.deliver(&fin);
    let last = Seg::parse(&a.take_one());
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::TimeWait));
    (a, b, fin, last)
}

/// TIME-WAIT: a retransmitted FIN is ACKed again and restarts the 2·MSL timer (RFC 9293
/// §3.10.7.4 eighth).
#[test]
fn time_wait_reacks_retransmitted_fin_and_restarts_timer() {
    let (mut a, b, fin, ack1) = a_in_time_wait(plain_cfg());
    // 40 s later the FIN comes again (B never saw the ACK).
    let t0 = a.now;
    a.run_until(t0 + Duration::from_secs(40));
    a.deliver(&fin);
    let ack2 = Seg::parse(&a.take_one());
    assert_eq!((ack1.seq, ack1.ack), (ack2.seq, ack2.ack));
    a.run_until(t0 + Duration::from_secs(90));
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::TimeWait), "timer restarted at 40 s");
    a.run_until(t0 + Duration::from_secs(101));
    assert_eq!(a.state_of(40000, b.addr(80)), None);
}

/// RFC 1337 §3: a RST does not end TIME-WAIT ("TIME-WAIT assassination").
#[test]
fn rfc1337_rst_does_not_end_time_wait() {
    let (mut a, b, _fin, last) = a_in_time_wait(plain_cfg());
    a.deliver(&craft(b.addr(80), a.addr(40000), last.ack, last.seq, RST, b""));
    a.expect_nothing();
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::TimeWait));
    assert_eq!(a.shard.counters().tcp_ext_tw_rst_ignored, 1);
    // With rfc1337 off (Linux's default), the same RST ends it.
    let (mut a, b, _fin, last) = a_in_time_wait(Config { rfc1337: false, ..plain_cfg() });
    a.deliver(&craft(b.addr(80), a.addr(40000), last.ack, last.seq, RST, b""));
    assert_eq!(a.state_of(40000, b.addr(80)), None);
}

/// RFC 6191: a SYN whose timestamp is newer than TS.Recent may reuse a tuple in TIME-WAIT (on the
/// side that is also listening); an older one draws an ACK.
#[test]
fn rfc6191_new_syn_reuses_time_wait_tuple() {
    let (mut a, mut b) = pair_cfg(Config::default());
    let (ida, idb) = handshake(&mut a, &mut b);
    // The server closes first, so the server holds TIME-WAIT (the case RFC 6191 is about).
    b.close(idb);
    exchange(&mut a, &mut b);
    a.close(ida);
    exchange(&mut a, &mut b);
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    assert_eq!(a.state_of(40000, b.addr(80)), None);
    // A new SYN on the same tuple, 5 s later: its TSval is newer.
    a.advance(Duration::from_secs(5));
    b.advance(Duration::from_secs(5));
    let ida2 = a.connect(40000, b.addr(80));
    b.deliver(&a.take_one());
    let sa_pkt = b.take_one();
    let sa = Seg::parse(&sa_pkt);
    assert!(sa.is(synack()), "TIME-WAIT reused: {sa:?}");
    assert_eq!(b.shard.counters().tcp_ext_tw_recycled, 1);
    a.deliver(&sa_pkt);
    b.deliver(&a.take_one());
    assert_eq!(a.state(ida2), Some(State::Established));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::Established));
}

/// RFC 6191 without timestamps: only a SYN above RCV.NXT may reuse the tuple; an old one gets
/// an ACK and TIME-WAIT stays.
#[test]
fn rfc6191_without_timestamps_uses_sequence_numbers() {
    let (mut a, mut b) = pair_cfg(plain_cfg());
    let (ida, idb) = handshake(&mut a, &mut b);
    b.close(idb);
    exchange(&mut a, &mut b);
    a.close(ida);
    let afin = Seg::parse(&a.out[0]);
    exchange(&mut a, &mut b);
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    let rcv_nxt = afin.seq.wrapping_add(1);
    b.deliver(&craft(a.addr(40000), b.addr(80), rcv_nxt.wrapping_sub(1000), 0, SYN, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(ACK));
    assert_eq!(r.ack, rcv_nxt);
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    b.deliver(&craft(a.addr(40000), b.addr(80), rcv_nxt.wrapping_add(100_000), 0, SYN, b""));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(synack()));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::SynReceived));
}

/// `tcp_syn_retries`: the SYN is retransmitted with doubling RTO, then the open fails with
/// TimedOut.
#[test]
fn syn_retries_then_timeout() {
    let cfg = Config { syn_retries: 3, ..plain_cfg() };
    let mut a = Host::new("198.18.0.2", cfg, 1);
    let id = a.connect(40000, "198.18.0.1:80".parse().unwrap());
    let syn = Seg::parse(&a.take_one());
    let t0 = a.now;
    let mut at = Vec::new();
    for ms in (0..=20_000).step_by(100) {
        a.run_until(t0 + Duration::from_millis(ms));
        for s in a.take_segs() {
            assert_eq!(s, syn);
            at.push((a.now.as_nanos() - t0.as_nanos()) / 1_000_000);
        }
    }
    assert_eq!(at, vec![1000, 3000, 7000]);
    assert_eq!(a.state(id), Some(State::Closed));
    assert!(a.take_events().contains(&Event::Closed(id, CloseReason::TimedOut)));
    let c = a.shard.counters();
    assert_eq!((c.tcp_attempt_fails, c.tcp_ext_tcp_syn_retrans), (1, 3));
}

/// `tcp_retries2`: unacknowledged data is retransmitted with backoff, then the connection is
/// aborted with TimedOut.
#[test]
fn data_retries_then_abort() {
    let cfg = Config { retries2: 4, ..plain_cfg() };
    let (mut a, mut b) = pair_cfg(cfg);
    let (ida, _idb) = handshake(&mut a, &mut b);
    a.shard.send(ida, b"lost forever").unwrap();
    a.flush();
    let first = Seg::parse(&a.take_one());
    let t0 = a.now;
    let mut n = 0;
    for s in 1..200 {
        a.run_until(t0 + Duration::from_secs(s));
        for p in a.take_segs() {
            assert_eq!(p.seq, first.seq);
            assert_eq!(p.payload, first.payload);
            n += 1;
        }
    }
    // A tail-loss probe (RFC 8985 §7), then `tcp_retries2` timeouts (the probe is not a retry,
    // as in Linux).
    assert_eq!(a.shard.counters().tcp_ext_tcp_loss_probes, 1);
    assert_eq!(n, 1 + 4);
    assert_eq!(a.state(ida), Some(State::Closed));
    assert!(a.take_events().contains(&Event::Closed(ida, CloseReason::TimedOut)));
    // The probe resent the segment too: Linux counts it in RetransSegs as well.
    assert_eq!(a.shard.counters().tcp_retrans_segs, 1 + 4);
}

/// Keepalive (`tcp_keepalive_time/intvl/probes`): probes <SEQ=SND.UNA-1> while idle, then abort.
#[test]
fn keepalive_probes_then_abort() {
    let cfg = Config {
        keepalive: true,
        keepalive_time: Duration::from_secs(10),
        keepalive_intvl: Duration::from_secs(2),
        keepalive_probes: 3,
        ..plain_cfg()
    };
    let (mut a, mut b) = pair_cfg(cfg);
    let (ida, _) = handshake(&mut a, &mut b);
    let info = a.shard.info(ida).unwrap();
    let t0 = a.now;
    a.run_until(t0 + Duration::from_secs(10));
    let p = Seg::parse(&a.take_one());
    assert!(p.is(ACK));
    assert_eq!(p.seq, info.snd_una.0.wrapping_sub(1));
    // A live peer answers the probe; the timer restarts.
    b.deliver(&a_to_bytes(&p, &a, &b));
    a.deliver(&b.take_one());
    a.run_until(t0 + Duration::from_secs(19));
    a.expect_nothing();
    // Now the peer is gone: three probes, then a RST as the connection is given up (Linux
    // `tcp_keepalive_timer` -> `tcp_send_active_reset`).
    a.run_until(t0 + Duration::from_secs(40));
    let segs = a.take_segs();
    assert_eq!(segs.len(), 4, "{segs:?}");
    assert!(segs[..3].iter().all(|s| s.is(ACK)), "{segs:?}");
    assert!(segs[3].is(rstack()), "{segs:?}");
    assert_eq!(a.state(ida), Some(State::Closed));
    assert_eq!(a.shard.counters().tcp_ext_tcp_keepalive, 4);
}

fn a_to_bytes(s: &Seg, _a: &Host, _b: &Host) -> Vec<u8> {
    craft_opts(s.src, s.dst, s.seq, s.ack, s.flags, &s.payload, s.options, s.window)
}

/// RFC 9293 §3.10.4 CLOSE in SYN-RECEIVED: "If no SENDs have been issued and there is no
/// pending data to send, then form a FIN segment and send it, and enter FIN-WAIT-1 state".
/// Linux `tcp_close_state` does the same (SYN_RECV -> FIN_WAIT1). Here A is in the
/// SYN-RECEIVED of a simultaneous open (Figure 7) when its application closes:
///
/// ```text
///     TCP A                                                TCP B
/// 1.  SYN-SENT     --> <SEQ=100><CTL=SYN>              ... (held)
/// 2.  SYN-RECEIVED <-- <SEQ=300><CTL=SYN>              <-- SYN-SENT
/// 3.  SYN-RECEIVED --> <SEQ=100><ACK=301><CTL=SYN,ACK> ... (held)
/// 4.  (CLOSE)
///     FIN-WAIT-1   --> <SEQ=101><ACK=301><CTL=FIN,ACK> ... (held)
/// 5.               ... A's SYN reaches B               --> SYN-RECEIVED
/// 6.  FIN-WAIT-1   <-- <SEQ=300><ACK=101><CTL=SYN,ACK> <-- SYN-RECEIVED
/// 7.               ... A's SYN-ACK and FIN reach B     --> ESTABLISHED, CLOSE-WAIT
/// 8.  FIN-WAIT-2   <-- <SEQ=301><ACK=102><CTL=ACK>     <-- CLOSE-WAIT
/// ```
#[test]
fn syn_received_close_sends_fin_and_enters_fin_wait_1() {
    let (mut a, mut b) = pair_cfg(plain_cfg());
    let ida = a.connect(1000, b.addr(2000));
    let a_syn = a.take_one();
    let a_iss = Seg::parse(&a_syn).seq;
    let idb = b.connect(2000, a.addr(1000));
    let b_syn = b.take_one();
    let b_iss = Seg::parse(&b_syn).seq;
    a.deliver(&b_syn);
    assert_eq!(a.state(ida), Some(State::SynReceived));
    let a_synack = a.take_one();
    // 4. CLOSE with nothing queued: the FIN goes now, not once ESTABLISHED is reached.
    a.close(ida);
    assert_eq!(a.state(ida), Some(State::FinWait1), "RFC 9293 §3.10.4: CLOSE in SYN-RECEIVED");
    let fin = Seg::parse(&a.take_one());
    assert!(fin.is(finack()), "{fin:?}");
    assert_eq!((fin.seq, fin.ack), (a_iss.wrapping_add(1), b_iss.wrapping_add(1)));
    let a_fin = craft(a.addr(1000), b.addr(2000), fin.seq, fin.ack, finack(), b"");
    // 5-6. B answers A's SYN; its SYN-ACK repeats B's SYN. In FIN-WAIT-1 a SYN is a SYN in a
    // synchronized state (Linux lets the repeated SYN-ACK through only in SYN_RECV): the RFC
    // 5961 §4 challenge ACK, nothing acknowledged, no Connected event. A stays in FIN-WAIT-1;
    // B's ACK of the FIN completes the handshake (7-8).
    b.deliver(&a_syn);
    assert_eq!(b.state(idb), Some(State::SynReceived));
    a.take_events();
    a.deliver(&b.take_one());
    assert_eq!(a.state(ida), Some(State::FinWait1));
    assert_eq!(a.shard.info(ida).unwrap().snd_una.0, a_iss, "the SYN-ACK acknowledged nothing");
    assert!(a.take_events().is_empty());
    let challenge = a.take_segs();
    assert!(challenge.len() == 1 && challenge[0].is(ACK), "{challenge:?}");
    assert_eq!(challenge[0].ack, b_iss.wrapping_add(1), "{challenge:?}");
    // 7-8. A's SYN-ACK and FIN reach B, which acknowledges the FIN: A in FIN-WAIT-2.
    b.deliver(&a_synack);
    b.deliver(&a_fin);
    assert_eq!(b.state(idb), Some(State::CloseWait));
    for p in b.take() {
        a.deliver(&p);
    }
    assert_eq!(a.state(ida), Some(State::FinWait2));
    // B closes too: A goes through TIME-WAIT.
    b.close(idb);
    exchange(&mut a, &mut b);
    assert_eq!(a.state_of(1000, b.addr(2000)), Some(State::TimeWait));
    assert_eq!(b.state_of(2000, a.addr(1000)), None, "B went through LAST-ACK to CLOSED");
}
