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
        }
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
            let (input, output) = (
                format!("{}/{k}", container::IN),
                format!("{}/{k}", container::OUT),
            );
            spec.mounts
                .push(Mount::ro(root.join(&d.path), input.clone()));
            spec.mounts.push(Mount::rw(out.clone(), output.clone()));
            spec.batch.push(container::BatchDatum {
                id: d.id.clone(),
                cmds: job::template(&s.cmd, &input, &output),
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

    pub(super) fn job_for(
        &self,
        s: &Stage,
        datum: Option<&Datum>,
        out_dir: Option<&Path>,
    ) -> Result<Job> {
        let io = datum.zip(out_dir).map(|(d, o)| DatumIo {
            id: &d.id,
            input: self.repo.root.join(&d.path),
            output: o.to_path_buf(),
        });
        let outs: Vec<&str> = s.all_outs().map(|o| o.path.as_str()).collect();
        let job = self.recipe(s).build(io, &outs, self.container_of(s)?);
        if let Some(c) = &job.container {
            check_mounts(s, &c.mounts)?;
        }
        Ok(job)
    }
}
