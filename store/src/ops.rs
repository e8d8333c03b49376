//! The data workflow: add, commit, rm, status, diff, log, ls, cat, branch, tag.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::db::CF_STAT;
use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::object::{Commit, EntryKind};
use crate::paths;
use crate::refs::{validate_ref_name, Head, HEADS, TAGS};
use crate::repo::Repo;
use crate::statcache::StatEntry;
use crate::store::{hash_path, Txn};
use crate::worktree::{self, Flat, Identified};
use crate::Progress;

/// What `add` or `commit` made.
#[derive(Debug, Serialize)]
pub struct CommitReport {
    /// None when nothing changed (no commit made).
    pub commit: Option<Id>,
    pub branch: Option<String>,
    pub paths: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub files_read: u64,
    pub bytes_read: u64,
}

/// A path's change between two states.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub branch: Option<String>,
    pub head: Option<Id>,
    pub tracked: Vec<String>,
    pub modified: Vec<String>,
    pub deleted: Vec<String>,
    pub new: Vec<String>,
    pub clean: bool,
    /// Set when dvx.lock pins another commit than HEAD (e.g. after a git checkout).
    pub lock_commit: Option<Id>,
    /// False when `lock_commit` is not in the store yet (git brought a newer dvx.lock).
    pub lock_fetched: bool,
    /// False in a project without a store yet (a fresh `git clone`): the rest then comes
    /// from dvx.lock alone.
    pub fetched: bool,
    /// Paths dvx.lock tracks that are not in the workspace (before the first `dvx pull`).
    pub not_here: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LogEntry {
    pub id: Id,
    #[serde(flatten)]
    pub commit: Commit,
    pub refs: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LsEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub id: Id,
}

/// Drop roots that lie under another root; keep them sorted.
pub fn normalize_roots(roots: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = roots.into_iter().collect();
    let mut out: Vec<String> = Vec::new();
    for r in set {
        if !out.iter().any(|o| paths::is_under(&r, o)) {
            out.retain(|o| !paths::is_under(o, &r));
            out.push(r);
        }
    }
    out.sort();
    out
}

/// Entries of several paths (None: nothing there), and the files inside the folders among them.
pub type PathEntries = (BTreeMap<String, Option<Flat>>, BTreeMap<String, Flat>);

impl Repo {
    fn branch_name(head: &Head) -> Option<String> {
        match head {
            Head::Branch(b) => Some(b.clone()),
            Head::Detached(_) => None,
        }
    }

    /// Hash (and with `txn`, store) everything under `rel`.
    fn identify_path(
        &self,
        rel: &str,
        txn: Option<&Txn>,
        progress: &dyn Progress,
    ) -> Result<Identified> {
        let items = worktree::scan(&self.root, rel)?;
        let mut cache = worktree::load_stat_cache(&self.store, rel)?;
        cache.extend(self.store.fresh_under(rel));
        let store = &self.store;
        worktree::identify(
            &self.root,
            items,
            &cache,
            |abs: &Path, size: u64, cached: Option<Id>| match (cached, txn) {
                (Some(id), None) => Ok((id, size, false)),
                (Some(id), Some(_)) if store.has_file(&id)? => Ok((id, size, false)),
                (_, Some(t)) => t.put_path(abs).map(|(id, n)| (id, n, true)),
                (None, None) => hash_path(abs).map(|(id, n)| (id, n, true)),
            },
            progress,
        )
    }

    /// Store everything under `rel` of the folder `base` (the project, or any scratch folder)
    /// and return its entry: a file, a symlink, or a tree written into `txn`. The stat cache is
    /// used and updated only for the project itself.
    pub fn ingest(
        &self,
        txn: &Txn,
        base: &Path,
        rel: &str,
        progress: &dyn Progress,
    ) -> Result<(Option<Flat>, Identified)> {
        let in_project = base == self.root;
        let found = if in_project {
            self.identify_path(rel, Some(txn), progress)?
        } else {
            let items = worktree::scan(base, rel)?;
            worktree::identify(
                base,
                items,
                &Default::default(),
                |abs: &Path, _, _| txn.put_path(abs).map(|(id, n)| (id, n, true)),
                progress,
            )?
        };
        if in_project {
            self.record_cache(txn, &found.cache_updates);
        }
        for (p, f) in found
            .files
            .iter()
            .filter(|(_, f)| f.kind == EntryKind::Symlink)
        {
            txn.put_chunk(f.id, &worktree::link_target(&base.join(p))?)?;
        }
        let entry = worktree::build_tree(rel, &found.files, &|t| txn.put_tree(t))?;
        Ok((entry, found))
    }

    /// Ids of paths in the workspace (folders as tree ids), computed without storing anything.
    pub fn path_ids(
        &self,
        rels: &[String],
        progress: &dyn Progress,
    ) -> Result<BTreeMap<String, Option<Flat>>> {
        Ok(self.path_entries(rels, false, progress)?.0)
    }

    /// `path_ids`, and with `files` also every file inside folders (keyed by project path).
    pub fn path_entries(
        &self,
        rels: &[String],
        files: bool,
        progress: &dyn Progress,
    ) -> Result<PathEntries> {
        let mut out = BTreeMap::new();
        let mut inside = BTreeMap::new();
        let mut updates = Vec::new();
        for rel in rels {
            let found = self.identify_path(rel, None, progress)?;
            let entry = worktree::build_tree(rel, &found.files, &|t| t.id())?;
            updates.extend(found.cache_updates);
            if files && entry.is_some_and(|e| e.kind == EntryKind::Dir) {
                inside.extend(
                    found
                        .files
                        .into_iter()
                        .filter(|(_, f)| f.kind != EntryKind::Dir),
                );
            }
            out.insert(rel.clone(), entry);
        }
        self.save_cache(&updates)?;
        Ok((out, inside))
    }

    /// Snapshot `rels` (adding them to the tracked paths) as one commit that records `runs`.
    /// `written`: entries the caller has just written to disk and stored, trees and all (a
    /// run's merged outputs); they are committed as they are, without walking them again.
    pub fn commit_paths(
        &self,
        rels: &[String],
        written: &BTreeMap<String, Flat>,
        message: String,
        runs: Vec<Id>,
        progress: &dyn Progress,
    ) -> Result<CommitReport> {
        let (_, _, base) = self.head_state()?;
        let old_roots = base.map(|c| c.roots).unwrap_or_default();
        let roots = normalize_roots(old_roots.into_iter().chain(rels.iter().cloned()));
        let rels = normalize_roots(rels.iter().cloned());
        self.snapshot_and_commit(&rels, written, roots, message, runs, progress)
    }

    /// Remember freshly computed hashes: directly when this process writes, otherwise by a
    /// short writer session if no one else is writing (a busy project just skips it).
    pub fn save_cache(&self, updates: &[(String, StatEntry)]) -> Result<()> {
        // Without a store there is nowhere to keep hashes; a reader does not create one.
        if updates.is_empty() || self.nothing_fetched() {
            return Ok(());
        }
        if self.observer || self.view_ref().is_some() || !self.can_write() {
            // Until a writer records them, this process remembers them.
            let mut fresh = self
                .store
                .fresh_stats
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            fresh.extend(updates.iter().cloned());
        }
        if self.observer || self.view_ref().is_some() {
            return Ok(());
        }
        if self.can_write() {
            let txn = self.store.txn()?;
            self.record_cache(&txn, updates);
            return txn.commit();
        }
        if let Some(w) = Repo::try_writer(&self.root, "dvx status (stat cache)")? {
            let txn = w.store.txn()?;
            w.record_cache(&txn, updates);
            txn.commit()?;
        }
        Ok(())
    }

    /// Files at `rels` gained or lost a hard link (an experiment's copy of the workspace):
    /// only their change time moved, so their cached ids still hold. Re-record each entry
    /// whose metadata is otherwise unchanged, after the racy window, so that neither the
    /// project nor the copy hashes them again.
    pub fn refresh_linked(&self, rels: &[String]) -> Result<()> {
        if rels.is_empty() || !self.can_write() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_nanos(
            crate::statcache::RACY_NS as u64 + 1_000_000,
        ));
        let old = self
            .store
            .db
            .multi_get_with(CF_STAT, rels, false, StatEntry::decode)?;
        let txn = self.store.txn()?;
        for (rel, entry) in rels.iter().zip(old) {
            let Some(entry) = entry else { continue };
            let Ok(m) = std::fs::symlink_metadata(self.root.join(rel)) else {
                continue;
            };
            let now = crate::statcache::Stat::of(&m);
            let same = crate::statcache::Stat {
                ctime_ns: entry.stat.ctime_ns,
                ..now
            };
            if same == entry.stat && now != entry.stat {
                txn.put(
                    CF_STAT,
                    rel.as_bytes(),
                    &StatEntry::new(now, entry.id).encode(),
                );
            }
        }
        txn.commit()
    }

    fn record_cache(&self, txn: &Txn, updates: &[(String, StatEntry)]) {
        for (p, e) in updates {
            txn.put(CF_STAT, p.as_bytes(), &e.encode());
        }
    }

    /// Snapshot `rels` into the current tree and commit. With `only_changed`, make no commit
    /// when the tree is unchanged.
    fn snapshot_and_commit(
        &self,
        rels: &[String],
        written: &BTreeMap<String, Flat>,
        new_roots: Vec<String>,
        message: String,
        runs: Vec<Id>,
        progress: &dyn Progress,
    ) -> Result<CommitReport> {
        let (head, _, base) = self.head_state()?;
        let txn = self.store.txn()?;
        let mut edits: BTreeMap<String, Option<Flat>> = BTreeMap::new();
        let (mut files, mut bytes, mut files_read, mut bytes_read) = (0, 0, 0, 0);
        for rel in rels {
            if let Some(f) = written.get(rel) {
                edits.insert(rel.clone(), Some(*f));
                continue;
            }
            let (entry, n) = self.ingest_streaming(&txn, rel, progress)?;
            files_read += n.files_read;
            bytes_read += n.bytes_read;
            files += n.files;
            bytes += n.bytes;
            edits.insert(rel.clone(), entry);
        }
        // A tracked path deleted from disk is committed as gone and no longer tracked.
        let new_roots: Vec<String> = new_roots
            .into_iter()
            .filter(|r| !matches!(edits.get(r), Some(None)))
            .collect();
        let base_tree = base.as_ref().map(|c| c.tree);
        let tree = worktree::edit_tree(&self.store, base_tree.as_ref(), &edits, &|t| {
            txn.put_tree(t)
        })?;
        let roots_changed = base.as_ref().map(|c| &c.roots) != Some(&new_roots);
        if Some(tree) == base_tree && !roots_changed && runs.is_empty() {
            txn.commit()?; // keep the stat cache warm
            return Ok(CommitReport {
                commit: None,
                branch: Self::branch_name(&head),
                paths: rels.to_vec(),
                files,
                bytes,
                files_read,
                bytes_read,
            });
        }
        let (id, commit) = self.new_commit(&txn, tree, new_roots, message, runs)?;
        txn.commit()?;
        self.index_commit(&id, &commit)?;
        self.write_lock(&id, &commit, base.as_ref())?;
        Ok(CommitReport {
            commit: Some(id),
            branch: Self::branch_name(&head),
            paths: rels.to_vec(),
            files,
            bytes,
            files_read,
            bytes_read,
        })
    }

    /// Validate user paths for tracking: inside the project, existing, not dvx's own files.
    pub fn check_trackable(&self, rels: &[String]) -> Result<()> {
        for rel in rels {
            if rel.is_empty() {
                return Err(StoreError::InvalidPath {
                    path: ".".into(),
                    reason: "the project's top folder cannot be tracked as a whole; add its data folders".into(),
                });
            }
            paths::check_tracked(rel)?;
            paths::check_no_symlink(&self.root, rel, false)?;
            let abs = paths::abs(&self.root, rel)?;
            if std::fs::symlink_metadata(&abs).is_err() {
                return Err(StoreError::PathNotFound(abs));
            }
        }
        Ok(())
    }

    pub fn add(
        &self,
        rels: &[String],
        message: Option<String>,
        progress: &dyn Progress,
    ) -> Result<CommitReport> {
        self.checked_lock()?;
        self.check_trackable(rels)?;
        let (_, _, base) = self.head_state()?;
        let old_roots = base.map(|c| c.roots).unwrap_or_default();
        let roots = normalize_roots(old_roots.iter().cloned().chain(rels.iter().cloned()));
        let rels = normalize_roots(rels.iter().cloned());
        let message = message.unwrap_or_else(|| format!("add {}", rels.join(", ")));
        self.snapshot_and_commit(
            &rels,
            &BTreeMap::new(),
            roots,
            message,
            Vec::new(),
            progress,
        )
    }

    pub fn commit(&self, message: Option<String>, progress: &dyn Progress) -> Result<CommitReport> {
        self.checked_lock()?;
        let (_, _, base) = self.head_state()?;
        let roots = base.map(|c| c.roots).unwrap_or_default();
        if roots.is_empty() {
            return Err(StoreError::NothingTracked);
        }
        let message = message.unwrap_or_else(|| "commit tracked data".into());
        self.snapshot_and_commit(
            &roots.clone(),
            &BTreeMap::new(),
            roots,
            message,
            Vec::new(),
            progress,
        )
    }

    /// Stop tracking paths (their files stay on disk).
    pub fn rm(&self, rels: &[String], message: Option<String>) -> Result<CommitReport> {
        self.checked_lock()?;
        let (head, _, base) = self.head_state()?;
        let base = base.ok_or(StoreError::NothingTracked)?;
        let mut edits = BTreeMap::new();
        let mut roots = base.roots.clone();
        for rel in rels {
            let in_root = base.roots.iter().any(|r| paths::is_under(rel, r));
            if !in_root || worktree::lookup(&self.store, &base.tree, rel)?.is_none() {
                return Err(StoreError::NotTracked(rel.clone()));
            }
            if let Some(r) = base
                .roots
                .iter()
                .find(|r| paths::is_under(rel, r) && *r != rel)
            {
                return Err(StoreError::InvalidPath {
                    path: rel.clone(),
                    reason: format!(
                        "lies inside the tracked folder {r}: delete the file and run `dvx commit`, or stop tracking {r} as a whole"
                    ),
                });
            }
            edits.insert(rel.clone(), None);
            roots.retain(|r| !paths::is_under(r, rel));
        }
        let txn = self.store.txn()?;
        let tree =
            worktree::edit_tree(&self.store, Some(&base.tree), &edits, &|t| txn.put_tree(t))?;
        let message = message.unwrap_or_else(|| format!("stop tracking {}", rels.join(", ")));
        let (id, commit) = self.new_commit(&txn, tree, roots, message, Vec::new())?;
        txn.commit()?;
        self.index_commit(&id, &commit)?;
        self.write_lock(&id, &commit, Some(&base))?;
        Ok(CommitReport {
            commit: Some(id),
            branch: Self::branch_name(&head),
            paths: rels.to_vec(),
            files: 0,
            bytes: 0,
            files_read: 0,
            bytes_read: 0,
        })
    }

    /// The workspace's state under `roots`, hashing only what the stat cache cannot vouch for
    /// (and remembering those hashes when this process may write).
    pub fn workspace(
        &self,
        roots: &[String],
        progress: &dyn Progress,
    ) -> Result<BTreeMap<String, Flat>> {
        let mut all = BTreeMap::new();
        let mut updates = Vec::new();
        for r in roots {
            let found = self.identify_path(r, None, progress)?;
            updates.extend(found.cache_updates);
            all.extend(found.files);
        }
        self.save_cache(&updates)?;
        Ok(all)
    }

    /// Changes from `base` (None: nothing stored) to the workspace under `roots`, by the
    /// lockstep walk of `fastdiff`; hashes it had to compute go into the stat cache.
    fn changes_since(&self, base: Option<&Commit>, roots: &[String]) -> Result<Vec<Change>> {
        let mut changes = Vec::new();
        let mut updates = Vec::new();
        for r in roots {
            let stored = match base {
                Some(c) => crate::fastdiff::entry_for(self, &c.tree, r)?,
                None => None,
            };
            let found = self.diff_workspace(r, stored.as_ref())?;
            changes.extend(found.changes);
            updates.extend(found.updates);
        }
        self.save_cache(&updates)?;
        changes.sort_by(|x, y| x.path.cmp(&y.path));
        Ok(changes)
    }

    /// Everything a commit holds under its roots, flattened.
    pub fn commit_files(&self, c: &Commit, roots: &[String]) -> Result<BTreeMap<String, Flat>> {
        let mut out = BTreeMap::new();
        for r in roots {
            worktree::flatten_path(&self.store, &c.tree, r, &mut out)?;
        }
        Ok(out)
    }

    pub fn status(&self, progress: &dyn Progress) -> Result<Status> {
        if self.nothing_fetched() {
            return self.status_from_lock(progress);
        }
        // A dvx.lock pinning a commit not fetched yet (after a `git pull`) is news for
        // status to give, not a reason to fail.
        let (lock, unfetched) = match self.checked_lock() {
            Ok(lock) => (lock.map(|l| l.commit), false),
            Err(StoreError::PinnedNotFetched(c)) => (Some(c), true),
            Err(e) => return Err(e),
        };
        let (head, head_id, base) = self.head_state()?;
        let _ = progress;
        let roots = base.as_ref().map(|c| c.roots.clone()).unwrap_or_default();
        let changes = self.changes_since(base.as_ref(), &roots)?;
        let pick = |k: ChangeKind| -> Vec<String> {
            changes
                .iter()
                .filter(|c| c.change == k)
                .map(|c| c.path.clone())
                .collect()
        };
        let (modified, deleted, new) = (
            pick(ChangeKind::Modified),
            pick(ChangeKind::Removed),
            pick(ChangeKind::Added),
        );
        let lock_commit = lock.filter(|c| Some(*c) != head_id);
        Ok(Status {
            branch: Self::branch_name(&head),
            head: head_id,
            tracked: roots,
            clean: modified.is_empty() && deleted.is_empty() && new.is_empty(),
            modified,
            deleted,
            new,
            lock_commit,
            lock_fetched: !unfetched,
            fetched: true,
            not_here: Vec::new(),
        })
    }

    /// Changes from `from` to `to`; `None` for `to` means the workspace.
    pub fn diff(
        &self,
        from: Option<&str>,
        to: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Vec<Change>> {
        // Without a store every tracked path would look new (or unchanged); neither is true.
        if self.nothing_fetched() {
            return Err(self.nothing_fetched_error());
        }
        let resolve =
            |rev: &str| -> Result<Commit> { self.store.get_commit(&self.store.resolve(rev)?) };
        let (_, _, head) = self.head_state()?;
        let a = match from {
            Some(r) => Some(resolve(r)?),
            None => head.clone(),
        };
        match to {
            Some(r) => {
                let b = resolve(r)?;
                let mut out = Vec::new();
                diff_trees(self, a.as_ref().map(|c| c.tree), Some(b.tree), "", &mut out)?;
                Ok(out)
            }
            None => {
                let roots = normalize_roots(
                    a.iter()
                        .chain(head.iter())
                        .flat_map(|c| c.roots.iter().cloned()),
                );
                // The same lockstep walk as `status`, against whichever commit was asked for.
                let _ = progress;
                self.changes_since(a.as_ref(), &roots)
            }
        }
    }

    pub fn log(&self, rev: Option<&str>, limit: Option<usize>) -> Result<Vec<LogEntry>> {
        let start = match rev {
            Some(r) => Some(self.store.resolve(r)?),
            None => self.store.head_commit()?,
        };
        let mut labels: BTreeMap<Id, Vec<String>> = BTreeMap::new();
        for (n, id) in self.store.list_refs(HEADS)? {
            labels.entry(id).or_default().push(n);
        }
        for (n, id) in self.store.list_refs(TAGS)? {
            labels.entry(id).or_default().push(format!("tag: {n}"));
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut frontier: Vec<(Id, Commit)> = Vec::new();
        if let Some(id) = start {
            frontier.push((id, self.store.get_commit(&id)?));
        }
        while let Some(pos) = (0..frontier.len()).max_by_key(|&i| frontier[i].1.time) {
            let (id, c) = frontier.swap_remove(pos);
            if !seen.insert(id) {
                continue;
            }
            for p in &c.parents {
                if !seen.contains(p) {
                    frontier.push((*p, self.store.get_commit(p)?));
                }
            }
            out.push(LogEntry {
                id,
                refs: labels.get(&id).cloned().unwrap_or_default(),
                commit: c,
            });
            if limit.is_some_and(|n| out.len() >= n) {
                break;
            }
        }
        Ok(out)
    }

    pub fn ls(&self, rev: &str, rel: &str, recursive: bool) -> Result<Vec<LsEntry>> {
        let id = self.store.resolve(rev)?;
        let c = self.store.get_commit(&id)?;
        let Some(top) = worktree::lookup(&self.store, &c.tree, rel)? else {
            return Err(StoreError::NotInRevision {
                path: rel.into(),
                commit: id.short(),
            });
        };
        let mut flat = BTreeMap::new();
        if top.kind != EntryKind::Dir {
            flat.insert(rel.to_string(), top);
        } else if recursive {
            worktree::flatten(&self.store, &top.id, rel, &mut flat)?;
        } else {
            for e in self.store.get_tree(&top.id)?.entries {
                flat.insert(paths::join(rel, &e.name), Flat::from_entry(&e));
            }
        }
        Ok(flat
            .into_iter()
            .map(|(path, f)| LsEntry {
                path,
                kind: f.kind,
                mode: f.mode,
                size: f.size,
                id: f.id,
            })
            .collect())
    }

    /// The content of a file (or a symlink's target) at `rel` in `rev`, verified whole.
    pub fn cat(&self, rev: &str, rel: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let f = self.file_at(rev, rel)?;
        self.store.write_file_to(&f.id, out)
    }

    pub fn create_ref(&self, kind: &str, name: &str, rev: Option<&str>) -> Result<Id> {
        let (prefix, what) = if kind == "tag" {
            (TAGS, "tag")
        } else {
            (HEADS, "branch")
        };
        validate_ref_name(name, what)?;
        let full = format!("{prefix}{name}");
        if self.store.read_ref(&full)?.is_some() {
            return Err(StoreError::RefExists(name.into()));
        }
        let id = match rev {
            Some(r) => self.store.resolve(r)?,
            None => self
                .store
                .head_commit()?
                .ok_or_else(|| StoreError::UnknownRevision("HEAD".into()))?,
        };
        let txn = self.store.txn()?;
        txn.set_ref(&full, &id);
        txn.commit()?;
        Ok(id)
    }

    pub fn delete_ref(&self, kind: &str, name: &str) -> Result<Id> {
        let prefix = if kind == "tag" { TAGS } else { HEADS };
        if kind != "tag" && self.store.head()? == Head::Branch(name.into()) {
            return Err(StoreError::DeleteCurrentBranch(name.into()));
        }
        let full = format!("{prefix}{name}");
        let id = self
            .store
            .ref_target(&full)?
            .ok_or_else(|| StoreError::UnknownRevision(name.into()))?;
        let txn = self.store.txn()?;
        txn.delete_ref(&full);
        txn.commit()?;
        Ok(id)
    }
}

fn dir_id(e: Option<&&crate::object::TreeEntry>) -> Option<Id> {
    e.filter(|e| e.kind == EntryKind::Dir).map(|e| e.id)
}

fn leaf<'a>(e: Option<&&'a crate::object::TreeEntry>) -> Option<&'a crate::object::TreeEntry> {
    e.filter(|e| e.kind != EntryKind::Dir).copied()
}

/// Diff two stored trees, skipping identical subtrees without reading them.
fn diff_trees(
    repo: &Repo,
    a: Option<Id>,
    b: Option<Id>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |id: Option<Id>| -> Result<Vec<crate::object::TreeEntry>> {
        Ok(match id {
            Some(id) => repo.store.get_tree(&id)?.entries,
            None => Vec::new(),
        })
    };
    let (ea, eb) = (load(a)?, load(b)?);
    let ma: BTreeMap<&str, &crate::object::TreeEntry> =
        ea.iter().map(|e| (e.name.as_str(), e)).collect();
    let mb: BTreeMap<&str, &crate::object::TreeEntry> =
        eb.iter().map(|e| (e.name.as_str(), e)).collect();
    let names: BTreeSet<&str> = ma.keys().chain(mb.keys()).copied().collect();
    for name in names {
        let p = paths::join(prefix, name);
        let (x, y) = (ma.get(name), mb.get(name));
        diff_trees(repo, dir_id(x), dir_id(y), &p, out)?;
        match (leaf(x), leaf(y)) {
            (Some(o), Some(n)) => {
                if !Flat::from_entry(o).same(&Flat::from_entry(n)) {
                    out.push(Change {
                        path: p,
                        change: ChangeKind::Modified,
                        old_size: Some(o.size),
                        new_size: Some(n.size),
                    });
                }
            }
            (Some(o), None) => out.push(Change {
                path: p,
                change: ChangeKind::Removed,
                old_size: Some(o.size),
                new_size: None,
            }),
            (None, Some(n)) => out.push(Change {
                path: p,
                change: ChangeKind::Added,
                old_size: None,
                new_size: Some(n.size),
            }),
            (None, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
