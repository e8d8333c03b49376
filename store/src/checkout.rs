//! Checkout: make the workspace match a commit exactly, writing only what differs.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::Serialize;

use crate::db::CF_STAT;
use crate::error::{IoContext, Result, StoreError};
use crate::id::Id;
use crate::object::EntryKind;
use crate::ops::normalize_roots;
use crate::paths::{self, TEMP_PREFIX};
use crate::refs::{Head, HEADS, TAGS};
use crate::repo::Repo;
use crate::statcache::{Stat, StatEntry};
use crate::worktree::{self, Flat};
use crate::Progress;

/// What `Repo::apply` changed on disk.
#[derive(Debug, Default)]
pub struct Applied {
    pub written: u64,
    pub deleted: u64,
    pub bytes_written: u64,
    pub unchanged: u64,
    pub cache: Vec<(String, StatEntry)>,
}

#[derive(Debug, Serialize)]
pub struct CheckoutReport {
    pub commit: Id,
    /// Branch now checked out, or None when HEAD is detached / only paths were restored.
    pub branch: Option<String>,
    pub written: u64,
    pub deleted: u64,
    pub bytes_written: u64,
    pub unchanged: u64,
    /// How the revision given was read, when it was a git revision or shadowed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::revision::Resolved>,
}

impl Repo {
    /// Check out `rev` (default: the commit dvx.lock pins). With `only`, restore just those
    /// paths and leave HEAD alone.
    pub fn checkout(
        &self,
        rev: Option<&str>,
        only: &[String],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<CheckoutReport> {
        let resolved = match rev {
            Some(r) => Some(self.resolve_rev(r)?),
            None => None,
        };
        let git_id = resolved.as_ref().and_then(|r| match r.source {
            crate::revision::RevSource::Git { .. } => Some(r.commit),
            crate::revision::RevSource::Dvx => None,
        });
        let (target_id, new_head) = match (rev, git_id) {
            // A git revision: the data its dvx.lock pins, on the branch that ends there.
            (Some(_), Some(id)) => match self.branch_at(&id)? {
                Some(b) => (id, Head::Branch(b)),
                None => (id, Head::Detached(id)),
            },
            (Some(r), None) => {
                let id = self.store.resolve(r)?;
                let is_branch = self.store.ref_target(&format!("{HEADS}{r}"))?.is_some();
                let is_tag = self.store.ref_target(&format!("{TAGS}{r}"))?.is_some();
                let current = self.store.head()?;
                let head = if r == "HEAD" || r == "@" {
                    current
                } else if is_branch && !is_tag {
                    Head::Branch(r.to_string())
                } else {
                    Head::Detached(id)
                };
                (id, head)
            }
            (None, _) => {
                // dvx.lock is the source of truth after a git checkout; it must be sound.
                let lock = self.checked_lock()?.ok_or_else(|| {
                    StoreError::UnknownRevision("(none given, and there is no dvx.lock)".into())
                })?;
                match self.branch_at(&lock.commit)? {
                    Some(b) => (lock.commit, Head::Branch(b)),
                    None => (lock.commit, Head::Detached(lock.commit)),
                }
            }
        };
        let head = if only.is_empty() {
            Some(new_head)
        } else {
            None
        };
        let mut rep = self.checkout_to(target_id, head, only, force, progress)?;
        rep.revision = resolved.filter(|r| r.note().is_some());
        Ok(rep)
    }

    /// The branch to be on at `commit` (what dvx.lock pins after a `git checkout`): among the
    /// branches whose tip it is, the current one, else the one named like git's current
    /// branch, else `main`, else the first by name. `None` when no branch ends there, so
    /// HEAD is detached only when no branch could be moved by the next commit without
    /// leaving the pinned data behind.
    pub fn branch_at(&self, commit: &Id) -> Result<Option<String>> {
        let at: Vec<String> = self
            .store
            .list_refs(HEADS)?
            .into_iter()
            .filter(|(_, id)| id == commit)
            .map(|(n, _)| n)
            .collect();
        let current = match self.store.head()? {
            Head::Branch(b) => Some(b),
            Head::Detached(_) => None,
        };
        let git = crate::gitutil::git_branch(&self.root);
        for want in [current, git, Some(crate::refs::DEFAULT_BRANCH.to_string())]
            .into_iter()
            .flatten()
        {
            if at.contains(&want) {
                return Ok(Some(want));
            }
        }
        Ok(at.into_iter().next())
    }

    /// Make the workspace (or just `only`) hold commit `target_id`. With `head`, HEAD becomes
    /// it, and a branch it names moves to the target (a fast-forward after a pull) and the
    /// lock is rewritten; without, HEAD stays where it is.
    pub fn checkout_to(
        &self,
        target_id: Id,
        head: Option<Head>,
        only: &[String],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<CheckoutReport> {
        let target = self.store.get_commit(&target_id)?;
        let (_, _, current) = self.head_state()?;

        let scope: Vec<String> = if only.is_empty() {
            normalize_roots(
                target
                    .roots
                    .iter()
                    .chain(current.iter().flat_map(|c| c.roots.iter()))
                    .cloned(),
            )
        } else {
            for p in only {
                let tracked_somewhere = target.roots.iter().any(|r| paths::is_under(p, r))
                    || current
                        .iter()
                        .any(|c| c.roots.iter().any(|r| paths::is_under(p, r)));
                if !tracked_somewhere {
                    return Err(StoreError::NotTracked(p.clone()));
                }
            }
            normalize_roots(only.iter().cloned())
        };
        let want = self.commit_files(&target, &scope)?;
        let have_committed = match &current {
            Some(c) => self.commit_files(c, &scope)?,
            None => BTreeMap::new(),
        };
        let work = self.workspace(&scope, progress)?;

        if !force {
            let mut conflicts = Vec::new();
            for (p, w) in work.iter().filter(|(_, f)| f.kind != EntryKind::Dir) {
                let committed = have_committed.get(p);
                let dirty = !committed.is_some_and(|c| c.same(w));
                let overwritten = !want.get(p).is_some_and(|t| t.same(w));
                if dirty && overwritten {
                    conflicts.push(p.clone());
                }
            }
            if !conflicts.is_empty() {
                let n = conflicts.len();
                conflicts.truncate(5);
                if n > 5 {
                    conflicts.push(format!("and {} more", n - 5));
                }
                return Err(StoreError::UncommittedChanges(conflicts));
            }
        }

        let applied = self.apply(&want, &work, progress)?;
        let txn = self.store.txn()?;
        for (p, e) in &applied.cache {
            txn.put(CF_STAT, p.as_bytes(), &e.encode());
        }
        let branch = match &head {
            Some(h) => {
                if let Head::Branch(b) = h {
                    let name = format!("{HEADS}{b}");
                    if self.store.ref_target(&name)? != Some(target_id) {
                        txn.set_ref(&name, &target_id);
                    }
                }
                txn.set_head(h);
                match h {
                    Head::Branch(b) => Some(b.clone()),
                    Head::Detached(_) => None,
                }
            }
            None => None,
        };
        if head.is_some() {
            txn.put(
                crate::db::CF_META,
                crate::repo::LOCK_PENDING,
                target_id.to_hex().as_bytes(),
            );
        }
        txn.commit()?;
        if head.is_some() {
            self.write_lock(&target_id, &target, current.as_ref())?;
        }
        Ok(CheckoutReport {
            revision: None,
            commit: target_id,
            branch,
            written: applied.written,
            deleted: applied.deleted,
            bytes_written: applied.bytes_written,
            unchanged: applied.unchanged,
        })
    }

    /// Make the workspace hold exactly `want` where it now holds `work` (both flattened, over
    /// the same scope): delete what `want` lacks, then write only what differs. Returns the
    /// stat-cache entries of the files written, for the caller's transaction.
    pub fn apply(
        &self,
        want: &BTreeMap<String, Flat>,
        work: &BTreeMap<String, Flat>,
        progress: &dyn Progress,
    ) -> Result<Applied> {
        // Every path to write is checked before anything changes: stored data (a tampered
        // store, one filled before fetch checked trees) never reaches git's or dvx's own files.
        for p in want.keys() {
            paths::check_tracked(p)?;
        }
        // Deletions: everything on disk in scope that the target lacks or has as another kind.
        let mut deleted = 0u64;
        let to_delete: Vec<&String> = work
            .iter()
            .filter(|(p, w)| match want.get(*p) {
                None => true,
                Some(t) => t.kind != w.kind,
            })
            .map(|(p, _)| p)
            .collect();
        // Never delete through a symlinked folder (the scan does not look beyond one; this
        // holds for whatever `work` a caller passes), nor git's or dvx's own files.
        let mut checked: HashSet<&str> = HashSet::new();
        for p in &to_delete {
            paths::check_tracked(p)?;
            let parent = p.rfind('/').map_or("", |i| &p[..i]);
            if checked.insert(parent) {
                paths::check_no_symlink(&self.root, p, false)?;
            }
        }
        // Deepest first so folders are empty when their turn comes.
        for p in to_delete.iter().rev() {
            let abs = paths::abs(&self.root, p)?;
            let res = match work[*p].kind {
                EntryKind::Dir => fs::remove_dir_all(&abs),
                _ => fs::remove_file(&abs),
            };
            match res {
                Ok(()) => deleted += u64::from(work[*p].kind != EntryKind::Dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&abs, e)),
            }
        }

        // Folders first (parents before children), then files and links in parallel.
        let safe_dirs: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        for p in want
            .iter()
            .filter(|(_, f)| f.kind == EntryKind::Dir)
            .map(|(p, _)| p)
        {
            self.ensure_dir(p, &safe_dirs)?;
        }
        let writes: Vec<(&String, &Flat)> = want
            .iter()
            .filter(|(p, t)| t.kind != EntryKind::Dir && !work.get(*p).is_some_and(|w| w.same(t)))
            .collect();
        let unchanged =
            want.values().filter(|f| f.kind != EntryKind::Dir).count() as u64 - writes.len() as u64;
        progress.start("writing", writes.len() as u64);
        let results: Vec<Option<(String, StatEntry, u64)>> = writes
            .par_iter()
            .map(|(p, t)| {
                if let Some(parent) = p.rfind('/').map(|i| &p[..i]) {
                    self.ensure_dir(parent, &safe_dirs)?;
                }
                let r = self.write_entry(p, t)?;
                progress.inc(1);
                Ok(r)
            })
            .collect::<Result<_>>()?;
        progress.finish();

        let mut applied = Applied {
            written: writes.len() as u64,
            deleted,
            unchanged,
            ..Default::default()
        };
        for (p, e, n) in results.into_iter().flatten() {
            applied.bytes_written += n;
            applied.cache.push((p, e));
        }
        Ok(applied)
    }

    /// Create a project folder (and its parents) safely; see `ensure_dir`.
    pub fn make_dir(&self, rel: &str) -> Result<()> {
        self.ensure_dir(rel, &Mutex::new(HashSet::new()))
    }

    /// Create a folder (and parents) inside the project, refusing to pass through a symlink:
    /// writing through one could land outside the workspace.
    fn ensure_dir(&self, rel: &str, safe: &Mutex<HashSet<String>>) -> Result<()> {
        if rel.is_empty() || safe.lock().unwrap_or_else(|p| p.into_inner()).contains(rel) {
            return Ok(());
        }
        let mut prefix = String::new();
        for part in rel.split('/') {
            prefix = paths::join(&prefix, part);
            if safe
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&prefix)
            {
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
                .unwrap_or_else(|p| p.into_inner())
                .insert(prefix.clone());
        }
        Ok(())
    }

    /// Where to write a file before renaming it into `dir`: `.dvx/tmp`, which every writer
    /// empties when it opens, so a killed checkout leaves nothing half-written in the
    /// workspace; beside the file only when `dir` is on another filesystem (a mount inside the
    /// project), where status and add ignore the name.
    fn temp_path(&self, dir: &Path) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dev = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        let tmp_dev = *self.tmp_dev.get_or_init(|| dev(&self.tmp_dir()));
        match (tmp_dev, dev(dir)) {
            (Some(a), Some(b)) if a == b => self.tmp_dir().join(name),
            _ => dir.join(name),
        }
    }

    /// Write one file or symlink atomically (temp file, then rename).
    fn write_entry(&self, rel: &str, t: &Flat) -> Result<Option<(String, StatEntry, u64)>> {
        let abs = paths::abs(&self.root, rel)?;
        let dir = abs.parent().unwrap_or(&self.root);
        let tmp = self.temp_path(dir);
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
                let _ = fs::remove_file(&tmp);
                std::os::unix::fs::symlink(&target, &tmp).at(&tmp)?;
                rename(&tmp, &abs)?;
                Ok(None)
            }
            EntryKind::File => {
                let res = (|| -> Result<u64> {
                    let mut f = fs::File::create(&tmp).at(&tmp)?;
                    let n = {
                        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
                        let n = self
                            .store
                            .write_file_to(&t.id, &mut w)
                            .map_err(|e| match e {
                                StoreError::Io { source, .. } => StoreError::io(&abs, source),
                                e => e,
                            })?;
                        w.flush().at(&tmp)?;
                        n
                    };
                    worktree::set_mode(&tmp, t.mode)?;
                    Ok(n)
                })();
                let n = match res {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                crate::fsutil::fault_point("before-rename");
                rename(&tmp, &abs)?;
                let meta = fs::symlink_metadata(&abs).at(&abs)?;
                Ok(Some((
                    rel.to_string(),
                    StatEntry::new(Stat::of(&meta), t.id),
                    n,
                )))
            }
            EntryKind::Dir => Ok(None),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{ObjKind, CF_OBJECTS};
    use crate::object::{Commit, Person, Tree, TreeEntry};
    use crate::{Access, Quiet};

    /// A commit whose tree was crafted by hand (as a tampered store or remote could hold).
    fn plant(repo: &Repo, entries: Vec<TreeEntry>) -> Id {
        plant_with_roots(repo, entries, &["x"])
    }

    fn plant_with_roots(repo: &Repo, entries: Vec<TreeEntry>, roots: &[&str]) -> Id {
        let tree = Tree { entries };
        let bytes = tree.encode();
        let tid = Id::of(&bytes);
        let txn = repo.store.txn().unwrap();
        txn.put(CF_OBJECTS, &ObjKind::Tree.key(&tid), &bytes);
        let c = Commit {
            author: Person {
                email: "e".into(),
                name: "n".into(),
            },
            git: None,
            message: "evil".into(),
            parents: vec![],
            roots: roots.iter().map(|r| r.to_string()).collect(),
            runs: vec![],
            time: 0,
            tree: tid,
            version: 1,
        };
        let cid = txn.put_commit(&c);
        txn.set_ref("refs/tags/evil", &cid);
        txn.commit().unwrap();
        cid
    }

    fn leaf(repo: &Repo, name: &str, kind: EntryKind, content: &[u8]) -> TreeEntry {
        let txn = repo.store.txn().unwrap();
        let id = txn.put_bytes(content).unwrap();
        txn.commit().unwrap();
        TreeEntry {
            name: name.into(),
            kind,
            mode: 0o644,
            size: content.len() as u64,
            id,
        }
    }

    #[test]
    fn tampered_trees_never_write_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir(&root).unwrap();
        Repo::init(&root).unwrap();
        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        for (name, kind, content) in [
            ("..", EntryKind::File, &b"escape"[..]),
            ("a/../../b", EntryKind::File, b"escape"),
            ("/etc-passwd", EntryKind::File, b"escape"),
            ("x", EntryKind::Symlink, b"/etc/passwd"),
            ("x", EntryKind::Symlink, b"../../outside"),
        ] {
            let e = leaf(&repo, name, kind, content);
            plant(&repo, vec![e]);
            let err = repo.checkout(Some("evil"), &[], true, &Quiet).unwrap_err();
            assert!(
                matches!(err, StoreError::UnsafePath { .. }),
                "{name:?} -> {err}"
            );
            assert!(!dir.path().join("b").exists() && !dir.path().join("escape").exists());
            assert!(std::fs::symlink_metadata(root.join("x")).is_err());
            let txn = repo.store.txn().unwrap();
            txn.delete_ref("refs/tags/evil");
            txn.commit().unwrap();
        }
    }

    /// A store that already holds a tree reaching into `.git` (written before fetch checked
    /// trees): checkout refuses it, fsck names it, and leaving it never deletes `.git`.
    #[test]
    fn reserved_paths_in_a_store_are_never_written_nor_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "[core]\n").unwrap();
        Repo::init(&root).unwrap();
        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        let hook = leaf(&repo, "post-checkout", EntryKind::File, b"#!/bin/sh\n");
        let hooks = {
            let t = Tree::new(vec![hook]).unwrap();
            let txn = repo.store.txn().unwrap();
            let id = txn.put_tree(&t);
            txn.commit().unwrap();
            TreeEntry {
                name: ".git".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                size: t.total_size(),
                id,
            }
        };
        let evil = plant_with_roots(&repo, vec![hooks], &[".git"]);
        let err = repo.checkout(Some("evil"), &[], true, &Quiet).unwrap_err();
        assert!(
            matches!(&err, StoreError::ReservedPath { path, .. } if path == ".git"),
            "{err}"
        );
        assert!(!root.join(".git/post-checkout").exists());
        let report = repo.fsck(&Default::default(), &Quiet).unwrap();
        let named: Vec<&str> = report.problems.iter().map(|p| p.problem.as_str()).collect();
        assert!(
            named
                .iter()
                .any(|p| p.starts_with("entry \".git\": a reserved name")),
            "{named:?}"
        );
        assert!(
            named.iter().any(|p| p.starts_with("root \".git\"")),
            "{named:?}"
        );

        // HEAD on that commit, then a clean one: `.git` is not "removed" with the root.
        let txn = repo.store.txn().unwrap();
        txn.set_head(&Head::Detached(evil));
        txn.commit().unwrap();
        let clean = leaf(&repo, "x", EntryKind::File, b"x");
        plant(&repo, vec![clean]);
        repo.checkout(Some("evil"), &[], true, &Quiet).unwrap();
        assert_eq!(
            std::fs::read(root.join(".git/config")).unwrap(),
            b"[core]\n"
        );
        assert_eq!(std::fs::read(root.join("x")).unwrap(), b"x");
    }
}
