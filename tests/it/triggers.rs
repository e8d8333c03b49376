//! Triggers under a real `dvx serve`: a cron schedule firing on real time, a server killed
//! during or right after a firing's run (on a clock the test moves), and new commits pushed to
//! a SeaweedFS branch from another clone.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::remote::{self, Kind, Remote};
use crate::serve::Server;

fn firings(srv: &Server, trigger: &str) -> Vec<serde_json::Value> {
    let v = srv.json("/api/triggers");
    v.as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == trigger)
        .unwrap_or_else(|| panic!("no trigger {trigger}: {v}"))["firings"]
        .as_array()
        .unwrap()
        .clone()
}

/// Wait until `f` holds, or fail with what was last seen.
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> Result<(), String>) {
    let t = Instant::now();
    loop {
        match f() {
            Ok(()) => return,
            Err(seen) if t.elapsed() > Duration::from_secs(secs) => {
                panic!("{what} did not happen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Commits whose message names the firing `key`.
fn commits_naming(p: &Project, key: &str) -> usize {
    let log = p.dvx(&["log", "--json"]).ok().json();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["message"].as_str().unwrap().contains(&format!("[{key}]")))
        .count()
}

#[test]
fn a_cron_every_two_seconds_fires_on_time_and_never_twice() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  stamp:\n    cmd: date +%s%N > stamp.txt\n    outs: [stamp.txt]\n    always_changed: true\ntriggers:\n  often:\n    cron: \"*/2 * * * * *\"\n",
    );
    let srv = Server::start(&p, &[], &[]);
    wait_for("two firings", 30, || {
        let f = firings(&srv, "often");
        let done = f.iter().filter(|x| x["state"] == "done").count();
        (done >= 2).then_some(()).ok_or(format!("{f:?}"))
    });
    srv.stop();
    let f: Vec<serde_json::Value> = {
        let srv = Server::start(&p, &[], &[]);
        let f = firings(&srv, "often");
        srv.stop();
        f
    };
    let keys: Vec<&str> = f.iter().map(|x| x["key"].as_str().unwrap()).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "a key fired twice: {keys:?}");
    for x in f.iter().filter(|x| x["state"] == "done") {
        let key = x["key"].as_str().unwrap();
        assert!(key.starts_with("often@"), "{key}");
        assert_eq!(commits_naming(&p, key), 1, "{key}");
        assert!(x["error"].is_null() && x["failed"] == 0, "{x}");
        // The run's record names the firing.
        let commit = x["commit"].as_str().unwrap();
        let log = p.dvx(&["log", "--json", commit, "-n", "1"]).ok().json();
        let run = log[0]["runs"][0].as_str().unwrap().to_string();
        let rec = p.dvx(&["show", &run, "--json"]).ok().json();
        assert_eq!(rec["trigger"], key, "{rec}");
    }
}

/// The server is killed while a tick's run executes, and again right after another tick's
/// run committed: after each restart, each tick has exactly one commit.
#[test]
fn a_killed_server_finishes_each_tick_exactly_once() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  slow:\n    cmd: sleep 2; date +%s%N > out.txt\n    outs: [out.txt]\n    always_changed: true\ntriggers:\n  minutely:\n    cron: \"0 * * * * *\"\n",
    );
    let clock = p.p(".clock");
    let set = |t: &str| std::fs::write(&clock, t).unwrap();
    let env = [("DVX_SERVE_CLOCK", clock.to_str().unwrap())];
    set("2026-01-01T00:00:30Z");
    let srv = Server::start(&p, &[], &env);
    wait_for("the trigger armed", 30, || {
        (firings(&srv, "minutely").is_empty() && p.exists(".dvx/db"))
            .then_some(())
            .ok_or_default()
    });
    std::thread::sleep(Duration::from_millis(600));
    // Tick 00:01:00 is due; kill -9 while its run sleeps.
    set("2026-01-01T00:01:10Z");
    wait_for("the run started", 30, || {
        p.exists(".dvx/tmp/live-run.json")
            .then_some(())
            .ok_or_default()
    });
    srv.kill();
    let first = "minutely@2026-01-01T00:01:00Z";
    assert_eq!(commits_naming(&p, first), 0);
    let srv = Server::start(&p, &[], &env);
    wait_for("the killed firing run again", 60, || {
        let f = firings(&srv, "minutely");
        (f.len() == 1 && f[0]["state"] == "done")
            .then_some(())
            .ok_or(format!("{f:?}"))
    });
    srv.stop();
    assert_eq!(commits_naming(&p, first), 1);

    // Tick 00:02:00: the server dies right after the run committed, before it marked the
    // firing done; the next server must not run it again.
    set("2026-01-01T00:02:05Z");
    let srv = Server::start(&p, &[], &[env[0], ("DVX_FAULT", "trigger-after-run")]);
    let second = "minutely@2026-01-01T00:02:00Z";
    wait_for("the server's fault", 60, || {
        (commits_naming(&p, second) == 1)
            .then_some(())
            .ok_or_default()
    });
    srv.wait_dead();
    let srv = Server::start(&p, &[], &env);
    wait_for("the firing marked done", 60, || {
        let f = firings(&srv, "minutely");
        let done = f
            .iter()
            .filter(|x| x["key"] == second && x["state"] == "done")
            .count();
        (done == 1).then_some(()).ok_or(format!("{f:?}"))
    });
    std::thread::sleep(Duration::from_millis(800));
    srv.stop();
    assert_eq!(commits_naming(&p, second), 1, "the tick ran twice");
    assert_eq!(commits_naming(&p, first), 1);
    p.assert_fsck_clean();
}

/// Commits pushed to a SeaweedFS branch from another clone fire a run that pulls them; two
/// pushes within `min_interval` give one run, which sees the later commit.
#[test]
fn pushes_to_a_remote_branch_fire_runs_that_see_them() {
    let r = Remote::new(Kind::Weed, "trigger");
    let a = Project::new();
    a.write("data/x.txt", "one\n");
    a.write(
        "dvx.yaml",
        "stages:\n  count:\n    cmd: wc -c < data/x.txt > count.txt\n    deps: [data/x.txt]\n    outs: [count.txt]\ntriggers:\n  fresh:\n    on_push: {remote: origin, branch: main, poll: 1s}\n    min_interval: 60s\n",
    );
    remote::run(&a, "", &remote::s(&["add", "data", "-m", "first data"])).ok();
    r.add_to(&a);
    remote::run(&a, "", &remote::s(&["push"])).ok();
    let b = remote::clone(&r, &[]);
    let clock = a.p(".clock");
    let set = |t: &str| std::fs::write(&clock, t).unwrap();
    set("2026-01-01T00:00:00Z");
    let creds = [
        ("DVX_SERVE_CLOCK", clock.to_str().unwrap()),
        ("AWS_ACCESS_KEY_ID", remote::KEY),
        ("AWS_SECRET_ACCESS_KEY", remote::SECRET),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    let srv = Server::start(&a, &[], &creds);
    // Armed at the current tip: nothing fires for it.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(firings(&srv, "fresh").is_empty());

    let push_from_b = |text: &str| -> String {
        b.write("c/data/x.txt", text);
        remote::run(
            &b,
            "c",
            &remote::s(&["add", "data/x.txt", "-m", text.trim()]),
        )
        .ok();
        remote::run(&b, "c", &remote::s(&["push"])).ok();
        remote::run(&b, "c", &remote::s(&["log", "--json", "-n", "1"])).json()[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let c1 = push_from_b("two two\n");
    wait_for("a firing for the push", 60, || {
        let f = firings(&srv, "fresh");
        (f.len() == 1 && f[0]["state"] == "done")
            .then_some(())
            .ok_or(format!("{f:?}"))
    });
    let f = firings(&srv, "fresh");
    assert_eq!(f[0]["source"], c1.as_str(), "{f:?}");
    assert!(f[0]["error"].is_null(), "{f:?}");
    assert_eq!(a.read("count.txt"), b"8\n");
    // The run's output comes from the pushed data: its lineage names B's commit.
    let lin = a.dvx(&["lineage", "count.txt", "--json"]).ok().json();
    assert!(lin.to_string().contains(&c1), "{lin}");

    // Two more pushes within a minute of the first firing: held, then one run of the later.
    set("2026-01-01T00:00:20Z");
    let _c2 = push_from_b("three three three\n");
    let c3 = push_from_b("four\n");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(firings(&srv, "fresh").len(), 1, "min_interval held them");
    set("2026-01-01T00:01:30Z");
    wait_for("one firing for both pushes", 60, || {
        let f = firings(&srv, "fresh");
        (f.len() == 2 && f[0]["state"] == "done")
            .then_some(())
            .ok_or(format!("{f:?}"))
    });
    srv.stop();
    let f = firings_after_stop(&a);
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().any(|x| x["source"] == c3.as_str()), "{f:?}");
    assert!(f.iter().all(|x| x["error"].is_null()), "{f:?}");
    assert_eq!(a.read("count.txt"), b"5\n");
}

/// Firings, read through a short-lived server (the journal is in the store).
fn firings_after_stop(p: &Project) -> Vec<serde_json::Value> {
    let srv = Server::start(p, &[], &[]);
    let f = firings(&srv, "fresh");
    srv.stop();
    f
}

#[test]
fn an_invalid_trigger_stops_serve_at_start_with_its_place() {
    let p = Project::new();
    for (yaml, want) in [
        (
            "stages:\n  a:\n    cmd: x\ntriggers:\n  t:\n    cron: \"61 * * * *\"\n",
            "dvx.yaml:6:11: trigger `t`: cron \"61 * * * *\" is not valid",
        ),
        (
            "stages:\n  a:\n    cmd: x\ntriggers:\n  t:\n    cron: \"* * * * *\"\n    stages: [b]\n",
            "dvx.yaml:7:14: trigger `t`: unknown stage `b`",
        ),
        (
            "stages:\n  a:\n    cmd: x\ntriggers:\n  t:\n    stages: [a]\n",
            "dvx.yaml:5:3: trigger `t`: give exactly one of `cron`",
        ),
        (
            "stages:\n  a:\n    cmd: x\ntriggers:\n  t:\n    cron: \"* * * * *\"\n    min_interval: soon\n",
            "dvx.yaml:7:19: trigger `t`: min_interval: expected a duration",
        ),
    ] {
        p.write("dvx.yaml", yaml);
        let out = p.cmd_in("", &["serve", "--addr", "127.0.0.1:0"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "expected {want:?} in {err}");
        assert!(!err.contains("listening"), "{err}");
    }
}

trait OkOrDefault {
    fn ok_or_default(self) -> Result<(), String>;
}

impl OkOrDefault for Option<()> {
    fn ok_or_default(self) -> Result<(), String> {
        self.ok_or_else(String::new)
    }
}

/// A firing due while a person's `dvx run` holds the writer lock waits for it (counted as
/// pending), then runs, and pushes its results when the trigger says so.
#[test]
fn a_firing_waits_for_a_person_s_run_then_pushes() {
    let p = Project::new();
    let origin = tempfile::tempdir().unwrap();
    p.write(
        "dvx.yaml",
        "stages:\n  long:\n    cmd: sleep 4; echo done > long.txt\n    outs: [long.txt]\n  stamp:\n    cmd: date +%s%N > stamp.txt\n    outs: [stamp.txt]\n    always_changed: true\ntriggers:\n  hourly:\n    cron: \"0 0 * * * *\"\n    stages: [stamp]\n    push: true\n",
    );
    p.dvx(&["remote", "add", "origin", origin.path().to_str().unwrap()])
        .ok();
    let clock = p.p(".clock");
    std::fs::write(&clock, "2026-01-01T00:30:00Z").unwrap();
    let env = [("DVX_SERVE_CLOCK", clock.to_str().unwrap())];
    let srv = Server::start(&p, &[], &env);
    std::thread::sleep(Duration::from_millis(800));
    let person = p
        .cmd_in("", &["run", "long"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the person's run", 30, || {
        p.exists(".dvx/tmp/live-run.json")
            .then_some(())
            .ok_or_default()
    });
    std::fs::write(&clock, "2026-01-01T01:00:05Z").unwrap();
    wait_for("the firing to wait", 30, || {
        let v = srv.json("/api/triggers");
        (v[0]["pending"] == 1 && v[0]["firings"].as_array().unwrap().is_empty())
            .then_some(())
            .ok_or(v.to_string())
    });
    assert!(person.wait_with_output().unwrap().status.success());
    wait_for("the firing after the person's run", 60, || {
        let f = firings(&srv, "hourly");
        (f.len() == 1 && f[0]["state"] == "done")
            .then_some(())
            .ok_or(format!("{f:?}"))
    });
    let f = firings(&srv, "hourly");
    srv.stop();
    assert!(f[0]["error"].is_null(), "{f:?}");
    let commit = f[0]["commit"].as_str().unwrap();
    // Pushed: the folder remote's main is the firing's commit.
    let st = p.dvx(&["status", "--remote", "--json"]).ok().json();
    assert!(st.to_string().contains(&commit[..12]), "{st}");
    assert_eq!(commits_naming(&p, "hourly@2026-01-01T01:00:00Z"), 1);
    p.assert_fsck_clean();
}
