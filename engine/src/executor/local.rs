//! The local executor: a pool of worker threads on this machine, each running one job at a
//! time as a process group (or a container through the runtime's client), up to `-j` at once.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Cancel, Executor, Finished, Submission, Ticket};
use crate::container;
use crate::error::{EngineError, Result};
use crate::exec::{self, Children, Outcome};

/// The queue workers take from, and whether the pool is closing.
#[derive(Default)]
struct Queue {
    work: VecDeque<Submission>,
    closed: bool,
}

pub struct Local {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    tx: mpsc::Sender<Finished>,
    rx: Mutex<mpsc::Receiver<Finished>>,
    children: Children,
    /// At most this many workers; they are started as work arrives, so a run of three
    /// jobs at `-j 64` starts three threads.
    cap: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Run `f`, turning a panic into `None`: a worker that died without reporting its job
/// would leave the run waiting for it forever, holding the writer lock.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// The outcome of an execution whose worker panicked (a bug in dvx, reported as a failure).
fn panicked() -> Outcome {
    Outcome {
        exit: None,
        error: Some("internal error: dvx's worker panicked while running it".into()),
        duration: Duration::ZERO,
        stdout: Vec::new(),
        stderr: Vec::new(),
    }
}

/// Run one submission to its end: one outcome per ticket it reports under.
fn execute(work: &Submission, children: &Children) -> Vec<(Ticket, Outcome)> {
    match (&work.job.container, work.members.is_empty()) {
        (Some(spec), false) => {
            let n = work.members.len();
            let outcomes = guarded(|| container::run_batch(&work.job, spec, children))
                .unwrap_or_else(|| (0..n).map(|_| panicked()).collect());
            work.members.iter().copied().zip(outcomes).collect()
        }
        _ => {
            let o = guarded(|| exec::run(&work.job, children)).unwrap_or_else(panicked);
            vec![(work.ticket, o)]
        }
    }
}

fn worker(shared: Arc<(Mutex<Queue>, Condvar)>, tx: mpsc::Sender<Finished>, children: Children) {
    let (queue, ready) = &*shared;
    loop {
        let work = {
            let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(w) = g.work.pop_front() {
                    break Some(w);
                }
                if g.closed {
                    break None;
                }
                g = ready.wait(g).unwrap_or_else(|p| p.into_inner());
            }
        };
        let Some(work) = work else { return };
        let started = chrono::Utc::now();
        for (ticket, outcome) in execute(&work, &children) {
            let done = Finished {
                ticket,
                outcome,
                started,
                placement: None,
            };
            if tx.send(done).is_err() {
                return;
            }
        }
    }
}

impl Local {
    /// A pool of up to `jobs` workers whose processes are tracked in `children` (for Ctrl-C
    /// and timeouts).
    pub fn new(jobs: usize, children: &Children) -> Local {
        let (tx, rx) = mpsc::channel();
        Local {
            shared: Arc::default(),
            tx,
            rx: Mutex::new(rx),
            children: children.clone(),
            cap: jobs.max(1),
            workers: Mutex::new(Vec::new()),
        }
    }

    /// Start one more worker if the cap allows.
    fn grow(&self) -> Result<()> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if workers.len() >= self.cap {
            return Ok(());
        }
        let (shared, tx, children) = (self.shared.clone(), self.tx.clone(), self.children.clone());
        let handle = std::thread::Builder::new()
            .name(format!("dvx-worker-{}", workers.len()))
            .spawn(move || worker(shared, tx, children))
            .map_err(|e| EngineError::Executor(format!("cannot start a worker thread: {e}")))?;
        workers.push(handle);
        Ok(())
    }
}

impl Executor for Local {
    fn submit(&self, work: Submission) -> Result<()> {
        let (queue, ready) = &*self.shared;
        queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .work
            .push_back(work);
        // One more worker per job handed over, until the cap (`grow` checks it).
        self.grow()?;
        ready.notify_one();
        Ok(())
    }

    fn poll(&self, wait: Duration) -> Result<Vec<Finished>> {
        self.children.reap_overdue();
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(f) => out.push(f),
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(out),
            // The pool holds a sender itself, so this cannot happen while it lives.
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(out),
        }
        while let Ok(f) = rx.try_recv() {
            out.push(f);
        }
        Ok(out)
    }

    fn cancel(&self, what: Cancel) -> Vec<Ticket> {
        let withdrawn: Vec<Submission> = {
            let (queue, _) = &*self.shared;
            let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
            g.work.drain(..).collect()
        };
        if what == Cancel::Everything {
            self.children.cancel_all();
        }
        withdrawn
            .into_iter()
            .flat_map(|w| {
                if w.members.is_empty() {
                    vec![w.ticket]
                } else {
                    w.members
                }
            })
            .collect()
    }
}

impl Drop for Local {
    /// Close the queue and wait for the workers: what runs finishes (or was killed).
    fn drop(&mut self) {
        {
            let (queue, ready) = &*self.shared;
            let mut g = queue.lock().unwrap_or_else(|p| p.into_inner());
            g.closed = true;
            g.work.clear();
            ready.notify_all();
        }
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn job(cmd: &str) -> exec::Job {
        exec::Job {
            cmds: vec![cmd.to_string()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::new(),
            timeout: None,
            container: None,
            live: None,
        }
    }

    fn drain(pool: &Local, n: usize) -> Vec<Finished> {
        let mut got = Vec::new();
        while got.len() < n {
            got.extend(pool.poll(Duration::from_millis(50)).unwrap());
        }
        got
    }

    #[test]
    fn every_submission_reports_under_its_ticket() {
        let pool = Local::new(2, &Children::default());
        for (t, cmd) in [(7, "true"), (8, "exit 3"), (9, "echo hi")] {
            pool.submit(Submission {
                ticket: t,
                job: job(cmd),
                members: vec![],
                portable: None,
                batch: vec![],
            })
            .unwrap();
        }
        let mut got = drain(&pool, 3);
        got.sort_by_key(|f| f.ticket);
        let exits: Vec<_> = got.iter().map(|f| (f.ticket, f.outcome.exit)).collect();
        assert_eq!(exits, [(7, Some(0)), (8, Some(3)), (9, Some(0))]);
        assert_eq!(got[2].outcome.stdout, b"hi\n");
        assert!(pool.workers.lock().unwrap().len() <= 2);
    }

    #[test]
    fn cancelling_queued_work_withdraws_what_has_not_started() {
        let pool = Local::new(1, &Children::default());
        for t in 0..3 {
            pool.submit(Submission {
                ticket: t,
                job: job("sleep 0.3"),
                members: vec![],
                portable: None,
                batch: vec![],
            })
            .unwrap();
        }
        // The one worker has taken (at most) the first; the others are withdrawn.
        std::thread::sleep(Duration::from_millis(100));
        let withdrawn = pool.cancel(Cancel::Queued);
        assert_eq!(withdrawn, [1, 2]);
        let got = drain(&pool, 1);
        assert_eq!(got[0].ticket, 0);
        assert_eq!(got[0].outcome.exit, Some(0));
    }

    #[test]
    fn cancelling_everything_kills_what_runs() {
        let children = Children::default();
        let pool = Local::new(1, &children);
        pool.submit(Submission {
            ticket: 1,
            job: job("sleep 30"),
            members: vec![],
            portable: None,
            batch: vec![],
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(pool.cancel(Cancel::Everything).is_empty());
        let got = drain(&pool, 1);
        assert_eq!(got[0].outcome.exit, None);
        assert_eq!(got[0].outcome.error.as_deref(), Some("interrupted"));
    }
}
