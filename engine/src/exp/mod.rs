//! Experiments: the pipeline run with parameter overrides (`dvx run -S KEY=VALUE`) without
//! editing the parameters files. Each experiment runs in its own copy of the workspace
//! (`.dvx/exps/NAME`, hard links), commits on its own ref (`refs/exps/NAME`), and is listed
//! with its parameters and metrics by `dvx exp show`. Stages the override does not reach are
//! up to date or come back from the run cache, so only the affected ones execute.
//!
//! An experiment's entry lives in the store (`exp/NAME` in the `meta` family; format in
//! `schemas/database.md`).

use std::collections::BTreeMap;

use dvx_store::{Id, Repo};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::metrics::Metrics;

mod apply;
mod names;
pub mod overlay;
pub mod overrides;
mod run;
mod show;
pub mod yaml_edit;

pub use apply::{apply, branch, remove, Applied};
pub use overrides::{Assignment, Override};
pub use run::{enqueue, run_queued, start, ExpRun, Started};
pub use show::{show, show_cell, sort_rows, to_csv, Column, ExpRow, ExpTable};

/// Where experiments' commits are kept: `refs/exps/NAME`.
pub const EXP_REFS: &str = "refs/exps/";

/// The version of the stored entry.
pub const EXP_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpStatus {
    /// Waiting for `dvx exp run`.
    Queued,
    Running,
    Done,
    Failed,
}

impl ExpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpStatus::Queued => "queued",
            ExpStatus::Running => "running",
            ExpStatus::Done => "done",
            ExpStatus::Failed => "failed",
        }
    }
}

/// One experiment, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub version: u32,
    pub name: String,
    pub status: ExpStatus,
    /// The commit it started from (HEAD when it was made).
    pub base: Id,
    /// The commit of its results, once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Id>,
    /// `FILE:KEY` → the value it gives.
    pub overrides: BTreeMap<String, Value>,
    /// Every parameter the pipeline's stages read, `FILE:KEY` → value, as it ran.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Metrics files → flat key → value, as it left them.
    #[serde(default)]
    pub metrics: Metrics,
    /// dvx.lock's `stages` after its run, for `dvx exp apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Value>,
    /// Unix seconds.
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<i64>,
    #[serde(default)]
    pub wall_ms: u64,
    /// Executions run and restored from the run cache.
    #[serde(default)]
    pub executed: u64,
    #[serde(default)]
    pub restored: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Experiment {
    pub fn reference(&self) -> String {
        format!("{EXP_REFS}{}", self.name)
    }

    pub(crate) fn save(&self, repo: &Repo) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| EngineError::Experiment {
            message: format!("cannot encode experiment {}: {e}", self.name),
            hint: String::new(),
        })?;
        let txn = repo.store.txn()?;
        txn.put_experiment(&self.name, &bytes);
        Ok(txn.commit()?)
    }
}

/// Every experiment, oldest first.
pub fn list(repo: &Repo) -> Result<Vec<Experiment>> {
    let mut out = Vec::new();
    for (name, bytes) in repo.store.experiments()? {
        match serde_json::from_slice::<Experiment>(&bytes) {
            Ok(e) => out.push(e),
            Err(e) => {
                return Err(EngineError::Experiment {
                    message: format!("the stored entry of experiment {name} is damaged: {e}"),
                    hint: format!("remove it with `dvx exp remove {name}`"),
                })
            }
        }
    }
    out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(out)
}

/// One experiment by name.
pub fn get(repo: &Repo, name: &str) -> Result<Experiment> {
    let bytes = repo
        .store
        .experiment(name)?
        .ok_or_else(|| EngineError::Experiment {
            message: format!("no experiment named {name:?}"),
            hint: "`dvx exp show` lists the experiments".into(),
        })?;
    serde_json::from_slice(&bytes).map_err(|e| EngineError::Experiment {
        message: format!("the stored entry of experiment {name} is damaged: {e}"),
        hint: format!("remove it with `dvx exp remove {name}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form is a format: a change here needs a new version.
    #[test]
    fn stored_entry_is_pinned() {
        let e = Experiment {
            version: EXP_VERSION,
            name: "brisk-otter".into(),
            status: ExpStatus::Done,
            base: Id::of(b"base"),
            commit: Some(Id::of(b"commit")),
            overrides: BTreeMap::from([("params.yaml:train.l2".into(), serde_json::json!(0.5))]),
            params: BTreeMap::from([("params.yaml:train.l2".into(), serde_json::json!(0.5))]),
            metrics: Metrics::from([(
                "metrics.json".into(),
                BTreeMap::from([("acc".into(), serde_json::json!(0.9))]),
            )]),
            stages: None,
            created: 1_800_000_000,
            finished: Some(1_800_000_010),
            wall_ms: 10_000,
            executed: 1,
            restored: 0,
            error: None,
        };
        let bytes = serde_json::to_vec(&e).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().to_string(),
            GOLDEN,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(serde_json::from_slice::<Experiment>(&bytes).unwrap(), e);
    }

    const GOLDEN: &str = "ea955a9282cd10d44623e26416a2d3a11186ecc99675a2f8b5f94a2f69601ad4";
}
