use super::*;

const TW: Duration = Duration::from_secs(60);

fn table() -> TimeWaitTable {
    TimeWaitTable::new(TW, &Secrets::from_seed(1))
}

fn v4(port: u16) -> FourTuple {
    FourTuple::new(SocketAddr::from(([198, 18, 0, 1], 80)), SocketAddr::from(([198, 18, 0, 2], port)))
}

fn v6(port: u16) -> FourTuple {
    let a = |last: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, last], 0));
    FourTuple::new(SocketAddr::new(a(1).ip(), 80), SocketAddr::new(a(2).ip(), port))
}

/// The entry a connection that entered TIME-WAIT at `at` leaves.
fn entry(at: Instant) -> TwEntry {
    TwEntry {
        snd_nxt: SeqNum(5000),
        rcv_nxt: SeqNum(9000),
        ts_recent: Some(77),
        ts_offset: 0,
        window: 1000,
        deadline: at + TW,
        last_oow_ack: None,
    }
}

/// Expires everything due at `now`; returns the tuples in the order they left.
fn expire(t: &mut TimeWaitTable, now: Instant) -> Vec<FourTuple> {
    core::iter::from_fn(|| t.pop_expired(now)).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn an_entry_reads_back_as_it_went_in_and_ends_at_its_deadline() {
    let mut t = table();
    let at = Instant::from_nanos(1_000_000_123_456); // not on a millisecond
    let e = TwEntry { ts_recent: None, last_oow_ack: Some(at), ..entry(at) };
    t.insert(&v4(1000), &e);
    let s = t.find(&v4(1000)).unwrap();
    let got = t.entry(s).unwrap();
    assert_eq!((got.snd_nxt, got.rcv_nxt, got.ts_recent, got.window), (e.snd_nxt, e.rcv_nxt, None, 1000));
    // Rounded up to the millisecond, never earlier.
    assert!(got.deadline >= e.deadline && got.deadline < e.deadline + ms(1), "{got:?}");
    assert_eq!(t.next_deadline(), Some(got.deadline));
    assert!(expire(&mut t, e.deadline).is_empty(), "not before its deadline");
    assert_eq!(expire(&mut t, got.deadline), vec![v4(1000)]);
    assert_eq!((t.len(), t.slots(), t.next_deadline()), (0, 0, None));
    assert!(!t.contains(&v4(1000)));
}

#[test]
fn entries_leave_in_deadline_order_across_both_families() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    for i in 0..3000u16 {
        let tuple = if i % 3 == 0 { v6(1000 + i) } else { v4(1000 + i) };
        t.insert(&tuple, &entry(t0 + ms(u64::from(i))));
    }
    assert_eq!((t.len(), t.slots()), (3000, 3000));
    assert_eq!(t.tuples().count(), 3000);
    let mut gone = 0u16;
    for step in 0..3000u64 {
        let now = t0 + TW + ms(step);
        let left = expire(&mut t, now);
        for tuple in &left {
            assert_eq!(tuple.remote.port(), 1000 + gone, "in order");
            gone += 1;
        }
        assert_eq!(gone as u64, step + 1, "exactly one per millisecond");
    }
    assert_eq!((t.len(), t.slots()), (0, 0));
    // Each ring keeps at most its last chunk and a spare.
    assert!(t.v4.chunks.len() <= 1 && t.v6.chunks.len() <= 1);
}

/// A restart within G lags the record in place: no slot moves, the head waits for it, and the
/// entries behind it are late by less than G.
#[test]
fn a_restart_within_g_lags_and_the_head_waits() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    t.insert(&v4(1), &entry(t0));
    t.insert(&v4(2), &entry(t0 + ms(10)));
    let s = t.find(&v4(1)).unwrap();
    let s2 = t.restart(s, t0 + ms(1000), usize::MAX);
    assert_eq!(s2, s, "not moved");
    assert_eq!(t.slots(), 2);
    assert_eq!(t.next_deadline(), Some(t0 + ms(1000) + TW));
    assert!(expire(&mut t, t0 + TW + ms(999)).is_empty(), "the restarted head is not due; the second waits");
    assert_eq!(expire(&mut t, t0 + TW + ms(1000)), vec![v4(1), v4(2)]);
    assert!(t.coalesce_ms == 3750);
}

/// A restart past G moves the record to the tail (exact deadline) and vacates its slot, which
/// goes when the head passes it.
#[test]
fn a_restart_past_g_moves_the_record_to_the_tail() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    for p in 1..=3 {
        t.insert(&v4(p), &entry(t0 + ms(u64::from(p))));
    }
    let s = t.find(&v4(2)).unwrap();
    let at = t0 + Duration::from_secs(40);
    let moved = t.restart(s, at, usize::MAX);
    assert_ne!(moved, s);
    assert_eq!(t.find(&v4(2)), Some(moved));
    assert_eq!((t.len(), t.slots()), (3, 4), "one vacated slot");
    assert_eq!(t.tuples().collect::<Vec<_>>(), vec![v4(1), v4(3), v4(2)]);
    assert_eq!(expire(&mut t, t0 + TW + ms(3)), vec![v4(1), v4(3)]);
    assert_eq!((t.len(), t.slots()), (1, 1), "the vacated slot went with the head");
    assert_eq!(t.next_deadline(), Some(at + TW));
    assert!(expire(&mut t, at + TW - ms(1)).is_empty());
    assert_eq!(expire(&mut t, at + TW), vec![v4(2)]);
}

/// A peer that restarts every entry as often as it can: each entry moves at most once per G,
/// and every entry ends no earlier than 2·MSL after its last restart and less than G after it.
#[test]
fn restart_floods_move_each_entry_once_per_g() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    let n = 1000u16;
    for p in 1..=n {
        t.insert(&v4(p), &entry(t0));
    }
    let mut now = t0;
    let mut moves = 0;
    while now < t0 + Duration::from_secs(50) {
        now = now + ms(100);
        for p in 1..=n {
            let s = t.find(&v4(p)).unwrap();
            moves += usize::from(t.restart(s, now, usize::MAX) != s);
        }
        assert!(expire(&mut t, now).is_empty());
    }
    let g = ms(u64::from(t.coalesce_ms));
    assert!(moves <= usize::from(n) * (50_000 / 3750 + 1), "{moves} moves");
    let last = now;
    let mut ended = 0;
    while let Some(d) = t.next_deadline() {
        for tuple in expire(&mut t, d) {
            assert!(d >= last + TW && d < last + TW + g, "{tuple}: ended {d:?}, last restart {last:?}");
            ended += 1;
        }
    }
    assert_eq!((ended, t.slots()), (n, 0));
}

/// Restarts of half the entries, whose old slots the other half keeps from being reclaimed:
/// the ring stops at `max_slots`, restarts then only lag, and the other half still ends on
/// time.
#[test]
fn restarts_never_grow_the_ring_past_max_slots() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    let n = 1000u16;
    for p in 1..=n {
        t.insert(&v4(p), &entry(t0 + ms(u64::from(p))));
    }
    let max_slots = 2 * usize::from(n);
    let mut now = t0;
    while now < t0 + Duration::from_secs(50) {
        now = now + ms(100);
        for p in (1..=n).filter(|p| p % 2 == 1) {
            let s = t.find(&v4(p)).unwrap();
            t.restart(s, now, max_slots);
        }
        assert!(t.slots() <= max_slots, "{} slots", t.slots());
    }
    assert_eq!(t.slots(), max_slots, "the cap was reached");
    // The even ones end at their deadline, or within G behind a lagging odd one.
    let g = ms(u64::from(t.coalesce_ms));
    while let Some(d) = t.next_deadline() {
        for tuple in expire(&mut t, d) {
            let p = tuple.remote.port();
            if p % 2 == 0 {
                let deadline = t0 + ms(u64::from(p)) + TW;
                assert!(d >= deadline && d < deadline + g, "{tuple}: ended {d:?}, deadline {deadline:?}");
            } else {
                assert!(d >= t0 + TW, "{tuple}: ended {d:?}");
            }
        }
    }
    assert_eq!((t.len(), t.slots()), (0, 0));
}

#[test]
fn removal_vacates_and_the_index_forgets() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    for p in 1..=5 {
        t.insert(&v4(p), &entry(t0));
        t.insert(&v6(p), &entry(t0));
    }
    for p in [1, 3] {
        t.remove(t.find(&v4(p)).unwrap());
        t.remove(t.find(&v6(p)).unwrap());
    }
    assert_eq!((t.len(), t.slots()), (6, 8), "the head's vacated slot is dropped at once");
    assert!(!t.contains(&v4(3)) && !t.contains(&v6(1)) && t.contains(&v6(2)));
    // A new entry for a tuple that has one replaces it.
    t.insert(&v4(2), &TwEntry { snd_nxt: SeqNum(1), ..entry(t0 + ms(5)) });
    assert_eq!(t.len(), 6);
    assert_eq!(t.entry(t.find(&v4(2)).unwrap()).unwrap().snd_nxt, SeqNum(1));
    let mut left = expire(&mut t, t0 + TW + ms(5));
    left.sort();
    let mut want = vec![v4(2), v4(4), v4(5), v6(2), v6(4), v6(5)];
    want.sort();
    assert_eq!(left, want);
    assert_eq!(t.slots(), 0);
}

/// Millisecond ticks are u32: a table whose clock crosses 2^32 ms (49.7 days) keeps its order
/// and deadlines.
#[test]
fn ticks_wrap_at_2_pow_32_ms() {
    let mut t = table();
    let wrap = Instant::from_millis(1 << 32);
    let t0 = wrap - Duration::from_secs(30);
    t.insert(&v4(1), &entry(t0));
    t.insert(&v4(2), &entry(t0 + Duration::from_secs(40)));
    assert_eq!(t.next_deadline(), Some(t0 + TW));
    assert!(expire(&mut t, t0 + TW - ms(1)).is_empty());
    assert_eq!(expire(&mut t, t0 + TW), vec![v4(1)]);
    assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(100)));
    let s = t.find(&v4(2)).unwrap();
    let s = t.restart(s, t0 + Duration::from_secs(90), usize::MAX);
    assert_eq!(t.entry(s).unwrap().deadline, t0 + Duration::from_secs(150));
    assert_eq!(expire(&mut t, t0 + Duration::from_secs(150)), vec![v4(2)]);
}

/// RFC 5961 §7: one answer per `limit`, never two less than `limit` apart whatever the rounding.
#[test]
fn out_of_window_answers_are_rate_limited() {
    let mut t = table();
    let t0 = Instant::from_nanos(100_000_000_500_000);
    t.insert(&v4(1), &entry(t0));
    let s = t.find(&v4(1)).unwrap();
    let limit = ms(500);
    assert!(t.oow_ack_allowed(s, t0, limit), "the first one");
    assert!(!t.oow_ack_allowed(s, t0 + ms(499), limit));
    assert!(!t.oow_ack_allowed(s, t0 + ms(500) - Duration::from_nanos(1), limit));
    assert!(t.oow_ack_allowed(s, t0 + ms(501), limit));
    // A stamp the connection made carries over.
    t.insert(&v4(2), &TwEntry { last_oow_ack: Some(t0), ..entry(t0) });
    let s = t.find(&v4(2)).unwrap();
    assert!(!t.oow_ack_allowed(s, t0 + ms(100), limit));
}

#[test]
fn ts_recent_is_kept_only_with_timestamps() {
    let mut t = table();
    let t0 = Instant::from_secs(100);
    t.insert(&v4(1), &entry(t0));
    t.insert(&v4(2), &TwEntry { ts_recent: None, ..entry(t0) });
    for p in [1, 2] {
        let s = t.find(&v4(p)).unwrap();
        t.set_ts_recent(s, 99);
    }
    assert_eq!(t.entry(t.find(&v4(1)).unwrap()).unwrap().ts_recent, Some(99));
    assert_eq!(t.entry(t.find(&v4(2)).unwrap()).unwrap().ts_recent, None);
}

/// Steady state (entries made and expiring at the same rate): the ring reuses its spare chunk,
/// and its memory stays that of the live entries.
#[test]
fn steady_state_allocates_nothing_new() {
    let mut t = table();
    let mut now = Instant::from_secs(100);
    let step = ms(10);
    let mut port = 1u16;
    let (mut most, mut index) = (0, 0);
    for round in 0..60_000u32 {
        t.insert(&v4(port), &entry(now));
        port = port.checked_add(1).unwrap_or(1);
        now = now + step;
        expire(&mut t, now);
        if round == 20_000 {
            index = t.v4.index.allocation_size();
        }
        if round >= 20_000 {
            most = most.max(t.allocated_bytes());
        }
    }
    // Each entry lasts 6,000 steps, the last one's end included.
    assert_eq!(t.len(), 5999);
    // 6,000 records span 6 or 7 chunks, plus the spare; the index (8,192 slots) keeps its size.
    let chunk = CHUNK * size_of::<Rec<V4Key>>();
    assert_eq!(t.v4.index.allocation_size(), index);
    assert!(most <= 8 * chunk + index + 1024, "{most}");
}

/// The index against a plain list: inserts, removals (backward shifts across the table's end
/// included) and growth, with hashes squeezed into few homes so that runs are long.
#[test]
fn index_matches_a_model_under_churn() {
    let mut idx = PosIndex::default();
    let mut model: Vec<(u32, u64)> = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Homes: the top 56 slots of the table, so runs wrap past its end.
    let hash_of = |pos: u32| u64::from(u32::MAX - pos.wrapping_mul(0x9e37_79b9) % 56);
    for step in 0..30_000u32 {
        let r = rnd();
        if r % 3 != 0 || model.is_empty() {
            idx.insert(hash_of(step), step);
            model.push((step, hash_of(step)));
        } else {
            let (pos, h) = model.swap_remove((r >> 8) as usize % model.len());
            let i = idx.find(h, |p| p == pos).expect("present");
            idx.remove_at(i);
        }
        assert_eq!(idx.len(), model.len());
        if step % 499 == 0 {
            for &(pos, h) in &model {
                let i = idx.find(h, |p| p == pos).expect("every entry is found");
                assert_eq!(idx.pos_at(i), Some(pos));
            }
            assert_eq!(idx.slots.iter().filter(|s| **s != 0).count(), model.len());
        }
    }
}
