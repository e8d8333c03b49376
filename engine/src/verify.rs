//! `dvx verify`: run a recorded execution again in a scratch folder, from its recorded inputs
//! only, and say which outputs came out bit-identical.

use std::collections::BTreeMap;
use std::path::Path;

use dvx_store::object::EntryKind;
use dvx_store::store::hash_path;
use dvx_store::worktree::{self, Flat};
use dvx_store::{Id, Quiet, Repo, StoreError};
use serde::Serialize;

use crate::container;
use crate::error::{EngineError, Result};
use crate::exec::Children;
use crate::executor::{self, Local};
use crate::job::{ContainerOf, DatumIo, Recipe};
use crate::record::{PathId, RunRecord};

#[derive(Debug, Serialize)]
pub struct OutputCheck {
    pub path: String,
    pub kind: String,
    pub recorded: Id,
    /// What the re-execution produced (None: nothing at that path).
    pub now: Option<Id>,
    pub identical: bool,
    /// For a folder: the files inside that differ, appeared or disappeared.
    pub files: Vec<String>,
    /// An executed notebook compared without what changes on every run: the fields that
    /// differed and were ignored (see `notebook::volatile`). Absent for other outputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub run: Id,
    pub stage: String,
    pub datum: Option<String>,
    pub exit: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: u64,
    pub identical: bool,
    pub outputs: Vec<OutputCheck>,
}

fn io(p: &Path, e: std::io::Error) -> EngineError {
    StoreError::io(p, e).into()
}

/// Write a stored entry at `dest`.
fn materialize(repo: &Repo, kind: EntryKind, mode: u32, id: &Id, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    match kind {
        EntryKind::Dir => {
            std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
            for e in repo.store.get_tree(id)?.entries {
                materialize(repo, e.kind, e.mode, &e.id, &dest.join(&e.name))?;
            }
        }
        EntryKind::Symlink => {
            let target = repo.store.read_file(id)?;
            let target = String::from_utf8_lossy(&target).into_owned();
            std::os::unix::fs::symlink(target, dest).map_err(|e| io(dest, e))?;
        }
        _ => {
            let mut f = std::fs::File::create(dest).map_err(|e| io(dest, e))?;
            repo.store.write_file_to(id, &mut f)?;
            worktree::set_mode(dest, mode)?;
        }
    }
    Ok(())
}

/// Parameter files are not inputs (their values are): write each one the run read, with the
/// values it recorded, unless an input already put the file there.
fn write_params(work: &Path, rec: &RunRecord) -> Result<()> {
    let mut files: BTreeMap<&str, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
    for (k, v) in &rec.params {
        let Some((file, key)) = k.split_once(':') else {
            continue;
        };
        let mut node = files.entry(file).or_default();
        let parts: Vec<&str> = key.split('.').collect();
        for (n, part) in parts.iter().enumerate() {
            if n + 1 == parts.len() {
                node.insert(part.to_string(), v.clone());
            } else {
                let next = node
                    .entry(part.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if !next.is_object() {
                    *next = serde_json::Value::Object(Default::default());
                }
                match next.as_object_mut() {
                    Some(m) => node = m,
                    None => break,
                }
            }
        }
    }
    for (file, tree) in files {
        dvx_store::paths::check_rel(file)?;
        let dest = work.join(&rec.wdir).join(file);
        if dest.exists() {
            continue;
        }
        let mut text = String::new();
        yaml_block(&tree, 0, &mut text);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&dest, text).map_err(|e| io(&dest, e))?;
    }
    Ok(())
}

/// Block-style YAML: nested mappings indented by two spaces, scalars as JSON (valid YAML).
fn yaml_block(m: &serde_json::Map<String, serde_json::Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        let pad = " ".repeat(indent);
        match v {
            serde_json::Value::Object(inner) => {
                out.push_str(&format!("{pad}{k}:\n"));
                yaml_block(inner, indent + 2, out);
            }
            other => out.push_str(&format!("{pad}{k}: {other}\n")),
        }
    }
}

/// An input that the store lacks, from the workspace or git, if it still has the recorded id.
fn code_copy(repo: &Repo, rec: &RunRecord, i: &PathId) -> Option<Vec<u8>> {
    let here = std::fs::read(repo.root.join(&i.path)).ok();
    if let Some(b) = here.filter(|b| Id::of(b) == i.id) {
        return Some(b);
    }
    let commit = rec.code.as_ref()?.commit.clone();
    dvx_store::gitutil::blob_at(&repo.root, &commit, &i.path).filter(|b| Id::of(b) == i.id)
}

/// Recorded inputs carry no mode: a file starting with `#!` is made executable.
fn input_mode(repo: &Repo, p: &PathId) -> u32 {
    let Ok(chunks) = repo.store.file_chunks(&p.id) else {
        return 0o644;
    };
    match chunks
        .first()
        .and_then(|(c, _)| repo.store.read_chunk(c).ok())
    {
        Some(b) if b.starts_with(b"#!") => 0o755,
        _ => 0o644,
    }
}

/// The id of whatever is at `rel` under `base` (folders as tree ids), and its files.
fn identify(base: &Path, rel: &str) -> Result<(Option<Flat>, BTreeMap<String, Flat>)> {
    if std::fs::symlink_metadata(base.join(rel)).is_err() {
        return Ok((None, BTreeMap::new()));
    }
    let items = worktree::scan(base, rel)?;
    let found = worktree::identify(
        base,
        items,
        &Default::default(),
        |abs: &Path, _, _| hash_path(abs).map(|(id, n)| (id, n, true)),
        &Quiet,
    )?;
    let entry = worktree::build_tree(rel, &found.files, &|t| t.id())?;
    Ok((entry, found.files))
}

/// The id of the file at project path `want` inside the recorded folder `tree` at `base`.
fn recorded_file(repo: &Repo, tree: &Id, base: &str, want: &str) -> Result<Option<Id>> {
    let files = dvx_store::lineage::files_of_tree(&repo.store, tree, base)?;
    Ok(files
        .get(want)
        .filter(|f| f.kind == EntryKind::File)
        .map(|f| f.id))
}

/// Re-execute `rec` and compare its outputs with the recorded ones.
pub fn verify(repo: &Repo, run: &Id, rec: &RunRecord) -> Result<VerifyReport> {
    let fail = |m: String| EngineError::Verify {
        run: run.short(),
        message: m,
    };
    // A container run runs again in the very image it recorded (by id), with no network and
    // default resources (the record keeps neither setting).
    let image = match &rec.image {
        None => None,
        Some(pinned) => {
            let (name, id) = pinned
                .rsplit_once('@')
                .ok_or_else(|| fail(format!("its image {pinned} is not pinned to an id")))?;
            let configured = container::configured_runtime(repo)?;
            let runtime = container::detect(&rec.stage, configured.as_deref())?;
            Some((
                runtime,
                container::Image {
                    reference: name.to_string(),
                    id: id.to_string(),
                },
            ))
        }
    };
    if !rec.ok() {
        return Err(fail(
            "the recorded execution failed; there is nothing to compare".into(),
        ));
    }
    let scratch = repo
        .tmp_dir()
        .join(format!("verify-{}-{}", std::process::id(), run.short()));
    let _ = std::fs::remove_dir_all(&scratch);
    let work = scratch.join("w");
    std::fs::create_dir_all(&work).map_err(|e| io(&work, e))?;
    let res = (|| {
        for i in &rec.inputs {
            dvx_store::paths::check_rel(&i.path)?;
            // An earlier input may be a link: never write through it out of the scratch.
            dvx_store::paths::check_no_symlink(&work, &i.path, false)?;
            let kind = match i.kind.as_str() {
                "dir" => EntryKind::Dir,
                "symlink" => EntryKind::Symlink,
                _ => EntryKind::File,
            };
            let present = match kind {
                EntryKind::Dir => repo.store.has_object(dvx_store::db::ObjKind::Tree, &i.id)?,
                _ => repo.store.has_file(&i.id)?,
            };
            if !present {
                // Code is usually kept by git, not dvx: the workspace copy or the file in the
                // recorded git commit will do, if it has the recorded content.
                let copy = (kind == EntryKind::File)
                    .then(|| code_copy(repo, rec, i))
                    .flatten();
                let Some(bytes) = copy else {
                    return Err(fail(format!(
                        "its input {} ({}) is neither in the store nor, with that content, in the workspace or the recorded git commit",
                        i.path,
                        i.id.short()
                    )));
                };
                let dest = work.join(&i.path);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::fs::write(&dest, &bytes).map_err(|e| io(&dest, e))?;
                let mode = if bytes.starts_with(b"#!") {
                    0o755
                } else {
                    0o644
                };
                worktree::set_mode(&dest, mode)?;
                continue;
            }
            let mode = if kind == EntryKind::File {
                input_mode(repo, i)
            } else {
                0o644
            };
            materialize(repo, kind, mode, &i.id, &work.join(&i.path))?;
        }
        write_params(&work, rec)?;
        let cwd = work.join(&rec.wdir);
        std::fs::create_dir_all(&cwd).map_err(|e| io(&cwd, e))?;
        let out_dir = scratch.join("out");
        let datum = match &rec.datum {
            Some(d) if !rec.members.is_empty() => {
                // A combined datum: each match at its recorded place, as `dvx run` laid it out.
                let input_dir = scratch.join("in");
                std::fs::create_dir_all(&input_dir).map_err(|e| io(&input_dir, e))?;
                std::fs::create_dir_all(&out_dir).map_err(|e| io(&out_dir, e))?;
                let mut members = Vec::new();
                for m in &rec.members {
                    // Records can come from a remote: their paths are checked like any other.
                    dvx_store::paths::check_rel(&m.path)?;
                    dvx_store::paths::check_rel(&m.place)?;
                    let host = work.join(&m.path);
                    if rec.image.is_none() {
                        crate::job::link_input(&input_dir, &m.place, &host)
                            .map_err(|e| io(&input_dir, e))?;
                    }
                    members.push(crate::job::MemberIo {
                        name: m.name.clone(),
                        place: m.place.clone(),
                        host,
                    });
                }
                Some(DatumIo {
                    id: d,
                    input: input_dir.clone(),
                    output: out_dir.clone(),
                    input_dir,
                    members,
                    group: rec.combine == Some(crate::spec::How::Group),
                })
            }
            Some(d) => {
                // The datum's own input is the recorded input whose path ends in the datum id.
                // (The whole input, `glob: "/"`, is the last one recorded.)
                let suffix = format!("/{d}");
                let input = rec
                    .inputs
                    .iter()
                    .rev()
                    .find(|i| {
                        i.path.ends_with(&suffix) || i.path == *d || d == crate::datum::WHOLE_INPUT
                    })
                    .map(|i| work.join(&i.path))
                    .ok_or_else(|| fail(format!("the input of datum {d} is not recorded")))?;
                std::fs::create_dir_all(&out_dir).map_err(|e| io(&out_dir, e))?;
                let sub = crate::datum::sub_path(d);
                let input_dir = if sub.is_empty() {
                    input.clone()
                } else {
                    scratch.join("in")
                };
                if rec.image.is_none() {
                    crate::job::link_input(&input_dir, sub, &input)
                        .map_err(|e| io(&input_dir, e))?;
                }
                Some(DatumIo {
                    id: d,
                    input,
                    output: out_dir.clone(),
                    input_dir,
                    members: Vec::new(),
                    group: false,
                })
            }
            None => {
                for o in &rec.outputs {
                    dvx_store::paths::check_rel(&o.path)?;
                    dvx_store::paths::check_no_symlink(&work, &o.path, false)?;
                    let abs = work.join(&o.path);
                    // Outputs start absent, as in `dvx run` (the inputs may hold an old copy).
                    match std::fs::symlink_metadata(&abs) {
                        Ok(m) if m.is_dir() => {
                            std::fs::remove_dir_all(&abs).map_err(|e| io(&abs, e))?
                        }
                        Ok(_) => std::fs::remove_file(&abs).map_err(|e| io(&abs, e))?,
                        Err(_) => {}
                    }
                    if let Some(parent) = abs.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                    }
                    if image.is_some() {
                        // Mounted one by one, as `dvx run` does, so each must exist first.
                        container::prepare_output(&abs)?;
                    }
                }
                None
            }
        };
        let outs: Vec<&str> = rec.outputs.iter().map(|o| o.path.as_str()).collect();
        let notebook = match &rec.notebook {
            Some(nb) => {
                let papermill = crate::notebook::papermill(&repo.config.other, &rec.stage)?;
                let (source, _) = crate::notebook::runnable(&work, &nb.path, &scratch, &rec.stage)?;
                Some(crate::notebook::NotebookJob {
                    papermill,
                    source,
                    report: match &rec.datum {
                        Some(d) => crate::notebook::datum_report(d),
                        None => nb.report.clone(),
                    }
                    .into(),
                    kernel: nb.kernel.clone(),
                    params: rec.params.clone(),
                })
            }
            None => None,
        };
        // The same job `dvx run` builds, with no network and default resources.
        let job = Recipe {
            stage: &rec.stage,
            cmds: &rec.cmd,
            env: &rec.env,
            root: &work,
            wdir: &rec.wdir,
            timeout: None,
            notebook,
        }
        .build(
            datum,
            &outs,
            image.map(|(runtime, image)| ContainerOf {
                runtime,
                image,
                network: false,
                resources: Default::default(),
            }),
        );
        let in_container = job.container.is_some();
        // Through the same executor seam as `dvx run`, one execution here.
        let outcome = executor::run_one(&Local::new(1, &Children::default()), job)?;
        if in_container && rec.datum.is_none() {
            for o in &rec.outputs {
                container::clear_placeholder(&work.join(&o.path));
            }
        }
        let mut outputs = Vec::new();
        for o in &rec.outputs {
            let (entry, files) = if rec.datum.is_some() {
                let (e, f) = identify(&out_dir, "")?;
                let f = f
                    .into_iter()
                    .map(|(p, x)| (dvx_store::paths::join(&o.path, &p), x))
                    .collect();
                (e, f)
            } else {
                identify(&work, &o.path)?
            };
            let now = entry.map(|e| e.id);
            let identical = now == Some(o.id);
            let mut differing = Vec::new();
            if !identical
                && o.kind == EntryKind::Dir
                && entry.is_some_and(|e| e.kind == EntryKind::Dir)
            {
                let recorded = dvx_store::lineage::files_of_tree(&repo.store, &o.id, &o.path)?;
                for (p, f) in recorded.iter().filter(|(_, f)| f.kind != EntryKind::Dir) {
                    if files.get(p).map(|x| x.id) != Some(f.id) {
                        differing.push(p.clone());
                    }
                }
                for (p, _) in files.iter().filter(|(_, f)| f.kind != EntryKind::Dir) {
                    if !recorded.contains_key(p) && p != &o.path {
                        differing.push(p.clone());
                    }
                }
                differing.sort();
            }
            let mut identical = identical;
            let mut ignored = Vec::new();
            if let (false, Some(nb)) = (identical, &rec.notebook) {
                let base = if rec.datum.is_some() { &out_dir } else { &work };
                let inside = |p: &str| {
                    let sub = if rec.datum.is_some() {
                        p.strip_prefix(&o.path)
                            .map(|s| s.trim_start_matches('/'))
                            .unwrap_or(p)
                    } else {
                        p
                    };
                    base.join(sub)
                };
                let recorded_report = if o.kind == EntryKind::Dir {
                    recorded_file(repo, &o.id, &o.path, &nb.report)?
                } else if o.path == nb.report {
                    Some(o.id)
                } else {
                    None
                };
                if let Some(rid) = recorded_report {
                    let mut was = Vec::new();
                    repo.store.write_file_to(&rid, &mut was)?;
                    let now_bytes = std::fs::read(inside(&nb.report)).unwrap_or_default();
                    if let Some((true, fields)) = crate::notebook::volatile::same(&was, &now_bytes)
                    {
                        ignored = fields;
                        differing.retain(|p| p != &nb.report);
                        identical = o.kind != EntryKind::Dir || differing.is_empty();
                    }
                }
            }
            outputs.push(OutputCheck {
                path: o.path.clone(),
                kind: o.kind.as_str().to_string(),
                recorded: o.id,
                now,
                identical,
                files: differing,
                ignored,
            });
        }
        Ok(VerifyReport {
            run: *run,
            stage: rec.stage.clone(),
            datum: rec.datum.clone(),
            exit: outcome.exit,
            error: outcome.error.clone(),
            duration_ms: outcome.duration.as_millis() as u64,
            identical: outcome.exit == Some(0)
                && outcome.error.is_none()
                && outputs.iter().all(|o| o.identical),
            outputs,
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    res
}
