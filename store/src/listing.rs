//! One folder of the workspace at a time: its entries sorted by name, and the stat-cache
//! entries of its files read in one ordered scan. The walks that must not hold a map of
//! every path (status, add, commit) are built from these.

use std::fs;

use crate::db::CF_STAT;
use crate::error::{IoContext, Result, StoreError};
use crate::object::EntryKind;
use crate::paths;
use crate::statcache::{Stat, StatEntry};
use crate::store::Store;
use crate::worktree;

/// An entry of a workspace folder.
pub(crate) struct DiskEntry {
    pub name: String,
    pub kind: EntryKind,
    pub stat: Stat,
}

/// The entry at the project path `rel`, where a walk starts, as the walks see it: absent when
/// reserved, beyond a symlinked folder, missing, or not a file, symlink or folder. Its name
/// is the last part of `rel`; a file comes with its stat-cache entry.
pub(crate) fn path_entry(
    root: &std::path::Path,
    store: &Store,
    rel: &str,
) -> Result<Option<(DiskEntry, Option<StatEntry>)>> {
    let abs = paths::abs(root, rel)?;
    if paths::is_reserved(rel) || paths::symlinked_parent(root, rel).is_some() {
        return Ok(None);
    }
    let meta = match fs::symlink_metadata(&abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(&abs, e)),
    };
    let Some(kind) = worktree::kind_of(&meta.file_type()) else {
        return Ok(None);
    };
    let cached = match kind {
        EntryKind::File => store
            .db
            .get(CF_STAT, rel.as_bytes())?
            .and_then(|v| StatEntry::decode(&v)),
        _ => None,
    };
    let name = rel.rsplit('/').next().unwrap_or(rel).to_string();
    let stat = Stat::of(&meta);
    Ok(Some((DiskEntry { name, kind, stat }, cached)))
}

/// The entries of the project folder `rel`, sorted by name (bytes), without git's and dvx's
/// own files and without sockets, fifos and devices. A name that is not UTF-8 is an error.
pub(crate) fn list_dir(root: &std::path::Path, rel: &str) -> Result<Vec<DiskEntry>> {
    let abs = paths::abs(root, rel)?;
    let mut disk = Vec::new();
    for ent in fs::read_dir(&abs).at(&abs)? {
        let ent = ent.at(&abs)?;
        let Ok(name) = ent.file_name().into_string() else {
            return Err(StoreError::InvalidPath {
                path: ent.path().to_string_lossy().into_owned(),
                reason: "the name is not valid UTF-8".into(),
            });
        };
        if paths::is_reserved(&paths::join(rel, &name)) {
            continue;
        }
        // DirEntry::metadata does not follow symlinks.
        let meta = ent.metadata().at(ent.path())?;
        if let Some(kind) = worktree::kind_of(&meta.file_type()) {
            disk.push(DiskEntry {
                name,
                kind,
                stat: Stat::of(&meta),
            });
        }
    }
    disk.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(disk)
}

/// The stat-cache entries of the files among `disk` (the sorted listing of `rel`), by
/// position: one ordered scan of the folder's keys merged with the listing (at the top of
/// the project, a batched lookup of the few names).
pub(crate) fn cached_stats(
    store: &Store,
    rel: &str,
    disk: &[DiskEntry],
) -> Result<Vec<Option<StatEntry>>> {
    let mut cached: Vec<Option<StatEntry>> = vec![None; disk.len()];
    if rel.is_empty() {
        let idx: Vec<usize> = (0..disk.len())
            .filter(|&i| disk[i].kind == EntryKind::File)
            .collect();
        let keys: Vec<&str> = idx.iter().map(|&i| disk[i].name.as_str()).collect();
        let found = store
            .db
            .multi_get_with(CF_STAT, &keys, true, StatEntry::decode)?;
        for (i, e) in idx.into_iter().zip(found) {
            cached[i] = e;
        }
    } else if disk.iter().any(|d| d.kind == EntryKind::File) {
        let prefix = format!("{rel}/");
        let mut k = 0;
        store
            .db
            .for_each_child(CF_STAT, prefix.as_bytes(), |name, v| {
                while k < disk.len() && disk[k].name.as_bytes() < name {
                    k += 1;
                }
                if k < disk.len()
                    && disk[k].name.as_bytes() == name
                    && disk[k].kind == EntryKind::File
                {
                    cached[k] = StatEntry::decode(v);
                }
                Ok(k < disk.len())
            })?;
    }
    Ok(cached)
}

/// A disk file's id and size as a tree would hold them: from the stat cache when it vouches
/// for the file, else hashed, with the stat-cache entry to save for next time. (`add` and
/// `commit` store what they read instead: `ingest.rs`.)
pub(crate) fn file_id(
    root: &std::path::Path,
    rel: &str,
    d: &DiskEntry,
    cached: Option<StatEntry>,
) -> Result<(crate::id::Id, u64, Option<StatEntry>)> {
    if let Some(id) = cached.and_then(|c| c.lookup(&d.stat)) {
        return Ok((id, d.stat.size, None));
    }
    let (id, n) = crate::store::hash_path(&root.join(rel))?;
    Ok((id, n, Some(StatEntry::new(d.stat, id))))
}
