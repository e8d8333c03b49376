//! The Kubernetes executor: each submission becomes task objects on a remote and one
//! `batch/v1` Job running `dvx exec-task` (an Indexed Job, one pod per task, for a batch).
//! The submitter polls every Job of the run with one list call (they share a label) and
//! takes the exit status from the result object, never from the Job: a Job that ended
//! without a result was killed by the cluster. Outputs come back from the remote as for
//! Slurm (`super::cluster`).

pub mod config;
pub mod manifest;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use dvx_remote::task::TaskResult;
use dvx_store::{Id, Repo};

use super::cluster::{self, Staging};
use super::{Cancel, Executor, Finished, Portable, Submission, Ticket};
use crate::error::{EngineError, Result};
use crate::exec::Outcome;
pub use config::KubernetesConfig;
use manifest::{job_state, JobPlan, JobState, RUN_LABEL};

/// Polls in a row that may find a Job ended (or gone) without a result before it counts as
/// killed: the result is written before the pod ends, so one look is enough; two ride out
/// a slow read.
const GONE_POLLS: u32 = 2;
/// Failed list calls in a row tolerated (an API server restarting) before the run fails.
const LIST_FAILURES: u32 = 5;
/// The longest one request to the API server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn exec_err(message: String) -> EngineError {
    EngineError::Executor(message)
}

fn api_err(what: &str, e: kube::Error) -> EngineError {
    let hint = match &e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            "the kubeconfig's user needs `create`, `list` and `delete` on `jobs` (group batch) in the namespace: `kubectl auth can-i create jobs -n NAMESPACE`"
        }
        kube::Error::Api(s) if s.code == 404 => {
            "check `namespace` in [executor.kubernetes] of .dvx/config.toml (or the context's namespace)"
        }
        _ => "check that the cluster is reachable with this kubeconfig and context (`kubectl get jobs`); finished executions were kept",
    };
    EngineError::Cluster {
        executor: "kubernetes",
        message: format!("{what}: {e}"),
        hint: hint.into(),
    }
}

struct InFlight {
    job: String,
    /// The task's index in its Job (0 for a Job of one task).
    index: usize,
    task: Id,
    queued: chrono::DateTime<chrono::Utc>,
    portable: Portable,
    /// How the Job ended, when it did.
    ended: Option<String>,
    gone: u32,
}

struct State {
    jobs: BTreeMap<Ticket, InFlight>,
    submitted: u64,
    last_poll: Option<Instant>,
    list_failures: u32,
    /// Waiting Jobs were withdrawn and nothing was submitted since: the scheduler asks again
    /// on every tick after a failure, and the API server need not be asked each time.
    queued_withdrawn: bool,
}

pub struct Kubernetes {
    cfg: KubernetesConfig,
    rt: tokio::runtime::Runtime,
    api: Api<Job>,
    /// The run's name: every Job carries it as [`RUN_LABEL`] and as its name's start.
    run: String,
    /// `exec-task`'s arguments before the task ids: the remote's URL and options.
    remote_args: Vec<String>,
    /// The remote the data moves through.
    staging: Staging,
    state: Mutex<State>,
}

impl Kubernetes {
    /// The executor for `repo`, with `[executor.kubernetes]` of its config.toml, the
    /// kubeconfig and context it names, and the remote it names (or the default remote).
    pub fn new(repo: &Repo) -> Result<Kubernetes> {
        let cfg = KubernetesConfig::load(&repo.dot.join("config.toml"))?;
        let staging = Staging::open(
            repo,
            cfg.remote.as_deref(),
            None,
            "kubernetes",
            "executor.kubernetes",
        )?;
        // The worker's line is `dvx exec-task URL OPTIONS...`; a pod has its own dvx.
        let remote_args = staging.worker[2..].to_vec();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| exec_err(format!("cannot start the Kubernetes client: {e}")))?;
        let client = rt.block_on(client(&cfg))?;
        let namespace = cfg
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let api = Api::<Job>::namespaced(client, &namespace);
        Ok(Kubernetes {
            run: cluster::run_tag(repo),
            remote_args,
            staging,
            rt,
            api,
            state: Mutex::new(State {
                jobs: BTreeMap::new(),
                submitted: 0,
                last_poll: None,
                list_failures: 0,
                queued_withdrawn: false,
            }),
            cfg,
        })
    }

    /// The name this run's Jobs carry as their [`RUN_LABEL`].
    pub fn run_name(&self) -> &str {
        &self.run
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, plan: &JobPlan) -> Result<()> {
        let job = plan.job().map_err(|r| EngineError::Container {
            stage: plan.stage.to_string(),
            message: r.message,
            hint: r.hint,
        })?;
        self.rt
            .block_on(self.api.create(&PostParams::default(), &job))
            .map_err(|e| api_err(&format!("cannot create Job {}", plan.name), e))?;
        Ok(())
    }

    fn killed(f: &InFlight) -> Outcome {
        let how = f.ended.as_deref().unwrap_or("deleted");
        cluster::killed(
            format!(
                "killed by the cluster: Kubernetes Job {} ended ({how}) without a result",
                f.job
            ),
            Vec::new(),
        )
    }

    fn finished(t: Ticket, f: &InFlight, outcome: Outcome, r: Option<&TaskResult>) -> Finished {
        cluster::finished(t, outcome, r, ("kubernetes", &f.job, ""), f.queued)
    }

    /// The run's Jobs by name, with where each stands; None when the list call failed and
    /// may be tried again.
    fn list(&self, st: &mut State) -> Result<Option<BTreeMap<String, JobState>>> {
        let lp = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run));
        match self.rt.block_on(self.api.list(&lp)) {
            Ok(list) => {
                st.list_failures = 0;
                Ok(Some(
                    list.items
                        .iter()
                        .filter_map(|j| {
                            Some((j.metadata.name.clone()?, job_state(j.status.as_ref())))
                        })
                        .collect(),
                ))
            }
            Err(e) => {
                st.list_failures += 1;
                if st.list_failures > LIST_FAILURES {
                    return Err(api_err("listing the run's Jobs keeps failing", e));
                }
                Ok(None)
            }
        }
    }

    /// One look at the Jobs and at the results of tasks whose pod ended.
    fn look(&self, st: &mut State) -> Result<Vec<Finished>> {
        st.last_poll = Some(Instant::now());
        let Some(jobs) = self.list(st)? else {
            return Ok(Vec::new());
        };
        let mut ended = Vec::new();
        let tickets: Vec<Ticket> = st.jobs.keys().copied().collect();
        for t in tickets {
            let Some(f) = st.jobs.get_mut(&t) else {
                continue;
            };
            match jobs.get(&f.job) {
                Some(js) => {
                    f.ended.clone_from(&js.ended);
                    if js.ended.is_none() && !js.done.contains(&f.index) {
                        continue;
                    }
                }
                None => f.ended = Some("deleted".into()),
            }
            let task = f.task;
            if let Some(r) = self.staging.result(&task)? {
                let Some(f) = st.jobs.remove(&t) else {
                    continue;
                };
                let what = format!("Kubernetes Job {}", f.job);
                let outcome = self.staging.outcome(&f.portable, &r, &what);
                ended.push(Self::finished(t, &f, outcome, Some(&r)));
            } else if f.ended.is_some() {
                f.gone += 1;
                if f.gone >= GONE_POLLS {
                    let Some(f) = st.jobs.remove(&t) else {
                        continue;
                    };
                    ended.push(Self::finished(t, &f, Self::killed(&f), None));
                }
            }
        }
        Ok(ended)
    }

    /// Delete Jobs, their pods with them (in the background). Best effort: a Job already
    /// gone is not worth stopping for.
    fn delete(&self, jobs: &[String]) {
        for j in jobs {
            let _ = self
                .rt
                .block_on(self.api.delete(j, &DeleteParams::background()));
        }
    }
}

/// A client for the kubeconfig and context the settings name (or the usual ones).
async fn client(cfg: &KubernetesConfig) -> Result<kube::Client> {
    let opts = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let bad = |e: kube::config::KubeconfigError| {
        EngineError::Cluster {
        executor: "kubernetes",
        message: format!("cannot read the kubeconfig: {e}"),
        hint: "set `kubeconfig` (and `context`) in [executor.kubernetes] of .dvx/config.toml, or KUBECONFIG".into(),
    }
    };
    let mut config = match &cfg.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(bad)?;
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(bad)?
        }
        None => kube::Config::from_kubeconfig(&opts).await.map_err(bad)?,
    };
    config.connect_timeout = Some(REQUEST_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| api_err("cannot make a client", e))
}

impl Executor for Kubernetes {
    fn submit(&self, work: Submission) -> Result<()> {
        // A batch: one Indexed Job, each member's task at its index.
        let members: Vec<(Ticket, Portable)> = match (work.portable, work.members.is_empty()) {
            (Some(p), true) => vec![(work.ticket, p)],
            (None, false) if work.batch.len() == work.members.len() => {
                work.members.into_iter().zip(work.batch).collect()
            }
            _ => {
                return Err(exec_err(
                    "kubernetes cannot run this execution (it has no portable form); give the stage `executor: local`".into(),
                ))
            }
        };
        let mut st = self.lock();
        st.queued_withdrawn = false;
        st.submitted += 1;
        let name = format!("{}-{}", self.run, st.submitted);
        let mut ids = Vec::with_capacity(members.len());
        for (t, p) in &members {
            let id = self.staging.put_task(format!("{}/{t}", self.run), p)?;
            ids.push(id);
        }
        let first = &members[0].1.stage;
        let tasks: Vec<String> = ids.iter().map(Id::to_hex).collect();
        let queued = chrono::Utc::now();
        self.create(&JobPlan {
            name: &name,
            run: &self.run,
            stage: &first.name,
            cfg: &self.cfg,
            stage_image: first.image_ref.as_deref(),
            resources: &first.resources,
            timeout_secs: first.timeout_secs,
            remote_args: &self.remote_args,
            tasks: &tasks,
        })?;
        for (index, ((t, p), id)) in members.into_iter().zip(ids).enumerate() {
            st.jobs.insert(
                t,
                InFlight {
                    job: name.clone(),
                    index,
                    task: id,
                    queued,
                    portable: p,
                    ended: None,
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
                // Only Jobs none of whose pods started: what runs finishes and reports.
                let Ok(Some(jobs)) = self.list(&mut st) else {
                    return Vec::new();
                };
                st.jobs
                    .iter()
                    .filter(|(_, f)| jobs.get(&f.job).is_some_and(|j| j.waiting))
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
        self.delete(&jobs);
        chosen
    }
}

impl Drop for Kubernetes {
    /// Jobs of a run that ends (an error, a panic) are not left running.
    fn drop(&mut self) {
        let mut jobs: Vec<String> = self.lock().jobs.values().map(|f| f.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        self.delete(&jobs);
    }
}
