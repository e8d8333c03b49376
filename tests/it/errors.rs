//! Bad input gets a clear one-line error with a hint, a non-zero exit, and changes nothing.

use std::fs;
use std::process::Command;

use crate::common::*;

/// stderr has one `error:` line and one `hint:` line.
fn assert_clear(err: &str, needle: &str) {
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.iter().filter(|l| l.starts_with("error: ")).count() == 1,
        "expected one error line:\n{err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(
        lines.iter().any(|l| l.starts_with("hint: ")),
        "no hint:\n{err}"
    );
}

#[test]
fn not_a_project() {
    let p = Project::empty();
    for args in [&["status"][..], &["add", "x"], &["log"]] {
        let err = p.dvx(args).fails();
        assert_clear(&err, "not a dvx project");
    }
    assert!(!p.exists(".dvx"));
}

#[test]
fn missing_and_outside_paths_change_nothing() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    let head = p.head();
    let err = p.dvx(&["add", "nope.csv"]).fails();
    assert_clear(&err, "nope.csv: no such file");
    let err = p.dvx(&["add", "no-match-*.csv"]).fails();
    assert_clear(&err, "no such file");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("o.txt"), "o").unwrap();
    let err = p
        .dvx(&["add", outside.path().join("o.txt").to_str().unwrap()])
        .fails();
    assert_clear(&err, "outside the project");
    let err = p.dvx(&["add", "../x"]).fails();
    assert_clear(&err, "outside the project");
    let err = p.dvx(&["add", ".dvx/config.toml"]).fails();
    assert_clear(&err, "dvx and git keep their own files");
    assert_eq!(p.head(), head, "no commit was made");
    p.assert_fsck_clean();
}

#[test]
fn unknown_revision() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    for args in [
        &["checkout", "nosuch"][..],
        &["log", "nosuch"],
        &["cat", "HEAD~5:a.txt"],
        &["diff", "abcdef12"],
    ] {
        let err = p.dvx(args).fails();
        assert_clear(&err, "unknown revision");
    }
    let err = p.dvx(&["cat", "HEAD:missing.txt"]).fails();
    assert_clear(&err, "not found in commit");
}

#[test]
fn unreadable_file() {
    let p = Project::new();
    p.write("d/ok.txt", "fine");
    p.write("d/secret.txt", "no");
    fs::set_permissions(
        p.p("d/secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = if is_root() {
        // root reads anything: run dvx as an unprivileged user on a world-writable project.
        Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(p.path())
            .status()
            .unwrap();
        fs::set_permissions(
            p.p("d/secret.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            dvx_bin(),
            "add",
            "d",
        ])
        .current_dir(p.path())
        .env("HOME", p.path())
        .env("DVX_LOCK_WAIT", "1");
        c.output().expect("setpriv runs")
    } else {
        p.cmd_in("", &["add", "d"]).output().unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "add of an unreadable file must fail");
    assert_clear(&err, "secret.txt: permission denied");
    assert!(p.status()["head"].is_null(), "no commit was made");
}

#[test]
fn corrupt_object_is_found_and_reported() {
    let p = Project::new();
    let data = noise(200_000, 3);
    p.write("x.bin", &data);
    p.dvx(&["add", "x.bin"]).ok();
    p.assert_fsck_clean();
    // Flip one byte of stored data.
    let pack = fs::read_dir(p.p(".dvx/packs"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut bytes = fs::read(&pack).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    fs::write(&pack, bytes).unwrap();
    let r = p.dvx(&["fsck", "--json"]);
    let j = r.json();
    assert!(!r.out.status.success(), "fsck must exit non-zero");
    let id = blake3::hash(&data).to_hex().to_string();
    let probs = j["problems"].as_array().unwrap();
    assert!(probs.iter().any(|x| x["id"] == id.as_str()), "{j}");
    // Reading it fails plainly instead of returning wrong bytes.
    fs::remove_file(p.p("x.bin")).unwrap();
    let err = p.dvx(&["checkout", "HEAD"]).fails();
    assert_clear(&err, "corrupt chunk");
    assert!(!p.exists("x.bin"), "nothing half-written is left");
    let err = p.dvx(&["cat", "HEAD:x.bin"]).fails();
    assert_clear(&err, "corrupt chunk");
}

#[test]
fn hand_edited_lock_file() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    let good = p.read("dvx.lock");
    // A changed id.
    let text = String::from_utf8(good.clone()).unwrap();
    let id = blake3::hash(b"a").to_hex().to_string();
    p.write(
        "dvx.lock",
        text.replace(&id, blake3::hash(b"b").to_hex().as_str()),
    );
    for args in [&["status"][..], &["add", "a.txt"], &["commit"]] {
        let err = p.dvx(args).fails();
        assert_clear(&err, "edited by hand");
    }
    // Broken syntax: file, line and column.
    p.write(
        "dvx.lock",
        text.replacen("\"commit\"", "\"commit\" oops", 1),
    );
    let err = p.dvx(&["status"]).fails();
    assert_clear(&err, "dvx.lock:3:");
    // checkout of a revision rewrites it.
    p.dvx(&["checkout", "--force", "HEAD"]).ok();
    assert_eq!(p.read("dvx.lock"), good);
    p.status();
}

#[test]
fn full_disk_fails_cleanly() {
    let p = Project::new();
    p.write("small.txt", "s");
    p.dvx(&["add", "small.txt"]).ok();
    let head = p.head();
    p.write("big.bin", noise(8 << 20, 9));
    // A file-size limit makes writes past 1 MiB fail as a full disk would (EFBIG/ENOSPC).
    let cmd = format!("ulimit -f 1024; exec {} add big.bin", dvx_bin());
    let out = Command::new("bash")
        .args(["-c", &cmd])
        .current_dir(p.path())
        .env("DVX_LOCK_WAIT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert_clear(&err, "disk full");
    assert_eq!(p.head(), head, "no commit was made");
    assert_eq!(strs(&p.status()["tracked"]), vec!["small.txt"]);
    p.assert_fsck_clean();
    // After space is back, the same add works.
    p.dvx(&["add", "big.bin"]).ok();
    p.assert_fsck_clean();
}

#[test]
fn usage_errors_exit_2() {
    let p = Project::new();
    let r = p.dvx(&["add"]);
    assert_eq!(r.out.status.code(), Some(2));
    let r = p.dvx(&["frobnicate"]);
    assert_eq!(r.out.status.code(), Some(2));
}

/// A real full filesystem: a small tmpfs (needs root; skipped with a note otherwise).
#[test]
fn full_tmpfs_fails_cleanly() {
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let ok = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
            .arg(&mnt)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        eprintln!("skipping: cannot mount a tmpfs here (not root?)");
        return;
    }
    let _guard = Mount(mnt.clone());
    let run = |args: &[&str]| {
        let out = Command::new(dvx_bin())
            .args(args)
            .current_dir(&mnt)
            .env("DVX_LOCK_WAIT", "1")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(run(&["init"]).0);
    fs::write(mnt.join("small.txt"), "s").unwrap();
    assert!(run(&["add", "small.txt"]).0);
    // Incompressible data: storing it needs as much room again as is left.
    fs::write(mnt.join("big.bin"), noise(26 << 20, 4)).unwrap();
    let (ok, _, err) = run(&["add", "big.bin"]);
    assert!(!ok, "add onto a full disk must fail");
    assert_clear(&err, "disk full");
    let (_, out, _) = run(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        strs(&st["tracked"]),
        vec!["small.txt"],
        "nothing was committed"
    );
    let (ok, out, _) = run(&["fsck", "--json"]);
    assert!(ok, "store stays consistent: {out}");
    // Free space, and the next add works.
    fs::remove_file(mnt.join("big.bin")).unwrap();
    fs::write(mnt.join("medium.bin"), noise(1 << 20, 5)).unwrap();
    let (ok, _, err) = run(&["add", "medium.bin"]);
    assert!(ok, "{err}");
    assert!(run(&["fsck"]).0);
}
