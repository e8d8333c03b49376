//! The web UI in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/ui.mjs`) over `dvx serve`, on the wine-quality example run twice with a
//! parameter change and then once with a failing stage. Screenshots of every page are kept
//! under the test's target folder (`artefacts/browser/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::serve::Server;

/// playwright-core's folder, installed (with Chromium) by tests/services/browser.sh; None
/// only when DVX_SKIP_BROWSER_TESTS=1 says to skip.
pub(crate) fn playwright() -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/browser.sh");
    let out = Command::new(script).arg("install").output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("DVX_PLAYWRIGHT_DIR="))
            .map(str::to_string),
        _ if std::env::var("DVX_SKIP_BROWSER_TESTS").as_deref() == Ok("1") => None,
        other => panic!(
            "browser tests need Chromium and playwright-core: {other:?}\nrun tests/services/browser.sh install as root, or set DVX_SKIP_BROWSER_TESTS=1 to skip them"
        ),
    }
}

pub(crate) fn artefacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefacts/browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_person_sees_the_graph_the_failure_the_chart_and_the_lineage() {
    let Some(pw) = playwright() else {
        eprintln!("skipped: no browser (DVX_SKIP_BROWSER_TESTS=1)");
        return;
    };
    let p = Project::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/wine-quality/.");
    assert!(Command::new("cp")
        .args(["-r", example])
        .arg(p.path())
        .status()
        .unwrap()
        .success());
    p.dvx(&["add", "data/wine.csv", "-m", "wine data"]).ok();
    p.dvx(&["run"]).ok();
    let params = String::from_utf8(p.read("params.yaml")).unwrap();
    p.write("params.yaml", params.replace("l2: 0.1", "l2: 0.5"));
    p.dvx(&["run"]).ok();
    p.write(
        "src/evaluate.py",
        "import sys\nsys.exit('evaluation data <is> corrupt')\n",
    );
    p.dvx(&["run"]).fails();

    let srv = Server::start(&p, &[], &[]);
    let out = artefacts();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/ui.mjs");
    let o = Command::new("node")
        .arg(script)
        .arg(format!("http://{}", srv.addr))
        .arg(&out)
        .args(["evaluate", "model.json"])
        .env("DVX_PLAYWRIGHT_DIR", &pw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    srv.stop();

    assert_eq!(seen["pipelineStatus"], 200);
    let stages: Vec<(String, String)> = seen["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().into(),
                s["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("prepare".to_string(), "up to date".to_string()),
            ("featurize".into(), "up to date".into()),
            ("train".into(), "up to date".into()),
            ("evaluate".into(), "failed".into()),
            ("explore".into(), "up to date".into()),
        ],
        "{seen}"
    );
    assert!(
        seen["failedRunStderr"]
            .as_str()
            .unwrap()
            .contains("evaluation data <is> corrupt"),
        "{seen}"
    );
    assert!(
        seen["failedRunResult"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{seen}"
    );

    let charts = seen["charts"].as_array().unwrap();
    let rmse = charts
        .iter()
        .find(|c| c["metric"] == "metrics.json:rmse")
        .unwrap_or_else(|| panic!("no rmse chart: {seen}"));
    let points = rmse["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "one point per successful run: {seen}");
    assert_ne!(points[0], points[1], "l2 changed the model: {seen}");

    assert!(seen["lineageHasGraph"].as_bool().unwrap(), "{seen}");
    let runs: Vec<&str> = seen["lineageRuns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(runs.iter().any(|r| r.starts_with("train · run ")), "{seen}");
    assert!(
        runs.iter().any(|r| r.starts_with("featurize · run ")),
        "{seen}"
    );
    assert_eq!(seen["runsStatus"], 200);
    assert_eq!(seen["commitStatus"], 200);
    assert!(
        strs(&seen["commitFiles"]).contains(&"model.json".to_string()),
        "{seen}"
    );
    assert_eq!(seen["missingStatus"], 404);
    assert!(
        seen["missingText"].as_str().unwrap().contains("hint:"),
        "{seen}"
    );

    for shot in [
        "pipeline",
        "failed-run",
        "metrics",
        "lineage",
        "runs",
        "missing-run",
    ] {
        let png = std::fs::read(out.join(format!("{shot}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5000,
            "{shot}.png"
        );
    }
}
