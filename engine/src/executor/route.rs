//! One executor made of several: each submission goes where its stage asked to run
//! (`executor:` in dvx.yaml) or, if it did not ask, where the run was told to (`dvx run
//! --executor`), and polling and cancelling reach them all.

use std::time::{Duration, Instant};

use super::{Cancel, Executor, Finished, Submission, Ticket};
use crate::error::{EngineError, Result};
use crate::spec::ExecutorKind;

pub struct Routed<'a> {
    pub local: &'a dyn Executor,
    pub slurm: Option<&'a dyn Executor>,
    /// Where stages that name no executor run.
    pub default: ExecutorKind,
}

/// How long one look at the local executor may wait while a cluster's executor also has
/// work: short, so neither waits on the other.
const SLICE: Duration = Duration::from_millis(20);

impl Executor for Routed<'_> {
    fn submit(&self, work: Submission) -> Result<()> {
        let kind = work
            .portable
            .as_ref()
            .and_then(|p| p.stage.executor)
            .unwrap_or(self.default);
        match (kind, self.slurm) {
            (ExecutorKind::Local, _) => self.local.submit(work),
            (ExecutorKind::Slurm, Some(s)) => s.submit(work),
            (ExecutorKind::Slurm, None) => Err(EngineError::Executor(
                "a stage asks for slurm, but no slurm executor was set up for this run".into(),
            )),
        }
    }

    fn poll(&self, wait: Duration) -> Result<Vec<Finished>> {
        let Some(slurm) = self.slurm else {
            return self.local.poll(wait);
        };
        let deadline = Instant::now() + wait;
        loop {
            let mut out = self.local.poll(SLICE.min(wait))?;
            out.extend(slurm.poll(Duration::ZERO)?);
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    fn cancel(&self, what: Cancel) -> Vec<Ticket> {
        let mut out = self.local.cancel(what);
        if let Some(s) = self.slurm {
            out.extend(s.cancel(what));
        }
        out
    }
}
