//! Code instrumented with DVCLive, run as a stage: dvx gives it the environment DVC gives a
//! stage's command, so DVCLive does not save an experiment (git refs) on every run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A virtual environment with DVCLive (and so DVC) from PyPI, made once per machine and kept
/// in the temporary folder; the reason when Python or PyPI is not available.
pub(crate) fn dvclive_python() -> Result<PathBuf, String> {
    // Two tests may ask at once: one makes it.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let venv = std::env::temp_dir().join("dvx-it-dvclive-venv");
    let python = venv.join("bin/python");
    let ready = venv.join("dvx-ready");
    if ready.exists() {
        return Ok(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("no python3 ({e})"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&made.stderr)
        ));
    }
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "dvclive",
        ])
        .output()
        .map_err(|e| format!("pip did not start ({e})"))?;
    if !pip.status.success() {
        return Err(format!(
            "pip install dvclive failed (is PyPI reachable?): {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    std::fs::write(&ready, b"").map_err(|e| e.to_string())?;
    Ok(python)
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_dvclive_stage_saves_no_experiment_refs() {
    let python = match dvclive_python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let p = Project::new();
    p.write(
        "train.py",
        "from dvclive import Live\nwith Live() as live:\n    for i in range(2):\n        live.log_metric('acc', 0.5 + i / 10)\n        live.next_step()\n",
    );
    p.write(
        "dvx.yaml",
        format!(
            "stages:\n  train:\n    cmd: {} train.py\n    deps: [train.py]\n    metrics:\n      - dvclive/metrics.json: {{cache: false}}\n",
            python.display()
        ),
    );
    // DVCLive saves experiments only in a repository with a commit.
    git(p.path(), &["add", "-A"]);
    git(
        p.path(),
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "init",
        ],
    );
    let refs_before = git_out(p.path(), &["for-each-ref"]);
    for _ in 0..2 {
        p.dvx(&["run", "--force"]).ok();
    }
    let j = p.dvx(&["metrics", "show", "--json"]).ok().json();
    assert_eq!(j["dvclive/metrics.json"]["acc"], 0.6, "{j}");
    let refs_after = git_out(p.path(), &["for-each-ref"]);
    assert_eq!(refs_before, refs_after, "DVCLive saved git refs");
    assert!(!refs_after.contains("refs/exps"), "{refs_after}");
}
