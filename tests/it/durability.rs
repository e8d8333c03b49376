//! Damage and interruption: a damaged database is an error or a repair, never a quiet rollback;
//! a command killed at a chosen step (`DVX_FAULT`) is finished or undone by the next one.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// Run dvx with a fault point armed; it must die there as `kill -9` would leave it.
fn killed_at(p: &Project, point: &str, args: &[&str]) {
    let out = p
        .cmd_in("", args)
        .env("DVX_FAULT", point)
        .output()
        .expect("dvx runs");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "dvx {args:?} did not stop at {point}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x5a;
    fs::write(path, b).unwrap();
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn no_panic(r: &Run) {
    assert!(
        !r.stderr().contains("panicked"),
        "dvx panicked: {}",
        r.stderr()
    );
}

#[test]
fn damaged_write_ahead_log_is_an_error_not_a_rollback() {
    let p = Project::new();
    p.write("a.txt", "first");
    p.dvx(&["add", "a.txt", "-m", "first"]).ok();
    let first = p.head();
    // Killed after its commit was written, before anything was flushed: the commit lives only
    // in the write-ahead log.
    p.write("b.txt", "second");
    killed_at(&p, "before-lock", &["add", "b.txt", "-m", "second-commit"]);
    let logs = files_with_ext(&p.p(".dvx/db"), "log");
    let (log, at) = logs
        .iter()
        .find_map(|l| find(&fs::read(l).unwrap(), b"second-commit").map(|i| (l.clone(), i)))
        .expect("the killed command's commit is in a log file");
    flip(&log, at + 3);

    for args in [&["log"][..], &["status"], &["checkout", "--force", "HEAD"]] {
        let r = p.dvx(args);
        no_panic(&r);
        assert_eq!(
            r.out.status.code(),
            Some(3),
            "{args:?}: damaged data exits 3"
        );
        let err = r.fails();
        assert!(err.contains("is damaged"), "{args:?}: {err}");
        assert!(err.contains("dvx fsck --recover"), "{args:?}: {err}");
    }
    // Recovery is explicit and says what it dropped; the store is consistent afterwards.
    let r = p.dvx(&["fsck", "--recover"]);
    no_panic(&r);
    assert!(r.stderr().contains("dropped"), "{}", r.stderr());
    assert_eq!(p.head(), first);
    p.assert_fsck_clean();
    // Nothing on disk was lost: adding again makes the commit anew.
    p.dvx(&["add", "b.txt", "-m", "again"]).ok();
    assert_eq!(p.read("b.txt"), b"second");
    p.assert_fsck_clean();
}

#[test]
fn a_finished_command_leaves_nothing_in_the_log_to_damage() {
    let p = Project::new();
    p.write("a.txt", "first");
    p.dvx(&["add", "a.txt", "-m", "first"]).ok();
    p.write("b.txt", "second");
    p.dvx(&["add", "b.txt", "-m", "second-commit"]).ok();
    let head = p.head();
    for log in files_with_ext(&p.p(".dvx/db"), "log") {
        let b = fs::read(&log).unwrap();
        assert!(
            find(&b, b"second-commit").is_none(),
            "{} still holds the last commit after the command finished",
            log.display()
        );
    }
    assert_eq!(p.head(), head);
}

#[test]
fn killed_between_commit_and_lock_is_finished_by_the_next_command() {
    let p = Project::new();
    p.write("a.txt", "first");
    p.dvx(&["add", "a.txt"]).ok();
    p.write("b.txt", "second");
    killed_at(&p, "before-lock", &["add", "b.txt"]);
    let lock: serde_json::Value = serde_json::from_slice(&p.read("dvx.lock")).unwrap();
    assert!(
        lock["paths"].get("b.txt").is_none(),
        "the kill came too late"
    );

    // A reader notices, finishes the lock, and blames nobody.
    let r = p.dvx(&["status", "--json"]).ok();
    assert!(r.stderr().contains("rewrote"), "{}", r.stderr());
    let st = r.json();
    assert_eq!(st["clean"], true, "{st}");
    assert!(st["lock_commit"].is_null(), "{st}");
    let head = p.head();
    let lock: serde_json::Value = serde_json::from_slice(&p.read("dvx.lock")).unwrap();
    assert_eq!(lock["commit"], head.as_str());
    assert!(lock["paths"].get("b.txt").is_some(), "{lock}");
    p.assert_fsck_clean();

    // The same window in checkout: HEAD moved, the lock not yet.
    p.dvx(&["tag", "v2"]).ok();
    p.write("b.txt", "third");
    p.dvx(&["commit", "-m", "third"]).ok();
    killed_at(&p, "before-lock", &["checkout", "v2"]);
    // A writer finishes it too; checkout of the lock's commit then restores v2's data.
    p.dvx(&["checkout"]).ok();
    assert_eq!(p.read("b.txt"), b"second");
    let lock: serde_json::Value = serde_json::from_slice(&p.read("dvx.lock")).unwrap();
    assert_eq!(lock["commit"], head.as_str());
    assert_eq!(p.status()["clean"], true);
    p.assert_fsck_clean();
}

#[test]
fn killed_checkout_leaves_no_temp_files_in_the_workspace() {
    let p = Project::new();
    for i in 0..20 {
        p.write(&format!("data/f{i:02}.bin"), noise(5000, i));
    }
    p.dvx(&["add", "data"]).ok();
    p.dvx(&["tag", "v1"]).ok();
    for i in 0..20 {
        p.write(&format!("data/f{i:02}.bin"), noise(7000, 100 + i));
    }
    p.dvx(&["commit", "-m", "new"]).ok();
    killed_at(&p, "before-rename", &["checkout", "v1"]);
    let temps: Vec<String> = walk(p.path())
        .into_iter()
        .filter(|n| n.contains(".dvx-tmp-"))
        .collect();
    assert!(temps.is_empty(), "temp files in the workspace: {temps:?}");
    assert!(p.status()["clean"].as_bool().is_some());
    p.dvx(&["checkout", "v1"]).ok();
    assert_eq!(p.read("data/f03.bin"), noise(5000, 3));
    assert_eq!(p.status()["clean"], true);
    let left: Vec<_> = fs::read_dir(p.p(".dvx/tmp")).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    p.assert_fsck_clean();
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if e.file_name() == ".dvx" || e.file_name() == ".git" {
            continue;
        }
        out.push(path.to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// One byte flipped in the first data block of each table file, one file at a time, in a
/// fresh copy of the same project: each is either rebuilt (derivable data) or reported, by
/// fsck and by the commands that read it; never "all good" over damage, never a panic.
#[test]
fn a_flipped_byte_in_any_table_file_is_found() {
    let p = Project::new();
    for i in 0..200 {
        p.write(
            &format!("data/d{}/f{i:03}.txt", i % 4),
            format!("file {i}\n"),
        );
    }
    p.dvx(&["add", "data"]).ok();
    p.write("data/d0/f000.txt", "changed\n");
    p.dvx(&["commit", "-m", "second"]).ok();
    p.dvx(&["status"]).ok();
    let tables = files_with_ext(&p.p(".dvx/db"), "sst");
    assert!(tables.len() >= 4, "{tables:?}");
    let (mut repaired_stat, mut reported) = (0, 0);
    for table in &tables {
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let q = damaged_copy(&p, &name);
        let r = q.dvx(&["fsck", "--json"]);
        no_panic(&r);
        let j: serde_json::Value = serde_json::from_slice(&r.out.stdout).unwrap_or_default();
        let problems = j["problems"].as_array().map(Vec::len).unwrap_or(0);
        if r.out.status.success() {
            // Only derivable data may be damaged and still pass: fsck said what it rebuilt.
            assert_eq!(problems, 0, "{}", r.stdout());
            let repaired = j["repaired"].to_string();
            assert!(
                repaired.contains("rebuilt") || repaired.contains("cleared"),
                "{name}: fsck saw nothing: {}",
                r.stdout()
            );
            q.dvx(&["fsck"]).ok();
            assert_eq!(q.status()["clean"], true);
            if repaired.contains("stat cache") {
                repaired_stat += 1;
                // Without fsck, the next checkout rebuilds the stat cache by itself.
                let q = damaged_copy(&p, &name);
                let r = q.dvx(&["checkout", "--force", "HEAD"]);
                no_panic(&r);
                let err = r.stderr();
                r.ok();
                assert!(err.contains("stat cache"), "{err}");
                assert_eq!(q.read("data/d0/f000.txt"), b"changed\n");
                assert_eq!(q.status()["clean"], true);
                q.assert_fsck_clean();
            }
        } else {
            assert!(
                problems > 0 || r.stderr().contains("is damaged"),
                "{name}: fsck failed without saying why: {}{}",
                r.stdout(),
                r.stderr()
            );
            // The commands that need the damaged data say so in one line, with a hint.
            let r = q.dvx(&["log"]);
            no_panic(&r);
            reported += 1;
        }
    }
    assert!(repaired_stat >= 1, "no table of the stat cache was found");
    assert!(reported >= 1, "no damage to real data was reported");
}

/// A copy of `p` with one byte flipped early in its table file `name` (inside the first data
/// block).
fn damaged_copy(p: &Project, name: &str) -> Project {
    let q = Project::empty();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", p.path().display()))
        .arg(q.path())
        .status()
        .unwrap();
    assert!(st.success());
    flip(&q.p(".dvx/db").join(name), 20);
    q
}

/// A large add writes what it has stored in pieces before its commit. Killed after a piece,
/// it leaves stored objects that nothing names: fsck is clean, nothing is committed, and the
/// next add finishes the job.
#[test]
fn an_add_killed_between_pieces_commits_nothing_and_the_next_add_finishes() {
    let p = Project::new();
    p.write("a.txt", "first");
    p.dvx(&["add", "a.txt"]).ok();
    let before = p.head();
    for d in 0..4 {
        for f in 0..15 {
            p.write(&format!("data/d{d}/f{f}.txt"), format!("{d}/{f}\n"));
        }
    }
    let out = p
        .cmd_in("", &["add", "data"])
        .env("DVX_FAULT", "after-piece")
        .env("DVX_PIECE_BYTES", "1")
        .output()
        .expect("dvx runs");
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    assert_eq!(p.head(), before, "nothing committed");
    p.assert_fsck_clean();
    assert!(p.p(".dvx/packs").read_dir().unwrap().next().is_some());
    p.dvx(&["status"]).ok();
    p.dvx(&["add", "data"]).ok();
    assert_ne!(p.head(), before);
    fs::remove_dir_all(p.p("data")).unwrap();
    p.dvx(&["checkout", "HEAD"]).ok();
    assert_eq!(p.read("data/d3/f14.txt"), b"3/14\n");
    assert_eq!(p.read("data/d0/f0.txt"), b"0/0\n");
    p.assert_fsck_clean();
}
