//! Exit statuses a script can rely on: 0 success, 1 the operation failed, 2 usage or invalid
//! input, 3 damaged or missing data; and `status --exit-code` for CI.

use std::fs;

use crate::common::*;

fn code(r: &Run) -> Option<i32> {
    r.out.status.code()
}

#[test]
fn invalid_input_exits_2() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    for args in [
        &["checkout", "no-such-rev"][..],
        &["cat", "HEAD:missing.txt"],
        &["add", "missing.txt"],
        &["log", "nope"],
        &["push", "nowhere"],
    ] {
        let r = p.dvx(args);
        assert_eq!(code(&r), Some(2), "{args:?}: {}", r.stderr());
        assert!(r.stderr().contains("hint:"), "{args:?}: {}", r.stderr());
    }
    p.write("dvx.yaml", "stages:\n  s:\n    cmd: [not, a, string\n");
    let r = p.dvx(&["run"]);
    assert_eq!(code(&r), Some(2), "{}", r.stderr());
    assert!(r.stderr().contains("dvx.yaml:"), "{}", r.stderr());
}

#[test]
fn a_failed_operation_exits_1() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  boom:\n    cmd: exit 3\n    outs: [o.txt]\n",
    );
    let r = p.dvx(&["run"]);
    assert_eq!(code(&r), Some(1), "{}", r.stderr());
    assert!(r.stderr().contains("failed"), "{}", r.stderr());
}

#[test]
fn damaged_data_exits_3() {
    let p = Project::new();
    let data = noise(200_000, 9);
    p.write("x.bin", &data);
    p.dvx(&["add", "x.bin"]).ok();
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
    let r = p.dvx(&["fsck"]);
    assert_eq!(code(&r), Some(3), "{}", r.stderr());
    let r = p.dvx(&["cat", "HEAD:x.bin"]);
    assert_eq!(code(&r), Some(3), "{}", r.stderr());
    assert!(r.stderr().contains("corrupt chunk"), "{}", r.stderr());
}

#[test]
fn status_exit_code_fails_on_changed_data_and_stale_stages() {
    let p = Project::new();
    p.write("in.txt", "one");
    p.dvx(&["add", "in.txt"]).ok();
    p.dvx(&["status", "--exit-code"]).ok();
    p.write("in.txt", "two");
    let r = p.dvx(&["status", "--exit-code"]);
    assert_eq!(code(&r), Some(1), "{}", r.stdout());
    assert!(r.stdout().contains("in.txt"), "{}", r.stdout());
    // Without the flag, changes are not an error.
    p.dvx(&["status"]).ok();
    p.dvx(&["commit", "-m", "two"]).ok();
    p.dvx(&["status", "--exit-code"]).ok();
    p.write(
        "dvx.yaml",
        "stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n",
    );
    let r = p.dvx(&["status", "--exit-code", "--json"]);
    assert_eq!(code(&r), Some(1), "{}", r.stdout());
    p.dvx(&["run"]).ok();
    p.dvx(&["status", "--exit-code"]).ok();
}

#[test]
fn json_goes_before_or_after_the_command_and_is_refused_where_there_is_none() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    // Both positions give the same document.
    let after = p.dvx(&["status", "--json"]).ok().json();
    let before = p.dvx(&["--json", "status"]).ok().json();
    assert_eq!(after, before);
    assert_eq!(after["clean"], true, "{after}");
    let log = p.dvx(&["--json", "-C", ".", "log", "-n", "1"]).ok().json();
    assert_eq!(log.as_array().map(Vec::len), Some(1), "{log}");
    let list = p.dvx(&["remote", "--json", "list"]).ok().json();
    assert_eq!(list, serde_json::json!([]));
    // A command without JSON output says so, as a usage error, and does nothing.
    for (args, name) in [
        (&["--json", "cat", "HEAD:a.txt"][..], "dvx cat"),
        (&["cat", "HEAD:a.txt", "--json"], "dvx cat"),
        (
            &["remote", "add", "o", "/tmp/x", "--json"],
            "dvx remote add",
        ),
        (&["--json", "dag"], "dvx dag"),
        (&["--json", "branch", "b"], "dvx branch"),
        (&["--json", "tag", "-d", "v1"], "dvx tag"),
    ] {
        let r = p.dvx(args);
        assert_eq!(code(&r), Some(2), "{args:?}: {}", r.stderr());
        let err = r.stderr();
        assert!(err.contains(&format!("`{name}`")), "{args:?}: {err}");
        assert!(err.contains("--json"), "{args:?}: {err}");
        assert!(r.stdout().is_empty(), "{args:?}: {}", r.stdout());
    }
    assert!(p.dvx(&["remote", "list"]).ok().stdout().is_empty());
    p.dvx(&["branch"]).ok();
    assert!(!p.dvx(&["branch"]).ok().stdout().contains(" b "));
    let r = Project::empty().dvx(&["init", "--json"]);
    assert_eq!(code(&r), Some(2), "{}", r.stderr());
    assert!(r.stderr().contains("`dvx init` has no JSON output"));
    // JSON is one format among lineage's; two at once are refused wherever --json goes.
    for args in [
        &["lineage", "a.txt", "--dot", "--json"][..],
        &["--json", "lineage", "a.txt", "--svg"],
    ] {
        let r = p.dvx(args);
        assert_eq!(code(&r), Some(2), "{args:?}: {}", r.stderr());
        assert!(r.stderr().contains("cannot be used with"), "{}", r.stderr());
    }
}
