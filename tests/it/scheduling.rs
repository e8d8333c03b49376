//! The scheduler and the executor seam, end to end: warnings travel in the summary, retries
//! are resubmitted, and Ctrl-C withdraws what has not started.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;

fn lines(p: &Project, rel: &str) -> usize {
    fs::read_to_string(p.p(rel))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A glob that matches nothing is said once on stderr, and is in `--json` for run and status.
#[test]
fn planning_warnings_reach_the_summary_and_status() {
    let p = Project::new();
    p.write("in/a.csv", "1");
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*.txt\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n",
    );
    let want = "stage s: input glob \"/*.txt\" over in matches nothing";
    let r = p.dvx(&["run"]).ok();
    let err = r.stderr();
    assert_eq!(err.matches(want).count(), 1, "{err}");
    assert!(err.contains(&format!("warning: {want}")), "{err}");
    let st = p.dvx(&["status", "--json"]).ok().json();
    assert_eq!(strs(&st["warnings"]), [want], "{st}");
    p.write("in/b.txt", "2");
    let s = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(s["warnings"], serde_json::json!([]), "{s}");
    assert_eq!(s["executed"], 1, "{s}");
}

/// A failed execution with retries left is handed to the executor again; its record counts
/// the attempts and the output is the retry's, not a mix.
#[test]
fn a_retry_is_resubmitted_with_a_fresh_output_folder() {
    let p = Project::new();
    p.write("in/a.txt", "a");
    p.write("in/b.txt", "b");
    // The first attempt of each datum writes a stray file and fails; the second succeeds.
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in}\n    cmd: n=$(basename \"$DVX_INPUT\"); echo x >> \"tries.$n\"; if [ $(wc -l < \"tries.$n\") -lt 2 ]; then touch \"$DVX_OUTPUT/stray\"; exit 1; fi; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n    retries: 2\n",
    );
    let s = p.dvx(&["run", "--json", "-j", "2"]).ok().json();
    assert_eq!(s["executed"], 2, "{s}");
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!((lines(&p, "tries.a.txt"), lines(&p, "tries.b.txt")), (2, 2));
    assert!(p.exists("out/a.txt") && p.exists("out/b.txt"));
    assert!(
        !p.exists("out/stray"),
        "a retry starts from an empty output folder"
    );
    for run in strs(&s["stages"][0]["runs"]) {
        let rec = p.dvx(&["show", &run, "--json"]).ok().json();
        assert_eq!(rec["attempt"], 1, "{rec}");
    }
}

/// Ctrl-C kills the running execution and withdraws the queued ones: they never start, and
/// a later run does them.
#[test]
fn ctrl_c_withdraws_queued_executions() {
    ctrl_c_with_datums(4);
}

/// The same with more datums than the executor is handed at once (1,024): those still
/// waiting are dropped too, and the run ends.
#[test]
fn ctrl_c_drops_datums_not_yet_handed_on() {
    ctrl_c_with_datums(1100);
}

fn ctrl_c_with_datums(n: usize) {
    let p = Project::new();
    for i in 0..n {
        p.write(&format!("in/{i}.txt"), format!("{i}"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  slow:\n    input: {path: in}\n    cmd: echo started >> started.log; sleep 40; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n",
    );
    let child = p
        .cmd_in("", &["run", "-j", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while lines(&p, "started.log") < 1 {
        assert!(t.elapsed() < Duration::from_secs(60), "nothing started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sending SIGINT to a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(lines(&p, "started.log"), 1, "queued datums never started");
    let s = p.dvx(&["run", "--json", "--dry-run"]).ok().json();
    assert!(
        s["stages"][0]["reasons"]
            .to_string()
            .contains(&format!("{n} of {n} datums would execute")),
        "{s}"
    );
    p.assert_fsck_clean();
}
