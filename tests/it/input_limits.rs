//! Bad input must give an error naming where it is, never a panic, a hang or unbounded work:
//! huge numbers, non-finite numbers, huge expansions, invalid UTF-8, invalid settings.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Project, Run};

/// Run `cmd`, killing it if it has not finished after `secs` (a hang is a failure).
fn within(mut cmd: Command, secs: u64) -> Run {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dvx runs");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return Run {
                out: child.wait_with_output().expect("output"),
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "dvx hung for {secs}s\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A failure reported as an error (exit 1 or a usage error), not a panic or an abort.
fn clean_failure(r: Run) -> String {
    let code = r.out.status.code();
    let err = r.fails();
    assert!(!err.contains("panicked"), "{err}");
    assert!(matches!(code, Some(1) | Some(2)), "exit {code:?}: {err}");
    err
}

const CONFIG: &str = "[core]\nformat = 1\nlock_wait_secs = 3.0\ncompression = \"small\"\n";

#[test]
fn huge_timeouts_are_refused_where_they_are_written() {
    let p = Project::new();
    for t in ["18446744073709551615h", "18446744073709551615s", "8761h"] {
        p.write(
            "dvx.yaml",
            format!("stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n    timeout: {t}\n"),
        );
        let mut cmd = p.cmd_in("", &["run"]);
        cmd.env("DVX_LOCK_WAIT", "0");
        let err = clean_failure(within(cmd, 60));
        assert!(
            err.contains("dvx.yaml:5:14: timeout: `")
                && err.contains("is too long; at most 31536000 seconds"),
            "{err}"
        );
    }
    // The writer lock was not left behind: the largest timeout allowed runs.
    p.write(
        "dvx.yaml",
        "stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n    timeout: 8760h\n",
    );
    within(p.cmd_in("", &["run"]), 60).ok();
    assert_eq!(p.read("o"), b"hi\n");
}

#[test]
fn non_finite_and_out_of_range_lock_waits_are_reported() {
    let p = Project::new();
    for v in ["inf", "-inf", "nan", "1e308", "-1", "86401"] {
        p.write(
            ".dvx/config.toml",
            CONFIG.replace("lock_wait_secs = 3.0", &format!("lock_wait_secs = {v}")),
        );
        let err = clean_failure(p.dvx(&["status"]));
        assert!(
            err.contains(".dvx/config.toml:3:18: core.lock_wait_secs = ")
                && err.contains("expected a number of seconds from 0 to 86400"),
            "{v}: {err}"
        );
        clean_failure(p.dvx(&["add", "x"]));
    }
    p.write(".dvx/config.toml", CONFIG);
    for v in ["inf", "1e308", "-1", "NaN", "soon"] {
        let mut cmd = p.cmd_in("", &["status"]);
        cmd.env("DVX_LOCK_WAIT", v);
        let err = clean_failure(Run {
            out: cmd.output().unwrap(),
        });
        assert!(
            err.contains("environment variable DVX_LOCK_WAIT: ")
                && err.contains("hint: set DVX_LOCK_WAIT to a number of seconds"),
            "{v}: {err}"
        );
    }
}

#[test]
fn remote_numbers_are_range_checked_from_every_source() {
    let p = Project::new();
    let store = tempfile::tempdir().unwrap();
    let url = store.path().display().to_string();
    p.dvx(&["remote", "add", "origin", &url]).ok();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    for (var, v) in [
        ("DVX_REMOTE_TIMEOUT", "inf"),
        ("DVX_REMOTE_TIMEOUT", "-1"),
        ("DVX_REMOTE_TIMEOUT", "nan"),
        ("DVX_REMOTE_TIMEOUT", "1e308"),
        ("DVX_REMOTE_RETRIES", "1e308"),
        ("DVX_REMOTE_RETRIES", "-1"),
        ("DVX_PACK_SIZE", "0"),
    ] {
        let mut cmd = p.cmd_in("", &["push"]);
        cmd.env(var, v);
        let err = clean_failure(Run {
            out: cmd.output().unwrap(),
        });
        assert!(
            err.contains(&format!("environment variable {var}: ")),
            "{err}"
        );
    }
    // The same values in config.toml, with their place.
    let cfg = std::fs::read_to_string(p.p(".dvx/config.toml")).unwrap();
    for (key, v, want) in [
        (
            "timeout_secs",
            "inf",
            "remote timeout_secs = inf: expected a number of seconds",
        ),
        (
            "jobs",
            "0",
            "remote jobs = 0: expected a whole number from 1 to 64",
        ),
        (
            "retries",
            "-1",
            "remote retries = -1: expected a whole number from 0 to 100",
        ),
    ] {
        let text = format!("{cfg}{key} = {v}\n");
        let line = text.lines().count();
        p.write(".dvx/config.toml", &text);
        let err = clean_failure(p.dvx(&["status"]));
        let at = format!(".dvx/config.toml:{line}:{}: {want}", key.len() + 4);
        assert!(err.contains(&at), "want {at:?} in {err}");
    }
    p.write(".dvx/config.toml", &cfg);
    p.dvx(&["push"]).ok();
    // And on the command line, as usage errors.
    for args in [
        &["remote", "add", "b", "/tmp/x", "--timeout", "inf"][..],
        &["remote", "add", "b", "/tmp/x", "--timeout=-1"],
        &["remote", "add", "b", "/tmp/x", "--jobs", "0"],
        &["remote", "add", "b", "/tmp/x", "--jobs", "100000"],
        &["remote", "add", "b", "/tmp/x", "--retries", "1000"],
    ] {
        let err = clean_failure(p.dvx(args));
        assert!(err.contains("expected a"), "{args:?}: {err}");
    }
}

#[test]
fn jobs_are_bounded() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n",
    );
    for j in ["100000", "0", "lots"] {
        let err = clean_failure(within(p.cmd_in("", &["run", "-j", j, "--dry-run"]), 60));
        assert!(
            err.contains("invalid value") && err.contains("--jobs"),
            "{j}: {err}"
        );
    }
    within(p.cmd_in("", &["run", "-j", "1024", "--dry-run"]), 60).ok();
}

#[test]
fn huge_matrices_are_refused_before_they_are_made() {
    let p = Project::new();
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (keys, per_key, count) in [
        (8, 10, "100000000"),
        (40, 2, "1099511627776"),
        (70, 2, "too many"),
    ] {
        let mut y = String::from("stages:\n  s:\n    matrix:\n");
        for k in 0..keys {
            y.push_str(&format!("      k{k}: [{}]\n", values(per_key)));
        }
        y.push_str("    cmd: echo ${item.k0}\n");
        p.write("dvx.yaml", &y);
        let err = clean_failure(within(p.cmd_in("", &["dag"]), 60));
        let want = format!(
            "dvx.yaml:3:5: matrix: {count} combinations; a pipeline may have at most 200000 stages"
        );
        assert!(err.contains(&want), "want {want:?} in {err}");
    }
    // Many stages of long text are refused too (each entry copies the whole stage).
    let long = "x".repeat(4096);
    p.write(
        "dvx.yaml",
        format!(
            "stages:\n  s:\n    matrix:\n      a: [{}]\n      b: [{}]\n    cmd: echo {long} ${{item.a}} ${{item.b}}\n",
            values(300),
            values(300)
        ),
    );
    let err = clean_failure(within(p.cmd_in("", &["dag"]), 60));
    assert!(
        err.contains("dvx.yaml:2:3: stage `s`: its 90000 entries would generate more than 256 MiB"),
        "{err}"
    );
}

#[test]
fn twenty_thousand_stages_form_a_graph() {
    let p = Project::new();
    let n = 20_000;
    let mut y = String::from("stages:\n");
    for i in 0..n {
        // A chain, plus a fan-in every 100 stages reading a whole folder of outputs.
        let dep = if i == 0 {
            "raw".to_string()
        } else if i % 100 == 0 {
            format!("out/{}", i / 100 - 1)
        } else {
            format!("out/{}/s{}", i / 100, i - 1)
        };
        y.push_str(&format!(
            "  s{i}:\n    cmd: touch o\n    deps: [{dep}]\n    outs: [out/{}/s{i}]\n",
            i / 100
        ));
    }
    p.write("dvx.yaml", &y);
    let r = p.dvx(&["dag"]).ok();
    let text = r.stdout();
    assert_eq!(text.lines().count(), n);
    assert!(text.contains("\ns1  <- s0\n"), "{}", &text[..200]);
    assert!(text.contains("\ns100  <- s0, s1, s2, s3"), "fan-in");
    // A cycle closing the chain is found (no stack overflow on a deep graph).
    y = y.replacen(
        "deps: [raw]",
        &format!("deps: [out/{}/s{}]", (n - 1) / 100, n - 1),
        1,
    );
    p.write("dvx.yaml", &y);
    let err = clean_failure(p.dvx(&["dag"]));
    assert!(err.contains("the stages form a cycle"), "{err}");
}

#[test]
fn invalid_utf8_is_reported_with_line_and_column() {
    let p = Project::new();
    p.write("dvx.yaml", b"stages:\n  a:\n    cmd: echo \xc3\xa9\xff\n");
    let err = clean_failure(p.dvx(&["dag"]));
    assert!(err.contains("dvx.yaml:3:16: not valid UTF-8"), "{err}");
    p.write("dvx.yaml", "stages:\n  a:\n    cmd: echo\n");
    let mut cfg = CONFIG.as_bytes().to_vec();
    cfg.extend_from_slice(b"[user]\nname = \"J\xe9r\xf4me\"\n");
    p.write(".dvx/config.toml", &cfg);
    let err = clean_failure(p.dvx(&["status"]));
    assert!(
        err.contains(".dvx/config.toml:6:10: not valid UTF-8"),
        "{err}"
    );
    p.write(".dvx/config.toml", CONFIG);
    p.write("dvx.lock", b"{\"version\": 1, \"commit\": \"\xff\"}");
    let err = clean_failure(p.dvx(&["checkout"]));
    assert!(err.contains("dvx.lock:1:27: not valid UTF-8"), "{err}");
}

#[test]
fn invalid_settings_name_their_place_and_what_is_expected() {
    let p = Project::new();
    for (setting, want) in [
        (
            "compression = \"zip\"",
            ":4:15: core.compression = \"zip\": expected \"small\", \"all\" or \"none\"",
        ),
        (
            "compression = 3",
            ":4:15: invalid type: integer `3`, expected a string",
        ),
    ] {
        p.write(
            ".dvx/config.toml",
            CONFIG.replace("compression = \"small\"", setting),
        );
        let err = clean_failure(p.dvx(&["status"]));
        assert!(err.contains(&format!(".dvx/config.toml{want}")), "{err}");
    }
    p.write(
        ".dvx/config.toml",
        CONFIG.replace("format = 1", "format = 7"),
    );
    let err = clean_failure(p.dvx(&["status"]));
    assert!(
        err.contains(".dvx/config.toml:2:10: format 7 is not understood by this dvx"),
        "{err}"
    );
    for (table, want) in [
        (
            "[containers]\nruntime = 3\n",
            ":6:11: containers.runtime: expected \"podman\", \"docker\" or a path",
        ),
        (
            "[containers]\nruntime = \" \"\n",
            ":6:11: containers.runtime: expected",
        ),
        (
            "[containers]\nruntim = \"podman\"\n",
            ":6:1: containers.runtim: unknown setting; expected `runtime`",
        ),
        (
            "containers = 1\n",
            ":1:14: invalid type: integer `1`, expected a [containers] table",
        ),
    ] {
        // A top-level key must come before the first table.
        let text = if table.starts_with('[') {
            format!("{CONFIG}{table}")
        } else {
            format!("{table}{CONFIG}")
        };
        p.write(".dvx/config.toml", text);
        let err = clean_failure(p.dvx(&["status"]));
        assert!(err.contains(&format!(".dvx/config.toml{want}")), "{err}");
        assert!(err.contains("hint: fix the file by hand"), "{err}");
    }
    p.write(
        ".dvx/config.toml",
        format!("{CONFIG}[containers]\nruntime = \"docker\"\n"),
    );
    p.dvx(&["status"]).ok();
}
