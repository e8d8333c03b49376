//! The workspace compared with a stored tree, directory by directory in lockstep (both sides
//! sorted by name), as git compares its index: no map of every path is ever built, the stat
//! cache is read with one batched lookup per directory, and directories are walked in
//! parallel. This keeps a no-op `dvx status` close to the cost of the `lstat` calls themselves.

use std::cmp::Ordering;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::Result;
use crate::id::Id;
use crate::listing::{cached_stats, file_id, list_dir, path_entry, DiskEntry};
use crate::object::{EntryKind, EntryRef, Tree, TreeEntry};
use crate::ops::{Change, ChangeKind};
use crate::paths;
use crate::repo::Repo;
use crate::statcache::StatEntry;
use crate::worktree::{self, file_mode};

/// What the walk found: changes, and stat-cache entries for files it had to hash.
#[derive(Default)]
pub struct WalkResult {
    pub changes: Vec<Change>,
    pub updates: Vec<(String, StatEntry)>,
}

impl Repo {
    /// Changes from the stored entry `stored` (None: nothing stored) to the workspace at `rel`.
    pub fn diff_workspace(&self, rel: &str, stored: Option<&TreeEntry>) -> Result<WalkResult> {
        let out = Mutex::new(WalkResult::default());
        let (disk, cached) = match path_entry(&self.root, &self.store, rel)? {
            Some((d, c)) => (Some(d), c),
            None => (None, None),
        };
        let parent = rel.rfind('/').map(|i| &rel[..i]).unwrap_or("");
        let stored = stored.map(EntryRef::from);
        self.compare_entry(parent, disk.as_ref(), cached, stored.as_ref(), &out)?;
        let mut r = out.into_inner().unwrap_or_else(|p| p.into_inner());
        r.changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(r)
    }

    fn compare_entry(
        &self,
        parent: &str,
        disk: Option<&DiskEntry>,
        cached: Option<StatEntry>,
        stored: Option<&EntryRef>,
        out: &Mutex<WalkResult>,
    ) -> Result<()> {
        let name = disk
            .map(|d| d.name.as_str())
            .or(stored.map(|s| s.name))
            .unwrap_or("");
        self.compare_at(paths::join(parent, name), disk, cached, stored, out)
    }

    /// `compare_entry` for an entry whose project-relative path is already built.
    fn compare_at(
        &self,
        rel: String,
        disk: Option<&DiskEntry>,
        cached: Option<StatEntry>,
        stored: Option<&EntryRef>,
        out: &Mutex<WalkResult>,
    ) -> Result<()> {
        let push = |c: Change| {
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .changes
                .push(c)
        };
        let stored_dir = stored.filter(|s| s.kind == EntryKind::Dir);
        let stored_leaf = stored.filter(|s| s.kind != EntryKind::Dir);
        let disk_dir = disk.filter(|d| d.kind == EntryKind::Dir);
        let disk_leaf = disk.filter(|d| d.kind != EntryKind::Dir);
        if disk_dir.is_some() || stored_dir.is_some() {
            self.compare_dir(&rel, disk_dir.is_some(), stored_dir.map(|s| s.id), out)?;
        }
        match (disk_leaf, stored_leaf) {
            (Some(d), Some(s)) => {
                let (id, mode) = self.leaf_id(&rel, d, cached, out)?;
                if id != s.id || mode != s.mode || d.kind != s.kind {
                    push(Change {
                        path: rel,
                        change: ChangeKind::Modified,
                        old_size: Some(s.size),
                        new_size: Some(d.stat.size),
                    });
                }
            }
            (Some(d), None) => push(Change {
                path: rel,
                change: ChangeKind::Added,
                old_size: None,
                new_size: Some(d.stat.size),
            }),
            (None, Some(s)) => push(Change {
                path: rel,
                change: ChangeKind::Removed,
                old_size: Some(s.size),
                new_size: None,
            }),
            (None, None) => {}
        }
        Ok(())
    }

    /// Id and mode of a file or symlink on disk, via the stat cache when it can vouch for it.
    fn leaf_id(
        &self,
        rel: &str,
        d: &DiskEntry,
        cached: Option<StatEntry>,
        out: &Mutex<WalkResult>,
    ) -> Result<(Id, u32)> {
        if d.kind == EntryKind::Symlink {
            return Ok((Id::of(&worktree::link_target(&self.root.join(rel))?), 0o777));
        }
        let (id, _, fresh) = file_id(&self.root, rel, d, cached)?;
        if let Some(e) = fresh {
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .updates
                .push((rel.to_string(), e));
        }
        Ok((id, file_mode(d.stat.mode)))
    }

    fn compare_dir(
        &self,
        rel: &str,
        on_disk: bool,
        stored: Option<Id>,
        out: &Mutex<WalkResult>,
    ) -> Result<()> {
        let bytes = match stored {
            Some(id) => self.store.get_tree_bytes(&id)?,
            None => Vec::new(),
        };
        let tree: Vec<EntryRef> = match stored {
            Some(id) => Tree::decode_ref(id, &bytes)?,
            None => Vec::new(),
        };
        let disk: Vec<DiskEntry> = if on_disk {
            list_dir(&self.root, rel)?
        } else {
            Vec::new()
        };
        let cached = cached_stats(&self.store, rel, &disk)?;
        type Pair<'a> = (
            Option<&'a DiskEntry>,
            Option<StatEntry>,
            Option<&'a EntryRef<'a>>,
        );
        let mut pairs: Vec<Pair> = Vec::with_capacity(disk.len().max(tree.len()));
        let (mut i, mut j) = (0, 0);
        while i < disk.len() || j < tree.len() {
            let ord = match (disk.get(i), tree.get(j)) {
                (Some(d), Some(t)) => d.name.as_bytes().cmp(t.name.as_bytes()),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            let d = (ord != Ordering::Greater).then(|| &disk[i]);
            let t = (ord != Ordering::Less).then(|| &tree[j]);
            let c = if d.is_some() { cached[i] } else { None };
            pairs.push((d, c, t));
            if ord != Ordering::Greater {
                i += 1;
            }
            if ord != Ordering::Less {
                j += 1;
            }
        }
        // Folders in parallel; files here in order.
        let (dirs, leaves): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(d, _, t)| {
            d.is_some_and(|d| d.kind == EntryKind::Dir)
                || t.is_some_and(|t| t.kind == EntryKind::Dir)
        });
        for (d, c, t) in leaves {
            // The common case, an unchanged file the cache vouches for, builds no path at all.
            if let (Some(d), Some(c), Some(t)) = (d, c, t) {
                if d.kind == EntryKind::File
                    && t.kind == EntryKind::File
                    && c.lookup(&d.stat) == Some(t.id)
                    && file_mode(d.stat.mode) == t.mode
                {
                    continue;
                }
            }
            self.compare_entry(rel, d, c, t, out)?;
        }
        dirs.into_par_iter()
            .try_for_each(|(d, c, t)| self.compare_entry(rel, d, c, t, out))?;
        Ok(())
    }
}

/// A stored path as a tree entry (for the top of a walk).
pub fn entry_for(repo: &Repo, tree: &Id, rel: &str) -> Result<Option<TreeEntry>> {
    Ok(
        worktree::lookup(&repo.store, tree, rel)?.map(|f| TreeEntry {
            name: rel.rsplit('/').next().unwrap_or(rel).to_string(),
            kind: f.kind,
            mode: f.mode,
            size: f.size,
            id: f.id,
        }),
    )
}
