//! RFC 9293 §3.5 and §3.6: every exchange drawn there, between two shards whose link the test
//! drives by hand. Peer A is on the left of each figure, peer B on the right. ISNs come from
//! RFC 6528, so where a figure writes 100 or 300 the test names the number it saw.

mod common;
use common::*;
use xdptcp::tcp::{CloseReason, Event, State};
use xdptcp::time::Duration;

fn pair() -> (Host, Host) {
    (Host::new("198.18.0.2", plain_cfg(), 1), Host::new("198.18.0.1", plain_cfg(), 2))
}

/// Runs Figure 6 and returns (a, b, a's id, b's id, a's ISS, b's ISS).
fn established() -> (Host, Host, xdptcp::tcp::ConnId, xdptcp::tcp::ConnId, u32, u32) {
    let (mut a, mut b) = pair();
    b.shard.listen(80, None, 128).unwrap();
    let ida = a.connect(40000, b.addr(80));
    let syn = a.take_one();
    b.deliver(&syn);
    let synack = b.take_one();
    a.deliver(&synack);
    b.deliver(&a.take_one());
    let idb = b.shard.accept(80).expect("accept queue holds the connection");
    let (s1, s2) = (Seg::parse(&syn), Seg::parse(&synack));
    a.take_events();
    b.take_events();
    (a, b, ida, idb, s1.seq, s2.seq)
}

/// Figure 6: Basic Three-Way Handshake for Connection Synchronization
///
/// ```text
///     TCP Peer A                                           TCP Peer B
/// 1.  CLOSED                                               LISTEN
/// 2.  SYN-SENT    --> <SEQ=100><CTL=SYN>               --> SYN-RECEIVED
/// 3.  ESTABLISHED <-- <SEQ=300><ACK=101><CTL=SYN,ACK>  <-- SYN-RECEIVED
/// 4.  ESTABLISHED --> <SEQ=101><ACK=301><CTL=ACK>       --> ESTABLISHED
/// 5.  ESTABLISHED --> <SEQ=101><ACK=301><CTL=ACK><DATA> --> ESTABLISHED
/// ```
#[test]
fn figure6_basic_three_way_handshake() {
    let (mut a, mut b) = pair();
    // 1.
    b.shard.listen(80, None, 128).unwrap();
    let ida = a.connect(40000, b.addr(80));
    // 2.
    let syn = a.take_one();
    let s = Seg::parse(&syn);
    assert!(s.is(SYN));
    assert_eq!(a.state(ida), Some(State::SynSent));
    b.deliver(&syn);
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::SynReceived));
    // 3.
    let synack_pkt = b.take_one();
    let sa = Seg::parse(&synack_pkt);
    assert!(sa.is(synack()));
    assert_eq!(sa.ack, s.seq.wrapping_add(1));
    a.deliver(&synack_pkt);
    assert_eq!(a.state(ida), Some(State::Established));
    assert!(a.take_events().contains(&Event::Connected(ida)));
    // 4.
    let ack_pkt = a.take_one();
    let ack = Seg::parse(&ack_pkt);
    assert!(ack.is(ACK));
    assert_eq!((ack.seq, ack.ack), (s.seq.wrapping_add(1), sa.seq.wrapping_add(1)));
    b.deliver(&ack_pkt);
    assert!(b.take_events().contains(&Event::AcceptReady { port: 80 }));
    let idb = b.shard.accept(80).unwrap();
    assert_eq!(b.state(idb), Some(State::Established));
    b.expect_nothing();
    // 5.
    assert_eq!(a.shard.send(ida, b"hello").unwrap(), 5);
    a.flush();
    let data_pkt = a.take_one();
    let d = Seg::parse(&data_pkt);
    assert!(d.is(ACK));
    assert_eq!((d.seq, d.ack, d.payload.as_slice()), (s.seq.wrapping_add(1), sa.seq.wrapping_add(1), &b"hello"[..]));
    b.deliver(&data_pkt);
    assert_eq!(b.state(idb), Some(State::Established));
    assert_eq!(b.recv_all(idb), b"hello");
}

/// Figure 7: Simultaneous Connection Synchronization
///
/// ```text
///     TCP Peer A                                       TCP Peer B
/// 1.  CLOSED                                           CLOSED
/// 2.  SYN-SENT     --> <SEQ=100><CTL=SYN>              ...
/// 3.  SYN-RECEIVED <-- <SEQ=300><CTL=SYN>              <-- SYN-SENT
/// 4.               ... <SEQ=100><CTL=SYN>              --> SYN-RECEIVED
/// 5.  SYN-RECEIVED --> <SEQ=100><ACK=301><CTL=SYN,ACK> ...
/// 6.  ESTABLISHED  <-- <SEQ=300><ACK=101><CTL=SYN,ACK> <-- SYN-RECEIVED
/// 7.               ... <SEQ=100><ACK=301><CTL=SYN,ACK> --> ESTABLISHED
/// ```
#[test]
fn figure7_simultaneous_connection_synchronization() {
    let (mut a, mut b) = pair();
    // 2. A's SYN stays in the network.
    let ida = a.connect(1000, b.addr(2000));
    let a_syn = a.take_one();
    let a_iss = Seg::parse(&a_syn).seq;
    // 3. B's SYN reaches A.
    let idb = b.connect(2000, a.addr(1000));
    let b_syn = b.take_one();
    let b_iss = Seg::parse(&b_syn).seq;
    assert!(Seg::parse(&b_syn).is(SYN));
    a.deliver(&b_syn);
    assert_eq!(a.state(ida), Some(State::SynReceived));
    // 5. A answers <SEQ=100><ACK=301><CTL=SYN,ACK> (stays in the network for now).
    let a_synack = a.take_one();
    let s5 = Seg::parse(&a_synack);
    assert!(s5.is(synack()));
    assert_eq!((s5.seq, s5.ack), (a_iss, b_iss.wrapping_add(1)));
    // 4. A's SYN reaches B.
    b.deliver(&a_syn);
    assert_eq!(b.state(idb), Some(State::SynReceived));
    // 6. B's SYN-ACK reaches A: ESTABLISHED.
    let b_synack = b.take_one();
    let s6 = Seg::parse(&b_synack);
    assert!(s6.is(synack()));
    assert_eq!((s6.seq, s6.ack), (b_iss, a_iss.wrapping_add(1)));
    a.deliver(&b_synack);
    assert_eq!(a.state(ida), Some(State::Established));
    // The SYN it repeats is old sequence space: A acknowledges it, as Linux does (the figure
    // leaves pure ACKs out). <SEQ=101><ACK=301><CTL=ACK>
    let dup = Seg::parse(&a.take_one());
    assert!(dup.is(ACK));
    assert_eq!((dup.seq, dup.ack), (a_iss.wrapping_add(1), b_iss.wrapping_add(1)));
    // 7. A's SYN-ACK reaches B: ESTABLISHED (and B acknowledges the repeat the same way).
    b.deliver(&a_synack);
    assert_eq!(b.state(idb), Some(State::Established));
    let dup = Seg::parse(&b.take_one());
    assert!(dup.is(ACK));
    assert_eq!((dup.seq, dup.ack), (b_iss.wrapping_add(1), a_iss.wrapping_add(1)));
    assert!(a.take_events().contains(&Event::Connected(ida)));
    assert!(b.take_events().contains(&Event::Connected(idb)));
    // Both directions carry data afterwards.
    a.shard.send(ida, b"from a").unwrap();
    a.flush();
    b.deliver(&a.take_one());
    assert_eq!(b.recv_all(idb), b"from a");
}

/// Figure 8: Recovery from Old Duplicate SYN
///
/// ```text
///     TCP Peer A                                           TCP Peer B
/// 1.  CLOSED                                               LISTEN
/// 2.  SYN-SENT    --> <SEQ=100><CTL=SYN>               ...
/// 3.  (duplicate) ... <SEQ=90><CTL=SYN>               --> SYN-RECEIVED
/// 4.  SYN-SENT    <-- <SEQ=300><ACK=91><CTL=SYN,ACK>  <-- SYN-RECEIVED
/// 5.  SYN-SENT    --> <SEQ=91><CTL=RST>               --> LISTEN
/// 6.              ... <SEQ=100><CTL=SYN>               --> SYN-RECEIVED
/// 7.  ESTABLISHED <-- <SEQ=400><ACK=101><CTL=SYN,ACK>  <-- SYN-RECEIVED
/// 8.  ESTABLISHED --> <SEQ=101><ACK=401><CTL=ACK>      --> ESTABLISHED
/// ```
#[test]
fn figure8_recovery_from_old_duplicate_syn() {
    let (mut a, mut b) = pair();
    b.shard.listen(80, None, 128).unwrap();
    // 2.
    let ida = a.connect(40000, b.addr(80));
    let syn = a.take_one();
    let iss = Seg::parse(&syn).seq;
    // 3. An old duplicate with SEQ = ISS - 10 arrives first.
    let old = iss.wrapping_sub(10);
    b.deliver(&craft(a.addr(40000), b.addr(80), old, 0, SYN, b""));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::SynReceived));
    // 4.
    let sa = b.take_one();
    let s4 = Seg::parse(&sa);
    assert!(s4.is(synack()));
    assert_eq!(s4.ack, old.wrapping_add(1));
    a.deliver(&sa);
    assert_eq!(a.state(ida), Some(State::SynSent));
    // 5. <SEQ=91><CTL=RST>
    let rst = a.take_one();
    let s5 = Seg::parse(&rst);
    assert!(s5.is(RST));
    assert_eq!(s5.seq, old.wrapping_add(1));
    b.deliver(&rst);
    assert_eq!(b.state_of(80, a.addr(40000)), None, "B returns to LISTEN");
    b.expect_nothing();
    // 6.
    b.deliver(&syn);
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::SynReceived));
    // 7.
    let sa2 = b.take_one();
    let s7 = Seg::parse(&sa2);
    assert!(s7.is(synack()));
    assert_eq!(s7.ack, iss.wrapping_add(1));
    a.deliver(&sa2);
    assert_eq!(a.state(ida), Some(State::Established));
    // 8.
    let ack = a.take_one();
    let s8 = Seg::parse(&ack);
    assert!(s8.is(ACK));
    assert_eq!((s8.seq, s8.ack), (iss.wrapping_add(1), s7.seq.wrapping_add(1)));
    b.deliver(&ack);
    let idb = b.shard.accept(80).unwrap();
    assert_eq!(b.state(idb), Some(State::Established));
}

/// Figure 9: Half-Open Connection Discovery (with RFC 5961 §4: B's answer to the SYN is the
/// challenge ACK of line 4)
///
/// ```text
///       TCP Peer A                                      TCP Peer B
///   1.  (REBOOT)                              (send 300,receive 100)
///   2.  CLOSED                                           ESTABLISHED
///   3.  SYN-SENT --> <SEQ=400><CTL=SYN>              --> (??)
///   4.  (!!)     <-- <SEQ=300><ACK=100><CTL=ACK>     <-- ESTABLISHED
///   5.  SYN-SENT --> <SEQ=100><CTL=RST>              --> (Abort!!)
///   6.  SYN-SENT                                         CLOSED
///   7.  SYN-SENT --> <SEQ=400><CTL=SYN>              -->
/// ```
#[test]
fn figure9_half_open_connection_discovery() {
    let (a_old, mut b, _ida, idb, a_iss, b_iss) = established();
    // 1. A reboots: a fresh shard on the same address, knowing nothing.
    let mut a = Host::new("198.18.0.2", plain_cfg(), 99);
    a.now = a_old.now;
    drop(a_old);
    // 3.
    let ida = a.connect(40000, b.addr(80));
    let syn = a.take_one();
    b.deliver(&syn);
    // 4. <SEQ=300><ACK=100><CTL=ACK>: what B next sends and expects.
    let ack = b.take_one();
    let s4 = Seg::parse(&ack);
    assert!(s4.is(ACK));
    assert_eq!((s4.seq, s4.ack), (b_iss.wrapping_add(1), a_iss.wrapping_add(1)));
    assert_eq!(b.state(idb), Some(State::Established));
    // 5. The ACK does not acknowledge A's SYN: <SEQ=100><CTL=RST>.
    a.deliver(&ack);
    let rst = a.take_one();
    let s5 = Seg::parse(&rst);
    assert!(s5.is(RST));
    assert_eq!(s5.seq, a_iss.wrapping_add(1));
    assert_eq!(a.state(ida), Some(State::SynSent));
    // 6. B aborts.
    b.deliver(&rst);
    assert_eq!(b.state(idb), Some(State::Closed));
    assert!(b.take_events().contains(&Event::Closed(idb, CloseReason::Reset)));
    // 7. A's retransmitted SYN now finds B listening: the basic handshake follows.
    a.advance(Duration::from_secs(1));
    let syn2 = a.take_one();
    assert!(Seg::parse(&syn2).is(SYN));
    b.deliver(&syn2);
    let sa = b.take_one();
    assert!(Seg::parse(&sa).is(synack()));
    a.deliver(&sa);
    assert_eq!(a.state(ida), Some(State::Established));
}

/// Figure 10: Active Side Causes Half-Open Connection Discovery
///
/// ```text
///     TCP Peer A                                         TCP Peer B
/// 1.  (REBOOT)                                  (send 300,receive 100)
/// 2.  (??)    <-- <SEQ=300><ACK=100><DATA=10><CTL=ACK> <-- ESTABLISHED
/// 3.          --> <SEQ=100><CTL=RST>                   --> (ABORT!!)
/// ```
#[test]
fn figure10_active_side_causes_half_open_discovery() {
    let (a_old, mut b, _ida, idb, a_iss, _b_iss) = established();
    let mut a = Host::new("198.18.0.2", plain_cfg(), 99);
    a.now = a_old.now;
    // 2.
    b.shard.send(idb, b"0123456789").unwrap();
    b.flush();
    let data = b.take_one();
    let s2 = Seg::parse(&data);
    assert_eq!((s2.ack, s2.payload.len()), (a_iss.wrapping_add(1), 10));
    // 3.
    a.deliver(&data);
    let rst = a.take_one();
    let s3 = Seg::parse(&rst);
    assert!(s3.is(RST));
    assert_eq!(s3.seq, a_iss.wrapping_add(1));
    b.deliver(&rst);
    assert_eq!(b.state(idb), Some(State::Closed));
    assert!(b.take_events().contains(&Event::Closed(idb, CloseReason::Reset)));
}

/// Figure 11: Old Duplicate SYN Initiates a Reset on Two Passive Sockets
///
/// ```text
///     TCP Peer A                                    TCP Peer B
/// 1.  LISTEN                                        LISTEN
/// 2.       ... <SEQ=Z><CTL=SYN>                -->  SYN-RECEIVED
/// 3.  (??) <-- <SEQ=X><ACK=Z+1><CTL=SYN,ACK>   <--  SYN-RECEIVED
/// 4.       --> <SEQ=Z+1><CTL=RST>              -->  (return to LISTEN!)
/// 5.  LISTEN                                        LISTEN
/// ```
#[test]
fn figure11_old_duplicate_syn_resets_two_passive_sockets() {
    let (mut a, mut b) = pair();
    a.shard.listen(1000, None, 128).unwrap();
    b.shard.listen(2000, None, 128).unwrap();
    let z = 777_000u32;
    // 2.
    b.deliver(&craft(a.addr(1000), b.addr(2000), z, 0, SYN, b""));
    assert_eq!(b.state_of(2000, a.addr(1000)), Some(State::SynReceived));
    // 3.
    let sa = b.take_one();
    let s3 = Seg::parse(&sa);
    assert!(s3.is(synack()));
    assert_eq!(s3.ack, z + 1);
    a.deliver(&sa);
    // 4.
    let rst = a.take_one();
    let s4 = Seg::parse(&rst);
    assert!(s4.is(RST));
    assert_eq!(s4.seq, z + 1);
    b.deliver(&rst);
    // 5.
    assert_eq!(b.state_of(2000, a.addr(1000)), None);
    assert_eq!(a.state_of(1000, b.addr(2000)), None);
    b.expect_nothing();
}

/// Figure 12: Normal Close Sequence
///
/// ```text
///     TCP Peer A                                           TCP Peer B
/// 1.  ESTABLISHED                                          ESTABLISHED
/// 2.  (Close)
///     FIN-WAIT-1  --> <SEQ=100><ACK=300><CTL=FIN,ACK>  --> CLOSE-WAIT
/// 3.  FIN-WAIT-2  <-- <SEQ=300><ACK=101><CTL=ACK>      <-- CLOSE-WAIT
/// 4.                                                       (Close)
///     TIME-WAIT   <-- <SEQ=300><ACK=101><CTL=FIN,ACK>  <-- LAST-ACK
/// 5.  TIME-WAIT   --> <SEQ=101><ACK=301><CTL=ACK>      --> CLOSED
/// 6.  (2 MSL)
///     CLOSED
/// ```
#[test]
fn figure12_normal_close_sequence() {
    let (mut a, mut b, ida, idb, a_iss, b_iss) = established();
    let (s100, s300) = (a_iss.wrapping_add(1), b_iss.wrapping_add(1));
    let a_tuple_port = 40000;
    // 2.
    a.close(ida);
    let fin = a.take_one();
    let s2 = Seg::parse(&fin);
    assert!(s2.is(finack()));
    assert_eq!((s2.seq, s2.ack), (s100, s300));
    assert_eq!(a.state_of(a_tuple_port, b.addr(80)), Some(State::FinWait1));
    b.deliver(&fin);
    assert_eq!(b.state(idb), Some(State::CloseWait));
    assert!(b.take_events().contains(&Event::PeerClosed(idb)));
    // 3.
    let ack = b.take_one();
    let s3 = Seg::parse(&ack);
    assert!(s3.is(ACK));
    assert_eq!((s3.seq, s3.ack), (s300, s100.wrapping_add(1)));
    a.deliver(&ack);
    assert_eq!(a.state_of(a_tuple_port, b.addr(80)), Some(State::FinWait2));
    // 4.
    b.close(idb);
    let bfin = b.take_one();
    let s4 = Seg::parse(&bfin);
    assert!(s4.is(finack()));
    assert_eq!((s4.seq, s4.ack), (s300, s100.wrapping_add(1)));
    assert_eq!(b.state_of(80, a.addr(a_tuple_port)), Some(State::LastAck));
    a.deliver(&bfin);
    assert_eq!(a.state_of(a_tuple_port, b.addr(80)), Some(State::TimeWait));
    // 5.
    let last = a.take_one();
    let s5 = Seg::parse(&last);
    assert!(s5.is(ACK));
    assert_eq!((s5.seq, s5.ack), (s100.wrapping_add(1), s300.wrapping_add(1)));
    b.deliver(&last);
    assert_eq!(b.state_of(80, a.addr(a_tuple_port)), None, "B is CLOSED");
    // 6. 2·MSL later A is CLOSED too.
    let t0 = a.now;
    a.run_until(t0 + Duration::from_secs(59));
    assert_eq!(a.state_of(a_tuple_port, b.addr(80)), Some(State::TimeWait));
    a.run_until(t0 + Duration::from_secs(61));
    assert_eq!(a.state_of(a_tuple_port, b.addr(80)), None);
    assert_eq!(a.shard.time_wait_len(), 0);
    assert_eq!(a.shard.counters().tcp_ext_tw, 1);
    assert_eq!((a.shard.counters().tcp_ext_closed, b.shard.counters().tcp_ext_closed), (1, 1));
}

/// Figure 13: Simultaneous Close Sequence
///
/// ```text
///     TCP Peer A                                           TCP Peer B
/// 1.  ESTABLISHED                                          ESTABLISHED
/// 2.  (Close)                                              (Close)
///     FIN-WAIT-1  --> <SEQ=100><ACK=300><CTL=FIN,ACK>  ... FIN-WAIT-1
///                 <-- <SEQ=300><ACK=100><CTL=FIN,ACK>  <--
///                 ... <SEQ=100><ACK=300><CTL=FIN,ACK>  -->
/// 3.  CLOSING     --> <SEQ=101><ACK=301><CTL=ACK>      ... CLOSING
///                 <-- <SEQ=301><ACK=101><CTL=ACK>      <--
///                 ... <SEQ=101><ACK=301><CTL=ACK>      -->
/// 4.  TIME-WAIT                                            TIME-WAIT
///     (2 MSL)                                              (2 MSL)
///     CLOSED                                               CLOSED
/// ```
#[test]
fn figure13_simultaneous_close_sequence() {
    let (mut a, mut b, ida, idb, a_iss, b_iss) = established();
    let (s100, s300) = (a_iss.wrapping_add(1), b_iss.wrapping_add(1));
    // 2.
    a.shard.close(a.now, ida, &mut a.out).unwrap();
    b.shard.close(b.now, idb, &mut b.out).unwrap();
    a.flush();
    b.flush();
    let afin = a.take_one();
    let bfin = b.take_one();
    let (sa, sb) = (Seg::parse(&afin), Seg::parse(&bfin));
    assert!(sa.is(finack()) && sb.is(finack()));
    assert_eq!((sa.seq, sa.ack), (s100, s300));
    assert_eq!((sb.seq, sb.ack), (s300, s100));
    a.deliver(&bfin);
    b.deliver(&afin);
    // 3.
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::Closing));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::Closing));
    let aack = a.take_one();
    let back = b.take_one();
    let (s3a, s3b) = (Seg::parse(&aack), Seg::parse(&back));
    assert!(s3a.is(ACK) && s3b.is(ACK));
    assert_eq!((s3a.seq, s3a.ack), (s100.wrapping_add(1), s300.wrapping_add(1)));
    assert_eq!((s3b.seq, s3b.ack), (s300.wrapping_add(1), s100.wrapping_add(1)));
    a.deliver(&back);
    b.deliver(&aack);
    // 4.
    assert_eq!(a.state_of(40000, b.addr(80)), Some(State::TimeWait));
    assert_eq!(b.state_of(80, a.addr(40000)), Some(State::TimeWait));
    let t0 = a.now;
    a.run_until(t0 + Duration::from_secs(61));
    b.run_until(t0 + Duration::from_secs(61));
    assert_eq!(a.state_of(40000, b.addr(80)), None);
    assert_eq!(b.state_of(80, a.addr(40000)), None);
}
