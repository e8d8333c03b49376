//! Two writers serialize; readers never block; a killed dvx leaves a consistent store.

use std::fs::{self, OpenOptions};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn second_writer_waits_then_fails_naming_the_holder_and_readers_do_not_block() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    // Hold the writer lock from another process (flock(1) on the same lock file).
    // -o: only flock itself holds the lock, so killing it is killing the holder.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(p.p(".dvx/lock"))
        .args(["sleep", "30"])
        .spawn()
        .expect("flock runs");
    fs::write(
        p.p(".dvx/lock.info"),
        r#"{"pid":4242,"host":"h","command":"dvx add huge/","since":"now"}"#,
    )
    .unwrap();
    thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    p.write("b.txt", "b");
    let err = p.dvx(&["add", "b.txt"]).fails();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "it waited briefly first"
    );
    assert!(
        err.contains("another dvx is writing")
            && err.contains("pid 4242")
            && err.contains("dvx add huge/"),
        "{err}"
    );
    // Readers go on while the lock is held.
    let t = Instant::now();
    p.dvx(&["log"]).ok();
    p.dvx(&["ls"]).ok();
    assert_eq!(p.status()["clean"], true);
    p.dvx(&["fsck"]).ok();
    assert!(t.elapsed() < Duration::from_secs(5));
    // The holder dies without cleaning up: the lock is free again.
    holder.kill().unwrap();
    holder.wait().unwrap();
    p.dvx(&["add", "b.txt"]).ok();
    p.assert_fsck_clean();
}

#[test]
fn two_concurrent_writers_both_succeed_in_turn() {
    let p = Project::new();
    p.write("x/1.bin", noise(2 << 20, 1));
    p.write("y/2.bin", noise(2 << 20, 2));
    let spawn = |path: &str| {
        p.cmd_in("", &["add", path])
            .env("DVX_LOCK_WAIT", "30")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn("x");
    let b = spawn("y");
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut tracked = strs(&p.status()["tracked"]);
    tracked.sort();
    assert_eq!(tracked, vec!["x", "y"], "neither commit was lost");
    assert_eq!(
        p.dvx(&["log", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    p.assert_fsck_clean();
}

/// Start dvx with `args` and kill -9 it after `delay_ms`.
fn killed_after(p: &Project, args: &[&str], delay_ms: u64) {
    let mut child = p
        .cmd_in("", args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(delay_ms));
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

#[test]
fn kill_during_add_and_commit_leaves_a_consistent_store() {
    let p = Project::new();
    p.write("base.txt", "base");
    p.dvx(&["add", "base.txt"]).ok();
    for i in 0..40 {
        p.write(&format!("big/{i:02}.bin"), noise(1 << 20, 100 + i));
    }
    for delay_ms in [30u64, 120, 250, 500] {
        killed_after(&p, &["add", "big"], delay_ms);
        // The next commands work and the store is consistent.
        p.assert_fsck_clean();
        let st = p.status();
        assert!(st["head"].is_string(), "{st}");
    }
    p.dvx(&["add", "big"]).ok();
    for i in [0u64, 39] {
        assert_eq!(
            p.dvx(&["cat", &format!("HEAD:big/{i:02}.bin")])
                .ok()
                .out
                .stdout,
            noise(1 << 20, 100 + i)
        );
    }
    // Same for commit.
    for i in 0..40 {
        p.write(&format!("big/{i:02}.bin"), noise(1 << 20, 500 + i));
    }
    killed_after(&p, &["commit"], 150);
    p.assert_fsck_clean();
    p.dvx(&["commit"]).ok();
    p.assert_fsck_clean();
    assert_eq!(p.status()["clean"], true);
    // Leftover temp files are not trusted and get cleaned up by the next writer.
    let tmp = p.p(".dvx/tmp/leftover");
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .unwrap();
    p.write("base.txt", "base2");
    p.dvx(&["commit"]).ok();
    assert!(!tmp.exists());
    // gc reclaims whatever the killed writers appended.
    p.dvx(&["gc"]).ok();
    p.assert_fsck_clean();
}

/// Large files go to the pack with direct writes from a second thread: a kill -9 in the
/// middle of them (some blocks written, some queued, the tail unaligned) leaves a store that
/// fsck finds consistent, and later adds append after the torn bytes and read back whole.
#[test]
fn kill_during_a_large_add_with_direct_writes_leaves_a_consistent_store() {
    let p = Project::new();
    p.write("base.txt", "base");
    p.dvx(&["add", "base.txt"]).ok();
    // Above the 8 MiB at which a file is stored through the mapped, direct path.
    let sizes = [(24 << 20) + 4097, (12 << 20) + 1, 9 << 20];
    for (i, n) in sizes.iter().enumerate() {
        p.write(&format!("large/{i}.bin"), noise(*n, 40 + i as u64));
    }
    for delay_ms in [20u64, 80, 200] {
        killed_after(&p, &["add", "large"], delay_ms);
        p.assert_fsck_clean();
        assert!(p.status()["head"].is_string());
    }
    p.dvx(&["add", "large"]).ok();
    p.write("odd.bin", noise((10 << 20) + 333, 9));
    p.dvx(&["add", "odd.bin"]).ok();
    p.assert_fsck_clean();
    for (i, n) in sizes.iter().enumerate() {
        let got = p
            .dvx(&["cat", &format!("HEAD:large/{i}.bin")])
            .ok()
            .out
            .stdout;
        assert!(got == noise(*n, 40 + i as u64), "large/{i}.bin differs");
    }
    fs::remove_dir_all(p.p("large")).unwrap();
    fs::remove_file(p.p("odd.bin")).unwrap();
    p.dvx(&["checkout", "HEAD"]).ok();
    assert!(p.read("odd.bin") == noise((10 << 20) + 333, 9));
    assert!(p.read("large/0.bin") == noise(sizes[0], 40));
    p.dvx(&["gc"]).ok();
    p.assert_fsck_clean();
    assert!(p.read("large/2.bin") == noise(sizes[2], 42));
}
