//! `dvx serve` end to end: the real binary on a free port, asked over HTTP as a browser or a
//! script would, while the project is what `dvx run` left.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use crate::common::*;

pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Server {
    pub(crate) fn start(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut c = p.cmd_in("", &all);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("dvx serve: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        // Keep reading stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            assert!(!rest.contains("s3cr3t"), "the token was printed: {rest}");
        });
        Server { child, addr }
    }

    /// GET `path` with extra header lines; returns (status, headers, body).
    fn get_with(&self, path: &str, headers: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}\r\n",
            self.addr
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_string(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (s, _, b) = self.get_with(path, "");
        (s, b)
    }

    pub(crate) fn json(&self, path: &str) -> serde_json::Value {
        let (s, b) = self.get(path);
        assert_eq!(s, 200, "{path}: {b}");
        serde_json::from_str(&b).unwrap()
    }

    /// SIGKILL: no clean-up at all.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for a server that ends by itself (a fault point).
    pub(crate) fn wait_dead(mut self) {
        let _ = self.child.wait();
    }

    /// SIGTERM, as a service manager stops it: a clean exit.
    pub(crate) fn stop(mut self) {
        // SAFETY: signalling a child we spawned.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Server {
    /// A test that fails midway leaves no server behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline whose second stage fails: the graph, the failed run's page with its stderr,
/// JSON twins equal to the CLI's `--json`, lineage, metrics and 404s.
#[test]
fn pages_and_json_twins_show_the_pipeline_runs_and_lineage() {
    let p = Project::new();
    p.write("data/a.txt", "alpha\n");
    p.write(
        "dvx.yaml",
        "stages:\n  prep:\n    cmd: tr a-z A-Z < data/a.txt > up.txt\n    deps: [data/a.txt]\n    outs: [up.txt]\n  check:\n    cmd: echo 'disk <on fire>' >&2; exit 3\n    deps: [up.txt]\n    outs: [ok.txt]\n",
    );
    p.dvx(&["add", "data", "-m", "data"]).ok();
    p.dvx(&["run"]).fails();
    let srv = Server::start(&p, &[], &[]);
    assert_eq!(srv.get("/healthz"), (200, "ok\n".to_string()));

    let pipe = srv.json("/api/pipeline");
    let state = |name: &str| {
        pipe["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("prep"), "skipped");
    assert_eq!(state("check"), "stale");
    assert_eq!(pipe["edges"], serde_json::json!([["prep", "check"]]));
    let failed_run = pipe["failed"]["check"].as_str().unwrap().to_string();
    // The same stages `dvx status --json` reports.
    assert_eq!(
        pipe["stages"],
        p.dvx(&["status", "--json"]).ok().json()["stages"]
    );

    let (s, page) = srv.get("/");
    assert_eq!(s, 200);
    assert_eq!(page.matches("class=\"stage ").count(), 2, "{page}");
    assert!(
        page.contains("data-stage=\"check\" data-state=\"failed\""),
        "{page}"
    );
    assert!(
        page.contains("data-stage=\"prep\" data-state=\"up to date\""),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/runs/{failed_run}\"")),
        "{page}"
    );

    let (s, run) = srv.get(&format!("/runs/{failed_run}"));
    assert_eq!(s, 200);
    assert!(
        run.contains("disk &lt;on fire&gt;"),
        "stderr shown, escaped: {run}"
    );
    assert!(run.contains("exited with status 3"), "{run}");
    assert_eq!(
        srv.json(&format!("/api/runs/{}", &failed_run[..10])),
        p.dvx(&["show", &failed_run, "--json"]).ok().json()
    );

    let log = srv.json("/api/runs");
    assert_eq!(log, p.dvx(&["log", "--json", "-n", "50"]).ok().json());
    let (_, runs) = srv.get("/runs");
    assert!(runs.contains(&failed_run[..12]), "{runs}");

    assert_eq!(
        srv.json("/api/lineage?target=up.txt"),
        p.dvx(&["lineage", "up.txt", "--json"]).ok().json()
    );
    let (s, lin) = srv.get("/lineage?target=up.txt%40HEAD");
    assert_eq!(s, 200);
    assert!(
        lin.contains("<svg") && lin.contains(">prep · run "),
        "{lin}"
    );

    let (s, m) = srv.get("/metrics");
    assert_eq!(s, 200);
    for want in [
        "dvx_stages{state=\"failed\"} 1",
        "dvx_stages{state=\"up to date\"} 1",
        "dvx_runs{stage=\"check\",outcome=\"failed\"} 1",
        "dvx_runs{stage=\"prep\",outcome=\"ok\"} 1",
        "dvx_commits 2",
    ] {
        assert!(m.contains(want), "{want} missing in\n{m}");
    }

    let (s, body) = srv.get("/api/runs/abcdef1234");
    assert_eq!(s, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "unknown run \"abcdef1234\"");
    assert!(v["hint"].as_str().unwrap().contains("dvx log --json"));
    let (s, body) = srv.get("/lineage?target=nowhere.txt");
    assert_eq!(s, 404);
    assert!(
        body.contains("nowhere.txt is not in HEAD") && body.contains("hint:"),
        "{body}"
    );
    assert_eq!(srv.get("/no/such/page").0, 404);

    // The commit browser: a commit and the files it holds, as `dvx ls -r --json` lists them.
    let c = srv.json("/api/commits/HEAD");
    let head = p.dvx(&["log", "--json", "-n", "1"]).ok().json();
    assert_eq!(c["commit"], head[0], "{c}");
    assert_eq!(
        c["files"],
        p.dvx(&["ls", "HEAD", "-r", "--json"]).ok().json()
    );
    let paths: Vec<&str> = c["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"data/a.txt"), "{paths:?}");
    let (s, page) = srv.get(&format!("/commits/{}", head[0]["id"].as_str().unwrap()));
    assert_eq!(s, 200);
    assert!(
        page.contains(">data/a.txt</a>") && page.contains("dvx run: prep"),
        "{page}"
    );
    let (s, body) = srv.get("/commits/nosuchrev");
    assert_eq!(s, 404);
    assert!(
        body.contains("unknown revision") && body.contains("hint:"),
        "{body}"
    );
    let (s, body) = srv.get("/api/lineage?target=up.txt%40nosuchrev");
    assert_eq!(s, 404, "{body}");
    srv.stop();
}

/// Listening beyond loopback needs a token; with one, every request must carry it, and it
/// is never printed.
#[test]
fn a_token_guards_the_server() {
    let p = Project::new();
    p.write("a.txt", "a");
    p.dvx(&["add", "a.txt"]).ok();
    let err = p.dvx(&["serve", "--addr", "0.0.0.0:0"]).fails();
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{err}"
    );
    assert!(err.contains("hint: set DVX_SERVE_TOKEN"), "{err}");
    let code = p
        .cmd_in("", &["serve", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap()
        .status
        .code();
    assert_eq!(code, Some(2));

    let srv = Server::start(&p, &[], &[("DVX_SERVE_TOKEN", "s3cr3t")]);
    let (s, _, body) = srv.get_with("/api/runs", "");
    assert_eq!(s, 401);
    assert!(!body.contains("s3cr3t"));
    assert_eq!(
        srv.get_with("/api/runs", "Authorization: Bearer wrong\r\n")
            .0,
        401
    );
    let (s, _, body) = srv.get_with("/api/runs", "Authorization: Bearer s3cr3t\r\n");
    assert_eq!(s, 200, "{body}");
    let (s, head, body) = srv.get_with("/?token=s3cr3t", "");
    assert_eq!(s, 200);
    assert!(!body.contains("s3cr3t"), "the token is not in the page");
    assert!(
        head.to_lowercase().contains("set-cookie: dvx_token="),
        "{head}"
    );
    assert_eq!(srv.get_with("/runs", "Cookie: dvx_token=s3cr3t\r\n").0, 200);
    // Health checks need no token.
    assert_eq!(srv.get("/healthz").0, 200);
    srv.stop();
}

/// Fifty clients read the JSON API while `dvx run` writes: every answer is complete and
/// the run is not held up by readers. Latencies are printed (run with --nocapture), never
/// asserted.
#[test]
fn fifty_clients_while_a_run_writes() {
    let p = Project::new();
    for i in 0..60 {
        p.write(&format!("in/{i:02}.txt"), format!("{i}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  slow:\n    input: {path: in}\n    cmd: sleep 0.05; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n",
    );
    p.dvx(&["add", "in"]).ok();
    let srv = Server::start(&p, &[], &[]);
    let writer = p
        .cmd_in("", &["run", "-j", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = srv.addr.clone();
    let clients: Vec<_> = (0..50)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                for k in 0..6 {
                    let path = ["/api/pipeline", "/api/runs", "/healthz"][(c + k) % 3];
                    let t = std::time::Instant::now();
                    let mut s = TcpStream::connect(&addr).unwrap();
                    write!(
                        s,
                        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut raw = String::new();
                    s.read_to_string(&mut raw).unwrap();
                    lat.push(t.elapsed());
                    assert!(raw.starts_with("HTTP/1.1 200"), "{path}: {raw}");
                    let body = raw.split_once("\r\n\r\n").unwrap().1;
                    if path != "/healthz" {
                        serde_json::from_str::<serde_json::Value>(body)
                            .unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
                    }
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<std::time::Duration> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["executed"], 60, "{s}");
    lat.sort();
    let q = |f: f64| lat[((lat.len() as f64 * f) as usize).min(lat.len() - 1)];
    eprintln!(
        "dvx serve under 50 clients while a run writes: {} requests, p50 {:?}, p99 {:?}, max {:?}; run wall {} ms",
        lat.len(),
        q(0.5),
        q(0.99),
        lat[lat.len() - 1],
        s["wall_ms"]
    );
    srv.stop();
}

/// While `dvx run` executes a stage, the pipeline page marks it running with its progress;
/// when the run ends, nothing is marked.
#[test]
fn a_running_stage_is_marked_while_it_runs() {
    let p = Project::new();
    for i in 0..4 {
        p.write(&format!("in/{i}.txt"), format!("{i}\n"));
    }
    p.write(
        "dvx.yaml",
        "stages:\n  slow:\n    input: {path: in}\n    cmd: echo \"working on $(cat \"$DVX_INPUT\")\"; echo \"<careful>\" >&2; if [ $(cat \"$DVX_INPUT\") -ge 1 ]; then sleep 3; fi; cp \"$DVX_INPUT\" \"$DVX_OUTPUT/\"\n    outs: [out]\n",
    );
    p.dvx(&["add", "in"]).ok();
    let srv = Server::start(&p, &[], &[]);
    assert_eq!(srv.json("/api/pipeline")["running"], serde_json::json!({}));
    let writer = p
        .cmd_in("", &["run", "-j", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    let live = loop {
        let v = srv.json("/api/pipeline");
        let done = &v["running"]["slow"]["executed"];
        if done.as_u64().is_some_and(|n| n >= 1) {
            break v;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "never seen running: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(live["running"]["slow"]["total"], 4, "{live}");
    let (_, page) = srv.get("/");
    assert!(
        page.contains("data-stage=\"slow\" data-state=\"running\""),
        "{page}"
    );
    assert!(page.contains(" of 4 done"), "{page}");
    // What the running execution printed so far, escaped, on the live page and its twin.
    let now = srv.json("/api/live");
    let running = &now["stages"]["slow"]["running"];
    assert!(
        running[0]["stdout"]
            .as_str()
            .unwrap()
            .starts_with("working on "),
        "{now}"
    );
    assert_eq!(running[0]["stderr"], "<careful>\n", "{now}");
    let (s, live_page) = srv.get("/live");
    assert_eq!(s, 200);
    assert!(
        live_page.contains("working on ") && live_page.contains("&lt;careful&gt;"),
        "{live_page}"
    );
    assert!(live_page.contains("http-equiv=\"refresh\""), "{live_page}");
    assert!(writer.wait_with_output().unwrap().status.success());
    let after = srv.json("/api/pipeline");
    assert_eq!(after["running"], serde_json::json!({}), "{after}");
    assert_eq!(srv.json("/api/live"), serde_json::Value::Null);
    assert!(srv.get("/live").1.contains("No run is executing"));
    assert!(!p.exists(".dvx/tmp/live-run.json"));
    srv.stop();
}
