//! What every cluster executor (Slurm, Ray, Kubernetes) does the same way: open the remote the data moves
//! through, put an execution's inputs and its task object there, and turn a result object
//! back into an outcome with the outputs in the places the scheduler expects. How a job is
//! submitted, watched and stopped is each executor's own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use dvx_remote::task::{Task, TaskDatum, TaskInput, TaskMember, TaskResources, TaskResult};
use dvx_remote::task::{DATUM_OUTPUT, TASK_FORMAT};
use dvx_remote::transfer::Upload;
use dvx_remote::{Remote, RemoteIndex};
use dvx_store::config::RemoteConfig;
use dvx_store::object::EntryKind;
use dvx_store::{Id, Repo, StoreError};

use super::{Finished, Placement, Portable, Ticket};
use crate::error::{EngineError, Result};
use crate::exec::Outcome;

#[derive(Default)]
struct Held {
    /// What the remote is known to hold (packs this run wrote or read).
    idx: RemoteIndex,
    /// Inputs already on the remote: (path, id) -> the packs that hold them.
    uploaded: HashMap<(String, Id), Vec<Id>>,
}

/// The remote side of a cluster run.
pub struct Staging {
    pub remote: Remote,
    root: PathBuf,
    /// The worker's command line before the task ids: dvx, `exec-task`, the URL, options.
    pub worker: Vec<String>,
    held: Mutex<Held>,
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

impl Staging {
    /// The remote `remote` names (default: the project's default remote) and the worker's
    /// command line with `dvx` (default: the path of this dvx, for a shared file system).
    /// `section` is the config table that may name them, for the hint.
    pub fn open(
        repo: &Repo,
        remote: Option<&str>,
        dvx: Option<&str>,
        executor: &str,
        section: &str,
    ) -> Result<Staging> {
        let r = Remote::open(repo, remote).map_err(|e| match e {
            dvx_remote::RemoteError::Store(StoreError::UnknownRemote(_)) if remote.is_none() => {
                EngineError::Executor(format!("{executor} needs a remote to move data through, and none is configured (`dvx remote add NAME URL`, or `remote` in [{section}] of .dvx/config.toml)"))
            }
            e => e.into(),
        })?;
        r.check_format(true)?;
        let rc = repo
            .config
            .remote
            .get(&r.name)
            .cloned()
            .unwrap_or_else(|| RemoteConfig {
                url: r.url.clone(),
                ..Default::default()
            });
        let dvx = match dvx {
            Some(d) => d.to_string(),
            None => std::env::current_exe()
                .map_err(|e| StoreError::io("the running dvx", e))?
                .to_string_lossy()
                .into_owned(),
        };
        let mut worker = vec![dvx, "exec-task".into(), rc.url.clone()];
        worker.extend(connection_args(&rc));
        // What the remote already holds (indexes cached between runs): inputs pushed by an
        // earlier run, or by `dvx push`, are not uploaded again.
        let idx = r.load_index()?;
        Ok(Staging {
            remote: r,
            root: repo.root.clone(),
            worker,
            held: Mutex::new(Held {
                idx,
                ..Held::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put one input on the remote (unless it is there), checking it is what the plan saw.
    fn push_input(
        &self,
        h: &mut Held,
        path: &str,
        expected: Option<(EntryKind, Id)>,
    ) -> Result<Option<TaskInput>> {
        if let Some((kind, id)) = expected {
            if h.uploaded.contains_key(&(path.to_string(), id)) {
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
        let mut up = Upload::new(&self.remote, Some(&h.idx));
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
        self.remote.extend_index(&mut h.idx, &packs)?;
        h.uploaded.insert((path.to_string(), flat.id), packs);
        Ok(Some(TaskInput {
            path: path.to_string(),
            kind: flat.kind,
            id: flat.id,
        }))
    }

    /// Write the task of one execution, with its inputs, to the remote; returns its id.
    /// `submission` names the run and the execution, so that two runs never share a task.
    pub fn put_task(&self, submission: String, p: &Portable) -> Result<Id> {
        let mut h = self.lock();
        let s = &p.stage;
        let mut inputs = Vec::new();
        for (path, expected) in &s.inputs {
            inputs.extend(self.push_input(&mut h, path, *expected)?);
        }
        let datum = match &p.datum {
            Some((id, path, expected)) => {
                // A datum of combined inputs names its matches as members, not one input.
                if p.members.is_empty() {
                    inputs.extend(self.push_input(&mut h, path, *expected)?);
                }
                let mut members = Vec::with_capacity(p.members.len());
                for m in &p.members {
                    inputs.extend(self.push_input(&mut h, &m.path, m.known)?);
                    members.push(TaskMember {
                        name: m.name.clone(),
                        place: m.place.clone(),
                        input: m.path.clone(),
                    });
                }
                Some(TaskDatum {
                    id: id.clone(),
                    input: if members.is_empty() {
                        path.clone()
                    } else {
                        String::new()
                    },
                    output: DATUM_OUTPUT.into(),
                    members,
                    group: p.group,
                })
            }
            None => None,
        };
        let mut packs: Vec<Id> = inputs
            .iter()
            .flat_map(|i| {
                h.uploaded
                    .get(&(i.path.clone(), i.id))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        packs.sort();
        packs.dedup();
        let task = Task {
            format: TASK_FORMAT,
            submission,
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
        };
        Ok(self.remote.put_task(&task)?)
    }

    /// The result of a task, if its worker wrote one.
    pub fn result(&self, task: &Id) -> Result<Option<TaskResult>> {
        Ok(self.remote.get_result(task)?)
    }

    /// Turn a result into an outcome, bringing the outputs into place. `job` names the job
    /// for a message (`Slurm job 12`).
    pub fn outcome(&self, p: &Portable, r: &TaskResult, job: &str) -> Outcome {
        let mut outcome = Outcome {
            exit: r.exit,
            error: r.error.clone(),
            duration: Duration::from_millis(r.duration_ms),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        if let Err(e) = self.bring_back(p, r, &mut outcome) {
            outcome.exit = None;
            outcome.error = Some(format!(
                "{job} ran, but its outputs could not be read back: {e}"
            ));
        }
        outcome
    }

    fn bring_back(&self, p: &Portable, r: &TaskResult, outcome: &mut Outcome) -> Result<()> {
        let mut h = self.lock();
        self.remote.extend_index(&mut h.idx, &r.packs)?;
        if let Some(id) = r.stdout {
            outcome.stdout = self.remote.read_file(&h.idx, id)?;
        }
        if let Some(id) = r.stderr {
            outcome.stderr = self.remote.read_file(&h.idx, id)?;
        }
        for o in &r.outputs {
            let dest = if o.path == DATUM_OUTPUT {
                match &p.out_dir {
                    Some(d) => d.clone(),
                    None => continue,
                }
            } else if p.stage.outs.contains(&o.path) {
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
            self.remote.download_to(&h.idx, o.kind, o.id, &dest)?;
        }
        Ok(())
    }
}

/// The name every job of one run carries, unique to this project, process and moment.
pub fn run_tag(repo: &Repo) -> String {
    let tag = Id::of(
        format!(
            "{}/{}/{:?}",
            repo.root.display(),
            std::process::id(),
            std::time::SystemTime::now()
        )
        .as_bytes(),
    );
    format!("dvx-{}", &tag.to_hex()[..12])
}

/// Wait as a cluster executor's `poll(wait)` should: until its next look at the queue is
/// due (every `every` since `last`) when that comes within `wait`, else all of `wait`.
/// True when it is time to look; never when nothing is in flight (`busy` false).
pub fn wait_for_look(
    busy: bool,
    last: Option<std::time::Instant>,
    every: Duration,
    wait: Duration,
) -> bool {
    let due = last.map_or(Duration::ZERO, |l| every.saturating_sub(l.elapsed()));
    if busy && due <= wait {
        std::thread::sleep(due);
        true
    } else {
        std::thread::sleep(wait);
        false
    }
}

/// An outcome that came with no result: the cluster ended the job.
pub fn killed(message: String, log_tail: Vec<u8>) -> Outcome {
    Outcome {
        exit: None,
        error: Some(message),
        duration: Duration::ZERO,
        stdout: Vec::new(),
        stderr: log_tail,
    }
}

/// A finished execution with where it ran: the node is the one the result names, else
/// `node` (what the cluster said); it started when the result says, else when queued.
pub fn finished(
    ticket: Ticket,
    outcome: Outcome,
    r: Option<&TaskResult>,
    placement: (&'static str, &str, &str),
    queued: chrono::DateTime<chrono::Utc>,
) -> Finished {
    let (executor, job, node) = placement;
    let started = r
        .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.started).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or(queued);
    Finished {
        ticket,
        outcome,
        started,
        placement: Some(Placement {
            executor,
            job: job.to_string(),
            host: r
                .map(|r| r.host.clone())
                .unwrap_or_else(|| node.to_string()),
            queued: queued.to_rfc3339(),
        }),
    }
}
