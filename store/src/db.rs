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
//!
//! Damage is an error, never a silent rollback: the write-ahead log is replayed in RocksDB's
//! "tolerate corrupted tail records" mode (a write torn by a kill is dropped, a damaged record
//! anywhere is refused), and a writer flushes what it wrote into checksummed table files when it
//! closes, so the log rarely holds anything that must last. Column families that can be derived
//! again (the stat cache) are rebuilt when found damaged instead of failing the command.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, BoundColumnFamily, Cache, ColumnFamilyDescriptor, DBCompressionType,
    DBRecoveryMode, Direction, ErrorKind, IteratorMode, LogLevel, Options, ReadOptions, WriteBatch,
    WriteOptions, DB,
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
    /// Set by the first write, so that closing flushes only what this process wrote.
    wrote: AtomicBool,
    /// The stat cache was found damaged (and, in a writer, rebuilt) during this process.
    stat_damaged: AtomicBool,
}

/// Column families whose contents can be derived again from the rest, so damage to them is
/// repaired by starting them empty rather than reported as lost data.
pub const DERIVABLE: [&str; 1] = [CF_STAT];

fn is_corruption(e: &rocksdb::Error) -> bool {
    e.kind() == ErrorKind::Corruption
}

fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    // Trees and commits compress well; index entries and stat records are small and hot.
    match name {
        CF_OBJECTS | CF_RUNS => o.set_compression_type(DBCompressionType::Zstd),
        _ => o.set_compression_type(DBCompressionType::Lz4),
    }
    o.set_write_buffer_size(16 << 20);
    let mut t = BlockBasedOptions::default();
    // One block cache for every family: each would otherwise get its own 32 MB (a push of a
    // million files filled 65 MB of them).
    t.set_block_cache(block_cache());
    if name == CF_CHUNKS || name == CF_OBJECTS {
        // Most lookups here miss (is this chunk new?): a filter answers them without
        // reading a data block, which kept a fetch's block cache full of blocks read once.
        t.set_bloom_filter(10.0, false);
    }
    if name == CF_STAT {
        // `status` reads a folder's entries as one ordered scan: bigger blocks, fewer reads.
        t.set_block_size(32 << 10);
    }
    o.set_block_based_table_factory(&t);
    o
}

/// The process's block cache, shared by its column families.
fn block_cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Cache::new_lru_cache(32 << 20))
}

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_open_files(256);
    o.set_keep_log_file_num(2);
    o.set_log_level(LogLevel::Warn);
    o.set_max_total_wal_size(64 << 20);
    // All memtables together: a write of a million entries (an add of a million files)
    // then flushes as it goes instead of holding up to two full memtables per family.
    o.set_db_write_buffer_size(48 << 20);
    o.increase_parallelism(2);
    // Opening starts a thread per table file to open (16 by default, per column family):
    // about 110 threads for a read that lasts 0.2 s. The files are few; open them in turn.
    o.set_max_file_opening_threads(1);
    // A record torn by a kill at the end of the log is dropped (its write never returned); a
    // damaged record is an error, never a quiet rollback to an older state.
    o.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    o
}

/// Options for `dvx fsck --recover`: replay the log up to its first damaged record.
fn salvage_options() -> Options {
    let mut o = db_options();
    o.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    o
}

fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    if is_corruption(&e) {
        let detail = e.into_string();
        // Damage met while opening names its table file or the manifest; anything else is
        // the log being replayed.
        let log = !detail.contains(".sst") && !detail.contains("MANIFEST");
        StoreError::DbCorrupt {
            path: path.to_path_buf(),
            detail,
            log,
        }
    } else {
        StoreError::from(e)
    }
}

impl Db {
    /// Open for writing. The caller must hold the project's writer lock.
    pub fn open(path: &Path) -> Result<Db> {
        Self::open_with(path, &db_options())
    }

    /// Open for writing after a damaged write-ahead log: keep what precedes the first damaged
    /// record, drop the rest, and flush at once so the damaged log is retired.
    pub fn open_salvaging(path: &Path) -> Result<Db> {
        let db = Self::open_with(path, &salvage_options())?;
        db.flush_all()?;
        Ok(db)
    }

    fn open_with(path: &Path, opts: &Options) -> Result<Db> {
        let cfs = ALL_CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n)));
        let db = DB::open_cf_descriptors(opts, path, cfs).map_err(|e| open_error(path, e))?;
        Ok(Db::wrap(db, false))
    }

    fn wrap(db: DB, read_only: bool) -> Db {
        Db {
            db,
            read_only,
            wrote: AtomicBool::new(false),
            stat_damaged: AtomicBool::new(false),
        }
    }

    /// Open for reading while another process may be writing. Retries briefly, since a
    /// concurrent writer can be switching files just as we open.
    pub fn open_read_only(path: &Path) -> Result<Db> {
        // Every table file is opened now and held: a writer that compacts meanwhile deletes
        // files this reader would otherwise open later, mid-command.
        let mut opts = db_options();
        opts.set_max_open_files(-1);
        let mut last = None;
        for attempt in 0..20 {
            match DB::open_cf_for_read_only(&opts, path, ALL_CFS, false) {
                Ok(db) => return Ok(Db::wrap(db, true)),
                // A table file the manifest named was deleted by a writer between our reading
                // the manifest and opening the file: a newer manifest follows. Reported as
                // corruption by RocksDB, it is a race, and retrying resolves it.
                Err(e)
                    if is_corruption(&e)
                        && !e.to_string().contains("No such file or directory") =>
                {
                    return Err(open_error(path, e))
                }
                Err(e) => {
                    last = Some(e);
                    thread::sleep(Duration::from_millis(20 * (attempt + 1)));
                }
            }
        }
        Err(last
            .map(|e| open_error(path, e))
            .unwrap_or_else(|| StoreError::Db("cannot open".into())))
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn cf(&self, name: &str) -> Arc<BoundColumnFamily<'_>> {
        // Every name in ALL_CFS is created at open, so the handle exists, except for the
        // moment `reset_cf` drops and creates it again (a damaged stat cache found by one
        // thread of a parallel walk while others read it): wait for it then.
        for _ in 0..5_000 {
            if let Some(h) = self.db.cf_handle(name) {
                return h;
            }
            thread::sleep(Duration::from_millis(1));
        }
        panic!("column family {name} missing after open")
    }

    /// Turn a read error into a result: damage to a derivable column family is repaired (in a
    /// writer) and read as "nothing there"; anything else is an error naming the damage.
    fn checked<T>(
        &self,
        cf: &str,
        r: std::result::Result<T, rocksdb::Error>,
        empty: T,
    ) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if is_corruption(&e) && DERIVABLE.contains(&cf) => {
                self.derivable_damaged(cf)?;
                Ok(empty)
            }
            Err(e) if is_corruption(&e) => Err(StoreError::DbCorrupt {
                path: self.db.path().to_path_buf(),
                detail: format!("column family {cf}: {}", e.into_string()),
                log: false,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A derivable column family failed its checksums: start it empty (writers), or carry on
    /// without it (readers). Said once per process.
    fn derivable_damaged(&self, cf: &str) -> Result<()> {
        if self.stat_damaged.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.read_only {
            eprintln!(
                "warning: the stat cache is damaged; files are hashed again (a command that writes, or `dvx fsck`, rebuilds it)"
            );
            return Ok(());
        }
        self.reset_cf(cf)?;
        eprintln!(
            "warning: the stat cache was damaged and has been rebuilt; files are hashed again once"
        );
        Ok(())
    }

    /// Drop a column family with everything in it (damaged table files included) and create
    /// it again empty.
    pub fn reset_cf(&self, cf: &str) -> Result<()> {
        if self.read_only {
            return Err(StoreError::Db("the database is open read-only".into()));
        }
        self.db.drop_cf(cf)?;
        self.db.create_cf(cf, &cf_options(cf))?;
        Ok(())
    }

    /// Read every entry of a column family with checksums verified (what fsck needs: a scan
    /// touches every data block of every live table file). Returns the number of entries.
    pub fn verify_cf(&self, cf: &str) -> std::result::Result<u64, String> {
        let mut ro = ReadOptions::default();
        ro.set_verify_checksums(true);
        ro.fill_cache(false);
        let mut it = self.db.raw_iterator_cf_opt(&self.cf(cf), ro);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status().map_err(|e| e.into_string())?;
        Ok(n)
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.checked(cf, self.db.get_cf(&self.cf(cf), key), None)
    }

    pub fn contains(&self, cf: &str, key: &[u8]) -> Result<bool> {
        let h = self.cf(cf);
        if !self.db.key_may_exist_cf(&h, key) {
            return Ok(false);
        }
        let found = self.db.get_pinned_cf(&h, key).map(|v| v.is_some());
        self.checked(cf, found, false)
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
        let found: std::result::Result<Vec<Option<T>>, rocksdb::Error> = self
            .db
            .batched_multi_get_cf(&self.cf(cf), keys.iter(), sorted)
            .into_iter()
            .map(|r| Ok(r?.and_then(|v| decode(&v))))
            .collect();
        let empty = || keys.iter().map(|_| None).collect();
        match found {
            Ok(v) => Ok(v),
            Err(e) => self.checked(cf, Err(e), empty()),
        }
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
        let mut failed = None;
        let it = self
            .db
            .iterator_cf(&self.cf(cf), IteratorMode::From(prefix, Direction::Forward));
        for item in it {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            if !k.starts_with(prefix) {
                break;
            }
            if !f(&k, &v)? {
                break;
            }
        }
        // The iterator is gone before a damaged family is dropped and made anew.
        match failed {
            Some(e) => self.checked(cf, Err(e), ()),
            None => Ok(()),
        }
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
        let mut it = self.db.raw_iterator_cf(&self.cf(cf));
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
        let status = it.status();
        drop(it);
        self.checked(cf, status, ())
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
        // A batch built just before the stat cache was rebuilt may name the dropped family;
        // its cache entries are simply not kept.
        wo.set_ignore_missing_column_families(true);
        self.wrote.store(true, Ordering::Relaxed);
        self.db.write_opt(batch.inner, &wo)?;
        Ok(())
    }

    /// Move everything in memory into table files, so the write-ahead log holds nothing that
    /// must last.
    pub fn flush_all(&self) -> Result<()> {
        let handles: Vec<_> = ALL_CFS.iter().map(|n| self.cf(n)).collect();
        let refs: Vec<&Arc<BoundColumnFamily>> = handles.iter().collect();
        self.db
            .flush_cfs_opt(&refs, &rocksdb::FlushOptions::default())?;
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
                .compact_range_cf(&self.cf(name), None::<&[u8]>, None::<&[u8]>);
        }
    }
}

impl Drop for Db {
    /// What a writer wrote is flushed from the write-ahead log into checksummed table files
    /// before it closes: the log is then retired, so damage to a log file can no longer take
    /// back a finished command, and read-only opens have nothing to replay.
    fn drop(&mut self) {
        if self.read_only || !self.wrote.load(Ordering::Relaxed) {
            return;
        }
        let _ = self.flush_all();
    }
}

/// Changes to apply atomically.
pub struct Batch {
    inner: WriteBatch,
}

impl Batch {
    pub fn put(&mut self, db: &Db, cf: &str, key: &[u8], value: &[u8]) {
        self.inner.put_cf(&db.cf(cf), key, value);
    }
    pub fn delete(&mut self, db: &Db, cf: &str, key: &[u8]) {
        self.inner.delete_cf(&db.cf(cf), key);
    }
    pub fn len(&self) -> usize {
        self.inner.len()
    }
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
    /// Bytes the batch holds (keys, values and framing).
    pub fn size_bytes(&self) -> usize {
        self.inner.size_in_bytes()
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
