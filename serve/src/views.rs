//! What the pages show, read from the project on each request through the same library calls
//! the CLI makes, so every JSON twin has the shape of the matching `--json` output.

use std::collections::BTreeMap;
use std::path::Path;

use dvx_engine::lineage::{self, Graph};
use dvx_engine::record::{self, RunRecord};
use dvx_engine::run::{Engine, StageReport, StageStatus};
use dvx_engine::store::ops::LogEntry;
use dvx_engine::store::{Access, Id, Quiet, Repo};
use dvx_engine::{EngineError, Result};
use serde::Serialize;

/// The pipeline page: each stage as `dvx status --json` reports it, the last recorded
/// outcome of each stage in HEAD's commit, and the graph's edges (from a stage to one that
/// needs it).
#[derive(Debug, Default, Serialize)]
pub struct PipelineView {
    /// False when the project has no dvx.yaml.
    pub pipeline: bool,
    pub stages: Vec<StageReport>,
    pub warnings: Vec<String>,
    pub edges: Vec<(String, String)>,
    /// Stages whose latest run (in HEAD's commit) failed, with that run.
    pub failed: BTreeMap<String, Id>,
    /// Stages a `dvx run` is executing now, with its progress.
    pub running: BTreeMap<String, dvx_engine::run::LiveStage>,
}

pub fn pipeline(root: &Path) -> Result<PipelineView> {
    // An observer: planning hashes changed files, and must not take the writer lock to save
    // them while a `dvx run` may be starting.
    let repo = Repo::open(root, Access::Read)?.observer();
    let mut engine = match Engine::open(&repo) {
        Ok(e) => e,
        Err(EngineError::NoPipeline(_)) => return Ok(PipelineView::default()),
        Err(e) => return Err(e),
    };
    let report = engine.status(&Quiet)?;
    let names: Vec<&str> = engine
        .pipeline
        .stages
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let mut edges = Vec::new();
    for (i, needs) in engine.dag.needs.iter().enumerate() {
        for &j in needs {
            edges.push((names[j].to_string(), names[i].to_string()));
        }
    }
    let mut failed = BTreeMap::new();
    if let Some(head) = repo.store.head_commit()? {
        let c = repo.store.get_commit(&head)?;
        for run in &c.runs {
            if let Ok(rec) = record::load(&repo.store, run) {
                if !rec.ok() {
                    failed.insert(rec.stage.clone(), *run);
                }
            }
        }
    }
    let running = dvx_engine::run::live_run(&repo)
        .map(|l| l.stages)
        .unwrap_or_default();
    Ok(PipelineView {
        pipeline: true,
        stages: report.stages,
        warnings: report.warnings,
        edges,
        failed,
        running,
    })
}

/// How a stage is drawn: running while a `dvx run` executes it; else its status now, or
/// failed when its latest run failed and it has not been run successfully since.
pub fn shown_state(view: &PipelineView, s: &StageReport) -> &'static str {
    if view.running.contains_key(&s.stage) {
        return "running";
    }
    if view.failed.contains_key(&s.stage) && s.state.is_stale() {
        return "failed";
    }
    match s.state {
        StageStatus::Skipped => "up to date",
        other => other.as_str(),
    }
}

/// The latest commits of HEAD, as `dvx log --json` gives them.
pub fn commits(root: &Path, n: usize) -> Result<Vec<LogEntry>> {
    let repo = Repo::open(root, Access::Read)?;
    if repo.store.head_commit()?.is_none() {
        return Ok(Vec::new());
    }
    Ok(repo.log(None, Some(n))?)
}

/// One run: its record (as `dvx show --json`) and its output.
pub struct RunView {
    pub id: Id,
    pub record: RunRecord,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

pub fn run(root: &Path, arg: &str) -> Result<RunView> {
    let repo = Repo::open(root, Access::Read)?;
    let (id, record) =
        lineage::find_run(&repo, arg)?.ok_or_else(|| EngineError::UnknownRun(arg.to_string()))?;
    let stdout = repo.store.read_file(&record.stdout)?;
    let stderr = repo.store.read_file(&record.stderr)?;
    Ok(RunView {
        id,
        record,
        stdout,
        stderr,
    })
}

/// The record's JSON as `dvx show --json` prints it.
pub fn run_json(v: &RunView) -> serde_json::Value {
    let mut j = serde_json::to_value(&v.record).unwrap_or_default();
    j["id"] = serde_json::Value::String(v.id.to_hex());
    j
}

/// `PATH[@REV]` upstream (or downstream) as `dvx lineage --json` gives it.
pub fn lineage(root: &Path, target: &str, downstream: bool) -> Result<Graph> {
    let (repo, _) = lineage::open(root)?;
    let (p, rev) = lineage::split_rev(target);
    let p = p.trim_matches('/');
    lineage::lineage(&repo, p, rev, downstream, None)
}

/// One commit on the metrics page: its metrics and the parameters its runs used.
#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub commit: Id,
    pub time: String,
    pub message: String,
    pub metrics: dvx_engine::metrics::Metrics,
    pub params: dvx_engine::metrics::Params,
}

/// Metrics and parameters over the last `n` commits of `rev` (default HEAD) whose own runs
/// wrote a metrics file, oldest first, as `dvx metrics show REV --json` gives each. A commit
/// that only carries earlier metrics forward (a failed run, data added) is not a point.
pub fn history(root: &Path, rev: Option<&str>, n: usize) -> Result<Vec<HistoryPoint>> {
    let repo = Repo::open(root, Access::Read)?;
    let engine = match Engine::open(&repo) {
        Ok(e) => e,
        Err(EngineError::NoPipeline(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if rev.is_none() && repo.store.head_commit()?.is_none() {
        return Ok(Vec::new());
    }
    let wanted: std::collections::HashSet<String> =
        dvx_engine::metrics::metric_paths(&engine.pipeline)
            .into_iter()
            .collect();
    let mut out = Vec::new();
    for e in repo.log(rev, Some(n))? {
        let wrote = e.commit.runs.iter().any(|r| {
            record::load(&repo.store, r)
                .is_ok_and(|rec| rec.ok() && rec.outputs.iter().any(|o| wanted.contains(&o.path)))
        });
        if !wrote {
            continue;
        }
        let (metrics, params) = dvx_engine::metrics::at_commit(&repo, &engine.pipeline, &e.id)?;
        if metrics.is_empty() {
            continue;
        }
        out.push(HistoryPoint {
            commit: e.id,
            time: chrono::DateTime::from_timestamp(e.commit.time, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            message: e.commit.message,
            metrics,
            params,
        });
    }
    out.reverse();
    Ok(out)
}

/// A trigger as the triggers page shows it, with its firings (newest first, at most 50).
#[derive(Debug, Serialize)]
pub struct TriggerView {
    pub name: String,
    /// `cron` or `on_push`.
    pub kind: &'static str,
    /// The cron pattern, or `REMOTE/BRANCH`.
    pub when: String,
    pub stages: Vec<String>,
    pub min_interval_secs: Option<u64>,
    pub catch_up: dvx_engine::trigger::CatchUp,
    pub push: Option<String>,
    /// Firings due and not started yet.
    pub pending: usize,
    pub problem: Option<String>,
    pub firings: Vec<dvx_engine::trigger::journal::FiringEntry>,
}

impl TriggerView {
    pub fn of(
        t: &dvx_engine::trigger::Trigger,
        pending: &BTreeMap<String, usize>,
        problems: &BTreeMap<String, String>,
    ) -> TriggerView {
        use dvx_engine::trigger::When;
        let (kind, when) = match &t.when {
            When::Cron { pattern, .. } => ("cron", pattern.clone()),
            When::Push { remote, branch, .. } => (
                "on_push",
                format!(
                    "{}/{branch}",
                    remote.as_deref().unwrap_or("(default remote)")
                ),
            ),
        };
        TriggerView {
            name: t.name.clone(),
            kind,
            when,
            stages: t.stages.clone(),
            min_interval_secs: t.min_interval.map(|d| d.as_secs()),
            catch_up: t.catch_up,
            push: t.push.clone(),
            pending: pending.get(&t.name).copied().unwrap_or(0),
            problem: problems.get(&t.name).cloned(),
            firings: Vec::new(),
        }
    }
}

/// Fill in each trigger's firings from the store.
pub fn with_firings(root: &Path, mut ts: Vec<TriggerView>) -> Result<Vec<TriggerView>> {
    let repo = Repo::open(root, Access::Read)?;
    for t in &mut ts {
        let mut f = dvx_engine::trigger::journal::firings(&repo.store, &t.name)?;
        f.reverse();
        f.truncate(50);
        t.firings = f;
    }
    Ok(ts)
}

/// One commit as the commit browser shows it: the commit (as `dvx log --json` gives one)
/// and what it holds under `path` (as `dvx ls REV PATH --json -r`).
#[derive(Debug, Serialize)]
pub struct CommitView {
    pub commit: LogEntry,
    pub path: String,
    pub files: Vec<dvx_engine::store::ops::LsEntry>,
}

pub fn commit(root: &Path, rev: &str, path: &str) -> Result<CommitView> {
    let repo = Repo::open(root, Access::Read)?;
    let id = repo.resolve_rev(rev)?.commit;
    let commit = repo
        .log(Some(&id.to_hex()), Some(1))?
        .into_iter()
        .next()
        .ok_or_else(|| EngineError::UnknownRun(rev.to_string()))?;
    let path = path.trim_matches('/').to_string();
    let files = repo.ls(&id.to_hex(), &path, true)?;
    Ok(CommitView {
        commit,
        path,
        files,
    })
}

/// The run executing now, if any: what each running stage has done and what its running
/// executions printed last.
pub fn live(root: &Path) -> Result<Option<dvx_engine::run::LiveRun>> {
    let repo = Repo::open(root, Access::Read)?.observer();
    Ok(dvx_engine::run::live_run(&repo))
}
