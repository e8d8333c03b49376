//! The object store: RocksDB index + pack files. Reading verifies every hash; writing goes
//! through a `Txn` that fsyncs pack data before the one atomic index write.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::chunking;
use crate::db::{Batch, Db, ObjKind, CF_CHUNKS, CF_OBJECTS};
use crate::error::{IoContext, Result, StoreError};
use crate::id::Id;
use crate::object::{Commit, FileManifest, Tree};
use crate::pack::{encode_chunk, ChunkLoc, PackReader, PackWriter};

/// A chunk ready for a pack: its codec, and its compressed bytes (None: stored as it is).
type Encoded = (u8, Option<Vec<u8>>);
/// A hashed chunk: id, offset and length in the file, and its encoding if it must be written.
type Hashed = (Id, usize, usize, Option<Encoded>);

/// Files at least this big are hashed with several threads and read through mmap.
const BIG_FILE: u64 = 8 << 20;

/// Bytes of a mapped file worked on at a time; its pages are released after, which bounds
/// the resident memory of adding or hashing a file of any size.
const REGION: usize = 64 << 20;

/// Chunks a batch of cuts of a mapped file holds (about 8 MB), and batches cut ahead of the
/// writing: what is resident while adding a file is about that many batches.
const CUT_BATCH: usize = 16;
const CUT_QUEUE: usize = 4;

/// Drop the pages of `map` from `from` up to `to` (rounded down to a page) from this
/// process: the file's data stays in the page cache, but no longer counts as ours. Returns
/// how far pages are released now.
fn release(map: &memmap2::Mmap, from: usize, to: usize) -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .unwrap_or(4096)
        .max(1);
    let upto = to / page * page;
    if upto <= from {
        return from;
    }
    // SAFETY: a read-only shared file mapping: pages dropped are read again from the file on
    // the next access, so no data is lost or changed (unlike a private anonymous map).
    let _ = unsafe {
        map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, upto - from)
    };
    upto
}

/// How far ahead of the cutting the kernel is asked to read a mapped file.
const READ_AHEAD: usize = 64 << 20;

/// Ask the kernel to read `map` from `asked` up to `READ_AHEAD` past `pos`, a quarter of that
/// at a time, without waiting; returns how far it has been asked. On a fault, a file that is
/// not cached is read a little at a time and the cutting waits on each read; queued ahead,
/// an uncached 1 GiB add went from 1.80 to 1.64 s (median of 7; see the book's performance
/// page). The pages go to the page cache, not to this process.
fn read_ahead(map: &memmap2::Mmap, pos: usize, asked: usize) -> usize {
    let want = (pos + READ_AHEAD).min(map.len());
    if want <= asked || (want < map.len() && want - asked < READ_AHEAD / 4) {
        return asked;
    }
    // Only advice: a kernel that ignores it leaves the faults to read the pages.
    let _ = map.advise_range(memmap2::Advice::WillNeed, asked, want - asked);
    want
}

pub struct Store {
    /// Private to the store: other crates go through typed methods (`access.rs`), so the
    /// database layout stays the store's to change.
    pub(crate) db: Db,
    packs_dir: PathBuf,
    reader: PackReader,
    /// Compress the chunks of multi-chunk files too (`core.compression = "all"`).
    pub compress_large: bool,
    /// Compress files of one chunk when it saves space (`core.compression` not "none").
    pub compress_small: bool,
    /// Write large files' chunks without the page cache (`core.direct_io`).
    pub direct_io: bool,
    /// An empty stand-in for a project whose store does not exist yet: an unknown revision
    /// then means "nothing fetched", not a typo.
    pub nothing_fetched: bool,
    /// Stat-cache entries this process computed but could not write (a reader; a busy
    /// project): later lookups in the same process use them, so a `dvx status` reading one
    /// changed input for many stages hashes it once, not once per stage.
    pub(crate) fresh_stats: Mutex<std::collections::BTreeMap<String, crate::statcache::StatEntry>>,
    /// The commit read last: a commit never changes, and one command reads HEAD's several
    /// times (a run's commit of 100,000 datums: three reads of 100,000 run ids).
    last_commit: Mutex<Option<ReadCommit>>,
}

/// A commit as read, by its id.
struct ReadCommit {
    id: Id,
    commit: Commit,
}

impl Store {
    /// The hashes this process remembers (`fresh_stats`) for `rel` and what lies under it.
    /// Sorted by path, so only those are visited, however many a long-lived reader (`dvx
    /// serve`) holds. ("a-b" sorts between "a" and "a/": the path itself is looked up apart.)
    pub(crate) fn fresh_under(&self, rel: &str) -> Vec<(String, crate::statcache::StatEntry)> {
        let fresh = self.fresh_stats.lock().unwrap_or_else(|p| p.into_inner());
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        fresh
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(p, _)| p.starts_with(&prefix))
            .chain(fresh.get_key_value(rel))
            .map(|(p, e)| (p.clone(), *e))
            .collect()
    }

    pub fn new(db: Db, packs_dir: &Path) -> Store {
        Store {
            db,
            packs_dir: packs_dir.to_path_buf(),
            reader: PackReader::new(packs_dir),
            compress_large: false,
            compress_small: true,
            direct_io: true,
            nothing_fetched: false,
            fresh_stats: Mutex::new(std::collections::BTreeMap::new()),
            last_commit: Mutex::new(None),
        }
    }

    pub fn packs_dir(&self) -> &Path {
        &self.packs_dir
    }

    pub fn pack_reader(&self) -> &PackReader {
        &self.reader
    }

    pub fn chunk_loc(&self, id: &Id) -> Result<Option<ChunkLoc>> {
        match self.db.get(CF_CHUNKS, id.as_bytes())? {
            Some(v) => Ok(Some(ChunkLoc::decode(*id, &v)?)),
            None => Ok(None),
        }
    }

    pub fn read_chunk(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = self.chunk_loc(id)?.ok_or(StoreError::MissingObject {
            kind: "chunk",
            id: *id,
        })?;
        self.reader.read(*id, &loc)
    }

    /// A chunk located already (`chunk_loc`), verified against its id.
    pub fn read_chunk_at(&self, id: &Id, loc: &ChunkLoc) -> Result<Vec<u8>> {
        self.reader.read(*id, loc)
    }

    pub fn get_object(&self, kind: ObjKind, id: &Id) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_OBJECTS, &kind.key(id))
    }

    pub fn has_object(&self, kind: ObjKind, id: &Id) -> Result<bool> {
        self.db.contains(CF_OBJECTS, &kind.key(id))
    }

    fn need_object(&self, kind: ObjKind, id: &Id) -> Result<Vec<u8>> {
        let bytes = self
            .get_object(kind, id)?
            .ok_or(StoreError::MissingObject {
                kind: kind.name(),
                id: *id,
            })?;
        Ok(bytes)
    }

    /// A tree's encoded bytes, checked against its id (decode with `Tree::decode_ref`).
    pub fn get_tree_bytes(&self, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.need_object(ObjKind::Tree, id)?;
        if Id::of(&bytes) != *id {
            return Err(StoreError::corrupt(
                "tree",
                *id,
                "content does not match its id",
            ));
        }
        Ok(bytes)
    }

    pub fn get_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.need_object(ObjKind::Tree, id)?;
        if Id::of(&bytes) != *id {
            return Err(StoreError::corrupt(
                "tree",
                *id,
                "content does not match its id",
            ));
        }
        Tree::decode(*id, &bytes)
    }

    pub fn get_commit(&self, id: &Id) -> Result<Commit> {
        let last = || self.last_commit.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = last().as_ref().filter(|c| c.id == *id) {
            return Ok(c.commit.clone());
        }
        let bytes = self.need_object(ObjKind::Commit, id)?;
        if Id::of(&bytes) != *id {
            return Err(StoreError::corrupt(
                "commit",
                *id,
                "content does not match its id",
            ));
        }
        let commit = Commit::decode(*id, &bytes)?;
        *last() = Some(ReadCommit {
            id: *id,
            commit: commit.clone(),
        });
        Ok(commit)
    }

    /// The chunks of a file: its manifest's list, or the file itself as one chunk.
    pub fn file_chunks(&self, id: &Id) -> Result<Vec<(Id, u32)>> {
        if let Some(bytes) = self.get_object(ObjKind::File, id)? {
            return Ok(FileManifest::decode(*id, &bytes)?.chunks);
        }
        match self.chunk_loc(id)? {
            Some(loc) => Ok(vec![(*id, loc.raw_len)]),
            None => Err(StoreError::MissingObject {
                kind: "file",
                id: *id,
            }),
        }
    }

    pub fn has_file(&self, id: &Id) -> Result<bool> {
        Ok(self.db.contains(CF_CHUNKS, id.as_bytes())?
            || self.db.contains(CF_OBJECTS, &ObjKind::File.key(id))?)
    }

    /// Stream a file's content to `out`, verifying every chunk and the whole-file id.
    pub fn write_file_to(&self, id: &Id, out: &mut dyn Write) -> Result<u64> {
        let chunks = self.file_chunks(id)?;
        let mut hasher = blake3::Hasher::new();
        let mut n = 0u64;
        for (cid, _) in &chunks {
            let data = self.read_chunk(cid)?;
            if chunks.len() > 1 {
                hasher.update(&data);
            }
            out.write_all(&data)
                .map_err(|e| StoreError::io("<output>", e))?;
            n += data.len() as u64;
        }
        if chunks.len() > 1 && Id::from_hash(hasher.finalize()) != *id {
            return Err(StoreError::corrupt(
                "file",
                *id,
                "content does not match its id",
            ));
        }
        Ok(n)
    }

    pub fn read_file(&self, id: &Id) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_file_to(id, &mut v)?;
        Ok(v)
    }

    pub fn txn(&self) -> Result<Txn<'_>> {
        Ok(Txn {
            store: self,
            pack: Mutex::new(None),
            batch: Mutex::new(self.db.batch()),
            pending: Mutex::new(HashSet::new()),
        })
    }
}

/// One atomic write: chunks appended to packs, then every index/object/ref change in one batch.
pub struct Txn<'a> {
    store: &'a Store,
    pack: Mutex<Option<PackWriter>>,
    batch: Mutex<Batch>,
    pending: Mutex<HashSet<Id>>,
}

impl<'a> Txn<'a> {
    pub fn store(&self) -> &'a Store {
        self.store
    }

    fn lock_batch(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raw writes stay inside the store; other crates use the typed methods.
    pub(crate) fn put(&self, cf: &str, key: &[u8], value: &[u8]) {
        self.lock_batch().put(&self.store.db, cf, key, value);
    }

    pub(crate) fn delete(&self, cf: &str, key: &[u8]) {
        self.lock_batch().delete(&self.store.db, cf, key);
    }

    pub fn put_object(&self, kind: ObjKind, id: &Id, bytes: &[u8]) {
        self.put(CF_OBJECTS, &kind.key(id), bytes);
    }

    pub fn put_tree(&self, tree: &Tree) -> Id {
        let bytes = tree.encode();
        let id = Id::of(&bytes);
        self.put_object(ObjKind::Tree, &id, &bytes);
        id
    }

    pub fn put_commit(&self, c: &Commit) -> Id {
        let bytes = c.encode();
        let id = Id::of(&bytes);
        self.put_object(ObjKind::Commit, &id, &bytes);
        id
    }

    /// Claim a chunk id for writing; false if the store or this txn already has it.
    fn claim(&self, id: &Id) -> Result<bool> {
        if self.store.db.contains(CF_CHUNKS, id.as_bytes())? {
            return Ok(false);
        }
        Ok(self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id))
    }

    /// Run `f` on this transaction's pack writer, opened on first use.
    fn with_writer<R>(&self, f: impl FnOnce(&mut PackWriter) -> Result<R>) -> Result<R> {
        let mut g = self.pack.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(w) => f(w),
            None => f(g.insert(PackWriter::open(&self.store.packs_dir)?)),
        }
    }

    fn append(&self, id: Id, codec: u8, raw_len: u32, stored: &[u8]) -> Result<()> {
        let loc = self.with_writer(|w| w.append(id, codec, raw_len, stored))?;
        self.put(CF_CHUNKS, id.as_bytes(), &loc.encode());
        Ok(())
    }

    /// Store one chunk given its raw bytes (compressing if that pays).
    pub fn put_chunk(&self, id: Id, raw: &[u8]) -> Result<()> {
        if self.claim(&id)? {
            if self.store.compress_small {
                let (codec, stored) = encode_chunk(raw);
                self.append(id, codec, raw.len() as u32, &stored)?;
            } else {
                self.append(id, crate::pack::CODEC_RAW, raw.len() as u32, raw)?;
            }
        }
        Ok(())
    }

    /// Store a chunk as it came from elsewhere (a remote), already encoded. The caller has
    /// verified that it decodes to `id`.
    pub fn put_stored_chunk(&self, id: Id, codec: u8, raw_len: u32, stored: &[u8]) -> Result<()> {
        if self.claim(&id)? {
            self.append(id, codec, raw_len, stored)?;
        }
        Ok(())
    }

    /// Store a file's content held in memory; returns its id (= BLAKE3 of `data`).
    pub fn put_bytes(&self, data: &[u8]) -> Result<Id> {
        let whole = || {
            let mut h = blake3::Hasher::new();
            h.update_rayon(data);
            Id::from_hash(h.finalize())
        };
        let cuts = if data.len() as u64 >= BIG_FILE {
            chunking::chunks_parallel(data)
        } else {
            chunking::chunks(data)
        };
        if cuts.len() == 1 {
            let id = Id::of(data);
            self.put_chunk(id, data)?;
            return Ok(id);
        }
        // The whole-file hash runs beside the chunk pass: that pass is bound by writing the
        // pack on one thread, which leaves a core for it.
        let (id, list) = rayon::join(whole, || self.put_chunks(data, &cuts));
        let list = list?;
        let manifest = FileManifest {
            size: data.len() as u64,
            chunks: list,
        };
        self.put_object(ObjKind::File, &id, &manifest.encode());
        Ok(id)
    }

    /// Store a mapped file of more than one chunk. One thread cuts the file from start to end
    /// and hands the cuts on in batches; this one hashes and writes each batch while the
    /// next is cut, and drops the pages of what it has written from the process, so what
    /// stays resident is a few batches whatever the file's size. Gives the same chunks and
    /// id as `put_bytes` of the whole content.
    ///
    /// One pass cuts each byte once. Cutting 64 MB regions on several threads scanned some
    /// bytes twice to join them and held a region's pages at a time: this way a 1 GiB add
    /// peaks at 90 MB instead of 142 MB.
    fn put_mapped(&self, map: &memmap2::Mmap) -> Result<Id> {
        // A large file's chunks bypass the page cache (see `directio`).
        if self.store.direct_io {
            self.with_writer(|w| w.go_direct())?;
        }
        let data: &[u8] = map;
        let len = data.len();
        let mut hasher = blake3::Hasher::new();
        let mut list = Vec::new();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, usize)>>(CUT_QUEUE);
        std::thread::scope(|scope| -> Result<()> {
            scope.spawn(move || {
                let mut batch = Vec::with_capacity(CUT_BATCH);
                let mut pos = 0;
                let mut asked = 0;
                while pos < len {
                    asked = read_ahead(map, pos, asked);
                    let n = chunking::cut(&data[pos..]);
                    batch.push((pos, n));
                    pos += n;
                    // A receiver gone (a write failed) stops the cutting.
                    if batch.len() == CUT_BATCH && tx.send(std::mem::take(&mut batch)).is_err() {
                        return;
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
            });
            let mut released = 0usize;
            list = if self.store.compress_large {
                self.put_batches(
                    data,
                    rx,
                    &mut |bytes| {
                        hasher.update_rayon(bytes);
                    },
                    &mut |end| released = release(map, released, end),
                )?
            } else {
                self.put_in_order(data, rx, &mut hasher, &mut |end| {
                    released = release(map, released, end)
                })?
            };
            Ok(())
        })?;
        let id = Id::from_hash(hasher.finalize());
        let manifest = FileManifest {
            size: len as u64,
            chunks: list,
        };
        self.put_object(ObjKind::File, &id, &manifest.encode());
        Ok(id)
    }

    /// Store uncompressed chunks of `data` a batch of cuts at a time, each chunk whole before
    /// the next: its id, its part of the file's hash and its copy into the pack all read it
    /// while it sits in the core's cache (a chunk is 2 MiB at most), so this thread reads the
    /// file from memory once instead of three times. On two cores this beat hashing each batch on the
    /// pool and copying it after (see the book's performance page); the cutting thread
    /// bounds the rate either way.
    fn put_in_order(
        &self,
        data: &[u8],
        batches: impl IntoIterator<Item = Vec<(usize, usize)>>,
        file: &mut blake3::Hasher,
        written: &mut dyn FnMut(usize),
    ) -> Result<Vec<(Id, u32)>> {
        let mut list = Vec::new();
        for batch in batches {
            for &(off, len) in &batch {
                let raw = &data[off..off + len];
                let cid = Id::of(raw);
                file.update(raw);
                if self.claim(&cid)? {
                    self.append(cid, crate::pack::CODEC_RAW, len as u32, raw)?;
                }
                list.push((cid, len as u32));
            }
            if let Some(&(off, len)) = batch.last() {
                written(off + len);
            }
        }
        Ok(list)
    }

    /// Hash the chunks `window` of `data` (in parallel), claim those the store lacks, and
    /// encode them for the pack. Chunks of large files stay uncompressed unless asked: zstd
    /// tripled the time of adding a 1 GB CSV (see the book's performance page).
    fn hash_chunks(&self, data: &[u8], window: &[(usize, usize)]) -> Result<Vec<Hashed>> {
        let compress = self.store.compress_large;
        window
            .par_iter()
            .map(|&(off, len)| {
                let raw = &data[off..off + len];
                let cid = Id::of(raw);
                let enc = if self.claim(&cid)? {
                    Some(if compress {
                        let (c, v) = encode_chunk(raw);
                        (c, Some(v))
                    } else {
                        (crate::pack::CODEC_RAW, None)
                    })
                } else {
                    None
                };
                Ok((cid, off, len, enc))
            })
            .collect()
    }

    /// Append hashed chunks to the pack in order; returns their ids and lengths.
    fn write_hashed(&self, data: &[u8], hashed: Vec<Hashed>) -> Result<Vec<(Id, u32)>> {
        let mut done = Vec::with_capacity(hashed.len());
        for (cid, off, len, enc) in hashed {
            if let Some((codec, stored)) = enc {
                let bytes = stored.as_deref().unwrap_or(&data[off..off + len]);
                self.append(cid, codec, len as u32, bytes)?;
            }
            done.push((cid, len as u32));
        }
        Ok(done)
    }

    /// Store the chunks `cuts` of `data`; returns their ids and lengths in order.
    fn put_chunks(&self, data: &[u8], cuts: &[(usize, usize)]) -> Result<Vec<(Id, u32)>> {
        // A window at a time to bound memory.
        self.put_batches(data, cuts.chunks(32), &mut |_| {}, &mut |_| {})
    }

    /// Store chunks of `data` a batch of cuts at a time: the thread pool hashes (and
    /// compresses) a batch, and runs `each` over its bytes, while this thread writes the batch
    /// before to the pack; `written` hears how far the data is written. Returns the chunks'
    /// ids and lengths in order.
    fn put_batches<B: AsRef<[(usize, usize)]>>(
        &self,
        data: &[u8],
        batches: impl IntoIterator<Item = B>,
        each: &mut (dyn FnMut(&[u8]) + Send),
        written: &mut dyn FnMut(usize),
    ) -> Result<Vec<(Id, u32)>> {
        let mut list = Vec::new();
        let mut pending: Option<(Vec<Hashed>, usize)> = None;
        for batch in batches {
            let batch = batch.as_ref();
            let (Some(&(from, _)), Some(&(off, n))) = (batch.first(), batch.last()) else {
                continue;
            };
            let to = off + n;
            let ((_, hashed), done) = rayon::join(
                || rayon::join(|| each(&data[from..to]), || self.hash_chunks(data, batch)),
                || {
                    pending
                        .take()
                        .map(|(h, end)| (self.write_hashed(data, h), end))
                },
            );
            if let Some((w, end)) = done {
                list.extend(w?);
                written(end);
            }
            pending = Some((hashed?, to));
        }
        if let Some((h, end)) = pending {
            list.extend(self.write_hashed(data, h)?);
            written(end);
        }
        Ok(list)
    }

    /// Read and store a file from disk; returns (id, size).
    pub fn put_path(&self, path: &Path) -> Result<(Id, u64)> {
        let mut f = File::open(path).at(path)?;
        let len = f.metadata().at(path)?.len();
        if len >= BIG_FILE {
            let before = crate::statcache::Stat::of(&f.metadata().at(path)?);
            // SAFETY: the map is read-only and dropped before returning. A file changed while
            // it is added is caught by the metadata check below.
            let map = unsafe { memmap2::MmapOptions::new().map(&f) }.at(path)?;
            let id = self.put_mapped(&map)?;
            let after = crate::statcache::Stat::of(&f.metadata().at(path)?);
            if after.mtime_ns != before.mtime_ns || after.size != before.size {
                return Err(StoreError::InvalidPath {
                    path: path.to_string_lossy().into_owned(),
                    reason: "the file changed while it was being added; add it again when it is complete".into(),
                });
            }
            return Ok((id, map.len() as u64));
        }
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).at(path)?;
        let id = self.put_bytes(&buf)?;
        Ok((id, buf.len() as u64))
    }

    /// Write what the transaction holds so far, once it holds more than `limit` bytes, and
    /// keep it open. Only for writes whose every piece is content-addressed (chunks, files,
    /// trees, stat-cache entries of files just stored), so that a crash after a flush
    /// leaves objects that nothing names yet, never a wrong one: adding a million files then
    /// holds a bounded batch instead of one entry per file until the end. Lineage rebuilds
    /// use it too, between marking the store unindexed and marking it indexed again. The packs are
    /// synced first, and the pack lock is held throughout, so every index entry written
    /// names bytes already on disk.
    pub fn flush_over(&self, limit: usize) -> Result<()> {
        if self.lock_batch().size_bytes() < limit {
            return Ok(());
        }
        let mut pack = self.pack.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = pack.as_mut() {
            w.sync()?;
        }
        let batch = std::mem::replace(&mut *self.lock_batch(), self.store.db.batch());
        self.store.db.write(batch)?;
        if let Some(w) = pack.as_mut() {
            w.keep_written();
        }
        // Tests kill a long add here: pieces written, no commit.
        crate::fsutil::fault_point("after-piece");
        // Claimed ids are in the index now (one claimed again meanwhile is stored twice,
        // harmlessly).
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    /// Make everything durable: fsync packs, then write the batch atomically.
    pub fn commit(self) -> Result<()> {
        if let Some(w) = self.pack.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            w.sync()?; // on error, Drop rolls the appends back
        }
        let batch = std::mem::replace(&mut *self.lock_batch(), self.store.db.batch());
        self.store.db.write(batch)?;
        // Indexed now: the appends must stay.
        self.pack.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

impl Drop for Txn<'_> {
    /// A transaction dropped without commit (an error on the way) takes its appends back.
    fn drop(&mut self) {
        if let Some(w) = self.pack.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.rollback();
        }
    }
}

/// Hash a file on disk without storing it.
pub fn hash_path(path: &Path) -> Result<(Id, u64)> {
    let f = File::open(path).at(path)?;
    let len = f.metadata().at(path)?.len();
    let mut h = blake3::Hasher::new();
    if len >= BIG_FILE {
        // SAFETY: read-only map, dropped before returning.
        let map = unsafe { memmap2::MmapOptions::new().map(&f) }.at(path)?;
        let mut pos = 0usize;
        while pos < map.len() {
            let end = (pos + REGION).min(map.len());
            h.update_rayon(&map[pos..end]);
            release(&map, pos, end);
            pos = end;
        }
    } else {
        let mut f = f;
        let mut buf = Vec::with_capacity(len as usize);
        f.read_to_end(&mut buf).at(path)?;
        h.update(&buf);
        return Ok((Id::from_hash(h.finalize()), buf.len() as u64));
    }
    Ok((Id::from_hash(h.finalize()), len))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
