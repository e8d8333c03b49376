//! The Slurm executor: each execution becomes a task object on a remote and one `sbatch` job
//! that runs `dvx exec-task`. The submitter pushes the inputs the task names, polls the queue
//! with one `squeue` call for all of the run's jobs (they share a name), and takes the exit
//! status from the result object, never from the queue: a job that ended without a result
//! was killed by the cluster. Outputs come back from the remote into the scratch folder the
//! scheduler expects, so recording and the run cache work as for a local run.

pub mod cmd;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dvx_remote::task::TaskResult;
use dvx_store::{Id, Repo, StoreError};

use super::cluster::{self, Staging};
use super::{Cancel, Executor, Finished, Portable, Submission, Ticket};
use crate::error::{EngineError, Result};
use crate::exec::Outcome;
pub use cmd::SlurmConfig;
use cmd::{is_terminal, parse_sbatch, parse_squeue, squeue_args, SbatchJob};

/// Polls in a row that may find a job gone without a result before it counts as killed: the
/// result is written before the job ends, so one look is enough; two ride out a slow read.
const GONE_POLLS: u32 = 2;
/// `squeue` failures in a row tolerated (a controller restarting) before the run fails.
const SQUEUE_FAILURES: u32 = 5;

struct InFlight {
    job: String,
    task: Id,
    queued: chrono::DateTime<chrono::Utc>,
    portable: Portable,
    node: String,
    state: String,
    gone: u32,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<Ticket, InFlight>,
    last_poll: Option<Instant>,
    squeue_failures: u32,
    /// Waiting jobs were withdrawn and nothing was submitted since: the scheduler asks again
    /// on every tick after a failure, and the queue need not be asked each time.
    queued_withdrawn: bool,
}

pub struct Slurm {
    cfg: SlurmConfig,
    staging: Staging,
    root: PathBuf,
    /// The name every job of this run carries: one `squeue --name` sees them all.
    name: String,
    log: String,
    state: Mutex<State>,
}

fn exec_err(message: String) -> EngineError {
    EngineError::Executor(message)
}

impl Slurm {
    /// The executor for `repo`, with `[executor.slurm]` of its config.toml and the remote it
    /// names (or the project's default remote).
    pub fn new(repo: &Repo) -> Result<Slurm> {
        let cfg = SlurmConfig::load(&repo.dot.join("config.toml"))?;
        let staging = Staging::open(
            repo,
            cfg.remote.as_deref(),
            cfg.dvx.as_deref(),
            "slurm",
            "executor.slurm",
        )?;
        let log = match &cfg.log {
            Some(l) => l.clone(),
            None => {
                let dir = repo.tmp_dir().join("slurm");
                std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
                dir.join("%j.log").to_string_lossy().into_owned()
            }
        };
        Ok(Slurm {
            cfg,
            staging,
            root: repo.root.clone(),
            name: cluster::run_tag(repo),
            log,
            state: Mutex::new(State::default()),
        })
    }

    /// The name this run's jobs carry.
    pub fn job_name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sbatch(&self, p: &Portable, tasks: &[Id]) -> Result<String> {
        let mut worker = self.staging.worker.clone();
        worker.extend(tasks.iter().map(Id::to_hex));
        let job = SbatchJob {
            name: &self.name,
            log: &self.log,
            cfg: &self.cfg,
            resources: &p.stage.resources,
            // The tasks run one after another, each within the stage's timeout.
            timeout_secs: p
                .stage
                .timeout_secs
                .map(|t| t.saturating_mul(tasks.len() as u64)),
            worker,
        };
        let args = job.args().map_err(|m| EngineError::Failed {
            stage: p.stage.name.clone(),
            datum: None,
            message: m,
        })?;
        let out = Command::new("sbatch")
            .args(&args)
            .current_dir(&self.root)
            .output()
            .map_err(|e| {
                exec_err(format!(
                    "cannot start sbatch: {e} (is Slurm's client installed?)"
                ))
            })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        match (out.status.success(), parse_sbatch(&stdout)) {
            (true, Some(id)) => Ok(id),
            _ => Err(exec_err(format!(
                "sbatch refused the job: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// The outcome of a job that ended without a result.
    fn killed(&self, f: &InFlight) -> Outcome {
        let log = PathBuf::from(self.log.replace("%j", &f.job));
        let tail = std::fs::read(&log).unwrap_or_default();
        let state = if f.state.is_empty() {
            "left the queue".to_string()
        } else {
            f.state.clone()
        };
        cluster::killed(
            format!(
                "killed by the cluster: Slurm job {} ended ({state}) without a result",
                f.job
            ),
            tail,
        )
    }

    fn finished(t: Ticket, f: &InFlight, outcome: Outcome, r: Option<&TaskResult>) -> Finished {
        cluster::finished(t, outcome, r, ("slurm", &f.job, &f.node), f.queued)
    }

    /// One look at the queue and at the results of jobs that left it.
    fn look(&self, st: &mut State) -> Result<Vec<Finished>> {
        st.last_poll = Some(Instant::now());
        let out = Command::new("squeue")
            .args(squeue_args(&self.name))
            .output();
        let queue = match out {
            Ok(o) if o.status.success() => {
                st.squeue_failures = 0;
                parse_squeue(&String::from_utf8_lossy(&o.stdout))
            }
            other => {
                st.squeue_failures += 1;
                if st.squeue_failures > SQUEUE_FAILURES {
                    let why = match other {
                        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                        Err(e) => e.to_string(),
                    };
                    return Err(exec_err(format!("squeue keeps failing: {why}")));
                }
                return Ok(Vec::new());
            }
        };
        let by_job: HashMap<&str, &cmd::QueueEntry> =
            queue.iter().map(|e| (e.job.as_str(), e)).collect();
        let mut ended = Vec::new();
        let tickets: Vec<Ticket> = st.jobs.keys().copied().collect();
        for t in tickets {
            let Some(f) = st.jobs.get_mut(&t) else {
                continue;
            };
            let entry = by_job.get(f.job.as_str());
            if let Some(e) = entry {
                f.state = e.state.clone();
                if !e.node.is_empty() && !e.node.starts_with('(') {
                    f.node = e.node.clone();
                }
                if !is_terminal(&e.state) {
                    continue;
                }
            }
            let task = f.task;
            match self.staging.result(&task)? {
                Some(r) => {
                    let Some(f) = st.jobs.remove(&t) else {
                        continue;
                    };
                    let outcome =
                        self.staging
                            .outcome(&f.portable, &r, &format!("Slurm job {}", f.job));
                    ended.push(Self::finished(t, &f, outcome, Some(&r)));
                }
                None => {
                    f.gone += 1;
                    if f.gone >= GONE_POLLS {
                        let Some(f) = st.jobs.remove(&t) else {
                            continue;
                        };
                        ended.push(Self::finished(t, &f, self.killed(&f), None));
                    }
                }
            }
        }
        Ok(ended)
    }

    fn scancel(&self, jobs: &[String]) {
        if jobs.is_empty() {
            return;
        }
        // Best effort: a job that already ended is not an error worth stopping for.
        let _ = Command::new("scancel").args(jobs).output();
    }
}

impl Executor for Slurm {
    fn submit(&self, work: Submission) -> Result<()> {
        // A batch: one job running each member's task in turn, each reporting on its own.
        let members: Vec<(Ticket, Portable)> = match (work.portable, work.members.is_empty()) {
            (Some(p), true) => vec![(work.ticket, p)],
            (None, false) if work.batch.len() == work.members.len() => {
                work.members.into_iter().zip(work.batch).collect()
            }
            _ => {
                return Err(exec_err(
                    "slurm cannot run this execution (it has no portable form); give the stage `executor: local`".into(),
                ))
            }
        };
        let first = &members[0].1;
        let mut st = self.lock();
        st.queued_withdrawn = false;
        let mut ids = Vec::with_capacity(members.len());
        for (t, p) in &members {
            ids.push(self.staging.put_task(format!("{}/{t}", self.name), p)?);
        }
        let queued = chrono::Utc::now();
        let job = self.sbatch(first, &ids)?;
        for ((t, p), id) in members.into_iter().zip(ids) {
            st.jobs.insert(
                t,
                InFlight {
                    job: job.clone(),
                    task: id,
                    queued,
                    portable: p,
                    node: String::new(),
                    state: String::new(),
                    gone: 0,
                },
            );
        }
        Ok(())
    }

    fn poll(&self, wait: Duration) -> Result<Vec<Finished>> {
        let (busy, last) = {
            let st = self.lock();
            (!st.jobs.is_empty(), st.last_poll)
        };
        if !cluster::wait_for_look(busy, last, self.cfg.poll(), wait) {
            return Ok(Vec::new());
        }
        let mut st = self.lock();
        self.look(&mut st)
    }

    fn cancel(&self, what: Cancel) -> Vec<Ticket> {
        let mut st = self.lock();
        let chosen: Vec<Ticket> = match what {
            Cancel::Everything => st.jobs.keys().copied().collect(),
            Cancel::Queued if st.jobs.is_empty() || st.queued_withdrawn => Vec::new(),
            Cancel::Queued => {
                st.queued_withdrawn = true;
                // Only jobs still waiting: what runs finishes and reports.
                let out = Command::new("squeue")
                    .args(squeue_args(&self.name))
                    .output();
                let pending: Vec<String> = out
                    .map(|o| parse_squeue(&String::from_utf8_lossy(&o.stdout)))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|e| e.state == "PENDING")
                    .map(|e| e.job)
                    .collect();
                st.jobs
                    .iter()
                    .filter(|(_, f)| pending.contains(&f.job))
                    .map(|(t, _)| *t)
                    .collect()
            }
        };
        let mut jobs: Vec<String> = chosen
            .iter()
            .filter_map(|t| st.jobs.remove(t).map(|f| f.job))
            .collect();
        jobs.sort();
        jobs.dedup();
        self.scancel(&jobs);
        chosen
    }
}

impl Drop for Slurm {
    /// Jobs of a run that ends (an error, a panic) are not left in the queue.
    fn drop(&mut self) {
        let mut jobs: Vec<String> = self.lock().jobs.values().map(|f| f.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        self.scancel(&jobs);
    }
}
