//! The data workflow end to end: init, add, status, commit, log, diff, checkout, branch, tag,
//! ls, cat, rm, gc, fsck.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::*;

#[test]
fn init_inside_git_ignores_internals_and_outside_git_works() {
    let p = Project::new();
    assert!(p.exists(".dvx/config.toml"));
    let gi = String::from_utf8(p.read(".dvx/.gitignore")).unwrap();
    assert!(gi.contains("/db/") && gi.contains("/packs/"), "{gi}");
    // git sees the config but none of the store.
    p.write("x.txt", "x");
    let out = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(p.path())
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains(".dvx/config.toml"), "{s}");
    assert!(!s.contains(".dvx/db") && !s.contains(".dvx/packs"), "{s}");

    let q = Project::without_git();
    q.write("a.csv", "a,b\n1,2\n");
    q.dvx(&["add", "a.csv"]).ok();
    assert_eq!(strs(&q.status()["tracked"]), vec!["a.csv"]);
    // A second init is refused and changes nothing.
    let err = q.dvx(&["init"]).fails();
    assert!(err.contains("already a dvx project"), "{err}");
}

#[test]
fn add_file_id_is_blake3_of_content_and_lock_pins_it() {
    let p = Project::new();
    let data = b"id,value\n1,3.5\n2,4.25\n".repeat(1000);
    p.write("data/raw.csv", &data);
    let r = p
        .dvx(&["add", "data/raw.csv", "-m", "raw data", "--json"])
        .ok()
        .json();
    assert_eq!(r["files"], 1);
    let lock: serde_json::Value = serde_json::from_slice(&p.read("dvx.lock")).unwrap();
    let expected = blake3::hash(&data).to_hex().to_string();
    assert_eq!(lock["paths"]["data/raw.csv"]["id"], expected.as_str());
    assert_eq!(lock["paths"]["data/raw.csv"]["size"], data.len());
    assert_eq!(lock["commit"], p.head().as_str());
    // ls shows the same id; cat gives the bytes back.
    let ls = p.dvx(&["ls", "HEAD", "data", "--json"]).ok().json();
    assert_eq!(ls[0]["id"], expected.as_str());
    let cat = p.dvx(&["cat", "HEAD:data/raw.csv"]).ok();
    assert_eq!(cat.out.stdout, data);
    // The data is git-ignored; dvx.lock is for git.
    let gi = String::from_utf8(p.read(".gitignore")).unwrap();
    assert!(gi.lines().any(|l| l == "/data/raw.csv"), "{gi}");
    let log = p.dvx(&["log", "--json"]).ok().json();
    assert_eq!(log[0]["message"], "raw data");
    assert_eq!(log[0]["author"]["name"], "Tester");
    assert_eq!(log[0]["roots"][0], "data/raw.csv");
    p.assert_fsck_clean();
}

#[test]
fn status_reports_modified_deleted_new_and_commit_snapshots() {
    let p = Project::new();
    for i in 0..20 {
        p.write(&format!("images/{i:02}.bin"), noise(3000 + i, i as u64));
    }
    p.dvx(&["add", "images"]).ok();
    let st = p.status();
    assert_eq!(st["clean"], true, "{st}");

    p.write("images/03.bin", b"changed");
    fs::remove_file(p.p("images/07.bin")).unwrap();
    p.write("images/sub/new.bin", b"new file");
    let st = p.status();
    assert_eq!(strs(&st["modified"]), vec!["images/03.bin"]);
    assert_eq!(strs(&st["deleted"]), vec!["images/07.bin"]);
    assert_eq!(strs(&st["new"]), vec!["images/sub/new.bin"]);
    assert_eq!(st["clean"], false);
    // `diff` with no revision compares HEAD with the workspace, the same way.
    let d = p.dvx(&["diff", "--json"]).ok().json();
    let kinds: Vec<(&str, &str)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("images/03.bin", "modified"),
            ("images/07.bin", "removed"),
            ("images/sub/new.bin", "added")
        ]
    );
    assert_eq!(d[0]["new_size"], 7);

    let before = p.head();
    let c = p
        .dvx(&["commit", "-m", "edit images", "--json"])
        .ok()
        .json();
    assert_eq!(c["files"], 20);
    assert_eq!(
        c["files_read"], 2,
        "only the changed and new files are read: {c}"
    );
    assert_eq!(p.status()["clean"], true);
    let again = p.dvx(&["commit"]).ok().stdout();
    assert!(again.contains("nothing to commit"), "{again}");

    let d = p.dvx(&["diff", &before, "HEAD", "--json"]).ok().json();
    let summary: Vec<(String, String)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().into(),
                c["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("images/03.bin".into(), "modified".into()),
            ("images/07.bin".into(), "removed".into()),
            ("images/sub/new.bin".into(), "added".into())
        ]
    );
    assert_eq!(d[0]["new_size"], 7);
    p.assert_fsck_clean();
}

#[test]
fn checkout_restores_exact_bytes_and_modes_and_refuses_to_lose_work() {
    let p = Project::new();
    p.write("d/a.txt", "version 1\n");
    p.write("d/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(p.p("d/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    p.write("d/empty/.keep", "");
    p.dvx(&["add", "d", "-m", "v1"]).ok();
    let v1 = p.head();
    p.dvx(&["tag", "v1"]).ok();

    p.write("d/a.txt", "version 2\n");
    p.write("d/b.txt", "only in v2\n");
    fs::remove_file(p.p("d/run.sh")).unwrap();
    p.dvx(&["commit", "-m", "v2"]).ok();

    // Uncommitted change that checkout would overwrite: refused, nothing touched.
    p.write("d/a.txt", "local edit\n");
    let err = p.dvx(&["checkout", "v1"]).fails();
    assert!(
        err.contains("uncommitted changes") && err.contains("d/a.txt"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(p.read("d/a.txt"), b"local edit\n");
    assert!(p.p("d/b.txt").exists());

    let r = p.dvx(&["checkout", "v1", "--force", "--json"]).ok().json();
    assert_eq!(r["commit"], v1.as_str());
    assert_eq!(p.read("d/a.txt"), b"version 1\n");
    assert!(!p.exists("d/b.txt"), "files not in v1 are removed");
    let mode = fs::metadata(p.p("d/run.sh")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(p.status()["clean"], true);
    assert_eq!(
        p.status()["branch"],
        serde_json::Value::Null,
        "tag checkout detaches HEAD"
    );

    // Back to the branch writes only what differs.
    let r = p.dvx(&["checkout", "main", "--json"]).ok().json();
    assert_eq!(r["branch"], "main");
    assert_eq!(r["written"], 2, "{r}"); // a.txt and b.txt
    assert_eq!(r["deleted"], 1, "{r}"); // run.sh
    assert_eq!(p.read("d/b.txt"), b"only in v2\n");
    let lock: serde_json::Value = serde_json::from_slice(&p.read("dvx.lock")).unwrap();
    assert_eq!(lock["commit"], p.head().as_str());

    // One path from an old commit, HEAD stays.
    p.dvx(&["checkout", "v1", "d/a.txt"]).ok();
    assert_eq!(p.read("d/a.txt"), b"version 1\n");
    assert_eq!(strs(&p.status()["modified"]), vec!["d/a.txt"]);
    p.assert_fsck_clean();
}

#[test]
fn checkout_without_rev_follows_dvx_lock_after_git_checkout() {
    let p = Project::new();
    p.write("data.csv", "a\n1\n");
    p.dvx(&["add", "data.csv"]).ok();
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "code v1"]);
    p.write("data.csv", "a\n2\n");
    p.dvx(&["commit"]).ok();
    git(p.path(), &["commit", "-qam", "code v2"]);
    // The commit records the code commit it went with.
    let log = p.dvx(&["log", "--json"]).ok().json();
    assert_eq!(log[0]["git"]["dirty"], false);
    assert_eq!(log[0]["git"]["commit"].as_str().map(str::len), Some(40));

    git(p.path(), &["checkout", "-q", "HEAD~1"]);
    let st = p.status();
    assert!(
        st["lock_commit"].is_string(),
        "status notices dvx.lock differs: {st}"
    );
    p.dvx(&["checkout"]).ok();
    assert_eq!(p.read("data.csv"), b"a\n1\n");
}

#[test]
fn works_from_subfolders_with_relative_paths() {
    let p = Project::new();
    p.write("a/b/c.txt", "c");
    p.write("a/other.txt", "o");
    p.dvx_in("a", &["add", "b/c.txt", "other.txt"]).ok();
    let st = p.dvx_in("a/b", &["status", "--json"]).ok().json();
    assert_eq!(strs(&st["tracked"]), vec!["a/b/c.txt", "a/other.txt"]);
    let cat = p.dvx_in("a/b", &["cat", "HEAD:c.txt"]).ok();
    assert_eq!(cat.out.stdout, b"c");
    p.write("a/b/c.txt", "changed");
    let text = p.dvx_in("a/b", &["status"]).ok().stdout();
    assert!(
        text.contains("modified  c.txt"),
        "paths shown relative to where the user stands: {text}"
    );
    p.dvx_in("a/b", &["rm", "c.txt"]).ok();
    assert_eq!(strs(&p.status()["tracked"]), vec!["a/other.txt"]);
    assert!(p.exists("a/b/c.txt"), "rm keeps the file");
    let gi = String::from_utf8(p.read(".gitignore")).unwrap();
    assert!(
        !gi.contains("/a/b/c.txt") && gi.contains("/a/other.txt"),
        "{gi}"
    );
}

#[test]
fn globs_spaces_unicode_and_deep_trees() {
    let p = Project::new();
    p.write("in/one file.csv", "1");
    p.write("in/zwei-ü.csv", "2");
    p.write("in/skip.txt", "3");
    p.dvx(&["add", "in/*.csv"]).ok();
    let mut tracked = strs(&p.status()["tracked"]);
    tracked.sort();
    assert_eq!(tracked, vec!["in/one file.csv", "in/zwei-ü.csv"]);

    let deep: String = (0..60).map(|i| format!("d{i}/")).collect();
    p.write(&format!("{deep}leaf.txt"), "deep");
    p.dvx(&["add", "d0"]).ok();
    fs::remove_dir_all(p.p("d0")).unwrap();
    fs::remove_file(p.p("in/one file.csv")).unwrap();
    p.dvx(&["checkout", "HEAD"]).ok();
    assert_eq!(p.read(&format!("{deep}leaf.txt")), b"deep");
    assert_eq!(p.read("in/one file.csv"), b"1");
}

#[test]
fn symlinks_inside_are_stored_as_links() {
    let p = Project::new();
    p.write("d/target.txt", "t");
    std::os::unix::fs::symlink("target.txt", p.p("d/link")).unwrap();
    p.dvx(&["add", "d"]).ok();
    let ls = p.dvx(&["ls", "HEAD", "d", "--json"]).ok().json();
    let link = ls
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "d/link")
        .unwrap()
        .clone();
    assert_eq!(link["kind"], "symlink");
    fs::remove_file(p.p("d/link")).unwrap();
    p.dvx(&["checkout", "HEAD"]).ok();
    assert_eq!(
        fs::read_link(p.p("d/link")).unwrap().to_str(),
        Some("target.txt")
    );
}

#[test]
fn big_file_edits_store_only_changed_chunks() {
    let p = Project::new();
    let mut data = noise(12 << 20, 1);
    p.write("big.bin", &data);
    p.dvx(&["add", "big.bin"]).ok();
    let first = p.pack_bytes();
    assert!(first >= 12 << 20, "random data is stored whole");
    // Append 1%.
    data.extend(noise(120_000, 2));
    p.write("big.bin", &data);
    p.dvx(&["add", "big.bin"]).ok();
    let grown = p.pack_bytes() - first;
    assert!(grown < 3 * 1024 * 1024, "append stored {grown} bytes");
    // Edit a few bytes in the middle.
    data[6 << 20] ^= 0xff;
    p.write("big.bin", &data);
    p.dvx(&["commit"]).ok();
    let grown2 = p.pack_bytes() - first - grown;
    assert!(
        grown2 < 5 * 1024 * 1024,
        "a one-byte edit stored {grown2} bytes"
    );
    // Every version comes back byte-exact.
    let id = blake3::hash(&data).to_hex().to_string();
    let ls = p.dvx(&["ls", "HEAD", "big.bin", "--json"]).ok().json();
    assert_eq!(ls[0]["id"], id.as_str());
    fs::remove_file(p.p("big.bin")).unwrap();
    p.dvx(&["checkout", "HEAD~2", "--force"]).ok();
    assert_eq!(p.read("big.bin"), noise(12 << 20, 1));
    p.assert_fsck_clean();
}

#[test]
fn branches_tags_and_log() {
    let p = Project::new();
    p.write("x", "1");
    p.dvx(&["add", "x"]).ok();
    p.dvx(&["branch", "exp"]).ok();
    p.dvx(&["checkout", "exp"]).ok();
    p.write("x", "2");
    p.dvx(&["commit", "-m", "on exp"]).ok();
    let b = p.dvx(&["branch", "--json"]).ok().json();
    let names: Vec<(String, bool)> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, vec![("exp".into(), true), ("main".into(), false)]);
    let err = p.dvx(&["branch", "-d", "exp"]).fails();
    assert!(err.contains("checked out"), "{err}");
    p.dvx(&["checkout", "main"]).ok();
    assert_eq!(p.read("x"), b"1");
    p.dvx(&["tag", "t1", "exp"]).ok();
    let err = p.dvx(&["tag", "t1"]).fails();
    assert!(err.contains("already exists"), "{err}");
    let log = p.dvx(&["log", "exp", "--json"]).ok().json();
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert!(strs(&log[0]["refs"]).contains(&"tag: t1".to_string()));
    let short = &log[1]["id"].as_str().unwrap()[..8];
    assert_eq!(p.dvx(&["cat", &format!("{short}:x")]).ok().out.stdout, b"1");
    assert_eq!(p.dvx(&["cat", "exp~1:x"]).ok().out.stdout, b"1");
    p.dvx(&["branch", "-d", "exp"]).ok();
    p.dvx(&["tag", "-d", "t1"]).ok();
    p.dvx(&["cat", "exp:x"]).fails();
}

#[test]
fn gc_deletes_only_unreachable_data() {
    let p = Project::new();
    p.write("keep.bin", noise(300_000, 5));
    p.write("tmp.bin", noise(400_000, 6));
    p.dvx(&["add", "keep.bin", "tmp.bin"]).ok();
    // Rewrite history so tmp.bin's data is reachable from nothing: a fresh branch without it.
    p.dvx(&["rm", "tmp.bin"]).ok();
    let dry = p.dvx(&["gc", "--dry-run", "--json"]).ok().json();
    assert_eq!(
        dry["chunks_deleted"], 0,
        "history still reaches tmp.bin: {dry}"
    );
    // Now make the old commits unreachable: new project history from an orphan state.
    let before = p.pack_bytes();
    let r = p.dvx(&["gc", "--json"]).ok().json();
    assert_eq!(r["chunks_deleted"], 0);
    assert_eq!(p.pack_bytes(), before);
    p.assert_fsck_clean();

    // Content only a deleted branch reached goes away.
    p.dvx(&["branch", "side"]).ok();
    p.dvx(&["checkout", "side"]).ok();
    p.write("side.bin", noise(500_000, 7));
    p.dvx(&["add", "side.bin"]).ok();
    p.dvx(&["checkout", "main"]).ok();
    p.dvx(&["branch", "-d", "side"]).ok();
    let with_side = p.pack_bytes();
    let r = p.dvx(&["gc", "--json"]).ok().json();
    assert!(r["chunks_deleted"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        p.pack_bytes() < with_side - 400_000,
        "{} vs {with_side}",
        p.pack_bytes()
    );
    // Everything still reachable is intact.
    assert_eq!(
        p.dvx(&["cat", "HEAD~1:tmp.bin"]).ok().out.stdout,
        noise(400_000, 6)
    );
    assert_eq!(
        p.dvx(&["cat", "HEAD:keep.bin"]).ok().out.stdout,
        noise(300_000, 5)
    );
    p.assert_fsck_clean();
}

#[test]
fn help_has_examples_and_version_prints() {
    let p = Project::empty();
    for cmd in [
        "init", "add", "status", "commit", "rm", "log", "diff", "checkout", "branch", "tag", "ls",
        "cat", "gc", "fsck",
    ] {
        let h = p.dvx(&[cmd, "--help"]).ok().stdout();
        assert!(h.contains("Examples:"), "{cmd} --help lacks examples:\n{h}");
    }
    let v = p.dvx(&["--version"]).ok().stdout();
    assert!(v.starts_with("dvx "), "{v}");
}
