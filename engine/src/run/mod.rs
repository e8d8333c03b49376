//! `dvx run`: decide what is stale, restore what the run cache knows, execute the rest in
//! parallel, record every execution, and commit the outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Condvar, Mutex};
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
use crate::exec::{self, Children, Job, Outcome};
use crate::job::{self, ContainerOf, DatumIo, Recipe};
use crate::key::{self, ContainerKey, InputId};
use crate::params::stage_params;
use crate::pathindex::PathIndex;
use crate::record::{self, PathId, RunRecord};
use crate::spec::{self, Pipeline, Stage, PIPELINE_FILE};

mod jobs;
mod lock;
mod outputs;
mod plan;
mod report;
mod stage;

use lock::locked_stages;
pub use lock::{LockedOut, LockedStage};
pub use report::{DatumCounts, Failure, RunOptions, RunSummary, StageReport, StageStatus, Warning};

/// Run `f`, turning a panic into `None`: a worker that died without reporting its task would
/// leave the run waiting for it forever, holding the writer lock.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// The outcome of an execution whose worker panicked (a bug in dvx, reported as a failure).
fn panicked() -> crate::exec::Outcome {
    crate::exec::Outcome {
        exit: None,
        error: Some("internal error: dvx's worker panicked while running it".into()),
        duration: Duration::ZERO,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

/// The most executions at once (`-j`): each is a thread, and more would exhaust the system's.
pub const MAX_JOBS: usize = 1024;

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

/// A stage after looking at the workspace: its key(s) and what must happen.
struct Prepared {
    deps: BTreeMap<String, Option<InputId>>,
    /// Bytes of each dep (a folder: all its files), for run records.
    dep_sizes: BTreeMap<String, u64>,
    /// The files inside folder deps, for the lineage index.
    dep_files: BTreeMap<String, Flat>,
    params: BTreeMap<String, Value>,
    key: Id,
    datums: Vec<(Datum, Id)>,
    reasons: Vec<String>,
    up_to_date: bool,
}

struct Task {
    stage: usize,
    datum: Option<(Datum, Id)>,
    job: Job,
    out_dir: Option<PathBuf>,
    key: Id,
    retries: u32,
    /// Datums run together in one container (`batch:`); each keeps its own task for its
    /// record and for retries, which run it alone.
    batch: Vec<Task>,
}

impl Task {
    /// How many executions (records) the task yields.
    fn executions(&self) -> usize {
        self.batch.len().max(1)
    }
}

/// Run a task's job until it succeeds or its retries are spent; `first` is an outcome
/// already had (a batch member's), counted as attempt `attempt`.
fn attempts(
    task: &Task,
    children: &Children,
    mut attempt: u32,
    mut first: Option<Outcome>,
) -> (Outcome, u32) {
    loop {
        let o = match first.take() {
            Some(o) => o,
            None => {
                if let (Some(o), true) = (&task.out_dir, attempt > 0) {
                    // A retry starts from an empty output folder again.
                    let _ = std::fs::remove_dir_all(o);
                    let _ = std::fs::create_dir_all(o);
                }
                exec::run(&task.job, children)
            }
        };
        if o.exit == Some(0) || attempt >= task.retries || children.is_cancelled() {
            return (o, attempt);
        }
        attempt += 1;
    }
}

struct Done {
    task: Task,
    outcome: Outcome,
    attempt: u32,
    start: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct StageState {
    pending: usize,
    records: Vec<(Option<String>, Id, RunRecord)>,
    failed: bool,
    report: Option<StageReport>,
    /// `--datum`: one datum ran for debugging; the stage's outputs are left as they were.
    debug_only: bool,
    /// Output folders of datums executed in this run (datum id -> scratch folder): their
    /// files can be moved into place instead of being written again from the store.
    fresh_dirs: HashMap<String, PathBuf>,
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
}

impl<'a> Engine<'a> {
    pub fn open(repo: &'a Repo) -> Result<Engine<'a>> {
        let pipeline = load_pipeline(&repo.root)?;
        let dag = Dag::build(&pipeline)?;
        let locked = locked_stages(&repo.root)?;
        let containers = container::Resolver::new(container::configured_runtime(repo)?);
        let scratch = repo.tmp_dir().join(format!("run-{}", std::process::id()));
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
        })
    }

    /// Run the pipeline (or `opts.targets`).
    pub fn run(
        &mut self,
        opts: &RunOptions,
        children: &Children,
        progress: &dyn Progress,
    ) -> Result<RunSummary> {
        let t0 = Instant::now();
        let selected = self
            .dag
            .select(&self.pipeline, &opts.targets, opts.downstream)?;
        let mut is_selected = vec![false; self.pipeline.stages.len()];
        for &i in &selected {
            is_selected[i] = true;
        }
        let mut summary = RunSummary::default();
        let mut states: Vec<StageState> = (0..self.pipeline.stages.len())
            .map(|_| StageState::default())
            .collect();
        let mut started: BTreeSet<usize> = BTreeSet::new();
        let mut finished: BTreeMap<usize, bool> = BTreeMap::new();
        let mut prepared: HashMap<usize, Prepared> = HashMap::new();
        let mut runs_made: Vec<Id> = Vec::new();
        let mut new_locks: BTreeMap<String, LockedStage> = BTreeMap::new();
        let mut commit_paths: Vec<String> = Vec::new();
        let _ = std::fs::create_dir_all(&self.scratch);

        let queue: Mutex<(VecDeque<Task>, bool)> = Mutex::new((VecDeque::new(), false));
        let ready = Condvar::new();
        let (tx, rx) = mpsc::channel::<Done>();
        // Each job is a thread; past the cap the system refuses threads (and spawn panics).
        let jobs = opts.jobs.clamp(1, MAX_JOBS);
        let mut task_n = 0usize;
        let mut stop = false;

        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..jobs {
                let tx = tx.clone();
                let (queue, ready) = (&queue, &ready);
                scope.spawn(move || loop {
                    let task = {
                        let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if let Some(t) = g.0.pop_front() {
                                break Some(t);
                            }
                            if g.1 {
                                break None;
                            }
                            g = ready.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let Some(mut task) = task else { return };
                    let start = chrono::Utc::now();
                    let results = match (&task.job.container, task.batch.is_empty()) {
                        (Some(spec), false) => {
                            let n = task.batch.len();
                            let outcomes =
                                guarded(|| container::run_batch(&task.job, spec, children))
                                    .unwrap_or_else(|| (0..n).map(|_| panicked()).collect());
                            std::mem::take(&mut task.batch)
                                .into_iter()
                                .zip(outcomes)
                                .map(|(member, o)| {
                                    let (o, a) =
                                        guarded(|| attempts(&member, children, 0, Some(o)))
                                            .unwrap_or_else(|| (panicked(), 0));
                                    (member, o, a)
                                })
                                .collect()
                        }
                        _ => {
                            let (o, a) = guarded(|| attempts(&task, children, 0, None))
                                .unwrap_or_else(|| (panicked(), 0));
                            vec![(task, o, a)]
                        }
                    };
                    for (task, outcome, attempt) in results {
                        if tx
                            .send(Done {
                                task,
                                outcome,
                                attempt,
                                start,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
            drop(tx);

            let result = (|| -> Result<()> {
                let mut open_txn: Option<dvx_store::store::Txn> = None;
                let mut txn_since = Instant::now();
                loop {
                    // Start every stage whose inputs are ready.
                    if !stop {
                        for &i in &selected {
                            if started.contains(&i) {
                                continue;
                            }
                            let needs = &self.dag.needs[i];
                            let needed_selected: Vec<usize> =
                                needs.iter().copied().filter(|j| is_selected[*j]).collect();
                            if needed_selected
                                .iter()
                                .any(|j| finished.get(j) == Some(&false))
                            {
                                started.insert(i);
                                finished.insert(i, false);
                                summary.stages.push(StageReport {
                                    stage: self.pipeline.stages[i].name.clone(),
                                    state: StageStatus::Blocked,
                                    reasons: vec!["an upstream stage failed".into()],
                                    datums: None,
                                    runs: vec![],
                                });
                                continue;
                            }
                            if !needed_selected.iter().all(|j| finished.contains_key(j)) {
                                continue;
                            }
                            started.insert(i);
                            if opts.dry_run {
                                // Upstream work that would run changes this stage's inputs too.
                                let stale_up: Vec<&str> = needed_selected
                                    .iter()
                                    .filter(|j| {
                                        summary.stages.iter().any(|r| {
                                            r.stage == self.pipeline.stages[**j].name
                                                && (r.state == StageStatus::Stale
                                                    || r.state == StageStatus::Restored)
                                        })
                                    })
                                    .map(|j| self.pipeline.stages[*j].name.as_str())
                                    .collect();
                                if !stale_up.is_empty() {
                                    finished.insert(i, true);
                                    summary.stages.push(StageReport {
                                        stage: self.pipeline.stages[i].name.clone(),
                                        state: StageStatus::Stale,
                                        reasons: vec![format!(
                                            "upstream {} would change",
                                            stale_up.join(", ")
                                        )],
                                        datums: None,
                                        runs: vec![],
                                    });
                                    continue;
                                }
                            }
                            let n = self.start_stage(
                                i,
                                opts,
                                &mut states[i],
                                &mut summary,
                                &mut new_locks,
                                &mut commit_paths,
                                &queue,
                                &ready,
                                &mut task_n,
                                &mut runs_made,
                                progress,
                            )?;
                            if let Some(p) = n {
                                prepared.insert(i, p);
                            } else {
                                finished.insert(i, !states[i].failed);
                            }
                        }
                    }
                    let running = started.iter().filter(|i| !finished.contains_key(i)).count();
                    if running == 0 {
                        break;
                    }
                    // Wait for results, with a tick for timeouts.
                    let first = match rx.recv_timeout(Duration::from_millis(100)) {
                        Ok(d) => d,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            children.reap_overdue();
                            if txn_since.elapsed() >= Duration::from_millis(250) {
                                if let Some(t) = open_txn.take() {
                                    t.commit()?;
                                }
                            }
                            if children.is_cancelled() {
                                stop = true;
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let mut batch = vec![first];
                    while let Ok(d) = rx.try_recv() {
                        batch.push(d);
                    }
                    // Results are recorded in one transaction for up to a quarter second: an
                    // fsync per finished execution would cost more than a trivial datum.
                    if open_txn.is_none() {
                        open_txn = Some(self.repo.store.txn()?);
                        txn_since = Instant::now();
                    }
                    let Some(txn) = open_txn.as_ref() else {
                        continue;
                    };
                    let mut completed_stages = Vec::new();
                    for done in batch {
                        let i = done.task.stage;
                        summary.task_ms += done.outcome.duration.as_millis() as u64;
                        let (rid, rec) = self.record(txn, &done, prepared.get(&i), progress)?;
                        runs_made.push(rid);
                        summary.note_warnings(rid, &rec);
                        let st = &mut states[i];
                        st.pending -= 1;
                        progress.inc(1);
                        if rec.ok() {
                            summary.executed += 1;
                        } else {
                            summary.failed += 1;
                            st.failed = true;
                            summary.failures.push(Failure {
                                stage: rec.stage.clone(),
                                datum: rec.datum.clone(),
                                run: Some(rid),
                                error: rec.error.clone().unwrap_or_default(),
                                stderr_tail: done.outcome.stderr_tail(10),
                            });
                            if !opts.keep_going {
                                stop = true;
                            }
                        }
                        if let Some(r) = st.report.as_mut() {
                            r.runs.push(rid);
                            if let Some(d) = r.datums.as_mut() {
                                if rec.ok() {
                                    d.executed += 1;
                                } else {
                                    d.failed += 1;
                                }
                            }
                        }
                        if let (Some((d, _)), Some(dir), true) =
                            (&done.task.datum, &done.task.out_dir, rec.ok())
                        {
                            st.fresh_dirs.insert(d.id.clone(), dir.clone());
                        }
                        st.records.push((
                            done.task.datum.as_ref().map(|(d, _)| d.id.clone()),
                            rid,
                            rec,
                        ));
                        if st.pending == 0 {
                            completed_stages.push(i);
                        }
                    }
                    // Finishing a stage reads what was just stored, so commit first then.
                    if !completed_stages.is_empty()
                        || stop
                        || txn_since.elapsed() >= Duration::from_millis(250)
                    {
                        if let Some(t) = open_txn.take() {
                            t.commit()?;
                        }
                    }
                    if stop {
                        // Nothing new starts; what runs finishes (or is killed on Ctrl-C).
                        let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let dropped: Vec<Task> = g.0.drain(..).collect();
                        drop(g);
                        for t in dropped {
                            states[t.stage].pending -= t.executions();
                            states[t.stage].failed = true;
                            if states[t.stage].pending == 0 && !completed_stages.contains(&t.stage)
                            {
                                completed_stages.push(t.stage);
                            }
                        }
                    }
                    if !completed_stages.is_empty() {
                        if let Some(t) = open_txn.take() {
                            t.commit()?;
                        }
                    }
                    for i in completed_stages {
                        let ok = self.finish_stage(
                            i,
                            &mut states[i],
                            prepared.get(&i),
                            &mut new_locks,
                            &mut commit_paths,
                            progress,
                        )?;
                        finished.insert(i, ok);
                        if let Some(r) = states[i].report.take() {
                            summary.stages.push(r);
                        }
                    }
                }
                if let Some(t) = open_txn.take() {
                    t.commit()?;
                }
                Ok(())
            })();
            {
                let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
                g.1 = true;
                g.0.clear();
            }
            ready.notify_all();
            result
        })?;

        let _ = std::fs::remove_dir_all(&self.scratch);
        // One commit for the run: every stored output, and the records of this run.
        if !opts.dry_run && (!commit_paths.is_empty() || !runs_made.is_empty()) {
            commit_paths.sort();
            commit_paths.dedup();
            let existing: Vec<String> = commit_paths
                .into_iter()
                .filter(|p| self.repo.root.join(p).symlink_metadata().is_ok())
                .collect();
            let names: Vec<&str> = summary
                .stages
                .iter()
                .filter(|s| s.state == StageStatus::Executed || s.state == StageStatus::Restored)
                .map(|s| s.stage.as_str())
                .collect();
            let failed: Vec<&str> = summary
                .stages
                .iter()
                .filter(|s| s.state == StageStatus::Failed)
                .map(|s| s.stage.as_str())
                .collect();
            let mut what = names.join(", ");
            if !failed.is_empty() {
                let sep = if what.is_empty() { "" } else { "; " };
                what = format!("{what}{sep}failed {}", failed.join(", "));
            }
            let msg = opts.message.clone().unwrap_or_else(|| {
                format!(
                    "dvx run: {}",
                    if what.is_empty() {
                        "no stage changed".to_string()
                    } else {
                        what
                    }
                )
            });
            if !existing.is_empty() || !runs_made.is_empty() {
                let rep = self
                    .repo
                    .commit_paths(&existing, msg, runs_made.clone(), progress)?;
                summary.commit = rep.commit;
            }
        }
        if !opts.dry_run && !new_locks.is_empty() {
            self.write_stage_locks(new_locks)?;
        }
        summary.wall_ms = t0.elapsed().as_millis() as u64;
        if children.is_cancelled() {
            return Err(EngineError::Interrupted);
        }
        Ok(summary)
    }

    /// What `dvx run` would do, stage by stage, without running anything.
    pub fn status(&mut self, progress: &dyn Progress) -> Result<Vec<StageReport>> {
        let opts = RunOptions {
            dry_run: true,
            jobs: 1,
            ..Default::default()
        };
        Ok(self.run(&opts, &Children::default(), progress)?.stages)
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
