//! `dvx import-dvc`: bring a DVC project over. dvc.yaml becomes dvx.yaml (dvx reads DVC's
//! syntax, so the text is kept, comments included); data tracked by `.dvc` files is added;
//! data missing from the workspace comes from DVC's cache; every file is checked against DVC's
//! md5 before it is trusted; and each stage DVC would call up to date (its dependencies,
//! parameters and outputs match dvc.lock) is recorded as run, by DVC, so `dvx run` executes
//! nothing until something changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dvx_store::{Access, Progress, Repo, StoreError};
use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::exec::Children;
use crate::executor::Adopt;
use crate::run::{Engine, RunOptions};
use crate::spec::PIPELINE_FILE;

#[derive(Debug, Default, Serialize)]
pub struct ImportDvcReport {
    /// dvx.yaml was written from dvc.yaml.
    pub pipeline: bool,
    /// Paths tracked by `.dvc` files, now tracked by dvx.
    pub tracked: Vec<String>,
    /// Files brought from DVC's cache because the workspace lacked them.
    pub from_cache: Vec<String>,
    /// Files checked against DVC's md5.
    pub verified: u64,
    /// Stages recorded as run by DVC (up to date).
    pub adopted: Vec<String>,
    /// Stages left to run, and why.
    pub stale: Vec<(String, String)>,
    /// What could not be carried over, with where.
    pub untranslated: Vec<String>,
    /// The commit holding the imported data and stage records.
    pub commits: Vec<dvx_store::Id>,
}

fn err(message: impl Into<String>) -> EngineError {
    EngineError::ImportDvc(message.into())
}

fn io(p: &Path, e: std::io::Error) -> EngineError {
    StoreError::io(p, e).into()
}

fn yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let node = marked_yaml::parse_yaml(0, &text)
        .map_err(|e| err(format!("{}: not valid YAML: {e}", path.display())))?;
    Ok(crate::params::to_json(&node))
}

fn md5_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).map_err(|e| io(p, e))?;
    let mut h = Md5::new();
    std::io::copy(&mut f, &mut h).map_err(|e| io(p, e))?;
    Ok(hex::encode(h.finalize()))
}

/// DVC's cache: `.dvc/cache/files/md5` (DVC 3) or `.dvc/cache` (DVC 2).
fn cache_path(root: &Path, md5: &str) -> Option<PathBuf> {
    let (a, b) = (md5.get(..2)?, md5.get(2..)?);
    [".dvc/cache/files/md5", ".dvc/cache"]
        .iter()
        .map(|c| root.join(c).join(a).join(b))
        .find(|p| p.is_file())
}

/// Files of a DVC output: one (path, md5), or a folder's entries from its `.dir` listing.
fn files_of(root: &Path, path: &str, md5: &str) -> Result<Vec<(String, String)>> {
    let Some(dir_md5) = md5.strip_suffix(".dir") else {
        return Ok(vec![(path.to_string(), md5.to_string())]);
    };
    let listing = cache_path(root, md5)
        .ok_or_else(|| err(format!("{path}: DVC's listing of the folder ({dir_md5}.dir) is not in its cache; run `dvc pull` first")))?;
    let bytes = std::fs::read(&listing).map_err(|e| io(&listing, e))?;
    let entries: Vec<Value> = serde_json::from_slice(&bytes).map_err(|e| {
        err(format!(
            "{}: not a DVC folder listing: {e}",
            listing.display()
        ))
    })?;
    let mut out = Vec::new();
    for e in entries {
        let (Some(rel), Some(m)) = (e["relpath"].as_str(), e["md5"].as_str()) else {
            continue;
        };
        let joined = dvx_store::paths::join(path, rel);
        dvx_store::paths::check_tracked(&joined).map_err(|_| {
            err(format!(
                "{path}: the listing names {rel:?}, which leaves the folder"
            ))
        })?;
        out.push((joined, m.to_string()));
    }
    Ok(out)
}

/// Make sure each file of an output is in the workspace with DVC's content: brought from the
/// cache when missing, refused when it differs.
fn materialize(root: &Path, path: &str, md5: &str, rep: &mut ImportDvcReport) -> Result<bool> {
    for (rel, want) in files_of(root, path, md5)? {
        let abs = root.join(&rel);
        if !abs.exists() {
            let Some(cached) = cache_path(root, &want) else {
                return Err(err(format!("{rel} is neither in the workspace nor in DVC's cache; run `dvc pull` (or `dvc checkout`) first")));
            };
            if let Some(parent) = abs.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            // Beside it, then renamed: a killed import leaves no half-copied file that a
            // later one would take for the user's own (and refuse as changed).
            let name = abs.file_name().map(|n| n.to_string_lossy().into_owned());
            let tmp = abs.with_file_name(format!(
                ".{}.dvx-import-{}",
                name.unwrap_or_default(),
                std::process::id()
            ));
            std::fs::copy(&cached, &tmp).map_err(|e| io(&tmp, e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &abs).map_err(|e| io(&abs, e))?;
            rep.from_cache.push(rel.clone());
        }
        let have = md5_file(&abs)?;
        rep.verified += 1;
        if have != want {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Every `.dvc` file below the project, outside `.git`, `.dvc` and `.dvx`.
fn dvc_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), ".git" | ".dvc" | ".dvx") {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => dvc_files(&p, out),
            Ok(t) if t.is_file() && name.ends_with(".dvc") => out.push(p),
            _ => {}
        }
    }
}

/// (path, md5) of each out a `.dvc` file or a dvc.lock entry lists, paths relative to `base`.
fn outs(v: &Value, base: &str) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    let p = o["path"].as_str()?;
                    let m = o["md5"].as_str()?;
                    Some((dvx_store::paths::join(base, p), m.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether DVC would call a locked stage up to date: its command, dependencies and parameters
/// as dvc.lock has them; its outputs present with their md5. The reason when not.
fn stage_state(
    root: &Path,
    st: &Value,
    wdir: &str,
    cmd_now: Option<String>,
    rep: &mut ImportDvcReport,
) -> Result<Result<(), String>> {
    // dvc.lock names deps, params files and outs relative to the stage's `wdir`.
    let locked_cmd = match &st["cmd"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        v => v.as_str().unwrap_or_default().to_string(),
    };
    if cmd_now.is_some_and(|c| c.trim() != locked_cmd.trim()) {
        return Ok(Err("its command changed since DVC ran it".into()));
    }
    for (path, md5) in outs(&st["deps"], wdir) {
        for (rel, want) in files_of(root, &path, &md5)? {
            let abs = root.join(&rel);
            if !abs.is_file() || md5_file(&abs)? != want {
                return Ok(Err(format!("dependency {rel} changed since DVC ran it")));
            }
            rep.verified += 1;
        }
    }
    if let Some(files) = st["params"].as_object() {
        for (file, kv) in files {
            let rel = dvx_store::paths::join(wdir, file);
            let now = crate::params::load_file(root, &rel)?.unwrap_or(Value::Null);
            for (k, v) in kv.as_object().into_iter().flatten() {
                if crate::params::lookup(&now, k) != Some(v) {
                    return Ok(Err(format!("parameter {k} changed since DVC ran it")));
                }
            }
        }
    }
    for (path, md5) in outs(&st["outs"], wdir) {
        if !materialize(root, &path, &md5, rep)? {
            return Ok(Err(format!("output {path} differs from what DVC recorded")));
        }
    }
    Ok(Ok(()))
}

pub fn import_dvc(
    root: &Path,
    children: &Children,
    progress: &dyn Progress,
) -> Result<ImportDvcReport> {
    if !root.join(".dvc").is_dir() {
        return Err(err(format!(
            "{} has no .dvc folder: not a DVC project",
            root.display()
        )));
    }
    let mut rep = ImportDvcReport::default();
    // dvc.yaml: kept as written, if dvx reads it.
    let dvc_yaml = root.join("dvc.yaml");
    let dvx_yaml = root.join(PIPELINE_FILE);
    let mut pipeline_text = None;
    if dvc_yaml.is_file() {
        if dvx_yaml.exists() {
            return Err(err(
                "dvx.yaml exists already; move it away to convert dvc.yaml",
            ));
        }
        let text = std::fs::read_to_string(&dvc_yaml).map_err(|e| io(&dvc_yaml, e))?;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("vars:") || line.contains("${") {
                rep.untranslated.push(format!("dvc.yaml:{}: `vars` and `${{...}}` interpolation are not supported; write the values out", n + 1));
            }
        }
        if !rep.untranslated.is_empty() {
            return Err(err(rep.untranslated.join("; ")));
        }
        crate::spec::parse(Path::new("dvc.yaml"), &text)?;
        pipeline_text = Some(text);
    }
    if !Repo::has_store(root) && !root.join(".dvx/config.toml").is_file() {
        Repo::init(root)?;
    }
    // Data `dvc add` tracked.
    let mut files = Vec::new();
    dvc_files(root, &mut files);
    files.sort();
    let mut tracked = Vec::new();
    for f in &files {
        let base = f
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (path, md5) in outs(&yaml(f)?["outs"], &base) {
            if !materialize(root, &path, &md5, &mut rep)? {
                return Err(err(format!(
                    "{path} differs from what {} records; run `dvc checkout` or `dvc add` first",
                    f.display()
                )));
            }
            tracked.push(path);
        }
    }
    if !tracked.is_empty() {
        let repo = Repo::open(root, Access::Write("dvx import-dvc"))?;
        let r = repo.add(
            &tracked,
            Some("dvx import-dvc: data tracked by DVC".into()),
            progress,
        )?;
        rep.commits.extend(r.commit);
        rep.tracked = tracked;
    }
    let Some(text) = pipeline_text else {
        return Ok(rep);
    };
    let header =
        "# Converted from dvc.yaml by `dvx import-dvc`; dvx reads DVC's stage syntax as is.\n";
    let tmp = root.join(".dvx/tmp");
    dvx_store::fsutil::write_atomic(&dvx_yaml, format!("{header}{text}").as_bytes(), &tmp)?;
    rep.pipeline = true;
    // Stages DVC ran and would call up to date, whose needs are too: recorded as run by DVC.
    let lock = root.join("dvc.lock");
    let locked = if lock.is_file() {
        yaml(&lock)?["stages"].clone()
    } else {
        Value::Null
    };
    let repo = Repo::open(root, Access::Write("dvx import-dvc"))?;
    let mut engine = Engine::open(&repo)?;
    let mut ok: BTreeSet<usize> = BTreeSet::new();
    for (i, s) in engine.pipeline.stages.iter().enumerate() {
        let reason = match locked.get(&s.name) {
            None => Err("DVC has not run it (no dvc.lock entry)".to_string()),
            Some(st) => stage_state(root, st, &s.wdir, Some(s.cmd.join("\n")), &mut rep)?,
        };
        let needs_ok = engine.dag.needs[i].iter().all(|j| ok.contains(j));
        match (reason, needs_ok) {
            (Ok(()), true) => {
                ok.insert(i);
            }
            (Ok(()), false) => rep
                .stale
                .push((s.name.clone(), "a stage it needs is stale".into())),
            (Err(why), _) => rep.stale.push((s.name.clone(), why)),
        }
    }
    let names: Vec<String> = ok
        .iter()
        .map(|&i| engine.pipeline.stages[i].name.clone())
        .collect();
    if !names.is_empty() {
        let opts = RunOptions {
            targets: names.clone(),
            jobs: 1,
            no_run_cache: true,
            adopt: Some("dvc".into()),
            message: Some("dvx import-dvc: stages DVC ran".into()),
            ..Default::default()
        };
        let summary = engine.run_on(&opts, &Adopt::default(), children, progress)?;
        if summary.failed > 0 {
            let f = summary
                .failures
                .first()
                .map(|f| format!("{}: {}", f.stage, f.error))
                .unwrap_or_default();
            return Err(err(format!("could not record the stages DVC ran: {f}")));
        }
        rep.commits.extend(summary.commit);
        rep.adopted = names;
    }
    Ok(rep)
}
