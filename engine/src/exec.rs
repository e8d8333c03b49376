//! The local executor: runs a stage's commands with `sh -c` in its own process group, output
//! captured to files, with a timeout, and stoppable as a whole on Ctrl-C.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
pub struct Job {
    pub cmds: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Option<i32>,
    pub error: Option<String>,
    pub duration: Duration,
}

/// Process groups currently running, so Ctrl-C and timeouts can stop them.
#[derive(Default, Clone)]
pub struct Children {
    inner: Arc<Mutex<BTreeMap<u32, Option<Instant>>>>,
    pub cancelled: Arc<AtomicBool>,
}

fn kill_group(pid: u32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created for the child.
    unsafe {
        libc::kill(-(pid as i32), libc::SIGKILL);
    }
}

impl Children {
    /// Stop every running child (used on Ctrl-C).
    pub fn cancel_all(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Ok(m) = self.inner.lock() {
            for pid in m.keys() {
                kill_group(*pid);
            }
        }
    }

    /// Kill children past their deadline; call periodically.
    pub fn reap_overdue(&self) {
        let now = Instant::now();
        if let Ok(m) = self.inner.lock() {
            for (pid, deadline) in m.iter() {
                if deadline.is_some_and(|d| now >= d) {
                    kill_group(*pid);
                }
            }
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Run the commands of a job one after another; stop at the first failure.
pub fn run(job: &Job, children: &Children) -> Outcome {
    let start = Instant::now();
    let deadline = job.timeout.map(|t| start + t);
    let out = |exit, error| Outcome {
        exit,
        error,
        duration: start.elapsed(),
    };
    let (stdout, stderr) = match (File::create(&job.stdout), File::create(&job.stderr)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return out(None, Some(format!("cannot capture output: {e}"))),
    };
    for cmd in &job.cmds {
        if children.is_cancelled() {
            return out(None, Some("interrupted".into()));
        }
        let (o, e) = match (stdout.try_clone(), stderr.try_clone()) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(err), _) | (_, Err(err)) => {
                return out(None, Some(format!("cannot capture output: {err}")))
            }
        };
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&job.cwd)
            .envs(&job.env)
            .stdin(Stdio::null())
            .stdout(o)
            .stderr(e)
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return out(None, Some(format!("cannot start `sh`: {e}"))),
        };
        let pid = child.id();
        if let Ok(mut m) = children.inner.lock() {
            m.insert(pid, deadline);
        }
        let status = child.wait();
        if let Ok(mut m) = children.inner.lock() {
            m.remove(&pid);
        }
        let status = match status {
            Ok(s) => s,
            Err(e) => return out(None, Some(format!("lost the process: {e}"))),
        };
        if status.success() {
            continue;
        }
        if let Some(code) = status.code() {
            return out(
                Some(code),
                Some(format!("`{cmd}` exited with status {code}")),
            );
        }
        let sig = status.signal().unwrap_or(0);
        let why = if deadline.is_some_and(|d| Instant::now() >= d) {
            format!(
                "timed out after {}s",
                job.timeout.map(|t| t.as_secs()).unwrap_or(0)
            )
        } else if children.is_cancelled() {
            "interrupted".to_string()
        } else {
            format!("`{cmd}` was killed by signal {sig}")
        };
        return out(None, Some(why));
    }
    out(Some(0), None)
}

/// The tail of a captured output file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
