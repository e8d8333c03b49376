//! `dvx import-dvc` on a project DVC itself made (DVC from PyPI): the pipeline and data come
//! over, every file is checked against DVC's md5, stages DVC calls up to date do not run, and
//! a parameter change re-runs the stages DVC would.

use std::process::Command;

use crate::common::*;
use crate::dvclive::dvclive_python;

fn dvc(p: &Project, dvc: &std::path::Path, args: &[&str]) -> String {
    let o = Command::new(dvc)
        .args(args)
        .current_dir(p.path())
        .env("DVC_NO_ANALYTICS", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dvc {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const DVC_YAML: &str = "# DVC's get-started shape: prepare, then train.
stages:
  prepare:
    cmd: sh prepare.sh
    deps:
      - data/raw.csv
      - prepare.sh
    params:
      - prepare.scale
    outs:
      - prepared
  train:
    cmd: sh train.sh
    deps:
      - prepared
      - train.sh
    params:
      - train.epochs
    outs:
      - model.txt
    metrics:
      - metrics.json:
          cache: false
";

/// A DVC project as DVC makes it: `dvc init`, `dvc add`, `dvc repro`, all committed to git.
fn dvc_project(dvc_bin: &std::path::Path) -> Project {
    let p = Project::empty();
    git(p.path(), &["init", "-q", "-b", "main"]);
    dvc(&p, dvc_bin, &["init", "-q"]);
    let rows: String = (1..=200).map(|i| format!("{i},{}\n", i * 2)).collect();
    p.write("data/raw.csv", rows);
    dvc(&p, dvc_bin, &["add", "-q", "data/raw.csv"]);
    p.write("params.yaml", "prepare:\n  scale: 3\ntrain:\n  epochs: 5\n");
    p.write(
        "prepare.sh",
        "s=$(sed -n 's/^  scale: //p' params.yaml)\nmkdir -p prepared\nawk -F, -v s=$s '{print $1 * s}' data/raw.csv > prepared/x.txt\n",
    );
    p.write(
        "train.sh",
        "wc -l < prepared/x.txt > model.txt\nprintf '{\"acc\": 0.9679648548256273}\\n' > metrics.json\n",
    );
    p.write("dvc.yaml", DVC_YAML);
    dvc(&p, dvc_bin, &["repro", "-q"]);
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "a DVC project"]);
    assert!(dvc(&p, dvc_bin, &["status"]).contains("up to date"));
    p
}

#[test]
fn a_dvc_project_comes_over_up_to_date() {
    let python = match dvclive_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dvc_bin = python.with_file_name("dvc");
    let p = dvc_project(&dvc_bin);
    // Outputs missing from the workspace come from DVC's cache.
    std::fs::remove_dir_all(p.p("prepared")).unwrap();
    std::fs::remove_file(p.p("data/raw.csv")).unwrap();

    let rep = p.dvx(&["import-dvc", "--json"]).ok().json();
    assert_eq!(rep["pipeline"], true, "{rep}");
    assert_eq!(strs(&rep["tracked"]), ["data/raw.csv"]);
    let mut from_cache = strs(&rep["from_cache"]);
    from_cache.sort();
    assert_eq!(from_cache, ["data/raw.csv", "prepared/x.txt"], "{rep}");
    assert_eq!(strs(&rep["adopted"]), ["prepare", "train"], "{rep}");
    assert_eq!(rep["stale"], serde_json::json!([]));
    let dvx_yaml = String::from_utf8(p.read("dvx.yaml")).unwrap();
    assert!(
        dvx_yaml.ends_with(DVC_YAML),
        "the text is kept, comments included"
    );

    // Nothing to do: status is clean and run executes nothing.
    assert!(p
        .dvx(&["status", "--exit-code"])
        .ok()
        .stdout()
        .contains("up to date"));
    let s = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(s["executed"], 0, "{s}");
    // The records name DVC, and metrics read every digit.
    let lin = p.dvx(&["show", "model.txt", "--json"]).ok().json();
    assert_eq!(lin["executor"], "dvc");
    let m = p.dvx(&["metrics", "show", "--json"]).ok().json();
    assert_eq!(m["metrics.json"]["acc"].to_string(), "0.9679648548256273");

    // A parameter change re-runs the stages DVC would re-run.
    p.write("params.yaml", "prepare:\n  scale: 4\ntrain:\n  epochs: 5\n");
    let dvc_says = dvc(&p, &dvc_bin, &["status"]);
    assert!(
        dvc_says.contains("prepare") && !dvc_says.contains("train:"),
        "{dvc_says}"
    );
    let s = p.dvx(&["run", "--json"]).ok().json();
    let states: Vec<(String, String)> = s["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["stage"].as_str().unwrap().into(),
                x["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    // prepare's output changes, so train runs as DVC's repro would run it next.
    assert_eq!(
        states,
        [
            ("prepare".to_string(), "executed".to_string()),
            ("train".into(), "executed".into())
        ],
        "{s}"
    );
    assert_eq!(
        p.read("prepared/x.txt")
            .split(|b| *b == b'\n')
            .next()
            .unwrap(),
        b"4"
    );
    p.assert_fsck_clean();
}

#[test]
fn what_cannot_come_over_is_refused_with_its_place() {
    let p = Project::empty();
    let err = p.dvx(&["import-dvc"]).fails();
    assert!(err.contains("not a DVC project"), "{err}");
    std::fs::create_dir(p.p(".dvc")).unwrap();
    p.write(
        "dvc.yaml",
        "vars:\n  - lr: 1\nstages:\n  a:\n    cmd: echo ${lr}\n",
    );
    let out = p.cmd_in("", &["import-dvc"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dvc.yaml:1:") && err.contains("dvc.yaml:5:"),
        "{err}"
    );
    assert!(err.contains("interpolation"), "{err}");
    assert!(
        !p.exists("dvx.yaml") && !p.exists(".dvx"),
        "nothing changed"
    );
}
