//! The Ray executor: each execution (or batch of datums) becomes a task object on a remote
//! and one job submitted through Ray's job API whose entrypoint runs `dvx exec-task`. The
//! job's submission id is derived from its tasks, so submitting the same tasks again finds
//! the job already there. The exit status comes from the result object, never from Ray's
//! job status: a job that ended without a result was killed by the cluster. Outputs come back
//! from the remote into the scratch folder the scheduler expects, so recording and the run
//! cache work as for a local run.

pub mod api;
pub mod config;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dvx_remote::task::TaskResult;
use dvx_store::{Id, Repo};

use super::cluster::{self, Staging};
use super::{Cancel, Executor, Finished, Portable, Submission, Ticket};
use crate::error::{EngineError, Result};
use crate::exec::Outcome;
use api::{Api, Submitted};
pub use config::RayConfig;
use config::{is_terminal, job_request, submission_id, JobInfo, TIME_MARGIN_SECS};

/// Looks in a row that may find a job ended without a result before it counts as killed:
/// the result is written before the job ends, so one look is enough; two ride out a slow read.
const GONE_POLLS: u32 = 2;
/// Failed looks at the job API in a row tolerated (a head node restarting) before the run
/// fails.
const API_FAILURES: u32 = 5;

struct InFlight {
    /// The job's submission id.
    job: String,
    task: Id,
    queued: chrono::DateTime<chrono::Utc>,
    portable: Portable,
    /// How long the job may run (the tasks' timeouts plus a margin).
    limit: Option<Duration>,
    node: String,
    status: String,
    message: String,
    gone: u32,
}

#[derive(Default)]
struct State {
    jobs: BTreeMap<Ticket, InFlight>,
    last_poll: Option<Instant>,
    failures: u32,
    /// Waiting jobs were withdrawn and nothing was submitted since.
    queued_withdrawn: bool,
}

pub struct Ray {
    cfg: RayConfig,
    staging: Staging,
    api: Api,
    /// Names this run in its tasks, so two runs never share a task.
    name: String,
    /// Variables passed to every job (`pass_env`).
    env: BTreeMap<String, String>,
    state: Mutex<State>,
}

fn exec_err(message: String) -> EngineError {
    EngineError::Executor(message)
}

impl Ray {
    /// The executor for `repo`, with `[executor.ray]` of its config.toml and the remote it
    /// names (or the project's default remote).
    pub fn new(repo: &Repo) -> Result<Ray> {
        let cfg = RayConfig::load(&repo.dot.join("config.toml"))?;
        let base = cfg.base(|k| std::env::var(k).ok())?;
        let staging = Staging::open(
            repo,
            cfg.remote.as_deref(),
            cfg.dvx.as_deref(),
            "ray",
            "executor.ray",
        )?;
        let env = cfg
            .pass_env
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
            .collect();
        let tag = Id::of(
            format!(
                "{}/{}/{:?}",
                repo.root.display(),
                std::process::id(),
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        Ok(Ray {
            api: Api::new(base).map_err(exec_err)?,
            cfg,
            staging,
            name: format!("dvx-{}", &tag.to_hex()[..12]),
            env,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outcome of a job that ended without a result.
    fn killed(&self, f: &InFlight) -> Outcome {
        let why = match (f.status.as_str(), f.message.as_str()) {
            ("", _) => "is unknown to Ray".to_string(),
            (s, "") => format!("ended ({s})"),
            (s, m) => format!("ended ({s}: {})", m.lines().next().unwrap_or(m)),
        };
        cluster::killed(
            format!(
                "killed by the cluster: Ray job {} {why} without a result",
                f.job
            ),
            self.api.log_tail(&f.job),
        )
    }

    fn finished(t: Ticket, f: &InFlight, outcome: Outcome, r: Option<&TaskResult>) -> Finished {
        cluster::finished(t, outcome, r, ("ray", &f.job, &f.node), f.queued)
    }

    /// What Ray says of each of the run's jobs; None for a job the API could not be asked
    /// about this time.
    fn ask(&self, st: &mut State) -> Result<BTreeMap<String, Option<JobInfo>>> {
        let ids: BTreeSet<String> = st.jobs.values().map(|f| f.job.clone()).collect();
        let mut out = BTreeMap::new();
        for id in ids {
            match self.api.info(&id) {
                Ok(Some(i)) => {
                    out.insert(id, Some(i));
                }
                // Unknown to Ray (a head node that lost its state): look for results.
                Ok(None) => {
                    out.insert(
                        id,
                        Some(JobInfo {
                            status: String::new(),
                            ..JobInfo::default()
                        }),
                    );
                }
                Err(e) => {
                    st.failures += 1;
                    if st.failures > API_FAILURES {
                        return Err(exec_err(format!("Ray's job API keeps failing: {e}")));
                    }
                    return Ok(BTreeMap::new());
                }
            }
        }
        st.failures = 0;
        Ok(out)
    }

    /// One look at the jobs and at the results of those that ended.
    fn look(&self, st: &mut State) -> Result<Vec<Finished>> {
        st.last_poll = Some(Instant::now());
        let infos = self.ask(st)?;
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let mut overdue = BTreeSet::new();
        let mut ended = Vec::new();
        let tickets: Vec<Ticket> = st.jobs.keys().copied().collect();
        for t in tickets {
            let Some(f) = st.jobs.get_mut(&t) else {
                continue;
            };
            let Some(Some(info)) = infos.get(&f.job) else {
                continue;
            };
            f.status = info.status.clone();
            f.message = info.message.clone();
            if !info.node.is_empty() {
                f.node = info.node.clone();
            }
            if !info.status.is_empty() && !is_terminal(&info.status) {
                let ran = Duration::from_millis(now_ms.saturating_sub(info.start_ms));
                if info.start_ms > 0 && f.limit.is_some_and(|l| ran > l) {
                    overdue.insert(f.job.clone());
                }
                continue;
            }
            let task = f.task;
            match self.staging.result(&task)? {
                Some(r) => {
                    let Some(f) = st.jobs.remove(&t) else {
                        continue;
                    };
                    let outcome =
                        self.staging
                            .outcome(&f.portable, &r, &format!("Ray job {}", f.job));
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
        // Past the timeout and the margin: the worker did not stop it, so Ray does. It then
        // ends without a result and is reported as killed.
        for job in overdue {
            let _ = self.api.stop(&job);
        }
        Ok(ended)
    }

    fn stop_all(&self, jobs: &BTreeSet<String>) {
        for j in jobs {
            // Best effort: a job that already ended is not an error worth stopping for.
            let _ = self.api.stop(j);
        }
    }
}

impl Executor for Ray {
    fn submit(&self, work: Submission) -> Result<()> {
        // A batch: one job running each member's task in turn, each reporting on its own.
        let members: Vec<(Ticket, Portable)> = match (work.portable, work.members.is_empty()) {
            (Some(p), true) => vec![(work.ticket, p)],
            (None, false) if work.batch.len() == work.members.len() => {
                work.members.into_iter().zip(work.batch).collect()
            }
            _ => {
                return Err(exec_err(
                    "ray cannot run this execution (it has no portable form); give the stage `executor: local`".into(),
                ))
            }
        };
        let stage = members[0].1.stage.clone();
        let mut ids = Vec::with_capacity(members.len());
        for (t, p) in &members {
            ids.push(self.staging.put_task(format!("{}/{t}", self.name), p)?);
        }
        let job = submission_id(&ids);
        let mut worker = self.staging.worker.clone();
        worker.extend(ids.iter().map(Id::to_hex));
        let mut resources = stage.resources.clone();
        // The entrypoint is the work itself: without a request it holds one CPU, as a Slurm
        // job does, rather than Ray's zero (which would start every job at once).
        resources.cpus.get_or_insert_with(|| "1".to_string());
        let body = job_request(&job, &worker, &resources, &self.cfg, &self.env, &stage.name)
            .map_err(|m| EngineError::Failed {
                stage: stage.name.clone(),
                datum: None,
                message: m,
            })?;
        let queued = chrono::Utc::now();
        match self.api.submit(&body).map_err(exec_err)? {
            Submitted::New | Submitted::Existing => {}
        }
        let limit = stage.timeout_secs.map(|t| {
            Duration::from_secs(
                t.saturating_mul(ids.len() as u64)
                    .saturating_add(TIME_MARGIN_SECS),
            )
        });
        let mut st = self.lock();
        st.queued_withdrawn = false;
        for ((t, p), id) in members.into_iter().zip(ids) {
            st.jobs.insert(
                t,
                InFlight {
                    job: job.clone(),
                    task: id,
                    queued,
                    portable: p,
                    limit,
                    node: String::new(),
                    status: String::new(),
                    message: String::new(),
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
                let pending: BTreeSet<String> = st
                    .jobs
                    .values()
                    .map(|f| f.job.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|j| matches!(self.api.info(j), Ok(Some(i)) if i.status == "PENDING"))
                    .collect();
                st.jobs
                    .iter()
                    .filter(|(_, f)| pending.contains(&f.job))
                    .map(|(t, _)| *t)
                    .collect()
            }
        };
        let jobs: BTreeSet<String> = chosen
            .iter()
            .filter_map(|t| st.jobs.remove(t).map(|f| f.job))
            .collect();
        self.stop_all(&jobs);
        chosen
    }
}

impl Drop for Ray {
    /// Jobs of a run that ends (an error, a panic) are not left running.
    fn drop(&mut self) {
        let jobs: BTreeSet<String> = self.lock().jobs.values().map(|f| f.job.clone()).collect();
        self.stop_all(&jobs);
    }
}
