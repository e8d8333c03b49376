//! Property tests: the dvx.yaml parser and the stage graph never panic, whatever the text;
//! they return an error or a pipeline.

use std::path::Path;

use dvx_engine::dag::Dag;
use dvx_engine::spec;
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failures are kept in proptest-regressions/ beside this file and replayed first.
        ..ProptestConfig::default()
    }
}

/// Parse and, when that works, build the graph: both must return instead of panicking.
fn check(text: &str) {
    if let Ok(p) = spec::parse(Path::new("dvx.yaml"), text) {
        let _ = Dag::build(&p);
    }
}

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "18446744073709551615",
    "18446744073709551615h",
    "18446744073709551615s",
    "99999999999999999999m",
    "4294967296",
    "inf",
    ".nan",
    "1e308",
    "0.5",
    "10m",
    "x",
    "\"\"",
    "[]",
    "{}",
    "[a, b]",
    "{a: b}",
    "\"${item}\"",
    "\"${item.x}\"",
    "\"${key}\"",
    "\"${\"",
    "../x",
    "/abs",
    "a/b",
    "a//b/",
    ".",
    "true",
    "~",
    "\"\\0\"",
    "all",
    "512m",
    "9223372036854775807g",
    "o",
    "o/inner",
    "\"*.csv\"",
    "\"d/*/x\"",
    "{path: o, glob: \"/*\"}",
    "{cpus: 1e400, memory: 0g, gpus: 99999}",
    "[o, {o: {cache: false}}]",
];

const FIELDS: &[&str] = &[
    "cmd",
    "deps",
    "outs",
    "metrics",
    "params",
    "env",
    "wdir",
    "retries",
    "timeout",
    "always_changed",
    "frozen",
    "input",
    "image",
    "network",
    "resources",
    "batch",
    "desc",
    "matrix",
    "foreach",
    "do",
    "bogus",
];

/// A pipeline built from real field names and awkward values.
fn pipeline() -> impl Strategy<Value = String> {
    let field = (0..FIELDS.len(), 0..VALUES.len());
    let stage = (
        "[a-c@.]{1,2}",
        prop::collection::vec(field, 0..7),
        any::<bool>(),
    );
    prop::collection::vec(stage, 0..5).prop_map(|stages| {
        let mut s = String::from("stages:\n");
        for (name, fields, with_cmd) in stages {
            s.push_str(&format!("  {name}:\n"));
            if with_cmd {
                s.push_str("    cmd: echo\n");
            }
            let mut seen = std::collections::BTreeSet::new();
            for (f, v) in fields {
                if seen.insert(f) {
                    s.push_str(&format!("    {}: {}\n", FIELDS[f], VALUES[v]));
                }
            }
        }
        s
    })
}

const BASE: &str = "stages:
  prep:
    foreach: [a, b]
    do:
      cmd: convert ${item} > out/${item}
      deps: [\"raw/${item}.csv\"]
      outs: [\"out/${item}\"]
      timeout: 10m
  train:
    matrix:
      model: [cnn, rnn]
      lr: [0.1, 0.01]
    cmd: train ${item.model} ${item.lr}
    deps: [out, \"raw/*.csv\"]
    outs: [\"models/${item.model}-${item.lr}\"]
    params: [train.lr, {other.yaml: [a.b]}]
    retries: 2
  pack:
    image: busybox
    cmd: tar ${input} ${output}
    input: {path: models, glob: \"/*\"}
    outs: [packed]
    resources: {cpus: 0.5, memory: 512m, gpus: 1}
    batch: 4
";

/// Small edits to a valid pipeline: insert, delete or replace a character somewhere.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (any::<Index>(), 0u8..3, prop::char::any());
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = BASE.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(p) = spec::parse_bytes(Path::new("dvx.yaml"), &bytes) {
            let _ = Dag::build(&p);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z:\\[\\]{}, \\n\\-\"'$@./*]{0,200}") {
        check(&text);
    }

    #[test]
    fn awkward_values_never_panic(text in pipeline()) {
        check(&text);
    }

    #[test]
    fn edited_pipelines_never_panic(text in mutated()) {
        check(&text);
    }
}

#[test]
fn the_base_pipeline_is_valid() {
    let p = spec::parse(Path::new("dvx.yaml"), BASE).unwrap();
    Dag::build(&p).unwrap();
}
