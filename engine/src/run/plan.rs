//! Planning: which stages and datums are stale or restorable, and why, from the workspace
//! and the run cache.

use super::*;

impl Engine<'_> {
    /// Paths a stage's deps name, with globs expanded against the workspace.
    pub(super) fn dep_paths(&self, s: &Stage, run: &mut RunState) -> Result<Vec<String>> {
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
                    run.warn(format!("stage {}: dep glob {d:?} matches nothing", s.name));
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
        run: &mut RunState,
        progress: &dyn Progress,
    ) -> Result<Prepared> {
        let s = &self.pipeline.stages[i];
        let dep_paths = self.dep_paths(s, run)?;
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
        let mut deps: BTreeMap<String, Option<InputId>> =
            ids.iter().map(|(p, f)| (p.clone(), input_id(f))).collect();
        let notebook = self.prepare_notebook(s, &mut deps)?;
        let params = stage_params(&self.repo.root, s)?;
        let container = self.container_key(s)?;
        let mut datum_keys = Vec::new();
        if let Some(input) = &s.input {
            let folders: Vec<String> = input.folders().into_iter().map(String::from).collect();
            let files = self.repo.workspace(&folders, progress)?;
            for f in &folders {
                if !files.contains_key(f) && !self.produced(f) {
                    return Err(EngineError::spec(
                        Path::new(PIPELINE_FILE),
                        s.at.line,
                        s.at.column,
                        format!(
                            "stage `{}`: input `{f}` does not exist and no stage produces it",
                            s.name
                        ),
                    ));
                }
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
                run.warn(format!(
                    "stage {}: input glob {:?} over {} matches nothing",
                    s.name, input.glob, input.path
                ));
            }
        }
        let key = if s.input.is_some() {
            key::combine(&datum_keys.iter().map(|(_, k)| *k).collect::<Vec<_>>())
        } else {
            key::key_with(s, &deps, &params, None, container.as_ref())
        };
        let now = StageNow {
            cmd: &s.cmd,
            image: self.pinned_image(s),
            deps: &deps,
            params: &params,
            key,
            datums: s.input.is_some().then_some(datum_keys.len() as u64),
        };
        let locked = self.locked.get(&s.name);
        let mut reasons = stale_reasons(locked, &now);
        if let (Some(l), true) = (locked, reasons.is_empty()) {
            // Same inputs: are the outputs still what the run made?
            let outs: Vec<String> = s.all_outs().map(|o| o.path.clone()).collect();
            let now = self.repo.path_ids(&outs, progress)?;
            reasons.extend(output_reasons(&l.outs, &now));
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
            notebook,
        })
    }

    /// A notebook stage's notebook: its dep becomes its normalized cells (kind `notebook`),
    /// so that running or re-saving it changes nothing while editing a cell does.
    fn prepare_notebook(
        &self,
        s: &Stage,
        deps: &mut BTreeMap<String, Option<InputId>>,
    ) -> Result<Option<PreparedNotebook>> {
        let Some(nb) = &s.notebook else {
            return Ok(None);
        };
        let Some(file) = deps.get(&nb.path).cloned().flatten() else {
            // Made by an earlier stage that has not run yet: planned again once it has.
            return Ok(None);
        };
        let (_, parsed) = crate::notebook::read(&self.repo.root, &nb.path, &s.name)?;
        let cells = crate::notebook::normalize::normalized_id(&parsed, nb.kernel.as_deref());
        deps.insert(
            nb.path.clone(),
            Some(InputId {
                kind: crate::notebook::DEP_KIND,
                id: cells,
            }),
        );
        Ok(Some(PreparedNotebook {
            file: Some(file),
            cells,
            parameters_cell: parsed.has_parameters_cell(),
        }))
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
            txn.put_stat(p, e);
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

/// What a stage is now, as far as deciding whether it must run again.
pub(super) struct StageNow<'a> {
    pub cmd: &'a [String],
    /// The image it would run in, pinned (`NAME@sha256:ID`).
    pub image: Option<String>,
    pub deps: &'a BTreeMap<String, Option<InputId>>,
    pub params: &'a BTreeMap<String, Value>,
    pub key: Id,
    /// A datum stage: how many datums its input has now.
    pub datums: Option<u64>,
}

/// Why a stage must run again, compared with its last successful run (`None`: it never
/// ran). Empty: its inputs and definition are what they were. Pure: no workspace, no store.
pub(super) fn stale_reasons(locked: Option<&LockedStage>, now: &StageNow) -> Vec<String> {
    let Some(l) = locked else {
        return vec!["never ran".to_string()];
    };
    let mut reasons = Vec::new();
    if l.cmd != now.cmd {
        reasons.push("command changed".into());
    }
    let id_of = |p: &Option<String>| {
        p.as_ref()
            .and_then(|p| p.rsplit('@').next().map(String::from))
    };
    if id_of(&l.image) != id_of(&now.image) {
        reasons.push(match (&l.image, &now.image) {
            (Some(old), Some(new)) => format!("image changed ({old} -> {new})"),
            (None, Some(new)) => format!("now runs in {new}"),
            _ => "no longer runs in a container".into(),
        });
    }
    for (p, id) in now.deps {
        if l.deps.get(p) != Some(id) {
            reasons.push(format!("dep {p} changed"));
        }
    }
    for p in l.deps.keys().filter(|p| !now.deps.contains_key(*p)) {
        reasons.push(format!("dep {p} removed"));
    }
    for (k, v) in now.params {
        match l.params.get(k) {
            Some(old) if old == v => {}
            Some(old) => reasons.push(format!("param {k} changed ({old} -> {v})")),
            None => reasons.push(format!("param {k} added")),
        }
    }
    if let (Some(n), Some(count)) = (l.datums, now.datums) {
        if l.key != now.key {
            reasons.push(if n == count {
                "datum inputs changed".to_string()
            } else {
                format!("datums changed ({n} before, {count} now)")
            });
        }
    }
    if reasons.is_empty() && l.key != now.key {
        reasons.push("definition changed".into());
    }
    reasons
}

/// Outputs that are no longer what the last run made: missing, or modified since.
pub(super) fn output_reasons(
    locked: &BTreeMap<String, Option<LockedOut>>,
    now: &BTreeMap<String, Option<Flat>>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for (p, f) in now {
        let was = locked.get(p).cloned().flatten();
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
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(b: &[u8]) -> Option<InputId> {
        Some(InputId {
            kind: "file",
            id: Id::of(b),
        })
    }

    fn locked(deps: &BTreeMap<String, Option<InputId>>, key: Id) -> LockedStage {
        LockedStage {
            cmd: vec!["python train.py".into()],
            deps: deps.clone(),
            key,
            outs: BTreeMap::new(),
            params: BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.1))]),
            datums: None,
            image: None,
        }
    }

    #[test]
    fn unchanged_inputs_need_no_run_and_each_change_says_why() {
        let deps = BTreeMap::from([("data.csv".to_string(), input(b"v1"))]);
        let params = BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.1))]);
        let cmd = vec!["python train.py".to_string()];
        let key = Id::of(b"k1");
        let last = locked(&deps, key);
        let now = |deps, params, key| StageNow {
            cmd: &cmd,
            image: None,
            deps,
            params,
            key,
            datums: None,
        };
        assert!(stale_reasons(Some(&last), &now(&deps, &params, key)).is_empty());
        assert_eq!(
            stale_reasons(None, &now(&deps, &params, key)),
            ["never ran"]
        );

        let changed = BTreeMap::from([("data.csv".to_string(), input(b"v2"))]);
        assert_eq!(
            stale_reasons(Some(&last), &now(&changed, &params, Id::of(b"k2"))),
            ["dep data.csv changed"]
        );
        let gone = BTreeMap::new();
        assert_eq!(
            stale_reasons(Some(&last), &now(&gone, &params, Id::of(b"k3"))),
            ["dep data.csv removed"]
        );
        let lr = BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.5))]);
        assert_eq!(
            stale_reasons(Some(&last), &now(&deps, &lr, Id::of(b"k4"))),
            ["param train.lr changed (0.1 -> 0.5)"]
        );
        // Nothing the planner compares changed, yet the key did (env, wdir, ...).
        assert_eq!(
            stale_reasons(Some(&last), &now(&deps, &params, Id::of(b"k5"))),
            ["definition changed"]
        );
    }

    #[test]
    fn datum_stages_say_whether_inputs_or_their_number_changed() {
        let deps = BTreeMap::new();
        let params = BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.1))]);
        let cmd = vec!["python train.py".to_string()];
        let mut last = locked(&deps, Id::of(b"k1"));
        last.datums = Some(3);
        let now = |datums, key| StageNow {
            cmd: &cmd,
            image: None,
            deps: &deps,
            params: &params,
            key,
            datums: Some(datums),
        };
        assert!(stale_reasons(Some(&last), &now(3, Id::of(b"k1"))).is_empty());
        assert_eq!(
            stale_reasons(Some(&last), &now(3, Id::of(b"k2"))),
            ["datum inputs changed"]
        );
        assert_eq!(
            stale_reasons(Some(&last), &now(4, Id::of(b"k3"))),
            ["datums changed (3 before, 4 now)"]
        );
    }

    #[test]
    fn images_compare_by_id_not_by_name() {
        let deps = BTreeMap::new();
        let params = BTreeMap::from([("train.lr".to_string(), serde_json::json!(0.1))]);
        let cmd = vec!["python train.py".to_string()];
        let mut last = locked(&deps, Id::of(b"k"));
        last.image = Some("localhost/a:1@sha256:aaa".into());
        let now = |image: &str| StageNow {
            cmd: &cmd,
            image: Some(image.into()),
            deps: &deps,
            params: &params,
            key: Id::of(b"k"),
            datums: None,
        };
        // A new tag for the same image is no change.
        assert!(stale_reasons(Some(&last), &now("localhost/a:latest@sha256:aaa")).is_empty());
        assert_eq!(
            stale_reasons(Some(&last), &now("localhost/a:1@sha256:bbb")),
            ["image changed (localhost/a:1@sha256:aaa -> localhost/a:1@sha256:bbb)"]
        );
    }

    #[test]
    fn outputs_missing_or_modified_since_the_run() {
        let made = Flat {
            kind: EntryKind::File,
            id: Id::of(b"model"),
            size: 5,
            mode: 0o644,
        };
        let locked = BTreeMap::from([(
            "model.pkl".to_string(),
            Some(LockedOut {
                kind: "file".into(),
                id: made.id,
                size: 5,
            }),
        )]);
        let same = BTreeMap::from([("model.pkl".to_string(), Some(made))]);
        assert!(output_reasons(&locked, &same).is_empty());
        let missing = BTreeMap::from([("model.pkl".to_string(), None)]);
        assert_eq!(
            output_reasons(&locked, &missing),
            ["output model.pkl missing"]
        );
        let edited = BTreeMap::from([(
            "model.pkl".to_string(),
            Some(Flat {
                id: Id::of(b"other"),
                ..made
            }),
        )]);
        assert_eq!(
            output_reasons(&locked, &edited),
            ["output model.pkl modified"]
        );
    }
}
