//! Inner loops: hashing, chunking, compression, tree encoding, and the two walks over a
//! large stored tree that `status` and `checkout` make: flattening a stored tree (100 folders
//! of 1,000 files) and the per-folder ordered scan of the stat cache (`fastdiff.rs`); and the
//! walk of `add`/`commit` over a workspace the stat cache knows (`ingest.rs`); and appending a
//! large file's chunks to a pack, through the page cache and with direct writes (`directio.rs`).
//! Run with `cargo bench -p dvx-store`.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dvx_store::chunking;
use dvx_store::db::{Db, CF_STAT};
use dvx_store::object::{EntryKind, Tree, TreeEntry};
use dvx_store::pack::encode_chunk;
use dvx_store::statcache::{Stat, StatEntry};
use dvx_store::store::Store;
use dvx_store::worktree;
use dvx_store::Id;

/// Folders and files per folder of the stored tree the walks run over (100,000 files).
const FOLDERS: usize = 100;
const PER_FOLDER: usize = 1_000;

fn folder_name(d: usize) -> String {
    format!("d{d:03}")
}

fn file_name(d: usize, f: usize) -> String {
    format!("f{:06}.txt", d * PER_FOLDER + f)
}

/// A store holding `data/` = FOLDERS folders of PER_FOLDER files; returns the root tree's id.
/// The database is closed (flushed to table files) and opened again read-only, as `status`
/// opens it.
fn stored_tree(dir: &Path) -> (Store, Id) {
    let root = {
        let store = Store::new(Db::open(&dir.join("db")).unwrap(), &dir.join("packs"));
        let txn = store.txn().unwrap();
        let mut folders = Vec::with_capacity(FOLDERS);
        for d in 0..FOLDERS {
            let files: Vec<TreeEntry> = (0..PER_FOLDER)
                .map(|f| TreeEntry {
                    name: file_name(d, f),
                    kind: EntryKind::File,
                    mode: 0o644,
                    size: 2048,
                    id: Id::of(file_name(d, f).as_bytes()),
                })
                .collect();
            folders.push(TreeEntry {
                name: folder_name(d),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: (2048 * PER_FOLDER) as u64,
                id: txn.put_tree(&Tree::new(files).unwrap()),
            });
        }
        let data = txn.put_tree(&Tree::new(folders).unwrap());
        let root = txn.put_tree(
            &Tree::new(vec![TreeEntry {
                name: "data".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: (2048 * PER_FOLDER * FOLDERS) as u64,
                id: data,
            }])
            .unwrap(),
        );
        txn.commit().unwrap();
        root
    };
    let db = Db::open_read_only(&dir.join("db")).unwrap();
    (Store::new(db, &dir.join("packs")), root)
}

/// A stat cache with one entry per file of `stored_tree`, keyed as `status` keys it.
fn stat_cache(dir: &Path) -> Db {
    {
        let db = Db::open(dir).unwrap();
        let mut batch = db.batch();
        for d in 0..FOLDERS {
            for f in 0..PER_FOLDER {
                let key = format!("data/{}/{}", folder_name(d), file_name(d, f));
                let stat = Stat {
                    ino: (d * PER_FOLDER + f) as u64,
                    mtime_ns: 1_700_000_000_000_000_000,
                    ctime_ns: 1_700_000_000_000_000_000,
                    size: 2048,
                    mode: 0o100644,
                };
                let e = StatEntry::new(stat, Id::of(key.as_bytes()));
                batch.put(&db, CF_STAT, key.as_bytes(), &e.encode());
            }
        }
        db.write(batch).unwrap();
    }
    Db::open_read_only(dir).unwrap()
}

fn walks(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (store, root) = stored_tree(&tmp.path().join("store"));
    let stat = stat_cache(&tmp.path().join("stat"));
    let n = (FOLDERS * PER_FOLDER) as u64;

    let mut g = c.benchmark_group("walk");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    // What checkout and diff do with a stored tree: every path in one ordered map.
    g.bench_function("flatten_100k", |b| {
        b.iter(|| {
            let mut out = BTreeMap::new();
            worktree::flatten(&store, black_box(&root), "", &mut out).unwrap();
            out.len()
        })
    });
    // The stat-cache side of a no-op status: one ordered scan per folder, every entry decoded.
    g.bench_function("stat_scan_100k", |b| {
        b.iter(|| {
            let mut found = 0usize;
            for d in 0..FOLDERS {
                let prefix = format!("data/{}/", folder_name(d));
                stat.for_each_child(CF_STAT, prefix.as_bytes(), |_, v| {
                    found += StatEntry::decode(v).is_some() as usize;
                    Ok(true)
                })
                .unwrap();
            }
            found
        })
    });
    // The same entries by batched point lookups, as `status` read them before the scan.
    g.bench_function("stat_multi_get_100k", |b| {
        let keys: Vec<Vec<String>> = (0..FOLDERS)
            .map(|d| {
                (0..PER_FOLDER)
                    .map(|f| format!("data/{}/{}", folder_name(d), file_name(d, f)))
                    .collect()
            })
            .collect();
        b.iter(|| {
            keys.iter()
                .map(|k| {
                    stat.multi_get_with(CF_STAT, k, true, StatEntry::decode)
                        .unwrap()
                        .iter()
                        .filter(|e| e.is_some())
                        .count()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

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

    // A commit's run ids as JSON (a run of 100,000 datums names 100,000 records): read with
    // the hex table, and with a String per id through the `hex` crate as before.
    let ids: Vec<Id> = (0..100_000u32).map(|i| Id::of(&i.to_le_bytes())).collect();
    let json = serde_json::to_vec(&ids).unwrap();
    let mut g = c.benchmark_group("ids");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("json_100k", |b| {
        b.iter(|| {
            serde_json::from_slice::<Vec<Id>>(black_box(&json))
                .unwrap()
                .len()
        })
    });
    g.bench_function("json_100k_string_hex", |b| {
        b.iter(|| {
            serde_json::from_slice::<Vec<String>>(black_box(&json))
                .unwrap()
                .iter()
                .map(|s| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(s, &mut out).unwrap();
                    out[0]
                })
                .count()
        })
    });
    g.finish();
}

/// The walk `add` and `commit` make over a workspace folder whose files the stat cache knows
/// (a commit after a small change): folder by folder (`ingest_streaming`), against the older
/// route of one list of every path, then the tree built from it (`ingest`).
fn ingest(c: &mut Criterion) {
    use dvx_store::{Access, Quiet, Repo};
    const DIRS: usize = 20;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("p");
    for d in 0..DIRS {
        let dir = root.join("data").join(folder_name(d));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..PER_FOLDER {
            std::fs::write(dir.join(file_name(d, f)), format!("{d} {f}\n")).unwrap();
        }
    }
    Repo::init(&root).unwrap();
    // Past the racy window, so that the stat cache vouches for every file.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let repo = Repo::open(&root, Access::Write("bench")).unwrap();
    repo.add(&["data".to_string()], None, &Quiet).unwrap();
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements((DIRS * PER_FOLDER) as u64));
    g.bench_function("folder_by_folder_20k", |b| {
        b.iter(|| {
            let txn = repo.store.txn().unwrap();
            repo.ingest_streaming(&txn, "data", &Quiet).unwrap().1.files
        })
    });
    g.bench_function("list_then_tree_20k", |b| {
        b.iter(|| {
            let txn = repo.store.txn().unwrap();
            repo.ingest(&txn, &root, "data", &Quiet)
                .unwrap()
                .1
                .files
                .len()
        })
    });
    g.finish();
}

/// Appending 256 MiB of 512 KiB chunks to a pack and syncing it, on the disk that holds the
/// temp folder: through the page cache (with the write-back kicks of `PackWriter`) and with
/// direct writes from the pack's write thread.
fn pack_append(c: &mut Criterion) {
    use dvx_store::pack::{PackWriter, CODEC_RAW};
    const CHUNK: usize = 512 << 10;
    const CHUNKS: usize = 512;
    let data: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + i / 4093) as u8).collect();
    let id = Id::of(&data);
    let mut g = c.benchmark_group("pack");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((CHUNK * CHUNKS) as u64));
    for direct in [false, true] {
        let name = if direct {
            "append_direct_256m"
        } else {
            "append_cached_256m"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let dir = tempfile::tempdir().unwrap();
                let mut w = PackWriter::open(dir.path()).unwrap();
                if direct {
                    w.go_direct().unwrap();
                }
                for _ in 0..CHUNKS {
                    w.append(id, CODEC_RAW, CHUNK as u32, &data).unwrap();
                }
                w.sync().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, walks, ingest, pack_append);
criterion_main!(benches);
