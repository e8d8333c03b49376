//! The jobs a stage's executions run: through the one job builder (`crate::job`), one
//! container per datum or several datums per container (`batch:`).

use super::*;

impl Engine<'_> {
    /// The container a stage runs in, if it names an image.
    pub(super) fn container_of(&self, s: &Stage) -> Result<Option<ContainerOf>> {
        let Some(reference) = &s.image else {
            return Ok(None);
        };
        let (runtime, image) = self.containers.resolve(&s.name, reference)?;
        Ok(Some(ContainerOf {
            runtime,
            image,
            network: s.network,
            resources: s.resources.clone(),
        }))
    }

    pub(super) fn recipe<'s>(&'s self, s: &'s Stage) -> Recipe<'s> {
        Recipe {
            stage: &s.name,
            cmds: &s.cmd,
            env: &s.env,
            root: &self.repo.root,
            wdir: &s.wdir,
            timeout: s.timeout.map(Duration::from_secs),
            notebook: None,
        }
    }

    /// What papermill needs for a notebook stage's execution (None for other stages).
    fn notebook_job(
        &self,
        s: &Stage,
        datum: Option<&Datum>,
        params: &BTreeMap<String, Value>,
    ) -> Result<Option<crate::notebook::NotebookJob>> {
        let Some(nb) = &s.notebook else {
            return Ok(None);
        };
        let papermill = crate::notebook::papermill(&self.repo.config.other, &s.name)?;
        let (source, _) =
            crate::notebook::runnable(&self.repo.root, &nb.path, &self.scratch, &s.name)?;
        let report = match (datum, &nb.report) {
            (Some(d), _) => crate::notebook::datum_report(&d.id),
            (None, Some(r)) => r.clone(),
            (None, None) => return Ok(None),
        };
        Ok(Some(crate::notebook::NotebookJob {
            papermill,
            source,
            report: report.into(),
            kernel: nb.kernel.clone(),
            params: params.clone(),
        }))
    }

    /// One job for several datums of a container stage, run in one container.
    pub(super) fn batch_task(
        &self,
        s: &Stage,
        i: usize,
        members: Vec<Task>,
        log_dir: PathBuf,
    ) -> Result<Task> {
        let Some(image) = self.container_of(s)? else {
            return Err(EngineError::Failed {
                stage: s.name.clone(),
                datum: None,
                message: "batch needs an image".into(),
            });
        };
        let mut job = self.recipe(s).build(None, &[], Some(image));
        let root = &self.repo.root;
        let Some(spec) = job.container.as_mut() else {
            return Err(EngineError::Failed {
                stage: s.name.clone(),
                datum: None,
                message: "batch needs an image".into(),
            });
        };
        spec.mounts = vec![
            Mount::ro(root.clone(), container::WORK),
            Mount::rw(log_dir.clone(), "/dvx/log"),
        ];
        for (k, m) in members.iter().enumerate() {
            let (Some((d, _)), Some(out)) = (&m.datum, &m.out_dir) else {
                continue;
            };
            let input_dir = format!("{}/{k}", container::IN);
            let output = format!("{}/{k}", container::OUT);
            let (input, vars) = if d.members.is_empty() {
                let input = job::container_input(&input_dir, &d.id);
                spec.mounts
                    .push(Mount::ro(root.join(&d.path), input.clone()));
                (input, Vec::new())
            } else {
                let members = self.member_io(d);
                for m in &members {
                    spec.mounts.push(Mount::ro(
                        m.host.clone(),
                        format!("{input_dir}/{}", m.place),
                    ));
                }
                let mut vars = job::member_vars(&input_dir, &members, is_group(s));
                let input = vars.remove(0).1;
                (input, vars)
            };
            spec.mounts.push(Mount::rw(out.clone(), output.clone()));
            spec.batch.push(container::BatchDatum {
                id: d.id.clone(),
                cmds: job::template(&s.cmd, &input, &output),
                input,
                input_dir,
                vars,
            });
        }
        check_mounts(s, &spec.mounts)?;
        spec.log_dir = Some(log_dir);
        Ok(Task {
            stage: i,
            datum: None,
            job,
            out_dir: None,
            key: members.first().map(|m| m.key).unwrap_or(Id([0; 32])),
            retries: s.retries,
            attempt: 0,
            batch: members,
            portable: None,
        })
    }

    /// What a stage's executions share, for an executor elsewhere: commands, environment,
    /// and the inputs (deps and params files) with the ids the plan saw.
    pub(super) fn portable_stage(&self, s: &Stage, p: &Prepared) -> Arc<PortableStage> {
        let mut inputs: Vec<(String, Option<(EntryKind, Id)>)> = p
            .deps
            .iter()
            .map(|(path, id)| {
                let id = id.as_ref().map(|i| {
                    (
                        EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                        i.id,
                    )
                });
                (path.clone(), id)
            })
            .collect();
        for r in &s.params {
            if !inputs.iter().any(|(path, _)| path == &r.file) {
                inputs.push((r.file.clone(), None));
            }
        }
        Arc::new(PortableStage {
            name: s.name.clone(),
            executor: s.executor,
            cmd: s.cmd.clone(),
            env: s.env.clone(),
            wdir: s.wdir.clone(),
            timeout_secs: s.timeout,
            resources: s.resources.clone(),
            image: self.pinned_image(s),
            image_ref: s.image.clone(),
            network: s.network,
            outs: if s.input.is_some() {
                Vec::new()
            } else {
                s.all_outs().map(|o| o.path.clone()).collect()
            },
            inputs,
            root: self.repo.root.clone(),
        })
    }

    /// A combined datum's matches, for an executor elsewhere.
    pub(super) fn portable_members(d: &Datum) -> Vec<crate::executor::PortableMember> {
        d.members
            .iter()
            .map(|m| crate::executor::PortableMember {
                name: m.name.clone(),
                place: m.place(),
                path: m.path.clone(),
                known: m.input.as_ref().map(|i| {
                    (
                        EntryKind::from_name(i.kind).unwrap_or(EntryKind::File),
                        i.id,
                    )
                }),
            })
            .collect()
    }

    fn member_io(&self, d: &Datum) -> Vec<job::MemberIo> {
        d.members
            .iter()
            .map(|m| job::MemberIo {
                name: m.name.clone(),
                place: m.place(),
                host: self.repo.root.join(&m.path),
            })
            .collect()
    }

    pub(super) fn job_for(
        &self,
        s: &Stage,
        datum: Option<&Datum>,
        out_dir: Option<&Path>,
        params: &BTreeMap<String, Value>,
    ) -> Result<Job> {
        let io = match datum.zip(out_dir) {
            Some((d, o)) if !d.members.is_empty() => {
                // Several inputs: the folder holds each match at `name/sub`, as /pfs does.
                let input_dir = o.with_extension("in");
                let members = self.member_io(d);
                std::fs::create_dir_all(&input_dir).map_err(|e| StoreError::io(&input_dir, e))?;
                if s.image.is_none() {
                    for m in &members {
                        job::link_input(&input_dir, &m.place, &m.host)
                            .map_err(|e| StoreError::io(&input_dir, e))?;
                    }
                }
                Some(DatumIo {
                    id: &d.id,
                    input: input_dir.clone(),
                    output: o.to_path_buf(),
                    input_dir,
                    members,
                    group: is_group(s),
                })
            }
            Some((d, o)) => {
                let input = self.repo.root.join(&d.path);
                let sub = crate::datum::sub_path(&d.id);
                let input_dir = if sub.is_empty() {
                    input.clone()
                } else {
                    o.with_extension("in")
                };
                if s.image.is_none() {
                    job::link_input(&input_dir, sub, &input)
                        .map_err(|e| StoreError::io(&input_dir, e))?;
                }
                Some(DatumIo {
                    id: &d.id,
                    input,
                    output: o.to_path_buf(),
                    input_dir,
                    members: Vec::new(),
                    group: false,
                })
            }
            None => None,
        };
        let outs: Vec<&str> = s.all_outs().map(|o| o.path.as_str()).collect();
        let mut recipe = self.recipe(s);
        recipe.notebook = self.notebook_job(s, datum, params)?;
        let job = recipe.build(io, &outs, self.container_of(s)?);
        if let Some(c) = &job.container {
            check_mounts(s, &c.mounts)?;
        }
        Ok(job)
    }
}

/// The stage's inputs are a `group` (its datums hold any number of matches per input).
pub(super) fn is_group(s: &Stage) -> bool {
    s.input
        .as_ref()
        .and_then(|i| i.combine.as_ref())
        .is_some_and(|c| c.how == crate::spec::How::Group)
}
