//! SYN cookies (STYLE §8.8): the cost of making one (what a listener pays per SYN under a
//! flood) and of checking one (per final ACK), both SipHash-2-4 over the 4-tuple. Figures:
//! docs/bench-tcp.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use xdptcp::tcp::syncookie::{check, counter, generate};
use xdptcp::tcp::{FourTuple, Secrets};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNum;

fn tuple_v4(i: u32) -> FourTuple {
    FourTuple::new(
        SocketAddr::new(Ipv4Addr::new(198, 18, 0, 1).into(), 80),
        SocketAddr::new(Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).into(), 1024 + (i % 60000) as u16),
    )
}

fn tuple_v6(i: u32) -> FourTuple {
    FourTuple::new(
        SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), 80),
        SocketAddr::new(
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16).into(),
            1024 + (i % 60000) as u16,
        ),
    )
}

fn bench_cookie(c: &mut Criterion) {
    let s = Secrets::from_seed(42);
    let now = Instant::from_secs(1_000_000);
    let t = counter(now);
    let keys = [&s.cookie_key, &s.cookie_key_prev];

    // The cookie is the ISS a SYN-ACK carries; check gets it back + 1 in the final ACK.
    let (ck, mss) = generate(&s.cookie_key, &tuple_v4(7), SeqNum(1000), 1460, t);
    assert_eq!(check(keys, &tuple_v4(7), ck.add(1), SeqNum(1000), t), Ok(mss));

    let mut g = c.benchmark_group("syncookie");
    g.throughput(Throughput::Elements(1));
    for (name, mk) in [("v4", tuple_v4 as fn(u32) -> FourTuple), ("v6", tuple_v6 as fn(u32) -> FourTuple)] {
        // A different tuple and client ISN each time, as in a flood.
        let tuples: Vec<FourTuple> = (0..1024).map(mk).collect();
        let acks: Vec<(SeqNum, SeqNum)> = tuples
            .iter()
            .enumerate()
            .map(|(i, tp)| {
                let isn = SeqNum((i as u32).wrapping_mul(0x9e37_79b9));
                (generate(&s.cookie_key, tp, isn, 1460, t).0.add(1), isn)
            })
            .collect();
        let mut i = 0usize;
        g.bench_function(format!("generate_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let isn = SeqNum((i as u32).wrapping_mul(0x9e37_79b9));
                generate(black_box(&s.cookie_key), black_box(&tuples[i]), isn, 1460, t)
            })
        });
        // A valid cookie made with the current key: one SipHash. The worst case, a forged
        // cookie, tries both keys (two hashes) and is measured separately.
        let mut i = 0usize;
        g.bench_function(format!("check_valid_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let (ack, isn) = acks[i];
                let r = check(black_box(keys), black_box(&tuples[i]), ack, isn, t);
                debug_assert!(r.is_ok());
                r
            })
        });
        let mut i = 0usize;
        g.bench_function(format!("check_forged_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let (ack, isn) = acks[i];
                check(black_box(keys), black_box(&tuples[i]), ack.add(1), isn, t)
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_cookie
}
criterion_main!(benches);
