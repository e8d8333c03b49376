//! Adding and committing workspace paths folder by folder: each folder is listed, its files
//! identified (through the stat cache) or stored, its tree written, and only its entry kept
//! for the folder above. No list of every path is built, and the transaction is written in
//! bounded pieces, so the memory of `dvx add` or `dvx commit` does not grow with the number
//! of files (a million files was about 1 KB each when they were all held).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::db::{ObjKind, CF_STAT};
use crate::error::{IoContext, Result, StoreError};
use crate::id::Id;
use crate::listing::{cached_stats, list_dir, path_entry, DiskEntry};
use crate::object::{EntryKind, Tree, TreeEntry};
use crate::paths;
use crate::repo::Repo;
use crate::statcache::{Stat, StatEntry};
use crate::store::Txn;
use crate::worktree::{self, file_mode, Flat};
use crate::Progress;

/// The transaction is written whenever it holds this much: big enough that a write costs
/// little per entry, small enough to bound memory (RocksDB copies it into its memtable).
/// `DVX_PIECE_BYTES` sets another size (tests kill an add between pieces).
fn piece_bytes() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("DVX_PIECE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(8 << 20)
    })
}

/// What ingesting a path stored and read.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Files and symlinks under the path, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Files that had to be read (the stat cache could not vouch for them), and their bytes.
    pub files_read: u64,
    pub bytes_read: u64,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    files_read: AtomicU64,
    bytes_read: AtomicU64,
}

struct Walk<'a, 'b> {
    repo: &'a Repo,
    txn: &'a Txn<'b>,
    progress: &'a dyn Progress,
    n: Counters,
}

impl Repo {
    /// Store everything under the project path `rel` into `txn`, folder by folder, and return
    /// its entry (None: nothing there). The stat cache is used and updated. The transaction
    /// may be written in pieces on the way (everything written is content-addressed); the
    /// caller's commit makes the result visible.
    pub fn ingest_streaming(
        &self,
        txn: &Txn,
        rel: &str,
        progress: &dyn Progress,
    ) -> Result<(Option<Flat>, Ingested)> {
        let Some((disk, cached)) = path_entry(&self.root, &self.store, rel)? else {
            return Ok((None, Ingested::default()));
        };
        let walk = Walk {
            repo: self,
            txn,
            progress,
            n: Counters::default(),
        };
        let base = self.base_entry(rel);
        let base_of = |kind: EntryKind| base.filter(|b| b.kind == kind).map(|b| b.id);
        // The number of files is not known without a second walk: the bar counts up.
        progress.start("storing", 0);
        let flat = match disk.kind {
            EntryKind::Dir => walk.dir(rel, base_of(EntryKind::Dir))?,
            EntryKind::File => walk.file(rel, &disk.stat, cached, base_of(EntryKind::File))?,
            EntryKind::Symlink => walk.symlink(rel)?,
        };
        progress.finish();
        let n = &walk.n;
        Ok((
            Some(flat),
            Ingested {
                files: n.files.load(Ordering::Relaxed),
                bytes: n.bytes.load(Ordering::Relaxed),
                files_read: n.files_read.load(Ordering::Relaxed),
                bytes_read: n.bytes_read.load(Ordering::Relaxed),
            },
        ))
    }

    /// What HEAD holds at `rel`, if it can tell (a store missing part of HEAD's trees, after
    /// a partial pull, simply has no answer).
    fn base_entry(&self, rel: &str) -> Option<Flat> {
        let (_, _, base) = self.head_state().ok()?;
        worktree::lookup(&self.store, &base?.tree, rel).ok()?
    }

    /// The (name, kind, id) of a tree's entries, sorted by name; none if it is not here.
    fn base_listing(&self, tree: Option<Id>) -> Vec<(String, EntryKind, Id)> {
        let Some(tree) = tree else { return Vec::new() };
        let Ok(Some(bytes)) = self.store.get_object(ObjKind::Tree, &tree) else {
            return Vec::new();
        };
        Tree::decode_ref(tree, &bytes)
            .map(|es| {
                es.into_iter()
                    .map(|e| (e.name.to_string(), e.kind, e.id))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Walk<'_, '_> {
    /// A folder: its files here in parallel, its subfolders in parallel, then its tree.
    /// `base` is the folder's tree in HEAD: a file whose stat-cache id HEAD holds too is
    /// known to be stored, without asking the store (a million lookups on a 1 % commit).
    fn dir(&self, rel: &str, base: Option<Id>) -> Result<Flat> {
        let disk = list_dir(&self.repo.root, rel)?;
        let cached = cached_stats(&self.repo.store, rel, &disk)?;
        let known = self.repo.base_listing(base);
        let in_base = |name: &str| -> Option<(EntryKind, Id)> {
            known
                .binary_search_by(|(n, _, _)| n.as_str().cmp(name))
                .ok()
                .map(|i| (known[i].1, known[i].2))
        };
        let entries: Vec<TreeEntry> = disk
            .par_iter()
            .zip(cached.into_par_iter())
            .map(|(d, c): (&DiskEntry, Option<StatEntry>)| {
                let path = paths::join(rel, &d.name);
                let was = in_base(&d.name);
                let f = match d.kind {
                    EntryKind::Dir => {
                        let sub = was.filter(|(k, _)| *k == EntryKind::Dir).map(|(_, id)| id);
                        self.dir(&path, sub)?
                    }
                    EntryKind::File => {
                        let base = was.filter(|(k, _)| *k == EntryKind::File).map(|(_, id)| id);
                        self.file(&path, &d.stat, c, base)?
                    }
                    EntryKind::Symlink => self.symlink(&path)?,
                };
                Ok(TreeEntry {
                    name: d.name.clone(),
                    kind: f.kind,
                    mode: f.mode,
                    size: f.size,
                    id: f.id,
                })
            })
            .collect::<Result<_>>()?;
        let t = Tree::new(entries)?;
        let size = t.total_size();
        let id = self.txn.put_tree(&t);
        self.progress.inc(1);
        self.txn.flush_over(piece_bytes())?;
        Ok(Flat {
            kind: EntryKind::Dir,
            mode: 0o755,
            size,
            id,
        })
    }

    /// A file: its id from the stat cache when it vouches for it and the store has the
    /// content (HEAD holds the same id there, or the store says so), otherwise read and
    /// stored (and its new stat-cache entry recorded).
    fn file(
        &self,
        rel: &str,
        stat: &Stat,
        cached: Option<StatEntry>,
        base: Option<Id>,
    ) -> Result<Flat> {
        let abs = self.repo.root.join(rel);
        let known = cached.and_then(|c| c.lookup(stat));
        let (id, size) = match known {
            Some(id) if base == Some(id) || self.repo.store.has_file(&id)? => (id, stat.size),
            _ => {
                let (id, n) = self.txn.put_path(&abs)?;
                self.n.files_read.fetch_add(1, Ordering::Relaxed);
                self.n.bytes_read.fetch_add(n, Ordering::Relaxed);
                (id, n)
            }
        };
        if known.is_none() {
            self.txn
                .put(CF_STAT, rel.as_bytes(), &StatEntry::new(*stat, id).encode());
        }
        self.n.files.fetch_add(1, Ordering::Relaxed);
        self.n.bytes.fetch_add(size, Ordering::Relaxed);
        self.progress.inc(1);
        Ok(Flat {
            kind: EntryKind::File,
            mode: file_mode(stat.mode),
            size,
            id,
        })
    }

    /// A symlink is stored as its target, which must stay inside the project.
    fn symlink(&self, rel: &str) -> Result<Flat> {
        let abs = self.repo.root.join(rel);
        let target = link_target_checked(&abs, rel)?;
        let bytes = target.as_bytes();
        let id = Id::of(bytes);
        self.txn.put_chunk(id, bytes)?;
        self.n.files.fetch_add(1, Ordering::Relaxed);
        self.n
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.progress.inc(1);
        Ok(Flat {
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: bytes.len() as u64,
            id,
        })
    }
}

/// A symlink's target, which must be UTF-8 and stay inside the project.
pub(crate) fn link_target_checked(abs: &Path, rel: &str) -> Result<String> {
    let target = fs::read_link(abs).at(abs)?;
    let target = target.to_str().ok_or_else(|| StoreError::InvalidPath {
        path: rel.to_string(),
        reason: "the symlink's target is not valid UTF-8".into(),
    })?;
    if !paths::symlink_stays_inside(rel, target) {
        return Err(StoreError::InvalidPath {
            path: rel.to_string(),
            reason: format!(
                "symlink to {target:?} points outside the project; dvx stores links, never what they point to outside"
            ),
        });
    }
    Ok(target.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Quiet};

    fn project() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        fs::create_dir_all(&root).unwrap();
        Repo::init(&root).unwrap();
        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        (dir, repo)
    }

    fn write(root: &Path, rel: &str, data: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }

    /// The folder-by-folder walk gives the ids the scan-then-build route gives (which the
    /// golden tests pin), for files, nested and empty folders, symlinks and modes.
    #[test]
    fn streaming_gives_the_trees_the_scan_gives() {
        let (_d, repo) = project();
        let root = repo.root.clone();
        for i in 0..300 {
            write(
                &root,
                &format!("data/d{}/e{}/f{i}.txt", i % 7, i % 3),
                format!("{i}\n").as_bytes(),
            );
        }
        write(&root, "data/big.bin", &vec![7u8; 3 << 20]);
        write(&root, "data/run.sh", b"#!/bin/sh\n");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root.join("data/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(root.join("data/empty/inner")).unwrap();
        std::os::unix::fs::symlink("d0/e0/f0.txt", root.join("data/link")).unwrap();
        write(&root, "data/.dvx-tmp-x", b"temp files are never data");
        // Past the racy window, so that the stat cache may vouch for these files later.
        std::thread::sleep(std::time::Duration::from_nanos(
            crate::statcache::RACY_NS as u64 + 20_000_000,
        ));

        let txn = repo.store.txn().unwrap();
        let (old, found) = repo.ingest(&txn, &root, "data", &Quiet).unwrap();
        drop(txn);
        let txn = repo.store.txn().unwrap();
        let (new, n) = repo.ingest_streaming(&txn, "data", &Quiet).unwrap();
        txn.commit().unwrap();
        assert_eq!(old, new);
        let leaves = found
            .files
            .values()
            .filter(|f| f.kind != EntryKind::Dir)
            .count();
        assert_eq!(n.files, leaves as u64);
        assert_eq!(n.files_read, found.files_read);
        // Stored: every tree and file reads back.
        let mut flat = std::collections::BTreeMap::new();
        worktree::flatten(&repo.store, &new.unwrap().id, "data", &mut flat).unwrap();
        assert_eq!(flat.len(), found.files.len() - 1);
        for (p, f) in flat.iter().filter(|(_, f)| f.kind == EntryKind::File) {
            assert_eq!(
                repo.store.read_file(&f.id).unwrap(),
                fs::read(root.join(p)).unwrap()
            );
        }
        // A second pass reads nothing: the stat cache vouches for every file.
        let txn = repo.store.txn().unwrap();
        let (again, n2) = repo.ingest_streaming(&txn, "data", &Quiet).unwrap();
        assert_eq!(again, new);
        assert_eq!(n2.files_read, 0);
        // A single file, and nothing at all.
        let (one, _) = repo.ingest_streaming(&txn, "data/big.bin", &Quiet).unwrap();
        assert_eq!(one.unwrap().size, 3 << 20);
        assert!(repo
            .ingest_streaming(&txn, "nothing", &Quiet)
            .unwrap()
            .0
            .is_none());
    }

    /// A symlink out of the project is refused, as by the scan.
    #[test]
    fn a_link_out_of_the_project_is_refused() {
        let (_d, repo) = project();
        fs::create_dir_all(repo.root.join("data")).unwrap();
        std::os::unix::fs::symlink("../../etc/passwd", repo.root.join("data/out")).unwrap();
        let txn = repo.store.txn().unwrap();
        let err = repo.ingest_streaming(&txn, "data", &Quiet).unwrap_err();
        assert!(
            err.to_string().contains("points outside the project"),
            "{err}"
        );
    }

    /// Flushing part-way writes what the transaction holds and keeps it usable: a rollback
    /// afterwards keeps the flushed chunks (they are indexed) and drops only later ones.
    #[test]
    fn a_flushed_transaction_keeps_what_it_wrote() {
        let (_d, repo) = project();
        let txn = repo.store.txn().unwrap();
        let a = txn.put_bytes(b"first").unwrap();
        txn.flush_over(0).unwrap();
        assert!(repo.store.has_file(&a).unwrap());
        let b = txn.put_bytes(b"second").unwrap();
        drop(txn); // rolled back
        assert_eq!(repo.store.read_file(&a).unwrap(), b"first");
        assert!(!repo.store.has_file(&b).unwrap());
        // The pack holds nothing past what was flushed.
        let txn = repo.store.txn().unwrap();
        let c = txn.put_bytes(b"third").unwrap();
        txn.commit().unwrap();
        assert_eq!(repo.store.read_file(&c).unwrap(), b"third");
        assert_eq!(repo.store.read_file(&a).unwrap(), b"first");
    }
}
