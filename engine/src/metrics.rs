//! Metrics and parameters over time: read from the workspace, or from the run records a data
//! commit's history holds.

use std::collections::{BTreeMap, HashSet};

use dvx_store::{Id, Repo};
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

pub fn metric_paths(p: &Pipeline) -> Vec<String> {
    p.stages
        .iter()
        .flat_map(|s| s.metrics.iter().map(|m| m.path.clone()))
        .collect()
}

pub fn workspace_metrics(repo: &Repo, p: &Pipeline) -> Metrics {
    let mut out = Metrics::new();
    for path in metric_paths(p) {
        if let Ok(bytes) = std::fs::read(repo.root.join(&path)) {
            out.insert(path, parse_metrics(&bytes));
        }
    }
    out
}

pub fn workspace_params(repo: &Repo, p: &Pipeline) -> Result<Params> {
    let mut out = Params::new();
    for s in &p.stages {
        let v = stage_params(&repo.root, s)?;
        if !v.is_empty() {
            out.insert(s.name.clone(), v);
        }
    }
    Ok(out)
}

/// Metrics and parameters as of a data commit: for each metrics path and stage, the newest
/// run record in the commit's history that produced it.
pub fn at_commit(repo: &Repo, p: &Pipeline, commit: &Id) -> Result<(Metrics, Params)> {
    let wanted: HashSet<String> = metric_paths(p).into_iter().collect();
    let mut metrics = Metrics::new();
    let mut params = Params::new();
    let mut seen_stage: HashSet<String> = HashSet::new();
    let mut cur = Some(*commit);
    while let Some(id) = cur {
        let c = repo.store.get_commit(&id)?;
        // Within one commit, records are in execution order: later ones win.
        for rid in c.runs.iter().rev() {
            let Ok(r) = record::load(&repo.store, rid) else {
                continue;
            };
            if !r.ok() {
                continue;
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
        }
        cur = c.parents.first().copied();
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
}
