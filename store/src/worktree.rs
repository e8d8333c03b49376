//! The workspace side: scanning tracked paths in parallel, identifying files through the stat
//! cache, building trees from what was found, and flattening stored trees for comparison.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rayon::prelude::*;

use crate::db::CF_STAT;
use crate::error::{IoContext, Result, StoreError};
use crate::id::Id;
use crate::object::{EntryKind, Tree, TreeEntry};
use crate::paths;
use crate::statcache::{Stat, StatEntry};
use crate::store::Store;

/// Something found on disk under a tracked path.
#[derive(Clone, Debug)]
pub struct ScanItem {
    pub rel: String,
    pub kind: EntryKind,
    pub stat: Stat,
}

/// A path's state, on disk or in a tree. Directories carry their tree id when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flat {
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub id: Id,
}

impl Flat {
    pub fn from_entry(e: &TreeEntry) -> Flat {
        Flat {
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            id: e.id,
        }
    }

    /// The same, from a decoded tree's borrowed entry.
    pub fn from_ref(e: &crate::object::EntryRef) -> Flat {
        Flat {
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            id: e.id,
        }
    }

    /// Same content for the purpose of status (directories compare by contents elsewhere).
    pub fn same(&self, other: &Flat) -> bool {
        self.kind == other.kind && self.id == other.id && self.mode == other.mode
    }
}

pub fn file_mode(st_mode: u32) -> u32 {
    if st_mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// The kind of a directory entry; `None` for sockets, fifos and devices (not data).
pub fn kind_of(ft: &fs::FileType) -> Option<EntryKind> {
    if ft.is_symlink() {
        Some(EntryKind::Symlink)
    } else if ft.is_dir() {
        Some(EntryKind::Dir)
    } else if ft.is_file() {
        Some(EntryKind::File)
    } else {
        None // sockets, fifos, devices: not data
    }
}

/// Everything under `rel` (a file, symlink or folder), found with a parallel walk. A missing
/// path yields nothing. Folders are listed too, so empty ones survive.
pub fn scan(root: &Path, rel: &str) -> Result<Vec<ScanItem>> {
    let abs = paths::abs(root, rel)?;
    // What lies beyond a symlinked folder may be outside the project, and git's and dvx's
    // own files are never data: as if absent.
    if paths::is_reserved(rel) || paths::symlinked_parent(root, rel).is_some() {
        return Ok(Vec::new());
    }
    let meta = match fs::symlink_metadata(&abs) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&abs, e)),
    };
    let Some(kind) = kind_of(&meta.file_type()) else {
        return Ok(Vec::new());
    };
    let mut out = vec![ScanItem {
        rel: rel.to_string(),
        kind,
        stat: Stat::of(&meta),
    }];
    if kind == EntryKind::Dir {
        out.extend(walk_dir(&abs, rel)?);
    }
    Ok(out)
}

fn walk_dir(abs: &Path, rel: &str) -> Result<Vec<ScanItem>> {
    let mut items = Vec::new();
    let mut subdirs = Vec::new();
    for ent in fs::read_dir(abs).at(abs)? {
        let ent = ent.at(abs)?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            return Err(StoreError::InvalidPath {
                path: ent.path().to_string_lossy().into_owned(),
                reason: "the name is not valid UTF-8".into(),
            });
        };
        // Reserved names (a nested `.git`, temp files) are never data: skipped, not refused.
        let child_rel = paths::join(rel, name);
        if paths::is_reserved(&child_rel) {
            continue;
        }
        // DirEntry::metadata does not follow symlinks.
        let meta = ent.metadata().at(ent.path())?;
        let Some(kind) = kind_of(&meta.file_type()) else {
            continue;
        };
        if kind == EntryKind::Dir {
            subdirs.push((ent.path(), child_rel.clone()));
        }
        items.push(ScanItem {
            rel: child_rel,
            kind,
            stat: Stat::of(&meta),
        });
    }
    let nested: Vec<Vec<ScanItem>> = subdirs
        .par_iter()
        .map(|(a, r)| walk_dir(a, r))
        .collect::<Result<_>>()?;
    for n in nested {
        items.extend(n);
    }
    Ok(items)
}

/// Stat-cache entries under `rel`.
pub fn load_stat_cache(store: &Store, rel: &str) -> Result<HashMap<String, StatEntry>> {
    let mut out = HashMap::new();
    store.db.for_each_prefix(CF_STAT, rel.as_bytes(), |k, v| {
        let path = String::from_utf8_lossy(k);
        if paths::is_under(&path, rel) {
            if let Some(e) = StatEntry::decode(v) {
                out.insert(path.into_owned(), e);
            }
        }
        Ok(true)
    })?;
    Ok(out)
}

/// What identifying the workspace found: each path's state, and new stat-cache entries for
/// the files that had to be read.
pub struct Identified {
    pub files: BTreeMap<String, Flat>,
    pub cache_updates: Vec<(String, StatEntry)>,
    pub bytes_read: u64,
    pub files_read: u64,
}

/// Give every scanned file and symlink an id: from the stat cache when its metadata is
/// unchanged, otherwise by `read` (which hashes, and stores when adding). Folders get a
/// placeholder id; their real id comes from `build_tree`.
pub fn identify<F>(
    root: &Path,
    items: Vec<ScanItem>,
    cache: &HashMap<String, StatEntry>,
    read: F,
    progress: &dyn crate::Progress,
) -> Result<Identified>
where
    F: Fn(&Path, u64, Option<Id>) -> Result<(Id, u64, bool)> + Sync,
{
    progress.start("hashing", items.len() as u64);
    let results: Vec<(String, Flat, Option<StatEntry>, u64, bool)> = items
        .into_par_iter()
        .map(|it| {
            let abs = root.join(&it.rel);
            let r = match it.kind {
                EntryKind::Dir => (
                    it.rel,
                    Flat {
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        size: 0,
                        id: Id([0; 32]),
                    },
                    None,
                    0,
                    false,
                ),
                EntryKind::Symlink => {
                    let target = crate::ingest::link_target_checked(&abs, &it.rel)?;
                    let bytes = target.as_bytes();
                    let flat = Flat {
                        kind: EntryKind::Symlink,
                        mode: 0o777,
                        size: bytes.len() as u64,
                        id: read_symlink_id(bytes),
                    };
                    (it.rel, flat, None, 0, false)
                }
                EntryKind::File => {
                    let cached = cache.get(&it.rel).and_then(|e| e.lookup(&it.stat));
                    let (id, size, was_read) = read(&abs, it.stat.size, cached)?;
                    let fresh = cached.is_none();
                    let flat = Flat {
                        kind: EntryKind::File,
                        mode: file_mode(it.stat.mode),
                        size,
                        id,
                    };
                    let entry = fresh.then(|| StatEntry::new(it.stat, id));
                    (
                        it.rel,
                        flat,
                        entry,
                        if was_read { size } else { 0 },
                        was_read,
                    )
                }
            };
            progress.inc(1);
            Ok(r)
        })
        .collect::<Result<_>>()?;
    progress.finish();
    let mut out = Identified {
        files: BTreeMap::new(),
        cache_updates: Vec::new(),
        bytes_read: 0,
        files_read: 0,
    };
    for (rel, flat, entry, n, was_read) in results {
        if let Some(e) = entry {
            out.cache_updates.push((rel.clone(), e));
        }
        out.files_read += u64::from(was_read);
        out.bytes_read += n;
        out.files.insert(rel, flat);
    }
    Ok(out)
}

/// A symlink is stored as the bytes of its target, so its id is their hash.
fn read_symlink_id(target: &[u8]) -> Id {
    Id::of(target)
}

/// A symlink's target as stored (checked UTF-8 by `identify`).
pub fn link_target(abs: &Path) -> Result<Vec<u8>> {
    let t = fs::read_link(abs).at(abs)?;
    Ok(t.as_os_str().as_encoded_bytes().to_vec())
}

/// Build the tree for `rel` from identified paths (all under `rel`), writing each tree with
/// `put`. Returns the entry for `rel` itself, or `None` if nothing is there.
pub fn build_tree(
    rel: &str,
    files: &BTreeMap<String, Flat>,
    put: &dyn Fn(&Tree) -> Id,
) -> Result<Option<Flat>> {
    let Some(top) = files.get(rel) else {
        return Ok(None);
    };
    if top.kind != EntryKind::Dir {
        return Ok(Some(*top));
    }
    enum Node {
        Leaf(Flat),
        Dir(BTreeMap<String, Node>),
    }
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    for (path, flat) in files.range(rel.to_string()..) {
        if !paths::is_under(path, rel) {
            break;
        }
        if path == rel {
            continue;
        }
        let sub = if rel.is_empty() {
            path.as_str()
        } else {
            &path[rel.len() + 1..]
        };
        let mut parts = sub.split('/').peekable();
        let mut cur = &mut tree;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                if flat.kind == EntryKind::Dir {
                    cur.entry(part.to_string())
                        .or_insert_with(|| Node::Dir(BTreeMap::new()));
                } else {
                    cur.insert(part.to_string(), Node::Leaf(*flat));
                }
            } else {
                let next = cur
                    .entry(part.to_string())
                    .or_insert_with(|| Node::Dir(BTreeMap::new()));
                cur = match next {
                    Node::Dir(m) => m,
                    // The walk lists a folder before its contents, so a leaf here is impossible.
                    Node::Leaf(_) => {
                        return Err(StoreError::InvalidPath {
                            path: path.clone(),
                            reason: "a file and a folder with the same name".into(),
                        })
                    }
                };
            }
        }
    }
    fn fold(m: BTreeMap<String, Node>, put: &dyn Fn(&Tree) -> Id) -> Result<Flat> {
        let mut entries = Vec::with_capacity(m.len());
        for (name, node) in m {
            let f = match node {
                Node::Leaf(f) => f,
                Node::Dir(sub) => fold(sub, put)?,
            };
            entries.push(TreeEntry {
                name,
                kind: f.kind,
                mode: f.mode,
                size: f.size,
                id: f.id,
            });
        }
        let t = Tree::new(entries)?;
        let size = t.total_size();
        Ok(Flat {
            kind: EntryKind::Dir,
            mode: 0o755,
            size,
            id: put(&t),
        })
    }
    fold(tree, put).map(Some)
}

/// Every path in the tree `id`, each prefixed with `prefix`, folders included.
pub fn flatten(
    store: &Store,
    id: &Id,
    prefix: &str,
    out: &mut BTreeMap<String, Flat>,
) -> Result<()> {
    let tree = store.get_tree(id)?;
    for e in &tree.entries {
        let p = paths::join(prefix, &e.name);
        out.insert(p.clone(), Flat::from_entry(e));
        if e.kind == EntryKind::Dir {
            flatten(store, &e.id, &p, out)?;
        }
    }
    Ok(())
}

/// The entry at `rel` in the tree `root` ("" is the root itself, as a folder).
pub fn lookup(store: &Store, root: &Id, rel: &str) -> Result<Option<Flat>> {
    if rel.is_empty() {
        let t = store.get_tree(root)?;
        return Ok(Some(Flat {
            kind: EntryKind::Dir,
            mode: 0o755,
            size: t.total_size(),
            id: *root,
        }));
    }
    let mut cur = *root;
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        let t = store.get_tree(&cur)?;
        let Some(e) = t.get(part) else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            return Ok(Some(Flat::from_entry(e)));
        }
        if e.kind != EntryKind::Dir {
            return Ok(None);
        }
        cur = e.id;
    }
    Ok(None)
}

/// Flatten `rel` (and everything under it) from a stored root tree.
pub fn flatten_path(
    store: &Store,
    root: &Id,
    rel: &str,
    out: &mut BTreeMap<String, Flat>,
) -> Result<()> {
    if let Some(f) = lookup(store, root, rel)? {
        out.insert(rel.to_string(), f);
        if f.kind == EntryKind::Dir {
            flatten(store, &f.id, rel, out)?;
        }
    }
    Ok(())
}

/// Replace or remove entries at several paths of a root tree at once, writing only the trees on
/// those paths. Folders left empty by a removal are pruned. Returns the new root tree id.
pub fn edit_tree(
    store: &Store,
    base: Option<&Id>,
    edits: &BTreeMap<String, Option<Flat>>,
    put: &dyn Fn(&Tree) -> Id,
) -> Result<Id> {
    fn apply(
        store: &Store,
        base: Option<&Id>,
        edits: &[(Vec<&str>, Option<Flat>)],
        put: &dyn Fn(&Tree) -> Id,
    ) -> Result<Option<Flat>> {
        let mut entries: BTreeMap<String, TreeEntry> = match base {
            Some(id) => store
                .get_tree(id)?
                .entries
                .into_iter()
                .map(|e| (e.name.clone(), e))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut i = 0;
        while i < edits.len() {
            let name = edits[i].0[0];
            let mut j = i;
            while j < edits.len() && edits[j].0[0] == name {
                j += 1;
            }
            let group = &edits[i..j];
            let new = if group.len() == 1 && group[0].0.len() == 1 {
                group[0].1
            } else {
                let sub_base = entries
                    .get(name)
                    .filter(|e| e.kind == EntryKind::Dir)
                    .map(|e| e.id);
                let rest: Vec<(Vec<&str>, Option<Flat>)> = group
                    .iter()
                    .filter(|(p, _)| p.len() > 1)
                    .map(|(p, f)| (p[1..].to_vec(), *f))
                    .collect();
                apply(store, sub_base.as_ref(), &rest, put)?
            };
            match new {
                Some(f) => {
                    entries.insert(
                        name.to_string(),
                        TreeEntry {
                            name: name.to_string(),
                            kind: f.kind,
                            mode: f.mode,
                            size: f.size,
                            id: f.id,
                        },
                    );
                }
                None => {
                    entries.remove(name);
                }
            }
            i = j;
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let t = Tree::new(entries.into_values().collect())?;
        Ok(Some(Flat {
            kind: EntryKind::Dir,
            mode: 0o755,
            size: t.total_size(),
            id: put(&t),
        }))
    }
    let list: Vec<(Vec<&str>, Option<Flat>)> = edits
        .iter()
        .map(|(p, f)| (p.split('/').collect(), *f))
        .collect();
    match apply(store, base, &list, put)? {
        Some(f) => Ok(f.id),
        None => Ok(put(&Tree::default())),
    }
}

/// Give a restored file the permissions a content store can vouch for: executable (any `x`
/// bit in `mode`) or not, within the umask, as git does. Whatever else a tree may carry
/// (setuid, setgid, sticky, write for others) is never applied.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(restored_mode(mode))).at(path)
}

/// The permission bits `set_mode` gives a file recorded with `mode`.
pub fn restored_mode(mode: u32) -> u32 {
    let full = if mode & 0o111 != 0 { 0o777 } else { 0o666 };
    full & !umask()
}

/// This process's umask, read once (from /proc: setting it to read it would race with
/// threads creating files).
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o022)
            & 0o777
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_modes_keep_only_the_executable_bit() {
        let u = umask();
        assert_eq!(restored_mode(0o644), 0o666 & !u);
        assert_eq!(restored_mode(0o755), 0o777 & !u);
        // Hostile modes: never setuid, setgid, sticky; write for others only if the umask allows.
        assert_eq!(restored_mode(0o6777), 0o777 & !u);
        assert_eq!(restored_mode(0o4644), 0o666 & !u);
        assert_eq!(restored_mode(0o1000), 0o666 & !u);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, "x").unwrap();
        set_mode(&f, 0o106777).unwrap();
        let m = fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(m, 0o777 & !u, "{m:o}");
        assert_eq!(m & 0o7000, 0);
    }
}
