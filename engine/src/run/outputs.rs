//! After an execution: move fresh outputs into place, store them, write the run record,
//! and finish the stage.

use super::*;

impl Engine<'_> {
    /// Store a finished execution's outputs and logs, and its run record.
    pub(super) fn record(
        &self,
        txn: &dvx_store::store::Txn,
        done: &Done,
        p: Option<&Prepared>,
        progress: &dyn Progress,
    ) -> Result<(Id, RunRecord)> {
        let s = &self.pipeline.stages[done.task.stage];
        // The progress bar counts executions; hashing outputs is quick and stays quiet.
        let _ = progress;
        let progress = &dvx_store::Quiet;
        let mut error = done.outcome.error.clone();
        let mut outputs = Vec::new();
        // Every file stored, by project path, for the lineage index (its trees are not
        // readable until the transaction commits).
        let mut known: BTreeMap<String, Flat> = BTreeMap::new();
        if done.task.job.container.is_some() && done.task.out_dir.is_none() {
            for o in s.all_outs() {
                let abs = self.repo.root.join(&o.path);
                container::clear_placeholder(&abs);
                if error.is_some() {
                    // A failed run leaves no empty output folder made for the mount.
                    let _ = std::fs::remove_dir(&abs);
                }
            }
        }
        if error.is_none() {
            match &done.task.out_dir {
                Some(dir) => {
                    let (entry, found) = self.repo.ingest(txn, dir, "", progress)?;
                    if let Some(f) = entry {
                        let out = s.datum_out();
                        known.extend(
                            found
                                .files
                                .into_iter()
                                .map(|(p, f)| (dvx_store::paths::join(&out, &p), f)),
                        );
                        outputs.push(PathId {
                            path: out,
                            kind: EntryKind::Dir,
                            id: f.id,
                            size: f.size,
                            mode: None,
                        });
                    }
                }
                None => {
                    for o in s.all_outs() {
                        let abs = self.repo.root.join(&o.path);
                        if abs.symlink_metadata().is_err() {
                            error =
                                Some(format!("the command did not produce the output {}", o.path));
                            break;
                        }
                        // Metrics are stored even with `cache: false` (they are small), so any
                        // commit's metrics can be read back for `dvx metrics diff`.
                        let is_metric = s.metrics.iter().any(|m| m.path == o.path);
                        let store_it = o.cache || is_metric;
                        let entry = if store_it {
                            let (entry, found) =
                                self.repo.ingest(txn, &self.repo.root, &o.path, progress)?;
                            known.extend(found.files);
                            entry
                        } else {
                            self.repo
                                .path_ids(std::slice::from_ref(&o.path), progress)?
                                .remove(&o.path)
                                .flatten()
                        };
                        if let (Some(f), true) = (entry, store_it) {
                            outputs.push(PathId {
                                path: o.path.clone(),
                                kind: f.kind,
                                id: f.id,
                                size: f.size,
                                mode: (f.kind == EntryKind::File).then_some(f.mode),
                            });
                        }
                    }
                }
            }
        }
        // A datum that wrote nothing is easy to miss among thousands: say so in the record,
        // or fail it where the stage says every datum must write something.
        let mut warnings = Vec::new();
        let wrote_nothing = known.values().all(|f| f.kind == EntryKind::Dir);
        if error.is_none() && done.task.out_dir.is_some() && wrote_nothing {
            if s.require_output {
                error =
                    Some("the datum wrote no output (the stage has `require_output: true`)".into());
            } else {
                warnings.push("the datum wrote no output".to_string());
            }
        }
        let log = |bytes: &[u8]| -> Result<Id> { Ok(txn.put_bytes(bytes)?) };
        let mut inputs: Vec<PathId> = p
            .map(|p| {
                p.deps
                    .iter()
                    .filter_map(|(path, id)| {
                        // A notebook is recorded as the file it was, not its normalized cells.
                        let id = match (id, &p.notebook) {
                            (Some(i), Some(nb)) if i.kind == crate::notebook::DEP_KIND => &nb.file,
                            _ => id,
                        };
                        id.as_ref().map(|i| PathId {
                            path: path.clone(),
                            kind: EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                            id: i.id,
                            size: p.dep_sizes.get(path).copied().unwrap_or(0),
                            mode: None,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some((d, _)) = &done.task.datum {
            // A combined datum records each input's match, so lineage finds every one.
            for m in &d.members {
                if let Some(i) = &m.input {
                    inputs.push(PathId {
                        path: m.path.clone(),
                        kind: EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                        id: i.id,
                        size: m.size,
                        mode: None,
                    });
                }
            }
        }
        if let Some((d, _)) = done
            .task
            .datum
            .as_ref()
            .filter(|(d, _)| d.members.is_empty())
        {
            if let Some(i) = &d.input {
                inputs.push(PathId {
                    path: d.path.clone(),
                    kind: EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                    id: i.id,
                    size: d.size,
                    mode: None,
                });
            }
        }
        let notebook = self.record_notebook(txn, done, p, &mut error)?;
        let end = chrono::Utc::now();
        let rec = RunRecord {
            attempt: done.task.attempt,
            cluster: done.placement.as_ref().map(|p| record::ClusterJob {
                job: p.job.clone(),
                queued: p.queued.clone(),
            }),
            cmd: s.cmd.clone(),
            code: self.code.clone(),
            combine: done
                .task
                .datum
                .as_ref()
                .filter(|(d, _)| !d.members.is_empty())
                .and_then(|_| s.input.as_ref()?.combine.as_ref().map(|c| c.how)),
            datum: done.task.datum.as_ref().map(|(d, _)| d.id.clone()),
            duration_ms: done.outcome.duration.as_millis() as u64,
            end: end.to_rfc3339(),
            env: s.env.clone(),
            error: error.clone(),
            executor: match (&self.adopt, &done.placement) {
                (Some(name), _) => name.clone(),
                (None, Some(p)) => p.executor.into(),
                (None, None) => done
                    .task
                    .job
                    .container
                    .as_ref()
                    .map_or("local", |c| c.runtime.name)
                    .into(),
            },
            exit: if error.is_some() && done.outcome.exit == Some(0) {
                None
            } else {
                done.outcome.exit
            },
            experiment: self.experiment.clone(),
            host: match &done.placement {
                Some(p) if !p.host.is_empty() => p.host.clone(),
                _ => dvx_store::fsutil::hostname(),
            },
            image: done.task.job.container.as_ref().map(|c| c.image.pinned()),
            inputs,
            key: done.task.key,
            members: done
                .task
                .datum
                .as_ref()
                .map(|(d, _)| {
                    d.members
                        .iter()
                        .map(|m| record::RecordMember {
                            name: m.name.clone(),
                            path: m.path.clone(),
                            place: m.place(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            notebook,
            outputs,
            params: p.map(|p| p.params.clone()).unwrap_or_default(),
            stage: s.name.clone(),
            start: done.start.to_rfc3339(),
            stderr: log(&done.outcome.stderr)?,
            stdout: log(&done.outcome.stdout)?,
            trigger: self.trigger.clone(),
            user: self.user.clone(),
            version: record::RECORD_VERSION,
            warnings,
            wdir: s.wdir.clone(),
        };
        let id = rec.put(txn);
        let none = BTreeMap::new();
        let dep_files = p.map_or(&none, |p| &p.dep_files);
        crate::lineage::index_run(txn, &id, &rec, &known, dep_files)?;
        Ok((id, rec))
    }

    /// A notebook execution's part of its record: the executed notebook, stored even when the
    /// execution failed, and for a failure the cell and error that stopped it (or the kernel
    /// that is missing) as the record's error.
    fn record_notebook(
        &self,
        txn: &dvx_store::store::Txn,
        done: &Done,
        p: Option<&Prepared>,
        error: &mut Option<String>,
    ) -> Result<Option<record::NotebookRun>> {
        let s = &self.pipeline.stages[done.task.stage];
        let (Some(nb), Some(pn)) = (&s.notebook, p.and_then(|p| p.notebook.as_ref())) else {
            return Ok(None);
        };
        let (abs, report) = match (&done.task.datum, &done.task.out_dir, &nb.report) {
            (Some((d, _)), Some(dir), _) => {
                let name = crate::notebook::datum_report(&d.id);
                (
                    dir.join(&name),
                    dvx_store::paths::join(&s.datum_out(), &name),
                )
            }
            (_, _, Some(r)) => (self.repo.root.join(r), r.clone()),
            _ => return Ok(None),
        };
        let bytes = std::fs::read(&abs).ok();
        if error.is_some() {
            let stderr = String::from_utf8_lossy(&done.outcome.stderr);
            let why = bytes
                .as_deref()
                .and_then(crate::notebook::failure)
                .or_else(|| crate::notebook::missing_kernel(&stderr));
            if let Some(why) = why {
                let kept = if bytes.is_some() {
                    "; the partly executed notebook is kept with the run (`dvx show RUN --html PAGE`)"
                } else {
                    ""
                };
                *error = Some(format!("{why}{kept}"));
            }
        }
        let executed = match &bytes {
            Some(b) => Some(txn.put_bytes(b)?),
            None => None,
        };
        Ok(Some(record::NotebookRun {
            cells: pn.cells,
            executed,
            kernel: nb.kernel.clone(),
            path: nb.path.clone(),
            report,
        }))
    }

    /// Move the files datums just wrote into their merged place (a rename, no new copy) where
    /// the workspace does not already hold them; `work` is updated to match. Whatever is not
    /// moved is written from the store by `apply`.
    pub(super) fn move_fresh_outputs(
        &self,
        out: &str,
        st: &StageState,
        merged: &BTreeMap<String, Flat>,
        work: &mut BTreeMap<String, Flat>,
    ) -> Result<Vec<(String, dvx_store::statcache::StatEntry)>> {
        let mut moved = Vec::new();
        if st.fresh_dirs.is_empty() {
            return Ok(moved);
        }
        let is_dir = std::fs::symlink_metadata(self.repo.root.join(out))
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !is_dir {
            if work.contains_key(out) {
                return Ok(moved); // a file or link is in the way: `apply` replaces it
            }
            self.repo.make_dir(out)?;
            work.insert(
                out.to_string(),
                Flat {
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    size: 0,
                    id: Id([0; 32]),
                },
            );
        }
        // Each datum's first record, found by name: searching the list per datum was
        // quadratic (minutes of string compares at 100k datums).
        let mut by_datum: HashMap<&str, Option<Id>> = HashMap::with_capacity(st.records.len());
        for r in &st.records {
            if let Some(d) = &r.datum {
                by_datum.entry(d.as_str()).or_insert(r.out);
            }
        }
        for (datum, dir) in &st.fresh_dirs {
            let Some(Some(tree)) = by_datum.get(datum.as_str()) else {
                continue;
            };
            let mut files = BTreeMap::new();
            worktree::flatten(&self.repo.store, tree, "", &mut files)?;
            for (sub, f) in files {
                if f.kind != EntryKind::File || sub.contains('/') {
                    continue; // nested folders go through `apply`, which creates them safely
                }
                let dest_rel = dvx_store::paths::join(out, &sub);
                if merged.get(&dest_rel).map(|m| m.id) != Some(f.id)
                    || work.get(&dest_rel).is_some_and(|w| w.same(&f))
                {
                    continue;
                }
                if work.contains_key(&dest_rel) {
                    continue; // something else is there; `apply` replaces it properly
                }
                let dest = dvx_store::paths::abs(&self.repo.root, &dest_rel)?;
                let src = dir.join(&sub);
                if std::fs::rename(&src, &dest).is_ok() {
                    worktree::set_mode(&dest, f.mode)?;
                    let meta =
                        std::fs::symlink_metadata(&dest).map_err(|e| StoreError::io(&dest, e))?;
                    work.insert(dest_rel.clone(), f);
                    moved.push((
                        dest_rel,
                        dvx_store::statcache::StatEntry::new(
                            dvx_store::statcache::Stat::of(&meta),
                            f.id,
                        ),
                    ));
                }
            }
        }
        Ok(moved)
    }

    /// All executions of a stage are done: merge datum outputs, note the lock entry.
    pub(super) fn finish_stage(
        &self,
        i: usize,
        run: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<bool> {
        let st = &mut run.stages[i];
        let p = run.prepared.get(&i);
        let (new_locks, commit_paths, written) =
            (&mut run.new_locks, &mut run.commit_paths, &mut run.written);
        let s = &self.pipeline.stages[i];
        progress.finish();
        let progress = &dvx_store::Quiet;
        if st.failed {
            if let Some(r) = st.report.as_mut() {
                r.state = StageStatus::Failed;
            }
            return Ok(false);
        }
        let Some(p) = p else { return Ok(true) };
        if st.debug_only {
            return Ok(true);
        }
        let mut out_paths: Vec<String> = s.all_outs().map(|o| o.path.clone()).collect();
        let mut merged_out = None;
        if s.input.is_some() {
            st.records.sort_by(|a, b| a.datum.cmp(&b.datum));
            let plan = std::mem::take(&mut st.datums);
            let dropped = plan.dropped();
            let merged = match &plan.base {
                Some(base) => self.merge_delta(s, base, &plan.table, &dropped, &st.records)?,
                None => self.merge_datums(s, &st.records)?,
            };
            let out = s.datum_out();
            let mut work = self.repo.workspace(std::slice::from_ref(&out), progress)?;
            let moved = self.move_fresh_outputs(&out, st, &merged.files, &mut work)?;
            let applied = self.repo.apply(&merged.files, &work, progress)?;
            let txn = self.repo.store.txn()?;
            for (path, e) in applied.cache.iter().chain(moved.iter()) {
                txn.put_stat(path, e);
            }
            if !out.is_empty() {
                // The out folder is now what was merged: its trees are what dvx.lock and the
                // commit name, without walking the folder again.
                let entry = worktree::build_tree(&out, &merged.files, &|t| txn.put_tree(t))?;
                if let Some(e) = entry {
                    plan.table
                        .save(&txn, &s.name, &merged.rows, &dropped, &e.id);
                    out_paths.retain(|o| o != &out);
                    merged_out = Some((out, e));
                }
            }
            txn.commit()?;
        }
        let mut now = self.repo.path_ids(&out_paths, progress)?;
        if let Some((out, e)) = merged_out {
            now.insert(out.clone(), Some(e));
            written.insert(out, e);
        }
        new_locks.insert(s.name.clone(), self.locked_entry(s, p, &now));
        commit_paths.extend(s.all_outs().filter(|o| o.cache).map(|o| o.path.clone()));
        Ok(true)
    }
}
