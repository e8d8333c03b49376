//! Datum stages as Pachyderm users expect them: `glob: "/"` is the whole input as one datum,
//! a datum that writes nothing is reported (or fails with `require_output`), and the input is
//! also offered as a folder holding the match under its own name (`DVX_INPUT_DIR`).

use std::fs;

use crate::common::*;

fn run_json(p: &Project) -> serde_json::Value {
    p.dvx(&["run", "--json"]).ok().json()
}

#[test]
fn glob_slash_is_the_whole_input_as_one_datum() {
    let p = Project::new();
    p.write("in/a.txt", "1\n");
    p.write("in/sub/b.txt", "2\n3\n");
    p.write(
        "dvx.yaml",
        "stages:\n  all:\n    input: {path: in, glob: /}\n    cmd: find \"$DVX_INPUT\" -type f | wc -l > \"$DVX_OUTPUT/n\" && echo \"$DVX_DATUM_ID\" > \"$DVX_OUTPUT/id\" && test \"$DVX_INPUT_DIR\" = \"$DVX_INPUT\"\n    outs: [out]\n",
    );
    p.dvx(&["add", "in"]).ok();
    let r = p.dvx(&["run", "--json"]).ok();
    assert!(!r.stderr().contains("matches nothing"), "{}", r.stderr());
    let s = r.json();
    assert_eq!(s["stages"][0]["datums"]["total"], 1, "{s}");
    assert_eq!(String::from_utf8_lossy(&p.read("out/n")).trim(), "2");
    assert_eq!(p.read("out/id"), b"/\n");
    // Unchanged: nothing runs; one file changes: the one datum runs again.
    assert_eq!(run_json(&p)["executed"], 0);
    p.write("in/sub/c.txt", "4\n");
    p.dvx(&["add", "in"]).ok();
    let s = run_json(&p);
    assert_eq!(s["stages"][0]["datums"]["executed"], 1, "{s}");
    assert_eq!(String::from_utf8_lossy(&p.read("out/n")).trim(), "3");
    // dvx verify re-runs the whole-input datum from its record.
    let v = p.dvx(&["verify", "out/n", "--json"]).ok().json();
    assert!(v.to_string().contains("\"identical\":true"), "{v}");
}

#[test]
fn a_datum_that_writes_nothing_is_a_warning_or_with_require_output_an_error() {
    let p = Project::new();
    p.write("in/keep.txt", "x\n");
    p.write("in/skip.txt", "y\n");
    let yaml = |extra: &str| {
        format!(
            "stages:\n  f:\n    input: {{path: in}}\n    cmd: case \"$DVX_DATUM_ID\" in keep*) cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\";; esac\n    outs: [out]\n{extra}"
        )
    };
    p.write("dvx.yaml", yaml(""));
    p.dvx(&["add", "in"]).ok();
    let s = p.dvx(&["run", "--json"]).ok().json();
    let w = s["warnings"][0].as_str().unwrap_or_default().to_string();
    assert!(
        w.starts_with("stage f datum skip.txt (run ")
            && w.ends_with("): the datum wrote no output"),
        "{s}"
    );
    // The run record keeps the warning.
    let run = &w["stage f datum skip.txt (run ".len()..w.find(')').unwrap_or(0)];
    let rec = p.dvx(&["show", run, "--json"]).ok().json();
    assert_eq!(
        strs(&rec["warnings"]),
        vec!["the datum wrote no output"],
        "{rec}"
    );
    // Without --json it is said on stderr.
    p.write("in/skip2.txt", "z\n");
    p.dvx(&["add", "in"]).ok();
    let e = p.dvx(&["run"]).ok().stderr();
    assert!(e.contains("warning: stage f datum skip2.txt (run "), "{e}");

    p.write("dvx.yaml", yaml("    require_output: true\n"));
    let r = p.dvx(&["run", "--json"]);
    assert_eq!(r.out.status.code(), Some(1));
    let e = format!("{}{}", r.stdout(), r.stderr());
    assert!(
        e.contains("skip.txt") && e.contains("require_output"),
        "{e}"
    );

    // Only stages with `input` may say it.
    p.write(
        "dvx.yaml",
        "stages:\n  f:\n    cmd: echo\n    require_output: true\n",
    );
    let r = p.dvx(&["status"]);
    assert_eq!(r.out.status.code(), Some(2));
    assert!(
        r.stderr()
            .contains("dvx.yaml:4:21: require_output: only for stages with `input`"),
        "{}",
        r.stderr()
    );
}

#[test]
fn the_input_folder_holds_the_match_under_its_own_name() {
    let p = Project::new();
    p.write("imgs/a/1.txt", "one\n");
    p.write("imgs/a/deep/2.txt", "two\n");
    p.write("imgs/b/3.txt", "three\n");
    // Pachyderm-style code: walk the input folder, as it would walk /pfs/imgs.
    p.write(
        "walk.sh",
        "cd \"$DVX_INPUT_DIR\" && find . -type f -o -type l | sort > \"$DVX_OUTPUT/$(basename \"$DVX_INPUT\").files\" && cat $(find . -name '*.txt' | sort) > \"$DVX_OUTPUT/$(basename \"$DVX_INPUT\").cat\"\n",
    );
    p.write(
        "dvx.yaml",
        "stages:\n  walk:\n    input: {path: imgs, glob: /*}\n    cmd: sh walk.sh\n    deps: [walk.sh]\n    outs: [walked]\n",
    );
    p.dvx(&["add", "imgs"]).ok();
    p.dvx(&["run"]).ok();
    assert_eq!(p.read("walked/a.files"), b"./a/1.txt\n./a/deep/2.txt\n");
    assert_eq!(p.read("walked/a.cat"), b"one\ntwo\n");
    assert_eq!(p.read("walked/b.files"), b"./b/3.txt\n");
    // The folder is scratch: nothing of it is left in the project.
    let leftovers: Vec<_> = fs::read_dir(p.p(".dvx/tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
