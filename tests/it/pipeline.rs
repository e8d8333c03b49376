//! Pipelines: dvx.yaml validation, datum-level incremental runs, the run cache, parallel runs,
//! run records, and the bundled examples end to end.

use std::fs;
use std::path::Path;

use crate::common::*;

fn run(p: &Project, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["run", "--json"];
    a.extend_from_slice(args);
    p.dvx(&a).ok().json()
}

fn stage<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {summary}"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), t).unwrap();
        }
    }
}

fn example(name: &str) -> Project {
    let p = Project::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    copy_dir(&src, p.path());
    p
}

#[test]
fn datum_stage_runs_only_changed_datums_and_drops_removed_ones() {
    let p = Project::new();
    for i in 0..6 {
        p.write(
            &format!("in/f{i}.txt"),
            format!("line\n{}", "x\n".repeat(i)),
        );
    }
    // Each execution appends to a log outside the outputs, so we can count executions.
    p.write(
        "dvx.yaml",
        "stages:\n  count:\n    input: {path: in, glob: \"/*.txt\"}\n    cmd: wc -l < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID.n\" && echo $DVX_DATUM_ID >> executions.log\n    outs: [counts]\n  sum:\n    cmd: cat counts/*.n | awk '{s+=$1} END {print s}' > total.txt\n    deps: [counts]\n    outs: [total.txt]\n",
    );
    p.dvx(&["add", "in"]).ok();
    let s = run(&p, &[]);
    assert_eq!(s["executed"], 7, "{s}");
    assert_eq!(stage(&s, "count")["datums"]["total"], 6);
    assert_eq!(p.read("counts/f3.txt.n"), b"4\n");
    assert_eq!(p.read("total.txt"), b"21\n");
    let log_len = || {
        fs::read_to_string(p.p("executions.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let base = log_len();

    // No-op.
    let s = run(&p, &[]);
    assert_eq!(
        (s["executed"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );

    // Change one input: exactly one datum executes.
    p.write("in/f2.txt", "a\nb\nc\nd\ne\nf\ng\n");
    let dry = run(&p, &["--dry-run"]);
    assert_eq!(stage(&dry, "count")["state"], "stale");
    assert_eq!(stage(&dry, "sum")["state"], "stale");
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "count")["datums"]["executed"], 1, "{s}");
    assert_eq!(stage(&s, "count")["datums"]["restored"], 5, "{s}");
    assert_eq!(log_len(), base + 1);
    assert_eq!(p.read("counts/f2.txt.n"), b"7\n");

    // Remove an input: exactly its output goes, nothing executes for the others.
    fs::remove_file(p.p("in/f5.txt")).unwrap();
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "count")["datums"]["executed"], 0, "{s}");
    assert!(!p.exists("counts/f5.txt.n"));
    assert!(p.exists("counts/f4.txt.n"));
    assert_eq!(log_len(), base + 1);
    // The run committed its outputs; the input deletion is the user's own change to commit.
    let st = p.status();
    assert_eq!(strs(&st["deleted"]), vec!["in/f5.txt"], "{st}");
    assert_eq!(strs(&st["modified"]), vec!["in/f2.txt"], "{st}");
    assert!(strs(&st["new"]).is_empty(), "{st}");
    p.assert_fsck_clean();
}

#[test]
fn params_and_code_changes_rerun_and_the_run_cache_restores_old_results() {
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.1\n");
    p.write("train.sh", "echo \"model lr=$(grep lr params.yaml | tr -d ' ')\" > model.txt\necho trained >> trainings.log\n");
    p.write("unrelated.txt", "u");
    p.write(
        "dvx.yaml",
        "stages:\n  train:\n    cmd: sh train.sh\n    deps: [train.sh]\n    params: [train.lr]\n    outs: [model.txt]\n",
    );
    let trainings = || {
        fs::read_to_string(p.p("trainings.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let t0 = trainings();
    assert_eq!(run(&p, &[])["executed"], 1);
    // Renaming an unrelated file changes nothing.
    fs::rename(p.p("unrelated.txt"), p.p("renamed.txt")).unwrap();
    assert_eq!(run(&p, &[])["executed"], 0);

    p.write("params.yaml", "train:\n  lr: 0.2\n");
    let st = p.dvx(&["status", "--json"]).ok().json();
    let reasons = st["stages"][0]["reasons"].to_string();
    assert!(
        reasons.contains("param params.yaml:train.lr changed (0.1 -> 0.2)"),
        "{st}"
    );
    assert_eq!(run(&p, &[])["executed"], 1);
    assert_eq!(p.read("model.txt"), b"model lr=lr:0.2\n");

    // Back to the old value: restored from the run cache, not executed.
    p.write("params.yaml", "train:\n  lr: 0.1\n");
    let s = run(&p, &[]);
    assert_eq!(
        (s["executed"].as_u64(), s["restored"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert_eq!(p.read("model.txt"), b"model lr=lr:0.1\n");
    assert_eq!(trainings(), t0 + 2);
    // --no-run-cache executes anyway; a code change re-runs.
    p.write("params.yaml", "train:\n  lr: 0.2\n");
    assert_eq!(run(&p, &["--no-run-cache"])["executed"], 1);
    p.write("train.sh", "echo v2 > model.txt\n");
    assert_eq!(run(&p, &[])["executed"], 1);
    assert_eq!(p.read("model.txt"), b"v2\n");
    assert_eq!(run(&p, &["--force"])["executed"], 1);
}

#[test]
fn failed_datum_keeps_the_others_and_only_it_runs_again() {
    let p = Project::new();
    for i in 0..4 {
        p.write(&format!("in/{i}.txt"), format!("{i}"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: if grep -q 2 \"$DVX_INPUT\" && [ ! -f ok ]; then echo boom >&2; exit 3; fi; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"; echo run >> fails.log\n    outs: [out]\n    retries: 1\n",
    );
    let r = p.dvx(&["run", "-j", "2", "--keep-going"]);
    let err = r.fails();
    assert!(
        err.contains("failed: s datum 2.txt") && err.contains("boom"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(
        !p.exists("out"),
        "a failed stage does not publish a partial merge"
    );
    let log = || {
        fs::read_to_string(p.p("fails.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert_eq!(log(), 3);
    // The failure is recorded with its output.
    let runs = p.dvx(&["log", "--json", "-n", "1"]).ok().json();
    let failed_run = runs[0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .find(|id| p.dvx(&["show", id, "--json"]).ok().json()["error"].is_string());
    let failed_run = failed_run.expect("a failed run record");
    let rec = p.dvx(&["show", &failed_run, "--json"]).ok().json();
    assert_eq!(rec["datum"], "2.txt");
    assert_eq!(rec["exit"], 3);
    assert_eq!(rec["attempt"], 1, "retried once");
    assert!(p
        .dvx(&["logs", &failed_run[..10]])
        .ok()
        .stdout()
        .contains("boom"));

    p.write("ok", "");
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "s")["datums"]["executed"], 1, "{s}");
    assert_eq!(stage(&s, "s")["datums"]["restored"], 3, "{s}");
    assert_eq!(log(), 4);
    assert_eq!(p.read("out/2.txt"), b"2");
}

#[test]
fn results_are_identical_for_any_parallelism() {
    let mk = |j: &str| {
        let p = Project::new();
        for i in 0..12 {
            p.write(&format!("in/{i:02}.txt"), format!("{i}\n"));
        }
        p.write(
            "dvx.yaml",
            "stages:\n  sq:\n    input: {path: in, glob: \"/*\"}\n    cmd: echo $(( $(cat \"$DVX_INPUT\") * $(cat \"$DVX_INPUT\") )) > \"$DVX_OUTPUT/$DVX_DATUM_ID\"\n    outs: [sq]\n  a:\n    cmd: cat sq/* > a.txt\n    deps: [sq]\n    outs: [a.txt]\n  b:\n    cmd: ls sq | wc -l > b.txt\n    deps: [sq]\n    outs: [b.txt]\n",
        );
        run(&p, &["-j", j]);
        let ls = p.dvx(&["ls", "HEAD", "-r", "--json"]).ok().json();
        let ids: Vec<(String, String)> = ls
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["path"].as_str().unwrap().into(),
                    e["id"].as_str().unwrap().into(),
                )
            })
            .collect();
        ids
    };
    let one = mk("1");
    assert!(one.iter().any(|(p, _)| p == "sq/11.txt"));
    assert_eq!(one, mk("4"));
}

#[test]
fn validation_errors_name_file_line_and_column() {
    let p = Project::new();
    let cases: &[(&str, &str)] = &[
        ("stages:\n  a:\n    cmd: x\n    outz: [y]\n", "dvx.yaml:4:5: stage `a`: unknown field `outz`"),
        ("stages:\n  a:\n    cmd: x\n    retries: [1]\n", "dvx.yaml:4:14: retries: expected a whole number"),
        (
            "stages:\n  a:\n    cmd: x\n    deps: [b.out]\n    outs: [a.out]\n  b:\n    cmd: y\n    deps: [a.out]\n    outs: [b.out]\n",
            "the stages form a cycle",
        ),
        ("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o]\n", "dvx.yaml:7:12: `o` is an output of both `a` (line 4) and `b`"),
        ("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o/x]\n", "lie inside one another"),
        ("stages:\n  a:\n    cmd: x\n    deps: [nowhere.csv]\n    outs: [o]\n", "dvx.yaml:4:12: stage `a`: dependency `nowhere.csv` does not exist"),
        ("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", "duplicate key `a`"),
        ("stages:\n  a: [\n", "dvx.yaml:"),
    ];
    for (yaml, want) in cases {
        p.write("dvx.yaml", yaml);
        let err = p.dvx(&["run"]).fails();
        assert!(
            err.contains(want),
            "for\n{yaml}\nexpected {want:?} in:\n{err}"
        );
        assert!(err.lines().next().unwrap().starts_with("error: "), "{err}");
        assert!(err.contains("hint:"), "{err}");
    }
    let log = p.dvx(&["log", "--json"]).ok().json();
    assert_eq!(
        log.as_array().map(Vec::len),
        Some(0),
        "nothing was committed"
    );
}

#[test]
fn timeout_and_failures_are_reported_and_nothing_is_committed() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  slow:\n    cmd: sleep 30\n    outs: [o]\n    timeout: 1\n",
    );
    let t = std::time::Instant::now();
    let err = p.dvx(&["run"]).fails();
    assert!(t.elapsed().as_secs() < 15, "the timeout killed it");
    assert!(err.contains("timed out after 1s"), "{err}");
    p.write(
        "dvx.yaml",
        "stages:\n  lazy:\n    cmd: \"true\"\n    outs: [never-written]\n",
    );
    let err = p.dvx(&["run"]).fails();
    assert!(
        err.contains("did not produce the output never-written"),
        "{err}"
    );
    p.assert_fsck_clean();
}

#[test]
fn two_datums_writing_one_path_is_an_error_naming_both() {
    let p = Project::new();
    p.write("in/a.txt", "a");
    p.write("in/b.txt", "b");
    p.write("dvx.yaml", "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/same.txt\"\n    outs: [out]\n");
    let err = p.dvx(&["run"]).fails();
    assert!(
        err.contains("datums a.txt and b.txt both wrote out/same.txt"),
        "{err}"
    );
}

#[test]
fn dag_datums_show_and_foreach() {
    let p = Project::new();
    p.write("in/x.csv", "1");
    p.write("in/y.csv", "2");
    p.write("in/skip.txt", "3");
    p.write(
        "dvx.yaml",
        "stages:\n  conv:\n    foreach: [x, y]\n    do:\n      cmd: cp in/${item}.csv ${item}.out\n      deps: [\"in/${item}.csv\"]\n      outs: [\"${item}.out\"]\n  join:\n    cmd: cat x.out y.out > joined\n    deps: [x.out, y.out]\n    outs: [joined]\n  per:\n    input: {path: in, glob: \"/*.csv\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [per]\n",
    );
    let dag = p.dvx(&["dag"]).ok().stdout();
    assert!(dag.contains("join  <- conv@x, conv@y"), "{dag}");
    assert!(p
        .dvx(&["dag", "--dot"])
        .ok()
        .stdout()
        .contains("\"conv@x\" -> \"join\""));
    assert!(p
        .dvx(&["dag", "--mermaid"])
        .ok()
        .stdout()
        .starts_with("flowchart LR"));
    let ds = p.dvx(&["datums", "per", "--json"]).ok().json();
    let ids: Vec<&str> = ds
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["x.csv", "y.csv"]);
    let s = run(&p, &["join"]);
    assert_eq!(
        s["executed"], 3,
        "join and the two conv stages it needs: {s}"
    );
    assert_eq!(p.read("joined"), b"12");
    let rid = stage(&s, "join")["runs"][0].as_str().unwrap().to_string();
    let rec = p.dvx(&["show", &rid, "--json"]).ok().json();
    assert_eq!(rec["stage"], "join");
    assert_eq!(rec["cmd"][0], "cat x.out y.out > joined");
    let inputs: Vec<&str> = rec["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, vec!["x.out", "y.out"]);
    assert_eq!(
        rec["outputs"][0]["id"],
        blake3::hash(b"12").to_hex().as_str()
    );
    assert!(p
        .dvx(&["show", &rid[..8]])
        .ok()
        .stdout()
        .contains("command  cat x.out y.out > joined"));
}

#[test]
fn example_wine_quality_end_to_end() {
    let p = example("wine-quality");
    p.dvx(&["add", "data/wine.csv"]).ok();
    let s = run(&p, &[]);
    assert_eq!(s["executed"], 5, "{s}");
    let report: serde_json::Value =
        serde_json::from_slice(&p.read("reports/explore.ipynb")).unwrap();
    assert!(
        report.to_string().contains("bins = 8"),
        "explore.bins is injected: {report}"
    );
    let m: serde_json::Value = serde_json::from_slice(&p.read("metrics.json")).unwrap();
    assert!(m["rmse"].as_f64().unwrap() < 2.0, "{m}");
    let first = p.dvx(&["metrics", "show", "HEAD", "--json"]).ok().json();
    assert_eq!(first["metrics.json"], m);
    assert_eq!(run(&p, &[])["executed"], 0);
    let params = String::from_utf8(p.read("params.yaml")).unwrap();
    p.write("params.yaml", params.replace("l2: 0.1", "l2: 0.5"));
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "prepare")["state"], "skipped");
    assert_eq!(stage(&s, "train")["state"], "executed");
    p.write("params.yaml", params);
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "train")["state"], "restored", "{s}");
    assert_eq!(s["executed"], 0, "{s}");
    // The commit names the restored runs, so history shows the metrics that are on disk.
    assert_eq!(
        p.dvx(&["metrics", "show", "HEAD", "--json"]).ok().json(),
        first
    );
    let d = p
        .dvx(&["params", "diff", "HEAD~1", "HEAD", "--json"])
        .ok()
        .json();
    assert!(d.to_string().contains("train.l2"), "{d}");
}

#[test]
fn example_ndjson_batches_end_to_end() {
    let p = example("ndjson-batches");
    p.dvx(&["add", "data/batches"]).ok();
    let s = run(&p, &["-j", "4"]);
    assert_eq!(stage(&s, "summarize")["datums"]["executed"], 8, "{s}");
    let r: serde_json::Value = serde_json::from_slice(&p.read("report.json")).unwrap();
    assert_eq!(r["batches"], 8);
    let mut b3 = String::from_utf8(p.read("data/batches/batch-003.ndjson")).unwrap();
    b3.push_str("{\"user\":\"u1\",\"event\":\"buy\",\"amount\":5}\n");
    p.write("data/batches/batch-003.ndjson", b3);
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "summarize")["datums"]["executed"], 1, "{s}");
    assert_eq!(stage(&s, "report")["state"], "executed");
    fs::remove_file(p.p("data/batches/batch-007.ndjson")).unwrap();
    run(&p, &[]);
    assert!(!p.exists("summaries/batch-007.json"));
    let r: serde_json::Value = serde_json::from_slice(&p.read("report.json")).unwrap();
    assert_eq!(r["batches"], 7);
}

#[test]
fn metrics_and_params_diff_across_commits() {
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.1\n  layers: 2\n");
    p.write(
        "train.sh",
        "printf '{\"acc\": %s}' $(grep lr params.yaml | awk '{print 1-$2}') > metrics.json\n",
    );
    p.write(
        "dvx.yaml",
        "stages:\n  train:\n    cmd: sh train.sh\n    deps: [train.sh]\n    params: [train.lr, train.layers]\n    metrics:\n      - metrics.json: {cache: false}\n",
    );
    run(&p, &[]);
    p.dvx(&["tag", "v1"]).ok();
    let m = p.dvx(&["metrics", "show", "--json"]).ok().json();
    assert_eq!(m["metrics.json"]["acc"], 0.9);
    assert!(
        !strs(&p.status()["tracked"]).contains(&"metrics.json".to_string()),
        "cache: false is not tracked data"
    );
    p.write("params.yaml", "train:\n  lr: 0.3\n  layers: 2\n");
    let d = p.dvx(&["params", "diff", "--json"]).ok().json();
    assert_eq!(d.as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d[0]["key"], "params.yaml:train.lr");
    assert_eq!(d[0]["old"], 0.1);
    assert_eq!(d[0]["new"], 0.3);
    run(&p, &[]);
    let d = p
        .dvx(&["metrics", "diff", "v1", "HEAD", "--json"])
        .ok()
        .json();
    assert_eq!(d[0]["path"], "metrics.json");
    assert_eq!(d[0]["old"], 0.9);
    assert_eq!(d[0]["new"], 0.7);
    assert!((d[0]["change"].as_f64().unwrap() + 0.2).abs() < 1e-9);
    assert_eq!(
        p.dvx(&["metrics", "show", "v1", "--json"]).ok().json()["metrics.json"]["acc"],
        0.9
    );
    let text = p.dvx(&["params", "diff", "v1", "HEAD"]).ok().stdout();
    assert!(text.contains("train.lr"), "{text}");
}

#[test]
fn frozen_always_changed_persist_env_and_wdir() {
    let p = Project::new();
    p.write("sub/in.txt", "x");
    p.write(
        "dvx.yaml",
        "stages:\n  w:\n    wdir: sub\n    cmd: echo \"$GREETING $(cat in.txt)\" > out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n    env: {GREETING: hello}\n  always:\n    cmd: date +%s%N >> stamp.txt\n    outs:\n      - stamp.txt: {persist: true}\n    always_changed: true\n  frozen:\n    cmd: echo f > frozen.txt\n    outs: [frozen.txt]\n    frozen: true\n",
    );
    let s = run(&p, &[]);
    assert_eq!(p.read("sub/out.txt"), b"hello x\n");
    assert_eq!(stage(&s, "frozen")["state"], "frozen");
    assert!(!p.exists("frozen.txt"));
    run(&p, &[]);
    let stamps = String::from_utf8(p.read("stamp.txt")).unwrap();
    assert_eq!(
        stamps.lines().count(),
        2,
        "always_changed re-runs, persist keeps the old output: {stamps}"
    );
    let s = run(&p, &["--force", "frozen"]);
    assert_eq!(stage(&s, "frozen")["state"], "executed");
}

#[test]
fn ctrl_c_stops_children_and_keeps_finished_work() {
    let p = Project::new();
    for i in 0..6 {
        p.write(&format!("in/{i}"), format!("{i}"));
    }
    // Datums 0..2 are quick; the rest sleep. -j 6 starts them all at once.
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: if [ $(cat \"$DVX_INPUT\") -ge 3 ]; then sleep 37; fi; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n",
    );
    let child = p
        .cmd_in("", &["run", "-j", "6"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: sending SIGINT to a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed().as_secs() < 10, "children were stopped");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "{err}");
    // No sleeper is left behind.
    let ps = std::process::Command::new("sh")
        .args(["-c", "ps -eo args | grep -c '[s]leep 37' || true"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ps.stdout).trim(), "0");
    p.assert_fsck_clean();
    // The quick datums were kept: the next run only executes the rest.
    let s = p.dvx(&["run", "--json", "--dry-run"]).ok().json();
    let reasons = stage(&s, "s")["reasons"].to_string();
    assert!(reasons.contains("3 of 6 datums would execute"), "{s}");
}

#[test]
fn datum_flag_runs_one_datum_without_publishing() {
    let p = Project::new();
    for i in 0..3 {
        p.write(&format!("in/{i}.txt"), format!("{i}"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\" && echo $DVX_DATUM_ID >> ran.log\n    outs: [out]\n",
    );
    run(&p, &[]);
    p.write("in/1.txt", "changed");
    fs::remove_file(p.p("ran.log")).unwrap();
    let s = run(&p, &["--datum", "1.txt"]);
    assert_eq!(s["executed"], 1, "{s}");
    assert_eq!(p.read("ran.log"), b"1.txt\n");
    assert_eq!(
        p.read("out/1.txt"),
        b"1",
        "debugging one datum does not publish its output"
    );
    let err = p.dvx(&["run", "--datum", "nope.txt"]).fails();
    assert!(
        err.contains("no datum \"nope.txt\"") && err.contains("dvx datums s"),
        "{err}"
    );
    // A normal run then reuses that execution from the run cache.
    let s = run(&p, &[]);
    assert_eq!(stage(&s, "s")["datums"]["executed"], 0, "{s}");
    assert_eq!(p.read("out/1.txt"), b"changed");
}

/// An executable a stage makes comes back executable from the run cache.
#[test]
fn restored_outputs_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  build:\n    cmd: printf '#!/bin/sh\\necho hi\\n' > tool.sh && chmod 755 tool.sh\n    outs: [tool.sh]\n",
    );
    p.dvx(&["run"]).ok();
    std::fs::remove_file(p.p("tool.sh")).unwrap();
    let r = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(r["restored"], 1, "{r}");
    let mode = std::fs::metadata(p.p("tool.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}
