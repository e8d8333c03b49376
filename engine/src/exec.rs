//! The local executor: runs a stage's commands with `sh -c` in its own process group, output
//! captured to files, with a timeout, and stoppable as a whole on Ctrl-C.

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub cmds: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    /// Run in a container instead of here (stages with `image:`).
    pub container: Option<crate::container::Spec>,
    /// Where readers follow the output while it runs (set by the scheduler).
    pub live: Option<crate::livelog::LiveTail>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Option<i32>,
    pub error: Option<String>,
    pub duration: Duration,
    /// Captured output of all commands, in order (pipes, not files: a datum that creates no
    /// file of its own costs no inode here).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Outcome {
    /// The last lines of standard error, for messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
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

    /// Watch a process group started elsewhere (a container runtime's client).
    pub(crate) fn track(&self, pid: u32, deadline: Option<Instant>) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(pid, deadline);
        }
    }

    pub(crate) fn untrack(&self, pid: u32) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(&pid);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Words that, first in a command, mean it is not a plain program call (a keyword, a grouping,
/// or a builtin with no program of the same name).
const NOT_EXECABLE: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "{",
    "}", "(", "!", "[[", "function", "cd", "exit", "export", "set", "unset", "read", ".", "source",
    "eval", "alias", "wait", "trap", "ulimit", "umask", "shift", "return", "break", "continue",
    "local", "readonly", "times", "exec", "command", "type", "hash", "getopts", "jobs", "fg", "bg",
];

/// The script `sh -c` runs. A single plain command is prefixed with `exec`, so the shell
/// replaces itself instead of forking again: one process per execution instead of two, which
/// is most of a trivial datum's cost. Anything compound is left exactly as written.
pub fn shell_script(cmd: &str) -> String {
    let t = cmd.trim();
    let first = t.split_whitespace().next().unwrap_or("");
    let simple = !t.is_empty()
        && !t.contains([';', '&', '|', '\n', '(', ')', '`'])
        && !first.contains('=')
        && !NOT_EXECABLE.contains(&first);
    if simple {
        format!("exec {t}")
    } else {
        cmd.to_string()
    }
}

/// Run the commands of a job one after another; stop at the first failure.
pub fn run(job: &Job, children: &Children) -> Outcome {
    if let Some(spec) = &job.container {
        return crate::container::run(job, spec, children);
    }
    let start = Instant::now();
    // No deadline rather than a panic if it lies past what `Instant` can hold.
    let deadline = job.timeout.and_then(|t| start.checked_add(t));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut error = None;
    let mut exit = Some(0);
    for cmd in &job.cmds {
        if children.is_cancelled() {
            exit = None;
            error = Some("interrupted".into());
            break;
        }
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(shell_script(cmd))
            .current_dir(&job.cwd)
            .envs(&job.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                exit = None;
                error = Some(format!("cannot start `sh`: {e}"));
                break;
            }
        };
        let pid = child.id();
        if let Ok(mut m) = children.inner.lock() {
            m.insert(pid, deadline);
        }
        // Reads both pipes until the command (and anything holding its pipes) ends; a timeout
        // or Ctrl-C kills the process group, which closes them.
        let output = crate::livelog::wait_with_output(child, job.live.as_ref());
        if let Ok(mut m) = children.inner.lock() {
            m.remove(&pid);
        }
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                exit = None;
                error = Some(format!("lost the process: {e}"));
                break;
            }
        };
        stdout.extend_from_slice(&output.stdout);
        stderr.extend_from_slice(&output.stderr);
        let status = output.status;
        if status.success() {
            continue;
        }
        if let Some(code) = status.code() {
            exit = Some(code);
            error = Some(format!("`{cmd}` exited with status {code}"));
            break;
        }
        let sig = status.signal().unwrap_or(0);
        exit = None;
        error = Some(if deadline.is_some_and(|d| Instant::now() >= d) {
            format!(
                "timed out after {}s",
                job.timeout.map(|t| t.as_secs()).unwrap_or(0)
            )
        } else if children.is_cancelled() {
            "interrupted".to_string()
        } else {
            format!("`{cmd}` was killed by signal {sig}")
        });
        break;
    }
    Outcome {
        exit,
        error,
        duration: start.elapsed(),
        stdout,
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_commands_are_execed() {
        assert_eq!(
            shell_script("python3 train.py --lr 0.1 > log.txt"),
            "exec python3 train.py --lr 0.1 > log.txt"
        );
        assert_eq!(
            shell_script("wc -l < \"$DVX_INPUT\""),
            "exec wc -l < \"$DVX_INPUT\""
        );
        for compound in [
            "a && b",
            "a; b",
            "a | b",
            "cd sub && make",
            "exit 3",
            "X=1 run",
            "if true; then x; fi",
            "echo $(date)",
            "sleep 1 &",
        ] {
            assert_eq!(shell_script(compound), compound);
        }
    }
}
