//! Notebook stages: real notebooks run by papermill (from tests/services/notebook.sh) as
//! stages, their keys, failures, verification and HTML pages (opened in Chromium).

use std::process::Command;

use serde_json::{json, Value};

use crate::common::*;

/// papermill, or a skip (said on stderr) when it cannot be installed.
macro_rules! need_papermill {
    () => {
        if papermill().is_none() {
            eprintln!(
                "skipped: papermill could not be installed (tests/services/notebook.sh needs PyPI)"
            );
            return;
        }
    };
}

/// An nbformat 4 notebook of (cell type, source, tags).
fn notebook(cells: &[(&str, &str, &[&str])]) -> String {
    let cells: Vec<Value> = cells
        .iter()
        .enumerate()
        .map(|(i, (kind, src, tags))| {
            let mut c = json!({
                "cell_type": kind, "id": format!("c{i}"), "source": src,
                "metadata": if tags.is_empty() { json!({}) } else { json!({"tags": tags}) },
            });
            if *kind == "code" {
                c["outputs"] = json!([]);
                c["execution_count"] = Value::Null;
            }
            c
        })
        .collect();
    serde_json::to_string_pretty(&json!({
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }))
    .unwrap()
}

fn run(p: &Project) -> Value {
    p.dvx(&["run", "--json"]).ok().json()
}

fn state(summary: &Value, stage: &str) -> String {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == stage)
        .unwrap_or_else(|| panic!("no stage {stage} in {summary}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn read_json(p: &Project, rel: &str) -> Value {
    serde_json::from_slice(&p.read(rel)).unwrap()
}

/// The sources of an executed notebook's cells tagged `tag`.
fn tagged(nb: &Value, tag: &str) -> Vec<String> {
    nb["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["metadata"]["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x == tag))
        })
        .map(|c| match &c["source"] {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            v => v.as_str().unwrap_or("").to_string(),
        })
        .collect()
}

const TRAIN_YAML: &str = "stages:\n  train:\n    notebook: notebooks/train.ipynb\n    params: [train.lr, train.epochs]\n    outs: [out.txt]\n    report: reports/train.ipynb\n";

fn train_notebook(last: &str) -> String {
    notebook(&[
        (
            "markdown",
            "# Training\nThe defaults below are replaced by `params.yaml`'s.",
            &[],
        ),
        ("code", "lr = 0.1\nepochs = 1", &["parameters"]),
        ("code", last, &[]),
    ])
}

#[test]
fn a_notebook_runs_with_its_parameters_and_only_its_cells_make_it_stale() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.5\n  epochs: 3\n");
    let body = "print('product', lr * epochs)\nopen('out.txt', 'w').write(str(lr * epochs))";
    p.write("notebooks/train.ipynb", train_notebook(body));
    p.write("dvx.yaml", TRAIN_YAML);
    assert_eq!(state(&run(&p), "train"), "executed");
    assert_eq!(String::from_utf8(p.read("out.txt")).unwrap(), "1.5");
    let report = read_json(&p, "reports/train.ipynb");
    let injected = tagged(&report, "injected-parameters");
    assert_eq!(injected.len(), 1, "{report}");
    assert!(
        injected[0].contains("lr = 0.5") && injected[0].contains("epochs = 3"),
        "{injected:?}"
    );
    assert!(report.to_string().contains("product 1.5"), "{report}");
    // The report is an output, versioned and shown like any other.
    let rec = p
        .dvx(&["show", "reports/train.ipynb", "--json"])
        .ok()
        .json();
    assert_eq!(rec["notebook"]["path"], "notebooks/train.ipynb", "{rec}");
    assert_eq!(rec["notebook"]["report"], "reports/train.ipynb");
    assert!(
        rec["outputs"].to_string().contains("reports/train.ipynb"),
        "{rec}"
    );
    let text = p.dvx(&["show", "reports/train.ipynb"]).ok().stdout();
    assert!(
        text.contains("notebook notebooks/train.ipynb -> reports/train.ipynb"),
        "{text}"
    );
    let stored = p.dvx(&["cat", "HEAD:reports/train.ipynb"]).ok().out.stdout;
    assert_eq!(stored, p.read("reports/train.ipynb"));

    // Saved again after running it in Jupyter: outputs, counts, ids and metadata change,
    // the cells do not.
    let mut resaved = report.clone();
    resaved["cells"].as_array_mut().unwrap().retain(|c| {
        !c["metadata"]["tags"]
            .to_string()
            .contains("injected-parameters")
    });
    resaved["metadata"]["widgets"] = json!({"state": {}});
    p.write(
        "notebooks/train.ipynb",
        serde_json::to_string(&resaved).unwrap(),
    );
    assert_eq!(state(&run(&p), "train"), "skipped");

    // Editing one cell runs it again.
    p.write(
        "notebooks/train.ipynb",
        train_notebook(&body.replace("lr * epochs)", "lr * epochs * 2)")),
    );
    let s = run(&p);
    assert_eq!(state(&s, "train"), "executed", "{s}");
    assert!(
        s.to_string().contains("dep notebooks/train.ipynb changed"),
        "{s}"
    );
    assert_eq!(String::from_utf8(p.read("out.txt")).unwrap(), "3.0");
    // So does a parameter.
    p.write("params.yaml", "train:\n  lr: 0.25\n  epochs: 3\n");
    assert_eq!(state(&run(&p), "train"), "executed");
    assert!(
        tagged(&read_json(&p, "reports/train.ipynb"), "injected-parameters")[0]
            .contains("lr = 0.25")
    );
}

#[test]
fn a_raising_cell_fails_the_stage_with_its_error_and_keeps_the_partial_notebook() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.5\n  epochs: 3\n");
    p.write(
        "notebooks/train.ipynb",
        notebook(&[
            ("code", "lr = 0.1\nepochs = 1", &["parameters"]),
            ("code", "print('before the failure')", &[]),
            ("code", "\nraise ValueError(f'lr {lr} is too large')", &[]),
            ("code", "open('out.txt', 'w').write('never')", &[]),
        ]),
    );
    p.write("dvx.yaml", TRAIN_YAML);
    let out = p.dvx(&["run", "--json"]);
    let err = out.stderr();
    let s = out.json();
    assert_eq!(state(&s, "train"), "failed", "{s}");
    let failure = &s["failures"][0];
    let message = failure["error"].as_str().unwrap();
    assert!(
        message.contains(
            "cell 3, In [4] (`raise ValueError(f'lr {lr} is too large')`): ValueError: lr 0.5 is too large"
        ),
        "{message}"
    );
    assert!(err.contains("hint:"), "{err}");
    // The record keeps the partly executed notebook; its page shows where it stopped.
    let run_id = failure["run"].as_str().unwrap();
    let rec = p.dvx(&["show", run_id, "--json"]).ok().json();
    assert!(rec["notebook"]["executed"].is_string(), "{rec}");
    let text = p.dvx(&["show", run_id]).ok().stdout();
    assert!(
        text.contains(", partly") && text.contains("--html"),
        "{text}"
    );
    let page = p.dvx(&["show", run_id, "--html", "-"]).ok().stdout();
    assert!(page.contains("before the failure"), "{page}");
    assert!(page.contains("ValueError"), "{page}");
    assert!(!page.contains('\u{1b}'), "no terminal colours in the page");
    assert!(!p.exists("out.txt"));
    let logs = p.dvx(&["logs", run_id]).ok().stdout();
    assert!(logs.contains("ValueError"), "{logs}");
}

#[test]
fn a_missing_kernel_and_a_missing_papermill_are_named() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.5\n  epochs: 3\n");
    p.write("notebooks/train.ipynb", train_notebook("print(lr)"));
    p.write(
        "dvx.yaml",
        TRAIN_YAML.replace("    report:", "    kernel: no-such-kernel\n    report:"),
    );
    let s = p.dvx(&["run", "--json"]).json();
    let message = s["failures"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("`no-such-kernel`") && message.contains("jupyter kernelspec list"),
        "{s}"
    );

    p.write("dvx.yaml", TRAIN_YAML);
    let out = p
        .cmd_in("", &["run"])
        .env("DVX_PAPERMILL", "/nowhere/papermill")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("papermill (`/nowhere/papermill`) was not found"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("pip install papermill ipykernel"),
        "{err}"
    );
}

#[test]
fn a_notebook_without_a_parameters_cell_warns_and_gets_them_on_top() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.5\n  epochs: 3\n");
    p.write(
        "notebooks/train.ipynb",
        notebook(&[("code", "open('out.txt', 'w').write(str(lr * epochs))", &[])]),
    );
    p.write("dvx.yaml", TRAIN_YAML);
    let out = p.dvx(&["run"]).ok();
    assert!(
        out.stderr().contains("has no cell tagged `parameters`"),
        "{}",
        out.stderr()
    );
    let report = read_json(&p, "reports/train.ipynb");
    assert_eq!(
        report["cells"][0]["metadata"]["tags"],
        json!(["injected-parameters"]),
        "{report}"
    );
    assert_eq!(String::from_utf8(p.read("out.txt")).unwrap(), "1.5");
}

#[test]
fn verify_ignores_what_changes_on_every_run_and_says_what() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "train:\n  lr: 0.5\n  epochs: 3\n");
    p.write(
        "notebooks/train.ipynb",
        train_notebook("import time\ntime.sleep(0.05)\nopen('out.txt', 'w').write(str(lr * epochs))\nlr * epochs"),
    );
    p.write("dvx.yaml", TRAIN_YAML);
    run(&p);
    let out = p.dvx(&["verify", "reports/train.ipynb"]).ok();
    let text = out.stdout();
    assert!(
        text.contains("identical  reports/train.ipynb (an executed notebook"),
        "{text}"
    );
    assert!(text.contains("metadata.papermill.start_time"), "{text}");
    assert!(text.contains("identical  out.txt"), "{text}");
    let j = p
        .dvx(&["verify", "reports/train.ipynb", "--json"])
        .ok()
        .json();
    assert_eq!(j["identical"], true, "{j}");
    let report = j["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == "reports/train.ipynb")
        .unwrap();
    assert!(
        strs(&report["ignored"]).contains(&"cells[].metadata.execution".to_string()),
        "{j}"
    );
}

#[test]
fn a_percent_format_script_runs_as_a_notebook() {
    need_papermill!();
    let p = Project::new();
    p.write("params.yaml", "n: 4\n");
    p.write(
        "notebooks/explore.py",
        "# %% [markdown]\n# # Squares\n\n# %% tags=[\"parameters\"]\nn = 2\n\n# %%\nsquares = [i * i for i in range(n)]\nprint(squares)\nopen('squares.txt', 'w').write(str(squares))\n",
    );
    p.write(
        "dvx.yaml",
        "stages:\n  explore:\n    notebook: notebooks/explore.py\n    params: [n]\n    outs: [squares.txt]\n    report: reports/explore.ipynb\n",
    );
    assert_eq!(state(&run(&p), "explore"), "executed");
    assert_eq!(
        String::from_utf8(p.read("squares.txt")).unwrap(),
        "[0, 1, 4, 9]"
    );
    let report = read_json(&p, "reports/explore.ipynb");
    assert_eq!(report["cells"][0]["cell_type"], "markdown", "{report}");
    assert!(tagged(&report, "injected-parameters")[0].contains("n = 4"));
    // Blank lines around cells are not part of them.
    let script = String::from_utf8(p.read("notebooks/explore.py")).unwrap();
    p.write(
        "notebooks/explore.py",
        script.replace("\n\n# %%\n", "\n\n\n# %%\n"),
    );
    assert_eq!(state(&run(&p), "explore"), "skipped");
}

#[test]
fn a_datum_stage_notebook_gets_each_input_path() {
    need_papermill!();
    let p = Project::new();
    p.write("data/a.txt", "one two three\n");
    p.write("data/b.txt", "four five\n");
    p.dvx(&["add", "data"]).ok();
    p.write(
        "notebooks/count.ipynb",
        notebook(&[
            ("code", "input_path = ''\noutput_path = ''", &["parameters"]),
            ("code", "import os\nwords = len(open(input_path).read().split())\nopen(os.path.join(output_path, os.path.basename(input_path) + '.n'), 'w').write(str(words))", &[]),
        ]),
    );
    p.write(
        "dvx.yaml",
        "stages:\n  count:\n    notebook: notebooks/count.ipynb\n    input: {path: data, glob: \"/*.txt\"}\n    outs: [counts]\n",
    );
    run(&p);
    assert_eq!(String::from_utf8(p.read("counts/a.txt.n")).unwrap(), "3");
    assert_eq!(String::from_utf8(p.read("counts/b.txt.n")).unwrap(), "2");
    let executed = read_json(&p, "counts/a.txt.ipynb");
    assert!(
        tagged(&executed, "injected-parameters")[0].contains("a.txt"),
        "{executed}"
    );
    p.write("data/b.txt", "four five six\n");
    let s = run(&p);
    assert_eq!(s["stages"][0]["datums"]["executed"], 1, "{s}");
    let j = p.dvx(&["verify", "counts/b.txt.n", "--json"]).ok().json();
    assert_eq!(j["identical"], true, "{j}");
}

#[test]
fn the_executed_notebook_renders_as_a_page_in_chromium() {
    need_papermill!();
    let Some(pw) = crate::browser::playwright() else {
        eprintln!("skipped: no browser (DVX_SKIP_BROWSER_TESTS=1)");
        return;
    };
    let p = Project::new();
    p.write("params.yaml", "rows: 3\n");
    // A PNG drawn without plotting libraries, a pandas table, a stream, and a failure.
    let png = "import struct, zlib\nfrom IPython.display import Image, display\ndef png(w, h):\n    raw = b''.join(b'\\x00' + bytes([200, 40, 40]) * w for _ in range(h))\n    def chunk(t, d):\n        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)\n    return b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')\ndisplay(Image(data=png(40, 20)))";
    p.write(
        "notebooks/report.ipynb",
        notebook(&[
            ("markdown", "# Wine report\n\nA **bold** claim and `code`.", &[]),
            ("code", "rows = 1", &["parameters"]),
            ("code", "import pandas as pd\npd.DataFrame({'x': range(rows), 'y': [i * i for i in range(rows)]})", &[]),
            ("code", "print('rows:', rows)", &[]),
            ("code", png, &[]),
            ("markdown", "## The end", &[]),
            ("code", "1 / 0", &[]),
        ]),
    );
    p.write(
        "dvx.yaml",
        "stages:\n  report:\n    notebook: notebooks/report.ipynb\n    params: [rows]\n    report: reports/report.ipynb\n",
    );
    let s = p.dvx(&["run", "--json"]).json();
    let run_id = s["failures"][0]["run"]
        .as_str()
        .unwrap_or_else(|| panic!("{s}"))
        .to_string();
    let out = crate::browser::artefacts();
    let page = out.join("notebook.html");
    p.dvx(&["show", &run_id, "--html", page.to_str().unwrap()])
        .ok();
    let shot = out.join("notebook.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/notebook.mjs");
    let o = Command::new("node")
        .arg(script)
        .arg(&page)
        .arg(&shot)
        .env("DVX_PLAYWRIGHT_DIR", &pw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(seen["fetched"], json!([]), "nothing fetched: {seen}");
    assert_eq!(seen["cells"], 8, "7 cells and the injected one: {seen}");
    assert_eq!(
        strs(&seen["markdownHeadings"]),
        ["Wine report", "The end"],
        "{seen}"
    );
    assert!(
        seen["injected"][0].as_str().unwrap().contains("rows = 3"),
        "{seen}"
    );
    assert!(
        strs(&seen["streams"]).iter().any(|s| s.contains("rows: 3")),
        "{seen}"
    );
    assert_eq!(seen["tables"], 1, "{seen}");
    assert_eq!(
        seen["images"],
        json!([{"loaded": true, "width": 40}]),
        "{seen}"
    );
    let errors = strs(&seen["errors"]);
    assert!(
        errors.iter().any(|e| e.contains("ZeroDivisionError")),
        "{seen}"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5000);
}
