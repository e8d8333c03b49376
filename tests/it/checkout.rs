//! Checkout compares folder by folder: what it writes, deletes and refuses, with changes
//! spread over nested folders, kind changes and `only` paths.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;

/// Every entry under `dir` (not `.dvx`, `.git`): file contents, link targets, folders.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dir == base && (name == ".dvx" || name == ".git") {
                continue;
            }
            let path = e.path();
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = e.file_type().unwrap();
            let what = if ft.is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if ft.is_dir() {
                walk(base, &path, out);
                "dir".to_string()
            } else {
                let mode = fs::metadata(&path).unwrap().mode() & 0o111;
                format!(
                    "file {mode:o} {}",
                    String::from_utf8_lossy(&fs::read(&path).unwrap())
                )
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn temp_files(p: &Project) -> Vec<String> {
    snapshot(p.path())
        .into_keys()
        .filter(|k| k.contains(".dvx-tmp-"))
        .collect()
}

fn ino(p: &Project, rel: &str) -> u64 {
    fs::symlink_metadata(p.p(rel)).unwrap().ino()
}

/// 6 folders of 10 files under `data`, tagged `a`.
fn project_a() -> Project {
    let p = Project::new();
    for d in 0..6 {
        for f in 0..10 {
            p.write(&format!("data/d{d}/f{f}.txt"), format!("a {d} {f}\n"));
        }
    }
    p.write("data/old/deep/x.txt", "old deep\n");
    p.dvx(&["add", "data", "-m", "a"]).ok();
    p.dvx(&["tag", "a"]).ok();
    p
}

/// From `a`: 3 files rewritten, 2 deleted, 2 added, a nested folder added, a nested folder
/// and a whole folder removed; committed as `b` on main.
fn change_to_b(p: &Project) {
    for (d, f) in [(0, 1), (2, 5), (4, 9)] {
        p.write(&format!("data/d{d}/f{f}.txt"), format!("b {d} {f}\n"));
    }
    fs::remove_file(p.p("data/d1/f0.txt")).unwrap();
    fs::remove_file(p.p("data/d3/f3.txt")).unwrap();
    p.write("data/d1/new.txt", "new\n");
    p.write("data/d5/new.txt", "new 5\n");
    p.write("data/add/deeper/y.txt", "y\n");
    p.write("data/add/z.txt", "z\n");
    fs::remove_dir_all(p.p("data/old")).unwrap();
    fs::remove_dir_all(p.p("data/d4")).unwrap();
    p.dvx(&["commit", "-m", "b"]).ok();
}

#[test]
fn checkout_of_a_changed_subset_writes_only_what_differs() {
    let p = project_a();
    let state_a = snapshot(p.path());
    change_to_b(&p);
    let state_b = snapshot(p.path());
    let untouched = ino(&p, "data/d0/f0.txt");

    let r = p.dvx(&["checkout", "a", "--json"]).ok().json();
    // Back: 2 rewritten (d4's third is in d4), 2 deleted, d4's 10 files, old/deep/x.txt;
    // gone: the 2 added and the 2 in add/.
    assert_eq!(r["written"], 15, "{r}");
    assert_eq!(r["deleted"], 4, "{r}");
    assert_eq!(r["unchanged"], 61 - 15, "{r}");
    assert_eq!(snapshot(p.path()), state_a);
    assert!(!p.exists("data/add"), "a folder only in b is removed");
    assert_eq!(
        ino(&p, "data/d0/f0.txt"),
        untouched,
        "an unchanged file was rewritten"
    );
    assert_eq!(p.status()["clean"], true);
    assert!(temp_files(&p).is_empty(), "{:?}", temp_files(&p));

    let r = p.dvx(&["checkout", "main", "--json"]).ok().json();
    assert_eq!(r["written"], 6, "{r}"); // 2 rewritten, 2 added, add/z.txt, add/deeper/y.txt
    assert_eq!(r["deleted"], 13, "{r}"); // 2, d4's 10, old/deep/x.txt
    assert_eq!(r["branch"], "main");
    assert_eq!(snapshot(p.path()), state_b);
    assert!(!p.exists("data/old") && !p.exists("data/d4"));
    assert_eq!(ino(&p, "data/d0/f0.txt"), untouched);
    assert_eq!(p.status()["clean"], true);

    // Nothing to do: nothing written.
    let r = p.dvx(&["checkout", "main", "--json"]).ok().json();
    assert_eq!(
        (r["written"].as_u64(), r["deleted"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(r["bytes_written"], 0);
    p.assert_fsck_clean();
}

#[test]
fn checkout_refuses_a_dirty_file_before_changing_anything_and_force_overrides() {
    let p = project_a();
    change_to_b(&p);
    // Dirty, and a would overwrite it.
    p.write("data/d2/f5.txt", "local edit\n");
    // Dirty but already as a has it: no conflict, nothing to write.
    p.write("data/d0/f1.txt", "a 0 1\n");
    // Not tracked, in a tracked folder (a would delete it).
    p.write("data/d5/untracked.txt", "mine\n");
    let before = snapshot(p.path());
    let head = p.head();

    let err = p.dvx(&["checkout", "a"]).fails();
    assert!(err.contains("uncommitted changes"), "{err}");
    assert!(err.contains("data/d2/f5.txt"), "{err}");
    assert!(err.contains("data/d5/untracked.txt"), "{err}");
    assert!(!err.contains("data/d0/f1.txt"), "{err}");
    assert_eq!(
        snapshot(p.path()),
        before,
        "a refused checkout changed the workspace"
    );
    assert_eq!(p.head(), head);
    assert_eq!(p.status()["branch"], "main");

    let r = p.dvx(&["checkout", "a", "--force", "--json"]).ok().json();
    assert_eq!(p.read("data/d2/f5.txt"), b"a 2 5\n");
    assert_eq!(p.read("data/d0/f1.txt"), b"a 0 1\n");
    assert!(!p.exists("data/d5/untracked.txt"));
    // d0/f1.txt was already right: 15 as in a clean checkout, less that one.
    assert_eq!(r["written"], 14, "{r}");
    assert_eq!(p.status()["clean"], true);
    p.assert_fsck_clean();
}

#[test]
fn checkout_names_the_first_conflicts_and_counts_the_rest() {
    let p = project_a();
    change_to_b(&p);
    for f in 0..10 {
        p.write(&format!("data/d5/f{f}.txt"), "edit\n");
    }
    let err = p.dvx(&["checkout", "a"]).fails();
    assert!(
        err.contains("data/d5/f0.txt") && err.contains("data/d5/f4.txt"),
        "{err}"
    );
    assert!(!err.contains("data/d5/f5.txt"), "{err}");
    assert!(err.contains("and 5 more"), "{err}");
}

#[test]
fn checkout_changes_kinds_both_ways() {
    let p = Project::new();
    p.write("k/f2d", "file then folder\n");
    p.write("k/d2f/inner/deep.txt", "folder then file\n");
    p.write("k/plain", "plain\n");
    std::os::unix::fs::symlink("plain", p.p("k/link")).unwrap();
    p.dvx(&["add", "k", "-m", "a"]).ok();
    p.dvx(&["tag", "a"]).ok();
    let state_a = snapshot(p.path());

    fs::remove_file(p.p("k/f2d")).unwrap();
    p.write("k/f2d/x.txt", "now a folder\n");
    fs::remove_dir_all(p.p("k/d2f")).unwrap();
    p.write("k/d2f", "now a file\n");
    fs::remove_file(p.p("k/link")).unwrap();
    p.write("k/link", "now a file\n");
    fs::remove_file(p.p("k/plain")).unwrap();
    std::os::unix::fs::symlink("d2f", p.p("k/plain")).unwrap();
    p.dvx(&["commit", "-m", "b"]).ok();
    let state_b = snapshot(p.path());

    let r = p.dvx(&["checkout", "a", "--json"]).ok().json();
    assert_eq!(snapshot(p.path()), state_a);
    assert_eq!(r["written"], 4, "{r}");
    assert_eq!(r["deleted"], 4, "{r}");
    assert!(p
        .p("k/link")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(p.status()["clean"], true);
    p.dvx(&["checkout", "main"]).ok();
    assert_eq!(snapshot(p.path()), state_b);
    assert_eq!(p.status()["clean"], true);
    assert!(temp_files(&p).is_empty(), "{:?}", temp_files(&p));
    p.assert_fsck_clean();
}

#[test]
fn checkout_of_only_paths_leaves_the_rest_and_head() {
    let p = project_a();
    change_to_b(&p);
    let head = p.head();
    let r = p
        .dvx(&["checkout", "a", "data/d2", "data/old", "--json"])
        .ok()
        .json();
    assert_eq!(r["written"], 2, "{r}"); // d2/f5.txt, old/deep/x.txt
    assert_eq!(r["deleted"], 0, "{r}");
    assert_eq!(p.read("data/d2/f5.txt"), b"a 2 5\n");
    assert_eq!(p.read("data/old/deep/x.txt"), b"old deep\n");
    // Elsewhere b stays.
    assert_eq!(p.read("data/d0/f1.txt"), b"b 0 1\n");
    assert!(p.exists("data/add/z.txt") && !p.exists("data/d4"));
    assert_eq!(p.head(), head);
    let st = p.status();
    assert_eq!(strs(&st["modified"]), vec!["data/d2/f5.txt"]);
    assert_eq!(strs(&st["new"]), vec!["data/old/deep/x.txt"]);

    // A path only the current commit has: removed.
    let r = p.dvx(&["checkout", "a", "data/add", "--json"]).ok().json();
    assert_eq!(r["deleted"], 2, "{r}");
    assert!(!p.exists("data/add"));
    // A path neither has: refused.
    p.dvx(&["checkout", "a", "elsewhere"]).fails();
    p.assert_fsck_clean();
}

#[test]
fn checkout_into_an_empty_workspace_writes_every_folder() {
    let p = project_a();
    change_to_b(&p);
    fs::remove_dir_all(p.p("data")).unwrap();
    let r = p.dvx(&["checkout", "a", "--json"]).ok().json();
    assert_eq!(r["written"], 61, "{r}");
    assert_eq!(r["unchanged"], 0, "{r}");
    assert_eq!(p.read("data/old/deep/x.txt"), b"old deep\n");
    assert_eq!(p.read("data/d4/f9.txt"), b"a 4 9\n");
    assert_eq!(p.status()["clean"], true);
    assert!(temp_files(&p).is_empty(), "{:?}", temp_files(&p));
    // Written as stored: a second checkout writes nothing.
    let r = p.dvx(&["checkout", "a", "--json"]).ok().json();
    assert_eq!(r["written"], 0, "{r}");
    assert_eq!(r["unchanged"], 61, "{r}");
    p.assert_fsck_clean();
}
