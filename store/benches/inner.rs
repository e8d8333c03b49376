//! Inner loops: hashing, chunking, compression and tree encoding.
//! Run with `cargo bench -p dvx-store`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dvx_store::chunking;
use dvx_store::object::{EntryKind, Tree, TreeEntry};
use dvx_store::pack::encode_chunk;
use dvx_store::Id;

fn csv_like(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while out.len() < n {
        let line = format!(
            "{i},{},{:.3},station-{}\n",
            i * 7919 % 10007,
            (i as f64).sqrt(),
            i % 97
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

fn bench(c: &mut Criterion) {
    let data = csv_like(64 << 20);
    let mut g = c.benchmark_group("bytes");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("blake3", |b| b.iter(|| Id::of(black_box(&data))));
    g.bench_function("blake3_rayon", |b| {
        b.iter(|| {
            let mut h = blake3::Hasher::new();
            h.update_rayon(black_box(&data));
            h.finalize()
        })
    });
    g.bench_function("fastcdc", |b| {
        b.iter(|| chunking::chunks(black_box(&data)).len())
    });
    let chunk = &data[..chunking::AVG_CHUNK];
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("zstd1_chunk", |b| {
        b.iter(|| encode_chunk(black_box(chunk)).1.len())
    });
    g.finish();

    let mut g = c.benchmark_group("tree");
    for n in [1_000usize, 100_000] {
        let entries: Vec<TreeEntry> = (0..n)
            .map(|i| TreeEntry {
                name: format!("file-{i:07}.csv"),
                kind: EntryKind::File,
                mode: 0o644,
                size: i as u64,
                id: Id::of(&i.to_le_bytes()),
            })
            .collect();
        let tree = Tree::new(entries).unwrap();
        let bytes = tree.encode();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("encode", n), &tree, |b, t| {
            b.iter(|| t.encode().len())
        });
        g.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| {
                Tree::decode(Id::of(b"x"), black_box(bytes))
                    .unwrap()
                    .entries
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
