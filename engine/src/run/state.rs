//! What a run knows while it runs: one `RunState` instead of accumulators passed around,
//! and the per-stage and per-execution pieces it holds.

use super::*;

/// A stage after looking at the workspace: its key(s) and what must happen.
pub(super) struct Prepared {
    pub deps: BTreeMap<String, Option<InputId>>,
    /// Bytes of each dep (a folder: all its files), for run records.
    pub dep_sizes: BTreeMap<String, u64>,
    /// The files inside folder deps, for the lineage index.
    pub dep_files: BTreeMap<String, Flat>,
    pub params: BTreeMap<String, Value>,
    pub key: Id,
    pub datums: Vec<(Datum, Id)>,
    pub reasons: Vec<String>,
    pub up_to_date: bool,
    /// Notebook stages: what the plan read of the notebook.
    pub notebook: Option<PreparedNotebook>,
}

/// A notebook stage's notebook as planned: in `deps` (and so in the key and dvx.lock) it is
/// its normalized cells (kind `notebook`); run records keep the file as it was.
pub(super) struct PreparedNotebook {
    pub file: Option<InputId>,
    pub cells: Id,
    pub parameters_cell: bool,
}

/// One execution the scheduler hands to the executor (or, for `batch:`, several datums run
/// together; each keeps its own task for its record and for retries, which run it alone).
pub(super) struct Task {
    pub stage: usize,
    pub datum: Option<(Datum, Id)>,
    pub job: Job,
    pub out_dir: Option<PathBuf>,
    pub key: Id,
    pub retries: u32,
    /// Attempts made before this one (0 on the first).
    pub attempt: u32,
    pub batch: Vec<Task>,
    /// The job before it knew where it runs, for executors elsewhere.
    pub portable: Option<Portable>,
}

impl Task {
    /// How many executions (records) the task yields.
    pub fn executions(&self) -> usize {
        self.batch.len().max(1)
    }
}

/// An execution that ended and will be recorded.
pub(super) struct Done {
    pub task: Task,
    pub outcome: Outcome,
    pub start: chrono::DateTime<chrono::Utc>,
    /// Where it ran, when on a cluster.
    pub placement: Option<Placement>,
}

/// What merging a datum's output needs of its run record: a whole record per datum held
/// until the stage ends was most of a 100k-datum run's memory.
#[derive(Clone, Debug)]
pub(super) struct DatumRun {
    pub datum: Option<String>,
    pub key: Id,
    /// The tree of the folder it wrote (its record's first output).
    pub out: Option<Id>,
}

impl DatumRun {
    pub fn of(rec: &RunRecord) -> DatumRun {
        DatumRun {
            datum: rec.datum.clone(),
            key: rec.key,
            out: rec.outputs.first().map(|o| o.id),
        }
    }
}

#[derive(Default)]
pub(super) struct StageState {
    pub pending: usize,
    /// The records of its executions (and, for datums, those restored), as merging needs them.
    pub records: Vec<DatumRun>,
    pub failed: bool,
    pub report: Option<StageReport>,
    /// `--datum`: one datum ran for debugging; the stage's outputs are left as they were.
    pub debug_only: bool,
    /// Output folders of datums executed in this run (datum id -> scratch folder): their
    /// files can be moved into place instead of being written again from the store.
    pub fresh_dirs: HashMap<String, PathBuf>,
    /// Datum stages: the table of the last run, and whether this run starts from its output.
    pub datums: super::merge::DatumPlan,
    /// Datums not yet handed to the executor (their place in the stage's prepared datums);
    /// they count in `pending`.
    pub waiting: std::collections::VecDeque<usize>,
    /// The stage's portable form, for the tasks made from `waiting`.
    pub portable: Option<Arc<PortableStage>>,
}

/// Everything a run accumulates, from the first stage started to the commit.
#[derive(Default)]
pub(super) struct RunState {
    pub summary: RunSummary,
    pub stages: Vec<StageState>,
    pub prepared: HashMap<usize, Prepared>,
    /// Stages reported stale or restored: a dry run's downstream stages would change too.
    /// A set, so that planning stays linear in stages (a search of the reports was not).
    pub changing: HashSet<String>,
    /// Stages looked at, and those done (with whether they succeeded).
    pub started: BTreeSet<usize>,
    pub finished: BTreeMap<usize, bool>,
    /// Records this run made or restored: the commit names them.
    pub runs_made: Vec<Id>,
    /// New dvx.lock entries, written after the commit.
    pub new_locks: BTreeMap<String, LockedStage>,
    /// Outputs to store in the run's commit.
    pub commit_paths: Vec<String>,
    /// Of those, the ones whose trees this run wrote and stored as it wrote them (merged datum
    /// outputs): the commit takes them as they are instead of walking them again.
    pub written: BTreeMap<String, Flat>,
    /// Stages with datums `waiting`, so that topping up does not look at every stage.
    pub waiting_stages: BTreeSet<usize>,
    /// Executions handed to the executor and not yet reported, by ticket.
    pub in_flight: HashMap<Ticket, Task>,
    /// Their output so far (not for batches), for the live file.
    pub tails: HashMap<Ticket, crate::livelog::LiveTail>,
    /// Nothing new starts (a failure without `--keep-going`, or Ctrl-C).
    pub stop: bool,
    /// Numbers tickets and scratch folders.
    counter: u64,
    /// When the run started (RFC 3339), and when the live file was last written.
    pub began: String,
    pub live_at: Option<Instant>,
}

/// What a task keeps of its job once the executor has it: the container it runs in (its
/// record names the runtime and image), not the commands and environment.
fn husk(job: &Job) -> Job {
    Job {
        cmds: Vec::new(),
        cwd: PathBuf::new(),
        env: BTreeMap::new(),
        timeout: job.timeout,
        container: job.container.clone(),
        live: None,
    }
}

impl RunState {
    pub fn new(stages: usize) -> RunState {
        RunState {
            stages: (0..stages).map(|_| StageState::default()).collect(),
            began: chrono::Utc::now().to_rfc3339(),
            ..Default::default()
        }
    }

    /// A number not used before in this run.
    pub fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// Stages started and not finished, in order.
    pub fn started_stages(&self) -> Vec<usize> {
        self.started
            .iter()
            .copied()
            .filter(|i| !self.finished.contains_key(i))
            .collect()
    }

    /// Stages started and not finished.
    pub fn running(&self) -> usize {
        self.started
            .iter()
            .filter(|i| !self.finished.contains_key(i))
            .count()
    }

    /// A stage's report for the summary.
    pub fn report(&mut self, r: StageReport) {
        if matches!(r.state, StageStatus::Stale | StageStatus::Restored) {
            self.changing.insert(r.stage.clone());
        }
        self.summary.stages.push(r);
    }

    /// A warning for the summary (the CLI prints it; `--json` carries it).
    pub fn warn(&mut self, message: String) {
        if !self.summary.warnings.contains(&message) {
            self.summary.warnings.push(message);
        }
    }

    /// Hand a task to the executor: a batch under one ticket per member.
    pub fn submit(&mut self, exec: &dyn Executor, mut task: Task) -> Result<()> {
        let ticket = self.next();
        let members = std::mem::take(&mut task.batch);
        let members_len = members.len();
        let tickets: Vec<Ticket> = members
            .into_iter()
            .map(|m| {
                let t = self.next();
                self.in_flight.insert(t, m);
                t
            })
            .collect();
        let batch: Vec<Portable> = tickets
            .iter()
            .filter_map(|t| self.in_flight.get(t).and_then(|m| m.portable.clone()))
            .collect();
        let (job, portable) = if tickets.is_empty() {
            let tail = crate::livelog::LiveTail::default();
            // A task that will not be submitted again hands its job and portable form to the
            // executor instead of a copy: what it keeps is what its record needs (where it
            // ran). A copy of each per datum held 29 of the 168 MB a 20k-datum run peaked at.
            let last = task.attempt >= task.retries;
            let mut job = if last {
                let kept = husk(&task.job);
                std::mem::replace(&mut task.job, kept)
            } else {
                task.job.clone()
            };
            job.live = Some(tail.clone());
            self.tails.insert(ticket, tail);
            let portable = if last {
                task.portable.take()
            } else {
                task.portable.clone()
            };
            self.in_flight.insert(ticket, task);
            (job, portable)
        } else {
            (task.job, None)
        };
        exec.submit(Submission {
            ticket,
            job,
            members: tickets,
            portable,
            // Every member's, or none (a container batch runs here).
            batch: if batch.len() == members_len {
                batch
            } else {
                Vec::new()
            },
        })
    }

    /// Nothing new starts: the datums still waiting are dropped and their stages fail.
    /// Returns the stages that have nothing left to wait for.
    pub fn drop_waiting(&mut self) -> Vec<usize> {
        let mut emptied = Vec::new();
        for i in std::mem::take(&mut self.waiting_stages) {
            let st = &mut self.stages[i];
            st.pending -= st.waiting.len();
            st.waiting.clear();
            st.portable = None;
            st.failed = true;
            if st.pending == 0 {
                emptied.push(i);
            }
        }
        emptied
    }

    /// Executions withdrawn before they started: their stages fail. Returns the stages
    /// that have nothing left to wait for.
    pub fn withdrawn(&mut self, tickets: Vec<Ticket>) -> Vec<usize> {
        let mut emptied = Vec::new();
        for t in tickets {
            self.tails.remove(&t);
            let Some(task) = self.in_flight.remove(&t) else {
                continue;
            };
            let st = &mut self.stages[task.stage];
            st.pending -= 1;
            st.failed = true;
            if st.pending == 0 && !emptied.contains(&task.stage) {
                emptied.push(task.stage);
            }
        }
        emptied
    }
}
