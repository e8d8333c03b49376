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
    pub ray: Option<&'a dyn Executor>,
    pub kubernetes: Option<&'a dyn Executor>,
    /// Where stages that name no executor run.
    pub default: ExecutorKind,
}

/// How long one look at the local executor may wait while a cluster's executor also has
/// work: short, so neither waits on the other.
const SLICE: Duration = Duration::from_millis(20);

impl<'a> Routed<'a> {
    fn clusters(&self) -> impl Iterator<Item = &'a dyn Executor> {
        self.slurm
            .into_iter()
            .chain(self.ray)
            .chain(self.kubernetes)
    }
}

impl Executor for Routed<'_> {
    fn submit(&self, work: Submission) -> Result<()> {
        let kind = work
            .portable
            .as_ref()
            .or(work.batch.first())
            .and_then(|p| p.stage.executor)
            .unwrap_or(self.default);
        let target = match kind {
            ExecutorKind::Local => Some(self.local),
            ExecutorKind::Slurm => self.slurm,
            ExecutorKind::Ray => self.ray,
            ExecutorKind::Kubernetes => self.kubernetes,
        };
        match target {
            Some(e) => e.submit(work),
            None => Err(EngineError::Executor(format!(
                "a stage asks for {0}, but no {0} executor was set up for this run",
                kind.name()
            ))),
        }
    }

    fn poll(&self, wait: Duration) -> Result<Vec<Finished>> {
        let clusters: Vec<&dyn Executor> = self.clusters().collect();
        if clusters.is_empty() {
            return self.local.poll(wait);
        }
        let deadline = Instant::now() + wait;
        loop {
            let mut out = self.local.poll(SLICE.min(wait))?;
            for c in &clusters {
                out.extend(c.poll(Duration::ZERO)?);
            }
            if !out.is_empty() || Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    fn cancel(&self, what: Cancel) -> Vec<Ticket> {
        let mut out = self.local.cancel(what);
        for c in self.clusters() {
            out.extend(c.cancel(what));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::{Job, Outcome};
    use crate::executor::{Portable, PortableStage};
    use std::sync::{Arc, Mutex};

    /// Remembers what it was given and reports it back as done.
    #[derive(Default)]
    struct Fake {
        got: Mutex<Vec<Ticket>>,
        done: Mutex<Vec<Ticket>>,
    }

    impl Executor for Fake {
        fn submit(&self, work: Submission) -> Result<()> {
            self.got.lock().unwrap().push(work.ticket);
            self.done.lock().unwrap().push(work.ticket);
            Ok(())
        }
        fn poll(&self, _wait: Duration) -> Result<Vec<Finished>> {
            Ok(std::mem::take(&mut *self.done.lock().unwrap())
                .into_iter()
                .map(|ticket| Finished {
                    ticket,
                    outcome: Outcome {
                        exit: Some(0),
                        error: None,
                        duration: Duration::ZERO,
                        stdout: vec![],
                        stderr: vec![],
                    },
                    started: chrono::Utc::now(),
                    placement: None,
                })
                .collect())
        }
        fn cancel(&self, _what: Cancel) -> Vec<Ticket> {
            self.got.lock().unwrap().clone()
        }
    }

    fn work(ticket: Ticket, executor: Option<ExecutorKind>) -> Submission {
        let stage = Arc::new(PortableStage {
            name: "s".into(),
            executor,
            cmd: vec![],
            env: Default::default(),
            wdir: String::new(),
            timeout_secs: None,
            resources: Default::default(),
            image: None,
            image_ref: None,
            network: false,
            outs: vec![],
            inputs: vec![],
            root: std::env::temp_dir(),
        });
        Submission {
            ticket,
            job: Job {
                cmds: vec![],
                cwd: std::env::temp_dir(),
                env: Default::default(),
                timeout: None,
                container: None,
                live: None,
            },
            members: vec![],
            batch: vec![],
            portable: Some(Portable {
                stage,
                datum: None,
                out_dir: None,
                members: vec![],
                group: false,
            }),
        }
    }

    #[test]
    fn each_stage_goes_where_it_asked_and_the_rest_where_the_run_says() {
        let (local, slurm, ray, kube) = (
            Fake::default(),
            Fake::default(),
            Fake::default(),
            Fake::default(),
        );
        let r = Routed {
            local: &local,
            slurm: Some(&slurm),
            ray: Some(&ray),
            kubernetes: Some(&kube),
            default: ExecutorKind::Slurm,
        };
        r.submit(work(1, None)).unwrap();
        r.submit(work(2, Some(ExecutorKind::Local))).unwrap();
        r.submit(work(3, Some(ExecutorKind::Slurm))).unwrap();
        r.submit(work(5, Some(ExecutorKind::Ray))).unwrap();
        assert_eq!(*local.got.lock().unwrap(), [2]);
        assert_eq!(*slurm.got.lock().unwrap(), [1, 3]);
        assert_eq!(*ray.got.lock().unwrap(), [5]);
        r.submit(work(7, Some(ExecutorKind::Kubernetes))).unwrap();
        assert_eq!(*kube.got.lock().unwrap(), [7]);
        let mut done: Vec<Ticket> = r
            .poll(Duration::from_millis(10))
            .unwrap()
            .into_iter()
            .map(|f| f.ticket)
            .collect();
        done.sort();
        assert_eq!(done, [1, 2, 3, 5, 7]);
        let mut cancelled = r.cancel(Cancel::Everything);
        cancelled.sort();
        assert_eq!(cancelled, [1, 2, 3, 5, 7]);
        // Without a slurm executor, a stage asking for it is an error, not a local run.
        let alone = Routed {
            local: &local,
            slurm: None,
            ray: None,
            kubernetes: None,
            default: ExecutorKind::Local,
        };
        assert!(alone.submit(work(4, Some(ExecutorKind::Slurm))).is_err());
        assert!(alone.submit(work(6, Some(ExecutorKind::Ray))).is_err());
        assert!(alone
            .submit(work(8, Some(ExecutorKind::Kubernetes)))
            .is_err());
    }
}
