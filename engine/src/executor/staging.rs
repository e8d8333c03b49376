//! What every executor elsewhere (Slurm, Kubernetes) does on this side of the remote: open the
//! remote the data moves through, upload a task's inputs (checking each against the id the
//! plan saw) and write the task, and turn a result back into an outcome with the outputs in
//! the places the scheduler expects. Only the queue differs between clusters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use dvx_remote::task::TASK_FORMAT;
use dvx_remote::task::{
    Task, TaskDatum, TaskInput, TaskMember, TaskResources, TaskResult, DATUM_OUTPUT,
};
use dvx_remote::transfer::Upload;
use dvx_remote::{Remote, RemoteIndex};
use dvx_store::config::RemoteConfig;
use dvx_store::object::EntryKind;
use dvx_store::{Id, Repo, StoreError};

use super::{Finished, Placement, Portable};
use crate::error::{EngineError, Result};
use crate::exec::Outcome;

/// The remote of an executor elsewhere: `name` (a remote's name or URL) or the project's
/// default remote, checked for its format, with the settings a worker reaches it by.
pub fn open_remote(
    repo: &Repo,
    name: Option<&str>,
    executor: &str,
) -> Result<(Remote, RemoteConfig)> {
    let remote = Remote::open(repo, name).map_err(|e| match e {
        dvx_remote::RemoteError::Store(StoreError::UnknownRemote(_)) if name.is_none() => {
            EngineError::Executor(format!(
                "{executor} needs a remote to move data through, and none is configured (`dvx remote add NAME URL`, or `remote` in [executor.{executor}] of .dvx/config.toml)"
            ))
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
    Ok((remote, rc))
}

/// The options that reach the same remote from a worker (never credentials: those come
/// from the worker's environment or profile).
pub fn connection_args(rc: &RemoteConfig) -> Vec<String> {
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

/// A name for one run's jobs, unique enough to find them all and nothing else.
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

/// The submitter's side of the remote for one run.
pub struct Staging {
    pub remote: Remote,
    root: PathBuf,
    /// What the remote is known to hold (packs this run wrote or read).
    idx: RemoteIndex,
    /// Inputs already on the remote: (path, id) -> the packs that hold them.
    uploaded: HashMap<(String, Id), Vec<Id>>,
}

impl Staging {
    /// Staging through `remote` for the project at `root`. What the remote already holds
    /// (indexes cached between runs) is not uploaded again.
    pub fn new(remote: Remote, root: PathBuf) -> Result<Staging> {
        let idx = remote.load_index()?;
        Ok(Staging {
            remote,
            root,
            idx,
            uploaded: HashMap::new(),
        })
    }

    /// Put one input on the remote (unless it is there), checking it is what the plan saw.
    fn push_input(
        &mut self,
        path: &str,
        expected: Option<(EntryKind, Id)>,
    ) -> Result<Option<TaskInput>> {
        if let Some((kind, id)) = expected {
            if self.uploaded.contains_key(&(path.to_string(), id)) {
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
        let mut up = Upload::new(&self.remote, Some(&self.idx));
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
        self.remote.extend_index(&mut self.idx, &packs)?;
        self.uploaded.insert((path.to_string(), flat.id), packs);
        Ok(Some(TaskInput {
            path: path.to_string(),
            kind: flat.kind,
            id: flat.id,
        }))
    }

    /// The task of one execution (named `submission` on the remote), with its inputs
    /// uploaded; returns it with its id once it is written.
    pub fn put_task(&mut self, submission: String, p: &Portable) -> Result<(Id, Task)> {
        let task = self.task_of(submission, p)?;
        Ok((self.remote.put_task(&task)?, task))
    }

    fn task_of(&mut self, submission: String, p: &Portable) -> Result<Task> {
        let s = &p.stage;
        let mut inputs = Vec::new();
        for (path, expected) in &s.inputs {
            inputs.extend(self.push_input(path, *expected)?);
        }
        let datum = match &p.datum {
            Some((id, path, expected)) => {
                if p.members.is_empty() {
                    inputs.extend(self.push_input(path, *expected)?);
                }
                let mut members = Vec::with_capacity(p.members.len());
                for m in &p.members {
                    inputs.extend(self.push_input(&m.path, m.known)?);
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
                self.uploaded
                    .get(&(i.path.clone(), i.id))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        packs.sort();
        packs.dedup();
        Ok(Task {
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
        })
    }

    /// The result of `task`, if the worker wrote one.
    pub fn result(&self, task: &Id) -> Result<Option<TaskResult>> {
        Ok(self.remote.get_result(task)?)
    }

    /// Turn a result into an outcome, bringing the outputs into place; `job` names the
    /// cluster's job in an error (`Slurm job 12`).
    pub fn complete(&mut self, p: &Portable, r: &TaskResult, job: &str) -> Outcome {
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

    fn bring_back(&mut self, p: &Portable, r: &TaskResult, outcome: &mut Outcome) -> Result<()> {
        self.remote.extend_index(&mut self.idx, &r.packs)?;
        if let Some(id) = r.stdout {
            outcome.stdout = self.remote.read_file(&self.idx, id)?;
        }
        if let Some(id) = r.stderr {
            outcome.stderr = self.remote.read_file(&self.idx, id)?;
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
            self.remote.download_to(&self.idx, o.kind, o.id, &dest)?;
        }
        Ok(())
    }
}

/// A finished execution with where it ran: the start and host from the result when there is
/// one, else the time it was queued and `node`.
pub fn finished(
    outcome: Outcome,
    r: Option<&TaskResult>,
    placement: Placement,
    queued: chrono::DateTime<chrono::Utc>,
) -> Finished {
    let started = r
        .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.started).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or(queued);
    let mut placement = placement;
    if let Some(r) = r {
        placement.host = r.host.clone();
    }
    Finished {
        ticket: 0,
        outcome,
        started,
        placement: Some(placement),
    }
}
