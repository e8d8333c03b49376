//! Metrics and parameters over time: read from the workspace, or from the run records a data
//! commit's history holds.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use dvx_store::object::EntryKind;
use dvx_store::{gitutil, worktree, Id, Repo};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::params::{stage_params, to_json};
use crate::record;
use crate::spec::Pipeline;

/// path -> flattened key -> value
pub type Metrics = BTreeMap<String, BTreeMap<String, Value>>;
/// stage -> `file:key` -> value
pub type Params = BTreeMap<String, BTreeMap<String, Value>>;

#[derive(Debug, Serialize)]
pub struct Delta {
    pub path: String,
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// new - old, when both are numbers.
    pub change: Option<f64>,
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Parse a metrics file (JSON or YAML) into flat keys.
pub fn parse_metrics(bytes: &[u8]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let text = String::from_utf8_lossy(bytes);
    let value = serde_json::from_str::<Value>(&text).ok().or_else(|| {
        let options = marked_yaml::LoaderOptions::default().prevent_coercion(true);
        marked_yaml::parse_yaml_with_options(0, text.as_ref(), options)
            .ok()
            .map(|n| to_json(&n))
    });
    if let Some(v) = value {
        flatten("", &v, &mut out);
    }
    out
}

/// Every metrics path: the stages' `metrics` and the top-level `metrics` section.
pub fn metric_paths(p: &Pipeline) -> Vec<String> {
    let mut out: Vec<String> = p
        .stages
        .iter()
        .flat_map(|s| s.metrics.iter().map(|m| m.path.clone()))
        .collect();
    for m in &p.sections.metrics {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

/// A metrics file by its extension: DVC reads JSON, YAML (and TOML, CSV, which dvx does not).
fn is_metrics_file(path: &str) -> bool {
    [".json", ".yaml", ".yml"]
        .iter()
        .any(|e| path.to_ascii_lowercase().ends_with(e))
}

/// Files below a workspace folder, project-relative and sorted.
fn files_below(root: &Path, rel: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = format!("{rel}/{name}");
        match e.file_type() {
            Ok(t) if t.is_dir() => files_below(root, &p, out),
            Ok(t) if t.is_file() && is_metrics_file(&p) => out.push(p),
            _ => {}
        }
    }
    out.sort();
}

pub fn workspace_metrics(repo: &Repo, p: &Pipeline) -> Metrics {
    let mut out = Metrics::new();
    for path in metric_paths(p) {
        let full = repo.root.join(&path);
        if full.is_dir() {
            // DVC's top-level `metrics:` may name a folder: every metrics file in it.
            let mut files = Vec::new();
            files_below(&repo.root, &path, &mut files);
            for f in files {
                if let Ok(bytes) = std::fs::read(repo.root.join(&f)) {
                    out.insert(f, parse_metrics(&bytes));
                }
            }
        } else if let Ok(bytes) = std::fs::read(&full) {
            out.insert(path, parse_metrics(&bytes));
        }
    }
    out
}

/// A parameters file as flat keys, as `params diff` shows the top-level `params` files.
fn flat_params(bytes: &[u8]) -> BTreeMap<String, Value> {
    parse_metrics(bytes)
}

pub fn workspace_params(repo: &Repo, p: &Pipeline) -> Result<Params> {
    let mut out = Params::new();
    for s in &p.stages {
        let v = stage_params(&repo.root, s)?;
        if !v.is_empty() {
            out.insert(s.name.clone(), v);
        }
    }
    for f in &p.sections.params {
        if let Ok(bytes) = std::fs::read(repo.root.join(f)) {
            out.insert(f.clone(), flat_params(&bytes));
        }
    }
    Ok(out)
}

/// The files at `rel` in a commit: the data commit's tree (a folder gives its metrics files),
/// or else the git commit it was made on (files kept in git, such as `cache: false` metrics
/// and params files).
pub(crate) fn files_at(
    repo: &Repo,
    c: &dvx_store::object::Commit,
    rel: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    files_at_where(repo, c, rel, is_metrics_file)
}

/// `files_at`, keeping from a folder the files `keep` accepts.
pub(crate) fn files_at_where(
    repo: &Repo,
    c: &dvx_store::object::Commit,
    rel: &str,
    keep: fn(&str) -> bool,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut found = BTreeMap::new();
    worktree::flatten_path(&repo.store, &c.tree, rel, &mut found)?;
    for (p, f) in found {
        let wanted = p == rel || keep(&p);
        if f.kind != EntryKind::Dir && wanted {
            out.push((p, repo.store.read_file(&f.id)?));
        }
    }
    if out.is_empty() {
        if let Some(bytes) = c
            .git
            .as_ref()
            .and_then(|g| gitutil::blob_at(&repo.root, &g.commit, rel))
        {
            out.push((rel.to_string(), bytes));
        }
    }
    Ok(out)
}

/// Metrics and parameters as of a data commit: for each metrics path and stage, the newest
/// run record in the commit's history that produced it; top-level metrics and params files
/// not found that way are read from the commit itself.
pub fn at_commit(repo: &Repo, p: &Pipeline, commit: &Id) -> Result<(Metrics, Params)> {
    let wanted: HashSet<String> = metric_paths(p).into_iter().collect();
    let mut metrics = Metrics::new();
    let mut params = Params::new();
    let mut seen_stage: HashSet<String> = HashSet::new();
    // Within one commit, records are in execution order: later ones win.
    record::walk_history(&repo.store, commit, |_, r| {
        if !r.ok() {
            return true;
        }
        if r.datum.is_none() && seen_stage.insert(r.stage.clone()) && !r.params.is_empty() {
            params.insert(r.stage.clone(), r.params.clone());
        }
        for o in &r.outputs {
            if wanted.contains(&o.path) && !metrics.contains_key(&o.path) {
                if let Ok(bytes) = repo.store.read_file(&o.id) {
                    metrics.insert(o.path.clone(), parse_metrics(&bytes));
                }
            }
        }
        true
    })?;
    let c = repo.store.get_commit(commit)?;
    for m in &p.sections.metrics {
        let known = metrics.keys().any(|k| dvx_store::paths::is_under(k, m));
        if !known {
            for (path, bytes) in files_at(repo, &c, m)? {
                metrics.insert(path, parse_metrics(&bytes));
            }
        }
    }
    for f in &p.sections.params {
        if let Some((_, bytes)) = files_at(repo, &c, f)?.into_iter().next() {
            params.insert(f.clone(), flat_params(&bytes));
        }
    }
    Ok((metrics, params))
}

/// `at_commit` for a revision (`HEAD`, a branch, a tag, an id prefix).
pub fn at_rev(repo: &Repo, p: &Pipeline, rev: &str) -> Result<(Metrics, Params)> {
    at_commit(repo, p, &repo.store.resolve(rev)?)
}

/// Key-by-key differences between two maps of maps.
pub fn diff(old: &Metrics, new: &Metrics) -> Vec<Delta> {
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let empty = BTreeMap::new();
    for path in paths {
        let (a, b) = (
            old.get(path).unwrap_or(&empty),
            new.get(path).unwrap_or(&empty),
        );
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            if x == y {
                continue;
            }
            let change = match (x.and_then(Value::as_f64), y.and_then(Value::as_f64)) {
                (Some(u), Some(v)) => Some(v - u),
                _ => None,
            };
            out.push(Delta {
                path: path.clone(),
                key: k.clone(),
                old: x.cloned(),
                new: y.cloned(),
                change,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_metrics_and_diff() {
        let a = parse_metrics(br#"{"acc": 0.9, "per_class": {"a": 1, "b": 2}}"#);
        let b = parse_metrics(b"acc: 0.95\nper_class:\n  a: 1\n  b: 3\n");
        assert_eq!(a["per_class.b"], serde_json::json!(2));
        let d = diff(
            &[("m.json".to_string(), a)].into(),
            &[("m.json".to_string(), b)].into(),
        );
        let keys: Vec<&str> = d.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, vec!["acc", "per_class.b"]);
        assert!((d[0].change.unwrap() - 0.05).abs() < 1e-9);
    }

    /// Numbers come back with every digit they were written with (serde_json's
    /// `float_roundtrip`; without it the last digit of this one changes).
    #[test]
    fn numbers_round_trip() {
        let m = parse_metrics(br#"{"acc": 0.9679648548256273}"#);
        assert_eq!(m["acc"].to_string(), "0.9679648548256273");
        let m = parse_metrics(b"acc: 0.9679648548256273\n");
        assert_eq!(m["acc"].to_string(), "0.9679648548256273");
    }
}
