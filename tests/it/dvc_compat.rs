//! A dvc.yaml as DVC users write it: top-level metrics, params, plots and artifacts, metrics
//! inside an output folder, and metrics printed exactly as written.

use crate::common::*;

/// DVC's own layout: stages with `plots` and `meta`, and the four top-level sections.
const DVC_YAML: &str = r#"stages:
  train:
    cmd: sh train.sh
    deps: [train.sh]
    params: [train.lr]
    outs: [model.pkl, eval]
    metrics:
      - eval/metrics.json: {cache: false}
    plots:
      - eval/loss.csv: {x: step, y: loss}
    meta: {owner: ml-team}
metrics:
  - eval/metrics.json
params:
  - params.yaml
plots:
  - eval/loss.csv
  - loss-curve:
      template: linear
      x: step
      y:
        eval/loss.csv: loss
artifacts:
  model:
    path: model.pkl
    type: model
    desc: the trained model
    labels: [cnn, baseline]
"#;

#[test]
fn a_dvc_yaml_with_top_level_sections_runs_and_shows_them() {
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.1\n");
    p.write(
        "train.sh",
        "mkdir -p eval\nprintf '{\"acc\": 0.9679648548256273, \"loss\": 0.1}' > eval/metrics.json\nprintf 'step,loss\\n0,1\\n1,0.5\\n' > eval/loss.csv\necho model > model.pkl\n",
    );
    p.write("dvx.yaml", DVC_YAML);
    p.dvx(&["run"]).ok();
    assert!(p.exists("eval/metrics.json"));

    // The number is printed as written, text and JSON alike.
    let show = p.dvx(&["metrics", "show"]).ok().stdout();
    assert!(show.contains("0.9679648548256273"), "{show}");
    let j = p.dvx(&["metrics", "show", "--json"]).ok().json();
    assert_eq!(
        j["eval/metrics.json"]["acc"].to_string(),
        "0.9679648548256273",
        "{j}"
    );
    let committed = p.dvx(&["metrics", "show", "HEAD", "--json"]).ok().json();
    assert_eq!(
        committed["eval/metrics.json"]["acc"].to_string(),
        "0.9679648548256273",
        "{committed}"
    );

    // A changed figure shows in the diff with all its digits.
    p.write(
        "eval/metrics.json",
        r#"{"acc": 0.9679648548256279, "loss": 0.1}"#,
    );
    let d = p.dvx(&["metrics", "diff", "--json"]).ok().json();
    let text = d.to_string();
    assert!(text.contains("0.9679648548256273"), "{text}");
    assert!(text.contains("0.9679648548256279"), "{text}");

    // Top-level params files are compared key by key.
    p.write("params.yaml", "train:\n  lr: 0.2\n");
    let d = p.dvx(&["params", "diff", "--json"]).ok().json();
    let text = d.to_string();
    assert!(
        text.contains("params.yaml") && text.contains("train.lr"),
        "{text}"
    );

    // Artifacts, as text and JSON.
    let a = p.dvx(&["artifacts", "--json"]).ok().json();
    assert_eq!(a[0]["name"], "model", "{a}");
    assert_eq!(a[0]["path"], "model.pkl");
    assert_eq!(a[0]["type"], "model");
    assert_eq!(a[0]["desc"], "the trained model");
    assert_eq!(strs(&a[0]["labels"]), vec!["cnn", "baseline"]);
    let text = p.dvx(&["artifacts"]).ok().stdout();
    assert!(
        text.contains("model.pkl") && text.contains("cnn, baseline"),
        "{text}"
    );
    p.assert_fsck_clean();
}

#[test]
fn top_level_metrics_inside_an_output_folder_are_shown() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  eval:\n    cmd: \"mkdir -p eval && echo 'acc: 0.5' > eval/m.yaml\"\n    outs: [eval]\nmetrics: [eval]\n",
    );
    p.dvx(&["run"]).ok();
    let j = p.dvx(&["metrics", "show", "--json"]).ok().json();
    assert_eq!(j["eval/m.yaml"]["acc"], 0.5, "{j}");
    // The committed output folder holds the metrics the commit shows.
    let j = p.dvx(&["metrics", "show", "HEAD", "--json"]).ok().json();
    assert_eq!(j["eval/m.yaml"]["acc"], 0.5, "{j}");
}

#[test]
fn malformed_top_level_sections_are_refused_where_written() {
    let p = Project::new();
    let cases = [
        (
            "stages: {}\nartifacts:\n  Model:\n    path: m.pkl\n",
            "dvx.yaml:3:3: artifact name `Model`",
        ),
        (
            "stages: {}\nartifacts:\n  model:\n    type: model\n",
            "dvx.yaml:3:3: artifact `model`: missing `path`",
        ),
        (
            "stages: {}\nartifacts:\n  model:\n    path: m.pkl\n    lables: [a]\n",
            "dvx.yaml:5:5: artifact `model`: unknown field `lables`",
        ),
        (
            "stages: {}\nplots:\n  - loss:\n      y_lable: x\n",
            "dvx.yaml:4:7: plots: unknown property `y_lable`",
        ),
        (
            "stages: {}\nmetrics:\n  - ../m.json\n",
            "dvx.yaml:3:5: metrics: `../m.json` leads outside the project",
        ),
        (
            "stages: {}\nparams: {a: b}\n",
            "dvx.yaml:2:9: params: expected a string or a list of strings",
        ),
        (
            "stages: {}\nvars2: []\n",
            "dvx.yaml:2:1: unknown top-level key `vars2`",
        ),
    ];
    for (yaml, want) in cases {
        p.write("dvx.yaml", yaml);
        let r = p.dvx(&["status"]);
        assert_eq!(r.out.status.code(), Some(2), "{yaml}");
        let e = r.stderr();
        assert!(e.contains(want), "{yaml}\n{e}");
        assert!(e.contains("hint:"), "{e}");
    }
}
