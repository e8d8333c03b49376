//! The Kubernetes executor against a fake API server in this process (`kube_fake`), with data
//! moving through a folder remote: the exact manifests, one list call per poll with the run's
//! label, results taken from the remote, Jobs failed by the cluster, and Ctrl-C deleting every
//! Job of the run. A live test runs against a real cluster when `DVX_TEST_KUBECONFIG` is set.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use crate::kube_fake::{FakeKube, Mode};
use crate::remote::{Kind, Remote};

const DVX_IMAGE: &str =
    "registry.example/dvx@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The ndjson-batches example (8 datums) with `remote` as its default remote, run on `fake`.
fn example(remote: &Remote, fake: &FakeKube, extra: &str) -> Project {
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
    configure(&p, fake, extra);
    p
}

/// `[executor.kubernetes]` for `fake`, with `extra` settings.
fn configure(p: &Project, fake: &FakeKube, extra: &str) {
    p.write(".dvx/kubeconfig", fake.kubeconfig());
    let cfg = p.p(".dvx/config.toml");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[executor.kubernetes]\nkubeconfig = {:?}\nimage = \"{DVX_IMAGE}\"\ncredentials_secret = \"dvx-s3\"\npoll_secs = 0.1\n{extra}",
        p.p(".dvx/kubeconfig").display().to_string()
    ));
    fs::write(&cfg, text).unwrap();
}

fn stage<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {summary}"))
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            (rel, fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The example run here, for comparison.
fn local_summaries() -> Vec<(String, Vec<u8>)> {
    let remote = Remote::new(Kind::Folder, "kube-local");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let l = example(&remote, &fake, "");
    l.dvx(&["run"]).ok();
    tree(&l.p("summaries"))
}

/// A created Job with what changes from run to run (the run's name, task ids, the remote's
/// folder) replaced by placeholders.
fn normalized(job: &Value, remote: &Remote) -> Value {
    let run = job["metadata"]["labels"]["dvx/run"]
        .as_str()
        .unwrap()
        .to_string();
    let text = job
        .to_string()
        .replace(&run, "RUN")
        .replace(&remote.url, "REMOTE");
    let mut v: Value = serde_json::from_str(&text).unwrap();
    if let Some(cmd) = v["spec"]["template"]["spec"]["containers"][0]["command"].as_array_mut() {
        for w in cmd.iter_mut() {
            if w.as_str().is_some_and(|s| s.len() == 64) {
                *w = json!("TASK");
            }
        }
    }
    v
}

#[test]
fn each_datum_is_a_job_of_the_documented_shape_and_the_run_matches_a_local_one() {
    let remote = Remote::new(Kind::Folder, "kube");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = example(
        &remote,
        &fake,
        "namespace = \"ml\"\nservice_account = \"dvx-runner\"\n",
    );
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace(
            "    outs: [summaries]\n",
            "    outs: [summaries]\n    executor: kubernetes\n    resources: {cpus: 0.5, memory: 1g}\n    timeout: 10m\n",
        ),
    );
    let summary = p
        .dvx(&["run", "--executor", "kubernetes", "--json"])
        .ok()
        .json();
    assert_eq!(stage(&summary, "summarize")["datums"]["executed"], 8);
    assert_eq!(tree(&p.p("summaries")), local_summaries());

    // Eight Jobs, each exactly as schemas/kubernetes-job.md describes.
    let created = fake.created();
    assert_eq!(created.len(), 9, "8 datums and the report");
    let want = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "annotations": {"dvx/stage": "summarize"},
            "labels": {"dvx/run": "RUN"},
            "name": "RUN-1",
            "namespace": "ml"
        },
        "spec": {
            "activeDeadlineSeconds": 900,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"dvx/run": "RUN"}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "command": ["dvx", "exec-task", "REMOTE", "TASK"],
                        "env": [{"name": "DVX_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "envFrom": [{"secretRef": {"name": "dvx-s3", "optional": false}}],
                        "image": DVX_IMAGE,
                        "name": "task",
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "1024Mi"},
                            "requests": {"cpu": "500m", "memory": "1024Mi"}
                        }
                    }],
                    "restartPolicy": "Never",
                    "serviceAccountName": "dvx-runner"
                }
            },
            "ttlSecondsAfterFinished": 3600
        }
    });
    assert_eq!(normalized(&created[0], &remote), want);
    // Never a credential in a manifest.
    for j in &created {
        assert!(!j.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{j}");
    }

    // Polling: one list call per look, by the run's label, in the configured namespace.
    let reqs = fake.requests();
    let lists: Vec<_> = reqs.iter().filter(|r| r.method == "GET").collect();
    assert!(!lists.is_empty());
    let run = created[0]["metadata"]["labels"]["dvx/run"]
        .as_str()
        .unwrap();
    for l in &lists {
        assert_eq!(l.path, "/apis/batch/v1/namespaces/ml/jobs");
        assert!(
            l.query
                .contains(&format!("labelSelector=dvx%2Frun%3D{run}")),
            "{}",
            l.query
        );
    }
    assert!(reqs.iter().all(|r| r.method != "DELETE"));

    // The record names the executor, the Job and the node the result names.
    let rid = stage(&summary, "summarize")["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    let rec = p.dvx(&["show", &rid, "--json"]).ok().json();
    assert_eq!(rec["executor"], "kubernetes", "{rec}");
    assert_eq!(rec["host"], "fake-node-1", "{rec}");
    assert!(
        rec["cluster"]["job"].as_str().unwrap().starts_with(run),
        "{rec}"
    );
    assert!(rec["cluster"]["queued"]
        .as_str()
        .is_some_and(|q| !q.is_empty()));
}

#[test]
fn a_batch_is_one_indexed_job_with_one_pod_per_datum() {
    let remote = Remote::new(Kind::Folder, "kube-batch");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = example(&remote, &fake, "");
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace(
            "    outs: [summaries]\n",
            "    outs: [summaries]\n    executor: kubernetes\n    batch: 3\n",
        ),
    );
    let summary = p.dvx(&["run", "--json"]).ok().json();
    assert_eq!(stage(&summary, "summarize")["datums"]["executed"], 8);
    let created = fake.created();
    // 8 datums, 3 per Job; the report stage ran here.
    let sizes: Vec<u64> = created
        .iter()
        .map(|j| j["spec"]["completions"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [3, 3, 2]);
    for j in &created {
        assert_eq!(j["spec"]["completionMode"], "Indexed");
        assert_eq!(j["spec"]["backoffLimitPerIndex"], 0);
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["command"][2],
            "--indexed"
        );
    }
    assert_eq!(tree(&p.p("summaries")), local_summaries());
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
fn datums_of_combined_inputs_run_on_kubernetes_with_the_output_of_a_local_run() {
    use crate::cluster_datums::{combined_locally, combined_project, COMBINED_OUTS};
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = combined_project(&Remote::new(Kind::Folder, "kube-combined"));
    configure(&p, &fake, "");
    let summary = p
        .dvx(&["run", "--executor", "kubernetes", "--json"])
        .ok()
        .json();
    assert_eq!(summary["failed"], 0, "{summary}");
    let here: Vec<_> = COMBINED_OUTS.iter().map(|o| tree(&p.p(o))).collect();
    assert_eq!(here, combined_locally());
    // cross 2x2, join 1, outer 2, union 4, group 2.
    assert_eq!(fake.created().len(), 13);
}

#[test]
fn a_job_the_cluster_failed_without_a_result_is_reported_killed_naming_the_job() {
    let remote = Remote::new(Kind::Folder, "kube-fail");
    let fake = FakeKube::start(Mode::Fail("DeadlineExceeded"), Vec::new());
    let p = example(&remote, &fake, "");
    let r = p.dvx(&["run", "--executor", "kubernetes", "summarize"]);
    let err = r.stderr();
    assert_eq!(r.out.status.code(), Some(1), "{err}");
    let job = fake.created()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!(
            "killed by the cluster: Kubernetes Job {job} ended (Failed: DeadlineExceeded) without a result"
        )),
        "{err}"
    );
}

#[test]
fn a_failing_datum_takes_its_status_from_its_result() {
    let remote = Remote::new(Kind::Folder, "kube-exit");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = example(&remote, &fake, "");
    let y = fs::read_to_string(p.p("dvx.yaml")).unwrap();
    p.write(
        "dvx.yaml",
        y.replace(
            "cmd: python3 src/summarize.py",
            "cmd: 'echo no >&2; exit 7'",
        ),
    );
    let r = p.dvx(&["run", "--executor", "kubernetes", "--json", "summarize"]);
    assert_eq!(r.out.status.code(), Some(1), "{}", r.stderr());
    let f = &r.json()["failures"][0];
    assert!(f["error"].as_str().unwrap().contains("status 7"), "{f}");
    assert!(f["stderr_tail"].as_str().unwrap().contains("no"), "{f}");
}

#[test]
fn ctrl_c_deletes_every_job_of_the_run() {
    let remote = Remote::new(Kind::Folder, "kube-ctrlc");
    let fake = FakeKube::start(Mode::Hang, Vec::new());
    let p = example(&remote, &fake, "");
    let child = p
        .cmd_in("", &["run", "--executor", "kubernetes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dvx starts");
    let t0 = Instant::now();
    while fake.created().len() < 8 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the Jobs were not created"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signals the dvx process this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    let mut created: Vec<String> = fake
        .created()
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let deletes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    let mut deleted: Vec<String> = deletes
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    created.sort();
    deleted.sort();
    assert_eq!(deleted, created);
    for d in &deletes {
        assert_eq!(d.body["propagationPolicy"], "Background", "{:?}", d.body);
        assert!(d.path.starts_with("/apis/batch/v1/namespaces/ci/jobs/"));
    }
}

#[test]
fn without_a_dvx_image_a_stage_without_image_is_refused_with_a_hint() {
    let remote = Remote::new(Kind::Folder, "kube-noimage");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = example(&remote, &fake, "");
    let cfg = fs::read_to_string(p.p(".dvx/config.toml")).unwrap();
    p.write(
        ".dvx/config.toml",
        cfg.replace(&format!("image = \"{DVX_IMAGE}\"\n"), ""),
    );
    let err = p.dvx(&["run", "--executor", "kubernetes"]).fails();
    assert!(err.contains("needs an image holding dvx"), "{err}");
    assert!(err.contains("hint: set `image"), "{err}");
    assert!(fake.created().is_empty());
    // A tag where a digest belongs is refused when the settings are read.
    p.write(
        ".dvx/config.toml",
        cfg.replace(DVX_IMAGE, "registry.example/dvx:1.0"),
    );
    let err = p.dvx(&["run", "--executor", "kubernetes"]).fails();
    assert!(err.contains("not pinned by digest"), "{err}");
}

#[test]
fn an_api_server_out_of_reach_fails_the_run_with_a_hint() {
    let remote = Remote::new(Kind::Folder, "kube-unreachable");
    let fake = FakeKube::start(Mode::Run, Vec::new());
    let p = example(&remote, &fake, "");
    // Nothing listens on port 1.
    let kc = fs::read_to_string(p.p(".dvx/kubeconfig")).unwrap();
    p.write(
        ".dvx/kubeconfig",
        kc.replace(&fake.url, "http://127.0.0.1:1"),
    );
    let err = p
        .dvx(&["run", "--executor", "kubernetes", "summarize"])
        .fails();
    assert!(err.contains("kubernetes: cannot create Job"), "{err}");
    assert!(
        err.contains("hint: check that the cluster is reachable"),
        "{err}"
    );
}

/// Against a real cluster: `DVX_TEST_KUBECONFIG` (its current context), `DVX_TEST_KUBE_IMAGE`
/// (an image with dvx, pinned by digest), `DVX_TEST_KUBE_REMOTE` (a remote the pods reach,
/// such as s3://bucket/prefix, with `DVX_TEST_KUBE_ENDPOINT` if needed) and
/// `DVX_TEST_KUBE_SECRET` (a Secret in the namespace holding its credentials); the remote's
/// credentials for this side come from the environment.
#[test]
fn live_cluster_runs_a_datum_stage_when_one_is_configured() {
    let vars = [
        "DVX_TEST_KUBECONFIG",
        "DVX_TEST_KUBE_IMAGE",
        "DVX_TEST_KUBE_REMOTE",
        "DVX_TEST_KUBE_SECRET",
    ];
    let got: Vec<Option<String>> = vars.iter().map(|v| std::env::var(v).ok()).collect();
    if got.iter().any(Option::is_none) {
        eprintln!(
            "skipped: no live Kubernetes cluster ({} not set)",
            vars.iter()
                .zip(&got)
                .filter(|(_, g)| g.is_none())
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return;
    }
    let [kc, image, url, secret] = [0, 1, 2, 3].map(|i| got[i].clone().unwrap_or_default());
    let p = Project::new();
    p.write("data/in/a.txt", "one\n");
    p.write("data/in/b.txt", "two\nthree\n");
    p.write(
        "dvx.yaml",
        "stages:\n  count:\n    input: {path: data/in, glob: \"/*.txt\"}\n    cmd: wc -l < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$DVX_DATUM_ID.n\"\n    outs: [counts]\n    executor: kubernetes\n",
    );
    let mut add = vec!["remote", "add", "origin", url.as_str()];
    let ep = std::env::var("DVX_TEST_KUBE_ENDPOINT").ok();
    if let Some(e) = &ep {
        add.extend(["--endpoint", e.as_str()]);
    }
    let passthrough = |c: &mut std::process::Command| {
        for v in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        ] {
            if let Ok(x) = std::env::var(v) {
                c.env(v, x);
            }
        }
    };
    let mut c = p.cmd_in("", &add);
    passthrough(&mut c);
    assert!(c.status().unwrap().success());
    let cfg = p.p(".dvx/config.toml");
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[executor.kubernetes]\nkubeconfig = {kc:?}\nimage = {image:?}\ncredentials_secret = {secret:?}\npoll_secs = 1.0\n"
    ));
    fs::write(&cfg, text).unwrap();
    let mut c = p.cmd_in("", &["run", "--json"]);
    passthrough(&mut c);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(p.read("counts/a.txt.n").trim_ascii(), b"1");
    assert_eq!(p.read("counts/b.txt.n").trim_ascii(), b"2");
}
