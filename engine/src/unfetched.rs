//! A project git brought without a store (dvx.yaml and dvx.lock committed, `.dvx/db` not):
//! what `dvx status` can say about its stages from dvx.lock alone, without hashing anything
//! into a store that does not exist yet.

use dvx_store::lockfile::LockFile;
use dvx_store::Repo;
use serde_json::Value;

use crate::error::Result;
use crate::run::{load_pipeline, StageReport, StageStatus};

/// Each stage of dvx.yaml as dvx.lock leaves it: `never ran` without an entry; stale while a
/// recorded output or a dependency no stage makes is not in the workspace (both come with
/// `dvx pull`); otherwise up to date as far as dvx.lock tells. Commands, parameters and the
/// ids of what is here are compared once there is a store (`dvx run` after `dvx pull`).
pub fn stage_status(repo: &Repo) -> Result<Vec<StageReport>> {
    let pipeline = load_pipeline(&repo.root)?;
    let stages = LockFile::read(&repo.root)?
        .and_then(|l| l.other.get("stages").cloned())
        .unwrap_or(Value::Null);
    let produced = |p: &str| {
        pipeline.stages.iter().any(|s| {
            s.all_outs()
                .any(|o| o.path == p || p.starts_with(&format!("{}/", o.path)))
        })
    };
    let here = |p: &str| repo.root.join(p).symlink_metadata().is_ok();
    let mut out = Vec::new();
    for s in &pipeline.stages {
        let mut reasons = Vec::new();
        match stages.get(&s.name) {
            None => reasons.push("never ran".to_string()),
            Some(entry) => {
                for (kind, field) in [("dep", "deps"), ("output", "outs")] {
                    let Some(paths) = entry.get(field).and_then(Value::as_object) else {
                        continue;
                    };
                    for p in paths.keys() {
                        if !here(p) && (kind == "output" || !produced(p)) {
                            reasons.push(format!("{kind} {p} not here (run `dvx pull`)"));
                        }
                    }
                }
            }
        }
        let state = if s.frozen {
            StageStatus::Frozen
        } else if reasons.is_empty() {
            StageStatus::Skipped
        } else {
            StageStatus::Stale
        };
        out.push(StageReport {
            stage: s.name.clone(),
            state,
            reasons,
            datums: None,
            runs: Vec::new(),
        });
    }
    Ok(out)
}
