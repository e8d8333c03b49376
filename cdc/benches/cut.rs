//! The cut loop against the fastcdc crate's, on CSV-like text and random bytes.
//! `cargo bench -p dvx-cdc`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dvx_cdc::Cutter;
use fastcdc::v2020::FastCDC;

const MIN: usize = 128 << 10;
const AVG: usize = 512 << 10;
const MAX: usize = 2 << 20;

fn csv(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "{i},{},{:.3},station-{}\n",
                i * 7919 % 10007,
                (i as f64).sqrt(),
                i % 97
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

fn random(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn count(data: &[u8], cut: impl Fn(&[u8]) -> usize) -> usize {
    let (mut pos, mut n) = (0, 0);
    while pos < data.len() {
        pos += cut(&data[pos..]);
        n += 1;
    }
    n
}

fn cut(c: &mut Criterion) {
    let ours = Cutter::new(MIN, AVG, MAX);
    for (name, data) in [("csv", csv(64 << 20)), ("random", random(64 << 20))] {
        let mut g = c.benchmark_group(format!("cut/{name}"));
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.sample_size(10);
        g.bench_function("dvx", |b| {
            b.iter(|| count(black_box(&data), |d| ours.cut(d)))
        });
        g.bench_function("fastcdc_crate", |b| {
            b.iter(|| {
                count(black_box(&data), |d| {
                    if d.len() <= MIN {
                        d.len()
                    } else {
                        FastCDC::new(d, MIN, AVG, MAX).cut(0, d.len()).1
                    }
                })
            })
        });
        g.finish();
    }
}

criterion_group!(benches, cut);
criterion_main!(benches);
