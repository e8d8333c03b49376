//! The one error type of dvx-engine: pipeline problems with the file and place they come from.

use std::path::PathBuf;

use dvx_store::{ErrorClass, StoreError};

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remote(#[from] dvx_remote::RemoteError),
    #[error("{}:{line}:{column}: {message}", .file.display())]
    Spec {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("no {} in the project (the pipeline file)", .0.display())]
    NoPipeline(PathBuf),
    #[error("unknown stage {0:?}")]
    UnknownStage(String),
    #[error("stage {stage}: {message}")]
    Params { stage: String, message: String },
    #[error("stage {stage}{}: {message}", datum.as_ref().map(|d| format!(" datum {d}")).unwrap_or_default())]
    Failed {
        stage: String,
        datum: Option<String>,
        message: String,
    },
    #[error("{0} execution(s) failed")]
    SomeFailed(usize),
    #[error("unknown run {0:?}")]
    UnknownRun(String),
    #[error("stage {stage}: no datum {datum:?}")]
    UnknownDatum { stage: String, datum: String },
    #[error("interrupted")]
    Interrupted,
    #[error("{path} is not in {rev}")]
    PathNotInRev { path: String, rev: String },
    #[error("no single recorded run produced {path} as it is in {rev}")]
    NotProduced { path: String, rev: String },
    #[error("the lineage index of this store is missing and cannot be built now: {0}")]
    NotIndexed(String),
    #[error("cannot verify run {run}: {message}")]
    Verify { run: String, message: String },
    #[error("stage {stage}: {source}")]
    StagePath {
        stage: String,
        #[source]
        source: StoreError,
    },
    /// `dvx import-dvc` could not bring a DVC project over.
    #[error("cannot import the DVC project: {0}")]
    ImportDvc(String),
    /// The executor could not take or report work (a worker thread, a cluster's queue).
    #[error("the executor failed: {0}")]
    Executor(String),
    /// A cluster's API refused or failed a call, or its settings do not reach it.
    #[error("{executor}: {message}")]
    Cluster {
        executor: &'static str,
        message: String,
        hint: String,
    },
    #[error("stage {stage}: {message}")]
    Container {
        stage: String,
        message: String,
        hint: String,
    },
    /// A parameter override (`-S`) or an experiment (`dvx exp`) that cannot be used.
    #[error("{message}")]
    Experiment { message: String, hint: String },
    /// A notebook stage cannot run: no papermill, or a file that is not a notebook.
    #[error("stage {stage}: {message}")]
    Notebook {
        stage: String,
        message: String,
        hint: String,
    },
}

impl EngineError {
    /// Failed, invalid input or damaged data: the exit status follows from it.
    pub fn class(&self) -> ErrorClass {
        use EngineError::*;
        match self {
            Store(e) | StagePath { source: e, .. } => e.class(),
            Remote(e) => e.class(),
            Spec { .. } | NoPipeline(_) | UnknownStage(_) | Params { .. } => ErrorClass::Invalid,
            UnknownRun(_) | UnknownDatum { .. } | PathNotInRev { .. } | NotProduced { .. } => {
                ErrorClass::Invalid
            }
            Failed { .. } | SomeFailed(_) | Interrupted | NotIndexed(_) | Verify { .. } => {
                ErrorClass::Failed
            }
            Container { .. } | Notebook { .. } | Cluster { .. } | Executor(_) => ErrorClass::Failed,
            ImportDvc(_) | Experiment { .. } => ErrorClass::Invalid,
        }
    }

    pub fn hint(&self) -> Option<String> {
        use EngineError::*;
        Some(match self {
            Store(e) => return e.hint(),
            Remote(e) => return e.hint(),
            Spec { .. } => "see the dvx.yaml reference in the book (`book/src/dvx-yaml.md`)".into(),
            NoPipeline(_) => "write a dvx.yaml with a `stages:` map; `dvx run --help` shows an example".into(),
            UnknownStage(_) => "list the stages with `dvx dag`".into(),
            Params { .. } => "check params.yaml (or the file the stage names) has that key".into(),
            Failed { .. } => "see its output with `dvx logs RUN` (the run id is printed above); fix and run again: finished work is kept".into(),
            SomeFailed(_) => "the run ids of failed executions are printed above; `dvx logs RUN` shows their output".into(),
            Interrupted => "finished executions were kept; run again to continue".into(),
            UnknownRun(_) => "run ids are listed by `dvx run --json` and in `dvx log --json` (the `runs` of each commit)".into(),
            UnknownDatum { stage, .. } => format!("`dvx datums {stage}` lists the datums"),
            PathNotInRev { .. } => "`dvx ls REV` lists what a commit holds; paths are relative to the current folder".into(),
            NotProduced { path, .. } => format!("`dvx lineage {path}` shows where it came from: the commit that added it, or the run of each file in a merged folder"),
            NotIndexed(_) => "run `dvx fsck --reindex` once when no other dvx is writing".into(),
            Verify { .. } => "`dvx show RUN` prints what the run recorded".into(),
            Container { hint, .. }
            | Experiment { hint, .. }
            | Notebook { hint, .. }
            | Cluster { hint, .. } => hint.clone(),
            Executor(_) => "finished executions were kept; run again to continue".into(),
            ImportDvc(_) => "run it at the top of a DVC project whose data is checked out or in its cache (`dvc pull`); nothing was changed unless it says so".into(),
            StagePath { source, .. } => return source.hint(),
        })
    }

    pub fn spec(
        file: &std::path::Path,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> EngineError {
        EngineError::Spec {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}
