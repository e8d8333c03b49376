//! Lineage and audit: `dvx lineage`, `dvx show PATH@REV`, `dvx verify`, the indexes behind
//! them, and that gc keeps what lineage needs.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::common::*;

const PIPELINE: &str = "stages:
  upper:
    input: {path: in, glob: \"/*.txt\"}
    cmd: tr a-z A-Z < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID\"
    outs: [up]
  join:
    cmd: cat up/* > joined.txt
    deps: [up]
    outs: [joined.txt]
  count:
    cmd: wc -c < joined.txt > count.txt
    deps: [joined.txt]
    params: [k]
    outs: [count.txt]
";

/// Three stages, the first a datum stage over in/*.txt; data added, run once, tagged v1.
fn three_stage() -> Project {
    let p = Project::new();
    for i in 1..=3 {
        p.write(&format!("in/f{i}.txt"), format!("value {i}\n"));
    }
    p.write("params.yaml", "k: 2\n");
    p.write("dvx.yaml", PIPELINE);
    p.dvx(&["add", "in", "params.yaml", "-m", "raw data"]).ok();
    p.dvx(&["run", "-j", "1"]).ok();
    p.dvx(&["tag", "v1"]).ok();
    p
}

fn graph(p: &Project, args: &[&str]) -> Value {
    let mut a = vec!["lineage", "--json"];
    a.extend_from_slice(args);
    p.dvx(&a).ok().json()
}

fn nodes<'a>(g: &'a Value, ty: &str) -> Vec<&'a Value> {
    g["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["type"] == ty)
        .collect()
}

/// (stage, datum) of every run in the graph.
fn runs(g: &Value) -> BTreeSet<(String, String)> {
    nodes(g, "run")
        .iter()
        .map(|r| {
            (
                r["stage"].as_str().unwrap_or_default().to_string(),
                r["datum"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Files by path.
fn files(g: &Value) -> BTreeMap<String, Value> {
    nodes(g, "file")
        .into_iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f.clone(),
            )
        })
        .collect()
}

fn node<'a>(g: &'a Value, id: &str) -> &'a Value {
    g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

/// Targets of edges from `from` with relation `rel`.
fn targets<'a>(g: &'a Value, from: &str, rel: &str) -> Vec<&'a Value> {
    g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == from && e["rel"] == rel)
        .map(|e| node(g, e["to"].as_str().unwrap()))
        .collect()
}

fn object_at(p: &Project, rev: &str, path: &str) -> String {
    let ls = p.dvx(&["ls", rev, path, "--json"]).ok().json();
    ls.as_array()
        .and_then(|a| a.iter().find(|e| e["path"] == path))
        .and_then(|e| e["id"].as_str())
        .unwrap_or_else(|| panic!("{path} not in {rev}: {ls}"))
        .to_string()
}

fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

#[test]
fn datum_output_lineage_is_file_precise_and_survives_a_rerun() {
    let p = three_stage();
    let first = p.dvx(&["log", "--json"]).ok().json();
    let raw_commit = first.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // One datum output: its own run and its own input, nothing else.
    let g = graph(&p, &["up/f2.txt"]);
    assert_eq!(g["version"], 1);
    assert_eq!(g["direction"], "upstream");
    let root = node(&g, g["root"].as_str().unwrap());
    assert_eq!(root["path"], "up/f2.txt");
    assert_eq!(root["object"], hash(b"VALUE 2\n"));
    assert_eq!(root["origin"], "run");
    assert_eq!(
        runs(&g),
        BTreeSet::from([("upper".to_string(), "f2.txt".to_string())])
    );
    let run = targets(&g, root["id"].as_str().unwrap(), "produced_by")[0];
    assert_eq!(
        run["cmd"][0],
        "tr a-z A-Z < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID\""
    );
    assert_eq!(run["exit"], 0);
    assert!(run["commit"]["message"]
        .as_str()
        .unwrap()
        .starts_with("dvx run:"));
    let inputs = targets(&g, run["id"].as_str().unwrap(), "input");
    assert_eq!(inputs.len(), 1, "{g}");
    assert_eq!(inputs[0]["path"], "in/f2.txt");
    assert_eq!(inputs[0]["object"], hash(b"value 2\n"));
    assert_eq!(inputs[0]["origin"], "added");
    assert_eq!(inputs[0]["added"]["message"], "raw data");
    assert_eq!(inputs[0]["added"]["commit"], raw_commit);
    assert_eq!(inputs[0]["added"]["author"]["name"], "Tester");
    assert_eq!(inputs[0]["added"]["author"]["email"], "tester@example.com");

    // The end of the chain: every run, command, parameter and hand-added input.
    let g = graph(&p, &["count.txt"]);
    assert_eq!(
        runs(&g),
        BTreeSet::from([
            ("count".to_string(), String::new()),
            ("join".to_string(), String::new()),
            ("upper".to_string(), "f1.txt".to_string()),
            ("upper".to_string(), "f2.txt".to_string()),
            ("upper".to_string(), "f3.txt".to_string()),
        ])
    );
    let count = nodes(&g, "run")
        .into_iter()
        .find(|r| r["stage"] == "count")
        .unwrap();
    assert_eq!(count["cmd"][0], "wc -c < joined.txt > count.txt");
    assert_eq!(count["params"]["params.yaml:k"], 2);
    assert_eq!(count["user"], "Tester");
    let fs = files(&g);
    let added: BTreeSet<&str> = fs
        .iter()
        .filter(|(_, f)| f["origin"] == "added")
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        added,
        BTreeSet::from(["in/f1.txt", "in/f2.txt", "in/f3.txt"])
    );
    assert_eq!(fs["up"]["origin"], "folder");
    assert_eq!(fs["joined.txt"]["origin"], "run");
    // Each datum output is linked to the run of its own datum only.
    for i in 1..=3 {
        let f = &fs[&format!("up/f{i}.txt")];
        let r = targets(&g, f["id"].as_str().unwrap(), "produced_by");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["datum"], format!("f{i}.txt"));
        let ins = targets(&g, r[0]["id"].as_str().unwrap(), "input");
        assert_eq!(ins.len(), 1);
        assert_eq!(ins[0]["path"], format!("in/f{i}.txt"));
    }
    let v1_runs: BTreeMap<(String, String), String> = nodes(&g, "run")
        .iter()
        .map(|r| {
            (
                (
                    r["stage"].as_str().unwrap().to_string(),
                    r["datum"].as_str().unwrap_or("").to_string(),
                ),
                r["run"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    // Change one input and run again.
    p.write("in/f2.txt", "changed\n");
    p.dvx(&["add", "in", "-m", "new f2"]).ok();
    let s = p.dvx(&["run", "-j", "1", "--json"]).ok().json();
    assert_eq!(s["executed"], 3, "{s}");

    let new = graph(&p, &["count.txt"]);
    let old = graph(&p, &["count.txt@v1"]);
    assert_eq!(old, g, "the v1 answer does not change after a new run");
    let nf = files(&new);
    assert_eq!(nf["in/f2.txt"]["object"], hash(b"changed\n"));
    assert_eq!(nf["in/f2.txt"]["added"]["message"], "new f2");
    assert_eq!(nf["in/f1.txt"]["added"]["message"], "raw data");
    assert_eq!(nf["up/f2.txt"]["object"], hash(b"CHANGED\n"));
    assert_eq!(
        nf["count.txt"]["object"],
        object_at(&p, "HEAD", "count.txt")
    );
    let new_runs: BTreeMap<(String, String), String> = nodes(&new, "run")
        .iter()
        .map(|r| {
            (
                (
                    r["stage"].as_str().unwrap().to_string(),
                    r["datum"].as_str().unwrap_or("").to_string(),
                ),
                r["run"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The unchanged datums keep their runs; the changed one and everything after are new.
    for (k, id) in &v1_runs {
        let same = k.1 == "f1.txt" || k.1 == "f3.txt";
        assert_eq!(new_runs[k] == *id, same, "{k:?}");
    }
    // File-precise at the old revision too.
    let g = graph(&p, &["up/f2.txt@v1"]);
    let f = files(&g);
    assert_eq!(f["in/f2.txt"]["object"], hash(b"value 2\n"));
    assert_eq!(f["in/f2.txt"]["added"]["message"], "raw data");
    assert_eq!(runs(&g).len(), 1);
}

#[test]
fn downstream_and_depth() {
    let p = three_stage();
    let g = graph(&p, &["in/f2.txt", "--downstream"]);
    assert_eq!(g["direction"], "downstream");
    assert_eq!(
        runs(&g),
        BTreeSet::from([
            ("count".to_string(), String::new()),
            ("join".to_string(), String::new()),
            ("upper".to_string(), "f2.txt".to_string()),
        ])
    );
    let fs = files(&g);
    let paths: BTreeSet<&str> = fs.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        BTreeSet::from(["in/f2.txt", "up/f2.txt", "joined.txt", "count.txt"])
    );
    assert_eq!(fs["in/f2.txt"]["added"]["message"], "raw data");

    // Downstream of the parameters file: only the stage that reads it.
    let g = graph(&p, &["params.yaml", "--downstream"]);
    assert_eq!(
        runs(&g).len(),
        0,
        "params are recorded as values, not files"
    );

    // --depth N follows N runs and marks where it stopped.
    let g = graph(&p, &["count.txt", "--depth", "1"]);
    assert_eq!(
        runs(&g),
        BTreeSet::from([("count".to_string(), String::new())])
    );
    let fs = files(&g);
    assert_eq!(fs["joined.txt"]["truncated"], true);
    assert_eq!(fs["count.txt"]["truncated"], false);
    let g = graph(&p, &["count.txt", "--depth", "0"]);
    assert_eq!(runs(&g).len(), 0);
    assert_eq!(g["nodes"].as_array().unwrap().len(), 1);
    let g = graph(&p, &["in/f1.txt", "--downstream", "--depth", "1"]);
    assert_eq!(
        runs(&g),
        BTreeSet::from([("upper".to_string(), "f1.txt".to_string())])
    );

    // The readable tree names runs, commands and who added the data.
    let text = p.dvx(&["lineage", "up/f2.txt"]).ok().stdout();
    assert!(text.starts_with("up/f2.txt ("), "{text}");
    assert!(text.contains("upper [f2.txt]"), "{text}");
    assert!(text.contains("cmd: tr a-z A-Z"), "{text}");
    assert!(
        text.contains("added by Tester <tester@example.com>") && text.contains("\"raw data\""),
        "{text}"
    );
}

/// A tiny well-formedness check: every tag closes in order; returns the element names seen.
fn xml_elements(s: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "misnested </{name}>"
            );
            continue;
        }
        let name = tag
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        seen.push(name.clone());
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    seen
}

#[test]
fn dot_mermaid_and_svg() {
    let p = three_stage();
    let dot = p.dvx(&["lineage", "count.txt", "--dot"]).ok().stdout();
    assert!(dot.starts_with("digraph lineage {"), "{dot}");
    assert!(dot.trim_end().ends_with('}'));
    assert!(dot.contains("label=\"count.txt ("), "{dot}");
    assert!(dot.contains("[label=\"produced_by\"]"));
    assert!(dot.contains("in/f3.txt"));
    let mm = p.dvx(&["lineage", "count.txt", "--mermaid"]).ok().stdout();
    assert!(mm.starts_with("flowchart BT\n"), "{mm}");
    assert!(mm.contains("-->|input|"), "{mm}");
    assert!(mm.contains("upper [f2.txt]"), "{mm}");

    let svg = p.dvx(&["lineage", "count.txt", "--svg"]).ok().stdout();
    assert!(svg.starts_with("<?xml"));
    let els = xml_elements(&svg);
    assert_eq!(els[0], "svg");
    let g = graph(&p, &["count.txt"]);
    let n = g["nodes"].as_array().unwrap().len();
    assert_eq!(els.iter().filter(|e| *e == "g").count(), n);
    assert_eq!(
        els.iter().filter(|e| *e == "line").count(),
        g["edges"].as_array().unwrap().len()
    );
    for f in ["count.txt", "joined.txt", "in/f1.txt", "up/f3.txt", "run "] {
        assert!(svg.contains(f), "{f} missing from the picture");
    }
    // Only one format at a time.
    p.dvx(&["lineage", "count.txt", "--dot", "--json"]).fails();
}

#[test]
fn show_path_at_rev_prints_the_producing_run() {
    let p = three_stage();
    let s1 = p.dvx(&["show", "up/f2.txt", "--json"]).ok().json();
    assert_eq!(s1["stage"], "upper");
    assert_eq!(s1["datum"], "f2.txt");
    // Input sizes are recorded.
    assert_eq!(s1["inputs"][0]["path"], "in/f2.txt");
    assert_eq!(s1["inputs"][0]["size"], 8);
    let run = s1["id"].as_str().unwrap().to_string();
    // The same record by id, and from inside a folder by a relative path.
    let by_id = p.dvx(&["show", &run[..12], "--json"]).ok().json();
    assert_eq!(by_id, s1);
    let rel = p.dvx_in("up", &["show", "f2.txt", "--json"]).ok().json();
    assert_eq!(rel["id"], s1["id"]);

    p.write("in/f2.txt", "other\n");
    p.dvx(&["add", "in"]).ok();
    p.dvx(&["run"]).ok();
    let now = p.dvx(&["show", "up/f2.txt", "--json"]).ok().json();
    assert_ne!(now["id"], s1["id"]);
    let then = p.dvx(&["show", "up/f2.txt@v1", "--json"]).ok().json();
    assert_eq!(then["id"], s1["id"]);
    // Folder deps are recorded with the bytes of all their files.
    let join = p.dvx(&["show", "joined.txt", "--json"]).ok().json();
    assert_eq!(join["inputs"][0]["path"], "up");
    assert_eq!(join["inputs"][0]["kind"], "dir");
    assert_eq!(join["inputs"][0]["size"], 8 + 6 + 8);

    let text = p.dvx(&["show", "count.txt"]).ok().stdout();
    assert!(text.contains("stage    count"), "{text}");
    assert!(text.contains("param    params.yaml:k = 2"), "{text}");
    assert!(text.contains("input    file"), "{text}");
}

#[test]
fn verify_reports_identical_and_differing_outputs() {
    let p = three_stage();
    // A datum run, by path.
    let r = p.dvx(&["verify", "up/f2.txt", "--json"]).ok().json();
    assert_eq!(r["identical"], true, "{r}");
    assert_eq!(r["datum"], "f2.txt");
    assert_eq!(r["outputs"][0]["path"], "up");
    assert_eq!(r["outputs"][0]["identical"], true);
    // A stage run that reads a folder other runs made, by run id.
    let id = p.dvx(&["show", "count.txt", "--json"]).ok().json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = p.dvx(&["verify", &id[..10]]).ok().stdout();
    assert!(out.contains("identical  count.txt"), "{out}");
    assert!(out.contains("all 1 outputs bit-identical"), "{out}");
    // The workspace is untouched.
    assert_eq!(p.read("count.txt"), b"24\n");

    // A command that writes something new every time.
    p.write(
        "dvx.yaml",
        format!(
            "{PIPELINE}  stamp:\n    cmd: mkdir -p st && date +%s%N > st/now.txt && echo fixed > st/same.txt\n    deps: [count.txt]\n    outs: [st]\n"
        ),
    );
    p.dvx(&["run", "stamp"]).ok();
    let r = p.dvx(&["verify", "st", "--json"]);
    let j = r.json();
    assert!(!r.out.status.success());
    assert_eq!(j["identical"], false);
    assert_eq!(j["exit"], 0);
    assert_eq!(j["outputs"][0]["path"], "st");
    assert_eq!(j["outputs"][0]["identical"], false);
    assert_eq!(j["outputs"][0]["files"], serde_json::json!(["st/now.txt"]));
    let text = p.dvx(&["verify", "st/now.txt"]);
    assert!(!text.out.status.success());
    assert!(text.stdout().contains("DIFFERENT  st"), "{}", text.stdout());
    assert!(text.stdout().contains("st/now.txt"));
}

#[test]
fn unknown_paths_revisions_and_runs_are_errors() {
    let p = three_stage();
    let e = p.dvx(&["lineage", "nope.txt"]).fails();
    assert!(e.contains("error: nope.txt is not in HEAD"), "{e}");
    assert!(e.contains("hint:"), "{e}");
    let e = p.dvx(&["lineage", "count.txt@nosuchrev"]).fails();
    assert!(e.contains("nosuchrev"), "{e}");
    let e = p.dvx(&["show", "in/f1.txt"]).fails();
    assert!(
        e.contains("no single recorded run produced in/f1.txt"),
        "{e}"
    );
    assert!(e.contains("dvx lineage in/f1.txt"), "{e}");
    let e = p.dvx(&["verify", "abcdef12"]).fails();
    assert!(e.contains("unknown run"), "{e}");
    let e = p.dvx(&["show", "../outside.txt"]).fails();
    assert!(e.contains("error:"), "{e}");
    // Data added by hand has lineage: the commit that brought it.
    let g = graph(&p, &["in/f1.txt"]);
    assert_eq!(g["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(g["nodes"][0]["added"]["message"], "raw data");
}

#[test]
fn gc_keeps_records_and_reindex_answers_the_same() {
    let p = three_stage();
    let before = graph(&p, &["count.txt@v1"]);
    p.write("in/f2.txt", "changed\n");
    p.dvx(&["add", "in"]).ok();
    p.dvx(&["run"]).ok();
    p.dvx(&["gc"]).ok();
    p.assert_fsck_clean();
    let after = graph(&p, &["count.txt@v1"]);
    assert_eq!(before, after);
    for r in nodes(&after, "run") {
        let id = r["run"].as_str().unwrap();
        p.dvx(&["show", id]).ok();
        p.dvx(&["logs", id]).ok();
    }
    // Rebuilding the indexes from records and commits gives the same answers.
    let head = graph(&p, &["count.txt"]);
    let down = graph(&p, &["in/f1.txt", "--downstream"]);
    let r = p.dvx(&["fsck", "--reindex"]).ok();
    assert!(
        r.stderr().contains("rebuilt the lineage index"),
        "{}",
        r.stderr()
    );
    assert_eq!(graph(&p, &["count.txt@v1"]), before);
    assert_eq!(graph(&p, &["count.txt"]), head);
    assert_eq!(graph(&p, &["in/f1.txt", "--downstream"]), down);
}

#[test]
fn files_inside_folder_outputs_and_deps_have_their_own_lineage() {
    let p = Project::new();
    p.write("data/x.csv", "1,2\n");
    p.write("data/y.csv", "3,4\n");
    p.write(
        "train.sh",
        "#!/bin/sh\nmkdir -p model/sub\ncat data/*.csv > model/sub/w.bin\necho '{}' > model.json\n",
    );
    p.write(
        "dvx.yaml",
        "stages:\n  train:\n    cmd: sh train.sh\n    deps: [data, train.sh]\n    outs: [model, model.json]\n",
    );
    p.dvx(&["add", "data", "train.sh", "-m", "data and code"])
        .ok();
    p.dvx(&["run"]).ok();
    // A file deep in an output folder (next to a sibling output `model.json`).
    let g = graph(&p, &["model/sub/w.bin"]);
    assert_eq!(
        runs(&g),
        BTreeSet::from([("train".to_string(), String::new())])
    );
    let fs = files(&g);
    assert_eq!(fs["model/sub/w.bin"]["origin"], "run");
    assert_eq!(fs["data"]["origin"], "added");
    assert_eq!(fs["train.sh"]["added"]["message"], "data and code");
    // One file of a folder dep leads downstream to the run that read the folder.
    let g = graph(&p, &["data/y.csv", "--downstream"]);
    assert_eq!(
        runs(&g),
        BTreeSet::from([("train".to_string(), String::new())])
    );
    let outs: BTreeSet<String> = files(&g).into_keys().collect();
    assert_eq!(
        outs,
        BTreeSet::from(["data/y.csv".into(), "model".into(), "model.json".into()])
    );
    let r = p.dvx(&["verify", "model/sub/w.bin", "--json"]).ok().json();
    assert_eq!(r["identical"], true, "{r}");
    assert_eq!(r["outputs"].as_array().unwrap().len(), 2);
}

/// Records travel with the data: a clone (and a later pull) answers lineage as the origin does.
#[test]
fn lineage_survives_push_clone_and_pull() {
    let a = three_stage();
    let remote = tempfile::Builder::new()
        .prefix("dvx-remote-")
        .tempdir()
        .expect("tempdir");
    let url = remote.path().join("r").display().to_string();
    a.dvx(&["remote", "add", "origin", &url]).ok();
    a.dvx(&["push"]).ok();

    let b = Project::empty();
    b.dvx(&["clone", &url, "c"]).ok();
    let at_a = |args: &[&str]| graph(&a, args);
    let at_c = |args: &[&str]| {
        let mut v = vec!["lineage", "--json"];
        v.extend_from_slice(args);
        b.dvx_in("c", &v).ok().json()
    };
    assert_eq!(at_c(&["count.txt"]), at_a(&["count.txt"]));
    assert_eq!(
        at_c(&["in/f2.txt", "--downstream"]),
        at_a(&["in/f2.txt", "--downstream"])
    );
    // The record itself, and its captured output, came too.
    let run = at_c(&["up/f2.txt"])["nodes"][1]["run"]
        .as_str()
        .unwrap()
        .to_string();
    b.dvx_in("c", &["show", &run]).ok();
    b.dvx_in("c", &["logs", &run]).ok();

    // New work at the origin arrives with its lineage on pull.
    a.write("in/f2.txt", "changed\n");
    a.dvx(&["add", "in", "-m", "new f2"]).ok();
    a.dvx(&["run"]).ok();
    a.dvx(&["push"]).ok();
    b.dvx_in("c", &["pull"]).ok();
    let new = at_c(&["up/f2.txt"]);
    assert_eq!(new, at_a(&["up/f2.txt"]));
    assert_eq!(files(&new)["in/f2.txt"]["added"]["message"], "new f2");
    // The old answer too, by commit id (tags stay local unless pushed).
    let v1 = at_a(&["count.txt@v1"]);
    let at = format!("count.txt@{}", v1["commit"].as_str().unwrap());
    assert_eq!(at_c(&[&at]), v1);
}

/// Code kept by git and values from params.yaml: verify finds the script in the recorded git
/// commit (the workspace copy has changed since) and writes the parameter file from the
/// recorded values (the workspace's has changed too).
#[test]
fn verify_takes_code_from_git_and_parameters_from_the_record() {
    let p = Project::new();
    p.write("data/in.txt", "abc\n");
    p.dvx(&["add", "data"]).ok();
    p.write(
        "gen.sh",
        "#!/bin/sh\nscale=$(sed -n 's/^  scale: //p' params.yaml)\necho \"$(cat data/in.txt) x$scale\" > out.txt\n",
    );
    p.write("params.yaml", "model:\n  scale: 3\n");
    p.write(
        "dvx.yaml",
        "stages:\n  gen:\n    cmd: sh gen.sh\n    deps: [gen.sh, data/in.txt]\n    params: [model.scale]\n    outs: [out.txt]\n",
    );
    git(
        p.path(),
        &[
            "add",
            "gen.sh",
            "params.yaml",
            "dvx.yaml",
            ".gitignore",
            "dvx.lock",
        ],
    );
    git(p.path(), &["commit", "-q", "-m", "code"]);
    p.dvx(&["run"]).ok();
    assert_eq!(p.read("out.txt"), b"abc x3\n");
    // Both change in the workspace after the run; verify must use what the run used.
    p.write("gen.sh", "#!/bin/sh\necho changed > out.txt\n");
    p.write("params.yaml", "model:\n  scale: 9\n");
    let v = p.dvx(&["verify", "out.txt", "--json"]).ok().json();
    assert_eq!(v["identical"], true, "{v}");
    // Without git history for the script (a new, uncommitted version and no record of the
    // old one), verify says which input it cannot find.
    git(p.path(), &["rm", "-q", "--cached", "gen.sh"]);
    std::fs::remove_dir_all(p.p(".git")).unwrap();
    let err = p.dvx(&["verify", "out.txt"]).fails();
    assert!(err.contains("gen.sh"), "{err}");
}
