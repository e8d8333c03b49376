//! What stored data may name and how it may be restored, checked wherever data enters the
//! store or the workspace: a fetch checks every tree and commit it brings before writing any
//! of it (dvx-remote's `incoming`, with these rules), checkout checks every path it writes,
//! fsck reports what slipped in before.
//!
//! The path rule itself (`.git`, `.dvx`, `dvx.lock`, temp names) is `paths::reserved`; this
//! module applies it to trees and commits, and adds the rule for modes.

use crate::id::Id;
use crate::object::{Commit, EntryKind, EntryRef, Tree};
use crate::paths;

/// The modes dvx writes into trees. Files: `0o644`, or `0o755` when executable. Folders:
/// `0o755`. Links have no permissions of their own: `0o777` as `add` records them, `0o644`
/// as older restores of linked pipeline outputs did. Anything else (setuid, setgid, sticky,
/// group- or world-writable, file type bits) never comes from dvx.
pub fn canonical_mode(kind: EntryKind, mode: u32) -> bool {
    match kind {
        EntryKind::File => mode == 0o644 || mode == 0o755,
        EntryKind::Dir => mode == 0o755,
        EntryKind::Symlink => mode == 0o777 || mode == 0o644,
    }
}

/// What is wrong with one tree entry, if anything: a reserved name (in a commit's top tree,
/// `top`, also `dvx.lock`) or a mode dvx never writes.
pub fn entry_problem(e: &EntryRef<'_>, top: bool) -> Option<String> {
    let reserved = if top {
        paths::reserved_top_name(e.name)
    } else {
        paths::reserved_name(e.name)
    };
    if let Some(r) = reserved {
        return Some(format!("a reserved name ({r})"));
    }
    if !canonical_mode(e.kind, e.mode) {
        return Some(format!(
            "mode {:o}, which dvx never writes for a {} (files are 644 or 755)",
            e.mode,
            e.kind.as_str()
        ));
    }
    None
}

/// fsck: what is wrong with the entries of one tree (named by entry, as the tree alone does
/// not know where it lies). A tree that does not decode yields nothing here.
pub fn tree_problems(id: Id, bytes: &[u8]) -> Vec<String> {
    match Tree::decode_ref(id, bytes) {
        Ok(entries) => entries
            .iter()
            .filter_map(|e| entry_problem(e, false).map(|p| format!("entry {:?}: {p}", e.name)))
            .collect(),
        // fsck reports a tree that does not decode on its own.
        Err(_) => Vec::new(),
    }
}

/// fsck: what is wrong with a commit's roots and the top-level names of its tree (`dvx.lock`;
/// the names reserved everywhere are reported with their tree).
pub fn commit_problems(c: &Commit, top: Option<&Tree>) -> Vec<String> {
    let mut out: Vec<String> = c
        .roots
        .iter()
        .filter_map(|r| {
            paths::check_tracked(r)
                .err()
                .map(|e| format!("root {r:?}: {e}"))
        })
        .collect();
    for e in top.map(|t| t.entries.as_slice()).unwrap_or(&[]) {
        if paths::reserved_name(&e.name).is_none() {
            if let Some(r) = paths::reserved_top_name(&e.name) {
                out.push(format!(
                    "top-level entry {:?}: a reserved name ({r})",
                    e.name
                ));
            }
        }
    }
    out
}

/// fsck: `commit_problems` with the commit's top tree read from the store.
pub fn stored_commit_problems(store: &crate::store::Store, c: &Commit) -> Vec<String> {
    commit_problems(c, store.get_tree(&c.tree).ok().as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::{commit, entry};

    #[test]
    fn modes() {
        assert!(canonical_mode(EntryKind::File, 0o644));
        assert!(canonical_mode(EntryKind::File, 0o755));
        for bad in [0o6777, 0o4755, 0o777, 0o666, 0o100644, 0o1755, 0] {
            assert!(!canonical_mode(EntryKind::File, bad), "{bad:o}");
        }
        assert!(canonical_mode(EntryKind::Dir, 0o755) && !canonical_mode(EntryKind::Dir, 0o777));
        assert!(canonical_mode(EntryKind::Symlink, 0o777));
    }

    #[test]
    fn fsck_names_reserved_entries_and_roots() {
        let t = Tree::new(vec![
            entry(".git", EntryKind::Dir, 0o755, Id::of(b"t")),
            entry("dvx.lock", EntryKind::File, 0o644, Id::of(b"l")),
            entry("ok", EntryKind::File, 0o4755, Id::of(b"o")),
        ])
        .unwrap();
        let p = tree_problems(t.id(), &t.encode());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("entry \".git\": a reserved name"), "{p:?}");
        assert!(p[1].starts_with("entry \"ok\": mode 4755"), "{p:?}");
        let c = commit(t.id(), &[".dvx/config.toml", "ok"]);
        let p = commit_problems(&c, Some(&t));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("root \".dvx/config.toml\""), "{p:?}");
        assert!(p[1].contains("\"dvx.lock\""), "{p:?}");
    }
}
