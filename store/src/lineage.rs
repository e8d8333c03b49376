//! Keys of the `lineage` column family, and the two indexes the store itself writes: path
//! history (which commit brought which content to which path) and run → commit. The run
//! indexes (file → producing and consuming runs) are written by the engine, which owns run
//! records; their key layout lives here so that `gc` can prune them. Layout version 1, see
//! `schemas/lineage.md`.

use std::collections::{BTreeMap, HashSet};

use crate::db::{ObjKind, CF_LINEAGE, CF_META, CF_OBJECTS};
use crate::error::Result;
use crate::id::Id;
use crate::object::{Commit, EntryKind};
use crate::paths;
use crate::repo::Repo;
use crate::store::{Store, Txn};
use crate::worktree::Flat;

/// `meta` key whose value (ASCII digits) says which layout the lineage indexes follow.
pub const META_KEY: &[u8] = b"lineage";
pub const LAYOUT_VERSION: &str = "1";

/// `o` + file id + run id + path: the run produced that content at that path.
pub const TAG_OUTPUT: u8 = b'o';
/// `i` + file id + run id + path: the run read that content at that path.
pub const TAG_INPUT: u8 = b'i';
/// `h` + path + 0x00 + id + commit → commit time (i64, big-endian): the commit brought `id` to
/// `path` (the path held something else, or nothing, in its first parent).
pub const TAG_HISTORY: u8 = b'h';
/// `c` + run id + commit id: the commit lists the run in its `runs`.
pub const TAG_COMMIT_RUN: u8 = b'c';

/// Key of an `o` or `i` entry.
pub fn run_file_key(tag: u8, file: &Id, run: &Id, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(65 + path.len());
    k.push(tag);
    k.extend_from_slice(file.as_bytes());
    k.extend_from_slice(run.as_bytes());
    k.extend_from_slice(path.as_bytes());
    k
}

/// Prefix of the `o` or `i` entries of one file id.
pub fn run_file_prefix(tag: u8, file: &Id) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(file.as_bytes());
    k
}

/// (file id, run id, path) of an `o` or `i` key.
pub fn parse_run_file_key(k: &[u8]) -> Option<(Id, Id, String)> {
    if k.len() < 65 {
        return None;
    }
    Some((
        Id::from_slice(&k[1..33])?,
        Id::from_slice(&k[33..65])?,
        String::from_utf8(k[65..].to_vec()).ok()?,
    ))
}

pub fn history_prefix(path: &str, id: &Id) -> Vec<u8> {
    let mut k = Vec::with_capacity(34 + path.len());
    k.push(TAG_HISTORY);
    k.extend_from_slice(path.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

pub fn history_key(path: &str, id: &Id, commit: &Id) -> Vec<u8> {
    let mut k = history_prefix(path, id);
    k.extend_from_slice(commit.as_bytes());
    k
}

/// The commit id of an `h` key (its last 32 bytes).
fn history_commit(k: &[u8]) -> Option<Id> {
    (k.len() >= 66).then(|| Id::from_slice(&k[k.len() - 32..]))?
}

pub fn run_commit_key(run: &Id, commit: &Id) -> Vec<u8> {
    let mut k = Vec::with_capacity(65);
    k.push(TAG_COMMIT_RUN);
    k.extend_from_slice(run.as_bytes());
    k.extend_from_slice(commit.as_bytes());
    k
}

/// Call `f` for each path whose entry in `new` differs from `old` (None: nothing before),
/// folders included; identical subtrees are skipped without being read.
fn changed(
    store: &Store,
    old: Option<&Id>,
    new: &Id,
    prefix: &str,
    f: &mut dyn FnMut(&str, &Flat) -> Result<()>,
) -> Result<()> {
    let new_tree = store.get_tree(new)?;
    let old_tree = match old {
        Some(o) => Some(store.get_tree(o)?),
        None => None,
    };
    // Both lists are sorted by name: walk them side by side rather than searching the old
    // one for each new entry (a folder of 100k files is two linear passes, not 100k lookups).
    let old_entries = old_tree.as_ref().map_or(&[][..], |t| &t.entries[..]);
    let mut o = 0;
    for e in &new_tree.entries {
        while o < old_entries.len() && old_entries[o].name < e.name {
            o += 1;
        }
        let before = old_entries.get(o).filter(|b| b.name == e.name);
        if before.is_some_and(|b| b.id == e.id && b.kind == e.kind) {
            continue;
        }
        let p = paths::join(prefix, &e.name);
        f(&p, &Flat::from_entry(e))?;
        if e.kind == EntryKind::Dir {
            let old_sub = before.filter(|b| b.kind == EntryKind::Dir).map(|b| &b.id);
            changed(store, old_sub, &e.id, &p, f)?;
        }
    }
    Ok(())
}

fn parent_tree(store: &Store, commit: &Commit) -> Result<Option<Id>> {
    Ok(match commit.parents.first() {
        Some(p) => match store.get_object(ObjKind::Commit, p)? {
            Some(bytes) => Some(Commit::decode(*p, &bytes)?.tree),
            None => None,
        },
        None => None,
    })
}

/// Where index entries go: (key, value).
type PutEntry<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// The index entries of one commit (already stored): the paths it changed, the runs it lists.
fn commit_entries(store: &Store, id: &Id, commit: &Commit, put: &mut PutEntry) -> Result<()> {
    let time = commit.time.to_be_bytes();
    changed(
        store,
        parent_tree(store, commit)?.as_ref(),
        &commit.tree,
        "",
        &mut |p, f| put(&history_key(p, &f.id, id), &time),
    )?;
    for r in &commit.runs {
        put(&run_commit_key(r, id), b"")?;
    }
    Ok(())
}

/// Bytes of lineage entries a rebuild holds before writing them: a million-file commit's
/// entries are about 180 MB, which in one batch were most of a clone's peak memory.
pub const PIECE: usize = 8 << 20;

/// Index one commit (already stored) into `txn`, which is written in pieces as it grows.
/// The caller has marked the store unindexed (`mark_unindexed`) and marks it indexed in its
/// last write: an index cut short by a crash is rebuilt, never trusted.
pub fn index_commit(store: &Store, txn: &Txn, id: &Id, commit: &Commit) -> Result<()> {
    commit_entries(store, id, commit, &mut |k, v| {
        txn.put(CF_LINEAGE, k, v);
        txn.flush_over(PIECE)
    })
}

/// Entries written per batch when indexing a commit on its own: a 100,000-file add must not
/// hold them all in memory at once.
const BATCH: usize = 20_000;

impl Repo {
    /// Index a commit just made, in its own small write. A crash before it leaves history that
    /// lineage still answers by walking commits, and `dvx fsck --reindex` rebuilds.
    pub fn index_commit(&self, id: &Id, commit: &Commit) -> Result<()> {
        let store = &self.store;
        let mut txn = store.txn()?;
        let mut n = 0;
        commit_entries(store, id, commit, &mut |k, v| {
            txn.put(CF_LINEAGE, k, v);
            n += 1;
            if n % BATCH == 0 {
                std::mem::replace(&mut txn, store.txn()?).commit()?;
            }
            Ok(())
        })?;
        txn.commit()
    }
}

/// Commits that brought `id` to `path`, with their times, oldest first.
pub fn history(store: &Store, path: &str, id: &Id) -> Result<Vec<(Id, i64)>> {
    let mut out = Vec::new();
    store
        .db
        .for_each_prefix(CF_LINEAGE, &history_prefix(path, id), |k, v| {
            if let (Some(c), Ok(t)) = (history_commit(k), <[u8; 8]>::try_from(v)) {
                out.push((c, i64::from_be_bytes(t)));
            }
            Ok(true)
        })?;
    out.sort_by_key(|(c, t)| (*t, *c));
    Ok(out)
}

/// Commits whose `runs` list the run.
pub fn commits_of_run(store: &Store, run: &Id) -> Result<Vec<Id>> {
    let mut prefix = vec![TAG_COMMIT_RUN];
    prefix.extend_from_slice(run.as_bytes());
    let mut out = Vec::new();
    store.db.for_each_prefix(CF_LINEAGE, &prefix, |k, _| {
        if let Some(c) = k.get(33..65).and_then(Id::from_slice) {
            out.push(c);
        }
        Ok(true)
    })?;
    Ok(out)
}

/// Whether the store's lineage indexes were written by a dvx that knows this layout (stores
/// made before lineage existed have none until `dvx fsck --reindex`).
pub fn is_indexed(store: &Store) -> Result<bool> {
    Ok(store.db.get(CF_META, META_KEY)?.as_deref() == Some(LAYOUT_VERSION.as_bytes()))
}

pub fn mark_indexed(txn: &Txn) {
    txn.put(CF_META, META_KEY, LAYOUT_VERSION.as_bytes());
}

/// Forget that the indexes are built, so the next lineage query builds them from scratch.
pub fn mark_unindexed(store: &Store) -> Result<()> {
    let txn = store.txn()?;
    txn.delete(CF_META, META_KEY);
    txn.commit()
}

/// Drop every lineage entry and re-index every stored commit into `txn` (the engine adds the
/// run entries and commits `txn`). The store is marked unindexed first, in a write of its
/// own, because `txn` is written in pieces. Returns the number of commits indexed.
pub fn reindex_commits(store: &Store, txn: &Txn) -> Result<u64> {
    mark_unindexed(store)?;
    store.db.for_each_prefix(CF_LINEAGE, b"", |k, _| {
        txn.delete(CF_LINEAGE, k);
        Ok(true)
    })?;
    txn.flush_over(PIECE)?;
    let mut n = 0;
    let mut commits = Vec::new();
    store
        .db
        .for_each_prefix(CF_OBJECTS, &[ObjKind::Commit as u8], |k, v| {
            if let Some(id) = Id::from_slice(&k[1..]) {
                commits.push((id, v.to_vec()));
            }
            Ok(true)
        })?;
    for (id, bytes) in commits {
        let c = Commit::decode(id, &bytes)?;
        index_commit(store, txn, &id, &c)?;
        n += 1;
    }
    mark_indexed(txn);
    Ok(n)
}

/// Lineage entries naming a run or commit that `gc` is deleting, to delete with them.
pub fn dead_entries(
    store: &Store,
    commits: &HashSet<Id>,
    runs: &HashSet<Id>,
) -> Result<Vec<Vec<u8>>> {
    let mut dead = Vec::new();
    store.db.for_each_prefix(CF_LINEAGE, b"", |k, _| {
        let live = match k.first() {
            Some(&TAG_OUTPUT) | Some(&TAG_INPUT) => k
                .get(33..65)
                .and_then(Id::from_slice)
                .is_some_and(|r| runs.contains(&r)),
            Some(&TAG_HISTORY) => history_commit(k).is_some_and(|c| commits.contains(&c)),
            Some(&TAG_COMMIT_RUN) => {
                let r = k.get(1..33).and_then(Id::from_slice);
                let c = k.get(33..65).and_then(Id::from_slice);
                r.is_some_and(|r| runs.contains(&r)) && c.is_some_and(|c| commits.contains(&c))
            }
            _ => true, // not ours to judge
        };
        if !live {
            dead.push(k.to_vec());
        }
        Ok(true)
    })?;
    Ok(dead)
}

/// Flat entries of a stored tree, keyed by path under `prefix` (folders included); empty
/// when the tree is not in the store.
pub fn files_of_tree(store: &Store, id: &Id, prefix: &str) -> Result<BTreeMap<String, Flat>> {
    let mut out = BTreeMap::new();
    if store.has_object(ObjKind::Tree, id)? {
        crate::worktree::flatten(store, id, prefix, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_is_stable() {
        let f = Id::of(b"file");
        let r = Id::of(b"run");
        let c = Id::of(b"commit");
        let k = run_file_key(TAG_OUTPUT, &f, &r, "out/a.txt");
        assert_eq!(k[0], b'o');
        assert_eq!(&k[1..33], f.as_bytes());
        assert_eq!(&k[33..65], r.as_bytes());
        assert_eq!(&k[65..], b"out/a.txt");
        assert_eq!(parse_run_file_key(&k), Some((f, r, "out/a.txt".into())));
        let h = history_key("in/x", &f, &c);
        assert_eq!(&h[..6], b"hin/x\0");
        assert_eq!(&h[6..38], f.as_bytes());
        assert_eq!(history_commit(&h), Some(c));
        // A path is never a prefix match of a longer one.
        assert!(!history_key("in/xy", &f, &c).starts_with(&history_prefix("in/x", &f)));
        let rc = run_commit_key(&r, &c);
        assert_eq!(rc.len(), 65);
        assert_eq!(rc[0], b'c');
        // Pinned bytes (see schemas/lineage.md): a changed layout must bump LAYOUT_VERSION.
        assert_eq!(
            blake3::hash(&[k, h, rc].concat()).to_hex().as_str(),
            "d80c06356d2e7f5bec96c5429f23f292f6717625d41161a10b61bccd4032d04a"
        );
    }
}
