//! Planning: which stages and datums are stale or restorable, and why, from the workspace
//! and the run cache.

use super::*;

impl Engine<'_> {
    /// Paths a stage's deps name, with globs expanded against the workspace.
    pub(super) fn dep_paths(&self, s: &Stage) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for d in &s.deps {
            if is_glob(d) {
                let pattern = self.repo.root.join(d).to_string_lossy().into_owned();
                let matches = glob::glob(&pattern).map_err(|e| EngineError::Failed {
                    stage: s.name.clone(),
                    datum: None,
                    message: format!("dep glob {d:?} is not valid: {e}"),
                })?;
                let mut any = false;
                for m in matches.flatten() {
                    if let Ok(rel) = m.strip_prefix(&self.repo.root) {
                        out.push(rel.to_string_lossy().into_owned());
                        any = true;
                    }
                }
                if !any {
                    eprintln!("warning: stage {}: dep glob {d:?} matches nothing", s.name);
                }
            } else {
                out.push(d.clone());
            }
        }
        out.sort();
        out.dedup();
        for d in &out {
            crate::confine::check_dep(&self.repo.root, s, d)?;
        }
        Ok(out)
    }

    pub(super) fn produced(&self, path: &str) -> bool {
        self.outs.overlapping(path).next().is_some()
    }

    pub(super) fn prepare(
        &self,
        i: usize,
        opts: &RunOptions,
        progress: &dyn Progress,
    ) -> Result<Prepared> {
        let s = &self.pipeline.stages[i];
        let dep_paths = self.dep_paths(s)?;
        let (ids, dep_files) = self.repo.path_entries(&dep_paths, true, progress)?;
        for (p, f) in &ids {
            if f.is_none() && !self.produced(p) {
                let at = s
                    .deps
                    .iter()
                    .position(|d| d == p)
                    .and_then(|k| s.dep_at.get(k))
                    .copied()
                    .unwrap_or(s.at);
                return Err(EngineError::spec(
                    Path::new(PIPELINE_FILE),
                    at.line,
                    at.column,
                    format!(
                        "stage `{}`: dependency `{p}` does not exist and no stage produces it",
                        s.name
                    ),
                ));
            }
        }
        let deps: BTreeMap<String, Option<InputId>> =
            ids.iter().map(|(p, f)| (p.clone(), input_id(f))).collect();
        let params = stage_params(&self.repo.root, s)?;
        let container = self.container_key(s)?;
        let mut datum_keys = Vec::new();
        if let Some(input) = &s.input {
            let files = self
                .repo
                .workspace(std::slice::from_ref(&input.path), progress)?;
            if !files.contains_key(&input.path) && !self.produced(&input.path) {
                return Err(EngineError::spec(
                    Path::new(PIPELINE_FILE),
                    s.at.line,
                    s.at.column,
                    format!(
                        "stage `{}`: input `{}` does not exist and no stage produces it",
                        s.name, input.path
                    ),
                ));
            }
            for d in datums(s, input, &files)? {
                let k = key::key_with(
                    s,
                    &deps,
                    &params,
                    Some((d.id.as_str(), &d.input)),
                    container.as_ref(),
                );
                datum_keys.push((d, k));
            }
            if datum_keys.is_empty() {
                eprintln!(
                    "warning: stage {}: input glob {:?} over {} matches nothing",
                    s.name, input.glob, input.path
                );
            }
        }
        let key = if s.input.is_some() {
            key::combine(&datum_keys.iter().map(|(_, k)| *k).collect::<Vec<_>>())
        } else {
            key::key_with(s, &deps, &params, None, container.as_ref())
        };
        let mut reasons = Vec::new();
        match self.locked.get(&s.name) {
            None => reasons.push("never ran".to_string()),
            Some(l) => {
                if l.cmd != s.cmd {
                    reasons.push("command changed".into());
                }
                let image_now = self.pinned_image(s);
                let id_of = |p: &Option<String>| {
                    p.as_ref()
                        .and_then(|p| p.rsplit('@').next().map(String::from))
                };
                if id_of(&l.image) != id_of(&image_now) {
                    reasons.push(match (&l.image, &image_now) {
                        (Some(old), Some(now)) => format!("image changed ({old} -> {now})"),
                        (None, Some(now)) => format!("now runs in {now}"),
                        _ => "no longer runs in a container".into(),
                    });
                }
                for (p, id) in &deps {
                    if l.deps.get(p) != Some(id) {
                        reasons.push(format!("dep {p} changed"));
                    }
                }
                for p in l.deps.keys().filter(|p| !deps.contains_key(*p)) {
                    reasons.push(format!("dep {p} removed"));
                }
                for (k, v) in &params {
                    match l.params.get(k) {
                        Some(old) if old == v => {}
                        Some(old) => reasons.push(format!("param {k} changed ({old} -> {v})")),
                        None => reasons.push(format!("param {k} added")),
                    }
                }
                if let (Some(n), true) = (l.datums, s.input.is_some()) {
                    if l.key != key {
                        let now = datum_keys.len() as u64;
                        reasons.push(if n == now {
                            "datum inputs changed".to_string()
                        } else {
                            format!("datums changed ({n} before, {now} now)")
                        });
                    }
                }
                if reasons.is_empty() && l.key != key {
                    reasons.push("definition changed".into());
                }
                if reasons.is_empty() {
                    // Same inputs: are the outputs still what the run made?
                    let outs: Vec<String> = s.all_outs().map(|o| o.path.clone()).collect();
                    let now = self.repo.path_ids(&outs, progress)?;
                    for (p, f) in &now {
                        let was = l.outs.get(p).cloned().flatten();
                        let same = match (f, &was) {
                            (Some(f), Some(w)) => f.id == w.id && f.kind.as_str() == w.kind,
                            (None, None) => true,
                            _ => false,
                        };
                        if !same {
                            reasons.push(format!(
                                "output {p} {}",
                                if f.is_none() { "missing" } else { "modified" }
                            ));
                        }
                    }
                }
            }
        }
        if s.always_changed {
            reasons.push("always_changed".into());
        }
        if opts.force {
            reasons.push("--force".into());
        }
        if opts.datum.is_some() && s.input.is_some() {
            reasons.push("--datum".into());
        }
        Ok(Prepared {
            up_to_date: reasons.is_empty(),
            dep_files,
            dep_sizes: ids
                .iter()
                .map(|(p, f)| (p.clone(), f.map_or(0, |f| f.size)))
                .collect(),
            deps,
            params,
            key,
            datums: datum_keys,
            reasons,
        })
    }

    /// Restore a stage's outputs from stored runs: `want` maps each out path to its entry.
    pub(super) fn restore(
        &self,
        want_entries: &BTreeMap<String, Option<Flat>>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut want = BTreeMap::new();
        for (p, f) in want_entries {
            if let Some(f) = f {
                want.insert(p.clone(), *f);
                if f.kind == EntryKind::Dir {
                    worktree::flatten(&self.repo.store, &f.id, p, &mut want)?;
                }
            }
        }
        let roots: Vec<String> = want_entries.keys().cloned().collect();
        let work = self.repo.workspace(&roots, progress)?;
        let applied = self.repo.apply(&want, &work, progress)?;
        let txn = self.repo.store.txn()?;
        for (p, e) in &applied.cache {
            txn.put(dvx_store::db::CF_STAT, p.as_bytes(), &e.encode());
        }
        txn.commit()?;
        Ok(())
    }

    pub(super) fn outputs_of(r: &RunRecord) -> BTreeMap<String, Option<Flat>> {
        r.outputs
            .iter()
            .map(|o| {
                let kind = o.kind;
                (
                    o.path.clone(),
                    Some(Flat {
                        kind,
                        mode: match (kind, o.mode) {
                            (EntryKind::Dir, _) => 0o755,
                            (_, Some(m)) => m,
                            (_, None) => 0o644,
                        },
                        size: o.size,
                        id: o.id,
                    }),
                )
            })
            .collect()
    }

    /// Merge datum output trees into the stage's out folder; two datums writing one path is an
    /// error naming both.
    pub(super) fn merge_datums(
        &self,
        s: &Stage,
        records: &[(Option<String>, Id, RunRecord)],
    ) -> Result<BTreeMap<String, Flat>> {
        let out_path = s
            .outs
            .iter()
            .find(|o| o.cache)
            .map(|o| o.path.clone())
            .unwrap_or_default();
        let mut merged: BTreeMap<String, Flat> = BTreeMap::new();
        let mut owner: HashMap<String, String> = HashMap::new();
        merged.insert(
            out_path.clone(),
            Flat {
                kind: EntryKind::Dir,
                mode: 0o755,
                size: 0,
                id: Id([0; 32]),
            },
        );
        for (datum, _, r) in records {
            let Some(tree) = r.outputs.first() else {
                continue;
            };
            let mut flat = BTreeMap::new();
            worktree::flatten(&self.repo.store, &tree.id, &out_path, &mut flat)?;
            for (p, f) in flat {
                let who = datum.clone().unwrap_or_default();
                if let Some(prev) = owner.get(&p) {
                    if f.kind != EntryKind::Dir
                        || merged.get(&p).is_some_and(|m| m.kind != EntryKind::Dir)
                    {
                        return Err(EngineError::Failed {
                            stage: s.name.clone(),
                            datum: None,
                            message: format!("datums {prev} and {who} both wrote {p}"),
                        });
                    }
                }
                owner.insert(p.clone(), who);
                merged.insert(p, f);
            }
        }
        Ok(merged)
    }

    /// What a container stage's key takes from its image (None for other stages).
    pub(super) fn container_key(&self, s: &Stage) -> Result<Option<ContainerKey>> {
        let Some(reference) = &s.image else {
            return Ok(None);
        };
        let (_, image) = self.containers.resolve(&s.name, reference)?;
        Ok(Some(ContainerKey {
            image: image.id,
            network: s.network,
        }))
    }

    /// `NAME@sha256:ID` of a container stage's image, once resolved in this run.
    pub(super) fn pinned_image(&self, s: &Stage) -> Option<String> {
        let reference = s.image.as_ref()?;
        self.containers
            .resolve(&s.name, reference)
            .ok()
            .map(|(_, i)| i.pinned())
    }
}
