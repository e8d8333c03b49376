//! The executor seam: `dvx run` and `dvx verify` hand jobs to an executor and learn their
//! outcomes later. An executor may run a job here (a process group, or a container through
//! the runtime's client: [`Local`]) or submit it elsewhere and find out when it ends (a
//! cluster's queue), so the interface is submit / poll / cancel rather than a blocking call.
//!
//! What a job is (commands, environment, mounts) is decided once by the job builder
//! (`crate::job`); what to do with an outcome (retry, record, fail the stage) is decided by
//! the scheduler (`crate::run`). An executor only moves jobs and outcomes.

use std::time::Duration;

use crate::error::Result;
use crate::exec::{Job, Outcome};

mod adopt;
mod local;

pub use adopt::Adopt;
pub use local::Local;

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
}

/// One execution that ended, however it ended.
pub struct Finished {
    pub ticket: Ticket,
    pub outcome: Outcome,
    /// When the execution started (not when it was submitted).
    pub started: chrono::DateTime<chrono::Utc>,
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
    })?;
    loop {
        if let Some(f) = exec.poll(Duration::from_millis(100))?.into_iter().next() {
            return Ok(f.outcome);
        }
    }
}
