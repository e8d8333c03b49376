//! The folder-by-folder plan: what it holds for each combination of target, HEAD and disk.

use std::fs;

use super::*;
use crate::{Access, Quiet};

fn file(id: &[u8]) -> Flat {
    Flat {
        kind: EntryKind::File,
        mode: 0o644,
        size: id.len() as u64,
        id: Id::of(id),
    }
}

#[test]
fn conflicts_name_the_first_five_by_path_and_count_the_rest() {
    let mut c = Conflicts::default();
    assert!(c.take_error().is_none());
    for p in ["h", "b", "g", "a", "f", "e", "d", "c"] {
        c.add(p.to_string());
    }
    match c.take_error() {
        Some(StoreError::UncommittedChanges(named)) => {
            assert_eq!(named, ["a", "b", "c", "d", "e", "and 3 more"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plan_from_maps_deletes_other_kinds_and_writes_only_differences() {
    let dir = Flat {
        kind: EntryKind::Dir,
        mode: 0o755,
        size: 0,
        id: Id([0; 32]),
    };
    let want: BTreeMap<String, Flat> = [
        ("d".to_string(), dir),
        ("d/same".to_string(), file(b"same")),
        ("d/new".to_string(), file(b"new")),
        ("d/kind".to_string(), file(b"kind")),
        ("d/changed".to_string(), file(b"v2")),
    ]
    .into();
    // Paths on disk before, between and after the wanted ones.
    let work: BTreeMap<String, Flat> = [
        ("a-before".to_string(), file(b"a")),
        ("d/changed".to_string(), file(b"v1")),
        ("zz".to_string(), file(b"z")),
        ("d".to_string(), dir),
        ("d/same".to_string(), file(b"same")),
        ("d/gone".to_string(), file(b"gone")),
        ("d/kind".to_string(), dir),
        ("d/kind/x".to_string(), file(b"x")),
    ]
    .into();
    let plan = Plan::from_maps(&want, &work).unwrap();
    let deletes: Vec<&str> = plan.deletes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(deletes, ["a-before", "d/gone", "d/kind", "d/kind/x", "zz"]);
    let writes: Vec<&str> = plan.writes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(writes, ["d/changed", "d/kind", "d/new"]);
    assert_eq!(plan.dirs, ["d"]);
    assert_eq!(plan.unchanged, 1);
    // A reserved path in the maps is refused before anything is planned.
    let bad: BTreeMap<String, Flat> = [("x/.git".to_string(), file(b"x"))].into();
    assert!(matches!(
        Plan::from_maps(&bad, &work),
        Err(StoreError::ReservedPath { .. })
    ));
}

#[test]
fn check_child_refuses_reserved_names_where_they_are_reserved() {
    assert!(check_child("", "dvx.lock").is_err());
    assert!(check_child("d", "dvx.lock").is_ok());
    assert!(check_child("d", ".git").is_err());
    assert!(check_child("d/e", ".DVX").is_err());
    assert!(check_child("d", ".dvx-tmp-1-2").is_err());
    assert!(check_child("d", "data.csv").is_ok());
}

/// A project with `d/a`, `d/b` and `d/sub/c` committed.
fn project() -> (tempfile::TempDir, Repo, Id) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for (p, c) in [("d/a", "a"), ("d/b", "b"), ("d/sub/c", "c")] {
        fs::create_dir_all(root.join(p).parent().unwrap()).unwrap();
        fs::write(root.join(p), c).unwrap();
    }
    Repo::init(&root).unwrap();
    let repo = Repo::open(&root, Access::Write("test")).unwrap();
    repo.add(&["d".to_string()], None, &Quiet).unwrap();
    let tree = repo.head_state().unwrap().2.unwrap().tree;
    (dir, repo, tree)
}

fn paths_of<T>(v: &[(String, T)]) -> Vec<&str> {
    v.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn a_clean_workspace_at_the_target_plans_nothing() {
    let (_dir, repo, tree) = project();
    let plan = repo
        .plan_checkout(&tree, Some(&tree), &["d".to_string()], false)
        .unwrap();
    assert!(plan.deletes.is_empty() && plan.writes.is_empty() && plan.trees.is_empty());
    assert_eq!(plan.unchanged, 3);
    assert_eq!(plan.conflicts.count, 0);
}

#[test]
fn the_plan_holds_changes_missing_folders_and_conflicts() {
    let (dir, repo, tree) = project();
    let root = dir.path();
    // Edits: a rewritten (dirty), an untracked file, sub removed, b deleted.
    fs::write(root.join("d/a"), "edited").unwrap();
    fs::write(root.join("d/untracked"), "u").unwrap();
    fs::remove_dir_all(root.join("d/sub")).unwrap();
    fs::remove_file(root.join("d/b")).unwrap();
    let scope = ["d".to_string()];

    let plan = repo
        .plan_checkout(&tree, Some(&tree), &scope, false)
        .unwrap();
    assert_eq!(plan.conflicts.count, 2, "{plan:?}"); // d/a and d/untracked
    let plan = repo
        .plan_checkout(&tree, Some(&tree), &scope, true)
        .unwrap();
    assert_eq!(plan.conflicts.count, 0);
    assert_eq!(paths_of(&plan.deletes), ["d/untracked"]);
    assert_eq!(paths_of(&plan.writes), ["d/a", "d/b"]);
    // The missing folder is one item, not a path per file.
    assert_eq!(paths_of(&plan.trees), ["d/sub"]);
    assert_eq!(plan.tree_leaves, 1);
    assert_eq!(plan.unchanged, 0);

    // From nothing checked out (a fresh clone): no conflicts for what matches or is absent.
    let plan = repo.plan_checkout(&tree, None, &scope, false).unwrap();
    assert_eq!(plan.conflicts.count, 2);
}

#[test]
fn a_folder_missing_on_disk_with_a_reserved_name_inside_is_refused() {
    use crate::object::TreeEntry;
    let (dir, repo, _) = project();
    let txn = repo.store.txn().unwrap();
    let blob = txn.put_bytes(b"x").unwrap();
    let inner = Tree::new(vec![TreeEntry {
        name: ".git".into(),
        kind: EntryKind::File,
        mode: 0o644,
        size: 1,
        id: blob,
    }])
    .unwrap();
    let inner_id = txn.put_tree(&inner);
    let top = Tree::new(vec![TreeEntry {
        name: "d".into(),
        kind: EntryKind::Dir,
        mode: 0o755,
        size: 1,
        id: inner_id,
    }])
    .unwrap();
    let top_id = txn.put_tree(&top);
    txn.commit().unwrap();
    fs::remove_dir_all(dir.path().join("d")).unwrap();
    let err = repo
        .plan_checkout(&top_id, None, &["d".to_string()], true)
        .unwrap_err();
    assert!(matches!(err, StoreError::ReservedPath { .. }), "{err}");
}
