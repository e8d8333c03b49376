//! The Slurm executor against a real one-node Slurm (tests/services/slurm.sh), with data
//! moving through a folder remote and through S3 (SeaweedFS). `DVX_SKIP_CLUSTER_TESTS=1`
//! skips them, saying so.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::remote::{Kind, Remote};

/// `SLURM_CONF` of the test cluster, started once; None when the tests are skipped.
pub(crate) fn cluster() -> Option<&'static str> {
    if std::env::var_os("DVX_SKIP_CLUSTER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("skipped: DVX_SKIP_CLUSTER_TESTS=1");
        return None;
    }
    static CONF: OnceLock<String> = OnceLock::new();
    Some(CONF.get_or_init(|| {
        // A cluster already running (CI starts one as root): use it.
        if let Some(conf) = std::env::var_os("SLURM_CONF").filter(|c| Path::new(c).exists()) {
            return conf.to_string_lossy().into_owned();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/slurm.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .expect("slurm.sh runs");
        assert!(out.status.success(), "starting Slurm failed");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("export SLURM_CONF="))
            .map(|v| v.trim_matches('\'').to_string())
            .expect("slurm.sh prints SLURM_CONF")
    }))
}

/// A project holding the ndjson-batches example, with `remote` as its default remote and a
/// short poll interval.
pub(crate) fn example(remote: &Remote) -> Project {
    let p = Project::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ndjson-batches");
    for rel in ["dvx.yaml", "src/summarize.py", "src/aggregate.py"] {
        p.write(rel, fs::read(src.join(rel)).unwrap());
    }
    for e in fs::read_dir(src.join("data/batches")).unwrap() {
        let e = e.unwrap();
        p.write(
            &format!("data/batches/{}", e.file_name().to_string_lossy()),
            fs::read(e.path()).unwrap(),
        );
    }
    remote.add_to(&p);
    let cfg = p.p(".dvx/config.toml");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[executor.slurm]\npoll_secs = 0.2\n");
    fs::write(&cfg, text).unwrap();
    p
}

/// dvx with the cluster's and the S3 servers' settings in its environment.
pub(crate) fn dvx(p: &Project, conf: &str, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut c = s3_cmd(p, &args);
    c.env("SLURM_CONF", conf);
    Run {
        out: c.output().expect("dvx runs"),
    }
}

fn s3_cmd(p: &Project, args: &[String]) -> Command {
    // The remote tests' command: credentials of the test servers in the environment.
    let mut c = p.cmd_in("", &[]);
    let probe = run_s3_env();
    for (k, v) in probe {
        c.env(k, v);
    }
    c.args(args);
    c
}

fn run_s3_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "dvxaccess"),
        ("AWS_SECRET_ACCESS_KEY", "dvxsecret123"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("DVX_REMOTE_RETRIES", "2"),
        ("DVX_REMOTE_TIMEOUT", "10"),
    ]
}

/// Every file under `dir`, relative, with its bytes.
pub(crate) fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn stage<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {summary}"))
}

/// Runs the example on Slurm and locally: the same bytes; then one changed input is one job,
/// and the run cache is shared both ways.
fn same_as_local(kind: Kind, conf: &str) {
    let remote = Remote::new(kind, "cluster");
    let p = example(&remote);
    let summary = dvx(&p, conf, &["run", "--executor", "slurm", "--json"])
        .ok()
        .json();
    assert_eq!(stage(&summary, "summarize")["datums"]["executed"], 8);

    let local_remote = Remote::new(Kind::Folder, "local");
    let l = example(&local_remote);
    l.dvx(&["run"]).ok();
    assert_eq!(tree(&p.p("summaries")), tree(&l.p("summaries")));
    assert_eq!(p.read("report.json"), l.read("report.json"));

    // The record names the executor, the job and the node.
    let rid = stage(&summary, "summarize")["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    let rec = p.dvx(&["show", &rid, "--json"]).ok().json();
    assert_eq!(rec["executor"], "slurm");
    let job = rec["cluster"]["job"].as_str().unwrap().to_string();
    assert!(job.parse::<u64>().is_ok(), "{rec}");
    assert!(rec["cluster"]["queued"]
        .as_str()
        .is_some_and(|q| !q.is_empty()));
    let text = p.dvx(&["show", &rid]).ok().stdout();
    assert!(
        text.contains(&format!(
            "slurm job {job} on {}",
            rec["host"].as_str().unwrap()
        )),
        "{text}"
    );

    // One changed batch: one job.
    let one = "data/batches/batch-003.ndjson";
    let before = p.read(one);
    let mut changed = before.clone();
    changed.extend_from_slice(b"{\"event\": \"view\", \"amount\": 0}\n");
    p.write(one, &changed);
    let again = dvx(&p, conf, &["run", "--executor", "slurm", "--json"])
        .ok()
        .json();
    let s = stage(&again, "summarize");
    assert_eq!(s["datums"]["executed"], 1, "{again}");
    assert_eq!(s["datums"]["restored"], 7, "{again}");
    // Back to what it was: the cluster's earlier result is a run-cache hit for a local run.
    p.write(one, &before);
    let local = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(
        stage(&local, "summarize")["datums"]["executed"],
        0,
        "{local}"
    );
    assert_eq!(tree(&p.p("summaries")), tree(&l.p("summaries")));
}

#[test]
fn every_datum_a_slurm_job_through_a_folder_remote_gives_what_a_local_run_gives() {
    let Some(conf) = cluster() else { return };
    same_as_local(Kind::Folder, conf);
}

#[test]
fn every_datum_a_slurm_job_through_s3_gives_what_a_local_run_gives() {
    let Some(conf) = cluster() else { return };
    same_as_local(Kind::Weed, conf);
}

/// The example with the datum command replaced.
pub(crate) fn with_cmd(p: &Project, cmd: &str) {
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    let y = y.replace("cmd: python3 src/summarize.py", &format!("cmd: {cmd}"));
    p.write("dvx.yaml", y);
}

#[test]
fn a_failing_datum_fails_its_stage_with_its_stderr_and_the_others_keep_their_results() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "fail");
    let p = example(&remote);
    with_cmd(
        &p,
        "'if grep -q BROKEN \"$DVX_INPUT\"; then echo \"bad batch $DVX_DATUM_ID\" >&2; exit 3; fi; python3 src/summarize.py'",
    );
    let one = "data/batches/batch-005.ndjson";
    let good = p.read(one);
    let mut bad = good.clone();
    bad.extend_from_slice(b"BROKEN\n");
    p.write(one, &bad);
    let r = dvx(
        &p,
        conf,
        &["run", "--executor", "slurm", "--keep-going", "--json"],
    );
    assert_eq!(r.out.status.code(), Some(1), "{}", r.stderr());
    let summary = r.json();
    let s = stage(&summary, "summarize");
    assert_eq!(s["datums"]["failed"], 1, "{summary}");
    assert_eq!(s["datums"]["executed"], 7, "{summary}");
    let f = &summary["failures"][0];
    assert_eq!(f["datum"], "batch-005.ndjson");
    assert!(f["error"].as_str().unwrap().contains("status 3"), "{f}");
    assert!(
        f["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("bad batch batch-005.ndjson"),
        "{f}"
    );
    // Fixed: only the failed datum runs again.
    p.write(one, &good);
    let again = dvx(&p, conf, &["run", "--executor", "slurm", "--json"])
        .ok()
        .json();
    let s = stage(&again, "summarize");
    assert_eq!(
        (
            s["datums"]["executed"].as_u64(),
            s["datums"]["restored"].as_u64()
        ),
        (Some(1), Some(7)),
        "{again}"
    );
}

/// Job ids whose logs the run's jobs wrote (a log appears when a job starts).
pub(crate) fn started_jobs(p: &Project) -> Vec<String> {
    fs::read_dir(p.p(".dvx/tmp/slurm"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".log")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Jobs of a run (they share a name) that are still waiting or running.
fn live(conf: &str, name: &str) -> String {
    let out = Command::new("squeue")
        .env("SLURM_CONF", conf)
        .args([
            "--noheader",
            "--format=%i %T",
            "--states=PENDING,RUNNING,COMPLETING,CONFIGURING",
        ])
        .arg(format!("--name={name}"))
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The name of a job (those of one run share it).
fn job_name(conf: &str, job: &str) -> String {
    let out = Command::new("squeue")
        .env("SLURM_CONF", conf)
        .args(["--noheader", "--format=%j", "--states=all", "--jobs", job])
        .output()
        .expect("squeue runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub(crate) fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ctrl_c_leaves_no_job_queued_or_running() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "ctrlc");
    let p = example(&remote);
    with_cmd(&p, "sleep 60");
    let mut c = s3_cmd(&p, &["run".into(), "--executor".into(), "slurm".into()]);
    c.env("SLURM_CONF", conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("dvx starts");
    let job = wait_for("a job to start", Duration::from_secs(120), || {
        started_jobs(&p).pop()
    });
    let name = job_name(conf, &job);
    assert!(name.starts_with("dvx-"), "{name}");
    assert!(!live(conf, &name).is_empty());
    // SAFETY: signals the dvx process this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    // Neither the jobs that ran nor those still waiting are left in the queue.
    wait_for(
        "the run's jobs to leave the queue",
        Duration::from_secs(30),
        || live(conf, &name).is_empty().then_some(()),
    );
}

#[test]
fn a_job_cancelled_from_outside_is_reported_killed_by_the_cluster_and_a_rerun_completes() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "scancel");
    let p = example(&remote);
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace("glob: \"/*.ndjson\"", "glob: \"/batch-000.ndjson\""),
    );
    with_cmd(&p, "'sleep 3; python3 src/summarize.py'");
    let mut c = s3_cmd(
        &p,
        &[
            "run".into(),
            "--executor".into(),
            "slurm".into(),
            "summarize".into(),
        ],
    );
    c.env("SLURM_CONF", conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("dvx starts");
    let job = wait_for("the job to start", Duration::from_secs(120), || {
        started_jobs(&p).pop()
    });
    let st = Command::new("scancel")
        .env("SLURM_CONF", conf)
        .arg(&job)
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("killed by the cluster: Slurm job {job}")),
        "{err}"
    );
    let again = dvx(
        &p,
        conf,
        &["run", "--executor", "slurm", "summarize", "--json"],
    )
    .ok()
    .json();
    assert_eq!(
        stage(&again, "summarize")["datums"]["executed"],
        1,
        "{again}"
    );
}

#[test]
fn a_stage_can_ask_for_slurm_in_dvx_yaml() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "perstage");
    let p = example(&remote);
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace(
            "    outs: [summaries]\n",
            "    outs: [summaries]\n    executor: slurm\n",
        ),
    );
    let summary = dvx(&p, conf, &["run", "--json"]).ok().json();
    let rid = stage(&summary, "summarize")["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        p.dvx(&["show", &rid, "--json"]).ok().json()["executor"],
        "slurm"
    );
    let rid = stage(&summary, "report")["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        p.dvx(&["show", &rid, "--json"]).ok().json()["executor"],
        "local"
    );
}

#[test]
fn a_batch_runs_several_datums_in_one_slurm_job_each_with_its_own_result() {
    let Some(conf) = cluster() else { return };
    let remote = Remote::new(Kind::Folder, "batch");
    let p = example(&remote);
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace(
            "    outs: [summaries]\n",
            "    outs: [summaries]\n    executor: slurm\n    batch: 3\n",
        ),
    );
    let summary = dvx(&p, conf, &["run", "--json"]).ok().json();
    let s = stage(&summary, "summarize");
    assert_eq!(s["datums"]["executed"], 8, "{summary}");
    let mut jobs: Vec<String> = s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let rec = p.dvx(&["show", r.as_str().unwrap(), "--json"]).ok().json();
            rec["cluster"]["job"].as_str().unwrap().to_string()
        })
        .collect();
    jobs.sort();
    jobs.dedup();
    // 8 datums, 3 per job.
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let local_remote = Remote::new(Kind::Folder, "batch-local");
    let l = example(&local_remote);
    l.dvx(&["run"]).ok();
    assert_eq!(tree(&p.p("summaries")), tree(&l.p("summaries")));
}

/// A task as a hostile remote could hold it: canonical, under its own id, with `path`.
fn hostile_task(input_path: &str) -> (String, Vec<u8>) {
    let text = format!(
        concat!(
            r#"{{"format":1,"submission":"x/1","stage":"s","cmd":["touch pwned"],"env":{{}},"#,
            r#""wdir":"","image":null,"network":false,"inputs":[{{"path":{},"kind":"file","id":"{}"}}],"#,
            r#""datum":null,"outs":[],"resources":{{"cpus":null,"memory":null,"gpus":null}},"#,
            r#""timeout_secs":null,"packs":[]}}"#
        ),
        serde_json::to_string(input_path).unwrap(),
        blake3::hash(b"x").to_hex()
    );
    let id = blake3::hash(text.as_bytes()).to_hex().to_string();
    (id, text.into_bytes())
}

#[test]
fn exec_task_refuses_a_task_that_reaches_outside_its_workspace_or_does_not_match_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let remote = dir.path().join("r");
    fs::create_dir_all(remote.join("tasks")).unwrap();
    let p = Project::empty();
    for bad in [
        "../escape",
        "/etc/passwd",
        ".git/hooks/pre-commit",
        ".dvx/db",
    ] {
        let (id, bytes) = hostile_task(bad);
        fs::write(remote.join(format!("tasks/{id}.json")), &bytes).unwrap();
        let r = p.dvx(&["exec-task", &remote.display().to_string(), &id]);
        assert_eq!(r.out.status.code(), Some(3), "{bad}: {}", r.stderr());
        assert!(
            r.stderr().contains("not a safe relative path"),
            "{}",
            r.stderr()
        );
        // Nothing ran, and no result was written.
        assert!(!remote.join(format!("results/{id}.json")).exists());
    }
    // Bytes that are not what the id names.
    let (id, mut bytes) = hostile_task("ok.txt");
    bytes[20] ^= 1;
    fs::write(remote.join(format!("tasks/{id}.json")), &bytes).unwrap();
    let r = p.dvx(&["exec-task", &remote.display().to_string(), &id]);
    assert_eq!(r.out.status.code(), Some(3), "{}", r.stderr());
    assert!(
        r.stderr().contains("does not match its id"),
        "{}",
        r.stderr()
    );
    assert!(!p.exists("pwned"));
    // Not an id at all: a usage error.
    let r = p.dvx(&["exec-task", &remote.display().to_string(), "abc"]);
    assert_eq!(r.out.status.code(), Some(2), "{}", r.stderr());
}

#[test]
fn a_container_stage_runs_on_slurm_in_its_image_and_matches_a_local_run() {
    let Some(conf) = cluster() else { return };
    let Some(podman) = crate::containers::services() else {
        eprintln!("skipped: no podman (DVX_SKIP_CONTAINER_TESTS=1)");
        return;
    };
    let image = podman
        .iter()
        .find(|(k, _)| k == "DVX_TEST_IMAGE")
        .map(|(_, v)| v.clone())
        .expect("podman.sh names the test image");
    let yaml = format!(
        "stages:\n  count:\n    image: {image}\n    input: {{path: data/batches, glob: \"/*.ndjson\"}}\n    cmd: wc -l < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID.n\" && cat /etc/passwd | head -1 > \"$DVX_OUTPUT/$DVX_DATUM_ID.who\"\n    outs: [counts]\n    executor: slurm\n"
    );
    let run = |p: &Project, args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut c = s3_cmd(p, &args);
        c.env("SLURM_CONF", conf)
            .envs(podman.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Run {
            out: c.output().expect("dvx runs"),
        }
    };
    let remote = Remote::new(Kind::Folder, "container");
    let p = example(&remote);
    p.write("dvx.yaml", &yaml);
    let summary = run(&p, &["run", "--json"]).ok().json();
    let rid = stage(&summary, "count")["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    let rec = p.dvx(&["show", &rid, "--json"]).ok().json();
    assert_eq!(rec["executor"], "slurm", "{rec}");
    assert!(rec["image"].as_str().unwrap().contains("@sha256:"), "{rec}");
    // The same stage here, in the same image: the same bytes (the container's /etc/passwd,
    // not the node's).
    let local_remote = Remote::new(Kind::Folder, "container-local");
    let l = example(&local_remote);
    l.write("dvx.yaml", yaml.replace("    executor: slurm\n", ""));
    run(&l, &["run"]).ok();
    assert_eq!(tree(&p.p("counts")), tree(&l.p("counts")));
    assert_eq!(tree(&p.p("counts")).len(), 16);
}
