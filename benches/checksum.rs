//! The Internet checksum (RFC 1071) over a minimum-sized and a full-sized packet, and the
//! RFC 1624 incremental update a header rewrite uses instead. Figures: docs/bench-wire.md.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use xdptcp::wire::checksum;

fn bench_full(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [64usize, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 131 + 7) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &data, |b, d| b.iter(|| checksum::checksum(black_box(d))));
    }
    g.finish();
}

fn bench_incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum_update");
    g.throughput(Throughput::Elements(1));
    let mut v = 0u32;
    g.bench_function("u16", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            checksum::update_u16(black_box(0x1c46), black_box(0x4006), v as u16)
        })
    });
    g.bench_function("u32", |b| {
        b.iter(|| {
            v = v.wrapping_add(1);
            checksum::update_u32(black_box(0x1c46), black_box(0xa143_6594), v)
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_full, bench_incremental
}
criterion_main!(benches);
