//! Re-running a datum stage after some inputs changed: the run starts from the output of the
//! last run and reads only the datums that changed (the stage's datum table), and it ends with
//! exactly the output a run of every datum would make: hand edits repaired, removed datums'
//! files gone, collisions named, a stale table ignored.

use std::fs;

use crate::common::*;

fn run(p: &Project) -> serde_json::Value {
    p.dvx(&["run", "--json"]).ok().json()
}

fn datums(s: &serde_json::Value) -> (u64, u64) {
    let d = &s["stages"][0]["datums"];
    (
        d["executed"].as_u64().unwrap_or(0),
        d["restored"].as_u64().unwrap_or(0),
    )
}

/// Every file under `dir`, as `path=content` lines, sorted.
fn listing(p: &Project, dir: &str) -> Vec<String> {
    fn walk(root: &std::path::Path, at: &std::path::Path, out: &mut Vec<String>) {
        for e in fs::read_dir(at).unwrap().flatten() {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(format!(
                    "{rel}={}",
                    fs::read_to_string(&path).unwrap().trim()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(&p.p(dir), &p.p(dir), &mut out);
    out.sort();
    out
}

/// Each datum writes a file of its own and a file in a folder of its own.
const NESTED: &str = "stages:\n  count:\n    input: {path: in, glob: \"/*.txt\"}\n    cmd: mkdir -p \"$DVX_OUTPUT/by/$DVX_DATUM_ID\" && wc -l < \"$DVX_INPUT\" | tr -d ' ' > \"$DVX_OUTPUT/$DVX_DATUM_ID.n\" && head -1 \"$DVX_INPUT\" > \"$DVX_OUTPUT/by/$DVX_DATUM_ID/first\"\n    outs: [out]\n";

#[test]
fn a_rerun_changes_only_what_changed_and_repairs_hand_edits() {
    let p = Project::new();
    for (name, body) in [
        ("a", "a1\n"),
        ("b", "b1\nb2\n"),
        ("c", "c1\n"),
        ("d", "d1\n"),
    ] {
        p.write(&format!("in/{name}.txt"), body);
    }
    p.write("dvx.yaml", NESTED);
    assert_eq!(datums(&run(&p)), (4, 0));
    let first = listing(&p, "out");
    assert!(
        first.contains(&"by/b.txt/first=b1".to_string()),
        "{first:?}"
    );

    // One input changes: one datum runs, the rest is the last run's output.
    p.write("in/b.txt", "B1\nb2\nb3\n");
    assert_eq!(datums(&run(&p)), (1, 3));
    let mut want = first.clone();
    for w in want.iter_mut() {
        match w.as_str() {
            "b.txt.n=2" => *w = "b.txt.n=3".into(),
            "by/b.txt/first=b1" => *w = "by/b.txt/first=B1".into(),
            _ => {}
        }
    }
    assert_eq!(listing(&p, "out"), want);

    // A hand edit to a datum that did not change is repaired by the next run that has work.
    p.write("out/a.txt.n", "edited by hand");
    p.write("out/stray", "not made by any datum");
    p.write("in/c.txt", "c1\nc2\n");
    assert_eq!(datums(&run(&p)), (1, 3));
    assert_eq!(p.read("out/a.txt.n"), b"1\n");
    assert!(!p.exists("out/stray"));
    assert_eq!(p.read("out/c.txt.n"), b"2\n");

    // A datum goes and another comes: the old one's files and folders go with it.
    fs::remove_file(p.p("in/d.txt")).unwrap();
    p.write("in/e.txt", "e1\n");
    assert_eq!(datums(&run(&p)), (1, 3));
    let now = listing(&p, "out");
    assert!(!now.iter().any(|l| l.contains("d.txt")), "{now:?}");
    assert!(now.contains(&"by/e.txt/first=e1".to_string()), "{now:?}");

    // What was committed and locked is what is on disk: nothing to do, nothing modified.
    let s = run(&p);
    assert_eq!(s["executed"], 0, "{s}");
    assert_eq!(s["stages"][0]["state"], "skipped", "{s}");
    let st = p.status();
    assert!(
        !strs(&st["modified"]).iter().any(|m| m.starts_with("out")),
        "{st}"
    );
    // And it is what running every datum from scratch makes.
    let merged = listing(&p, "out");
    fs::remove_dir_all(p.p("out")).unwrap();
    p.dvx(&["run", "--force"]).ok();
    assert_eq!(listing(&p, "out"), merged);
    p.assert_fsck_clean();
}

#[test]
fn a_changed_datum_writing_a_kept_datums_file_is_named() {
    let p = Project::new();
    // The first line of each input names the file its datum writes.
    for name in ["a", "b", "c"] {
        p.write(&format!("in/{name}.txt"), format!("{name}.out\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: cp \"$DVX_INPUT\" \"$DVX_OUTPUT/$(head -1 \"$DVX_INPUT\")\"\n    outs: [out]\n",
    );
    assert_eq!(datums(&run(&p)), (3, 0));
    p.write("in/c.txt", "a.out\n");
    let err = p.dvx(&["run"]).fails();
    assert!(
        err.contains("datums a.txt and c.txt both wrote out/a.out"),
        "{err}"
    );
    // Nothing was published: the output is the last run's.
    assert_eq!(p.read("out/a.out"), b"a.out\n");
    assert_eq!(p.read("out/c.out"), b"c.out\n");
    p.assert_fsck_clean();
}

#[test]
fn folders_shared_by_datums_stay_while_any_datum_has_them() {
    let p = Project::new();
    for name in ["a", "b", "c"] {
        p.write(&format!("in/{name}.txt"), format!("{name}\n"));
    }
    // Every datum writes into one shared folder; c also leaves an empty folder of its own.
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: mkdir -p \"$DVX_OUTPUT/shared\" && cp \"$DVX_INPUT\" \"$DVX_OUTPUT/shared/$DVX_DATUM_ID\" && if [ $DVX_DATUM_ID = c.txt ]; then mkdir \"$DVX_OUTPUT/empty\"; fi\n    outs: [out]\n",
    );
    run(&p);
    fs::remove_file(p.p("in/a.txt")).unwrap();
    assert_eq!(datums(&run(&p)), (0, 2));
    assert_eq!(
        listing(&p, "out"),
        ["empty/", "shared/", "shared/b.txt=b", "shared/c.txt=c"]
    );
    fs::remove_file(p.p("in/c.txt")).unwrap();
    run(&p);
    assert_eq!(listing(&p, "out"), ["shared/", "shared/b.txt=b"]);
    fs::remove_file(p.p("in/b.txt")).unwrap();
    run(&p);
    assert_eq!(listing(&p, "out"), Vec::<String>::new());
    p.assert_fsck_clean();
}

#[test]
fn a_table_for_another_dvx_lock_is_not_trusted() {
    let p = Project::new();
    for name in ["a", "b", "c"] {
        p.write(&format!("in/{name}.txt"), format!("{name}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    input: {path: in, glob: \"/*\"}\n    cmd: tr a-z A-Z < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID\"\n    outs: [out]\n",
    );
    run(&p);
    let old_lock = p.read("dvx.lock");
    p.write("in/b.txt", "bee\n");
    assert_eq!(datums(&run(&p)), (1, 2));
    // dvx.lock goes back to the first run's (a `git checkout` of it does this); the input
    // stays changed. The table describes the second run's output, not the one dvx.lock names:
    // starting from dvx.lock's output would bring back b's old file.
    p.write("dvx.lock", old_lock);
    let s = run(&p);
    assert_eq!(datums(&s), (0, 3), "{s}");
    assert_eq!(p.read("out/b.txt"), b"BEE\n");
    assert_eq!(p.read("out/a.txt"), b"A\n");
    p.assert_fsck_clean();
}

/// More datums than the executor is handed at once: the rest wait and follow as executions
/// end, a failure stops them (the run ends; it does not wait for datums never handed on),
/// and with `--keep-going` every other datum still runs.
#[test]
fn more_datums_than_the_executor_holds_at_once() {
    const N: usize = 1300; // the window is 1024
    let p = Project::new();
    for i in 0..N {
        p.write(&format!("in/f{i:04}"), format!("{i}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  copy:\n    input: {path: in, glob: \"/*\"}\n    cmd: if [ \"$DVX_DATUM_ID\" = f0005 ] && [ ! -f ok ]; then echo boom >&2; exit 3; fi; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"; echo \"$DVX_DATUM_ID\" >> runs.log\n    outs: [out]\n",
    );
    let runs = || {
        fs::read_to_string(p.p("runs.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let err = p.dvx(&["run", "-j", "2", "--keep-going"]).fails();
    assert!(err.contains("datum f0005") && err.contains("boom"), "{err}");
    assert_eq!(
        runs(),
        N - 1,
        "every other datum ran, past the first window"
    );

    // Without --keep-going the failure stops what has not started, and the run ends.
    let err = p.dvx(&["run", "-j", "2", "--force"]).fails();
    assert!(err.contains("datum f0005"), "{err}");
    let stopped = runs() - (N - 1);
    assert!(stopped < N - 1, "{stopped} datums ran after the failure");

    p.write("ok", "");
    let s = p.dvx(&["run", "-j", "2", "--json"]).ok().json();
    let (executed, restored) = datums(&s);
    assert_eq!(executed + restored, N as u64, "{s}");
    let out = listing(&p, "out");
    assert_eq!(out.len(), N);
    assert!(out.contains(&"f0005=5".to_string()));
    assert!(out.contains(&format!("f{:04}={}", N - 1, N - 1)));
    p.assert_fsck_clean();
}
