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

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub targets: Vec<String>,
    pub jobs: usize,
    pub force: bool,
    pub dry_run: bool,
    pub keep_going: bool,
    pub downstream: bool,
    pub datum: Option<String>,
    pub message: Option<String>,
    pub no_run_cache: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DatumCounts {
    pub total: u64,
    pub executed: u64,
    pub restored: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub state: StageStatus,
    pub reasons: Vec<String>,
    pub datums: Option<DatumCounts>,
    pub runs: Vec<Id>,
}

/// What a run did with a stage (or, in a dry run or `status`, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Up to date: nothing to do.
    #[default]
    Skipped,
    /// Its results came from the run cache.
    Restored,
    Executed,
    Failed,
    /// `frozen: true` in dvx.yaml: never run.
    Frozen,
    /// An upstream stage failed.
    Blocked,
    /// Would execute (a dry run, or `status`).
    Stale,
}

impl StageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StageStatus::Skipped => "skipped",
            StageStatus::Restored => "restored",
            StageStatus::Executed => "executed",
            StageStatus::Failed => "failed",
            StageStatus::Frozen => "frozen",
            StageStatus::Blocked => "blocked",
            StageStatus::Stale => "stale",
        }
    }

    /// A run would change something: execute it or restore it.
    pub fn is_stale(self) -> bool {
        !matches!(self, StageStatus::Skipped | StageStatus::Frozen)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub stage: String,
    pub datum: Option<String>,
    pub run: Option<Id>,
    pub error: String,
    pub stderr_tail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RunSummary {
    pub executed: u64,
    pub restored: u64,
    pub skipped: u64,
    pub failed: u64,
    pub wall_ms: u64,
    pub task_ms: u64,
    pub commit: Option<Id>,
    pub stages: Vec<StageReport>,
    pub failures: Vec<Failure>,
}

/// What dvx.lock remembers of a stage's last successful run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockedStage {
    pub cmd: Vec<String>,
    pub deps: BTreeMap<String, Option<InputId>>,
    pub key: Id,
    pub outs: BTreeMap<String, Option<LockedOut>>,
    pub params: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datums: Option<u64>,
    /// Container stages: the image that ran (`NAME@sha256:ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedOut {
    pub kind: String,
    pub id: Id,
    pub size: u64,
}

impl<'de> Deserialize<'de> for InputId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            kind: String,
            id: Id,
        }
        let r = Raw::deserialize(d)?;
        let kind = match r.kind.as_str() {
            "file" => "file",
            "dir" => "dir",
            "symlink" => "symlink",
            _ => return Err(serde::de::Error::custom("unknown kind")),
        };
        Ok(InputId { kind, id: r.id })
    }
}

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

fn locked_stages(root: &Path) -> Result<BTreeMap<String, LockedStage>> {
    Ok(LockFile::read(root)?
        .and_then(|l| l.other.get("stages").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
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

    /// Paths a stage's deps name, with globs expanded against the workspace.
    fn dep_paths(&self, s: &Stage) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for d in &s.deps {
            if is_glob(d) {
                let pattern = self.repo.root.join(d).to_string_lossy().into_owned();
                let matches = glob::glob(&pattern).map_err(|e| EngineError::Failed {
                    stage: s.name.clone(),
                    datum: None,
                    message: format!("dep glob {d:?} is not valid: {e}"),
                })?;
                let mut any = false;
                for m in matches.flatten() {
                    if let Ok(rel) = m.strip_prefix(&self.repo.root) {
                        out.push(rel.to_string_lossy().into_owned());
                        any = true;
                    }
                }
                if !any {
                    eprintln!("warning: stage {}: dep glob {d:?} matches nothing", s.name);
                }
            } else {
                out.push(d.clone());
            }
        }
        out.sort();
        out.dedup();
        for d in &out {
            crate::confine::check_dep(&self.repo.root, s, d)?;
        }
        Ok(out)
    }

    fn produced(&self, path: &str) -> bool {
        self.outs.overlapping(path).next().is_some()
    }

    fn prepare(&self, i: usize, opts: &RunOptions, progress: &dyn Progress) -> Result<Prepared> {
        let s = &self.pipeline.stages[i];
        let dep_paths = self.dep_paths(s)?;
        let (ids, dep_files) = self.repo.path_entries(&dep_paths, true, progress)?;
        for (p, f) in &ids {
            if f.is_none() && !self.produced(p) {
                let at = s
                    .deps
                    .iter()
                    .position(|d| d == p)
                    .and_then(|k| s.dep_at.get(k))
                    .copied()
                    .unwrap_or(s.at);
                return Err(EngineError::spec(
                    Path::new(PIPELINE_FILE),
                    at.line,
                    at.column,
                    format!(
                        "stage `{}`: dependency `{p}` does not exist and no stage produces it",
                        s.name
                    ),
                ));
            }
        }
        let deps: BTreeMap<String, Option<InputId>> =
            ids.iter().map(|(p, f)| (p.clone(), input_id(f))).collect();
        let params = stage_params(&self.repo.root, s)?;
        let container = self.container_key(s)?;
        let mut datum_keys = Vec::new();
        if let Some(input) = &s.input {
            let files = self
                .repo
                .workspace(std::slice::from_ref(&input.path), progress)?;
            if !files.contains_key(&input.path) && !self.produced(&input.path) {
                return Err(EngineError::spec(
                    Path::new(PIPELINE_FILE),
                    s.at.line,
                    s.at.column,
                    format!(
                        "stage `{}`: input `{}` does not exist and no stage produces it",
                        s.name, input.path
                    ),
                ));
            }
            for d in datums(s, input, &files)? {
                let k = key::key_with(
                    s,
                    &deps,
                    &params,
                    Some((d.id.as_str(), &d.input)),
                    container.as_ref(),
                );
                datum_keys.push((d, k));
            }
            if datum_keys.is_empty() {
                eprintln!(
                    "warning: stage {}: input glob {:?} over {} matches nothing",
                    s.name, input.glob, input.path
                );
            }
        }
        let key = if s.input.is_some() {
            key::combine(&datum_keys.iter().map(|(_, k)| *k).collect::<Vec<_>>())
        } else {
            key::key_with(s, &deps, &params, None, container.as_ref())
        };
        let mut reasons = Vec::new();
        match self.locked.get(&s.name) {
            None => reasons.push("never ran".to_string()),
            Some(l) => {
                if l.cmd != s.cmd {
                    reasons.push("command changed".into());
                }
                let image_now = self.pinned_image(s);
                let id_of = |p: &Option<String>| {
                    p.as_ref()
                        .and_then(|p| p.rsplit('@').next().map(String::from))
                };
                if id_of(&l.image) != id_of(&image_now) {
                    reasons.push(match (&l.image, &image_now) {
                        (Some(old), Some(now)) => format!("image changed ({old} -> {now})"),
                        (None, Some(now)) => format!("now runs in {now}"),
                        _ => "no longer runs in a container".into(),
                    });
                }
                for (p, id) in &deps {
                    if l.deps.get(p) != Some(id) {
                        reasons.push(format!("dep {p} changed"));
                    }
                }
                for p in l.deps.keys().filter(|p| !deps.contains_key(*p)) {
                    reasons.push(format!("dep {p} removed"));
                }
                for (k, v) in &params {
                    match l.params.get(k) {
                        Some(old) if old == v => {}
                        Some(old) => reasons.push(format!("param {k} changed ({old} -> {v})")),
                        None => reasons.push(format!("param {k} added")),
                    }
                }
                if let (Some(n), true) = (l.datums, s.input.is_some()) {
                    if l.key != key {
                        let now = datum_keys.len() as u64;
                        reasons.push(if n == now {
                            "datum inputs changed".to_string()
                        } else {
                            format!("datums changed ({n} before, {now} now)")
                        });
                    }
                }
                if reasons.is_empty() && l.key != key {
                    reasons.push("definition changed".into());
                }
                if reasons.is_empty() {
                    // Same inputs: are the outputs still what the run made?
                    let outs: Vec<String> = s.all_outs().map(|o| o.path.clone()).collect();
                    let now = self.repo.path_ids(&outs, progress)?;
                    for (p, f) in &now {
                        let was = l.outs.get(p).cloned().flatten();
                        let same = match (f, &was) {
                            (Some(f), Some(w)) => f.id == w.id && f.kind.as_str() == w.kind,
                            (None, None) => true,
                            _ => false,
                        };
                        if !same {
                            reasons.push(format!(
                                "output {p} {}",
                                if f.is_none() { "missing" } else { "modified" }
                            ));
                        }
                    }
                }
            }
        }
        if s.always_changed {
            reasons.push("always_changed".into());
        }
        if opts.force {
            reasons.push("--force".into());
        }
        if opts.datum.is_some() && s.input.is_some() {
            reasons.push("--datum".into());
        }
        Ok(Prepared {
            up_to_date: reasons.is_empty(),
            dep_files,
            dep_sizes: ids
                .iter()
                .map(|(p, f)| (p.clone(), f.map_or(0, |f| f.size)))
                .collect(),
            deps,
            params,
            key,
            datums: datum_keys,
            reasons,
        })
    }

    /// Restore a stage's outputs from stored runs: `want` maps each out path to its entry.
    fn restore(
        &self,
        want_entries: &BTreeMap<String, Option<Flat>>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut want = BTreeMap::new();
        for (p, f) in want_entries {
            if let Some(f) = f {
                want.insert(p.clone(), *f);
                if f.kind == EntryKind::Dir {
                    worktree::flatten(&self.repo.store, &f.id, p, &mut want)?;
                }
            }
        }
        let roots: Vec<String> = want_entries.keys().cloned().collect();
        let work = self.repo.workspace(&roots, progress)?;
        let applied = self.repo.apply(&want, &work, progress)?;
        let txn = self.repo.store.txn()?;
        for (p, e) in &applied.cache {
            txn.put(dvx_store::db::CF_STAT, p.as_bytes(), &e.encode());
        }
        txn.commit()?;
        Ok(())
    }

    fn outputs_of(r: &RunRecord) -> BTreeMap<String, Option<Flat>> {
        r.outputs
            .iter()
            .map(|o| {
                let kind = o.kind;
                (
                    o.path.clone(),
                    Some(Flat {
                        kind,
                        mode: match (kind, o.mode) {
                            (EntryKind::Dir, _) => 0o755,
                            (_, Some(m)) => m,
                            (_, None) => 0o644,
                        },
                        size: o.size,
                        id: o.id,
                    }),
                )
            })
            .collect()
    }

    /// Merge datum output trees into the stage's out folder; two datums writing one path is an
    /// error naming both.
    fn merge_datums(
        &self,
        s: &Stage,
        records: &[(Option<String>, Id, RunRecord)],
    ) -> Result<BTreeMap<String, Flat>> {
        let out_path = s
            .outs
            .iter()
            .find(|o| o.cache)
            .map(|o| o.path.clone())
            .unwrap_or_default();
        let mut merged: BTreeMap<String, Flat> = BTreeMap::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        merged.insert(
            out_path.clone(),
            Flat {
                kind: EntryKind::Dir,
                mode: 0o755,
                size: 0,
                id: Id([0; 32]),
            },
        );
        for (datum, _, r) in records {
            let Some(tree) = r.outputs.first() else {
                continue;
            };
            let mut flat = BTreeMap::new();
            worktree::flatten(&self.repo.store, &tree.id, &out_path, &mut flat)?;
            for (p, f) in flat {
                let who = datum.clone().unwrap_or_default();
                if let Some(prev) = owner.get(&p) {
                    if f.kind != EntryKind::Dir
                        || merged.get(&p).is_some_and(|m| m.kind != EntryKind::Dir)
                    {
                        return Err(EngineError::Failed {
                            stage: s.name.clone(),
                            datum: None,
                            message: format!("datums {prev} and {who} both wrote {p}"),
                        });
                    }
                }
                owner.insert(p.clone(), who);
                merged.insert(p, f);
            }
        }
        Ok(merged)
    }

    /// What a container stage's key takes from its image (None for other stages).
    fn container_key(&self, s: &Stage) -> Result<Option<ContainerKey>> {
        let Some(reference) = &s.image else {
            return Ok(None);
        };
        let (_, image) = self.containers.resolve(&s.name, reference)?;
        Ok(Some(ContainerKey {
            image: image.id,
            network: s.network,
        }))
    }

    /// `NAME@sha256:ID` of a container stage's image, once resolved in this run.
    fn pinned_image(&self, s: &Stage) -> Option<String> {
        let reference = s.image.as_ref()?;
        self.containers
            .resolve(&s.name, reference)
            .ok()
            .map(|(_, i)| i.pinned())
    }

    /// The container a stage runs in, if it names an image.
    fn container_of(&self, s: &Stage) -> Result<Option<ContainerOf>> {
        let Some(reference) = &s.image else {
            return Ok(None);
        };
        let (runtime, image) = self.containers.resolve(&s.name, reference)?;
        Ok(Some(ContainerOf {
            runtime,
            image,
            network: s.network,
            resources: s.resources.clone(),
        }))
    }

    fn recipe<'s>(&'s self, s: &'s Stage) -> Recipe<'s> {
        Recipe {
            stage: &s.name,
            cmds: &s.cmd,
            env: &s.env,
            root: &self.repo.root,
            wdir: &s.wdir,
            timeout: s.timeout.map(Duration::from_secs),
        }
    }

    /// One job for several datums of a container stage, run in one container.
    fn batch_task(
        &self,
        s: &Stage,
        i: usize,
        members: Vec<Task>,
        log_dir: PathBuf,
    ) -> Result<Task> {
        let Some(image) = self.container_of(s)? else {
            return Err(EngineError::Failed {
                stage: s.name.clone(),
                datum: None,
                message: "batch needs an image".into(),
            });
        };
        let mut job = self.recipe(s).build(None, &[], Some(image));
        let root = &self.repo.root;
        let Some(spec) = job.container.as_mut() else {
            return Err(EngineError::Failed {
                stage: s.name.clone(),
                datum: None,
                message: "batch needs an image".into(),
            });
        };
        spec.mounts = vec![
            Mount::ro(root.clone(), container::WORK),
            Mount::rw(log_dir.clone(), "/dvx/log"),
        ];
        for (k, m) in members.iter().enumerate() {
            let (Some((d, _)), Some(out)) = (&m.datum, &m.out_dir) else {
                continue;
            };
            let (input, output) = (
                format!("{}/{k}", container::IN),
                format!("{}/{k}", container::OUT),
            );
            spec.mounts
                .push(Mount::ro(root.join(&d.path), input.clone()));
            spec.mounts.push(Mount::rw(out.clone(), output.clone()));
            spec.batch.push(container::BatchDatum {
                id: d.id.clone(),
                cmds: job::template(&s.cmd, &input, &output),
            });
        }
        check_mounts(s, &spec.mounts)?;
        spec.log_dir = Some(log_dir);
        Ok(Task {
            stage: i,
            datum: None,
            job,
            out_dir: None,
            key: members.first().map(|m| m.key).unwrap_or(Id([0; 32])),
            retries: s.retries,
            batch: members,
        })
    }

    fn job_for(&self, s: &Stage, datum: Option<&Datum>, out_dir: Option<&Path>) -> Result<Job> {
        let io = datum.zip(out_dir).map(|(d, o)| DatumIo {
            id: &d.id,
            input: self.repo.root.join(&d.path),
            output: o.to_path_buf(),
        });
        let outs: Vec<&str> = s.all_outs().map(|o| o.path.as_str()).collect();
        let job = self.recipe(s).build(io, &outs, self.container_of(s)?);
        if let Some(c) = &job.container {
            check_mounts(s, &c.mounts)?;
        }
        Ok(job)
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

    fn write_stage_locks(&mut self, new: BTreeMap<String, LockedStage>) -> Result<()> {
        let Some(mut lock) = LockFile::read(&self.repo.root)? else {
            return Ok(());
        };
        let mut all = self.locked.clone();
        all.extend(new);
        // Forget stages that are no longer in dvx.yaml.
        let names: std::collections::HashSet<&str> = self
            .pipeline
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        all.retain(|k, _| names.contains(k.as_str()));
        lock.other.insert(
            "stages".into(),
            serde_json::to_value(&all).unwrap_or(Value::Null),
        );
        lock.write(&self.repo.root, &self.repo.tmp_dir())?;
        self.locked = all;
        Ok(())
    }

    fn locked_entry(
        &self,
        s: &Stage,
        p: &Prepared,
        outs: &BTreeMap<String, Option<Flat>>,
    ) -> LockedStage {
        LockedStage {
            cmd: s.cmd.clone(),
            deps: p.deps.clone(),
            key: p.key,
            outs: outs
                .iter()
                .map(|(k, f)| {
                    (
                        k.clone(),
                        f.map(|f| LockedOut {
                            kind: f.kind.as_str().into(),
                            id: f.id,
                            size: f.size,
                        }),
                    )
                })
                .collect(),
            params: p.params.clone(),
            datums: s.input.as_ref().map(|_| p.datums.len() as u64),
            image: self.pinned_image(s),
        }
    }

    /// Decide a stage: skip, restore, or queue its executions. Returns the preparation when
    /// tasks were queued (the stage finishes later), or None when it is done now.
    #[allow(clippy::too_many_arguments)]
    fn start_stage(
        &self,
        i: usize,
        opts: &RunOptions,
        st: &mut StageState,
        summary: &mut RunSummary,
        new_locks: &mut BTreeMap<String, LockedStage>,
        commit_paths: &mut Vec<String>,
        queue: &Mutex<(VecDeque<Task>, bool)>,
        ready: &Condvar,
        task_n: &mut usize,
        restored_runs: &mut Vec<Id>,
        progress: &dyn Progress,
    ) -> Result<Option<Prepared>> {
        let s = &self.pipeline.stages[i];
        let mut report = StageReport {
            stage: s.name.clone(),
            state: StageStatus::default(),
            reasons: vec![],
            datums: s.input.as_ref().map(|_| DatumCounts::default()),
            runs: vec![],
        };
        // Before anything of the stage is read, deleted or run.
        crate::confine::check_stage(&self.repo.root, s)?;
        if s.frozen && !opts.force {
            report.state = StageStatus::Frozen;
            summary.skipped += 1;
            summary.stages.push(report);
            return Ok(None);
        }
        let p = self.prepare(i, opts, progress)?;
        report.reasons = p.reasons.clone();
        if let Some(d) = report.datums.as_mut() {
            d.total = p.datums.len() as u64;
        }
        if p.up_to_date {
            report.state = StageStatus::Skipped;
            summary.skipped += 1;
            summary.stages.push(report);
            return Ok(None);
        }
        let use_cache = !opts.no_run_cache && !opts.force && !s.always_changed;
        let mut tasks = Vec::new();
        if s.input.is_none() {
            if use_cache {
                if let Some((rid, rec)) = record::cached(&self.repo.store, &p.key)? {
                    report.state = StageStatus::Restored;
                    report.runs.push(rid);
                    if !opts.dry_run {
                        // The commit names the record it restored, so history (metrics,
                        // params, lineage) sees which run these outputs came from.
                        restored_runs.push(rid);
                    }
                    if !opts.dry_run {
                        let outs = Self::outputs_of(&rec);
                        self.restore(&outs, progress)?;
                        let mut all = outs.clone();
                        for o in s.all_outs().filter(|o| !o.cache) {
                            all.insert(o.path.clone(), None);
                        }
                        let now = self.repo.path_ids(
                            &s.all_outs().map(|o| o.path.clone()).collect::<Vec<_>>(),
                            progress,
                        )?;
                        new_locks.insert(s.name.clone(), self.locked_entry(s, &p, &now));
                        commit_paths
                            .extend(s.all_outs().filter(|o| o.cache).map(|o| o.path.clone()));
                    }
                    summary.restored += 1;
                    summary.stages.push(report);
                    return Ok(None);
                }
            }
            if opts.dry_run {
                report.state = StageStatus::Stale;
                summary.stages.push(report);
                return Ok(None);
            }
            // Outputs are removed before the run, unless persist.
            for o in s.all_outs().filter(|o| !o.persist) {
                let abs = self.repo.root.join(&o.path);
                match std::fs::symlink_metadata(&abs) {
                    Ok(m) if m.is_dir() => {
                        std::fs::remove_dir_all(&abs).map_err(|e| StoreError::io(&abs, e))?
                    }
                    Ok(_) => std::fs::remove_file(&abs).map_err(|e| StoreError::io(&abs, e))?,
                    Err(_) => {}
                }
                if let Some(parent) = abs.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                }
            }
            if s.image.is_some() {
                // Each output is mounted writable at its place, so it must exist first.
                for o in s.all_outs() {
                    let abs = self.repo.root.join(&o.path);
                    if let Some(parent) = abs.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                    }
                    container::prepare_output(&abs)?;
                }
            }
            tasks.push(Task {
                stage: i,
                datum: None,
                job: self.job_for(s, None, None)?,
                out_dir: None,
                key: p.key,
                retries: s.retries,
                batch: Vec::new(),
            });
        } else {
            let mut restored_records = Vec::new();
            if let Some(only) = &opts.datum {
                if !p.datums.iter().any(|(d, _)| &d.id == only) {
                    return Err(EngineError::UnknownDatum {
                        stage: s.name.clone(),
                        datum: only.clone(),
                    });
                }
                st.debug_only = true;
            }
            for (d, k) in &p.datums {
                if opts.datum.as_ref().is_some_and(|only| &d.id != only) {
                    continue;
                }
                if use_cache && opts.datum.is_none() {
                    if let Some((rid, rec)) = record::cached(&self.repo.store, k)? {
                        restored_records.push((Some(d.id.clone()), rid, rec));
                        continue;
                    }
                }
                if opts.dry_run {
                    continue;
                }
                *task_n += 1;
                let out_dir = self.scratch.join(format!("t{task_n}"));
                std::fs::create_dir(&out_dir).map_err(|e| StoreError::io(&out_dir, e))?;
                tasks.push(Task {
                    stage: i,
                    datum: Some((d.clone(), *k)),
                    job: self.job_for(s, Some(d), Some(&out_dir))?,
                    out_dir: Some(out_dir),
                    key: *k,
                    retries: s.retries,
                    batch: Vec::new(),
                });
            }
            if s.image.is_some() && s.batch > 1 && tasks.len() > 1 {
                let mut batched = Vec::new();
                let mut rest = tasks.into_iter().peekable();
                while rest.peek().is_some() {
                    let members: Vec<Task> = rest.by_ref().take(s.batch as usize).collect();
                    *task_n += 1;
                    let log_dir = self.scratch.join(format!("b{task_n}"));
                    std::fs::create_dir(&log_dir).map_err(|e| StoreError::io(&log_dir, e))?;
                    batched.push(self.batch_task(s, i, members, log_dir)?);
                }
                tasks = batched;
            }
            if let Some(dc) = report.datums.as_mut() {
                dc.restored = restored_records.len() as u64;
            }
            summary.restored += restored_records.len() as u64;
            st.records = restored_records;
            if opts.dry_run {
                let would = p.datums.len() - st.records.len();
                report.state = if would == 0 {
                    StageStatus::Restored
                } else {
                    StageStatus::Stale
                };
                report.reasons.push(format!(
                    "{would} of {} datums would execute",
                    p.datums.len()
                ));
                summary.stages.push(report);
                return Ok(None);
            }
        }
        report.state = StageStatus::Executed;
        st.report = Some(report);
        if tasks.is_empty() {
            // Every datum came from the cache.
            let ok = self.finish_stage(i, st, Some(&p), new_locks, commit_paths, progress)?;
            if let Some(mut r) = st.report.take() {
                if ok {
                    r.state = StageStatus::Restored;
                }
                summary.stages.push(r);
            }
            return Ok(None);
        }
        st.pending = tasks.iter().map(Task::executions).sum();
        progress.start(&s.name, st.pending as u64);
        {
            let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
            g.0.extend(tasks);
        }
        ready.notify_all();
        Ok(Some(p))
    }

    /// Store a finished execution's outputs and logs, and its run record.
    fn record(
        &self,
        txn: &dvx_store::store::Txn,
        done: &Done,
        p: Option<&Prepared>,
        progress: &dyn Progress,
    ) -> Result<(Id, RunRecord)> {
        let s = &self.pipeline.stages[done.task.stage];
        // The progress bar counts executions; hashing outputs is quick and stays quiet.
        let _ = progress;
        let progress = &dvx_store::Quiet;
        let mut error = done.outcome.error.clone();
        let mut outputs = Vec::new();
        // Every file stored, by project path, for the lineage index (its trees are not
        // readable until the transaction commits).
        let mut known: BTreeMap<String, Flat> = BTreeMap::new();
        if done.task.job.container.is_some() && done.task.out_dir.is_none() {
            for o in s.all_outs() {
                let abs = self.repo.root.join(&o.path);
                container::clear_placeholder(&abs);
                if error.is_some() {
                    // A failed run leaves no empty output folder made for the mount.
                    let _ = std::fs::remove_dir(&abs);
                }
            }
        }
        if error.is_none() {
            match &done.task.out_dir {
                Some(dir) => {
                    let (entry, found) = self.repo.ingest(txn, dir, "", progress)?;
                    if let Some(f) = entry {
                        let out = s
                            .outs
                            .iter()
                            .find(|o| o.cache)
                            .map(|o| o.path.clone())
                            .unwrap_or_default();
                        known.extend(
                            found
                                .files
                                .into_iter()
                                .map(|(p, f)| (dvx_store::paths::join(&out, &p), f)),
                        );
                        outputs.push(PathId {
                            path: out,
                            kind: EntryKind::Dir,
                            id: f.id,
                            size: f.size,
                            mode: None,
                        });
                    }
                }
                None => {
                    for o in s.all_outs() {
                        let abs = self.repo.root.join(&o.path);
                        if abs.symlink_metadata().is_err() {
                            error =
                                Some(format!("the command did not produce the output {}", o.path));
                            break;
                        }
                        // Metrics are stored even with `cache: false` (they are small), so any
                        // commit's metrics can be read back for `dvx metrics diff`.
                        let is_metric = s.metrics.iter().any(|m| m.path == o.path);
                        let store_it = o.cache || is_metric;
                        let entry = if store_it {
                            let (entry, found) =
                                self.repo.ingest(txn, &self.repo.root, &o.path, progress)?;
                            known.extend(found.files);
                            entry
                        } else {
                            self.repo
                                .path_ids(std::slice::from_ref(&o.path), progress)?
                                .remove(&o.path)
                                .flatten()
                        };
                        if let (Some(f), true) = (entry, store_it) {
                            outputs.push(PathId {
                                path: o.path.clone(),
                                kind: f.kind,
                                id: f.id,
                                size: f.size,
                                mode: (f.kind == EntryKind::File).then_some(f.mode),
                            });
                        }
                    }
                }
            }
        }
        let log = |bytes: &[u8]| -> Result<Id> { Ok(txn.put_bytes(bytes)?) };
        let mut inputs: Vec<PathId> = p
            .map(|p| {
                p.deps
                    .iter()
                    .filter_map(|(path, id)| {
                        id.as_ref().map(|i| PathId {
                            path: path.clone(),
                            kind: EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                            id: i.id,
                            size: p.dep_sizes.get(path).copied().unwrap_or(0),
                            mode: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some((d, _)) = &done.task.datum {
            if let Some(i) = &d.input {
                inputs.push(PathId {
                    path: d.path.clone(),
                    kind: EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                    id: i.id,
                    size: d.size,
                    mode: None,
                });
            }
        }
        let end = chrono::Utc::now();
        let rec = RunRecord {
            attempt: done.attempt,
            cmd: s.cmd.clone(),
            code: self.code.clone(),
            datum: done.task.datum.as_ref().map(|(d, _)| d.id.clone()),
            duration_ms: done.outcome.duration.as_millis() as u64,
            end: end.to_rfc3339(),
            env: s.env.clone(),
            error: error.clone(),
            executor: done
                .task
                .job
                .container
                .as_ref()
                .map_or("local", |c| c.runtime.name)
                .into(),
            exit: if error.is_some() && done.outcome.exit == Some(0) {
                None
            } else {
                done.outcome.exit
            },
            host: dvx_store::fsutil::hostname(),
            image: done.task.job.container.as_ref().map(|c| c.image.pinned()),
            inputs,
            key: done.task.key,
            outputs,
            params: p.map(|p| p.params.clone()).unwrap_or_default(),
            stage: s.name.clone(),
            start: done.start.to_rfc3339(),
            stderr: log(&done.outcome.stderr)?,
            stdout: log(&done.outcome.stdout)?,
            user: self.user.clone(),
            version: record::RECORD_VERSION,
            wdir: s.wdir.clone(),
        };
        let id = rec.put(txn);
        let none = BTreeMap::new();
        let dep_files = p.map_or(&none, |p| &p.dep_files);
        crate::lineage::index_run(txn, &id, &rec, &known, dep_files)?;
        Ok((id, rec))
    }

    /// Move the files datums just wrote into their merged place (a rename, no new copy) where
    /// the workspace does not already hold them; `work` is updated to match. Whatever is not
    /// moved is written from the store by `apply`.
    fn move_fresh_outputs(
        &self,
        out: &str,
        st: &StageState,
        merged: &BTreeMap<String, Flat>,
        work: &mut BTreeMap<String, Flat>,
    ) -> Result<Vec<(String, dvx_store::statcache::StatEntry)>> {
        let mut moved = Vec::new();
        if st.fresh_dirs.is_empty() {
            return Ok(moved);
        }
        let is_dir = std::fs::symlink_metadata(self.repo.root.join(out))
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !is_dir {
            if work.contains_key(out) {
                return Ok(moved); // a file or link is in the way: `apply` replaces it
            }
            self.repo.make_dir(out)?;
            work.insert(
                out.to_string(),
                Flat {
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    size: 0,
                    id: Id([0; 32]),
                },
            );
        }
        for (datum, dir) in &st.fresh_dirs {
            let Some((_, _, rec)) = st.records.iter().find(|r| r.0.as_deref() == Some(datum))
            else {
                continue;
            };
            let Some(tree) = rec.outputs.first() else {
                continue;
            };
            let mut files = BTreeMap::new();
            worktree::flatten(&self.repo.store, &tree.id, "", &mut files)?;
            for (sub, f) in files {
                if f.kind != EntryKind::File || sub.contains('/') {
                    continue; // nested folders go through `apply`, which creates them safely
                }
                let dest_rel = dvx_store::paths::join(out, &sub);
                if merged.get(&dest_rel).map(|m| m.id) != Some(f.id)
                    || work.get(&dest_rel).is_some_and(|w| w.same(&f))
                {
                    continue;
                }
                if work.contains_key(&dest_rel) {
                    continue; // something else is there; `apply` replaces it properly
                }
                let dest = dvx_store::paths::abs(&self.repo.root, &dest_rel)?;
                let src = dir.join(&sub);
                if std::fs::rename(&src, &dest).is_ok() {
                    worktree::set_mode(&dest, f.mode)?;
                    let meta =
                        std::fs::symlink_metadata(&dest).map_err(|e| StoreError::io(&dest, e))?;
                    work.insert(dest_rel.clone(), f);
                    moved.push((
                        dest_rel,
                        dvx_store::statcache::StatEntry::new(
                            dvx_store::statcache::Stat::of(&meta),
                            f.id,
                        ),
                    ));
                }
            }
        }
        Ok(moved)
    }

    /// All executions of a stage are done: merge datum outputs, note the lock entry.
    fn finish_stage(
        &self,
        i: usize,
        st: &mut StageState,
        p: Option<&Prepared>,
        new_locks: &mut BTreeMap<String, LockedStage>,
        commit_paths: &mut Vec<String>,
        progress: &dyn Progress,
    ) -> Result<bool> {
        let s = &self.pipeline.stages[i];
        progress.finish();
        let progress = &dvx_store::Quiet;
        if st.failed {
            if let Some(r) = st.report.as_mut() {
                r.state = StageStatus::Failed;
            }
            return Ok(false);
        }
        let Some(p) = p else { return Ok(true) };
        if st.debug_only {
            return Ok(true);
        }
        let out_paths: Vec<String> = s.all_outs().map(|o| o.path.clone()).collect();
        if s.input.is_some() {
            st.records.sort_by(|a, b| a.0.cmp(&b.0));
            let merged = self.merge_datums(s, &st.records)?;
            let out = s
                .outs
                .iter()
                .find(|o| o.cache)
                .map(|o| o.path.clone())
                .unwrap_or_default();
            let mut work = self.repo.workspace(std::slice::from_ref(&out), progress)?;
            let moved = self.move_fresh_outputs(&out, st, &merged, &mut work)?;
            let applied = self.repo.apply(&merged, &work, progress)?;
            let txn = self.repo.store.txn()?;
            for (path, e) in applied.cache.iter().chain(moved.iter()) {
                txn.put(dvx_store::db::CF_STAT, path.as_bytes(), &e.encode());
            }
            txn.commit()?;
        }
        let now = self.repo.path_ids(&out_paths, progress)?;
        new_locks.insert(s.name.clone(), self.locked_entry(s, p, &now));
        commit_paths.extend(s.all_outs().filter(|o| o.cache).map(|o| o.path.clone()));
        Ok(true)
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
        let files = self
            .repo
            .workspace(std::slice::from_ref(&input.path), progress)?;
        datums(s, input, &files)
    }
}
