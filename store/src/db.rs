//! The local database: RocksDB with one column family per kind of record.
//!
//! | column family | key | value |
//! | --- | --- | --- |
//! | `chunks` | chunk id | `ChunkLoc` (pack, offset, lengths, codec) |
//! | `objects` | kind byte + id | canonical object bytes (`F` manifest, `T` tree, `C` commit, `R` run) |
//! | `refs` | ref name (`HEAD`, `refs/heads/main`, ...) | `ref: NAME` or a commit id in hex |
//! | `stat` | workspace path | stat-cache entry |
//! | `meta` | setting name | value (format version, ...) |
//! | `runs`, `lineage` | (pipelines) run cache and lineage indexes |
//!
//! Every change a command makes goes into one `WriteBatch` written with sync, so a killed dvx
//! leaves either all of it or none.

use std::path::Path;
use std::thread;
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction,
    IteratorMode, LogLevel, Options, WriteBatch, WriteOptions, DB,
};

use crate::error::{Result, StoreError};

pub const CF_CHUNKS: &str = "chunks";
pub const CF_OBJECTS: &str = "objects";
pub const CF_REFS: &str = "refs";
pub const CF_STAT: &str = "stat";
pub const CF_META: &str = "meta";
pub const CF_RUNS: &str = "runs";
pub const CF_LINEAGE: &str = "lineage";
pub const ALL_CFS: [&str; 7] = [
    CF_CHUNKS, CF_OBJECTS, CF_REFS, CF_STAT, CF_META, CF_RUNS, CF_LINEAGE,
];

/// Object kinds, the first byte of keys in the `objects` column family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjKind {
    File = b'F' as isize,
    Tree = b'T' as isize,
    Commit = b'C' as isize,
    Run = b'R' as isize,
}

impl ObjKind {
    pub fn key(self, id: &crate::Id) -> [u8; 33] {
        let mut k = [0u8; 33];
        k[0] = self as u8;
        k[1..].copy_from_slice(id.as_bytes());
        k
    }
    pub fn name(self) -> &'static str {
        match self {
            ObjKind::File => "file manifest",
            ObjKind::Tree => "tree",
            ObjKind::Commit => "commit",
            ObjKind::Run => "run record",
        }
    }
    pub fn from_byte(b: u8) -> Option<ObjKind> {
        Some(match b {
            b'F' => ObjKind::File,
            b'T' => ObjKind::Tree,
            b'C' => ObjKind::Commit,
            b'R' => ObjKind::Run,
            _ => return None,
        })
    }
}

/// A key and its value, as read from a scan.
pub type KeyValue = (Box<[u8]>, Box<[u8]>);

pub struct Db {
    db: DB,
    read_only: bool,
}

fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    // Trees and commits compress well; index entries and stat records are small and hot.
    match name {
        CF_OBJECTS | CF_RUNS => o.set_compression_type(DBCompressionType::Zstd),
        _ => o.set_compression_type(DBCompressionType::Lz4),
    }
    o.set_write_buffer_size(16 << 20);
    if name == CF_STAT {
        // `status` reads a folder's entries as one ordered scan: bigger blocks, fewer reads.
        let mut t = BlockBasedOptions::default();
        t.set_block_size(32 << 10);
        o.set_block_based_table_factory(&t);
    }
    o
}

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_open_files(256);
    o.set_keep_log_file_num(2);
    o.set_log_level(LogLevel::Warn);
    o.set_max_total_wal_size(64 << 20);
    o.increase_parallelism(2);
    // Opening starts a thread per table file to open (16 by default, per column family):
    // about 110 threads for a read that lasts 0.2 s. The files are few; open them in turn.
    o.set_max_file_opening_threads(1);
    o
}

impl Db {
    /// Open for writing. The caller must hold the project's writer lock.
    pub fn open(path: &Path) -> Result<Db> {
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n)));
        let db = DB::open_cf_descriptors(&db_options(), path, cfs)?;
        Ok(Db {
            db,
            read_only: false,
        })
    }

    /// Open for reading while another process may be writing. Retries briefly, since a
    /// concurrent writer can be switching files just as we open.
    pub fn open_read_only(path: &Path) -> Result<Db> {
        let mut last = None;
        for attempt in 0..20 {
            match DB::open_cf_for_read_only(&db_options(), path, ALL_CFS, false) {
                Ok(db) => {
                    return Ok(Db {
                        db,
                        read_only: true,
                    })
                }
                Err(e) => {
                    last = Some(e);
                    thread::sleep(Duration::from_millis(20 * (attempt + 1)));
                }
            }
        }
        Err(last
            .map(StoreError::from)
            .unwrap_or_else(|| StoreError::Db("cannot open".into())))
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn cf(&self, name: &str) -> &ColumnFamily {
        // Every name in ALL_CFS is created at open, so the handle always exists.
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} missing after open"))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    pub fn contains(&self, cf: &str, key: &[u8]) -> Result<bool> {
        let cf = self.cf(cf);
        if !self.db.key_may_exist_cf(cf, key) {
            return Ok(false);
        }
        Ok(self.db.get_pinned_cf(cf, key)?.is_some())
    }

    pub fn multi_get(&self, cf: &str, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let h = self.cf(cf);
        self.db
            .multi_get_cf(keys.iter().map(|k| (h, k.as_slice())))
            .into_iter()
            .map(|r| r.map_err(StoreError::from))
            .collect()
    }

    /// Look up many keys in one call; `sorted` says the keys are in ascending order (faster).
    /// `decode` turns each found value into what the caller keeps, without copying it first.
    pub fn multi_get_with<T, K: AsRef<[u8]>>(
        &self,
        cf: &str,
        keys: &[K],
        sorted: bool,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<Option<T>>> {
        self.db
            .batched_multi_get_cf(self.cf(cf), keys.iter(), sorted)
            .into_iter()
            .map(|r| Ok(r?.and_then(|v| decode(&v))))
            .collect()
    }

    /// All (key, value) pairs whose key starts with `prefix`.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Vec<KeyValue>> {
        let mut out = Vec::new();
        self.for_each_prefix(cf, prefix, |k, v| {
            out.push((k.into(), v.into()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Call `f` for each pair under `prefix` until it returns false.
    pub fn for_each_prefix(
        &self,
        cf: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let it = self
            .db
            .iterator_cf(self.cf(cf), IteratorMode::From(prefix, Direction::Forward));
        for item in it {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Call `f(name, value)` for each key `prefix` + `name` where `name` has no `/`: the direct
    /// children of a folder, in order, jumping over each subfolder's keys with one seek. Stops
    /// when `f` returns false.
    pub fn for_each_child(
        &self,
        cf: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.cf(cf));
        it.seek(prefix);
        let mut skip = Vec::new();
        while it.valid() {
            let Some(k) = it.key() else { break };
            if !k.starts_with(prefix) {
                break;
            }
            let rest = &k[prefix.len()..];
            if let Some(p) = rest.iter().position(|&b| b == b'/') {
                // Past "prefix/sub/...": the next key after it starts "prefix/sub0" ('/' + 1).
                skip.clear();
                skip.extend_from_slice(&k[..prefix.len() + p]);
                skip.push(b'/' + 1);
                it.seek(&skip);
                continue;
            }
            if !f(rest, it.value().unwrap_or_default())? {
                return Ok(());
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    pub fn write(&self, batch: Batch) -> Result<()> {
        if batch.inner.is_empty() {
            return Ok(());
        }
        if self.read_only {
            return Err(StoreError::Db("the database is open read-only".into()));
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch.inner, &wo)?;
        Ok(())
    }

    pub fn batch(&self) -> Batch {
        Batch {
            inner: WriteBatch::default(),
        }
    }

    pub fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = self.batch();
        b.put(self, cf, key, value);
        self.write(b)
    }

    /// Compact everything (after gc deleted many keys).
    pub fn compact(&self) {
        for name in ALL_CFS {
            self.db
                .compact_range_cf(self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }
}

/// Memtables larger than this are flushed when a writer closes the database.
const FLUSH_ON_CLOSE: u64 = 4 << 20;

impl Drop for Db {
    /// A large write leaves a large write-ahead log, which every read-only open (status, log,
    /// ls...) would replay. Flushing it into table files once, here, keeps readers fast.
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        let total: u64 = ALL_CFS
            .iter()
            .map(|name| {
                self.db
                    .property_int_value_cf(self.cf(name), "rocksdb.cur-size-all-mem-tables")
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum();
        // All families, not only the big ones: a log is deleted only once every family
        // holding data in it has been flushed.
        if total >= FLUSH_ON_CLOSE {
            for name in ALL_CFS {
                let _ = self.db.flush_cf(self.cf(name));
            }
        }
    }
}

/// Changes to apply atomically.
pub struct Batch {
    inner: WriteBatch,
}

impl Batch {
    pub fn put(&mut self, db: &Db, cf: &str, key: &[u8], value: &[u8]) {
        self.inner.put_cf(db.cf(cf), key, value);
    }
    pub fn delete(&mut self, db: &Db, cf: &str, key: &[u8]) {
        self.inner.delete_cf(db.cf(cf), key);
    }
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod child_tests {
    use super::*;

    #[test]
    fn children_skip_subfolders_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        for k in [
            "a/x", "a/b/c", "a/b.txt", "a/b0", "a/c/d/e", "a/z", "ab/q", "a/b/d/e",
        ] {
            db.put(CF_STAT, k.as_bytes(), b"v").unwrap();
        }
        let mut seen = Vec::new();
        db.for_each_child(CF_STAT, b"a/", |name, _| {
            seen.push(String::from_utf8_lossy(name).into_owned());
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, ["b.txt", "b0", "x", "z"]);
    }
}
