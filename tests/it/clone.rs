//! A DVC user's first day: a teammate's project arrives by `git clone` (dvx.yaml, dvx.lock and
//! `.dvx/config.toml` in git, no store), then `dvx pull`, `dvx clone` into the checkout, the
//! run cache coming along, git revisions where dvx takes a revision, and `git checkout` with
//! `dvx checkout`. Every scenario runs against a folder remote and against S3 (SeaweedFS).

use crate::common::{git, Project, Run};
use crate::remote::{run, s, Kind, Remote};

/// Counts the rows of data/raw.csv into count.txt and a metrics file git keeps.
const PIPELINE: &str = "stages:
  count:
    cmd: sh count.sh
    deps: [count.sh, data/raw.csv]
    outs: [count.txt]
    metrics:
      - metrics.json: {cache: false}
";

/// The teammate's project: two versions of the data, each run and pushed, and committed to
/// git (the first tagged `baseline` in git only). Returns it, its remote and the id of the
/// run that made the first count.
fn teammate(kind: Kind) -> (Project, Remote, String) {
    let p = Project::new();
    let r = Remote::new(kind, "firstday");
    p.write("dvx.yaml", PIPELINE);
    p.write(
        "count.sh",
        "wc -l < data/raw.csv > count.txt\nprintf '{\"rows\": %s}' $(cat count.txt) > metrics.json\n",
    );
    p.write("data/raw.csv", "a\nb\n");
    p.dvx(&["add", "data/raw.csv"]).ok();
    p.dvx(&["run"]).ok();
    let first_run = p.dvx(&["show", "count.txt", "--json"]).ok().json()["id"]
        .as_str()
        .expect("a run id")
        .to_string();
    r.add_to(&p);
    run(&p, "", &s(&["push"])).ok();
    git(p.path(), &["add", "-A"]);
    git(p.path(), &["commit", "-qm", "v1"]);
    git(p.path(), &["tag", "baseline"]);
    p.write("data/raw.csv", "a\nb\nc\n");
    p.dvx(&["add", "data/raw.csv"]).ok();
    p.dvx(&["run"]).ok();
    run(&p, "", &s(&["push"])).ok();
    git(p.path(), &["commit", "-qam", "v2"]);
    (p, r, first_run)
}

/// `git clone` of the teammate's project into a new folder.
fn git_clone(src: &Project) -> Project {
    let c = Project::empty();
    let from = src.path().display().to_string();
    git(c.path(), &["clone", "-q", &from, "."]);
    c
}

fn dvx(p: &Project, args: &[&str]) -> Run {
    run(p, "", &s(args))
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).expect("UTF-8")
}

fn fresh_clone_reads_dvx_lock_then_pulls(kind: Kind) {
    let (o, _r, first_run) = teammate(kind);
    let c = git_clone(&o);
    // What git brings: the settings, dvx's own ignore file, dvx.yaml and dvx.lock; no store.
    assert!(c.exists(".dvx/config.toml") && c.exists(".dvx/.gitignore"));
    assert!(c.exists("dvx.lock") && !c.exists(".dvx/db") && !c.exists("data/raw.csv"));

    let st = dvx(&c, &["status"]).ok().stdout();
    assert!(
        st.starts_with("nothing fetched yet: run `dvx pull`\n"),
        "{st}"
    );
    for p in ["data/raw.csv", "count.txt"] {
        assert!(
            st.lines()
                .any(|l| l.trim_start() == format!("not here  {p}")),
            "{p}: {st}"
        );
    }
    let j = dvx(&c, &["status", "--json"]).ok().json();
    assert_eq!(j["fetched"], false);
    assert_eq!(
        j["not_here"],
        serde_json::json!(["count.txt", "data/raw.csv"])
    );
    assert_eq!(j["stages"][0]["state"], "stale");
    let reasons = j["stages"][0]["reasons"].to_string();
    assert!(
        reasons.contains("output count.txt not here (run `dvx pull`)"),
        "{reasons}"
    );
    let log = dvx(&c, &["log"]).ok();
    assert!(log
        .stderr()
        .contains("note: nothing fetched yet: run `dvx pull`"));
    let ls = dvx(&c, &["ls"]);
    assert_eq!(ls.out.status.code(), Some(1));
    let err = ls.fails();
    assert!(err.starts_with("error: nothing fetched yet"), "{err}");
    assert!(err.contains("hint: run `dvx pull`"), "{err}");
    // Questions only a store can answer say so, rather than "all good" or "no differences".
    for args in [
        &["diff"][..],
        &["fsck"],
        &["status", "--remote"],
        &["push"],
        &["metrics", "diff"],
    ] {
        let r = dvx(&c, args);
        assert_eq!(r.out.status.code(), Some(1), "{args:?}");
        let err = r.fails();
        assert!(
            err.starts_with("error: nothing fetched yet"),
            "{args:?}: {err}"
        );
    }
    // Reading made nothing: the store is still to be created by the first writer.
    assert!(!c.exists(".dvx/db") && !c.exists(".dvx/remotes") && !c.exists(".dvx/tmp"));

    let pulled = dvx(&c, &["pull"]).ok().stdout();
    assert!(pulled.contains("run cache: 2 records added"), "{pulled}");
    assert_eq!(text(c.read("data/raw.csv")), "a\nb\nc\n");
    assert_eq!(text(c.read("count.txt")), "3\n");
    let j = dvx(&c, &["status", "--json"]).ok().json();
    assert_eq!(
        (j["fetched"].clone(), j["branch"].clone()),
        (true.into(), "main".into())
    );
    assert_eq!(j["clean"], true);
    let r = dvx(&c, &["run", "--json"]).ok().json();
    assert_eq!(
        (r["executed"].clone(), r["skipped"].clone()),
        (0.into(), 1.into())
    );

    // Back to the first data: the teammate's run is restored, not recomputed.
    c.write("data/raw.csv", "a\nb\n");
    let r = dvx(&c, &["run", "--json"]).ok().json();
    assert_eq!(
        (r["executed"].clone(), r["restored"].clone()),
        (0.into(), 1.into()),
        "{r}"
    );
    assert_eq!(text(c.read("count.txt")), "2\n");
    let lineage = dvx(&c, &["lineage", "count.txt", "--json"]).ok().stdout();
    assert!(lineage.contains(&first_run), "{lineage}");

    // Later, `git pull` brings a dvx.lock newer than what dvx fetched: status says so.
    let d = git_clone(&o);
    dvx(&d, &["pull"]).ok();
    o.write("data/raw.csv", "a\nb\nc\nd\n");
    o.dvx(&["add", "data/raw.csv"]).ok();
    o.dvx(&["run"]).ok();
    run(&o, "", &s(&["push"])).ok();
    git(o.path(), &["commit", "-qam", "v3"]);
    git(d.path(), &["pull", "-q", "--ff-only"]);
    let st = dvx(&d, &["status"]).ok().stdout();
    assert!(
        st.contains("which is not fetched yet: run `dvx pull`"),
        "{st}"
    );
    assert_eq!(
        dvx(&d, &["status", "--json"]).ok().json()["lock_fetched"],
        false
    );
    dvx(&d, &["pull"]).ok();
    assert_eq!(text(d.read("count.txt")), "4\n");
    let j = dvx(&d, &["status", "--json"]).ok().json();
    assert_eq!(j["lock_fetched"], true);
    assert_eq!(j["lock_commit"], serde_json::Value::Null);
}

#[test]
fn fresh_clone_folder() {
    fresh_clone_reads_dvx_lock_then_pulls(Kind::Folder);
}

#[test]
fn fresh_clone_s3() {
    fresh_clone_reads_dvx_lock_then_pulls(Kind::Weed);
}

fn without_run_cache(kind: Kind) {
    let (o, _r, _) = teammate(kind);
    let c = git_clone(&o);
    let pulled = dvx(&c, &["pull", "--no-run-cache"]).ok().stdout();
    assert!(!pulled.contains("run cache"), "{pulled}");
    c.write("data/raw.csv", "a\nb\n");
    dvx(&c, &["add", "data/raw.csv"]).ok();
    let j = dvx(&c, &["run", "--json"]).ok().json();
    assert_eq!(
        (j["executed"].clone(), j["restored"].clone()),
        (1.into(), 0.into())
    );
    // A run on a detached HEAD: no branch, so no pushed commit, names its record.
    let tip = c.head();
    dvx(&c, &["checkout", &tip]).ok();
    c.write("data/raw.csv", "x\n");
    dvx(&c, &["add", "data/raw.csv"]).ok();
    dvx(&c, &["run"]).ok();
    dvx(&c, &["checkout", "main"]).ok();
    dvx(&c, &["push", "origin", "main", "--no-run-cache"]).ok();
    let a = git_clone(&o);
    dvx(&a, &["pull"]).ok();
    a.write("data/raw.csv", "x\n");
    let j = dvx(&a, &["run", "--json"]).ok().json();
    assert_eq!(j["executed"], 1, "nothing pushed that run yet: {j}");
    // With the run cache (the default) it goes up, and the next clone restores it.
    let out = dvx(&c, &["push", "origin", "main"]).ok().stdout();
    assert!(!out.contains("uploaded 0 objects"), "{out}");
    let b = git_clone(&o);
    dvx(&b, &["pull"]).ok();
    b.write("data/raw.csv", "x\n");
    let j = dvx(&b, &["run", "--json"]).ok().json();
    assert_eq!(
        (j["executed"].clone(), j["restored"].clone()),
        (0.into(), 1.into()),
        "{j}"
    );
    assert_eq!(text(b.read("count.txt")), "1\n");
}

#[test]
fn without_run_cache_folder() {
    without_run_cache(Kind::Folder);
}

#[test]
fn without_run_cache_s3() {
    without_run_cache(Kind::Weed);
}

fn dvx_clone_into_git_checkout(kind: Kind) {
    let (o, r, _) = teammate(kind);
    let c = git_clone(&o);
    let mut args = s(&["clone", &r.url, "."]);
    args.extend(r.conn());
    let out = run(&c, "", &args).ok().stdout();
    assert!(out.contains("checked out main at "), "{out}");
    assert_eq!(text(c.read("data/raw.csv")), "a\nb\nc\n");
    assert_eq!(dvx(&c, &["status", "--json"]).ok().json()["branch"], "main");
    // git's files are untouched, and git sees no data.
    let st = std::process::Command::new("git")
        .args(["status", "--porcelain"])
        .current_dir(c.path())
        .output()
        .unwrap();
    assert_eq!(text(st.stdout), "");

    // A folder that is not a dvx project is still refused, and left as it was.
    let other = Project::empty();
    other.write("notes.txt", "mine");
    let mut args = s(&["clone", &r.url, "."]);
    args.extend(r.conn());
    let res = run(&other, "", &args);
    assert_eq!(res.out.status.code(), Some(2));
    assert!(res.fails().contains("holds no dvx.lock"));
    assert_eq!(text(other.read("notes.txt")), "mine");
    assert!(!other.exists(".dvx"));
}

#[test]
fn dvx_clone_into_git_checkout_folder() {
    dvx_clone_into_git_checkout(Kind::Folder);
}

#[test]
fn dvx_clone_into_git_checkout_s3() {
    dvx_clone_into_git_checkout(Kind::Weed);
}

fn git_revisions(kind: Kind) {
    let (o, _r, first_run) = teammate(kind);
    let c = git_clone(&o);
    dvx(&c, &["pull"]).ok();
    // `baseline` is a git tag only: read through the dvx.lock it holds.
    let d = dvx(&c, &["metrics", "diff", "baseline", "--json"]).ok();
    let deltas = d.json();
    let rows = deltas
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["key"] == "rows")
        .expect("rows");
    assert_eq!(
        (rows["old"].clone(), rows["new"].clone()),
        (2.into(), 3.into())
    );
    let note: serde_json::Value =
        serde_json::from_str(d.stderr().lines().next().expect("a note")).unwrap();
    assert_eq!(note["source"], "git");
    assert_eq!(note["revision"], "baseline");
    let git_id = note["git_commit"].as_str().unwrap().to_string();
    assert_eq!(git_id.len(), 40);
    let text_note = dvx(&c, &["metrics", "diff", "baseline"]).ok().stderr();
    assert!(
        text_note.starts_with(&format!(
            "note: baseline is the git revision {}",
            &git_id[..12]
        )),
        "{text_note}"
    );
    assert_eq!(
        text(dvx(&c, &["cat", "baseline:count.txt"]).ok().out.stdout),
        "2\n"
    );
    assert_eq!(
        text(dvx(&c, &["cat", "git:HEAD~1:count.txt"]).ok().out.stdout),
        "2\n"
    );
    let ls = dvx(&c, &["ls", "HEAD~1", "--json"]).ok();
    assert!(
        ls.stderr().contains("\"source\":\"dvx\""),
        "{}",
        ls.stderr()
    );
    let params = dvx(&c, &["params", "diff", "baseline"]).ok();
    assert!(
        params.stderr().contains("git revision"),
        "{}",
        params.stderr()
    );
    let lineage = dvx(&c, &["lineage", "count.txt@baseline", "--json"])
        .ok()
        .json();
    assert_eq!(lineage["commit"], note["commit"]);
    let shown = dvx(&c, &["show", "count.txt@baseline", "--json"])
        .ok()
        .json();
    assert_eq!(shown["id"], first_run.as_str());

    // A name both know is dvx's, and the note says how to get git's.
    dvx(&c, &["tag", "baseline"]).ok();
    let d = dvx(&c, &["metrics", "diff", "baseline"]).ok();
    assert_eq!(d.stdout(), "no differences\n");
    assert!(d.stderr().contains("dvx's revisions win"), "{}", d.stderr());
    assert!(
        d.stderr().contains("write git:baseline for it"),
        "{}",
        d.stderr()
    );
    let d = dvx(&c, &["metrics", "diff", "git:baseline", "--json"])
        .ok()
        .json();
    assert!(!d.as_array().unwrap().is_empty());

    // Unknown to both: a usage error that says git revisions work too.
    let bad = dvx(&c, &["diff", "nope"]);
    assert_eq!(bad.out.status.code(), Some(2));
    let err = bad.fails();
    assert!(err.contains("unknown revision \"nope\""), "{err}");
    assert!(
        err.contains("a git branch, tag or commit works too"),
        "{err}"
    );
}

#[test]
fn git_revisions_folder() {
    git_revisions(Kind::Folder);
}

#[test]
fn git_revisions_s3() {
    git_revisions(Kind::Weed);
}

fn git_checkout_then_dvx_checkout(kind: Kind) {
    let (o, _r, _) = teammate(kind);
    let c = git_clone(&o);
    // The code is older than the remote's data: the first pull brings what dvx.lock pins.
    git(c.path(), &["checkout", "-q", "baseline"]);
    let out = dvx(&c, &["pull"]).ok().stdout();
    assert!(out.contains("what dvx.lock pins"), "{out}");
    assert_eq!(text(c.read("data/raw.csv")), "a\nb\n");
    let err = dvx(&c, &["push"]).fails();
    assert!(err.contains("HEAD is detached at "), "{err}");
    assert!(err.contains("hint: no branch is at "), "{err}");

    // Back to the newest code: dvx follows onto the branch whose tip dvx.lock pins.
    git(c.path(), &["checkout", "-q", "main"]);
    let j = dvx(&c, &["checkout", "--json"]).ok().json();
    assert_eq!(j["branch"], "main");
    assert_eq!(text(c.read("data/raw.csv")), "a\nb\nc\n");
    let pushed = dvx(&c, &["push"]).ok().stdout();
    assert!(pushed.contains("(up to date)"), "{pushed}");

    // Detached on a commit a branch ends at: the hint names the checkout that fixes it.
    let tip = c.head();
    dvx(&c, &["checkout", &tip]).ok();
    let err = dvx(&c, &["push"]).fails();
    assert!(
        err.contains("hint: branch main is at this commit: `dvx checkout main`"),
        "{err}"
    );
    dvx(&c, &["checkout", "main"]).ok();
    dvx(&c, &["push"]).ok();
    // A git revision given to checkout attaches the same way.
    let j = dvx(&c, &["checkout", "git:main", "--json"]).ok().json();
    assert_eq!(j["branch"], "main");
    assert_eq!(j["revision"]["source"], "git");
}

#[test]
fn git_checkout_then_dvx_checkout_folder() {
    git_checkout_then_dvx_checkout(Kind::Folder);
}

#[test]
fn git_checkout_then_dvx_checkout_s3() {
    git_checkout_then_dvx_checkout(Kind::Weed);
}
