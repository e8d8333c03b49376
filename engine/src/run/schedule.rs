//! The scheduler: start each stage when its inputs are ready, hand its executions to the
//! executor, retry or record what ends, and finish stages as their last execution reports.

use super::*;

/// How long to wait for an outcome before looking at the clock again (timeouts, Ctrl-C).
const TICK: Duration = Duration::from_millis(100);

/// Results are recorded in one transaction for up to this long: an fsync per finished
/// execution would cost more than a trivial datum.
const TXN_SPAN: Duration = Duration::from_millis(250);

/// The run's commit message when none is given: what executed, restored or failed.
pub(super) fn commit_message(stages: &[StageReport]) -> String {
    let names: Vec<&str> = stages
        .iter()
        .filter(|s| s.state == StageStatus::Executed || s.state == StageStatus::Restored)
        .map(|s| s.stage.as_str())
        .collect();
    let failed: Vec<&str> = stages
        .iter()
        .filter(|s| s.state == StageStatus::Failed)
        .map(|s| s.stage.as_str())
        .collect();
    let mut what = names.join(", ");
    if !failed.is_empty() {
        let sep = if what.is_empty() { "" } else { "; " };
        what = format!("{what}{sep}failed {}", failed.join(", "));
    }
    if what.is_empty() {
        what = "no stage changed".into();
    }
    format!("dvx run: {what}")
}

/// A stage that cannot start because a stage it needs failed.
fn blocked(name: &str) -> StageReport {
    StageReport {
        stage: name.to_string(),
        state: StageStatus::Blocked,
        reasons: vec!["an upstream stage failed".into()],
        datums: None,
        runs: vec![],
    }
}

impl Engine<'_> {
    pub(super) fn schedule(
        &self,
        opts: &RunOptions,
        selected: &[usize],
        run: &mut RunState,
        exec: &dyn Executor,
        children: &Children,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut is_selected = vec![false; self.pipeline.stages.len()];
        for &i in selected {
            is_selected[i] = true;
        }
        let mut open_txn: Option<dvx_store::store::Txn> = None;
        let mut txn_since = Instant::now();
        loop {
            if !run.stop {
                let before = run.started.len();
                self.start_ready(opts, selected, &is_selected, run, exec, progress)?;
                if run.started.len() != before {
                    self.publish(run, opts, true);
                }
            }
            self.top_up(run, exec)?;
            if run.running() == 0 {
                break;
            }
            let mut completed = Vec::new();
            if children.is_cancelled() && !run.stop {
                run.stop = true;
                completed.extend(run.withdrawn(exec.cancel(Cancel::Everything)));
                completed.extend(run.drop_waiting());
            }
            let ended = exec.poll(TICK)?;
            if ended.is_empty() && completed.is_empty() {
                // Readers follow the output of what runs.
                self.publish(run, opts, false);
                if txn_since.elapsed() >= TXN_SPAN {
                    if let Some(t) = open_txn.take() {
                        t.commit()?;
                    }
                }
                continue;
            }
            if open_txn.is_none() {
                open_txn = Some(self.repo.store.txn()?);
                txn_since = Instant::now();
            }
            if let Some(txn) = open_txn.as_ref() {
                for f in ended {
                    if let Some(i) = self.absorb(opts, f, run, exec, txn, children, progress)? {
                        completed.push(i);
                    }
                }
            }
            if run.stop {
                // Nothing new starts; what runs finishes (or is killed on Ctrl-C).
                let queued = run.withdrawn(exec.cancel(Cancel::Queued));
                for i in queued.into_iter().chain(run.drop_waiting()) {
                    if !completed.contains(&i) {
                        completed.push(i);
                    }
                }
            }
            // Finishing a stage reads what was just stored, so commit first then.
            if !completed.is_empty() || run.stop || txn_since.elapsed() >= TXN_SPAN {
                if let Some(t) = open_txn.take() {
                    t.commit()?;
                }
            }
            let stage_ended = !completed.is_empty();
            for i in completed {
                let ok = self.finish_stage(i, run, progress)?;
                run.finished.insert(i, ok);
                if let Some(r) = run.stages[i].report.take() {
                    run.report(r);
                }
            }
            self.publish(run, opts, stage_ended);
        }
        if let Some(t) = open_txn.take() {
            t.commit()?;
        }
        Ok(())
    }

    /// Start every selected stage whose inputs are ready.
    fn start_ready(
        &self,
        opts: &RunOptions,
        selected: &[usize],
        is_selected: &[bool],
        run: &mut RunState,
        exec: &dyn Executor,
        progress: &dyn Progress,
    ) -> Result<()> {
        for &i in selected {
            if run.started.contains(&i) {
                continue;
            }
            let needed: Vec<usize> = self.dag.needs[i]
                .iter()
                .copied()
                .filter(|j| is_selected[*j])
                .collect();
            if needed.iter().any(|j| run.finished.get(j) == Some(&false)) {
                run.started.insert(i);
                run.finished.insert(i, false);
                run.report(blocked(&self.pipeline.stages[i].name));
                continue;
            }
            if !needed.iter().all(|j| run.finished.contains_key(j)) {
                continue;
            }
            run.started.insert(i);
            if opts.dry_run && self.upstream_would_change(i, &needed, run) {
                run.finished.insert(i, true);
                continue;
            }
            if !self.start_stage(i, opts, run, exec, progress)? {
                let ok = !run.stages[i].failed;
                run.finished.insert(i, ok);
            }
        }
        Ok(())
    }

    /// A dry run: upstream work that would run changes this stage's inputs too, so it is
    /// stale whatever its inputs say now. Reports it when so.
    fn upstream_would_change(&self, i: usize, needed: &[usize], run: &mut RunState) -> bool {
        let stale_up: Vec<&str> = needed
            .iter()
            .map(|j| self.pipeline.stages[*j].name.as_str())
            .filter(|name| run.changing.contains(*name))
            .collect();
        if stale_up.is_empty() {
            return false;
        }
        run.report(StageReport {
            stage: self.pipeline.stages[i].name.clone(),
            state: StageStatus::Stale,
            reasons: vec![format!("upstream {} would change", stale_up.join(", "))],
            datums: None,
            runs: vec![],
        });
        true
    }

    /// Take one ended execution: retry it if it failed and has attempts left, otherwise
    /// record it. Returns its stage when that was the stage's last pending execution.
    #[allow(clippy::too_many_arguments)]
    fn absorb(
        &self,
        opts: &RunOptions,
        f: Finished,
        run: &mut RunState,
        exec: &dyn Executor,
        txn: &dvx_store::store::Txn,
        children: &Children,
        progress: &dyn Progress,
    ) -> Result<Option<usize>> {
        run.tails.remove(&f.ticket);
        let Some(mut task) = run.in_flight.remove(&f.ticket) else {
            return Ok(None);
        };
        if f.outcome.exit != Some(0) && task.attempt < task.retries && !children.is_cancelled() {
            task.attempt += 1;
            if let Some(o) = &task.out_dir {
                // A retry starts from an empty output folder again.
                let _ = std::fs::remove_dir_all(o);
                let _ = std::fs::create_dir_all(o);
            }
            run.submit(exec, task)?;
            return Ok(None);
        }
        let done = Done {
            task,
            outcome: f.outcome,
            start: f.started,
            placement: f.placement,
        };
        let i = done.task.stage;
        let summary = &mut run.summary;
        summary.task_ms += done.outcome.duration.as_millis() as u64;
        let (rid, rec) = self.record(txn, &done, run.prepared.get(&i), progress)?;
        // The record keeps its warnings; the summary names the run they are in.
        for w in &rec.warnings {
            let datum = rec.datum.as_deref().map(|d| format!(" datum {d}"));
            summary.warnings.push(format!(
                "stage {}{} (run {}): {w}",
                rec.stage,
                datum.unwrap_or_default(),
                rid.short()
            ));
        }
        run.runs_made.push(rid);
        let st = &mut run.stages[i];
        st.pending -= 1;
        progress.inc(1);
        if rec.ok() {
            summary.executed += 1;
        } else {
            summary.failed += 1;
            st.failed = true;
            summary.failures.push(Failure {
                stage: rec.stage.clone(),
                datum: rec.datum.clone(),
                run: Some(rid),
                error: rec.error.clone().unwrap_or_default(),
                stderr_tail: done.outcome.stderr_tail(10),
            });
            if !opts.keep_going {
                run.stop = true;
            }
        }
        if let Some(r) = st.report.as_mut() {
            r.runs.push(rid);
            if let Some(d) = r.datums.as_mut() {
                if rec.ok() {
                    d.executed += 1;
                } else {
                    d.failed += 1;
                }
            }
        }
        if let (Some((d, _)), Some(dir), true) = (&done.task.datum, &done.task.out_dir, rec.ok()) {
            st.fresh_dirs.insert(d.id.clone(), dir.clone());
        }
        st.records.push(DatumRun {
            datum: done.task.datum.as_ref().map(|(d, _)| d.id.clone()),
            ..DatumRun::of(&rec)
        });
        Ok((st.pending == 0).then_some(i))
    }
}
