//! Several inputs combined into datums as in Pachyderm: cross, union, join and group. Each
//! combination has its own key, so changing one file re-runs only the combinations holding it.

use std::fs;

use crate::common::*;

fn run(p: &Project) -> serde_json::Value {
    p.dvx(&["run", "--json"]).ok().json()
}

fn datums(s: &serde_json::Value) -> (u64, u64, u64) {
    let d = &s["stages"][0]["datums"];
    (
        d["total"].as_u64().unwrap_or(0),
        d["executed"].as_u64().unwrap_or(0),
        d["restored"].as_u64().unwrap_or(0),
    )
}

fn executions(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = fs::read_to_string(p.p("executions.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn cross_reruns_only_the_combinations_of_a_changed_file() {
    let p = Project::new();
    p.write("imgs/a.txt", "A\n");
    p.write("imgs/b.txt", "B\n");
    p.write("models/m1.cfg", "1\n");
    p.write("models/m2.cfg", "2\n");
    p.write(
        "dvx.yaml",
        r#"stages:
  score:
    input:
      cross:
        - {path: imgs, glob: "/*.txt"}
        - {name: model, path: models, glob: "/*.cfg"}
    cmd: cat "$DVX_INPUT_IMGS" "$DVX_INPUT_MODEL" > "$DVX_OUTPUT/$(basename "$DVX_INPUT_IMGS" .txt)-$(basename "$DVX_INPUT_MODEL" .cfg)" && ls "$DVX_INPUT_DIR" | tr '\n' ' ' >> "$DVX_OUTPUT/$(basename "$DVX_INPUT_IMGS" .txt)-$(basename "$DVX_INPUT_MODEL" .cfg)" && echo "$DVX_DATUM_ID" >> executions.log
    outs: [scores]
"#,
    );
    p.dvx(&["add", "imgs", "models"]).ok();
    let s = run(&p);
    assert_eq!(datums(&s), (4, 4, 0), "{s}");
    assert_eq!(p.read("scores/a-m2"), b"A\n2\nimgs model ");
    assert_eq!(
        executions(&p),
        [
            "imgs/a.txt+model/m1.cfg",
            "imgs/a.txt+model/m2.cfg",
            "imgs/b.txt+model/m1.cfg",
            "imgs/b.txt+model/m2.cfg"
        ]
    );
    fs::remove_file(p.p("executions.log")).unwrap();

    // Nothing changed: nothing runs.
    assert_eq!(datums(&run(&p)).1, 0);
    // One model changes: only its two combinations run again.
    p.write("models/m1.cfg", "one\n");
    let s = run(&p);
    assert_eq!(datums(&s), (4, 2, 2), "{s}");
    assert_eq!(
        executions(&p),
        ["imgs/a.txt+model/m1.cfg", "imgs/b.txt+model/m1.cfg"]
    );
    assert_eq!(p.read("scores/b-m1"), b"B\none\nimgs model ");

    // Lineage: the output of a combination names both of its inputs.
    let rec = p.dvx(&["lineage", "scores/b-m1", "--json"]).ok().stdout();
    assert!(
        rec.contains("models/m1.cfg") && rec.contains("imgs/b.txt"),
        "{rec}"
    );

    // dvx verify lays the combination out again and gets the same bytes.
    let v = p.dvx(&["verify", "scores/b-m1", "--json"]).ok().json();
    assert!(v.to_string().contains("\"identical\":true"), "{v}");

    // `--datum` re-runs one combination by its id.
    fs::remove_file(p.p("executions.log")).unwrap();
    p.dvx(&["run", "score", "--datum", "imgs/a.txt+model/m2.cfg"])
        .ok();
    assert_eq!(executions(&p), ["imgs/a.txt+model/m2.cfg"]);
}

#[test]
fn join_union_and_group() {
    let p = Project::new();
    p.write("left/1.csv", "l1\n");
    p.write("left/2.csv", "l2\n");
    p.write("right/1.json", "r1\n");
    p.write("right/3.json", "r3\n");
    p.write("logs/a-1.log", "a1\n");
    p.write("logs/a-2.log", "a2\n");
    p.write("logs/b-1.log", "b1\n");
    p.write(
        "dvx.yaml",
        r#"stages:
  join:
    input:
      join:
        - {path: left, glob: "/(*).csv", join_on: "$1"}
        - {path: right, glob: "/(*).json", join_on: "$1"}
    cmd: cat "$DVX_INPUT_LEFT" "$DVX_INPUT_RIGHT" > "$DVX_OUTPUT/$(basename "$DVX_INPUT_LEFT" .csv)"
    outs: [joined]
  outer:
    input:
      join:
        - {path: left, glob: "/(*).csv", join_on: "$1", outer_join: true}
        - {path: right, glob: "/(*).json", join_on: "$1"}
    cmd: (cd "$DVX_INPUT_DIR" && find . | sort) > "$DVX_OUTPUT/$(basename "$DVX_INPUT_LEFT" .csv)"
    outs: [outer]
  union:
    input:
      union:
        - {path: left, glob: "/*"}
        - {path: right, glob: "/*"}
    cmd: cp "$DVX_INPUT" "$DVX_OUTPUT/"
    outs: [both]
  group:
    input:
      group:
        - {path: logs, glob: "/(*)-*.log", group_by: "$1"}
    cmd: cat "$DVX_INPUT_LOGS"/* > "$DVX_OUTPUT/$DVX_DATUM_ID"
    outs: [grouped]
"#,
    );
    p.dvx(&["add", "left", "right", "logs"]).ok();
    run(&p);
    assert_eq!(p.read("joined/1"), b"l1\nr1\n");
    assert!(!p.exists("joined/2"), "no partner, no datum");
    assert_eq!(
        p.read("outer/1"),
        b".\n./left\n./left/1.csv\n./right\n./right/1.json\n"
    );
    assert_eq!(p.read("outer/2"), b".\n./left\n./left/2.csv\n");
    let mut both: Vec<String> = fs::read_dir(p.p("both"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    both.sort();
    assert_eq!(both, ["1.csv", "1.json", "2.csv", "3.json"]);
    assert_eq!(p.read("grouped/a"), b"a1\na2\n");
    assert_eq!(p.read("grouped/b"), b"b1\n");
    for out in ["grouped/b", "joined/1", "outer/2"] {
        let v = p.dvx(&["verify", out, "--json"]).ok().json();
        assert!(v.to_string().contains("\"identical\":true"), "{out}: {v}");
    }

    // A new log joins its group: only that group runs again.
    p.write("logs/b-2.log", "b2\n");
    let s = p.dvx(&["run", "group", "--json"]).ok().json();
    assert_eq!(datums(&s), (2, 1, 1), "{s}");
    assert_eq!(p.read("grouped/b"), b"b1\nb2\n");
}

#[test]
fn combined_inputs_are_checked_where_written() {
    let p = Project::new();
    let cases = [
        (
            "stages:\n  s:\n    input:\n      join:\n        - {path: a, glob: /*.csv, join_on: $1}\n        - {path: b, join_on: $1}\n    cmd: x\n    outs: [o]\n",
            "dvx.yaml:5:44: input.join.join_on: `$1` must name capture groups of the glob",
        ),
        (
            "stages:\n  s:\n    input:\n      cross:\n        - {path: a}\n    cmd: x\n    outs: [o]\n",
            "dvx.yaml:4:7: input.cross: needs at least 2 inputs",
        ),
        (
            "stages:\n  s:\n    input:\n      cross:\n        - {path: a}\n        - {path: x/a}\n    cmd: x\n    outs: [o]\n",
            "two inputs are named `a`; give one a `name:`",
        ),
        (
            "stages:\n  s:\n    input:\n      union:\n        - {path: a, join_on: $1}\n        - {path: b}\n    cmd: x\n    outs: [o]\n",
            "dvx.yaml:5:21: input.union: unknown field `join_on`",
        ),
        (
            "stages:\n  s:\n    input:\n      group:\n        - {path: a, glob: /(*)}\n    cmd: x\n    outs: [o]\n",
            "input.group: missing `group_by`",
        ),
    ];
    for (yaml, want) in cases {
        p.write("dvx.yaml", yaml);
        let r = p.dvx(&["status"]);
        assert_eq!(r.out.status.code(), Some(2), "{yaml}");
        assert!(r.stderr().contains(want), "{yaml}\n{}", r.stderr());
    }
}
