//! Datums on Slurm in numbers and in combinations: many datums batched into exactly the jobs
//! `batch:` promises, and datums of combined inputs (cross, join, union, group) giving on the
//! cluster the bytes they give here. Helpers and the test cluster are `cluster.rs`'s.

use std::collections::BTreeSet;

use crate::cluster::{cluster, dvx, stage, started_jobs, tree};
use crate::common::*;
use crate::remote::{Kind, Remote};

/// A pipeline whose stages take their datums from combined inputs, and the output folder of
/// each (see tests/it/combine.rs for what each combination yields).
pub(crate) const COMBINED: &str = r#"stages:
  cross:
    input:
      cross:
        - {path: left, glob: "/*"}
        - {path: right, glob: "/*"}
    cmd: cat "$DVX_INPUT_LEFT" "$DVX_INPUT_RIGHT" > "$DVX_OUTPUT/$(basename "$DVX_INPUT_LEFT")-$(basename "$DVX_INPUT_RIGHT")"
    outs: [crossed]
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
"#;

pub(crate) const COMBINED_OUTS: [&str; 5] = ["crossed", "joined", "outer", "both", "grouped"];

/// A project with the inputs of [`COMBINED`], added, and `remote` as its default remote.
pub(crate) fn combined_project(remote: &Remote) -> Project {
    let p = Project::new();
    for (path, text) in [
        ("left/1.csv", "l1\n"),
        ("left/2.csv", "l2\n"),
        ("right/1.json", "r1\n"),
        ("right/3.json", "r3\n"),
        ("logs/a-1.log", "a1\n"),
        ("logs/a-2.log", "a2\n"),
        ("logs/b-1.log", "b1\n"),
    ] {
        p.write(path, text);
    }
    p.write("dvx.yaml", COMBINED);
    p.dvx(&["add", "left", "right", "logs"]).ok();
    remote.add_to(&p);
    p
}

/// The outputs of [`COMBINED`] run here.
pub(crate) fn combined_locally() -> Vec<Vec<(String, Vec<u8>)>> {
    let l = combined_project(&Remote::new(Kind::Folder, "combined-local"));
    l.dvx(&["run"]).ok();
    COMBINED_OUTS.iter().map(|o| tree(&l.p(o))).collect()
}

#[test]
fn two_hundred_datums_in_batches_of_twenty_are_exactly_ten_slurm_jobs() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "batch200");
    let p = Project::new();
    for i in 0..200 {
        p.write(&format!("data/in/f{i:03}.txt"), format!("{i}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  copy:\n    input: {path: data/in, glob: \"/*.txt\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [copies]\n    executor: slurm\n    batch: 20\n",
    );
    remote.add_to(&p);
    let summary = dvx(&p, conf, &["run", "--json"]).ok().json();
    let s = stage(&summary, "copy");
    assert_eq!(s["datums"]["executed"], 200, "{summary}");
    // Each job leaves its log: ten of them.
    let mut logs = started_jobs(&p);
    logs.sort();
    assert_eq!(logs.len(), 10, "{logs:?}");
    // And the 200 records name those ten jobs, twenty datums each.
    let mut per_job = std::collections::BTreeMap::<String, u32>::new();
    for r in s["runs"].as_array().unwrap() {
        let rec = p.dvx(&["show", r.as_str().unwrap(), "--json"]).ok().json();
        assert_eq!(rec["executor"], "slurm");
        *per_job
            .entry(rec["cluster"]["job"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_job.keys().cloned().collect::<Vec<_>>(), logs);
    assert!(per_job.values().all(|n| *n == 20), "{per_job:?}");
    let copies = tree(&p.p("copies"));
    assert_eq!(copies.len(), 200);
    assert_eq!(copies[7], ("f007.txt".to_string(), b"7\n".to_vec()));
}

#[test]
fn datums_of_combined_inputs_run_on_slurm_with_the_output_of_a_local_run() {
    let Some(conf) = cluster() else { return };
    let p = combined_project(&Remote::new(Kind::Folder, "combined"));
    let summary = dvx(&p, conf, &["run", "--executor", "slurm", "--json"])
        .ok()
        .json();
    let mut jobs = BTreeSet::new();
    for name in ["cross", "join", "outer", "union", "group"] {
        let rid = stage(&summary, name)["runs"][0]
            .as_str()
            .unwrap()
            .to_string();
        let rec = p.dvx(&["show", &rid, "--json"]).ok().json();
        assert_eq!(rec["executor"], "slurm", "{name}: {rec}");
        jobs.insert(rec["cluster"]["job"].as_str().unwrap().to_string());
    }
    assert_eq!(jobs.len(), 5);
    let here: Vec<_> = COMBINED_OUTS.iter().map(|o| tree(&p.p(o))).collect();
    assert_eq!(here, combined_locally());
    assert_eq!(p.read("outer/2"), b".\n./left\n./left/2.csv\n");
    // A run here finds every datum in the run cache.
    let again = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(again["executed"], 0, "{again}");
}
