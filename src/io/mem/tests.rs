use super::*;

/// Sends `n` frames carrying their index (4 bytes, big endian) from `a`, then flushes.
fn send_indexed(a: &mut MemLink, n: u32) {
    for i in 0..n {
        assert!(a.tx().send_frame(4, &mut |b| b.copy_from_slice(&i.to_be_bytes())));
    }
    a.flush();
}

/// Receives everything due at `b` and returns the frames.
fn drain(b: &mut MemLink) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while b.rx_burst(64, &mut |f, _| out.push(f.to_vec())) > 0 {}
    out
}

fn indices(frames: &[Vec<u8>]) -> Vec<u32> {
    frames.iter().map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]])).collect()
}

fn cfg() -> MemConfig {
    MemConfig::default()
}

#[test]
fn clean_wire_delivers_in_order_after_flush() {
    let (mut a, mut b) = MemLink::pair(cfg(), 1);
    assert!(a.tx().send_frame(3, &mut |f| f.copy_from_slice(b"abc")));
    assert!(drain(&mut b).is_empty(), "nothing leaves before flush");
    a.flush();
    assert_eq!(drain(&mut b), vec![b"abc".to_vec()]);
    send_indexed(&mut a, 100);
    assert_eq!(indices(&drain(&mut b)), (0..100).collect::<Vec<_>>());
    assert_eq!(a.stats().tx_frames, 101);
    assert_eq!(b.stats().rx_frames, 101);
    assert_eq!(a.wire_stats().delivered, 101);
}

#[test]
fn replies_through_the_rx_sink_reach_the_sender() {
    let (mut a, mut b) = MemLink::pair(cfg(), 2);
    send_indexed(&mut a, 3);
    let n = b.rx_burst(64, &mut |f, tx| {
        let mut r = f.to_vec();
        r.reverse();
        assert!(tx.send_frame(r.len(), &mut |buf| buf.copy_from_slice(&r)));
    });
    assert_eq!(n, 3);
    assert!(drain(&mut a).is_empty(), "replies wait for flush");
    b.flush();
    let back = drain(&mut a);
    assert_eq!(back.len(), 3);
    assert_eq!(back[1], vec![0, 0, 0, 1].into_iter().rev().collect::<Vec<u8>>());
}

#[test]
fn rx_burst_honours_max() {
    let (mut a, mut b) = MemLink::pair(cfg(), 3);
    send_indexed(&mut a, 10);
    let mut seen = 0;
    assert_eq!(b.rx_burst(4, &mut |_, _| seen += 1), 4);
    assert_eq!(seen, 4);
    assert_eq!(drain(&mut b).len(), 6);
}

#[test]
fn delay_holds_frames_until_their_time() {
    let c = MemConfig { delay: Duration::from_millis(10), ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 4);
    a.set_now(Instant::from_millis(5));
    send_indexed(&mut a, 2);
    assert_eq!(b.next_arrival(), Some(Instant::from_millis(15)));
    a.set_now(Instant::from_millis(14));
    assert!(drain(&mut b).is_empty());
    b.set_now(Instant::from_millis(15));
    assert_eq!(indices(&drain(&mut b)), vec![0, 1]);
    assert_eq!(b.next_arrival(), None);
}

#[test]
fn loss_drops_about_the_given_share_and_is_counted() {
    let c = MemConfig { loss: 0.3, capacity: 20_000, ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 5);
    send_indexed(&mut a, 10_000);
    let got = drain(&mut b).len() as u64;
    let w = a.wire_stats();
    assert_eq!(w.sent, 10_000);
    assert_eq!(got + w.lost, 10_000);
    assert!((2_700..=3_300).contains(&w.lost), "lost {}", w.lost);
}

#[test]
fn duplication_delivers_copies_right_after_the_original() {
    let all = MemConfig { duplicate: 1.0, ..cfg() };
    let (mut a, mut b) = MemLink::pair(all, 6);
    send_indexed(&mut a, 3);
    assert_eq!(indices(&drain(&mut b)), vec![0, 0, 1, 1, 2, 2]);
    assert_eq!(a.wire_stats().duplicated, 3);

    let half = MemConfig { duplicate: 0.5, capacity: 20_000, ..cfg() };
    let (mut a, mut b) = MemLink::pair(half, 6);
    send_indexed(&mut a, 10_000);
    let extra = drain(&mut b).len() - 10_000;
    assert!((4_500..=5_500).contains(&extra), "duplicates {extra}");
}

#[test]
fn reorder_lets_later_frames_overtake() {
    let c = MemConfig { reorder: 0.3, reorder_delay: Duration::from_millis(1), ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 7);
    send_indexed(&mut a, 200);
    let first = indices(&drain(&mut b));
    let held = a.wire_stats().reordered as usize;
    assert!(held > 20 && held < 100, "held back {held}");
    assert_eq!(first.len(), 200 - held, "held-back frames are not due yet");
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    b.set_now(Instant::from_millis(1));
    let late = indices(&drain(&mut b));
    assert_eq!(late.len(), held);
    let mut all: Vec<u32> = first.iter().chain(late.iter()).copied().collect();
    assert_ne!(all, (0..200).collect::<Vec<_>>(), "order changed");
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>(), "nothing lost or made up");
}

#[test]
fn jitter_spreads_arrivals_within_bounds() {
    let c = MemConfig { delay: Duration::from_millis(2), jitter: Duration::from_millis(3), ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 8);
    send_indexed(&mut a, 100);
    b.set_now(Instant::from_nanos(2_000_000 - 1));
    assert!(drain(&mut b).is_empty(), "nothing before the base delay");
    b.set_now(Instant::from_millis(5));
    let got = indices(&drain(&mut b));
    assert_eq!(got.len(), 100, "everything by delay + jitter");
    assert_ne!(got, (0..100).collect::<Vec<_>>(), "jitter reorders");
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let c = MemConfig { corrupt: 1.0, ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 9);
    let orig = [0x5au8; 64];
    for _ in 0..50 {
        assert!(a.tx().send_frame(64, &mut |f| f.copy_from_slice(&orig)));
    }
    a.flush();
    let got = drain(&mut b);
    assert_eq!(got.len(), 50);
    for f in &got {
        let flipped: u32 = f.iter().zip(orig).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert_eq!(flipped, 1);
    }
    assert_eq!(a.wire_stats().corrupted, 50);
}

#[test]
fn capacity_and_mtu_refuse_frames() {
    let c = MemConfig { capacity: 4, mtu: 100, ..cfg() };
    let (mut a, mut b) = MemLink::pair(c, 10);
    assert!(!a.tx().send_frame(101, &mut |_| panic!("not called when too long")));
    for _ in 0..4 {
        assert!(a.tx().send_frame(10, &mut |_| {}));
    }
    assert!(!a.tx().send_frame(10, &mut |_| panic!("not called when full")));
    assert_eq!(a.stats().tx_no_frame, 1);
    a.flush();
    assert!(!a.tx().send_frame(10, &mut |_| {}), "still full while on the wire");
    assert_eq!(drain(&mut b).len(), 4);
    assert!(a.tx().send_frame(10, &mut |_| {}), "room again once received");
}

#[test]
fn directions_are_configured_separately() {
    let (mut a, mut b) = MemLink::pair(cfg(), 11);
    a.set_config(MemConfig { loss: 1.0, ..cfg() });
    send_indexed(&mut a, 5);
    send_indexed(&mut b, 5);
    assert!(drain(&mut b).is_empty());
    assert_eq!(drain(&mut a).len(), 5);
}

/// Runs a fixed exchange over an impaired pair and records what each end received, when.
fn scripted_run(seed: u64) -> (Vec<(u64, Vec<u8>)>, WireStats) {
    let c = MemConfig {
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        corrupt: 0.1,
        delay: Duration::from_micros(100),
        jitter: Duration::from_micros(50),
        ..cfg()
    };
    let (mut a, mut b) = MemLink::pair(c, seed);
    let mut log = Vec::new();
    for step in 0..200u64 {
        let t = Instant::from_nanos(step * 10_000);
        a.set_now(t);
        send_indexed(&mut a, 3);
        b.rx_burst(64, &mut |f, tx| {
            log.push((t.as_nanos(), f.to_vec()));
            let echo = f.to_vec();
            tx.send_frame(echo.len(), &mut |buf| buf.copy_from_slice(&echo));
        });
        b.flush();
        a.rx_burst(64, &mut |f, _| log.push((t.as_nanos() + 1, f.to_vec())));
    }
    (log, a.wire_stats())
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let (x, sx) = scripted_run(42);
    let (y, sy) = scripted_run(42);
    assert_eq!(x, y);
    assert_eq!(sx, sy);
    let (z, _) = scripted_run(43);
    assert_ne!(x, z);
    assert!(sx.lost > 0 && sx.duplicated > 0 && sx.reordered > 0 && sx.corrupted > 0);
}

#[test]
fn enabling_one_impairment_leaves_another_unchanged() {
    let lossy = MemConfig { loss: 0.2, ..cfg() };
    let lossy_corrupt = MemConfig { corrupt: 0.5, ..lossy };
    let survivors = |c: MemConfig| {
        let (mut a, mut b) = MemLink::pair(c, 99);
        send_indexed(&mut a, 500);
        drain(&mut b).len()
    };
    assert_eq!(survivors(lossy), survivors(lossy_corrupt));
}
