//! Carrying out a checkout's plan: deletions deepest first, folders before files, files and
//! symlinks written in parallel, each atomically. A file is written to an unnamed temporary
//! file (`O_TMPFILE`) in its destination folder and given its name only once complete, so a
//! killed checkout leaves nothing half-written and no temporary name in the workspace, and
//! no rename contends on one shared folder.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::prelude::*;

use crate::error::{IoContext, Result, StoreError};
use crate::id::Id;
use crate::object::{EntryKind, Tree};
use crate::paths::{self, TEMP_PREFIX};
use crate::repo::Repo;
use crate::statcache::{Stat, StatEntry};
use crate::worktree::{self, Flat};
use crate::Progress;

use super::plan::{check_child, Plan};
use super::Applied;

type Flush<'a> = Box<dyn Fn(&[(String, StatEntry)]) -> Result<()> + Sync + 'a>;

/// Stat-cache entries as they are made, handed to `flush` whenever `limit` are held, so that
/// a checkout of many files never holds an entry for each.
pub(crate) struct CacheSink<'a> {
    limit: usize,
    held: Mutex<Vec<(String, StatEntry)>>,
    flush: Flush<'a>,
}

impl<'a> CacheSink<'a> {
    pub fn new(
        limit: usize,
        flush: impl Fn(&[(String, StatEntry)]) -> Result<()> + Sync + 'a,
    ) -> Self {
        CacheSink {
            limit,
            held: Mutex::new(Vec::new()),
            flush: Box::new(flush),
        }
    }

    pub fn push(&self, path: String, entry: StatEntry) -> Result<()> {
        let full = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            held.push((path, entry));
            (held.len() >= self.limit).then(|| std::mem::take(&mut *held))
        };
        match full {
            Some(batch) => (self.flush)(&batch),
            None => Ok(()),
        }
    }

    /// What was not flushed yet.
    pub fn into_rest(self) -> Vec<(String, StatEntry)> {
        self.held.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

type Safe = Mutex<HashSet<String>>;

impl Repo {
    /// Carry out `plan`; stat-cache entries of the files written go to `sink`.
    pub(super) fn execute(
        &self,
        plan: Plan,
        progress: &dyn Progress,
        sink: &CacheSink,
    ) -> Result<Applied> {
        // Never delete through a symlinked folder (the walk does not look beyond one; this
        // holds for whatever a caller's maps say), nor git's or dvx's own files: all checked
        // before the first deletion.
        let mut checked: HashSet<&str> = HashSet::new();
        for (p, _) in &plan.deletes {
            paths::check_tracked(p)?;
            let parent = p.rfind('/').map_or("", |i| &p[..i]);
            if checked.insert(parent) {
                paths::check_no_symlink(&self.root, p, false)?;
            }
        }
        // Deepest first (the plan is sorted) so folders are empty when their turn comes.
        let mut deleted = 0u64;
        for (p, kind) in plan.deletes.iter().rev() {
            let abs = paths::abs(&self.root, p)?;
            let res = match kind {
                EntryKind::Dir => fs::remove_dir_all(&abs),
                _ => fs::remove_file(&abs),
            };
            match res {
                Ok(()) => deleted += u64::from(*kind != EntryKind::Dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&abs, e)),
            }
        }

        // Folders first (parents before children), then files and links in parallel.
        let safe: Safe = Mutex::new(HashSet::new());
        for d in &plan.dirs {
            self.ensure_dir(d, &safe)?;
        }
        let written = plan.writes.len() as u64 + plan.tree_leaves;
        progress.start("writing", written);
        let bytes = AtomicU64::new(0);
        let write = |rel: &str, t: &Flat| -> Result<()> {
            if let Some(parent) = rel.rfind('/').map(|i| &rel[..i]) {
                self.ensure_dir(parent, &safe)?;
            }
            if let Some((entry, n)) = self.write_entry(rel, t)? {
                bytes.fetch_add(n, Ordering::Relaxed);
                sink.push(rel.to_string(), entry)?;
            }
            progress.inc(1);
            Ok(())
        };
        plan.writes.par_iter().try_for_each(|(p, t)| write(p, t))?;
        plan.trees
            .par_iter()
            .try_for_each(|(rel, id)| self.write_tree(rel, id, &safe, &write))?;
        progress.finish();
        Ok(Applied {
            written,
            deleted,
            bytes_written: bytes.into_inner(),
            unchanged: plan.unchanged,
            cache: Vec::new(),
        })
    }

    /// Write the stored folder `id` at `rel`, where no folder was: folder by folder, the
    /// files of each in parallel.
    fn write_tree(
        &self,
        rel: &str,
        id: &Id,
        safe: &Safe,
        write: &(dyn Fn(&str, &Flat) -> Result<()> + Sync),
    ) -> Result<()> {
        self.ensure_dir(rel, safe)?;
        let bytes = self.store.get_tree_bytes(id)?;
        let entries = Tree::decode_ref(*id, &bytes)?;
        entries.par_iter().try_for_each(|e| {
            check_child(rel, e.name)?;
            let path = paths::join(rel, e.name);
            if e.kind == EntryKind::Dir {
                return self.write_tree(&path, &e.id, safe, write);
            }
            write(&path, &Flat::from_ref(e))
        })
    }

    /// Create a project folder (and its parents) safely; see `ensure_dir`.
    pub fn make_dir(&self, rel: &str) -> Result<()> {
        self.ensure_dir(rel, &Mutex::new(HashSet::new()))
    }

    /// Create a folder (and parents) inside the project, refusing to pass through a symlink:
    /// writing through one could land outside the workspace.
    fn ensure_dir(&self, rel: &str, safe: &Safe) -> Result<()> {
        let known = |p: &str| safe.lock().unwrap_or_else(|e| e.into_inner()).contains(p);
        if rel.is_empty() || known(rel) {
            return Ok(());
        }
        let mut prefix = String::new();
        for part in rel.split('/') {
            prefix = paths::join(&prefix, part);
            if known(&prefix) {
                continue;
            }
            let abs = paths::abs(&self.root, &prefix)?;
            match fs::symlink_metadata(&abs) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(StoreError::UnsafePath {
                        path: prefix,
                        reason: "a folder on the way is a symlink; remove it first".into(),
                    })
                }
                Ok(_) => {
                    fs::remove_file(&abs).at(&abs)?;
                    fs::create_dir(&abs).at(&abs)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(StoreError::io(&abs, e)),
                },
                Err(e) => return Err(StoreError::io(&abs, e)),
            }
            safe.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(prefix.clone());
        }
        Ok(())
    }

    /// Write one file or symlink atomically. For a file, its stat-cache entry and size.
    fn write_entry(&self, rel: &str, t: &Flat) -> Result<Option<(StatEntry, u64)>> {
        let abs = paths::abs(&self.root, rel)?;
        let dir = abs.parent().unwrap_or(&self.root);
        match t.kind {
            EntryKind::Symlink => {
                let target = String::from_utf8(self.store.read_file(&t.id)?)
                    .map_err(|_| StoreError::corrupt("symlink", t.id, "target is not UTF-8"))?;
                if !paths::symlink_stays_inside(rel, &target) {
                    return Err(StoreError::UnsafePath {
                        path: rel.into(),
                        reason: format!("symlink target {target:?} leads outside the project"),
                    });
                }
                // Made in one step where nothing is; else beside it, then renamed over it.
                match std::os::unix::fs::symlink(&target, &abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let tmp = dir.join(temp_name());
                        std::os::unix::fs::symlink(&target, &tmp).at(&tmp)?;
                        rename(&tmp, &abs)?;
                    }
                    Err(e) => return Err(StoreError::io(&abs, e)),
                }
                Ok(None)
            }
            EntryKind::File => {
                let mut tmp = Temp::create(dir)?;
                let res = (|| -> Result<u64> {
                    let cap = usize::try_from(t.size).unwrap_or(usize::MAX);
                    let mut w = BufWriter::with_capacity(cap.clamp(8 << 10, 1 << 20), tmp.file());
                    let n = self
                        .store
                        .write_file_to(&t.id, &mut w)
                        .map_err(|e| match e {
                            StoreError::Io { source, .. } => StoreError::io(&abs, source),
                            e => e,
                        })?;
                    w.flush().at(&abs)?;
                    drop(w);
                    let perms = fs::Permissions::from_mode(worktree::restored_mode(t.mode));
                    tmp.file().set_permissions(perms).at(&abs)?;
                    Ok(n)
                })();
                let n = match res {
                    Ok(n) => n,
                    Err(e) => {
                        tmp.discard();
                        return Err(e);
                    }
                };
                crate::fsutil::fault_point("before-rename");
                tmp.publish(&abs)?;
                let meta = fs::symlink_metadata(&abs).at(&abs)?;
                Ok(Some((StatEntry::new(Stat::of(&meta), t.id), n)))
            }
            EntryKind::Dir => Ok(None),
        }
    }
}

/// A reserved name (never tracked, skipped by status and add) for a temporary entry.
fn temp_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A file being written in its destination folder: unnamed where the file system allows it
/// (so a crash leaves nothing behind), else under a temporary name.
enum Temp {
    Unnamed(File),
    Named(File, PathBuf),
}

impl Temp {
    fn create(dir: &Path) -> Result<Temp> {
        // Naming an unnamed file goes through /proc (linkat with AT_EMPTY_PATH needs a
        // privilege); without /proc, temporary names.
        static PROC: OnceLock<bool> = OnceLock::new();
        if *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
            match OpenOptions::new()
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(dir)
            {
                Ok(f) => return Ok(Temp::Unnamed(f)),
                // A file system (or kernel) without O_TMPFILE.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                    ) => {}
                Err(e) => return Err(StoreError::io(dir, e)),
            }
        }
        let path = dir.join(temp_name());
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .at(&path)?;
        Ok(Temp::Named(f, path))
    }

    fn file(&mut self) -> &mut File {
        match self {
            Temp::Unnamed(f) | Temp::Named(f, _) => f,
        }
    }

    fn discard(self) {
        if let Temp::Named(f, path) = self {
            drop(f);
            let _ = fs::remove_file(path);
        }
    }

    /// Give the complete file its name `to`, replacing what is there.
    fn publish(self, to: &Path) -> Result<()> {
        match self {
            Temp::Named(f, path) => {
                drop(f);
                rename(&path, to)
            }
            Temp::Unnamed(f) => {
                let fd = format!("/proc/self/fd/{}", f.as_raw_fd());
                // Nothing there (a new file): named in one step.
                match link(&fd, to) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(StoreError::io(to, e)),
                }
                let dir = to.parent().unwrap_or(Path::new("."));
                let tmp = dir.join(temp_name());
                link(&fd, &tmp).at(&tmp)?;
                rename(&tmp, to)
            }
        }
    }
}

/// `linkat` of `/proc/self/fd/N` (following it to the open file) to `to`.
fn link(fd_path: &str, to: &Path) -> std::io::Result<()> {
    let from = CString::new(fd_path)?;
    let to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    if let Ok(m) = fs::symlink_metadata(to) {
        if m.is_dir() {
            fs::remove_dir_all(to).at(to)?;
        }
    }
    fs::rename(from, to).map_err(|e| {
        let _ = fs::remove_file(from);
        StoreError::io(to, e)
    })
}
