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

use dvx_remote::task::TASK_FORMAT;
use dvx_remote::task::{Task, TaskDatum, TaskInput, TaskResources, TaskResult, DATUM_OUTPUT};
use dvx_remote::transfer::Upload;
use dvx_remote::{Remote, RemoteIndex};
use dvx_store::config::RemoteConfig;
use dvx_store::{Id, Repo, StoreError};

use super::{Cancel, Executor, Finished, Placement, Portable, Submission, Ticket};
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
    /// What the remote is known to hold (packs this run wrote or read).
    idx: RemoteIndex,
    /// Inputs already on the remote: (path, id) -> the packs that hold them.
    uploaded: HashMap<(String, Id), Vec<Id>>,
    jobs: BTreeMap<Ticket, InFlight>,
    last_poll: Option<Instant>,
    squeue_failures: u32,
    /// Waiting jobs were withdrawn and nothing was submitted since: the scheduler asks again
    /// on every tick after a failure, and the queue need not be asked each time.
    queued_withdrawn: bool,
}

pub struct Slurm {
    cfg: SlurmConfig,
    remote: Remote,
    root: PathBuf,
    /// The name every job of this run carries: one `squeue --name` sees them all.
    name: String,
    /// The worker's command line before the task id: dvx, `exec-task`, the URL, options.
    worker: Vec<String>,
    log: String,
    state: Mutex<State>,
}

fn exec_err(message: String) -> EngineError {
    EngineError::Executor(message)
}

/// The options that reach the same remote from a worker (never credentials: those come
/// from the worker's environment or profile).
fn connection_args(rc: &RemoteConfig) -> Vec<String> {
    let mut a = Vec::new();
    let mut opt = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            a.push(format!("--{k}={v}"));
        }
    };
    opt("endpoint", &rc.endpoint);
    opt("region", &rc.region);
    opt("profile", &rc.profile);
    if rc.allow_http == Some(true) {
        a.push("--allow-http".into());
    }
    a
}

impl Slurm {
    /// The executor for `repo`, with `[executor.slurm]` of its config.toml and the remote it
    /// names (or the project's default remote).
    pub fn new(repo: &Repo) -> Result<Slurm> {
        let cfg = SlurmConfig::load(&repo.dot.join("config.toml"))?;
        let remote = Remote::open(repo, cfg.remote.as_deref()).map_err(|e| match e {
            dvx_remote::RemoteError::Store(StoreError::UnknownRemote(_)) if cfg.remote.is_none() => {
                exec_err("slurm needs a remote to move data through, and none is configured (`dvx remote add NAME URL`, or `remote` in [executor.slurm] of .dvx/config.toml)".into())
            }
            e => e.into(),
        })?;
        remote.check_format(true)?;
        let rc = repo
            .config
            .remote
            .get(&remote.name)
            .cloned()
            .unwrap_or_else(|| RemoteConfig {
                url: remote.url.clone(),
                ..Default::default()
            });
        let dvx = match &cfg.dvx {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .map_err(|e| StoreError::io("the running dvx", e))?
                .to_string_lossy()
                .into_owned(),
        };
        let mut worker = vec![dvx, "exec-task".into(), rc.url.clone()];
        worker.extend(connection_args(&rc));
        let log = match &cfg.log {
            Some(l) => l.clone(),
            None => {
                let dir = repo.tmp_dir().join("slurm");
                std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
                dir.join("%j.log").to_string_lossy().into_owned()
            }
        };
        let tag = Id::of(
            format!(
                "{}/{}/{:?}",
                repo.root.display(),
                std::process::id(),
                std::time::SystemTime::now()
            )
            .as_bytes(),
        );
        // What the remote already holds (indexes cached between runs): inputs pushed by an
        // earlier run, or by `dvx push`, are not uploaded again.
        let idx = remote.load_index()?;
        Ok(Slurm {
            cfg,
            remote,
            root: repo.root.clone(),
            name: format!("dvx-{}", &tag.to_hex()[..12]),
            worker,
            log,
            state: Mutex::new(State {
                idx,
                ..State::default()
            }),
        })
    }

    /// The name this run's jobs carry.
    pub fn job_name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put one input on the remote (unless it is there), checking it is what the plan saw.
    fn push_input(
        &self,
        st: &mut State,
        path: &str,
        expected: Option<(dvx_store::object::EntryKind, Id)>,
    ) -> Result<Option<TaskInput>> {
        if let Some((kind, id)) = expected {
            if st.uploaded.contains_key(&(path.to_string(), id)) {
                return Ok(Some(TaskInput {
                    path: path.to_string(),
                    kind,
                    id,
                }));
            }
        }
        let abs = dvx_store::paths::abs(&self.root, path)?;
        if abs.symlink_metadata().is_err() {
            return Ok(None);
        }
        let mut up = Upload::new(&self.remote, Some(&st.idx));
        let flat = up.add_path(&abs)?;
        let packs = up.finish()?;
        if let Some((_, id)) = expected {
            if id != flat.id {
                return Err(StoreError::corrupt(
                    "input",
                    id,
                    format!("{path} changed while the run was submitting it; run again"),
                )
                .into());
            }
        }
        self.remote.extend_index(&mut st.idx, &packs)?;
        st.uploaded.insert((path.to_string(), flat.id), packs);
        Ok(Some(TaskInput {
            path: path.to_string(),
            kind: flat.kind,
            id: flat.id,
        }))
    }

    /// The task of one execution, with its inputs on the remote.
    fn task_of(&self, st: &mut State, ticket: Ticket, p: &Portable) -> Result<Task> {
        let s = &p.stage;
        let mut inputs = Vec::new();
        for (path, expected) in &s.inputs {
            inputs.extend(self.push_input(st, path, *expected)?);
        }
        let datum = match &p.datum {
            Some((id, path, expected)) => {
                inputs.extend(self.push_input(st, path, *expected)?);
                Some(TaskDatum {
                    id: id.clone(),
                    input: path.clone(),
                    output: DATUM_OUTPUT.into(),
                })
            }
            None => None,
        };
        let mut packs: Vec<Id> = inputs
            .iter()
            .flat_map(|i| {
                st.uploaded
                    .get(&(i.path.clone(), i.id))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        packs.sort();
        packs.dedup();
        Ok(Task {
            format: TASK_FORMAT,
            submission: format!("{}/{ticket}", self.name),
            stage: s.name.clone(),
            cmd: s.cmd.clone(),
            env: s.env.clone(),
            wdir: s.wdir.clone(),
            image: s.image.clone(),
            network: s.network,
            inputs,
            datum,
            outs: s.outs.clone(),
            resources: TaskResources {
                cpus: s.resources.cpus.clone(),
                memory: s.resources.memory.clone(),
                gpus: s.resources.gpus.clone(),
            },
            timeout_secs: s.timeout_secs,
            packs,
        })
    }

    fn sbatch(&self, p: &Portable, tasks: &[Id]) -> Result<String> {
        let mut worker = self.worker.clone();
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

    /// Turn a result into an outcome, bringing the outputs into place.
    fn complete(&self, st: &mut State, f: &InFlight, r: &TaskResult) -> Outcome {
        let mut outcome = Outcome {
            exit: r.exit,
            error: r.error.clone(),
            duration: Duration::from_millis(r.duration_ms),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let Err(e) = self.bring_back(st, f, r, &mut outcome) {
            outcome.exit = None;
            outcome.error = Some(format!(
                "Slurm job {} ran, but its outputs could not be read back: {e}",
                f.job
            ));
        }
        outcome
    }

    fn bring_back(
        &self,
        st: &mut State,
        f: &InFlight,
        r: &TaskResult,
        outcome: &mut Outcome,
    ) -> Result<()> {
        self.remote.extend_index(&mut st.idx, &r.packs)?;
        if let Some(id) = r.stdout {
            outcome.stdout = self.remote.read_file(&st.idx, id)?;
        }
        if let Some(id) = r.stderr {
            outcome.stderr = self.remote.read_file(&st.idx, id)?;
        }
        for o in &r.outputs {
            let dest = if o.path == DATUM_OUTPUT {
                match &f.portable.out_dir {
                    Some(d) => d.clone(),
                    None => continue,
                }
            } else if f.portable.stage.outs.contains(&o.path) {
                let dest = dvx_store::paths::abs(&self.root, &o.path)?;
                match std::fs::symlink_metadata(&dest) {
                    Ok(m) if m.is_dir() => std::fs::remove_dir_all(&dest),
                    Ok(_) => std::fs::remove_file(&dest),
                    Err(_) => Ok(()),
                }
                .map_err(|e| StoreError::io(&dest, e))?;
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                }
                dest
            } else {
                continue; // not declared: never written here
            };
            self.remote.download_to(&st.idx, o.kind, o.id, &dest)?;
        }
        Ok(())
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
        Outcome {
            exit: None,
            error: Some(format!(
                "killed by the cluster: Slurm job {} ended ({state}) without a result",
                f.job
            )),
            duration: Duration::ZERO,
            stdout: Vec::new(),
            stderr: tail,
        }
    }

    fn finished(f: &InFlight, outcome: Outcome, r: Option<&TaskResult>) -> Finished {
        let started = r
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.started).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(f.queued);
        Finished {
            ticket: 0,
            outcome,
            started,
            placement: Some(Placement {
                executor: "slurm",
                job: f.job.clone(),
                host: r.map(|r| r.host.clone()).unwrap_or_else(|| f.node.clone()),
                queued: f.queued.to_rfc3339(),
            }),
        }
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
            match self.remote.get_result(&task)? {
                Some(r) => {
                    let Some(f) = st.jobs.remove(&t) else {
                        continue;
                    };
                    let outcome = self.complete(st, &f, &r);
                    let mut done = Self::finished(&f, outcome, Some(&r));
                    done.ticket = t;
                    ended.push(done);
                }
                None => {
                    f.gone += 1;
                    if f.gone >= GONE_POLLS {
                        let Some(f) = st.jobs.remove(&t) else {
                            continue;
                        };
                        let mut done = Self::finished(&f, self.killed(&f), None);
                        done.ticket = t;
                        ended.push(done);
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
                    "slurm cannot run this execution (datums of combined inputs run only here for now: give the stage `executor: local`)".into(),
                ))
            }
        };
        let first = &members[0].1;
        let mut st = self.lock();
        st.queued_withdrawn = false;
        let mut ids = Vec::with_capacity(members.len());
        for (t, p) in &members {
            let task = self.task_of(&mut st, *t, p)?;
            ids.push(self.remote.put_task(&task)?);
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
        let due = {
            let st = self.lock();
            if st.jobs.is_empty() {
                None
            } else {
                Some(st.last_poll.map_or(Duration::ZERO, |l| {
                    self.cfg.poll().saturating_sub(l.elapsed())
                }))
            }
        };
        let Some(due) = due else {
            std::thread::sleep(wait);
            return Ok(Vec::new());
        };
        if due > wait {
            std::thread::sleep(wait);
            return Ok(Vec::new());
        }
        std::thread::sleep(due);
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
