//! Checkout against stored trees crafted by hand: nothing is ever written outside the
//! project, nor into git's or dvx's own files.

use super::*;
use crate::db::{ObjKind, CF_OBJECTS};
use crate::object::{Commit, EntryKind, Person, Tree, TreeEntry};
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
