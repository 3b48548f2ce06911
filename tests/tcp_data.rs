//! Data transfer: ordering and the out-of-order queue, delayed ACKs, windows and window scale,
//! zero-window probes, fast retransmit (RFC 5681/6582), RTT from timestamps (RFC 7323), PAWS,
//! and ICMP packet-too-big (RFC 5927).

mod common;
use common::*;
use xdptcp::tcp::{Config, ConnId, DropReason, IcmpError, State, Verdict};
use xdptcp::time::Duration;
use xdptcp::wire::icmp::QuotedTcp;
use xdptcp::wire::{TcpFlags, TcpOptions};

fn connect(cfg_a: Config, cfg_b: Config) -> (Host, Host, ConnId, ConnId) {
    let mut a = Host::new("198.18.0.2", cfg_a, 1);
    let mut b = Host::new("198.18.0.1", cfg_b, 2);
    let (ida, idb) = handshake(&mut a, &mut b);
    (a, b, ida, idb)
}

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

/// Segments that arrive out of order are held and delivered in order; each out-of-order one is
/// ACKed at once with RCV.NXT (the duplicate ACKs fast retransmit relies on, RFC 5681 §4.2).
#[test]
fn out_of_order_segments_are_reassembled() {
    let (mut a, mut b, ida, idb) = connect(plain_cfg(), plain_cfg());
    let data = pattern(3000, 7);
    a.shard.send(ida, &data).unwrap();
    a.flush();
    let segs = a.take();
    assert_eq!(segs.len(), 3, "1460 + 1460 + 80");
    let first_seq = Seg::parse(&segs[0]).seq;
    b.deliver(&segs[2]);
    let d = Seg::parse(&b.take_one());
    assert_eq!(d.ack, first_seq, "duplicate ACK for the hole");
    b.deliver(&segs[1]);
    assert_eq!(Seg::parse(&b.take_one()).ack, first_seq);
    assert_eq!(b.shard.readable(idb), 0);
    b.deliver(&segs[0]);
    let ack = Seg::parse(&b.take_one());
    assert_eq!(ack.ack, first_seq.wrapping_add(3000), "the filled hole is ACKed at once");
    assert_eq!(b.recv_all(idb), data);
    assert_eq!(b.shard.counters().tcp_ext_tcp_ofo_queue, 2);
}

/// RFC 5681 §4.2 / RFC 9293 §3.8.6.3: one segment alone waits for the delayed-ACK timer (40 ms
/// here, as Linux); a second full segment is ACKed at once.
#[test]
fn delayed_ack_timer_and_every_second_segment() {
    let (mut a, mut b, ida, _idb) = connect(plain_cfg(), plain_cfg());
    a.shard.send(ida, &[1u8; 100]).unwrap();
    a.flush();
    b.deliver(&a.take_one());
    b.expect_nothing();
    b.advance(Duration::from_millis(39));
    b.expect_nothing();
    b.advance(Duration::from_millis(1));
    let ack = Seg::parse(&b.take_one());
    assert!(ack.is(ACK));
    assert_eq!(b.shard.counters().tcp_ext_tcp_delayed_acks, 1);
    a.shard.send(ida, &[2u8; 2920]).unwrap();
    a.flush();
    for p in a.take() {
        b.shard.handle_ip(b.now, &p, &mut b.out);
    }
    b.flush();
    assert_eq!(b.take_segs().len(), 1, "one ACK for two full segments");
}

/// The ACK a response carries replaces the delayed ACK: request in, response out, one segment.
#[test]
fn response_piggybacks_the_ack() {
    let (mut a, mut b, ida, idb) = connect(plain_cfg(), plain_cfg());
    a.shard.send(ida, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    a.flush();
    b.shard.handle_ip(b.now, &a.take_one(), &mut b.out);
    assert_eq!(b.recv_all(idb).len(), 18);
    b.shard.send(idb, b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
    b.flush();
    let segs = b.take_segs();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].payload.len(), 19);
}

/// RFC 7323 §2: with window scaling, the advertised window covers the whole receive buffer and
/// a sender may have more than 64 KiB in flight.
#[test]
fn window_scale_allows_large_windows() {
    let cfg = Config { rcv_buf: 1 << 20, snd_buf: 1 << 20, initial_cwnd: 100, ..plain_cfg() };
    let (mut a, mut b, ida, idb) = connect(cfg.clone(), cfg);
    let ia = a.shard.info(ida).unwrap();
    assert_eq!((ia.rcv_wscale, ia.snd_wscale), (5, 5));
    // RFC 7323 §2.2: the SYN-ACK's window is not scaled, so it said at most 65535 ...
    assert_eq!(ia.snd_wnd, 65535);
    // ... and the first segment after it announces the whole buffer, scaled.
    b.shard.send(idb, b"hi").unwrap();
    b.flush();
    a.deliver(&b.take_one());
    a.take();
    assert_eq!(a.shard.info(ida).unwrap().snd_wnd, 1 << 20);
    let data = pattern(100_000, 3);
    a.shard.send(ida, &data).unwrap();
    a.flush();
    let segs = a.take();
    let bytes: usize = segs.iter().map(|p| Seg::parse(p).payload.len()).sum();
    assert_eq!(bytes, 100_000, "all in flight at once: more than 64 KiB");
    for p in segs {
        b.shard.handle_ip(b.now, &p, &mut b.out);
    }
    b.flush();
    assert_eq!(b.recv_all(idb), data);
}

/// RFC 9293 §3.8.6.1: a zero window is probed, with backoff, and the transfer resumes when the
/// receiver reads (the window update reopens it).
#[test]
fn zero_window_probe_and_reopen() {
    let small = Config { rcv_buf: 4096, ..plain_cfg() };
    let (mut a, mut b, ida, idb) = connect(plain_cfg(), small);
    let data = pattern(10_000, 9);
    a.shard.send(ida, &data).unwrap();
    a.flush();
    // B's window (4096) takes 2 segments, then 1176 bytes: less than an MSS and half the
    // window, they wait for the sender SWS override timeout (RFC 9293 §3.8.6.2.1, the
    // persist timer, one RTO). Nothing is read, so the window closes.
    for _ in 0..5 {
        for p in a.take() {
            b.deliver(&p);
        }
        b.advance(Duration::from_millis(40)); // delayed ACK
        for p in b.take() {
            a.deliver(&p);
        }
        a.advance(Duration::from_millis(300));
    }
    assert_eq!(a.shard.info(ida).unwrap().snd_wnd, 0);
    assert_eq!(b.shard.readable(idb), 4096);
    // Probes <SEQ=SND.UNA-1> go out with exponential backoff; B answers each with window 0.
    let t0 = a.now;
    let mut probes = Vec::new();
    for ms in (0..10_000).step_by(50) {
        a.run_until(t0 + Duration::from_millis(ms));
        for p in a.take() {
            let s = Seg::parse(&p);
            assert!(s.payload.is_empty());
            probes.push(ms);
            b.deliver(&p);
            for r in b.take() {
                assert_eq!(Seg::parse(&r).window, 0);
                a.deliver(&r);
            }
        }
    }
    assert!(probes.len() >= 3, "{probes:?}");
    assert!(probes[2] - probes[1] > probes[1] - probes[0], "backoff: {probes:?}");
    assert!(a.shard.counters().tcp_ext_tcp_zero_window_probes >= 3);
    // Reading opens the window; B says so; the rest flows.
    let mut got = b.recv_all(idb);
    for _ in 0..20 {
        for p in b.take() {
            a.deliver(&p);
        }
        for p in a.take() {
            b.deliver(&p);
        }
        got.extend(b.recv_all(idb));
    }
    assert_eq!(got, data);
    assert_eq!(a.state(ida), Some(State::Established));
}

/// RFC 5681 §3.2 and RFC 6582: the third duplicate ACK triggers a fast retransmit of the missing
/// segment, well before the RTO; recovery ends with everything acknowledged.
#[test]
fn fast_retransmit_on_three_duplicate_acks() {
    let (mut a, mut b, ida, idb) = connect(plain_cfg(), plain_cfg());
    let data = pattern(8 * 1460, 1);
    a.shard.send(ida, &data).unwrap();
    a.flush();
    let segs = a.take();
    assert_eq!(segs.len(), 8);
    let lost_seq = Seg::parse(&segs[1]).seq;
    for (i, p) in segs.iter().enumerate() {
        if i != 1 {
            b.deliver(p);
        }
    }
    let acks = b.take();
    assert!(acks.len() >= 4);
    let mut retransmitted = None;
    for p in acks {
        a.deliver(&p);
        for s in a.take() {
            retransmitted = Some(s);
        }
    }
    let r = Seg::parse(&retransmitted.expect("fast retransmit"));
    assert_eq!(r.seq, lost_seq);
    assert_eq!(a.shard.counters().tcp_ext_tcp_fast_retrans, 1);
    assert_eq!(a.shard.counters().tcp_ext_tcp_timeouts, 0);
    b.deliver(&craft_back(&r));
    for p in b.take() {
        a.deliver(&p);
    }
    assert_eq!(b.recv_all(idb), data);
    assert_eq!(a.shard.info(ida).unwrap().unacked, 0);
}

fn craft_back(s: &Seg) -> Vec<u8> {
    craft_opts(s.src, s.dst, s.seq, s.ack, s.flags, &s.payload, s.options, s.window)
}

/// RFC 7323 §4: the RTT comes from TSecr; RFC 6298 turns it into the RTO.
#[test]
fn rtt_from_timestamps_sets_rto() {
    let (mut a, mut b, ida, _idb) = connect(Config::default(), Config::default());
    assert!(a.shard.info(ida).unwrap().ts_ok);
    a.shard.send(ida, &[0u8; 1000]).unwrap();
    a.flush();
    let p = a.take_one();
    b.advance(Duration::from_millis(30));
    b.deliver(&p);
    b.advance(Duration::from_millis(40)); // delayed ACK
    let ack = b.take_one();
    a.advance(Duration::from_millis(70));
    a.deliver(&ack);
    // Samples: 0 ms from the handshake (RFC 6298 (2.2): SRTT 0, RTTVAR 0), then 70 ms (2.3):
    // RTTVAR = 3/4*0 + 1/4*70 = 17.5 ms, SRTT = 7/8*0 + 1/8*70 = 8.75 ms,
    // RTO = 8.75 + 4*17.5 = 78.75 ms, raised to the 200 ms floor.
    let info = a.shard.info(ida).unwrap();
    assert_eq!(info.srtt, Some(Duration::from_micros(8750)));
    assert_eq!(info.rto, Duration::from_millis(200));
}

/// RFC 7323 §5: PAWS drops a segment whose TSval is older than TS.Recent, and ACKs it.
#[test]
fn paws_rejects_old_timestamps() {
    let (mut a, mut b, ida, idb) = connect(Config::default(), Config::default());
    a.shard.send(ida, b"one").unwrap();
    a.flush();
    let p1 = Seg::parse(&a.take_one());
    b.deliver(&craft_back(&p1));
    assert_eq!(b.recv_all(idb), b"one");
    b.take();
    let (tsval, tsecr) = p1.options.timestamps.unwrap();
    let opts = TcpOptions { timestamps: Some((tsval.wrapping_sub(1000), tsecr)), ..TcpOptions::default() };
    let old = craft_opts(p1.src, p1.dst, p1.seq.wrapping_add(3), p1.ack, ACK | TcpFlags::PSH, b"two", opts, p1.window);
    assert_eq!(b.deliver(&old), Verdict::Drop(DropReason::Paws));
    assert!(Seg::parse(&b.take_one()).is(ACK));
    assert_eq!(b.shard.readable(idb), 0);
    assert_eq!(b.shard.counters().tcp_ext_paws_estab_rejected, 1);
}

/// RFC 5927 §4.1: a packet-too-big is believed only if it quotes a sequence number in flight;
/// then the MSS drops (never below the floor) and the data is re-sent in smaller segments.
#[test]
fn icmp_packet_too_big_in_and_out_of_window() {
    let (mut a, _b, ida, _idb) = connect(plain_cfg(), plain_cfg());
    a.shard.send(ida, &pattern(2920, 4)).unwrap();
    a.flush();
    let segs: Vec<Seg> = a.take_segs();
    assert_eq!(segs.len(), 2);
    let quote = |seq: u32| QuotedTcp {
        src: segs[0].src.ip(),
        dst: segs[0].dst.ip(),
        src_port: segs[0].src.port(),
        dst_port: segs[0].dst.port(),
        seq: xdptcp::wire::SeqNum(seq),
    };
    // Outside SND.UNA..SND.NXT: ignored and counted.
    let v = a.shard.handle_icmp_error(
        a.now,
        &quote(segs[0].seq.wrapping_sub(5000)),
        IcmpError::PacketTooBig { mtu: 1000 },
        &mut a.out,
    );
    assert_eq!(v, Verdict::Drop(DropReason::IcmpOutOfWindow));
    assert_eq!(a.shard.counters().tcp_ext_out_of_window_icmps, 1);
    assert_eq!(a.shard.info(ida).unwrap().smss, 1460);
    // In flight: MSS 1000 - 40 = 960, and the data goes again in 960-byte pieces.
    let v = a.shard.handle_icmp_error(a.now, &quote(segs[0].seq), IcmpError::PacketTooBig { mtu: 1000 }, &mut a.out);
    assert_eq!(v, Verdict::Consumed);
    a.flush();
    assert_eq!(a.shard.info(ida).unwrap().smss, 960);
    let again = a.take_segs();
    assert_eq!(again[0].payload.len(), 960);
    assert_eq!(again[0].seq, segs[0].seq);
    // A PTB claiming a tiny MTU cannot push the MSS below the floor (536).
    a.shard.handle_icmp_error(a.now, &quote(segs[0].seq), IcmpError::PacketTooBig { mtu: 68 }, &mut a.out);
    assert_eq!(a.shard.info(ida).unwrap().smss, 536);
}

/// Soft ICMP errors never abort a synchronized connection (RFC 5461 §4).
#[test]
fn soft_icmp_errors_do_not_abort() {
    let (mut a, _b, ida, _idb) = connect(plain_cfg(), plain_cfg());
    let t = a.shard.tuple(ida).unwrap();
    let q = QuotedTcp {
        src: t.local.ip(),
        dst: t.remote.ip(),
        src_port: t.local.port(),
        dst_port: t.remote.port(),
        seq: a.shard.info(ida).unwrap().snd_una,
    };
    for _ in 0..10 {
        a.shard.handle_icmp_error(a.now, &q, IcmpError::from_v4(3, 1).unwrap(), &mut a.out);
    }
    assert_eq!(a.state(ida), Some(State::Established));
}

/// Linux behaviour: closing with unread data resets the connection (RFC 2525 §2.17), and data
/// arriving after close() does too (TCPAbortOnData).
#[test]
fn close_with_unread_data_sends_rst() {
    let (mut a, mut b, ida, idb) = connect(plain_cfg(), plain_cfg());
    a.shard.send(ida, b"unread").unwrap();
    a.flush();
    b.deliver(&a.take_one());
    b.close(idb);
    let r = Seg::parse(&b.take_one());
    assert!(r.flags.rst());
    assert_eq!(b.shard.counters().tcp_ext_tcp_abort_on_close, 1);
    assert_eq!(b.shard.conn_count(), 0);
}
