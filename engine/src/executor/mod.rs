//! The executor seam: `dvx run` and `dvx verify` hand jobs to an executor and learn their
//! outcomes later. An executor may run a job here (a process group, or a container through
//! the runtime's client: [`Local`]) or submit it elsewhere and find out when it ends (a
//! cluster's queue), so the interface is submit / poll / cancel rather than a blocking call.
//!
//! What a job is (commands, environment, mounts) is decided once by the job builder
//! (`crate::job`); what to do with an outcome (retry, record, fail the stage) is decided by
//! the scheduler (`crate::run`). An executor only moves jobs and outcomes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dvx_store::object::EntryKind;
use dvx_store::Id;

use crate::error::Result;
use crate::exec::{Job, Outcome};
use crate::spec::{ExecutorKind, Resources};

mod adopt;
pub mod cluster;
pub mod kubernetes;
mod local;
pub mod ray;
mod route;
pub mod slurm;
pub mod worker;

pub use adopt::Adopt;
pub use local::Local;
pub use route::Routed;

/// Names one submitted execution; chosen by the caller, unique within a run.
pub type Ticket = u64;

/// Work handed to an executor.
pub struct Submission {
    pub ticket: Ticket,
    pub job: Job,
    /// A batch (`batch:`): several datums run by one job in one container, each with its own
    /// outcome reported under its own ticket, in this order. Empty for a single execution,
    /// whose outcome comes under `ticket`.
    pub members: Vec<Ticket>,
    /// The job before it knew where it runs, for executors elsewhere (a cluster's worker
    /// builds the job itself, in its own folder, with the same job builder).
    pub portable: Option<Portable>,
    /// A batch for an executor elsewhere: each member's portable job, in `members` order.
    pub batch: Vec<Portable>,
}

/// An input's kind and id as the plan saw them.
pub type Known = (EntryKind, Id);

/// What a stage's executions share, for an executor elsewhere.
#[derive(Debug)]
pub struct PortableStage {
    pub name: String,
    /// Where the stage asked to run (`executor:`), if it did.
    pub executor: Option<ExecutorKind>,
    pub cmd: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    pub wdir: String,
    pub timeout_secs: Option<u64>,
    pub resources: Resources,
    /// `NAME@sha256:ID` of a container stage's image, as resolved for its key.
    pub image: Option<String>,
    /// A container stage's image as written in dvx.yaml, for a cluster that pulls it from a
    /// registry (it must then be pinned by digest).
    pub image_ref: Option<String>,
    pub network: bool,
    /// Outputs of a stage without datums.
    pub outs: Vec<String>,
    /// Files and folders the commands read (deps and params files), project-relative, with
    /// the id the plan saw (None: not hashed by the plan, like a params file).
    pub inputs: Vec<(String, Option<Known>)>,
    /// The project's top folder here.
    pub root: PathBuf,
}

/// One execution of a stage, for an executor elsewhere.
#[derive(Clone, Debug)]
pub struct Portable {
    pub stage: Arc<PortableStage>,
    /// The datum: its id, project-relative input path and the input's id.
    pub datum: Option<(String, String, Option<Known>)>,
    /// Where a datum's output must be when the execution reports.
    pub out_dir: Option<PathBuf>,
    /// A datum of combined inputs: its matches (the datum's path is then empty).
    pub members: Vec<PortableMember>,
    /// The members are a `group`.
    pub group: bool,
}

/// One match of a combined datum.
#[derive(Clone, Debug)]
pub struct PortableMember {
    /// The input's name.
    pub name: String,
    /// Its place in the datum's input folder (`name/sub`).
    pub place: String,
    /// Project-relative path, and the id the plan saw.
    pub path: String,
    pub known: Option<Known>,
}

/// One execution that ended, however it ended.
pub struct Finished {
    pub ticket: Ticket,
    pub outcome: Outcome,
    /// When the execution started (not when it was submitted).
    pub started: chrono::DateTime<chrono::Utc>,
    /// Where it ran, for executors elsewhere (None: here, by the local executor).
    pub placement: Option<Placement>,
}

/// Where an execution ran on a cluster, for its run record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub executor: &'static str,
    /// The cluster's id of the job.
    pub job: String,
    /// The node that ran it.
    pub host: String,
    /// When it was submitted (RFC 3339).
    pub queued: String,
}

/// What [`Executor::cancel`] stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// Work not yet started: a stage failed and nothing new should begin; what runs finishes.
    Queued,
    /// Everything (Ctrl-C): queued work is withdrawn and running work is killed; a killed
    /// execution still reports, as interrupted.
    Everything,
}

/// Runs jobs somewhere and reports how they ended.
pub trait Executor {
    /// Hand over a job. It runs when the executor has room; its outcome comes from `poll`.
    fn submit(&self, work: Submission) -> Result<()>;

    /// Executions that ended since the last call, waiting up to `wait` for the first one.
    /// Also the executor's clock: timeouts are enforced here.
    fn poll(&self, wait: Duration) -> Result<Vec<Finished>>;

    /// Stop work. Returns the tickets that will never report (withdrawn before they started).
    fn cancel(&self, what: Cancel) -> Vec<Ticket>;
}

/// Run one job to its end on `exec` (verify's single execution).
pub fn run_one(exec: &dyn Executor, job: Job) -> Result<Outcome> {
    exec.submit(Submission {
        ticket: 0,
        job,
        members: Vec::new(),
        portable: None,
        batch: Vec::new(),
    })?;
    loop {
        if let Some(f) = exec.poll(Duration::from_millis(100))?.into_iter().next() {
            return Ok(f.outcome);
        }
    }
}
