//! Defects a review of `src/tcp` found (each shown here by a segment sequence that failed on the
//! code before its fix), and the decisions on the suspected ones. One test per defect, plus one
//! per class that would catch its siblings (resource limits on the receive path, every ICMP
//! class in every state, every RFC 6191 combination, the right edge of every ACK).

mod common;
use common::*;
use std::net::SocketAddr;
use xdptcp::tcp::{CloseReason, Config, ConnId, DropReason, Event, IcmpError, State, SynCookies, Verdict};
use xdptcp::time::Duration;
use xdptcp::wire::icmp::QuotedTcp;
use xdptcp::wire::{SeqNum, TcpOptions};

fn peer() -> SocketAddr {
    "198.18.0.2:40000".parse().unwrap()
}

/// A server connection built from crafted segments (no timestamps): (host, id, our SND.NXT,
/// the peer's next sequence number). The peer's ISN is `peer_isn`.
fn established(cfg: Config, peer_isn: u32, peer_window: u16) -> (Host, ConnId, u32, u32) {
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), peer_isn, 0, SYN, b"", syn_opts, peer_window));
    let sa = Seg::parse(&b.take_one());
    let rcv = peer_isn.wrapping_add(1);
    b.deliver(&craft_opts(
        peer(),
        b.addr(80),
        rcv,
        sa.seq.wrapping_add(1),
        ACK,
        b"",
        TcpOptions::default(),
        peer_window,
    ));
    let id = b.shard.accept(80).unwrap();
    b.take_events();
    (b, id, sa.seq.wrapping_add(1), rcv)
}

fn quote(b: &Host, seq: u32) -> QuotedTcp {
    QuotedTcp { src: b.ip, dst: peer().ip(), src_port: 80, dst_port: peer().port(), seq: SeqNum(seq) }
}

/// ICMPv4 destination host unreachable (soft), communication administratively prohibited
/// (hard), port unreachable (hard, refused).
const SOFT: (u8, u8) = (3, 1);
const HARD: (u8, u8) = (3, 13);
const REFUSED: (u8, u8) = (3, 3);

fn v4(tc: (u8, u8)) -> IcmpError {
    IcmpError::from_v4(tc.0, tc.1).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Defect 2: in-order data dropped while the out-of-order store is full (RFC 9293 §3.10.7.4,
// seventh step).
// ---------------------------------------------------------------------------------------------

/// The peer opens 16 holes (16 out-of-order pieces), then sends the data at RCV.NXT. It must be
/// taken at once (RCV.NXT moves, the ACK says so); then the peer fills every hole and every byte
/// reaches the application once, in order. Before the fix the in-order piece was refused for
/// ever and the connection died after `tcp_retries2`.
#[test]
fn established_in_order_data_is_taken_when_the_ooo_store_is_full() {
    let (mut b, id, snd, rcv) = established(plain_cfg(), 0xffff_ff00, 65535);
    let stream: Vec<u8> = (0..40 * 100).map(|i| (i * 7 % 251) as u8).collect();
    // Pieces 2, 4, 6, ... 34 (17 of them: one more than the store holds), each apart from the
    // next, and none touching piece 0.
    for k in (2..=34).step_by(2) {
        let off = k * 100;
        b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(off as u32), snd, ACK, &stream[off..off + 100]));
        let a = Seg::parse(&b.take_one());
        assert_eq!(a.ack, rcv, "out-of-order data is ACKed at once with the old RCV.NXT");
    }
    assert!(b.shard.counters().tcp_ext_tcp_ofo_drop + b.shard.counters().tcp_ext_ofo_pruned > 0);
    // <SEQ=RCV.NXT> piece 0: a 17th range, and in order: taken, the far end of the store
    // gives way.
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, ACK, &stream[..100]));
    let a = Seg::parse(&b.take_one());
    assert_eq!(a.ack, rcv.wrapping_add(100), "in-order data taken");
    assert!(b.shard.counters().tcp_ext_ofo_pruned > 0);
    // The peer goes back and sends everything in order (a retransmission after its RTO).
    for off in (100..stream.len()).step_by(100) {
        b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(off as u32), snd, ACK, &stream[off..off + 100]));
    }
    b.take();
    assert_eq!(b.recv_all(id), stream, "every byte once, in order, across the 2^32 wrap");
    assert_eq!(b.state(id), Some(State::Established));
}

/// The class: an adversarial peer keeps the out-of-order store full with one-byte pieces spread
/// over the window, round after round, while the real data arrives in order between them. The
/// store stays bounded, and the in-order stream always makes progress.
#[test]
fn established_adversarial_holes_never_stop_in_order_progress() {
    let (mut b, id, snd, rcv) = established(plain_cfg(), 12345, 65535);
    let mut next = rcv;
    let mut got = Vec::new();
    for round in 0..50u32 {
        // 40 one-byte pieces a round, spread over a region past the end of the stream the
        // test sends (they stay out of order for ever, 2000 of them in all).
        for k in 0..40u32 {
            let seq = rcv.wrapping_add(30_000 + (round * 40 + k) * 7919 % 30_000);
            b.deliver(&craft(peer(), b.addr(80), seq, snd, ACK, b"x"));
        }
        let chunk = [round as u8; 500];
        b.deliver(&craft(peer(), b.addr(80), next, snd, ACK, &chunk));
        let last_ack = b.take_segs().last().map(|s| s.ack);
        assert!(last_ack.is_some_and(|a| SeqNum(a).after_eq(SeqNum(next.wrapping_add(500)))), "round {round}");
        next = next.wrapping_add(500);
        let mut buf = [0u8; 500];
        let n = b.shard.recv(id, &mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        b.flush();
        assert_eq!(n, 500, "round {round}");
        assert!(buf.iter().all(|&x| x == round as u8));
        b.take();
    }
    assert_eq!(got.len(), 50 * 500);
}

/// The class, receive buffer: a peer that ignores the window and floods past it cannot make the
/// connection refuse the bytes at RCV.NXT once the application reads.
#[test]
fn established_data_beyond_the_window_is_cut_and_progress_resumes() {
    let cfg = Config { rcv_buf: 8192, ..plain_cfg() };
    let (mut b, id, snd, rcv) = established(cfg, 7, 65535);
    let big = vec![9u8; 1000];
    for k in 0..20u32 {
        b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(k * 1000), snd, ACK, &big));
    }
    let last = b.take_segs().pop().unwrap();
    assert_eq!(last.ack, rcv.wrapping_add(8192), "exactly the buffer was taken");
    assert_eq!(last.window, 0);
    assert_eq!(b.recv_all(id).len(), 8192);
    let upd = b.take_segs();
    assert!(upd.last().is_some_and(|s| s.window > 0), "window update after the read: {upd:?}");
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(8192), snd, ACK, b"more"));
    assert_eq!(b.recv_all(id), b"more");
}

// ---------------------------------------------------------------------------------------------
// Defect 3: a live peer holding a shrunk zero window (RFC 9293 §3.8.6, MUST-34/35).
// ---------------------------------------------------------------------------------------------

/// Data is in flight when the peer shrinks its window to zero, and it answers every
/// retransmission with <ACK=SND.UNA><WND=0>. Forty minutes later the connection is still up
/// (before the fix: aborted after `tcp_retries2` = 15 timeouts, about 15 minutes), and once the
/// window opens the data goes through.
#[test]
fn established_shrunk_zero_window_answered_stays_up() {
    let (mut b, id, snd, rcv) = established(plain_cfg(), 1000, 65535);
    b.shard.send(id, &[5u8; 3000]).unwrap();
    b.flush();
    assert_eq!(b.take_segs().len(), 3);
    // The peer shrinks the window to zero without acknowledging anything.
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, snd, ACK, b"", TcpOptions::default(), 0));
    let t0 = b.now;
    let mut answered = 0;
    while b.now < t0 + Duration::from_secs(40 * 60) {
        let next = b.shard.poll_timeout().expect("a timer must watch the data in flight");
        b.run_until(next);
        for s in b.take_segs() {
            assert_eq!(s.seq, snd, "only the first segment goes again, as a probe");
            b.deliver(&craft_opts(peer(), b.addr(80), rcv, snd, ACK, b"", TcpOptions::default(), 0));
            answered += 1;
        }
        b.take();
        assert_eq!(b.state(id), Some(State::Established), "after {answered} answered probes");
    }
    assert!(answered > 15, "more answered probes than tcp_retries2: {answered}");
    // The window opens and acknowledges everything.
    b.deliver(&craft(peer(), b.addr(80), rcv, snd.wrapping_add(3000), ACK, b""));
    assert_eq!(b.shard.info(id).unwrap().unacked, 0);
}

/// The other side of it: a zero-window peer that goes silent is given up, after twice the
/// maximum RTO without an answer (Linux `tcp_rtx_probe0_timed_out`), not never.
#[test]
fn established_shrunk_zero_window_silent_times_out() {
    let (mut b, id, snd, rcv) = established(plain_cfg(), 1000, 65535);
    b.shard.send(id, &[5u8; 1000]).unwrap();
    b.flush();
    b.take();
    b.deliver(&craft_opts(peer(), b.addr(80), rcv, snd, ACK, b"", TcpOptions::default(), 0));
    let t0 = b.now;
    b.run_until(t0 + Duration::from_secs(3600));
    assert!(b.take_events().contains(&Event::Closed(id, CloseReason::TimedOut)));
    assert_eq!(b.state(id), Some(State::Closed));
}

// ---------------------------------------------------------------------------------------------
// Defect 4: RFC 6191 reuse with an equal TSval and a higher sequence number.
// ---------------------------------------------------------------------------------------------

/// The server holds TIME-WAIT with TS.Recent = the client's last TSval. A new SYN whose TSval
/// equals TS.Recent (a client whose timestamp clock did not tick, or one that starts each
/// connection at the same TSval) but whose sequence number is above RCV.NXT reuses the tuple,
/// as Linux accepts `after(seq, rcv_nxt) || tsval newer` once PAWS passes.
#[test]
fn time_wait_syn_with_equal_tsval_and_higher_seq_reuses() {
    let mut b = Host::new("198.18.0.1", Config::default(), 5);
    b.shard.listen(80, None, 16).unwrap();
    let ts = |v: u32, e: u32| TcpOptions { timestamps: Some((v, e)), ..TcpOptions::default() };
    let syn_opts = TcpOptions { mss: Some(1460), timestamps: Some((500, 0)), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1000, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let our_ts = sa.options.timestamps.unwrap().0;
    let snd = sa.seq.wrapping_add(1);
    b.deliver(&craft_opts(peer(), b.addr(80), 1001, snd, ACK, b"", ts(500, our_ts), 65535));
    let id = b.shard.accept(80).unwrap();
    // The server closes first; the client's FIN-ACK puts the server in TIME-WAIT.
    b.close(id);
    let fin = Seg::parse(&b.take_one());
    assert!(fin.flags.fin());
    b.deliver(&craft_opts(peer(), b.addr(80), 1001, snd.wrapping_add(1), finack(), b"", ts(500, our_ts), 65535));
    b.take();
    assert_eq!(b.state_of(80, peer()), Some(State::TimeWait));
    // RCV.NXT is 1002. A SYN with the same TSval and a higher sequence number:
    b.deliver(&craft_opts(peer(), b.addr(80), 90_000, 0, SYN, b"", syn_opts, 65535));
    let r = Seg::parse(&b.take_one());
    assert!(r.is(synack()), "reused: {r:?}");
    assert_eq!(r.ack, 90_001);
    assert_eq!(b.shard.counters().tcp_ext_tw_recycled, 1);
    // Same TSval, lower sequence number: an old duplicate; TIME-WAIT would answer with an ACK.
}

// ---------------------------------------------------------------------------------------------
// Defect 5: ICMP hard errors in SYN-SENT (RFC 9293 §3.9.2.2, SHLD-26; RFC 1122 §4.2.3.9).
// ---------------------------------------------------------------------------------------------

/// A connect whose SYN draws an ICMP port unreachable ends at once with "refused" (Linux:
/// ECONNREFUSED), and no SYN is retransmitted. Before the fix the error was taken as soft and the
/// connect waited out every SYN retry (about 127 s).
#[test]
fn syn_sent_port_unreachable_refuses_the_connect() {
    let mut a = Host::new("198.18.0.1", plain_cfg(), 1);
    let id = a.shard.connect(a.now, a.addr(80), peer()).unwrap();
    a.flush();
    let syn = Seg::parse(&a.take_one());
    // A quote with any other sequence number than ISS is ignored (RFC 5927 §4.1).
    let v = a.shard.handle_icmp_error(a.now, &quote(&a, syn.seq.wrapping_add(1)), v4(REFUSED), &mut a.out);
    assert_eq!(v, Verdict::Drop(DropReason::IcmpOutOfWindow));
    assert_eq!(a.state(id), Some(State::SynSent));
    let v = a.shard.handle_icmp_error(a.now, &quote(&a, syn.seq), v4(REFUSED), &mut a.out);
    assert_eq!(v, Verdict::Consumed);
    a.flush();
    assert!(a.take_events().contains(&Event::Closed(id, CloseReason::Refused)));
    assert_eq!(a.state(id), Some(State::Closed));
    a.run_until(a.now + Duration::from_secs(200));
    a.expect_nothing();
    assert_eq!(a.shard.counters().tcp_attempt_fails, 1);
}

/// Every ICMP class in every state where it can arrive: SYN-SENT ends on hard and soft errors
/// (RFC 9293 §3.9.2.2 notes this treatment of soft errors during establishment, and Linux does
/// it); ESTABLISHED never ends (MUST-56 for soft ones; hard ones are recorded, as Linux does);
/// a SYN-queue entry goes on a soft error that quotes its ISS (Linux `tcp_req_err`).
#[test]
fn icmp_error_classes_by_state() {
    for (err, reason) in
        [(SOFT, CloseReason::Unreachable), (HARD, CloseReason::Unreachable), (REFUSED, CloseReason::Refused)]
    {
        let mut a = Host::new("198.18.0.1", plain_cfg(), 1);
        let id = a.shard.connect(a.now, a.addr(80), peer()).unwrap();
        a.flush();
        let syn = Seg::parse(&a.take_one());
        a.shard.handle_icmp_error(a.now, &quote(&a, syn.seq), v4(err), &mut a.out);
        a.flush();
        assert!(a.take_events().contains(&Event::Closed(id, reason)), "{err:?} in SYN-SENT");
    }
    for err in [SOFT, HARD, REFUSED] {
        let (mut b, id, snd, _rcv) = established(plain_cfg(), 1000, 65535);
        b.shard.send(id, b"in flight").unwrap();
        b.flush();
        b.take();
        for _ in 0..10 {
            assert_eq!(b.shard.handle_icmp_error(b.now, &quote(&b, snd), v4(err), &mut b.out), Verdict::Consumed);
        }
        assert_eq!(b.state(id), Some(State::Established), "{err:?} in ESTABLISHED");
        assert_eq!(b.shard.info(id).unwrap().soft_error, Some(v4(err)), "reported to the application");
    }
    for (err, stays) in [(SOFT, false), (HARD, true), (REFUSED, true)] {
        let mut b = Host::new("198.18.0.1", plain_cfg(), 5);
        b.shard.listen(80, None, 16).unwrap();
        b.deliver(&craft(peer(), b.addr(80), 100, 0, SYN, b""));
        let sa = Seg::parse(&b.take_one());
        // The wrong sequence number is ignored whatever the error.
        b.shard.handle_icmp_error(b.now, &quote(&b, sa.seq.wrapping_add(7)), v4(err), &mut b.out);
        assert_eq!(b.state_of(80, peer()), Some(State::SynReceived));
        b.shard.handle_icmp_error(b.now, &quote(&b, sa.seq), v4(err), &mut b.out);
        assert_eq!(b.state_of(80, peer()).is_some(), stays, "{err:?} for a SYN-queue entry");
    }
}

// ---------------------------------------------------------------------------------------------
// Defect 6: a valid cookie ACK meets a SYN-queue entry made by a retransmitted SYN.
// ---------------------------------------------------------------------------------------------

/// The client's SYN found the SYN queue full and got a cookie SYN-ACK; the queue drained; the
/// client's retransmitted SYN (its cookie SYN-ACK crossed it) made a SYN-queue entry with
/// another ISS. The client's ACK of the cookie must make the connection (Linux hands it to the
/// listener, where the cookie is checked), not a RST.
#[test]
fn syn_received_valid_cookie_ack_completes_instead_of_rst() {
    let cfg = Config { max_syn_backlog: 1, ..plain_cfg() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let other: SocketAddr = "198.18.0.3:50000".parse().unwrap();
    b.deliver(&craft(other, b.addr(80), 7000, 0, SYN, b""));
    b.take();
    // The queue is full: the client gets a cookie.
    b.deliver(&craft(peer(), b.addr(80), 100, 0, SYN, b""));
    let cookie = Seg::parse(&b.take_one());
    assert_eq!(b.shard.counters().tcp_ext_syncookies_sent, 1);
    // The other half-open connection goes away (its RST), the client's SYN comes again.
    b.deliver(&craft(other, b.addr(80), 7001, 0, RST, b""));
    b.deliver(&craft(peer(), b.addr(80), 100, 0, SYN, b""));
    let queued = Seg::parse(&b.take_one());
    assert_ne!(queued.seq, cookie.seq);
    assert_eq!(b.state_of(80, peer()), Some(State::SynReceived));
    // The ACK of the cookie SYN-ACK arrives.
    b.deliver(&craft(peer(), b.addr(80), 101, cookie.seq.wrapping_add(1), ACK, b"hello"));
    let out = b.take_segs();
    assert!(out.iter().all(|s| !s.flags.rst()), "no RST for a valid cookie: {out:?}");
    assert_eq!(b.state_of(80, peer()), Some(State::Established));
    let id = b.shard.accept(80).unwrap();
    assert_eq!(b.recv_all(id), b"hello");
    assert_eq!(b.shard.counters().tcp_ext_syncookies_recv, 1);
    // A forged ACK (neither the entry's ISS nor a cookie) is still reset.
    let mut b2 = Host::new("198.18.0.1", Config { syncookies: SynCookies::Always, ..plain_cfg() }, 5);
    b2.shard.listen(80, None, 16).unwrap();
    b2.deliver(&craft(peer(), b2.addr(80), 100, 0, SYN, b""));
    let c = Seg::parse(&b2.take_one());
    b2.deliver(&craft(peer(), b2.addr(80), 101, c.seq.wrapping_add(99), ACK, b""));
    assert!(Seg::parse(&b2.take_one()).flags.rst());
}

// ---------------------------------------------------------------------------------------------
// Suspected, decided: TIME-WAIT rate limit and timer restart; the right edge; simultaneous open.
// ---------------------------------------------------------------------------------------------

/// A server-side TIME-WAIT entry built from crafted segments (no timestamps): (host, our
/// SND.NXT, RCV.NXT).
fn server_time_wait(cfg: Config) -> (Host, u32, u32) {
    let (mut b, id, snd, rcv) = established(cfg, 1000, 65535);
    b.close(id);
    b.take();
    b.deliver(&craft(peer(), b.addr(80), rcv, snd.wrapping_add(1), finack(), b""));
    b.take();
    assert_eq!(b.state_of(80, peer()), Some(State::TimeWait));
    (b, snd.wrapping_add(1), rcv.wrapping_add(1))
}

/// Linux `tcp_timewait_check_oow_rate_limit`: a burst of unacceptable pure ACKs draws one ACK
/// per `tcp_invalid_ratelimit` (500 ms), counted as skipped; a retransmitted FIN is always
/// answered.
#[test]
fn time_wait_acks_are_rate_limited() {
    let (mut b, snd, rcv) = server_time_wait(plain_cfg());
    for _ in 0..10 {
        b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(50_000), snd, ACK, b""));
    }
    assert_eq!(b.take_segs().len(), 1);
    assert_eq!(b.shard.counters().tcp_ext_tcp_ack_skipped_time_wait, 9);
    for _ in 0..3 {
        b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_sub(1), snd, finack(), b""));
    }
    assert_eq!(b.take_segs().len(), 3, "a retransmitted FIN is always re-ACKed");
    b.advance(Duration::from_millis(600));
    b.deliver(&craft(peer(), b.addr(80), rcv.wrapping_add(50_000), snd, ACK, b""));
    assert_eq!(b.take_segs().len(), 1);
}

/// Linux (`tcp_timewait_state_process`): an acceptable bare ACK in TIME-WAIT restarts the
/// 2·MSL timer and is not answered.
#[test]
fn time_wait_in_window_ack_restarts_2msl() {
    let (mut b, snd, rcv) = server_time_wait(plain_cfg());
    let t0 = b.now;
    b.run_until(t0 + Duration::from_secs(50));
    b.deliver(&craft(peer(), b.addr(80), rcv, snd, ACK, b""));
    b.expect_nothing();
    b.run_until(t0 + Duration::from_secs(100));
    assert_eq!(b.state_of(80, peer()), Some(State::TimeWait), "restarted at 50 s");
    b.run_until(t0 + Duration::from_secs(111));
    assert_eq!(b.state_of(80, peer()), None);
}

/// RFC 9293 §3.8.6.2.2 (SHLD-14): the right edge (SEG.ACK + SEG.WND << scale) of our ACKs never
/// moves left of an edge already offered within the receive buffer. With window scale 3 and
/// in-order segments of every size from 1 to 300 bytes, not read by the application, rounding
/// the free space down alone moves it left by up to 7 bytes. Rounding up instead (Linux
/// `tcp_select_window`) can offer up to 7 bytes past the buffer's end; those are not a
/// commitment (Linux does not record them in `rcv_wnd` either), so the only edges a later ACK
/// may fall short of are ones that lay past the buffer. Ends when the window is closed.
#[test]
fn established_right_edge_never_moves_left_with_window_scaling() {
    let cfg = Config { rcv_buf: 300_000, ..plain_cfg() };
    assert_eq!(cfg.rcv_wscale(), 3);
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let snd = sa.seq.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), 2, snd, ACK, b""));
    b.shard.accept(80).unwrap();
    // The end of the receive buffer in sequence space: nothing is read, so it stays put.
    let buffer_end = SeqNum(2 + 300_000);
    let mut seq = 2u32;
    let mut offered = SeqNum(seq.wrapping_add(u32::from(sa.window)));
    let data = [1u8; 1460];
    let mut len = 1usize;
    let mut acks = 0;
    loop {
        b.deliver(&craft(peer(), b.addr(80), seq, snd, ACK, &data[..len]));
        seq = seq.wrapping_add(len as u32);
        for s in b.take_segs() {
            let e = SeqNum(s.ack.wrapping_add(u32::from(s.window) << 3));
            let floor = if offered.after(buffer_end) { buffer_end } else { offered };
            assert!(e.after_eq(floor), "right edge moved left: {offered:?} -> {e:?} after {acks} ACKs");
            offered = offered.max(e);
            acks += 1;
        }
        if offered.distance_from(SeqNum(seq)) < 1460 {
            break;
        }
        len = len % 300 + 1;
    }
    assert!(acks > 100);
    // Everything offered was taken: the peer may fill the window to the last byte it was told.
    let room = offered.distance_from(SeqNum(seq)) as usize;
    b.deliver(&craft(peer(), b.addr(80), seq, snd, ACK, &data[..room]));
    assert_eq!(b.take_segs().last().map(|s| s.ack), Some(offered.0));
}

/// Simultaneous open after several SYN retransmissions (RFC 9293 Figure 7): SYN-RECEIVED goes
/// on counting against `tcp_syn_retries` (Linux `tcp_write_timeout`), so its first SYN-ACK
/// timeout retransmits instead of aborting. Before the fix the SYN's 5 retries met
/// `tcp_synack_retries` (5) and the first SYN-ACK timeout aborted.
#[test]
fn simultaneous_open_after_syn_retries_retransmits_synack() {
    let mut a = Host::new("198.18.0.1", plain_cfg(), 1);
    let id = a.shard.connect(a.now, a.addr(80), peer()).unwrap();
    a.flush();
    let syn = Seg::parse(&a.take_one());
    for _ in 0..5 {
        let next = a.shard.poll_timeout().unwrap();
        a.run_until(next);
        assert!(Seg::parse(&a.take_one()).is(SYN));
    }
    assert_eq!(a.shard.info(id).unwrap().retries, 5);
    // The peer's own SYN arrives: SYN-RECEIVED, SYN-ACK.
    a.deliver(&craft(peer(), a.addr(80), 9000, 0, SYN, b""));
    assert!(Seg::parse(&a.take_one()).is(synack()));
    assert_eq!(a.state(id), Some(State::SynReceived));
    let next = a.shard.poll_timeout().unwrap();
    a.run_until(next);
    let again = Seg::parse(&a.take_one());
    assert!(again.is(synack()), "retransmitted, not aborted");
    assert_eq!(again.seq, syn.seq);
    assert_eq!(a.state(id), Some(State::SynReceived));
}

// ---------------------------------------------------------------------------------------------
// The class: every bounded table a peer can fill, filled, and the stack still makes progress.
// ---------------------------------------------------------------------------------------------

/// `tcp_max_tw_buckets` reached: further closes still complete (no TIME-WAIT entry, counted as
/// Linux's TcpExtTCPTimeWaitOverflow), nothing leaks, and new connections are served.
#[test]
fn time_wait_table_full_closes_still_complete() {
    let cfg = Config { max_tw_buckets: 4, ..plain_cfg() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 64).unwrap();
    for i in 0..10u16 {
        let p: SocketAddr = format!("198.18.0.2:{}", 41000 + i).parse().unwrap();
        b.deliver(&craft(p, b.addr(80), 1000, 0, SYN, b""));
        let sa = Seg::parse(&b.take_one());
        let snd = sa.seq.wrapping_add(1);
        b.deliver(&craft(p, b.addr(80), 1001, snd, ACK, b""));
        let id = b.shard.accept(80).unwrap();
        b.close(id);
        b.take();
        b.deliver(&craft(p, b.addr(80), 1001, snd.wrapping_add(1), finack(), b""));
        b.take();
    }
    assert_eq!(b.shard.time_wait_len(), 4);
    assert_eq!(b.shard.counters().tcp_ext_tcp_time_wait_overflow, 6);
    assert_eq!(b.shard.conn_count(), 0, "no TCB left behind");
    // A new connection still works.
    b.deliver(&craft(peer(), b.addr(80), 5, 0, SYN, b""));
    assert!(Seg::parse(&b.take_one()).is(synack()));
}

/// The connection table full (`max_connections`): a final ACK that finds no room is dropped
/// and its SYN-queue entry kept; once a connection goes, the SYN-ACK retransmission brings the
/// client's ACK again and the handshake completes.
#[test]
fn connection_table_full_then_room_again() {
    let cfg = Config { max_connections: 2, ..plain_cfg() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 64).unwrap();
    let mut ids = Vec::new();
    let mut isses = Vec::new();
    for i in 0..3u16 {
        let p: SocketAddr = format!("198.18.0.2:{}", 42000 + i).parse().unwrap();
        b.deliver(&craft(p, b.addr(80), 1000, 0, SYN, b""));
        let sa = Seg::parse(&b.take_one());
        isses.push(sa.seq);
        b.deliver(&craft(p, b.addr(80), 1001, sa.seq.wrapping_add(1), ACK, b""));
        if let Some(id) = b.shard.accept(80) {
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 2);
    let third: SocketAddr = "198.18.0.2:42002".parse().unwrap();
    assert_eq!(b.shard.counters().drops[DropReason::TableFull.index()], 1);
    assert_eq!(b.state_of(80, third), Some(State::SynReceived));
    // One connection is aborted; the third client's SYN-ACK comes again and it ACKs again.
    b.shard.abort(b.now, ids[0], &mut b.out).unwrap();
    b.flush();
    b.take();
    let next = b.shard.poll_timeout().unwrap();
    b.run_until(next);
    let again = Seg::parse(&b.take_one());
    assert!(again.is(synack()));
    assert_eq!(again.seq, isses[2]);
    b.deliver(&craft(third, b.addr(80), 1001, isses[2].wrapping_add(1), ACK, b""));
    assert_eq!(b.state_of(80, third), Some(State::Established));
}

// ---------------------------------------------------------------------------------------------
// From the outside review of the fixes: SWS on reopening, SYN-queue answer limits, IPv6 ICMP
// against SYN-queue entries.
// ---------------------------------------------------------------------------------------------
/// The receive buffer is full and the window closed. The application then reads one byte at a
/// time. RFC 9293 §3.8.6.2.2 (MUST-39): the right edge stays put until the space freed reaches
/// min(RCV.BUFF/2, Eff.snd.MSS); Linux (`__tcp_select_window`) offers 0 while free space is
/// below one MSS. The stack reopens the window by one byte per read, and a peer filling it sends
/// one-byte segments for ever.
#[test]
fn reopening_a_closed_window_by_one_byte() {
    let cfg = Config { rcv_buf: 8192, ..plain_cfg() };
    let mut b = Host::new("198.18.0.1", cfg, 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer(), b.addr(80), 1000, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let snd = sa.seq.wrapping_add(1);
    b.deliver(&craft(peer(), b.addr(80), 1001, snd, ACK, b""));
    let id = b.shard.accept(80).unwrap();
    let mut seq = 1001u32;
    while b.shard.info(id).unwrap().rcv_wnd > 0 {
        let n = b.shard.info(id).unwrap().rcv_wnd.min(1000) as usize;
        b.deliver(&craft(peer(), b.addr(80), seq, snd, ACK, &vec![7u8; n]));
        seq = seq.wrapping_add(n as u32);
    }
    b.advance(xdptcp::time::Duration::from_millis(100));
    let last = b.take_segs().pop().unwrap();
    assert_eq!(last.window, 0, "window closed");
    let mut tiny = Vec::new();
    for _ in 0..10 {
        let mut one = [0u8; 1];
        assert_eq!(b.shard.recv(id, &mut one).unwrap(), 1);
        b.flush();
        for s in b.take_segs() {
            if s.window > 0 {
                tiny.push(s.window);
            }
            // The peer fills whatever it is offered.
            let w = s.window as usize;
            if w > 0 {
                b.deliver(&craft(peer(), b.addr(80), seq, snd, ACK, &vec![7u8; w]));
                seq = seq.wrapping_add(w as u32);
                b.take();
            }
        }
    }
    assert!(tiny.is_empty(), "window reopened in silly steps: {tiny:?}");
}

#[test]
fn syn_queue_entry_answers_are_rate_limited() {
    let cfg = Config::default(); // invalid_ratelimit 500 ms
    let mut b = Host::new("198.18.0.1", Config { timestamps: false, ..cfg }, 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    let syn = craft_opts(peer(), b.addr(80), 1000, 0, SYN, b"", syn_opts, 65535);
    b.deliver(&syn);
    let sa = Seg::parse(&b.take_one());
    let snd = sa.seq.wrapping_add(1);
    let mut answers = [0usize; 3];
    for _ in 0..10 {
        // An out-of-window ACK, an in-window inexact RST, and the SYN again, all at once.
        b.deliver(&craft(peer(), b.addr(80), 1001 + 5_000_000, snd, ACK, b""));
        answers[0] += b.take().len();
        b.deliver(&craft(peer(), b.addr(80), 1001 + 100, 0, RST, b""));
        answers[1] += b.take().len();
        b.deliver(&syn);
        answers[2] += b.take().len();
    }
    // Linux 6.18 (differential scenarios atk_syn_queue_*): one answer per kind, the rest skipped.
    assert!(answers.iter().all(|&n| n <= 1), "answers to 10 oow ACKs / 10 RSTs / 10 SYNs within 1 ms: {answers:?}");
}

fn peer6() -> SocketAddr {
    "[2001:db8::2]:40000".parse().unwrap()
}

fn entry_after(icmp_type: u8, code: u8) -> Option<State> {
    let mut b = Host::new("2001:db8::1", plain_cfg(), 5);
    b.shard.listen(80, None, 16).unwrap();
    let syn_opts = TcpOptions { mss: Some(1440), ..TcpOptions::default() };
    b.deliver(&craft_opts(peer6(), b.addr(80), 1000, 0, SYN, b"", syn_opts, 65535));
    let sa = Seg::parse(&b.take_one());
    let q = QuotedTcp { src: b.ip, dst: peer6().ip(), src_port: 80, dst_port: peer6().port(), seq: SeqNum(sa.seq) };
    let err = IcmpError::from_v6(icmp_type, code).unwrap();
    b.shard.handle_icmp_error(b.now, &q, err, &mut b.out);
    b.state_of(80, peer6())
}

/// Linux keeps the request on the non-fatal ICMPv6 errors (no route, address unreachable, time
/// exceeded) and drops it on the fatal ones (administratively prohibited, port unreachable,
/// parameter problem). The stack does the reverse for all but parameter problem.
#[test]
fn icmpv6_errors_against_a_syn_queue_entry_follow_linux() {
    // (type, code, Linux keeps the entry)
    let rows = [(1u8, 0u8, true), (1, 3, true), (3, 0, true), (1, 1, false), (1, 4, false), (4, 0, false)];
    let mut wrong = Vec::new();
    for (t, c, keep) in rows {
        let kept = entry_after(t, c) == Some(State::SynReceived);
        if kept != keep {
            wrong.push(format!("type {t} code {c}: kept={kept}, Linux keeps={keep}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
