//! What a run reports: per stage, per datum, and for the whole run.

use super::*;

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
    /// Where stages that name no `executor:` run (None: here).
    pub executor: Option<crate::spec::ExecutorKind>,
    /// The trigger firing that started this run (`dvx serve`), for its records.
    pub trigger: Option<String>,
    /// The experiment (`dvx run -S`) this run is, for its records.
    pub experiment: Option<crate::record::ExperimentTag>,
    /// Record the outputs already in the workspace as the result of each stale stage, as if
    /// this executor (`dvc` for `dvx import-dvc`) had made them: outputs are not removed
    /// before, and the executor (`executor::Adopt`) runs nothing.
    pub adopt: Option<String>,
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
    /// Things the user should know that did not stop the run (a glob that matches nothing).
    pub warnings: Vec<String>,
}

/// What `dvx status` says about the pipeline: each stage, and the warnings planning gave.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageStatusReport {
    pub stages: Vec<StageReport>,
    pub warnings: Vec<String>,
}
