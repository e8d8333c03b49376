//! Container stages against real containers: podman with runc and small busybox images that
//! tests/services/podman.sh prepares (no registry needed).

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{Project, Run};

/// The environment podman.sh prints (CONTAINERS_CONF, the test images, ...).
fn services() -> Option<&'static Vec<(String, String)>> {
    static ENV: OnceLock<Result<Vec<(String, String)>, String>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/podman.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .map_err(|e| format!("cannot run {script}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{script} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect())
    });
    match env {
        Ok(v) => Some(v),
        Err(_) if std::env::var("DVX_SKIP_CONTAINER_TESTS").as_deref() == Ok("1") => None,
        Err(e) => panic!(
            "container tests need podman: {e}\nrun tests/services/podman.sh as root, or set DVX_SKIP_CONTAINER_TESTS=1 to skip them"
        ),
    }
}

fn var(name: &str) -> String {
    services()
        .and_then(|e| e.iter().find(|(k, _)| k == name))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("podman.sh gave no {name}"))
}

fn image() -> String {
    var("DVX_TEST_IMAGE")
}

/// Skip the test (only with DVX_SKIP_CONTAINER_TESTS=1) when podman is not available.
macro_rules! need_podman {
    () => {
        if services().is_none() {
            eprintln!("skipped: no podman (DVX_SKIP_CONTAINER_TESTS=1)");
            return;
        }
    };
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(args)
        .envs(services().into_iter().flatten().map(|(k, v)| (k, v)))
        .output()
        .expect("podman runs");
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn image_id(name: &str) -> String {
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", name]);
    format!("sha256:{}", id.trim_start_matches("sha256:"))
}

fn dvx_env(p: &Project, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut c = p.cmd_in("", args);
    c.envs(services().into_iter().flatten().map(|(k, v)| (k, v)));
    c.envs(extra.iter().copied());
    Run {
        out: c.output().expect("dvx runs"),
    }
}

fn dvx(p: &Project, args: &[&str]) -> Run {
    dvx_env(p, args, &[])
}

fn run_json(p: &Project) -> serde_json::Value {
    dvx(p, &["run", "--json"]).ok().json()
}

fn stage<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["stages"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["stage"] == name))
        .unwrap_or_else(|| panic!("no stage {name} in {summary}"))
}

fn record(p: &Project, run: &serde_json::Value) -> serde_json::Value {
    dvx(p, &["show", run.as_str().expect("a run id"), "--json"])
        .ok()
        .json()
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

#[test]
fn container_stage_end_to_end() {
    need_podman!();
    let p = Project::new();
    let img = image();
    p.write("data/words.txt", "b\na\nc\n");
    p.write("sort.sh", "sort data/words.txt > sorted.txt\nmkdir -p report\nwc -l < data/words.txt > report/lines\ncat /etc/os-release 2>/dev/null || echo busybox > report/where\n");
    p.write(
        "dvx.yaml",
        format!("stages:\n  sort:\n    image: {img}\n    cmd: sh sort.sh\n    deps: [sort.sh, data/words.txt]\n    outs: [sorted.txt, report]\n"),
    );
    let s = run_json(&p);
    assert_eq!(stage(&s, "sort")["state"], "executed");
    assert_eq!(p.read("sorted.txt"), b"a\nb\nc\n");
    assert_eq!(p.read("report/lines"), b"3\n");
    // It ran in the image, not here: busybox has no os-release.
    assert_eq!(p.read("report/where"), b"busybox\n");
    // What the container wrote belongs to whoever ran dvx.
    for f in ["sorted.txt", "report", "report/lines"] {
        assert_eq!(p.p(f).metadata().unwrap().uid(), uid(), "{f}");
    }
    // The run record names the runtime and the exact image.
    let rec = record(&p, &stage(&s, "sort")["runs"][0]);
    assert_eq!(rec["executor"], "podman");
    assert_eq!(
        rec["image"].as_str().unwrap(),
        format!("{img}@{}", image_id(&img))
    );
    assert_eq!(rec["exit"], 0);
    // Up to date afterwards; a change to the code runs it again.
    assert_eq!(stage(&run_json(&p), "sort")["state"], "skipped");
    p.write("data/words.txt", "z\ny\n");
    let s = run_json(&p);
    assert_eq!(stage(&s, "sort")["state"], "executed");
    assert_eq!(p.read("sorted.txt"), b"y\nz\n");
    p.assert_fsck_clean();
}

#[test]
fn a_new_image_digest_runs_the_stage_again() {
    need_podman!();
    let p = Project::new();
    // A tag of this test's own, moved between two images with different ids.
    let tag = format!("localhost/dvx-it-moving-{}:latest", std::process::id());
    podman(&["tag", &image(), &tag]);
    p.write(
        "dvx.yaml",
        format!("stages:\n  probe:\n    image: {tag}\n    cmd: cat /etc/variant > v.txt 2>/dev/null || echo base > v.txt\n    outs: [v.txt]\n"),
    );
    let first = run_json(&p);
    assert_eq!(stage(&first, "probe")["state"], "executed");
    assert_eq!(p.read("v.txt"), b"base\n");
    assert_eq!(stage(&run_json(&p), "probe")["state"], "skipped");

    podman(&["tag", &var("DVX_TEST_IMAGE_VARIANT"), &tag]);
    let status = dvx(&p, &["status", "--json"]).ok().json();
    let reasons = status.to_string();
    assert!(reasons.contains("image changed"), "{reasons}");
    let second = run_json(&p);
    assert_eq!(stage(&second, "probe")["state"], "executed");
    assert_eq!(p.read("v.txt"), b"variant\n");
    // That image's default user is 1234; the container still runs as the invoking user, so it
    // can write the output and the file is theirs.
    assert_eq!(p.p("v.txt").metadata().unwrap().uid(), uid());
    let rec = record(&p, &stage(&second, "probe")["runs"][0]);
    assert_eq!(
        rec["image"].as_str().unwrap(),
        format!("{tag}@{}", image_id(&var("DVX_TEST_IMAGE_VARIANT")))
    );
    // Back to the first image: its result comes from the run cache.
    podman(&["tag", &image(), &tag]);
    let third = run_json(&p);
    assert_eq!(stage(&third, "probe")["state"], "restored");
    assert_eq!(p.read("v.txt"), b"base\n");
    // With no name after it, untag would drop every name of the image.
    podman(&["untag", &tag, &tag]);
}

#[test]
fn inputs_are_read_only_in_the_container() {
    need_podman!();
    let p = Project::new();
    let img = image();
    p.write("in/a.txt", "keep me\n");
    p.write(
        "dvx.yaml",
        format!("stages:\n  vandal:\n    image: {img}\n    input: {{path: in}}\n    cmd: echo changed > \"$DVX_INPUT\"\n    outs: [out]\n"),
    );
    let err = dvx(&p, &["run"]).fails();
    assert!(err.contains("mounted read-only"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(p.read("in/a.txt"), b"keep me\n");

    // The project itself is read-only too: only declared outputs can be written.
    p.write(
        "dvx.yaml",
        format!("stages:\n  sneaky:\n    image: {img}\n    cmd: echo hi > result.txt && echo extra > in/a.txt\n    deps: [in]\n    outs: [result.txt]\n"),
    );
    let err = dvx(&p, &["run"]).fails();
    assert!(err.contains("mounted read-only"), "{err}");
    assert_eq!(p.read("in/a.txt"), b"keep me\n");
}

#[test]
fn no_network_unless_the_stage_asks() {
    need_podman!();
    let p = Project::new();
    let img = image();
    p.write(
        "dvx.yaml",
        format!("stages:\n  closed:\n    image: {img}\n    cmd: ls /sys/class/net > closed.txt\n    outs: [closed.txt]\n  open:\n    image: {img}\n    network: true\n    cmd: ls /sys/class/net > open.txt\n    outs: [open.txt]\n"),
    );
    dvx(&p, &["run"]).ok();
    assert_eq!(p.read("closed.txt"), b"lo\n");
    let open = String::from_utf8(p.read("open.txt")).unwrap();
    assert!(open.lines().any(|l| l != "lo"), "{open}");
}

#[test]
fn only_declared_env_reaches_the_container() {
    need_podman!();
    let p = Project::new();
    p.write(
        "dvx.yaml",
        format!("stages:\n  env:\n    image: {}\n    env: {{SEED: 7}}\n    cmd: env | sort > env.txt\n    outs: [env.txt]\n", image()),
    );
    dvx_env(&p, &["run"], &[("DVX_IT_SECRET", "hunter2")]).ok();
    let env = String::from_utf8(p.read("env.txt")).unwrap();
    assert!(env.lines().any(|l| l == "SEED=7"), "{env}");
    assert!(env.lines().any(|l| l == "DVX_STAGE=env"), "{env}");
    assert!(
        !env.contains("hunter2") && !env.contains("DVX_AUTHOR"),
        "{env}"
    );
}

#[test]
fn a_missing_image_is_a_clear_error() {
    need_podman!();
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    image: localhost/dvx-no-such-image:1\n    cmd: true\n    outs: [x]\n",
    );
    let err = dvx(&p, &["run"]).fails();
    assert!(
        err.contains("error: stage s: image `localhost/dvx-no-such-image:1` is not on this machine and pulling it failed"),
        "{err}"
    );
    assert!(err.contains("hint: build or load the image"), "{err}");
}

#[test]
fn a_missing_runtime_is_a_clear_error() {
    need_podman!();
    let p = Project::new();
    p.write(
        "dvx.yaml",
        format!(
            "stages:\n  s:\n    image: {}\n    cmd: true\n    outs: [x]\n",
            image()
        ),
    );
    let err = dvx_env(
        &p,
        &["run"],
        &[("DVX_CONTAINER_RUNTIME", "dvx-no-such-runtime")],
    )
    .fails();
    assert!(
        err.contains("the container runtime `dvx-no-such-runtime` (DVX_CONTAINER_RUNTIME) is not an executable on PATH"),
        "{err}"
    );
    assert!(
        err.contains("hint: set DVX_CONTAINER_RUNTIME (or [containers] runtime in .dvx/config.toml) to podman, docker"),
        "{err}"
    );
    // Nothing on PATH at all.
    let err = dvx_env(&p, &["run"], &[("PATH", "/nonexistent")]).fails();
    assert!(
        err.contains("neither podman nor docker is installed"),
        "{err}"
    );
    assert!(err.contains("hint: install podman"), "{err}");

    // The project's settings can name the runtime; the environment overrides them.
    let config = p.p(".dvx/config.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{base}\n[containers]\nruntime = \"dvx-configured-runtime\"\n"),
    )
    .unwrap();
    let err = dvx(&p, &["run"]).fails();
    assert!(
        err.contains("`dvx-configured-runtime` ([containers] runtime in .dvx/config.toml)"),
        "{err}"
    );
    dvx_env(&p, &["run"], &[("DVX_CONTAINER_RUNTIME", "podman")]).ok();
    std::fs::write(
        &config,
        format!("{base}\n[containers]\nruntim = \"podman\"\n"),
    )
    .unwrap();
    let err = dvx(&p, &["run", "--force"]).fails();
    assert!(
        err.contains("containers.runtim: unknown setting; expected `runtime`"),
        "{err}"
    );
}

#[test]
fn a_failing_container_is_reported_plainly() {
    need_podman!();
    let p = Project::new();
    let img = image();
    p.write(
        "dvx.yaml",
        format!("stages:\n  bad:\n    image: {img}\n    cmd: echo about to fail >&2; exit 3\n    outs: [x]\n  hungry:\n    image: {img}\n    resources: {{memory: 8m}}\n    cmd: x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done\n    outs: [y]\n"),
    );
    let r = dvx(&p, &["run", "--keep-going", "--json"]);
    assert!(!r.out.status.success());
    let s = r.json();
    let failures = s["failures"].as_array().unwrap();
    let bad = failures.iter().find(|f| f["stage"] == "bad").unwrap();
    assert_eq!(
        bad["error"],
        "`echo about to fail >&2; exit 3` exited with status 3"
    );
    assert_eq!(bad["stderr_tail"], "about to fail");
    let rec = record(&p, &bad["run"]);
    assert_eq!(rec["exit"], 3);
    let hungry = failures.iter().find(|f| f["stage"] == "hungry").unwrap();
    let e = hungry["error"].as_str().unwrap();
    assert!(e.contains("out of memory (limit 8m)"), "{e}");
    // Neither left a placeholder for its output behind, nor a container.
    assert!(!p.exists("x") && !p.exists("y"));
    assert_eq!(podman(&["ps", "-a", "--filter", "name=dvx-bad-", "-q"]), "");
    assert_eq!(
        podman(&["ps", "-a", "--filter", "name=dvx-hungry-", "-q"]),
        ""
    );
}

#[test]
fn a_timeout_kills_the_container() {
    need_podman!();
    let p = Project::new();
    p.write(
        "dvx.yaml",
        format!("stages:\n  slowpoke:\n    image: {}\n    cmd: sleep 60\n    timeout: 1s\n    outs: [x]\n", image()),
    );
    let t = Instant::now();
    let err = dvx(&p, &["run"]).fails();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(err.contains("timed out after 1s"), "{err}");
    assert_eq!(
        podman(&["ps", "-a", "--filter", "name=dvx-slowpoke-", "-q"]),
        ""
    );
}

fn datum_project(batch: Option<u32>) -> Project {
    let p = Project::new();
    for i in 1..=5 {
        p.write(&format!("in/{i}.txt"), "x\n".repeat(i));
    }
    let batch = batch
        .map(|b| format!("    batch: {b}\n"))
        .unwrap_or_default();
    p.write(
        "dvx.yaml",
        format!("stages:\n  count:\n    image: {}\n    input: {{path: in, glob: \"/*.txt\"}}\n    cmd: wc -l < ${{input}} > ${{output}}/$DVX_DATUM_ID.n && echo \"$DVX_INPUT $DVX_OUTPUT\" > ${{output}}/$DVX_DATUM_ID.where\n    outs: [counts]\n{batch}", image()),
    );
    p
}

fn tree(p: &Project, dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(p.p(dir))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.clone(), p.read(&format!("{dir}/{name}")))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn datums_in_containers_rerun_only_what_changed() {
    need_podman!();
    let p = datum_project(None);
    let s = run_json(&p);
    let d = &stage(&s, "count")["datums"];
    assert_eq!(
        (d["total"].as_u64(), d["executed"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(p.read("counts/3.txt.n"), b"3\n");
    assert_eq!(p.read("counts/3.txt.where"), b"/dvx/in/3.txt /dvx/out\n");
    let rec = record(&p, &stage(&s, "count")["runs"][0]);
    assert_eq!(rec["executor"], "podman");
    assert!(rec["image"].as_str().unwrap().contains("@sha256:"));

    p.write("in/2.txt", "x\nx\nx\nx\nx\nx\nx\n");
    let s = run_json(&p);
    let d = &stage(&s, "count")["datums"];
    assert_eq!(
        (d["executed"].as_u64(), d["restored"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(p.read("counts/2.txt.n"), b"7\n");
}

/// The same command sees the same names in a container as on the host: the input keeps its
/// name and its path below the input folder, alone or in a batch.
#[test]
fn in_a_container_the_input_keeps_its_name() {
    need_podman!();
    for batch in ["", "    batch: 3\n"] {
        let p = Project::new();
        p.write("in/a/x.txt", "1\n");
        p.write("in/b/y.txt", "1\n2\n");
        p.write(
            "dvx.yaml",
            format!("stages:\n  n:\n    image: {}\n    input: {{path: in, glob: \"/*/*\"}}\n    cmd: wc -l < \"$DVX_INPUT\" > \"$DVX_OUTPUT/$(basename \"$DVX_INPUT\").n\" && (cd \"$DVX_INPUT_DIR\" && find . -type f) > \"$DVX_OUTPUT/$(basename \"$DVX_INPUT\").found\"\n    outs: [counts]\n{batch}", image()),
        );
        run_json(&p);
        assert_eq!(p.read("counts/x.txt.n"), b"1\n", "{batch}");
        assert_eq!(p.read("counts/y.txt.n"), b"2\n", "{batch}");
        assert_eq!(p.read("counts/y.txt.found"), b"./b/y.txt\n", "{batch}");
    }
}

/// Combined inputs in a container: each input's match at /dvx/in/NAME/..., alone or batched.
#[test]
fn combined_inputs_in_a_container() {
    need_podman!();
    for batch in ["", "    batch: 4\n"] {
        let p = Project::new();
        p.write("a/x.txt", "x\n");
        p.write("a/y.txt", "y\n");
        p.write("b/1.txt", "1\n");
        p.write(
            "dvx.yaml",
            format!("stages:\n  c:\n    image: {}\n    input:\n      cross:\n        - {{path: a}}\n        - {{path: b}}\n    cmd: cat \"$DVX_INPUT_A\" \"$DVX_INPUT_B\" > \"$DVX_OUTPUT/$(basename \"$DVX_INPUT_A\")\" && echo \"$DVX_INPUT_A $DVX_INPUT_DIR\" >> \"$DVX_OUTPUT/$(basename \"$DVX_INPUT_A\")\"\n    outs: [o]\n{batch}", image()),
        );
        run_json(&p);
        let y = String::from_utf8_lossy(&p.read("o/y.txt")).into_owned();
        assert!(y.starts_with("y\n1\n/dvx/in/"), "{batch}{y}");
        assert!(y.contains("/a/y.txt /dvx/in"), "{batch}{y}");
        if batch.is_empty() {
            // (A batch's datum echoes its numbered folder, which verify, running it alone,
            // does not have.)
            let v = dvx(&p, &["verify", "o/y.txt", "--json"]).ok().json();
            assert!(v.to_string().contains("\"identical\":true"), "{v}");
        }
    }
}

#[test]
fn batched_datums_give_the_same_results() {
    need_podman!();
    let single = datum_project(None);
    let batched = datum_project(Some(2));
    run_json(&single);
    let s = run_json(&batched);
    let count = stage(&s, "count");
    // Five records, one per datum, though three containers ran them.
    assert_eq!(count["datums"]["executed"], 5);
    assert_eq!(count["runs"].as_array().unwrap().len(), 5);
    let mut got = tree(&batched, "counts");
    let want = tree(&single, "counts");
    assert_eq!(got.len(), want.len());
    for ((gn, gv), (wn, wv)) in got.iter_mut().zip(&want) {
        assert_eq!(gn, wn);
        if gn.ends_with(".where") {
            // In a batch, each datum has its own numbered folders.
            let text = String::from_utf8_lossy(gv).into_owned();
            assert!(
                text.starts_with("/dvx/in/") && text.contains(" /dvx/out/"),
                "{text}"
            );
        } else {
            assert_eq!(gv, wv, "{gn}");
        }
    }
    // Batch size does not enter the key: the unbatched project's datums are the same keys.
    let rec = record(&batched, &count["runs"][0]);
    assert!(rec["datum"].is_string());

    // A failing datum in a batch fails alone; the others are kept.
    batched.write("in/4.txt", "fail\n");
    batched.write(
        "dvx.yaml",
        format!("stages:\n  count:\n    image: {}\n    input: {{path: in, glob: \"/*.txt\"}}\n    cmd: if grep -q fail $DVX_INPUT; then echo no >&2; exit 4; fi; wc -l < $DVX_INPUT > $DVX_OUTPUT/$DVX_DATUM_ID.n\n    outs: [counts]\n    batch: 5\n", image()),
    );
    let r = dvx(&batched, &["run", "--keep-going", "--json"]);
    assert!(!r.out.status.success());
    let s = r.json();
    let d = &stage(&s, "count")["datums"];
    assert_eq!(
        (d["executed"].as_u64(), d["failed"].as_u64()),
        (Some(4), Some(1))
    );
    let f = &s["failures"][0];
    assert_eq!(f["datum"], "4.txt");
    assert_eq!(f["stderr_tail"], "no");
    assert!(f["error"]
        .as_str()
        .unwrap()
        .contains("exited with status 4"));
}

/// The docker command line, here talking to podman's Docker-compatible API socket: the same
/// code path serves docker users.
#[test]
fn docker_cli_through_an_api_socket() {
    need_podman!();
    if Command::new("docker").arg("--version").output().is_err() {
        eprintln!("skipped: no docker command line");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let mut service = Command::new("podman")
        .args(["system", "service", "--time=0"])
        .arg(format!("unix://{}", sock.display()))
        .envs(services().into_iter().flatten().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("podman system service starts");
    let t = Instant::now();
    while !sock.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!("unix://{}", sock.display());
    let docker = [
        ("DVX_CONTAINER_RUNTIME", "docker"),
        ("DOCKER_HOST", host.as_str()),
    ];
    let p = datum_project(None);
    let s = dvx_env(&p, &["run", "--json"], &docker).ok().json();
    assert_eq!(stage(&s, "count")["datums"]["executed"], 5);
    assert_eq!(p.read("counts/4.txt.n"), b"4\n");
    let rec = record(&p, &stage(&s, "count")["runs"][0]);
    assert_eq!(rec["executor"], "docker");
    assert!(rec["image"]
        .as_str()
        .unwrap()
        .ends_with(&image_id(&image())));
    p.write(
        "dvx.yaml",
        format!("stages:\n  dockerslow:\n    image: {}\n    cmd: sleep 60\n    timeout: 1s\n    outs: [x]\n", image()),
    );
    let err = dvx_env(&p, &["run"], &docker).fails();
    assert!(err.contains("timed out after 1s"), "{err}");
    assert_eq!(
        podman(&["ps", "-a", "--filter", "name=dvx-dockerslow-", "-q"]),
        ""
    );
    let _ = service.kill();
    let _ = service.wait();
}

#[test]
fn ctrl_c_removes_running_containers() {
    need_podman!();
    let p = Project::new();
    for i in 0..4 {
        p.write(&format!("in/{i}"), format!("{i}"));
    }
    // Datums 0 and 1 are quick; 2 and 3 sleep in their containers.
    p.write(
        "dvx.yaml",
        format!("stages:\n  interrupted:\n    image: {}\n    input: {{path: in}}\n    cmd: if [ $(cat $DVX_INPUT) -ge 2 ]; then sleep 41; fi; cp $DVX_INPUT $DVX_OUTPUT/\n    outs: [out]\n", image()),
    );
    let mut c = p.cmd_in("", &["run", "-j", "4"]);
    c.envs(services().into_iter().flatten().map(|(k, v)| (k, v)));
    let child = c
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the sleepers' containers run.
    let t = Instant::now();
    while podman(&["ps", "--filter", "name=dvx-interrupted-", "-q"])
        .lines()
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "containers never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending SIGINT to a child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(
        podman(&["ps", "-a", "--filter", "name=dvx-interrupted-", "-q"]),
        ""
    );
    // The interrupted datums run again; finished ones are kept (on a busy machine a quick
    // one may not have finished before Ctrl-C).
    let s = dvx(&p, &["run", "--json", "--dry-run"]).ok().json();
    let reasons = stage(&s, "interrupted")["reasons"].to_string();
    assert!(
        reasons.contains("2 of 4 datums would execute")
            || reasons.contains("3 of 4 datums would execute"),
        "{s}"
    );
}

/// `dvx verify` runs a container run again in the image it recorded, and lineage names it.
#[test]
fn verify_and_lineage_of_container_runs() {
    need_podman!();
    let p = Project::new();
    let img = image();
    p.write("in/a.txt", "b\na\n");
    p.write("in/b.txt", "d\nc\n");
    p.write("data/words.txt", "b\na\nc\n");
    p.write(
        "dvx.yaml",
        format!(
            "stages:\n  sort:\n    image: {img}\n    cmd: sort data/words.txt > sorted.txt && mkdir -p rep && echo busybox > rep/where\n    deps: [data/words.txt]\n    outs: [sorted.txt, rep]\n  each:\n    image: {img}\n    input: {{path: in, glob: \"/*.txt\"}}\n    cmd: sort ${{input}} > ${{output}}/$DVX_DATUM_ID\n    outs: [sorted]\n  stamp:\n    image: {img}\n    cmd: date +%s%N > stamp.txt\n    deps: [sorted.txt]\n    outs: [stamp.txt]\n"
        ),
    );
    dvx(&p, &["add", "in", "data", "-m", "inputs"]).ok();
    run_json(&p);
    let pinned = format!("{img}@{}", image_id(&img));
    for path in ["sorted.txt", "rep/where", "sorted/b.txt"] {
        let r = dvx(&p, &["verify", path, "--json"]).ok().json();
        assert_eq!(r["identical"], true, "{path}: {r}");
        let g = dvx(&p, &["lineage", path, "--json"]).ok().json();
        assert_eq!(g["nodes"][1]["image"], pinned.as_str(), "{g}");
    }
    assert_eq!(p.read("sorted/b.txt"), b"c\nd\n");
    let r = dvx(&p, &["verify", "stamp.txt", "--json"]);
    assert!(!r.out.status.success());
    let j = r.json();
    assert_eq!(j["exit"], 0, "{j}");
    assert_eq!(j["outputs"][0]["identical"], false);
}
