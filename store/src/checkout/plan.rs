//! What a checkout must do, found by walking the target tree, the current commit's tree and
//! the workspace together, folder by folder, in lockstep (all three sorted by name), as
//! `fastdiff` does for status. Only what must change is held (files to write, entries to
//! delete, whole folders missing on disk); an unchanged file the stat cache vouches for costs
//! one `lstat` and builds no path. Nothing on disk is touched here, so a conflict is refused
//! before anything changed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::listing::{cached_stats, file_id, list_dir, path_entry, DiskEntry};
use crate::object::{EntryKind, EntryRef, Tree};
use crate::paths;
use crate::repo::Repo;
use crate::statcache::StatEntry;
use crate::worktree::{self, file_mode, Flat};

use super::write::CacheSink;
use super::STAT_BATCH;

/// How many conflicting paths an error names (then "and N more").
const SHOWN: usize = 5;

/// Everything a checkout will change, decided before anything is changed.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Entries on disk to remove (the target lacks them or has another kind there).
    pub deletes: Vec<(String, EntryKind)>,
    /// Target folders to create before writing.
    pub dirs: Vec<String>,
    /// Files and symlinks to write, each with what the target holds.
    pub writes: Vec<(String, Flat)>,
    /// Target folders with no folder on disk: everything in them is written.
    pub trees: Vec<(String, Id)>,
    /// How many files and symlinks `trees` hold.
    pub tree_leaves: u64,
    /// Files and symlinks already as the target has them.
    pub unchanged: u64,
    pub conflicts: Conflicts,
}

/// Files dirty against the current commit that the target would overwrite.
#[derive(Debug, Default)]
pub(crate) struct Conflicts {
    count: usize,
    first: BTreeSet<String>,
}

impl Conflicts {
    fn add(&mut self, path: String) {
        self.count += 1;
        self.first.insert(path);
        if self.first.len() > SHOWN {
            self.first.pop_last();
        }
    }

    /// The error to refuse the checkout with, if any path conflicts: the first few by name.
    pub fn take_error(&mut self) -> Option<StoreError> {
        if self.count == 0 {
            return None;
        }
        let mut named: Vec<String> = std::mem::take(&mut self.first).into_iter().collect();
        if self.count > SHOWN {
            named.push(format!("and {} more", self.count - SHOWN));
        }
        Some(StoreError::UncommittedChanges(named))
    }
}

impl Plan {
    /// The plan for flattened maps over one scope (see `Repo::apply`): every path to write is
    /// checked before anything changes.
    pub fn from_maps(want: &BTreeMap<String, Flat>, work: &BTreeMap<String, Flat>) -> Result<Plan> {
        for p in want.keys() {
            paths::check_tracked(p)?;
        }
        let is_dir = |f: &Flat| f.kind == EntryKind::Dir;
        // Both maps are in path order: one pass side by side, not a lookup in the other map
        // per entry (two searches of 100,000 paths were most of a re-run's `apply`).
        let (mut writes, mut deletes, mut dirs, mut leaves) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        let mut on_disk = work.iter().peekable();
        for (p, t) in want {
            while let Some((wp, w)) = on_disk.next_if(|(wp, _)| wp.as_str() < p.as_str()) {
                deletes.push((wp.clone(), w.kind)); // not wanted
            }
            let here = on_disk.next_if(|(wp, _)| *wp == p).map(|(_, w)| *w);
            if let Some(w) = here.filter(|w| w.kind != t.kind) {
                deletes.push((p.clone(), w.kind));
            }
            if is_dir(t) {
                dirs.push(p.clone());
            } else {
                leaves += 1;
                if !here.is_some_and(|w| w.same(t)) {
                    writes.push((p.clone(), *t));
                }
            }
        }
        deletes.extend(on_disk.map(|(p, w)| (p.clone(), w.kind)));
        Ok(Plan {
            deletes,
            dirs,
            unchanged: leaves - writes.len() as u64,
            writes,
            ..Default::default()
        })
    }

    fn sort(&mut self) {
        self.deletes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.dirs.sort_unstable();
        self.writes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        self.trees.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    }
}

/// One name of a folder as the target, the current commit and the disk have it.
struct Row<'a> {
    name: &'a str,
    target: Option<Flat>,
    current: Option<Flat>,
    disk: Option<&'a DiskEntry>,
    cached: Option<StatEntry>,
}

impl Row<'_> {
    fn has_dir(&self) -> bool {
        let dir = |k: EntryKind| k == EntryKind::Dir;
        self.target.is_some_and(|t| dir(t.kind)) || self.disk.is_some_and(|d| dir(d.kind))
    }

    /// An unchanged file the stat cache vouches for: nothing to do, nothing to build.
    fn clean_file(&self) -> bool {
        match (self.disk, self.cached, self.target) {
            (Some(d), Some(c), Some(t)) => {
                d.kind == EntryKind::File
                    && t.kind == EntryKind::File
                    && c.lookup(&d.stat) == Some(t.id)
                    && file_mode(d.stat.mode) == t.mode
            }
            _ => false,
        }
    }
}

struct Walk<'r> {
    repo: &'r Repo,
    force: bool,
    plan: Mutex<Plan>,
    /// Stat-cache entries of workspace files that had to be hashed.
    hashed: CacheSink<'r>,
}

impl Repo {
    /// Plan making the workspace under `scope` hold the tree `target`, where HEAD's tree is
    /// `current`. With `force`, no conflicts are collected.
    pub(crate) fn plan_checkout(
        &self,
        target: &Id,
        current: Option<&Id>,
        scope: &[String],
        force: bool,
    ) -> Result<Plan> {
        let walk = Walk {
            repo: self,
            force,
            plan: Mutex::new(Plan::default()),
            hashed: CacheSink::new(STAT_BATCH, |b| self.save_cache(b)),
        };
        for r in scope {
            let t = worktree::lookup(&self.store, target, r)?;
            let c = match current {
                Some(c) => worktree::lookup(&self.store, c, r)?,
                None => None,
            };
            let (disk, cached) = match path_entry(&self.root, &self.store, r)? {
                Some((d, c)) => (Some(d), c),
                None => (None, None),
            };
            let row = Row {
                name: r,
                target: t,
                current: c,
                disk: disk.as_ref(),
                cached,
            };
            walk.entry(r.clone(), &row)?;
        }
        self.save_cache(&walk.hashed.into_rest())?;
        let mut plan = walk.plan.into_inner().unwrap_or_else(|p| p.into_inner());
        plan.sort();
        Ok(plan)
    }
}

impl Walk<'_> {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide for one path, from what each side holds there.
    fn entry(&self, rel: String, row: &Row) -> Result<()> {
        let dir = EntryKind::Dir;
        if row.target.is_some() {
            paths::check_tracked(&rel)?;
        }
        let disk_dir = row.disk.is_some_and(|d| d.kind == dir);
        // The disk's file or symlink, identified.
        let work = match row.disk {
            Some(d) if d.kind != dir => Some(self.identify(&rel, d, row.cached)?),
            _ => None,
        };
        if let Some(w) = work {
            let dirty = !row.current.is_some_and(|c| c.same(&w));
            let overwritten = !row.target.is_some_and(|t| t.same(&w));
            if dirty && overwritten && !self.force {
                self.plan().conflicts.add(rel.clone());
            }
        }
        if let Some(d) = row.disk {
            if row.target.is_none_or(|t| t.kind != d.kind) {
                self.plan().deletes.push((rel.clone(), d.kind));
            }
        }
        let current_dir = row.current.filter(|c| c.kind == dir).map(|c| c.id);
        match row.target {
            Some(t) if t.kind == dir => {
                if disk_dir {
                    return self.folder(&rel, Some(t.id), current_dir);
                }
                let n = self.repo.count_leaves(&rel, &t.id)?;
                let mut plan = self.plan();
                plan.tree_leaves += n;
                plan.trees.push((rel, t.id));
                return Ok(());
            }
            Some(t) => {
                let mut plan = self.plan();
                if work.is_some_and(|w| w.same(&t)) {
                    plan.unchanged += 1;
                } else {
                    plan.writes.push((rel.clone(), t));
                }
            }
            None => {}
        }
        // A folder on disk the target does not have as one: what is in it goes (or conflicts).
        if disk_dir {
            self.folder(&rel, None, current_dir)?;
        }
        Ok(())
    }

    /// The disk's file or symlink at `rel` as a tree would hold it: a file's id from the stat
    /// cache when it can vouch for it, else hashed (and cached).
    fn identify(&self, rel: &str, d: &DiskEntry, cached: Option<StatEntry>) -> Result<Flat> {
        let abs = self.repo.root.join(rel);
        if d.kind == EntryKind::Symlink {
            let target = crate::ingest::link_target_checked(&abs, rel)?;
            return Ok(Flat {
                kind: EntryKind::Symlink,
                mode: 0o777,
                size: target.len() as u64,
                id: Id::of(target.as_bytes()),
            });
        }
        let (id, size, fresh) = file_id(&self.repo.root, rel, d, cached)?;
        if let Some(e) = fresh {
            self.hashed.push(rel.to_string(), e)?;
        }
        Ok(Flat {
            kind: EntryKind::File,
            mode: file_mode(d.stat.mode),
            size,
            id,
        })
    }

    /// Compare the folder `rel`, which is a folder on disk, with the target's and the current
    /// commit's trees there (None: not a folder on that side).
    fn folder(&self, rel: &str, target: Option<Id>, current: Option<Id>) -> Result<()> {
        let store = &self.repo.store;
        let t_bytes = match target {
            Some(id) => store.get_tree_bytes(&id)?,
            None => Vec::new(),
        };
        let t_entries: Vec<EntryRef> = match target {
            Some(id) => Tree::decode_ref(id, &t_bytes)?,
            None => Vec::new(),
        };
        // Unchanged since HEAD (the usual case for most folders): one decoded tree serves both.
        let same = current.is_some() && current == target;
        let c_bytes = match current {
            Some(id) if !same => store.get_tree_bytes(&id)?,
            _ => Vec::new(),
        };
        let c_entries: Vec<EntryRef> = match current {
            Some(id) if !same => Tree::decode_ref(id, &c_bytes)?,
            _ => Vec::new(),
        };
        let c_entries = if same { &t_entries } else { &c_entries };
        let disk = list_dir(&self.repo.root, rel)?;
        let cached = cached_stats(&self.repo.store, rel, &disk)?;

        let (mut i, mut j, mut k) = (0, 0, 0);
        let mut rows: Vec<Row> = Vec::new();
        let mut unchanged = 0u64;
        loop {
            let names = [
                disk.get(i).map(|d| d.name.as_bytes()),
                t_entries.get(j).map(|e| e.name.as_bytes()),
                c_entries.get(k).map(|e| e.name.as_bytes()),
            ];
            let Some(name) = names.iter().flatten().min().copied() else {
                break;
            };
            let here = |n: Option<&[u8]>| n.is_some_and(|n| n.cmp(name) == Ordering::Equal);
            let (on_disk, in_target, in_current) = (here(names[0]), here(names[1]), here(names[2]));
            let row = Row {
                name: if on_disk {
                    &disk[i].name
                } else if in_target {
                    t_entries[j].name
                } else {
                    c_entries[k].name
                },
                disk: on_disk.then(|| &disk[i]),
                cached: if on_disk { cached[i] } else { None },
                target: in_target.then(|| Flat::from_ref(&t_entries[j])),
                current: in_current.then(|| Flat::from_ref(&c_entries[k])),
            };
            i += usize::from(on_disk);
            j += usize::from(in_target);
            k += usize::from(in_current);
            if row.clean_file() {
                unchanged += 1;
            } else if row.disk.is_some() || row.target.is_some() {
                rows.push(row);
            }
        }
        if unchanged > 0 {
            self.plan().unchanged += unchanged;
        }
        // Folders in parallel; files and symlinks here in order.
        let (dirs, leaves): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(Row::has_dir);
        for row in &leaves {
            self.entry(paths::join(rel, row.name), row)?;
        }
        dirs.par_iter()
            .try_for_each(|row| self.entry(paths::join(rel, row.name), row))
    }
}

impl Repo {
    /// Files and symlinks in the stored folder `id` (at `rel`), every name checked as a path
    /// to write: a tree reaching into git's or dvx's own files is refused before anything is
    /// written.
    pub(crate) fn count_leaves(&self, rel: &str, id: &Id) -> Result<u64> {
        let bytes = self.store.get_tree_bytes(id)?;
        let entries = Tree::decode_ref(*id, &bytes)?;
        let mut n = 0;
        for e in &entries {
            check_child(rel, e.name)?;
            if e.kind == EntryKind::Dir {
                n += self.count_leaves(&paths::join(rel, e.name), &e.id)?;
            } else {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// `paths::check_tracked` for `name` inside the folder `rel`, which passed it: only the new
/// name needs looking at (tree decoding already refused unsafe names).
pub(crate) fn check_child(rel: &str, name: &str) -> Result<()> {
    let reserved = if rel.is_empty() {
        paths::reserved_top_name(name)
    } else {
        paths::reserved_name(name)
    };
    match reserved {
        Some(_) => paths::check_tracked(&paths::join(rel, name)),
        None => paths::check_rel(name),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
