//! Starting a stage: restoring what the run cache has, queueing the rest as tasks.

use super::*;

impl Engine<'_> {
    /// Decide a stage: skip, restore, or hand its executions to the executor. Returns true
    /// when executions were submitted (the stage finishes as they report), false when the
    /// stage is done now.
    pub(super) fn start_stage(
        &self,
        i: usize,
        opts: &RunOptions,
        run: &mut RunState,
        exec: &dyn Executor,
        progress: &dyn Progress,
    ) -> Result<bool> {
        let s = &self.pipeline.stages[i];
        let mut report = StageReport {
            stage: s.name.clone(),
            state: StageStatus::default(),
            reasons: vec![],
            datums: s.input.as_ref().map(|_| DatumCounts::default()),
            runs: vec![],
        };
        // Before anything of the stage is read, deleted or run.
        crate::confine::check_stage(&self.repo.root, s)?;
        if s.frozen && !opts.force {
            report.state = StageStatus::Frozen;
            run.summary.skipped += 1;
            run.report(report);
            return Ok(false);
        }
        let p = self.prepare(i, opts, run, progress)?;
        report.reasons = p.reasons.clone();
        if let Some(d) = report.datums.as_mut() {
            d.total = p.datums.len() as u64;
        }
        if p.up_to_date {
            report.state = StageStatus::Skipped;
            run.summary.skipped += 1;
            run.report(report);
            return Ok(false);
        }
        let use_cache = !opts.no_run_cache && !opts.force && !s.always_changed;
        let mut tasks = Vec::new();
        let portable = self.portable_stage(s, &p);
        if s.input.is_none() {
            if use_cache {
                if let Some((rid, rec)) = record::cached(&self.repo.store, &p.key)? {
                    report.state = StageStatus::Restored;
                    report.runs.push(rid);
                    if !opts.dry_run {
                        // The commit names the record it restored, so history (metrics,
                        // params, lineage) sees which run these outputs came from.
                        run.runs_made.push(rid);
                    }
                    if !opts.dry_run {
                        let outs = Self::outputs_of(&rec);
                        self.restore(&outs, progress)?;
                        let mut all = outs.clone();
                        for o in s.all_outs().filter(|o| !o.cache) {
                            all.insert(o.path.clone(), None);
                        }
                        let now = self.repo.path_ids(
                            &s.all_outs().map(|o| o.path.clone()).collect::<Vec<_>>(),
                            progress,
                        )?;
                        run.new_locks
                            .insert(s.name.clone(), self.locked_entry(s, &p, &now));
                        run.commit_paths
                            .extend(s.all_outs().filter(|o| o.cache).map(|o| o.path.clone()));
                    }
                    run.summary.restored += 1;
                    run.report(report);
                    return Ok(false);
                }
            }
            if opts.dry_run {
                report.state = StageStatus::Stale;
                run.report(report);
                return Ok(false);
            }
            // Outputs are removed before the run, unless persist (or adopted as they are).
            let keep = opts.adopt.is_some();
            for o in s.all_outs().filter(|o| !o.persist && !keep) {
                let abs = self.repo.root.join(&o.path);
                match std::fs::symlink_metadata(&abs) {
                    Ok(m) if m.is_dir() => {
                        std::fs::remove_dir_all(&abs).map_err(|e| StoreError::io(&abs, e))?
                    }
                    Ok(_) => std::fs::remove_file(&abs).map_err(|e| StoreError::io(&abs, e))?,
                    Err(_) => {}
                }
                if let Some(parent) = abs.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                }
            }
            if s.image.is_some() && !keep {
                // Each output is mounted writable at its place, so it must exist first.
                for o in s.all_outs() {
                    let abs = self.repo.root.join(&o.path);
                    if let Some(parent) = abs.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
                    }
                    container::prepare_output(&abs)?;
                }
            }
            tasks.push(Task {
                stage: i,
                datum: None,
                job: self.job_for(s, None, None, &p.params)?,
                out_dir: None,
                key: p.key,
                retries: s.retries,
                attempt: 0,
                batch: Vec::new(),
                portable: Some(Portable {
                    stage: portable.clone(),
                    datum: None,
                    out_dir: None,
                    members: Vec::new(),
                    group: false,
                }),
            });
        } else {
            let mut restored_records = Vec::new();
            if let Some(only) = &opts.datum {
                if !p.datums.iter().any(|(d, _)| &d.id == only) {
                    return Err(EngineError::UnknownDatum {
                        stage: s.name.clone(),
                        datum: only.clone(),
                    });
                }
                run.stages[i].debug_only = true;
            }
            let plan = self.datum_plan(s, &p, use_cache && opts.datum.is_none())?;
            // A cluster runs a batch of portable tasks: one Slurm or Ray job runs them in turn,
            // one Indexed Job on Kubernetes one pod each (in the stage's image, if it has one).
            let on_cluster = match s.executor {
                Some(spec::ExecutorKind::Slurm | spec::ExecutorKind::Ray) => s.image.is_none(),
                Some(spec::ExecutorKind::Kubernetes) => true,
                _ => false,
            };
            // Datums that are not batched reach the executor a window at a time
            // (`top_up`); batches are made of every task at once.
            let windowed = !(s.batch > 1 && (on_cluster || s.image.is_some()));
            let mut waiting = std::collections::VecDeque::new();
            for (n, (d, k)) in p.datums.iter().enumerate() {
                if opts.datum.as_ref().is_some_and(|only| &d.id != only) {
                    continue;
                }
                if plan.is_kept(n) {
                    continue; // its files are in the output this run starts from
                }
                if use_cache && opts.datum.is_none() {
                    if let Some((_, rec)) = record::cached(&self.repo.store, k)? {
                        restored_records.push(DatumRun {
                            datum: Some(d.id.clone()),
                            ..DatumRun::of(&rec)
                        });
                        continue;
                    }
                }
                if opts.dry_run {
                    continue;
                }
                if windowed {
                    waiting.push_back(n);
                } else {
                    tasks.push(self.datum_task(i, (d, k), &p, &portable, run.next())?);
                }
            }
            if on_cluster && s.batch > 1 && tasks.len() > 1 {
                // One job runs several datums, each still its own task and result.
                let mut batched = Vec::new();
                let mut rest = tasks.into_iter().peekable();
                while rest.peek().is_some() {
                    let members: Vec<Task> = rest.by_ref().take(s.batch as usize).collect();
                    batched.push(Task {
                        stage: i,
                        datum: None,
                        job: members[0].job.clone(),
                        out_dir: None,
                        key: members[0].key,
                        retries: s.retries,
                        attempt: 0,
                        batch: members,
                        portable: None,
                    });
                }
                tasks = batched;
            } else if s.image.is_some() && s.batch > 1 && tasks.len() > 1 {
                let mut batched = Vec::new();
                let mut rest = tasks.into_iter().peekable();
                while rest.peek().is_some() {
                    let members: Vec<Task> = rest.by_ref().take(s.batch as usize).collect();
                    let log_dir = self.scratch.join(format!("b{}", run.next()));
                    std::fs::create_dir(&log_dir).map_err(|e| StoreError::io(&log_dir, e))?;
                    batched.push(self.batch_task(s, i, members, log_dir)?);
                }
                tasks = batched;
            }
            let restored = (restored_records.len() + plan.kept_count()) as u64;
            if let Some(dc) = report.datums.as_mut() {
                dc.restored = restored;
            }
            run.summary.restored += restored;
            run.stages[i].records = restored_records;
            run.stages[i].datums = plan;
            if !waiting.is_empty() {
                run.stages[i].waiting = waiting;
                run.stages[i].portable = Some(portable.clone());
                run.waiting_stages.insert(i);
            }
            if opts.dry_run {
                let would = p.datums.len() - restored as usize;
                report.state = if would == 0 {
                    StageStatus::Restored
                } else {
                    StageStatus::Stale
                };
                report.reasons.push(format!(
                    "{would} of {} datums would execute",
                    p.datums.len()
                ));
                run.report(report);
                return Ok(false);
            }
        }
        report.state = StageStatus::Executed;
        run.stages[i].report = Some(report);
        let waiting = run.stages[i].waiting.len();
        if tasks.is_empty() && waiting == 0 {
            // Every datum came from the cache.
            run.prepared.insert(i, p);
            let ok = self.finish_stage(i, run, progress)?;
            if let Some(mut r) = run.stages[i].report.take() {
                if ok {
                    r.state = StageStatus::Restored;
                }
                run.report(r);
            }
            return Ok(false);
        }
        if let (Some(nb), Some(pn)) = (&s.notebook, &p.notebook) {
            // As papermill: parameters go on top of a notebook without a `parameters` cell.
            if !pn.parameters_cell && (!p.params.is_empty() || s.input.is_some()) {
                run.warn(crate::notebook::no_parameters_cell(&s.name, &nb.path));
            }
        }
        run.stages[i].pending = tasks.iter().map(Task::executions).sum::<usize>() + waiting;
        progress.start(&s.name, run.stages[i].pending as u64);
        run.prepared.insert(i, p);
        for t in tasks {
            run.submit(exec, t)?;
        }
        self.top_up(run, exec)?;
        Ok(true)
    }

    /// The task that executes the datum `d` (with its key) of stage `i`: its scratch output
    /// folder (numbered `no`), its job, and its portable form for executors elsewhere.
    fn datum_task(
        &self,
        i: usize,
        (d, k): (&Datum, &Id),
        p: &Prepared,
        portable: &Arc<PortableStage>,
        no: u64,
    ) -> Result<Task> {
        let s = &self.pipeline.stages[i];
        let out_dir = self.scratch.join(format!("t{no}"));
        std::fs::create_dir(&out_dir).map_err(|e| StoreError::io(&out_dir, e))?;
        let input = d.input.as_ref().map(|i| {
            (
                EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                i.id,
            )
        });
        Ok(Task {
            stage: i,
            datum: Some((d.clone(), *k)),
            job: self.job_for(s, Some(d), Some(&out_dir), &p.params)?,
            portable: Some(Portable {
                stage: portable.clone(),
                datum: Some((d.id.clone(), d.path.clone(), input)),
                out_dir: Some(out_dir.clone()),
                members: Self::portable_members(d),
                group: super::jobs::is_group(s),
            }),
            out_dir: Some(out_dir),
            key: *k,
            retries: s.retries,
            attempt: 0,
            batch: Vec::new(),
        })
    }

    /// Hand the datums of running stages to the executor until `WINDOW` of a stage's are in
    /// flight. Building every datum's task up front held every job (its commands and
    /// environment) in memory until the stage ended: most of a 100k-datum run's memory.
    pub(super) fn top_up(&self, run: &mut RunState, exec: &dyn Executor) -> Result<()> {
        if run.stop {
            return Ok(());
        }
        let stages: Vec<usize> = run.waiting_stages.iter().copied().collect();
        for i in stages {
            loop {
                let st = &mut run.stages[i];
                if st.pending - st.waiting.len() >= WINDOW {
                    break;
                }
                let (Some(n), Some(portable)) = (st.waiting.pop_front(), st.portable.clone())
                else {
                    break;
                };
                let no = run.next();
                let Some(p) = run.prepared.get(&i) else { break };
                let (d, k) = &p.datums[n];
                let task = self.datum_task(i, (d, k), p, &portable, no)?;
                run.submit(exec, task)?;
            }
            if run.stages[i].waiting.is_empty() {
                run.stages[i].portable = None;
                run.waiting_stages.remove(&i);
            }
        }
        Ok(())
    }
}

/// How many of a stage's datums the executor holds at once: enough to keep any machine's
/// cores and a cluster's queue busy, few enough that their jobs take a few MB.
const WINDOW: usize = 1024;
