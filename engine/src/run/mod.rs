//! `dvx run`: decide what is stale, restore what the run cache knows, execute the rest in
//! parallel, record every execution, and commit the outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dvx_store::lockfile::LockFile;
use dvx_store::object::EntryKind;
use dvx_store::worktree::{self, Flat};
use dvx_store::{Id, Progress, Repo, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::container::{self, Mount};
use crate::dag::{is_glob, Dag};
use crate::datum::{datums, Datum};
use crate::error::{EngineError, Result};
use crate::exec::{Children, Job, Outcome};
use crate::executor::{
    Cancel, Executor, Finished, Local, Placement, Portable, PortableStage, Routed, Submission,
    Ticket,
};
use crate::job::{self, ContainerOf, DatumIo, Recipe};
use crate::key::{self, ContainerKey, InputId};
use crate::params::stage_params;
use crate::pathindex::PathIndex;
use crate::record::{self, PathId, RunRecord};
use crate::spec::{self, ExecutorKind, Pipeline, Stage, PIPELINE_FILE};

mod jobs;
mod live;
mod lock;
mod merge;
mod outputs;
mod plan;
mod report;
mod schedule;
mod stage;
mod state;
mod table;

pub use live::{current as live_run, LiveExecution, LiveRun, LiveStage, LIVE_FILE};
use lock::locked_stages;
pub use lock::{LockedOut, LockedStage};
pub use report::{
    DatumCounts, Failure, RunOptions, RunSummary, StageReport, StageStatus, StageStatusReport,
};
use schedule::commit_message;
use state::{DatumRun, Done, Prepared, PreparedNotebook, RunState, StageState, Task};

/// The most executions at once (`-j`): each is a thread, and more would exhaust the system's.
pub const MAX_JOBS: usize = 1024;

/// Executions at once when the caller names no number: one per core, within [`MAX_JOBS`].
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(MAX_JOBS)
}

pub fn load_pipeline(root: &Path) -> Result<Pipeline> {
    let file = root.join(PIPELINE_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::NoPipeline(file))
        }
        Err(e) => return Err(StoreError::io(&file, e).into()),
    };
    spec::parse_bytes(Path::new(PIPELINE_FILE), &bytes)
}

fn input_id(f: &Option<Flat>) -> Option<InputId> {
    f.map(|f| InputId {
        kind: f.kind.as_str(),
        id: f.id,
    })
}

/// Bind mounts are written `HOST:TARGET[:ro]`: a path with `:` or `,` cannot be one.
fn check_mounts(s: &Stage, mounts: &[Mount]) -> Result<()> {
    for m in mounts {
        let host = m.host.to_string_lossy();
        if host.contains([':', ',']) {
            return Err(EngineError::Container {
                stage: s.name.clone(),
                message: format!(
                    "cannot mount {host} in a container: the path contains ':' or ','"
                ),
                hint: "move the project to a path without ':' or ','".into(),
            });
        }
    }
    Ok(())
}

pub struct Engine<'a> {
    pub repo: &'a Repo,
    pub pipeline: Pipeline,
    pub dag: Dag,
    locked: BTreeMap<String, LockedStage>,
    scratch: PathBuf,
    /// The code's git commit and who runs, taken once per run for every record.
    code: Option<dvx_store::object::GitInfo>,
    user: String,
    /// Container runtime and image ids, looked up once per run.
    containers: container::Resolver,
    /// Every stage's outputs, to tell quickly whether a path is produced.
    outs: PathIndex<()>,
    /// The trigger firing that started the run, for its records.
    trigger: Option<String>,
    /// The experiment this run belongs to, for its records.
    experiment: Option<record::ExperimentTag>,
    /// `RunOptions::adopt`: the executor the records name.
    adopt: Option<String>,
}

impl<'a> Engine<'a> {
    pub fn open(repo: &'a Repo) -> Result<Engine<'a>> {
        let pipeline = load_pipeline(&repo.root)?;
        let dag = Dag::build(&pipeline)?;
        let locked = locked_stages(&repo.root)?;
        let containers = container::Resolver::new(container::configured_runtime(repo)?);
        // Experiments run several engines in one process: each needs its own folder.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scratch = repo
            .tmp_dir()
            .join(format!("run-{}-{n}", std::process::id()));
        let pipeline_outs: Vec<String> = pipeline
            .stages
            .iter()
            .flat_map(|s| s.all_outs().map(|o| o.path.clone()))
            .collect();
        Ok(Engine {
            code: dvx_store::gitutil::git_info(&repo.root),
            user: repo.author().name,
            repo,
            pipeline,
            dag,
            locked,
            scratch,
            containers,
            outs: PathIndex::new(pipeline_outs.into_iter().map(|p| (p, ())).collect()),
            trigger: None,
            experiment: None,
            adopt: None,
        })
    }

    /// Run the pipeline (or `opts.targets`) on this machine, `opts.jobs` executions at once.
    pub fn run(
        &mut self,
        opts: &RunOptions,
        children: &Children,
        progress: &dyn Progress,
    ) -> Result<RunSummary> {
        let local = Local::new(opts.jobs.clamp(1, MAX_JOBS), children);
        let wanted = |kind: ExecutorKind| {
            // A dry run submits nothing: it needs no queue and no remote.
            !opts.dry_run
                && (opts.executor == Some(kind)
                    || self
                        .pipeline
                        .stages
                        .iter()
                        .any(|s| s.executor == Some(kind)))
        };
        let slurm = if wanted(ExecutorKind::Slurm) {
            Some(crate::executor::slurm::Slurm::new(self.repo)?)
        } else {
            None
        };
        let ray = if wanted(ExecutorKind::Ray) {
            Some(crate::executor::ray::Ray::new(self.repo)?)
        } else {
            None
        };
        let kubernetes = if wanted(ExecutorKind::Kubernetes) {
            Some(crate::executor::kubernetes::Kubernetes::new(self.repo)?)
        } else {
            None
        };
        let routed = Routed {
            local: &local,
            slurm: slurm.as_ref().map(|s| s as &dyn Executor),
            ray: ray.as_ref().map(|r| r as &dyn Executor),
            kubernetes: kubernetes.as_ref().map(|k| k as &dyn Executor),
            default: opts.executor.unwrap_or(ExecutorKind::Local),
        };
        self.run_on(opts, &routed, children, progress)
    }

    /// Run the pipeline with `exec` executing what is stale. `children` tells whether the
    /// user interrupted (Ctrl-C).
    pub fn run_on(
        &mut self,
        opts: &RunOptions,
        exec: &dyn Executor,
        children: &Children,
        progress: &dyn Progress,
    ) -> Result<RunSummary> {
        let t0 = Instant::now();
        self.trigger = opts.trigger.clone();
        self.experiment = opts.experiment.clone();
        self.adopt = opts.adopt.clone();
        let selected = self
            .dag
            .select(&self.pipeline, &opts.targets, opts.downstream)?;
        let mut run = RunState::new(self.pipeline.stages.len());
        let _ = std::fs::create_dir_all(&self.scratch);
        let result = self.schedule(opts, &selected, &mut run, exec, children, progress);
        if !opts.dry_run {
            self.unpublish();
        }
        if result.is_err() {
            // Nothing more starts; what runs is stopped rather than left behind.
            exec.cancel(Cancel::Everything);
        }
        result?;
        let _ = std::fs::remove_dir_all(&self.scratch);
        if !opts.dry_run {
            self.commit_run(opts, &mut run, progress)?;
        }
        let mut summary = run.summary;
        summary.wall_ms = t0.elapsed().as_millis() as u64;
        if children.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        Ok(summary)
    }

    /// One commit for the run (every stored output, and the records of this run), then
    /// dvx.lock.
    fn commit_run(
        &mut self,
        opts: &RunOptions,
        run: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut paths = std::mem::take(&mut run.commit_paths);
        if !paths.is_empty() || !run.runs_made.is_empty() {
            paths.sort();
            paths.dedup();
            let existing: Vec<String> = paths
                .into_iter()
                .filter(|p| self.repo.root.join(p).symlink_metadata().is_ok())
                .collect();
            let msg = opts
                .message
                .clone()
                .unwrap_or_else(|| commit_message(&run.summary.stages));
            if !existing.is_empty() || !run.runs_made.is_empty() {
                let rep = self.repo.commit_paths(
                    &existing,
                    &run.written,
                    msg,
                    run.runs_made.clone(),
                    progress,
                )?;
                run.summary.commit = rep.commit;
            }
        }
        if !run.new_locks.is_empty() {
            self.write_stage_locks(std::mem::take(&mut run.new_locks))?;
        }
        Ok(())
    }

    /// What `dvx run` would do, stage by stage, without running anything.
    pub fn status(&mut self, progress: &dyn Progress) -> Result<StageStatusReport> {
        let opts = RunOptions {
            dry_run: true,
            jobs: 1,
            ..Default::default()
        };
        let summary = self.run(&opts, &Children::default(), progress)?;
        Ok(StageStatusReport {
            stages: summary.stages,
            warnings: summary.warnings,
        })
    }

    /// The datums a stage's input glob yields now.
    pub fn datums(&self, name: &str, progress: &dyn Progress) -> Result<Vec<Datum>> {
        let s = self
            .pipeline
            .stage(name)
            .ok_or_else(|| EngineError::UnknownStage(name.into()))?;
        let input = s.input.as_ref().ok_or_else(|| EngineError::Failed {
            stage: name.into(),
            datum: None,
            message: "has no `input` glob, so it has no datums".into(),
        })?;
        let folders: Vec<String> = input.folders().into_iter().map(String::from).collect();
        let files = self.repo.workspace(&folders, progress)?;
        datums(s, input, &files)
    }
}
