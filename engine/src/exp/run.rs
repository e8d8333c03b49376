//! Making and running experiments: each in its own copy of the workspace, several at once
//! within `-j`.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use dvx_store::lockfile::LockFile;
use dvx_store::{Quiet, Repo, StoreError};
use serde_json::Value;

use super::overrides::{self, describe, Assignment, Override};
use super::{names, overlay, yaml_edit, ExpStatus, Experiment, EXP_VERSION};
use crate::error::{EngineError, Result};
use crate::exec::Children;
use crate::metrics;
use crate::record::ExperimentTag;
use crate::run::{load_pipeline, Engine, RunOptions};

/// What `dvx run -S` asks for.
#[derive(Clone, Debug, Default)]
pub struct ExpRun {
    pub overrides: Vec<Override>,
    /// The name of a single experiment (several get `NAME-1`, `NAME-2`, ...).
    pub name: Option<String>,
    /// Targets, `-j` (shared by all the experiments), `--force`, ...
    pub run: RunOptions,
}

/// The experiments a call made or ran, in order.
pub type Started = Vec<Experiment>;

/// An experiment left `running` by a dvx that stopped (this one holds the writer lock, so no
/// other runs it) failed; its folder goes.
fn settle_interrupted(repo: &Repo) -> Result<()> {
    for mut e in super::list(repo)? {
        if e.status == ExpStatus::Running {
            overlay::remove(&overlay::folder(&repo.dot, &e.name));
            e.status = ExpStatus::Failed;
            e.error = Some("interrupted: the dvx running it stopped".into());
            e.save(repo)?;
        }
    }
    Ok(())
}

/// Check the overrides and store one queued experiment per variant.
fn prepare(repo: &Repo, req: &ExpRun) -> Result<Vec<Experiment>> {
    settle_interrupted(repo)?;
    if req.overrides.is_empty() {
        return Err(EngineError::Experiment {
            message: "an experiment needs at least one override".into(),
            hint: "give one with -S KEY=VALUE".into(),
        });
    }
    load_pipeline(&repo.root)?;
    overrides::check(&repo.root, &req.overrides)?;
    let base = repo
        .store
        .head_commit()?
        .ok_or_else(|| EngineError::Experiment {
            message: "experiments start from a commit, and this project has none yet".into(),
            hint: "run the pipeline once with `dvx run` (or `dvx commit`) first".into(),
        })?;
    let variants = overrides::grid(&req.overrides);
    let count = variants.len();
    let now = chrono::Utc::now();
    let mut taken: Vec<String> = super::list(repo)?.into_iter().map(|e| e.name).collect();
    let mut out = Vec::new();
    for (i, a) in variants.into_iter().enumerate() {
        let name = match &req.name {
            // One variant takes the name; several are NAME-1, NAME-2, ... A name in use is
            // refused below.
            Some(n) if count == 1 => n.clone(),
            Some(n) => format!("{n}-{}", i + 1),
            None => {
                let seed = format!(
                    "{base}{}{i}{}",
                    describe(&a),
                    now.timestamp_nanos_opt().unwrap_or(0)
                );
                names::pick(seed.as_bytes(), &|c| taken.iter().any(|t| t == c))
            }
        };
        check_name(&name)?;
        if taken.contains(&name) {
            return Err(EngineError::Experiment {
                message: format!("an experiment named {name} already exists"),
                hint: format!("choose another name, or remove it with `dvx exp remove {name}`"),
            });
        }
        taken.push(name.clone());
        out.push(Experiment {
            version: EXP_VERSION,
            name,
            status: ExpStatus::Queued,
            base,
            commit: None,
            overrides: a,
            params: BTreeMap::new(),
            metrics: Default::default(),
            stages: None,
            created: now.timestamp(),
            finished: None,
            wall_ms: 0,
            executed: 0,
            restored: 0,
            error: None,
        });
    }
    let txn = repo.store.txn()?;
    for e in &out {
        let bytes = serde_json::to_vec(e).map_err(|err| EngineError::Experiment {
            message: format!("cannot encode experiment {}: {err}", e.name),
            hint: String::new(),
        })?;
        txn.put_experiment(&e.name, &bytes);
        txn.set_ref(&e.reference(), &base);
    }
    txn.commit()?;
    Ok(out)
}

fn check_name(name: &str) -> Result<()> {
    dvx_store::refs::validate_ref_name(name, "experiment").map_err(|e| {
        EngineError::Experiment {
            message: e.to_string(),
            hint: "an experiment name is a word such as lr-0.5 (letters, digits, `-`, `_`, `.`)"
                .into(),
        }
    })?;
    if name.contains('/') {
        return Err(EngineError::Experiment {
            message: format!("{name:?} is not an experiment name: it has a `/`"),
            hint: "an experiment name is a word such as lr-0.5 (letters, digits, `-`, `_`, `.`)"
                .into(),
        });
    }
    Ok(())
}

/// Store the variants as queued experiments, to be run by `dvx exp run`.
pub fn enqueue(repo: &Repo, req: &ExpRun) -> Result<Started> {
    prepare(repo, req)
}

/// Make the variants and run them now.
pub fn start(repo: &Repo, req: &ExpRun, children: &Children) -> Result<Started> {
    let exps = prepare(repo, req)?;
    Ok(run_all(repo, exps, &req.run, children))
}

/// Run every queued experiment (or those named).
pub fn run_queued(
    repo: &Repo,
    only: &[String],
    opts: &RunOptions,
    children: &Children,
) -> Result<Started> {
    settle_interrupted(repo)?;
    let mut queued: Vec<Experiment> = super::list(repo)?
        .into_iter()
        .filter(|e| e.status == ExpStatus::Queued)
        .collect();
    if !only.is_empty() {
        for n in only {
            let e = super::get(repo, n)?;
            if e.status != ExpStatus::Queued {
                return Err(EngineError::Experiment {
                    message: format!("experiment {n} is {}, not queued", e.status.as_str()),
                    hint: "`dvx exp show` lists the experiments and their state".into(),
                });
            }
        }
        queued.retain(|e| only.contains(&e.name));
    }
    Ok(run_all(repo, queued, opts, children))
}

/// Run experiments `min(-j, count)` at a time, sharing `-j` between them.
fn run_all(repo: &Repo, exps: Vec<Experiment>, opts: &RunOptions, children: &Children) -> Started {
    let n = exps.len();
    let jobs = opts.jobs.max(1);
    let at_once = jobs.min(n).max(1);
    let each = (jobs / at_once).max(1);
    let queue = Mutex::new(exps.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                let next = queue.lock().map(|mut q| q.pop_front()).ok().flatten();
                let Some((i, exp)) = next else { break };
                let exp = if children.is_cancelled() {
                    exp
                } else {
                    run_one(repo, exp, opts, each, children)
                };
                if let Ok(mut d) = done.lock() {
                    d.push((i, exp));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, e)| e).collect()
}

/// Run one experiment to its end; what went wrong is in its `error`.
fn run_one(
    repo: &Repo,
    mut exp: Experiment,
    opts: &RunOptions,
    jobs: usize,
    children: &Children,
) -> Experiment {
    let t0 = Instant::now();
    let dir = overlay::folder(&repo.dot, &exp.name);
    let mut linked = Vec::new();
    let result = (|| -> Result<()> {
        // It starts from the workspace as it is now, on the commit HEAD is on now.
        exp.base = repo.store.head_commit()?.unwrap_or(exp.base);
        exp.status = ExpStatus::Running;
        let txn = repo.store.txn()?;
        txn.set_ref(&exp.reference(), &exp.base);
        txn.commit()?;
        exp.save(repo)?;
        overlay::remove(&dir);
        let pipeline = load_pipeline(&repo.root)?;
        linked = overlay::make(&repo.root, &dir, &pipeline)?;
        repo.refresh_linked(&linked)?;
        write_overrides(&dir, &exp.overrides)?;
        let view = repo.view(dir.clone(), &exp.reference())?;
        let mut engine = Engine::open(&view)?;
        let mut o = opts.clone();
        o.jobs = jobs;
        o.dry_run = false;
        o.message =
            Some(opts.message.clone().unwrap_or_else(|| {
                format!("experiment {}: {}", exp.name, describe(&exp.overrides))
            }));
        o.experiment = Some(ExperimentTag {
            name: exp.name.clone(),
            overrides: exp.overrides.clone(),
        });
        let summary = engine.run(&o, children, &Quiet);
        exp.metrics = metrics::workspace_metrics(&view, &engine.pipeline);
        exp.params = metrics::workspace_params(&view, &engine.pipeline)?
            .into_values()
            .flatten()
            .collect();
        exp.stages = LockFile::read(&dir)?.and_then(|l| l.other.get("stages").cloned());
        let tip = view.store.ref_target(&exp.reference())?;
        exp.commit = tip.filter(|t| *t != exp.base).or(Some(exp.base));
        let summary = summary?;
        exp.executed = summary.executed;
        exp.restored = summary.restored;
        if let Some(f) = summary.failures.first() {
            return Err(EngineError::Failed {
                stage: f.stage.clone(),
                datum: f.datum.clone(),
                message: match &f.run {
                    Some(r) => format!("{} (run {}; `dvx logs {}`)", f.error, r.short(), r.short()),
                    None => f.error.clone(),
                },
            });
        }
        Ok(())
    })();
    overlay::remove(&dir);
    let _ = repo.refresh_linked(&linked);
    exp.finished = Some(chrono::Utc::now().timestamp());
    exp.wall_ms = t0.elapsed().as_millis() as u64;
    match result {
        Ok(()) => exp.status = ExpStatus::Done,
        Err(e) => {
            exp.status = ExpStatus::Failed;
            exp.error = Some(e.to_string());
        }
    }
    let _ = exp.save(repo);
    exp
}

/// Set the overrides in the copy's parameters files. Each file is replaced (written beside
/// and renamed), never written through: it is a hard link to the project's own.
pub(crate) fn write_overrides(dir: &Path, a: &Assignment) -> Result<Vec<String>> {
    let mut by_file: BTreeMap<&str, Vec<(&str, &Value)>> = BTreeMap::new();
    for (name, v) in a {
        let (file, key) = overrides::split_name(name);
        by_file.entry(file).or_default().push((key, v));
    }
    let mut rewritten = Vec::new();
    for (file, sets) in by_file {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::io(&path, e))?;
        let (new, whole) =
            yaml_edit::set_all(&text, &sets).map_err(|e| EngineError::Experiment {
                message: format!("cannot set parameters in {file}: {e}"),
                hint: "check that the file is valid YAML or JSON".into(),
            })?;
        if whole {
            rewritten.push(file.to_string());
        }
        let parent = path.parent().unwrap_or(dir);
        dvx_store::fsutil::write_atomic(&path, new.as_bytes(), parent)?;
    }
    Ok(rewritten)
}
