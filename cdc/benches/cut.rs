//! The cut loop against the fastcdc crate's, on CSV-like text and random bytes.
//! `cargo bench -p dvx-cdc`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dvx_cdc::Cutter;
use fastcdc::v2020::FastCDC;

#[path = "../src/sample.rs"]
mod sample;
use sample::{csv, pseudo_random};

const MIN: usize = 128 << 10;
const AVG: usize = 512 << 10;
const MAX: usize = 2 << 20;

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
    for (name, data) in [
        ("csv", csv(64 << 20)),
        ("random", pseudo_random(64 << 20, 0x9e37_79b9_7f4a_7c15)),
    ] {
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
