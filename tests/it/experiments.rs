//! Experiments: `dvx run -S` overrides without editing the parameters files, `--queue` and
//! `dvx exp run`, `dvx exp show|apply|branch|remove`.

use crate::common::Project;
use serde_json::Value;

const PARAMS: &str =
    "# model settings\nfeaturize:\n  scale: 2   # multiplier\ntrain:\n  l2: 0.1\n  epochs: 3\n";

/// featurize (reads featurize.scale) → train (reads train.l2; fails with exit 3 when it is
/// negative; sleeps $SLEEP seconds) → metrics.json.
fn project() -> Project {
    let p = Project::new();
    p.write("params.yaml", PARAMS);
    p.write(
        "feat.py",
        "import re\nt = open('params.yaml').read()\nscale = float(re.search(r'scale:\\s*([-\\d.]+)', t).group(1))\nopen('feats.txt', 'w').write(f'{scale * 10}\\n')\n",
    );
    p.write(
        "train.py",
        "import re, json, os, sys, time\nt = open('params.yaml').read()\nl2 = float(re.search(r'l2:\\s*([-\\d.e]+)', t).group(1))\nif l2 < 0:\n    print('l2 must not be negative', file=sys.stderr)\n    sys.exit(3)\nf = float(open('feats.txt').read())\ntime.sleep(float(os.environ.get('SLEEP', '0')))\njson.dump({'acc': round(f * l2, 4)}, open('metrics.json', 'w'))\n",
    );
    p.write(
        "dvx.yaml",
        "stages:\n  featurize:\n    cmd: python3 feat.py\n    deps: [feat.py]\n    params: [featurize.scale]\n    outs: [feats.txt]\n  train:\n    cmd: python3 train.py\n    deps: [feats.txt, train.py]\n    params: [train.l2]\n    metrics: [metrics.json]\n",
    );
    p.dvx(&["run"]).ok();
    p
}

fn experiments(v: &Value) -> &Vec<Value> {
    v["experiments"].as_array().expect("experiments")
}

fn row<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {table}"))
}

#[test]
fn an_override_reruns_only_what_it_reaches_and_edits_no_file() {
    let p = project();
    let head = p.head();
    let gitignore = p.read(".gitignore");
    let r = p
        .dvx(&["--json", "run", "-S", "train.l2=0.5", "--name", "half"])
        .ok()
        .json();
    let e = &experiments(&r)[0];
    assert_eq!(e["name"], "half");
    assert_eq!(e["status"], "done");
    // featurize is not reached by train.l2: only train executes.
    assert_eq!(
        (e["executed"].as_u64(), e["restored"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(e["metrics"]["metrics.json"]["acc"], 10.0);
    assert_eq!(e["overrides"]["params.yaml:train.l2"], 0.5);
    // The workspace, its parameters file and HEAD are as they were.
    assert_eq!(p.read("params.yaml"), PARAMS.as_bytes());
    let m: Value = serde_json::from_slice(&p.read("metrics.json")).unwrap();
    assert_eq!(m["acc"], 2.0);
    assert_eq!(p.head(), head);
    assert_eq!(p.read(".gitignore"), gitignore);
    assert!(
        !p.exists(".dvx/exps/half"),
        "the experiment's folder is removed"
    );
    // Its commit holds its results, on top of HEAD, and says what it changed.
    let commit = e["commit"].as_str().unwrap();
    let cat = p
        .dvx(&["cat", &format!("{commit}:metrics.json")])
        .ok()
        .stdout();
    assert_eq!(serde_json::from_str::<Value>(&cat).unwrap()["acc"], 10.0);
    let log = p.dvx(&["--json", "log", commit, "-n", "2"]).ok().json();
    assert_eq!(log[1]["id"], head.as_str());
    assert!(
        log[0]["message"].as_str().unwrap().contains("train.l2=0.5"),
        "{log}"
    );
    // Its run record names the experiment and the value.
    let run = log[0]["runs"][0].as_str().unwrap();
    let rec = p.dvx(&["--json", "show", run]).ok().json();
    let rec = if rec["record"].is_object() {
        &rec["record"]
    } else {
        &rec
    };
    assert_eq!(rec["experiment"]["name"], "half", "{rec}");
    assert_eq!(rec["experiment"]["overrides"]["params.yaml:train.l2"], 0.5);
    assert_eq!(rec["params"]["params.yaml:train.l2"], 0.5);
    // Reaching featurize re-runs both; the values already in the file re-run nothing.
    let r = p
        .dvx(&["--json", "run", "-S", "featurize.scale=3"])
        .ok()
        .json();
    assert_eq!(experiments(&r)[0]["executed"], 2);
    let r = p.dvx(&["--json", "run", "-S", "train.l2=0.1"]).ok().json();
    assert_eq!(experiments(&r)[0]["executed"], 0);
    assert_eq!(experiments(&r)[0]["metrics"]["metrics.json"]["acc"], 2.0);
    // The same value again is a run-cache hit.
    let r = p.dvx(&["--json", "run", "-S", "train.l2=0.5"]).ok().json();
    assert_eq!(
        (
            experiments(&r)[0]["executed"].as_u64(),
            experiments(&r)[0]["restored"].as_u64()
        ),
        (Some(0), Some(1))
    );
    // The project's own status is untouched: up to date, nothing changed.
    let st = p.status();
    assert_eq!(st["clean"], true, "{st}");
    p.assert_fsck_clean();
}

#[test]
fn a_grid_makes_every_combination_and_exp_show_compares_them() {
    let p = project();
    let r = p
        .dvx(&[
            "--json",
            "run",
            "-S",
            "train.l2=1,2",
            "-S",
            "featurize.scale=3,4",
            "-j",
            "2",
        ])
        .ok()
        .json();
    let exps = experiments(&r);
    assert_eq!(exps.len(), 4);
    let mut got: Vec<(f64, f64, f64)> = exps
        .iter()
        .map(|e| {
            (
                e["overrides"]["params.yaml:train.l2"].as_f64().unwrap(),
                e["overrides"]["params.yaml:featurize.scale"]
                    .as_f64()
                    .unwrap(),
                e["metrics"]["metrics.json"]["acc"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(
        got,
        [
            (1.0, 3.0, 30.0),
            (1.0, 4.0, 40.0),
            (2.0, 3.0, 60.0),
            (2.0, 4.0, 80.0)
        ]
    );
    let t = p
        .dvx(&["--json", "exp", "show", "--sort-by", "acc", "--desc"])
        .ok()
        .json();
    let names: Vec<&str> = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 5);
    assert_eq!(names[0], "workspace");
    let accs: Vec<f64> = t["rows"].as_array().unwrap()[1..]
        .iter()
        .map(|r| r["metrics"]["acc"].as_f64().unwrap())
        .collect();
    assert_eq!(accs, [80.0, 60.0, 40.0, 30.0]);
    assert_eq!(row(&t, "workspace")["params"]["train.l2"], 0.1);
    assert_eq!(
        t["params"],
        serde_json::json!(["featurize.scale", "train.l2"])
    );
    // The text table marks overridden values; CSV has one line per row.
    let text = p.dvx(&["exp", "show"]).ok().stdout();
    assert!(text.lines().next().unwrap().contains("train.l2"), "{text}");
    assert!(text.contains("2*") && text.contains("4*"), "{text}");
    let csv = p.dvx(&["exp", "show", "--csv"]).ok().stdout();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert_eq!(
        csv.lines().next(),
        Some("name,status,commit,created,featurize.scale,train.l2,acc")
    );
    let e = p.dvx(&["exp", "show", "--sort-by", "nope"]).fails();
    assert!(e.contains("no column \"nope\""), "{e}");
}

/// Start and end of each experiment's train execution, from its run record.
fn train_spans(p: &Project, exps: &[Value]) -> Vec<(String, String)> {
    exps.iter()
        .map(|e| {
            let log = p
                .dvx(&["--json", "log", e["commit"].as_str().unwrap(), "-n", "1"])
                .ok()
                .json();
            let run = log[0]["runs"][0].as_str().unwrap().to_string();
            let rec = p.dvx(&["--json", "show", &run]).ok().json();
            let rec = if rec["record"].is_object() {
                rec["record"].clone()
            } else {
                rec
            };
            (
                rec["start"].as_str().unwrap().to_string(),
                rec["end"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn overlapping(spans: &[(String, String)]) -> usize {
    let mut n = 0;
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let (s1, e1) = (parse(&a.0), parse(&a.1));
            let (s2, e2) = (parse(&b.0), parse(&b.1));
            if s1 < e2 && s2 < e1 {
                n += 1;
            }
        }
    }
    n
}

fn parse(t: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(t).unwrap()
}

#[test]
fn a_queue_runs_side_by_side_within_jobs() {
    let p = project();
    let q = p
        .dvx(&["--json", "run", "-S", "train.l2=3,4,5,6", "--queue"])
        .ok()
        .json();
    assert!(experiments(&q).iter().all(|e| e["status"] == "queued"));
    let t = p.dvx(&["--json", "exp", "show"]).ok().json();
    assert_eq!(t["rows"].as_array().unwrap().len(), 5);
    assert!(t["rows"][1]["metrics"].as_object().unwrap().is_empty());
    let mut c = p.cmd_in("", &["--json", "exp", "run", "-j", "2"]);
    c.env("SLEEP", "1");
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let exps = experiments(&r);
    assert_eq!(exps.len(), 4);
    assert!(exps.iter().all(|e| e["status"] == "done"), "{r}");
    // Two at a time: executions of different experiments overlapped.
    assert!(overlapping(&train_spans(&p, exps)) >= 1);
    // Nothing is left queued; one at a time never overlaps.
    let again = p.dvx(&["--json", "exp", "run"]).ok().json();
    assert_eq!(experiments(&again).len(), 0);
    p.dvx(&["run", "-S", "train.l2=7,8", "--queue"]).ok();
    let mut c = p.cmd_in("", &["--json", "exp", "run", "-j", "1"]);
    c.env("SLEEP", "0.5");
    let r: Value = serde_json::from_slice(&c.output().unwrap().stdout).unwrap();
    assert_eq!(overlapping(&train_spans(&p, experiments(&r))), 0);
}

#[test]
fn apply_brings_an_experiment_into_the_workspace_and_branch_keeps_one() {
    let p = project();
    let r = p
        .dvx(&[
            "--json",
            "run",
            "-S",
            "train.l2=2",
            "-S",
            "featurize.scale=3",
        ])
        .ok()
        .json();
    let e = &experiments(&r)[0];
    let name = e["name"].as_str().unwrap().to_string();
    let commit = e["commit"].as_str().unwrap().to_string();
    let other = p
        .dvx(&["--json", "run", "-S", "train.l2=0.5", "--name", "other"])
        .ok()
        .json();
    assert_eq!(experiments(&other)[0]["status"], "done");
    p.dvx(&["exp", "apply", &name]).ok();
    // Values set where they stood, comments kept.
    assert_eq!(
        String::from_utf8(p.read("params.yaml")).unwrap(),
        PARAMS
            .replace("scale: 2 ", "scale: 3 ")
            .replace("l2: 0.1", "l2: 2")
    );
    let m: Value = serde_json::from_slice(&p.read("metrics.json")).unwrap();
    assert_eq!(m["acc"], 60.0);
    assert_eq!(String::from_utf8(p.read("feats.txt")).unwrap(), "30.0\n");
    assert_eq!(p.head(), commit);
    let st = p.status();
    assert_eq!(st["clean"], true, "{st}");
    assert!(
        st["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "skipped"),
        "{st}"
    );
    let dry = p.dvx(&["--json", "run", "--dry-run"]).ok().json();
    assert_eq!(dry["executed"], 0, "{dry}");
    // HEAD moved: the other experiment can no longer be applied, but can become a branch.
    let err = p.dvx(&["exp", "apply", "other"]).fails();
    assert!(
        err.contains("HEAD moved since experiment other started"),
        "{err}"
    );
    assert!(err.contains("dvx exp branch other"), "{err}");
    p.dvx(&["exp", "branch", "other", "l2-half"]).ok();
    p.dvx(&["checkout", "l2-half"]).ok();
    let m: Value = serde_json::from_slice(&p.read("metrics.json")).unwrap();
    assert_eq!(m["acc"], 10.0);
    // remove forgets them.
    p.dvx(&["exp", "remove", "--all"]).ok();
    let t = p.dvx(&["--json", "exp", "show"]).ok().json();
    assert_eq!(t["rows"].as_array().unwrap().len(), 1);
    p.assert_fsck_clean();
}

#[test]
fn bad_overrides_and_failing_experiments_say_what_went_wrong() {
    let p = Project::new();
    p.write("params.yaml", PARAMS);
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    cmd: echo hi > out.txt\n    params: [train.l2]\n    outs: [out.txt]\n",
    );
    let e = p.dvx(&["run", "-S", "train.l2=1"]).fails();
    assert!(e.contains("experiments start from a commit"), "{e}");
    let p = project();
    let r = p.dvx(&["run", "-S", "train.l3=1"]);
    assert_eq!(r.out.status.code(), Some(2));
    let e = r.stderr();
    assert!(e.contains("params.yaml has no parameter `train.l3`"), "{e}");
    assert!(e.contains("+train.l3=VALUE"), "{e}");
    let e = p.dvx(&["run", "-S", "conf.yaml:a=1"]).fails();
    assert!(
        e.contains("the parameters file conf.yaml does not exist"),
        "{e}"
    );
    let e = p.dvx(&["run", "-S", "train"]).fails();
    assert!(e.contains("no `=`"), "{e}");
    let e = p.dvx(&["run", "--queue"]).fails();
    assert!(e.contains("--set"), "{e}");
    let e = p.dvx(&["exp", "apply", "nope"]).fails();
    assert!(e.contains("no experiment named \"nope\""), "{e}");
    // A name names one experiment, or numbers several; a name in use is refused.
    let r = p
        .dvx(&[
            "--json",
            "run",
            "-S",
            "train.l2=2,3",
            "--name",
            "pair",
            "--queue",
        ])
        .ok()
        .json();
    let names: Vec<&str> = experiments(&r)
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pair-1", "pair-2"]);
    let e = p
        .dvx(&["run", "-S", "train.l2=4", "--name", "pair-1", "--queue"])
        .fails();
    assert!(
        e.contains("an experiment named pair-1 already exists"),
        "{e}"
    );
    p.dvx(&["exp", "remove", "pair-1", "pair-2"]).ok();
    // A new key is allowed with `+`.
    let r = p
        .dvx(&["--json", "run", "-S", "+train.depth=4", "--name", "deep"])
        .ok()
        .json();
    assert_eq!(experiments(&r)[0]["status"], "done");
    assert!(!String::from_utf8(p.read("params.yaml"))
        .unwrap()
        .contains("depth"));
    // One variant fails: the other finishes; the run says so with the stage's error.
    let r = p.dvx(&["--json", "run", "-S", "train.l2=-1,1"]);
    assert_eq!(r.out.status.code(), Some(1), "{}", r.stderr());
    let exps = r.json()["experiments"].as_array().unwrap().clone();
    let failed: Vec<&Value> = exps.iter().filter(|e| e["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    let err = failed[0]["error"].as_str().unwrap();
    assert!(err.contains("stage train") && err.contains("3"), "{err}");
    assert!(exps.iter().any(|e| e["status"] == "done"));
    let t = p.dvx(&["--json", "exp", "show"]).ok().json();
    let f = failed[0]["name"].as_str().unwrap();
    assert_eq!(row(&t, f)["status"], "failed");
    assert_eq!(p.read("params.yaml"), PARAMS.as_bytes());
    p.assert_fsck_clean();
}
