//! Unit tests of dvx.yaml parsing and validation; the parent declares this module `#[cfg(test)]`.

use super::*;

fn p(text: &str) -> Result<Pipeline> {
    parse(Path::new("dvx.yaml"), text)
}

fn err(text: &str) -> String {
    p(text).unwrap_err().to_string()
}

#[test]
fn parses_a_full_stage() {
    let pl = p(r#"
stages:
  train:
    cmd: [python train.py, echo done]
    deps: [train.py, data/features]
    outs:
      - model.pkl
      - logs: {cache: false, persist: true}
    metrics: [metrics.json]
    params: [train.lr, {other.yaml: [a.b]}]
    env: {SEED: 1}
    wdir: .
    retries: 2
    timeout: 10m
"#)
    .unwrap();
    let s = &pl.stages[0];
    assert_eq!(s.cmd, vec!["python train.py", "echo done"]);
    assert_eq!(s.outs[1].path, "logs");
    assert!(!s.outs[1].cache && s.outs[1].persist);
    assert_eq!(s.params.len(), 2);
    assert_eq!(s.timeout, Some(600));
    assert_eq!(s.env["SEED"], "1");
    assert_eq!(s.at, Pos { line: 3, column: 3 });
}

#[test]
fn errors_point_at_the_place() {
    assert_eq!(
            err("stages:\n  a:\n    cmd: x\n    dpes: [y]\n"),
            "dvx.yaml:4:5: stage `a`: unknown field `dpes`; expected one of: cmd, deps, outs, metrics, plots, params, env, wdir, retries, timeout, always_changed, frozen, input, image, network, resources, batch, executor, require_output, notebook, kernel, report, desc, meta"
        );
    assert_eq!(
        err("stages:\n  a:\n    cmd: x\n    executor: pbs\n"),
        "dvx.yaml:4:15: executor: \"pbs\" is not one of local, slurm, ray, kubernetes"
    );
    assert!(err("stages:\n  a:\n    cmd: x\n    resources: {cpus: 2}\n")
        .contains("only for stages that run in a container"));
    assert!(p(
        "stages:\n  a:\n    cmd: x\n    executor: slurm\n    resources: {cpus: 2, memory: 1g}\n"
    )
    .is_ok());
    assert!(p("stages:\n  a:\n    cmd: x\n    input: {path: d, glob: \"/*\"}\n    outs: [o]\n    executor: slurm\n    batch: 4\n").is_ok());
    assert!(p("stages:\n  a:\n    cmd: x\n    input: {path: d, glob: \"/*\"}\n    outs: [o]\n    executor: ray\n    batch: 4\n    resources: {cpus: 0.5, gpus: 1}\n").is_ok());
    assert!(
        err("stages:\n  a:\n    cmd: x\n    executor: slurm\n    network: true\n")
            .contains("only for stages that run in a container")
    );
    assert!(err("stages:\n  a:\n    cmd: x\n    retries: lots\n")
        .starts_with("dvx.yaml:4:14: retries: expected a whole number"));
    assert!(
        err("stages:\n  a:\n    deps: [x]\n").starts_with("dvx.yaml:2:3: stage `a`: missing `cmd`")
    );
    assert!(err("stages:\n  a:\n    cmd: x\n    outs: [../../etc]\n")
        .contains("leads outside the project"));
    assert!(err("stages: [\n").starts_with("dvx.yaml:"));
    assert!(
        err("stage:\n  a: {cmd: x}\n").starts_with("dvx.yaml:1:1: unknown top-level key `stage`")
    );
    // The shapes around the stages, which are taken out of the tree to be parsed.
    assert_eq!(
        err("- a\n"),
        "dvx.yaml:1:1: the top level must be a mapping with `stages:`"
    );
    assert_eq!(
        err("stages: [a]\n"),
        "dvx.yaml:1:9: stages: expected a mapping (key: value)"
    );
    assert!(err("triggers: []\n").starts_with("dvx.yaml:1:1: missing `stages:`"));
    assert!(
        err("stages:\n  a: {cmd: x}\nstagez: {}\n")
            .starts_with("dvx.yaml:3:1: unknown top-level key `stagez`"),
        "an unknown key is named even after `stages`"
    );
    let pl = p("triggers: {}\nstages:\n  b: {cmd: x}\n  a: {cmd: y}\n").unwrap();
    let names: Vec<&str> = pl.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["b", "a"], "stages keep the file's order");
}

#[test]
fn foreach_and_matrix_expand() {
    let pl = p(r#"
stages:
  conv:
    foreach: [a, b]
    do:
      cmd: convert ${item}.csv
      outs: ["out/${item}.parquet"]
  train:
    matrix:
      model: [cnn, rnn]
      lr: [0.1, 0.01]
    cmd: train ${item.model} ${item.lr} > ${output}/x
    outs: ["models/${item.model}-${item.lr}"]
"#)
    .unwrap();
    let names: Vec<&str> = pl.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "conv@a",
            "conv@b",
            "train@cnn-0.1",
            "train@cnn-0.01",
            "train@rnn-0.1",
            "train@rnn-0.01"
        ]
    );
    assert_eq!(pl.stages[1].cmd[0], "convert b.csv");
    assert_eq!(pl.stages[1].outs[0].path, "out/b.parquet");
    assert_eq!(pl.stages[3].cmd[0], "train cnn 0.01 > ${output}/x");
    assert!(
        err("stages:\n  s:\n    foreach: [a]\n    do:\n      cmd: x ${item.nope}\n")
            .contains("is not defined")
    );
    assert!(
        err("stages:\n  s:\n    foreach: [a, a]\n    do:\n      cmd: x\n")
            .contains("appears twice")
    );
    let pl = p("stages:\n  s:\n    foreach: [a, b]\n    do:\n      cmd: x\n      metrics:\n        - \"${item}.json\": {cache: false}\n").unwrap();
    assert_eq!(pl.stages[1].metrics[0].path, "b.json");
}

#[test]
fn container_fields() {
    let pl = p(r#"
stages:
  conv:
    image: localhost/tool:1.2@sha256:abc
    cmd: convert ${input} ${output}
    input: {path: raw}
    outs: [converted]
    network: true
    resources: {cpus: 0.5, memory: 512M, gpus: all}
    batch: 8
"#)
    .unwrap();
    let s = &pl.stages[0];
    assert_eq!(s.image.as_deref(), Some("localhost/tool:1.2@sha256:abc"));
    assert!(s.network);
    assert_eq!(s.batch, 8);
    assert_eq!(
        s.resources,
        Resources {
            cpus: Some("0.5".into()),
            memory: Some("512m".into()),
            gpus: Some("all".into())
        }
    );
    let plain = p("stages:\n  a:\n    cmd: x\n").unwrap();
    assert_eq!(
        (plain.stages[0].image.clone(), plain.stages[0].batch),
        (None, 1)
    );
    assert_eq!(
        err("stages:\n  a:\n    cmd: x\n    network: true\n"),
        "dvx.yaml:4:14: network: only for stages that run in a container (set `image`)"
    );
    assert_eq!(
        err("stages:\n  a:\n    cmd: x\n    image: busybox\n    network: yes please\n"),
        "dvx.yaml:5:14: network: expected true or false"
    );
    assert!(err("stages:\n  a:\n    cmd: x\n    image: [a]\n")
        .starts_with("dvx.yaml:4:12: image: expected a string"));
    assert!(err("stages:\n  a:\n    cmd: x\n    image: \"a b\"\n")
        .starts_with("dvx.yaml:4:12: image: expected NAME"));
    assert!(
        err("stages:\n  a:\n    cmd: x\n    image: b\n    resources: {memory: lots}\n")
            .starts_with("dvx.yaml:5:25: resources.memory: expected a size")
    );
    assert!(
        err("stages:\n  a:\n    cmd: x\n    image: b\n    resources: {cpus: 0}\n")
            .starts_with("dvx.yaml:5:23: resources.cpus")
    );
    assert!(
        err("stages:\n  a:\n    cmd: x\n    image: b\n    resources: {disk: 1}\n")
            .starts_with("dvx.yaml:5:17: resources: unknown field `disk`")
    );
    assert!(
        err("stages:\n  a:\n    cmd: x\n    image: b\n    batch: 4\n")
            .starts_with("dvx.yaml:5:12: batch: only for stages with `input`")
    );
}

#[test]
fn numbers_are_range_checked() {
    let t = |v: &str| p(&format!("stages:\n  a:\n    cmd: x\n    timeout: {v}\n"));
    assert_eq!(
        t("8760h").unwrap().stages[0].timeout,
        Some(MAX_TIMEOUT_SECS)
    );
    assert_eq!(
        t("525600m").unwrap().stages[0].timeout,
        Some(MAX_TIMEOUT_SECS)
    );
    for v in [
        "8761h",
        "31536001",
        "18446744073709551615h",
        "18446744073709551615s",
        "307445734561825861m",
    ] {
        let e = t(v).unwrap_err().to_string();
        assert!(
            e.starts_with("dvx.yaml:4:14: timeout: `") && e.contains("is too long"),
            "{v}: {e}"
        );
    }
    for v in ["0", "-1", "1.5h", "1d", "h", "99999999999999999999"] {
        assert!(
            t(v).unwrap_err()
                .to_string()
                .contains("timeout: expected seconds"),
            "{v}"
        );
    }
    let r = |v: &str| p(&format!("stages:\n  a:\n    cmd: x\n    retries: {v}\n"));
    assert_eq!(r("100").unwrap().stages[0].retries, 100);
    assert_eq!(
        r("101").unwrap_err().to_string(),
        "dvx.yaml:4:14: retries: at most 100"
    );
    assert!(r("4294967296").is_err());
    let res = |v: &str| {
        p(&format!(
            "stages:\n  a:\n    cmd: x\n    image: b\n    resources: {{{v}}}\n"
        ))
    };
    assert!(res("cpus: 4096, gpus: 1024, memory: 8589934591g").is_ok());
    for v in [
        "cpus: 4097",
        "cpus: 1e400",
        "cpus: .nan",
        "gpus: 1025",
        "memory: 8589934592g",
        "memory: 99999999999999999999",
    ] {
        assert!(res(v).is_err(), "{v}");
    }
    assert!(err("stages:\n  a:\n    cmd: x\n    outs: [\"a\\0b\"]\n").contains("NUL"));
}

#[test]
fn expansion_is_bounded_before_it_happens() {
    let matrix = |keys: usize, values: usize| {
        let mut y = String::from("stages:\n  s:\n    matrix:\n");
        for k in 0..keys {
            let v: Vec<String> = (0..values).map(|i| format!("v{i}")).collect();
            y.push_str(&format!("      k{k}: [{}]\n", v.join(", ")));
        }
        y + "    cmd: x\n"
    };
    assert_eq!(p(&matrix(2, 3)).unwrap().stages.len(), 9);
    let e = err(&matrix(8, 10));
    assert!(e.starts_with("dvx.yaml:3:5: matrix: 100000000 combinations; a pipeline may have at most 200000 stages"), "{e}");
    assert!(err(&matrix(70, 2)).contains("matrix: too many combinations"));
    // The limit counts the stages already there.
    let mut y = String::from("stages:\n  s:\n    foreach: [");
    y.push_str(
        &(0..MAX_STAGES)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    y.push_str("]\n    do: {cmd: x}\n  t:\n    matrix: {a: [1, 2]}\n    cmd: x\n");
    let e = err(&y);
    assert!(
        e.contains("matrix: 2 combinations; a pipeline may have at most"),
        "{e}"
    );
    // Long text times many entries.
    let long = "x".repeat(1 << 20);
    let y = format!(
        "stages:\n  s:\n    foreach: [{}]\n    do: {{cmd: {long}}}\n",
        (0..300)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(err(&y).contains("stage `s`: its 300 entries would generate more than 256 MiB"));
}

#[test]
fn text_that_is_not_utf8_is_placed() {
    let e = parse_bytes(Path::new("dvx.yaml"), b"stages:\n  a:\n    cmd: \xff\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("dvx.yaml:3:10: not valid UTF-8"), "{e}");
}

/// schemas/dvx.yaml.schema.json must describe exactly the fields this parser accepts.
#[test]
fn json_schema_is_in_step_with_the_parser() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/dvx.yaml.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let keys = |def: &str| -> Vec<String> {
        let mut k: Vec<String> = schema["$defs"][def]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    let mut fields: Vec<String> = STAGE_FIELDS.iter().map(|s| s.to_string()).collect();
    fields.sort();
    assert_eq!(keys("stage"), fields);
    let mut matrix = fields.clone();
    matrix.push("matrix".into());
    matrix.sort();
    assert_eq!(keys("matrixStage"), matrix);
    assert_eq!(keys("foreachStage"), vec!["do", "foreach"]);
    assert_eq!(keys("input"), vec!["glob", "path"]);
    assert_eq!(keys("outOptions"), vec!["cache", "persist"]);
    assert_eq!(keys("resources"), vec!["cpus", "gpus", "memory"]);
    // And every bundled example parses.
    for ex in ["wine-quality", "ndjson-batches"] {
        let f = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(ex)
            .join("dvx.yaml");
        parse(&f, &std::fs::read_to_string(&f).unwrap()).unwrap();
    }
}

#[test]
fn dvc_top_level_sections_are_read() {
    let pl = p(r#"
stages:
  t:
    cmd: x
    outs: [eval]
    metrics: [eval/m.json]
    plots:
      - eval/loss.csv: {x: step, y: loss, cache: false}
metrics: [eval/m.json, ./sub/]
params: [params.yaml, params.yaml]
plots:
  - eval/loss.csv
  - curve: {x: step, y: {eval/loss.csv: loss}}
artifacts:
  text-model:
    path: models/m.pkl
    type: model
    labels: [a]
    meta: {n: 1}
"#)
    .unwrap();
    assert_eq!(pl.sections.metrics, ["eval/m.json", "sub"]);
    assert_eq!(pl.sections.params, ["params.yaml"]);
    assert_eq!(pl.sections.plots[1].id, "curve");
    assert_eq!(pl.sections.plots[1].props["y"]["eval/loss.csv"], "loss");
    let a = &pl.sections.artifacts[0];
    assert_eq!(
        (a.name.as_str(), a.path.as_str()),
        ("text-model", "models/m.pkl")
    );
    assert_eq!(a.kind.as_deref(), Some("model"));
    let s = &pl.stages[0];
    assert!(!s.plots[0].cache);
    assert!(s.inside_own_out(&s.metrics[0]) && s.inside_own_out(&s.plots[0]));
    assert!(!s.inside_own_out(&s.outs[0]));
    crate::dag::Dag::build(&pl).unwrap();
}

#[test]
fn metrics_of_another_stage_inside_an_output_still_clash() {
    let e = p("stages:\n  a:\n    cmd: x\n    outs: [eval]\n  b:\n    cmd: y\n    metrics: [eval/m.json]\n")
        .and_then(|pl| crate::dag::Dag::build(&pl).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("lie inside one another"), "{e}");
}
