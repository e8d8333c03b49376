//! What a run is doing now, for readers such as `dvx serve`: a small JSON file in the
//! store's temp folder, replaced (temp file + rename, so never read half-written) as stages
//! start and executions end, and removed when the run ends. A reader trusts it only while
//! the process that wrote it lives: a killed run leaves a file that says nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::*;

/// The file's name inside `.dvx/tmp`.
pub const LIVE_FILE: &str = "live-run.json";

/// How often at most the file is rewritten while executions end.
const EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveRun {
    pub pid: u32,
    /// When the run started (RFC 3339).
    pub started: String,
    /// Stages executing now.
    pub stages: BTreeMap<String, LiveStage>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStage {
    /// Executions the stage runs in this run, and how many ended so far.
    pub total: u64,
    pub executed: u64,
    pub failed: u64,
    /// What the executions that run now printed last (at most `SHOWN` of them, those
    /// that printed something first).
    #[serde(default)]
    pub running: Vec<LiveExecution>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveExecution {
    pub datum: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

/// Executions per stage whose output the live file carries.
const SHOWN: usize = 4;

fn live_path(dot_tmp: &Path) -> PathBuf {
    dot_tmp.join(LIVE_FILE)
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The run executing in this project now, if any.
pub fn current(repo: &Repo) -> Option<LiveRun> {
    let bytes = std::fs::read(live_path(&repo.tmp_dir())).ok()?;
    let live: LiveRun = serde_json::from_slice(&bytes).ok()?;
    alive(live.pid).then_some(live)
}

impl Engine<'_> {
    /// Rewrite the live file from the run's state, at most every quarter second unless
    /// `now` (a stage started or finished).
    pub(super) fn publish(&self, run: &mut RunState, opts: &RunOptions, now: bool) {
        // An experiment's run is not the project's run: its own page is `dvx exp show`.
        let view = self.repo.view_ref().is_some();
        if view || opts.dry_run || (!now && run.live_at.is_some_and(|t| t.elapsed() < EVERY)) {
            return;
        }
        run.live_at = Some(Instant::now());
        let mut live = LiveRun {
            pid: std::process::id(),
            started: run.began.clone(),
            stages: BTreeMap::new(),
        };
        for &i in &run.started_stages() {
            let st = &run.stages[i];
            let Some(r) = st.report.as_ref() else {
                continue;
            };
            let (executed, failed) = r
                .datums
                .as_ref()
                .map(|d| (d.executed, d.failed))
                .unwrap_or((r.runs.len() as u64, u64::from(st.failed)));
            live.stages.insert(
                r.stage.clone(),
                LiveStage {
                    total: st.pending as u64 + executed + failed,
                    executed,
                    failed,
                    running: Vec::new(),
                },
            );
        }
        // The output of executions in flight, those that printed something first.
        let mut shown: Vec<(&String, &Task, &crate::livelog::LiveTail)> = Vec::new();
        for (t, tail) in &run.tails {
            if let (Some(task), false) = (run.in_flight.get(t), tail.is_empty()) {
                let name = &self.pipeline.stages[task.stage].name;
                shown.push((name, task, tail));
            }
        }
        shown.sort_by(|a, b| {
            (a.0, a.1.datum.as_ref().map(|d| &d.0.id))
                .cmp(&(b.0, b.1.datum.as_ref().map(|d| &d.0.id)))
        });
        for (name, task, tail) in shown {
            if let Some(ls) = live.stages.get_mut(name) {
                if ls.running.len() < SHOWN {
                    let (stdout, stderr) = tail.snapshot();
                    ls.running.push(LiveExecution {
                        datum: task.datum.as_ref().map(|(d, _)| d.id.clone()),
                        stdout,
                        stderr,
                    });
                }
            }
        }
        let dir = self.repo.tmp_dir();
        let tmp = dir.join(format!("{LIVE_FILE}.{}", std::process::id()));
        let written = serde_json::to_vec(&live)
            .ok()
            .and_then(|b| std::fs::write(&tmp, b).ok())
            .and_then(|()| std::fs::rename(&tmp, live_path(&dir)).ok());
        if written.is_none() {
            // Only readers lose: the run goes on.
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// The run ended: nothing executes any more.
    pub(super) fn unpublish(&self) {
        if self.repo.view_ref().is_some() {
            return;
        }
        let _ = std::fs::remove_file(live_path(&self.repo.tmp_dir()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_a_dead_process_says_nothing() {
        assert!(alive(std::process::id()));
        // Pids above the kernel's maximum (4,194,304) never exist.
        assert!(!alive(4_194_305));
    }
}
