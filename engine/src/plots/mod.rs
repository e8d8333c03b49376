//! Plots as DVC declares them (a stage's `plots:`, the top-level `plots:`, DVCLive's files):
//! which files each plot reads, the series they give at each revision, and (`render`) SVG
//! and a self-contained HTML page of them.

use std::collections::BTreeMap;

use dvx_store::{Id, Repo};
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::record;
use crate::spec::Pipeline;

mod data;
pub mod render;

pub use data::{parse_table, Table};

/// Line (DVC's `linear`, `simple`, `smooth`) or points (`scatter`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    #[default]
    Linear,
    Scatter,
}

/// One plot: the files it reads and how to draw them.
#[derive(Clone, Debug, Serialize)]
pub struct PlotDef {
    pub id: String,
    /// Files (or folders of them) with the columns to draw from each (empty: the default).
    pub files: Vec<(String, Vec<String>)>,
    pub x: Option<String>,
    pub template: Template,
    pub title: Option<String>,
    pub x_label: Option<String>,
    pub y_label: Option<String>,
}

/// One line (or set of points) of a plot: a column of a file at a revision.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub rev: String,
    pub file: String,
    pub y: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlotData {
    pub id: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub template: Template,
    pub series: Vec<Series>,
}

/// Where to read files: the workspace, or a data commit (named as the user wrote it).
pub enum Source {
    Workspace,
    Commit { name: String, id: Id },
}

fn text(props: &Value, key: &str) -> Option<String> {
    props.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

fn def(id: &str, props: &Value) -> PlotDef {
    // `y` is a column, a list of columns, or a map from files to column(s).
    let cols = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    let files = match props.get("y") {
        Some(Value::Object(m)) => m.iter().map(|(f, c)| (f.clone(), cols(c))).collect(),
        Some(y) => vec![(id.to_string(), cols(y))],
        None => vec![(id.to_string(), Vec::new())],
    };
    PlotDef {
        id: id.to_string(),
        files,
        x: text(props, "x"),
        template: match text(props, "template").as_deref() {
            Some("scatter") => Template::Scatter,
            _ => Template::Linear,
        },
        title: text(props, "title"),
        x_label: text(props, "x_label"),
        y_label: text(props, "y_label"),
    }
}

/// Every plot the pipeline declares: stages' `plots:` first, then the top-level ones.
pub fn definitions(p: &Pipeline) -> Vec<PlotDef> {
    let mut out = Vec::new();
    for s in &p.stages {
        for o in &s.plots {
            out.push(def(&o.path, o.props.as_ref().unwrap_or(&Value::Null)));
        }
    }
    for pl in &p.sections.plots {
        out.push(def(&pl.id, &pl.props));
    }
    out
}

fn is_table(p: &str) -> bool {
    [".csv", ".tsv", ".json", ".yaml", ".yml"]
        .iter()
        .any(|e| p.ends_with(e))
}

/// The files under `rel` with their bytes, at `src`.
fn read(repo: &Repo, src: &Source, rel: &str) -> Result<Vec<(String, Vec<u8>)>> {
    match src {
        Source::Workspace => {
            let abs = repo.root.join(rel);
            if abs.is_file() {
                return Ok(std::fs::read(&abs)
                    .map(|b| vec![(rel.to_string(), b)])
                    .unwrap_or_default());
            }
            let mut out = Vec::new();
            for e in walk(&abs) {
                if let Ok(r) = e.strip_prefix(&repo.root) {
                    let r = r.to_string_lossy().into_owned();
                    if is_table(&r) {
                        if let Ok(b) = std::fs::read(&e) {
                            out.push((r, b));
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        }
        Source::Commit { id, .. } => {
            // A file a run made (stored with its record, `cache: false` ones too), newest first.
            if let Some(bytes) = from_records(repo, id, rel)? {
                return Ok(vec![(rel.to_string(), bytes)]);
            }
            let c = repo.store.get_commit(id)?;
            crate::metrics::files_at_where(repo, &c, rel, is_table)
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The newest successful run in `commit`'s history that output exactly `rel`: its content.
fn from_records(repo: &Repo, commit: &Id, rel: &str) -> Result<Option<Vec<u8>>> {
    let mut found = None;
    record::walk_history(&repo.store, commit, |_, r| {
        if let Some(o) = r.outputs.iter().find(|o| o.path == rel && r.ok()) {
            found = repo.store.read_file(&o.id).ok();
        }
        found.is_none()
    })?;
    Ok(found)
}

/// The data of every plot at every source, one series per (source, file, column).
pub fn collect(repo: &Repo, defs: &[PlotDef], sources: &[Source]) -> Result<Vec<PlotData>> {
    let mut out = Vec::new();
    for d in defs {
        let mut series = Vec::new();
        let mut x_name = d.x.clone();
        let mut y_names = Vec::new();
        for src in sources {
            let rev = match src {
                Source::Workspace => "workspace".to_string(),
                Source::Commit { name, .. } => name.clone(),
            };
            for (file, cols) in &d.files {
                for (path, bytes) in read(repo, src, file)? {
                    let Some(t) = parse_table(&path, &bytes) else {
                        continue;
                    };
                    let x = d.x.clone().or_else(|| t.default_x());
                    x_name = x_name.or(x.clone());
                    let ys = if cols.is_empty() {
                        t.default_y(x.as_deref())
                    } else {
                        cols.clone()
                    };
                    for y in ys {
                        let points = t.points(x.as_deref(), &y);
                        if !points.is_empty() {
                            y_names.push(y.clone());
                            series.push(Series {
                                rev: rev.clone(),
                                file: path.clone(),
                                y,
                                points,
                            });
                        }
                    }
                }
            }
        }
        y_names.sort();
        y_names.dedup();
        out.push(PlotData {
            id: d.id.clone(),
            title: d.title.clone().unwrap_or_else(|| d.id.clone()),
            x_label: d
                .x_label
                .clone()
                .or(x_name)
                .unwrap_or_else(|| "step".into()),
            y_label: d.y_label.clone().unwrap_or_else(|| y_names.join(", ")),
            template: d.template,
            series,
        });
    }
    Ok(out)
}

/// Each plot's series keyed for the JSON output: `{plot: [{rev, file, y, points}]}`.
pub fn as_json(plots: &[PlotData]) -> BTreeMap<String, &Vec<Series>> {
    plots.iter().map(|p| (p.id.clone(), &p.series)).collect()
}
