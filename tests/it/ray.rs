//! The Ray executor against a real two-node Ray (tests/services/ray.sh), with data moving
//! through a folder remote and through S3 (moto). Ray binds the machine's own address, so it
//! runs in a network namespace with loopback only, and so does every dvx that talks to it
//! (and the moto server those use). `DVX_SKIP_CLUSTER_TESTS=1` skips them, saying so, as does
//! a machine without Ray installed (`tests/services/ray.sh install`) or without root.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::cluster::{example, stage, tree, wait_for, with_cmd};
use crate::common::*;
use crate::remote::{Kind, Remote};

/// The test cluster's namespace, started once; None when the tests are skipped.
fn ray() -> Option<&'static str> {
    if std::env::var_os("DVX_SKIP_CLUSTER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("skipped: DVX_SKIP_CLUSTER_TESTS=1");
        return None;
    }
    static NS: OnceLock<Option<String>> = OnceLock::new();
    let ns = NS.get_or_init(|| {
        if !is_root() {
            eprintln!("skipped: the Ray tests need root (`ip netns exec`)");
            return None;
        }
        // A cluster already running (CI starts one): use it.
        if let (Some(_), Some(ns)) = (
            std::env::var_os("RAY_ADDRESS"),
            std::env::var("DVX_RAY_NETNS").ok(),
        ) {
            return Some(ns);
        }
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .stderr(Stdio::inherit())
            .output()
            .expect("ray.sh runs");
        if !out.status.success() {
            eprintln!("skipped: Ray is not set up (tests/services/ray.sh install, then start)");
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let ns = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("DVX_RAY_NETNS="))
            .expect("ray.sh prints the namespace");
        Some(ns.to_string())
    });
    ns.as_deref()
}

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/ray.sh")
}

const API: &str = "http://127.0.0.1:8265";

/// dvx in the namespace, as `Project::cmd_in` runs it.
fn ns_cmd(ns: &str, p: &Project, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, dvx_bin()])
        .args(args)
        .current_dir(p.path())
        .env("DVX_AUTHOR_NAME", "Tester")
        .env("DVX_AUTHOR_EMAIL", "tester@example.com")
        .env("DVX_LOCK_WAIT", "1");
    isolate(&mut c);
    c.env("RAY_ADDRESS", API)
        .env("AWS_ACCESS_KEY_ID", crate::remote::KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::remote::SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1");
    c
}

fn run_ns(ns: &str, p: &Project, args: &[&str]) -> Run {
    Run {
        out: ns_cmd(ns, p, args).output().expect("dvx runs"),
    }
}

/// Ray's job API from inside the namespace.
fn api(ns: &str, method: &str, path: &str) -> serde_json::Value {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "curl", "-fsS", "-m", "20", "-X", method,
        ])
        .arg(format!("{API}{path}"))
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "{method} {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the job API answers JSON")
}

/// The jobs whose entrypoint names `remote` (each test has its own), as (submission id,
/// status, entrypoint, stage).
fn jobs_of(ns: &str, remote: &str) -> Vec<Job> {
    let all = api(ns, "GET", "/api/jobs/");
    let mut out: Vec<_> = all
        .as_array()
        .expect("a list of jobs")
        .iter()
        .filter(|j| j["entrypoint"].as_str().is_some_and(|e| e.contains(remote)))
        .map(|j| {
            let s = |k: &str| j[k].as_str().unwrap_or_default().to_string();
            let stage = j["metadata"]["dvx_stage"].as_str().unwrap_or_default();
            (
                s("submission_id"),
                s("status"),
                s("entrypoint"),
                stage.to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

type Job = (String, String, String, String);

fn live(jobs: &[Job]) -> Vec<&Job> {
    jobs.iter()
        .filter(|j| j.1 == "PENDING" || j.1 == "RUNNING")
        .collect()
}

/// The example with `remote`, a short poll interval, and `stage_extra` lines in the
/// summarize stage.
fn project(remote: &Remote, stage_extra: &str) -> Project {
    let p = example(remote);
    let cfg = p.p(".dvx/config.toml");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[executor.ray]\npoll_secs = 0.2\n");
    fs::write(&cfg, text).unwrap();
    if !stage_extra.is_empty() {
        let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
        p.write(
            "dvx.yaml",
            y.replace(
                "    outs: [summaries]\n",
                &format!("    outs: [summaries]\n{stage_extra}"),
            ),
        );
    }
    p
}

/// A moto server in the namespace (killed when the test process ends) with a bucket; its
/// endpoint.
fn moto_in(ns: &str) -> String {
    static EP: OnceLock<String> = OnceLock::new();
    EP.get_or_init(|| {
        let storage = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/storage.sh");
        let st = Command::new("bash")
            .arg(&storage)
            .arg("install")
            .stdout(Stdio::null())
            .status()
            .expect("storage.sh runs");
        assert!(st.success(), "installing moto failed");
        // A port Ray does not use (its worker ports are 10002-20100).
        let port = 40000 + (std::process::id() % 9000) as u16;
        let ep = format!("http://127.0.0.1:{port}");
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns2, storage2) = (ns.to_string(), storage.clone());
        std::thread::spawn(move || {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns2, "bash"])
                .arg(&storage2)
                .args(["moto", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = c.spawn().expect("moto starts");
            tx.send(()).expect("send");
            let _keep = child;
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("moto started");
        wait_for("moto in the namespace", Duration::from_secs(60), || {
            Command::new("ip")
                .args(["netns", "exec", ns, "bash"])
                .arg(&storage)
                .args(["bucket", &ep, crate::remote::BUCKET])
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
        ep
    })
    .clone()
}

fn runs_of(p: &Project, summary: &serde_json::Value) -> Vec<serde_json::Value> {
    stage(summary, "summarize")["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| p.dvx(&["show", r.as_str().unwrap(), "--json"]).ok().json())
        .collect()
}

/// The example on Ray (one job per datum, or `batch`) gives what a local run gives; the
/// records name Ray's jobs; one changed input is one more job; the run cache is shared.
fn same_as_local(ns: &str, s3: bool, stage_extra: &str, jobs_first: usize) {
    let folder = Remote::new(Kind::Folder, "ray");
    let p = project(&folder, stage_extra);
    let remote_url = if s3 {
        let ep = moto_in(ns);
        // The project's folder name is unique: so is the prefix.
        let url = format!(
            "s3://{}/ray-{}",
            crate::remote::BUCKET,
            p.path().file_name().unwrap().to_string_lossy()
        );
        p.dvx(&["remote", "add", "ns3", &url, "--endpoint", &ep])
            .ok();
        let cfg = p.p(".dvx/config.toml");
        let text = fs::read_to_string(&cfg).unwrap().replace(
            "[executor.ray]\n",
            "[executor.ray]\nremote = \"ns3\"\npass_env = [\"AWS_ACCESS_KEY_ID\", \"AWS_SECRET_ACCESS_KEY\", \"AWS_DEFAULT_REGION\"]\n",
        );
        fs::write(&cfg, text).unwrap();
        url
    } else {
        folder.url.clone()
    };
    let summary = run_ns(ns, &p, &["run", "--executor", "ray", "--json"])
        .ok()
        .json();
    assert_eq!(stage(&summary, "summarize")["datums"]["executed"], 8);
    // `--executor ray` sends the report stage to Ray too: count the datums' jobs.
    let datum_jobs = || {
        jobs_of(ns, &remote_url)
            .into_iter()
            .filter(|j| j.3 == "summarize")
            .count()
    };
    assert_eq!(datum_jobs(), jobs_first);

    let local_remote = Remote::new(Kind::Folder, "ray-local");
    let l = example(&local_remote);
    l.dvx(&["run"]).ok();
    assert_eq!(tree(&p.p("summaries")), tree(&l.p("summaries")));
    assert_eq!(p.read("report.json"), l.read("report.json"));

    // The records name the executor, Ray's submission id and the node.
    let recs = runs_of(&p, &summary);
    let rec = &recs[0];
    assert_eq!(rec["executor"], "ray", "{rec}");
    let job = rec["cluster"]["job"].as_str().unwrap().to_string();
    assert!(
        jobs_of(ns, &remote_url)
            .iter()
            .any(|j| j.0 == job && j.1 == "SUCCEEDED"),
        "{job} is not one of this run's jobs"
    );
    let mut distinct: Vec<&str> = recs
        .iter()
        .map(|r| r["cluster"]["job"].as_str().unwrap())
        .collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), jobs_first);
    assert!(rec["cluster"]["queued"]
        .as_str()
        .is_some_and(|q| !q.is_empty()));
    let rid = rec["id"].as_str().unwrap();
    let text = p.dvx(&["show", rid]).ok().stdout();
    assert!(
        text.contains(&format!(
            "ray job {job} on {}",
            rec["host"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("(ray executor)"), "{text}");

    // One changed batch: one more job, one datum executed.
    let one = "data/batches/batch-003.ndjson";
    let before = p.read(one);
    let mut changed = before.clone();
    changed.extend_from_slice(b"{\"event\": \"view\", \"amount\": 0}\n");
    p.write(one, &changed);
    let again = run_ns(ns, &p, &["run", "--executor", "ray", "--json"])
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
    assert_eq!(datum_jobs(), jobs_first + 1);
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
fn every_datum_a_ray_job_through_a_folder_remote_gives_what_a_local_run_gives() {
    let Some(ns) = ray() else { return };
    same_as_local(ns, false, "", 8);
}

#[test]
fn every_datum_a_ray_job_through_s3_gives_what_a_local_run_gives() {
    let Some(ns) = ray() else { return };
    same_as_local(ns, true, "", 8);
}

#[test]
fn batched_datums_on_ray_give_what_a_local_run_gives() {
    let Some(ns) = ray() else { return };
    // 8 datums, 3 per job; the stage asks for Ray itself.
    same_as_local(ns, false, "    executor: ray\n    batch: 3\n", 3);
}

#[test]
fn a_failing_datum_on_ray_fails_its_stage_with_its_stderr_and_the_others_keep_their_results() {
    let Some(ns) = ray() else { return };
    let remote = Remote::new(Kind::Folder, "ray-fail");
    let p = project(&remote, "");
    with_cmd(
        &p,
        "'if grep -q BROKEN \"$DVX_INPUT\"; then echo \"bad batch $DVX_DATUM_ID\" >&2; exit 3; fi; python3 src/summarize.py'",
    );
    let one = "data/batches/batch-005.ndjson";
    let good = p.read(one);
    let mut bad = good.clone();
    bad.extend_from_slice(b"BROKEN\n");
    p.write(one, &bad);
    let r = run_ns(
        ns,
        &p,
        &["run", "--executor", "ray", "--keep-going", "--json"],
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
    let again = run_ns(ns, &p, &["run", "--executor", "ray", "--json"])
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

#[test]
fn ctrl_c_leaves_no_ray_job_pending_or_running() {
    let Some(ns) = ray() else { return };
    let remote = Remote::new(Kind::Folder, "ray-ctrlc");
    let p = project(&remote, "");
    with_cmd(&p, "sleep 60");
    let mut c = ns_cmd(ns, &p, &["run", "--executor", "ray"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = c.spawn().expect("dvx starts");
    wait_for("a job to run", Duration::from_secs(120), || {
        jobs_of(ns, &remote.url)
            .iter()
            .any(|j| j.1 == "RUNNING")
            .then_some(())
    });
    // 8 jobs, 2 CPUs: some run, the others wait.
    assert!(live(&jobs_of(ns, &remote.url)).len() >= 2);
    // SAFETY: signals the dvx process this test started (`ip netns exec` execs it).
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    wait_for("the run's jobs to stop", Duration::from_secs(20), || {
        live(&jobs_of(ns, &remote.url)).is_empty().then_some(())
    });
    let jobs = jobs_of(ns, &remote.url);
    assert!(jobs.iter().all(|j| j.1 == "STOPPED"), "{jobs:?}");
}

#[test]
fn a_ray_job_stopped_from_outside_is_reported_killed_and_a_rerun_completes() {
    let Some(ns) = ray() else { return };
    let remote = Remote::new(Kind::Folder, "ray-stop");
    let p = project(&remote, "");
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace("glob: \"/*.ndjson\"", "glob: \"/batch-000.ndjson\""),
    );
    with_cmd(&p, "'sleep 8; python3 src/summarize.py'");
    let mut c = ns_cmd(ns, &p, &["run", "--executor", "ray", "summarize"]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = c.spawn().expect("dvx starts");
    let job = wait_for("the job to run", Duration::from_secs(120), || {
        jobs_of(ns, &remote.url)
            .into_iter()
            .find(|j| j.1 == "RUNNING")
            .map(|j| j.0)
    });
    let stopped = api(ns, "POST", &format!("/api/jobs/{job}/stop"));
    assert_eq!(stopped["stopped"], true, "{stopped}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "killed by the cluster: Ray job {job} ended (STOPPED"
        )),
        "{err}"
    );
    let again = run_ns(ns, &p, &["run", "--executor", "ray", "summarize", "--json"])
        .ok()
        .json();
    assert_eq!(
        stage(&again, "summarize")["datums"]["executed"],
        1,
        "{again}"
    );
    assert!(p.exists("summaries/batch-000.json"));
}

#[test]
fn two_hundred_datums_in_batches_of_twenty_are_ten_ray_jobs() {
    let Some(ns) = ray() else { return };
    let remote = Remote::new(Kind::Folder, "ray-200");
    let p = Project::new();
    for i in 0..200 {
        p.write(&format!("in/f{i:03}.txt"), format!("datum {i}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  copy:\n    input: {path: in, glob: \"/*.txt\"}\n    cmd: tr a-z A-Z < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID\"\n    outs: [out]\n    executor: ray\n    batch: 20\n",
    );
    remote.add_to(&p);
    let cfg = p.p(".dvx/config.toml");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[executor.ray]\npoll_secs = 0.2\n");
    fs::write(&cfg, text).unwrap();
    let summary = run_ns(ns, &p, &["run", "--json"]).ok().json();
    assert_eq!(
        stage(&summary, "copy")["datums"]["executed"],
        200,
        "{summary}"
    );
    let jobs = jobs_of(ns, &remote.url);
    assert_eq!(jobs.len(), 10, "{jobs:?}");
    for j in &jobs {
        assert_eq!(j.1, "SUCCEEDED");
        // Twenty task ids in each entrypoint.
        let ids = j.2.split_whitespace().filter(|w| w.len() == 66).count();
        assert_eq!(ids, 20, "{}", j.2);
    }
    assert_eq!(p.read("out/f007.txt"), b"DATUM 7\n");
    assert_eq!(p.read("out/f199.txt"), b"DATUM 199\n");
}
