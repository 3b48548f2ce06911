//! The retransmission timer and TS.Recent a connection starts with once the handshake is over.
//!
//! RFC 6298 (2.2)-(2.3): the handshake is the first RTT sample. Linux takes it on a passive
//! open from the SYN-ACK's send time (or the final ACK's TSecr) in `tcp_synack_rtt_meas`, so
//! a server's first data segment is timed by a measured RTO, not the 1 s initial one.
//! RFC 6298 (5.7), a MUST: when the SYN or SYN-ACK was retransmitted and no sample could be
//! taken, the RTO is 3 s when data transmission begins (Linux `tcp_init_metrics`,
//! `TCP_TIMEOUT_FALLBACK`). RFC 7323 §4.3: the final ACK of the handshake sets TS.Recent
//! (Linux `tcp_check_req`).
//!
//! The peers send no SACK-permitted and loss probes are off, so every resend measured here is
//! the retransmission timer's.

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{Config, ConnId, SynCookies};
use xdptcp::time::Duration;
use xdptcp::wire::TcpOptions;

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

fn cfg() -> Config {
    Config { timestamps: false, tlp: false, ..Config::default() }
}

/// Steps the clock by 5 ms up to `limit` after now; returns how long after the start the first
/// segment carrying payload came out again (a retransmission), if any.
fn first_data_resend(b: &mut Host, limit: Duration) -> Option<Duration> {
    let start = b.now;
    let step = Duration::from_millis(5);
    while b.now.saturating_since(start) < limit {
        b.advance(step);
        b.flush();
        let segs = b.take_segs();
        if segs.iter().any(|s| !s.payload.is_empty()) {
            return Some(b.now.saturating_since(start));
        }
    }
    None
}

/// Sends 100 bytes on `id`, lets them out (and lose them), and returns when the
/// retransmission timer sent them again.
fn first_rto(h: &mut Host, id: ConnId) -> Duration {
    h.shard.send(id, &[b'x'; 100]).unwrap();
    h.flush();
    assert_eq!(h.take_segs().len(), 1);
    first_data_resend(h, Duration::from_secs(4)).expect("a retransmission")
}

/// A server connection from crafted segments: SYN now, final ACK `ack_after` later (the SYN-ACK
/// retransmissions in between are let out and ignored). `ts`: the peer's TSval on the SYN
/// (timestamps are then echoed on the ACK).
fn passive(cfg: Config, ack_after: Duration, ts: Option<u32>) -> (Host, ConnId) {
    let mut b = Host::new("198.18.0.1", cfg, 11);
    b.shard.listen(80, None, 16).unwrap();
    let isn = 7_000_000u32;
    let o = TcpOptions { mss: Some(1460), timestamps: ts.map(|v| (v, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
    let mut sa = Seg::parse(&b.take_one());
    b.run_until(b.now + ack_after);
    b.flush();
    // The peer answers the last SYN-ACK it saw (its TSval is the one echoed).
    if let Some(last) = b.take_segs().into_iter().rfind(|s| s.is(synack())) {
        sa = last;
    }
    let o = TcpOptions {
        timestamps: ts.map(|v| (v + 10, sa.options.timestamps.expect("timestamps negotiated").0)),
        ..TcpOptions::default()
    };
    let ack = craft_opts(peer(), b.addr(80), isn.wrapping_add(1), sa.seq.wrapping_add(1), ACK, b"", o, 65535);
    b.deliver(&ack);
    let id = b.shard.accept(80).expect("handshake completes");
    b.take_events();
    b.take();
    (b, id)
}

/// RFC 6298 (2.2), Linux `tcp_synack_rtt_meas`: a 10 ms handshake is the first sample, SRTT
/// 10 ms, RTTVAR 5 ms, RTO = max(RTO.min, SRTT + 4·RTTVAR) = 200 ms. Without the sample the
/// first loss would wait the initial 1 s.
#[test]
fn passive_open_times_its_first_data_by_the_handshake_rtt() {
    let (mut b, id) = passive(cfg(), Duration::from_millis(10), None);
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.srtt, Some(Duration::from_millis(10)), "the handshake's sample");
    let at = first_rto(&mut b, id);
    assert!(
        (Duration::from_millis(200)..=Duration::from_millis(205)).contains(&at),
        "first retransmission {at:?} after the send; RTO after the handshake {:?}",
        info.rto
    );
}

/// A cookie connection kept no state about its SYN-ACK: the final ACK's TSecr times it (RFC
/// 7323 §4.1; Linux's cookie request has no `snt_synack`, `tcp_ack_update_rtt` falls back to
/// TSecr). The cookie's TSval has its low 6 bits replaced, so the sample may be up to 63 ms
/// long; it is still far below the initial 1 s.
#[test]
fn cookie_connection_times_its_first_data_by_the_tsecr() {
    let c = Config { timestamps: true, syncookies: SynCookies::Always, ..cfg() };
    let (mut b, id) = passive(c, Duration::from_millis(10), Some(5_000));
    let srtt = b.shard.info(id).unwrap().srtt.expect("a sample from TSecr");
    assert!(srtt >= Duration::from_millis(10) && srtt < Duration::from_millis(80), "srtt {srtt:?}");
    let at = first_rto(&mut b, id);
    assert!(at < Duration::from_millis(400), "first retransmission {at:?}");
}

/// RFC 6298 (5.7): the SYN-ACK was retransmitted (Karn: no sample from the handshake, and no
/// timestamps to take one from); data sent after the handshake is timed with a 3 s RTO.
///
/// ```text
///     TCP A (peer)                                       TCP B (us)
/// 1.  SYN-SENT    --> <SEQ=100><CTL=SYN>              --> SYN-RECEIVED
/// 2.              ... <SEQ=300><ACK=101><CTL=SYN,ACK> <-- (lost)
/// 3.  (1 s later) <-- <SEQ=300><ACK=101><CTL=SYN,ACK> <-- SYN-RECEIVED
/// 4.  ESTABLISHED --> <SEQ=101><ACK=301><CTL=ACK>     --> ESTABLISHED, RTO = 3 s
/// ```
#[test]
fn rfc6298_5_7_rto_is_3s_after_a_synack_retransmission() {
    let (mut b, id) = passive(cfg(), Duration::from_millis(1020), None);
    assert_eq!(b.shard.counters().tcp_ext_tcp_syn_retrans, 1, "the SYN-ACK went twice");
    assert_eq!(b.shard.info(id).unwrap().srtt, None, "Karn: no sample");
    let at = first_rto(&mut b, id);
    assert!(
        (Duration::from_secs(3)..=Duration::from_millis(3005)).contains(&at),
        "first data retransmission after {at:?}, RFC 6298 (5.7) says 3 s"
    );
}

/// With timestamps the retransmitted SYN-ACK is no obstacle: the final ACK's TSecr names the
/// SYN-ACK it answers (RFC 7323 §4.1), so the 3 s fallback does not apply.
#[test]
fn synack_retransmission_with_timestamps_still_samples() {
    let c = Config { timestamps: true, ..cfg() };
    let (mut b, id) = passive(c, Duration::from_millis(1020), Some(5_000));
    let srtt = b.shard.info(id).unwrap().srtt.expect("a sample from TSecr");
    assert!(srtt <= Duration::from_millis(25), "srtt {srtt:?} (the SYN-ACK resent at 1 s was answered 20 ms later)");
    assert!(first_rto(&mut b, id) < Duration::from_millis(400));
}

/// RFC 6298 (5.7), active side: the SYN timed out once and the SYN-ACK (no timestamps) gives
/// no sample; the first data retransmission comes 3 s after the data, not at the backed-off
/// 2 s.
#[test]
fn rfc6298_5_7_rto_is_3s_after_a_syn_retransmission() {
    let mut a = Host::new("198.18.0.2", cfg(), 12);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    a.run_until(a.now + Duration::from_millis(1010));
    a.flush();
    let again = a.take_segs();
    assert!(again.iter().any(|s| s.is(SYN)), "SYN retransmitted after 1 s: {again:?}");
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    a.deliver(&craft_opts(server, a.addr(40000), 9_000_000, syn.seq.wrapping_add(1), synack(), b"", o, 65535));
    a.take();
    assert_eq!(a.state(id), Some(xdptcp::tcp::State::Established));
    let at = first_rto(&mut a, id);
    assert!(
        (Duration::from_secs(3)..=Duration::from_millis(3005)).contains(&at),
        "first data retransmission after {at:?}, RFC 6298 (5.7) says 3 s"
    );
}

/// RFC 7323 §4.3 (2): the handshake's final ACK (SEG.SEQ = IRS + 1 = Last.ACK.sent, a newer
/// TSval) sets TS.Recent, so the server's first segment echoes that TSval; Linux takes it in
/// `tcp_check_req` (`req->ts_recent = tmp_opt.rcv_tsval`) before the child socket copies it.
/// A server that speaks first (SMTP, SSH, MySQL banners) shows it.
#[test]
fn first_segment_after_the_handshake_echoes_the_final_acks_tsval() {
    let mut b = Host::new("198.18.0.1", Config::default(), 42);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), timestamps: Some((5_000, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 88_000, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let our_ts = sa.options.timestamps.expect("timestamps negotiated").0;
    let o = TcpOptions { timestamps: Some((5_040, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 88_001, sa.seq.wrapping_add(1), ACK, b"", o, 65535));
    let id = b.shard.accept(80).unwrap();
    b.shard.send(id, b"220 banner\r\n").unwrap();
    b.flush();
    let d = Seg::parse(&b.take_one());
    assert_eq!(d.options.timestamps.map(|t| t.1), Some(5_040), "TSecr of the first data segment");
}

/// RFC 7323 §5.3 R1 in SYN-RECEIVED (Linux `tcp_check_req`): a final ACK whose TSval is older
/// than the SYN's is an old duplicate. It gets an ACK and is dropped (counted in
/// TcpExtPAWSEstab); no connection is made from it. The current ACK then completes the
/// handshake.
#[test]
fn a_final_ack_older_than_the_syn_by_its_timestamp_makes_no_connection() {
    let mut b = Host::new("198.18.0.1", Config::default(), 43);
    b.shard.listen(80, None, 16).unwrap();
    let o = TcpOptions { mss: Some(1460), timestamps: Some((5_000, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 77_000, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&b.take_one());
    let our_ts = sa.options.timestamps.expect("timestamps negotiated").0;
    let old = TcpOptions { timestamps: Some((4_000, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 77_001, sa.seq.wrapping_add(1), ACK, b"", old, 65535));
    assert!(b.shard.accept(80).is_none(), "no connection from an old duplicate");
    let answer = Seg::parse(&b.take_one());
    assert!(answer.is(ACK), "{answer:?}");
    assert_eq!(b.shard.counters().tcp_ext_paws_estab_rejected, 1);
    let cur = TcpOptions { timestamps: Some((5_010, our_ts)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 77_001, sa.seq.wrapping_add(1), ACK, b"", cur, 65535));
    assert!(b.shard.accept(80).is_some());
}

/// Simultaneous open (RFC 9293 Figure 7): the peer's SYN comes 500 ms after ours, and the ACK
/// of our SYN-ACK 10 ms after that. The sample is the SYN-ACK's 10 ms (Linux stamps the
/// SYN's buffer anew when `tcp_send_synack` sends it as the SYN-ACK), not 510 ms from the SYN.
#[test]
fn simultaneous_open_times_the_syn_ack_not_the_syn() {
    let mut a = Host::new("198.18.0.2", cfg(), 13);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    a.advance(Duration::from_millis(500));
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    a.deliver(&craft_opts(server, a.addr(40000), 7_000_000, 0, SYN, b"", o, 65535));
    let sa = Seg::parse(&a.take_one());
    assert!(sa.is(synack()), "{sa:?}");
    a.advance(Duration::from_millis(10));
    a.deliver(&craft_opts(server, a.addr(40000), 7_000_000, syn.seq.wrapping_add(1), synack(), b"", o, 65535));
    assert_eq!(a.state(id), Some(xdptcp::tcp::State::Established));
    let srtt = a.shard.info(id).unwrap().srtt.expect("a sample");
    assert_eq!(srtt, Duration::from_millis(10));
}

/// RFC 5681 §3.1: after a lost SYN-ACK the connection starts from one segment, as Linux applies
/// it (`tcp_init_transfer`: more than one SYN-ACK resent, a timeout among them). One
/// retransmission (1 s) leaves the initial window of 10; two (1 s, then 2 s later) bring it to
/// one segment.
#[test]
fn a_handshake_resent_twice_starts_from_one_segment() {
    let (b, id) = passive(cfg(), Duration::from_millis(1020), None);
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.cwnd, 10 * info.smss, "one SYN-ACK retransmission: the initial window");
    let (b, id) = passive(cfg(), Duration::from_millis(3020), None);
    assert_eq!(b.shard.counters().tcp_ext_tcp_syn_retrans, 2, "the SYN-ACK went three times");
    let info = b.shard.info(id).unwrap();
    assert_eq!(info.cwnd, info.smss, "two: one segment");
}

/// A SYN-ACK resent twice for nothing: the first one arrived (the path's RTT was longer than
/// the initial RTO, or a dormant radio held the ACK), and the final ACK echoes its timestamp.
/// Linux (`tcp_try_undo_spurious_syn`, 5.5) then keeps the initial window; so does the stack.
/// An ACK that echoes a resent SYN-ACK's timestamp keeps the one-segment window.
#[test]
fn a_handshake_resent_for_nothing_keeps_its_initial_window() {
    let c = Config { timestamps: true, ..cfg() };
    for (echo_first, want_iw) in [(true, 10u32), (false, 1)] {
        let mut b = Host::new("198.18.0.1", c.clone(), 11);
        b.shard.listen(80, None, 16).unwrap();
        let isn = 7_000_000u32;
        let o = TcpOptions { mss: Some(1460), timestamps: Some((5_000, 0)), ..TcpOptions::default() };
        b.deliver(&craft_opts(peer(), b.addr(80), isn, 0, SYN, b"", o, 65535));
        let first = Seg::parse(&b.take_one());
        b.run_until(b.now + Duration::from_millis(3020));
        b.flush();
        let resent: Vec<Seg> = b.take_segs().into_iter().filter(|s| s.is(synack())).collect();
        assert_eq!(resent.len(), 2, "the SYN-ACK went three times");
        let echoed = if echo_first { &first } else { &resent[1] };
        let ecr = echoed.options.timestamps.expect("timestamps negotiated").0;
        let o = TcpOptions { timestamps: Some((5_010, ecr)), ..TcpOptions::default() };
        b.deliver(&craft_opts(peer(), b.addr(80), isn + 1, first.seq.wrapping_add(1), ACK, b"", o, 65535));
        let id = b.shard.accept(80).expect("handshake completes");
        let info = b.shard.info(id).unwrap();
        assert_eq!(info.cwnd, want_iw * info.smss, "final ACK echoing the first SYN-ACK: {echo_first}");
    }
}

/// The same on an active open: our SYN resent twice (at 1 s and 3 s), then answered.
#[test]
fn a_syn_resent_twice_starts_from_one_segment() {
    for (wait, want_iw) in [(1010u64, 10u32), (3010, 1)] {
        let mut a = Host::new("198.18.0.2", cfg(), 14);
        let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
        let id = a.connect(40000, server);
        let syn = Seg::parse(&a.take_one());
        a.run_until(a.now + Duration::from_millis(wait));
        a.flush();
        a.take();
        let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
        a.deliver(&craft_opts(server, a.addr(40000), 9_000_000, syn.seq.wrapping_add(1), synack(), b"", o, 65535));
        let info = a.shard.info(id).unwrap();
        assert_eq!(info.cwnd, want_iw * info.smss, "SYN answered after {wait} ms");
    }
}

/// The same undo on an active open (Linux calls `tcp_try_undo_spurious_syn` in
/// `tcp_rcv_synsent_state_process` too): our SYN resent twice, then a SYN-ACK that echoes the
/// first SYN's timestamp keeps the initial window; one that echoes a resent SYN's does not.
#[test]
fn a_syn_resent_for_nothing_keeps_its_initial_window() {
    let c = Config { timestamps: true, ..cfg() };
    for (echo_first, want_iw) in [(true, 10u32), (false, 1)] {
        let mut a = Host::new("198.18.0.2", c.clone(), 14);
        let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
        let id = a.connect(40000, server);
        let first = Seg::parse(&a.take_one());
        a.run_until(a.now + Duration::from_millis(3010));
        a.flush();
        let resent: Vec<Seg> = a.take_segs().into_iter().filter(|s| s.is(SYN)).collect();
        assert_eq!(resent.len(), 2, "the SYN went three times");
        let echoed = if echo_first { &first } else { &resent[1] };
        let ecr = echoed.options.timestamps.expect("timestamps offered").0;
        let o = TcpOptions { mss: Some(1460), timestamps: Some((9_000, ecr)), ..TcpOptions::default() };
        a.deliver(&craft_opts(server, a.addr(40000), 9_000_000, first.seq.wrapping_add(1), synack(), b"", o, 65535));
        let info = a.shard.info(id).unwrap();
        assert_eq!(info.cwnd, want_iw * info.smss, "SYN-ACK echoing the first SYN: {echo_first}");
    }
}

/// A simultaneous open whose SYN-ACK was resent (at 1 s and 3 s) starts from one segment too,
/// as Linux's `tcp_init_transfer` counts SYN and SYN-ACK resends together (here the
/// retransmission timer's own loss window, RFC 5681 §3.1, already gives it).
#[test]
fn a_simultaneous_open_resent_twice_starts_from_one_segment() {
    let mut a = Host::new("198.18.0.2", cfg(), 15);
    let server: SocketAddr = "198.18.0.1:80".parse().unwrap();
    let id = a.connect(40000, server);
    let syn = Seg::parse(&a.take_one());
    let o = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    a.deliver(&craft_opts(server, a.addr(40000), 7_000_000, 0, SYN, b"", o, 65535));
    a.take();
    a.run_until(a.now + Duration::from_millis(3100));
    a.flush();
    let resent = a.take_segs().iter().filter(|s| s.is(synack())).count();
    assert_eq!(resent, 2, "the SYN-ACK resent twice");
    a.deliver(&craft_opts(server, a.addr(40000), 7_000_000, syn.seq.wrapping_add(1), synack(), b"", o, 65535));
    assert_eq!(a.state(id), Some(xdptcp::tcp::State::Established));
    let info = a.shard.info(id).unwrap();
    assert_eq!(info.cwnd, info.smss);
}
