//! `dvx exp show`: the workspace and every experiment side by side, with the parameters they
//! ran with and the metrics they reached.

use std::collections::{BTreeMap, BTreeSet};

use dvx_store::{Id, Repo};
use serde::Serialize;
use serde_json::Value;

use super::{list, ExpStatus};
use crate::error::{EngineError, Result};
use crate::metrics;
use crate::run::load_pipeline;
use crate::spec::DEFAULT_PARAMS;

/// One row: the workspace, or an experiment.
#[derive(Clone, Debug, Serialize)]
pub struct ExpRow {
    /// `workspace` for the first row.
    pub name: String,
    /// `workspace`, or the experiment's state.
    pub status: String,
    pub base: Option<Id>,
    pub commit: Option<Id>,
    /// Unix seconds (the experiment's creation; none for the workspace).
    pub created: Option<i64>,
    pub wall_ms: Option<u64>,
    /// Column name → value.
    pub params: BTreeMap<String, Value>,
    pub metrics: BTreeMap<String, Value>,
    /// The parameters it overrides (column names).
    pub overridden: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExpTable {
    /// Parameter columns (`train.l2`, or `FILE:KEY` outside params.yaml).
    pub params: Vec<String>,
    /// Metric columns (the key, or `FILE:KEY` where two files share it).
    pub metrics: Vec<String>,
    pub rows: Vec<ExpRow>,
}

/// A column to sort by.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    Name,
    Created,
    Param(String),
    Metric(String),
}

fn param_column(name: &str) -> String {
    match name.split_once(':') {
        Some((f, k)) if f == DEFAULT_PARAMS => k.to_string(),
        _ => name.to_string(),
    }
}

/// Metric columns: the bare key where only one file has it.
fn metric_columns(all: &BTreeSet<(String, String)>) -> BTreeMap<(String, String), String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, k) in all {
        *count.entry(k.as_str()).or_default() += 1;
    }
    all.iter()
        .map(|(f, k)| {
            let col = if count[k.as_str()] == 1 {
                k.clone()
            } else {
                format!("{f}:{k}")
            };
            ((f.clone(), k.clone()), col)
        })
        .collect()
}

pub fn show(repo: &Repo) -> Result<ExpTable> {
    let pipeline = load_pipeline(&repo.root)?;
    let ws_params: BTreeMap<String, Value> = metrics::workspace_params(repo, &pipeline)?
        .into_values()
        .flatten()
        .collect();
    let ws_metrics = metrics::workspace_metrics(repo, &pipeline);
    let exps = list(repo)?;
    let mut metric_keys = BTreeSet::new();
    for m in std::iter::once(&ws_metrics).chain(exps.iter().map(|e| &e.metrics)) {
        for (f, kv) in m {
            metric_keys.extend(kv.keys().map(|k| (f.clone(), k.clone())));
        }
    }
    let cols = metric_columns(&metric_keys);
    let flat_metrics = |m: &metrics::Metrics| -> BTreeMap<String, Value> {
        m.iter()
            .flat_map(|(f, kv)| {
                kv.iter()
                    .map(|(k, v)| (cols[&(f.clone(), k.clone())].clone(), v.clone()))
            })
            .collect()
    };
    let named = |p: &BTreeMap<String, Value>| -> BTreeMap<String, Value> {
        p.iter()
            .map(|(k, v)| (param_column(k), v.clone()))
            .collect()
    };
    let mut rows = vec![ExpRow {
        name: "workspace".into(),
        status: "workspace".into(),
        base: None,
        commit: repo.store.head_commit()?,
        created: None,
        wall_ms: None,
        params: named(&ws_params),
        metrics: flat_metrics(&ws_metrics),
        overridden: Vec::new(),
        error: None,
    }];
    for e in &exps {
        // A queued experiment has not run: its parameters are the workspace's, overridden.
        let mut params = if e.status == ExpStatus::Queued || e.params.is_empty() {
            ws_params.clone()
        } else {
            e.params.clone()
        };
        params.extend(e.overrides.clone());
        rows.push(ExpRow {
            name: e.name.clone(),
            status: e.status.as_str().into(),
            base: Some(e.base),
            commit: e.commit,
            created: Some(e.created),
            wall_ms: (e.status != ExpStatus::Queued).then_some(e.wall_ms),
            params: named(&params),
            metrics: flat_metrics(&e.metrics),
            overridden: e.overrides.keys().map(|k| param_column(k)).collect(),
            error: e.error.clone(),
        });
    }
    let params: BTreeSet<String> = rows.iter().flat_map(|r| r.params.keys().cloned()).collect();
    Ok(ExpTable {
        params: params.into_iter().collect(),
        metrics: cols
            .into_values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        rows,
    })
}

/// Resolve a `--sort-by` name: `name`, `created`, or a parameter or metric column (a suffix
/// after `.` or `:` is enough when only one column ends so).
pub fn column(t: &ExpTable, by: &str) -> Result<Column> {
    match by {
        "name" => return Ok(Column::Name),
        "created" | "time" => return Ok(Column::Created),
        _ => {}
    }
    let matches = |cols: &[String]| -> Vec<String> {
        if cols.iter().any(|c| c == by) {
            return vec![by.to_string()];
        }
        cols.iter()
            .filter(|c| c.ends_with(&format!(".{by}")) || c.ends_with(&format!(":{by}")))
            .cloned()
            .collect()
    };
    let (m, p) = (matches(&t.metrics), matches(&t.params));
    match (m.as_slice(), p.as_slice()) {
        ([one], []) => Ok(Column::Metric(one.clone())),
        ([], [one]) => Ok(Column::Param(one.clone())),
        ([], []) => Err(EngineError::Experiment {
            message: format!("no column {by:?} to sort by"),
            hint: format!(
                "sort by name, created, a metric ({}) or a parameter ({})",
                t.metrics.join(", "),
                t.params.join(", ")
            ),
        }),
        _ => Err(EngineError::Experiment {
            message: format!("{by:?} names more than one column"),
            hint: "give the whole column name, as `dvx exp show` prints it".into(),
        }),
    }
}

/// Sort the experiments (the workspace row stays first); rows without the value go last.
pub fn sort_rows(t: &mut ExpTable, by: &str, descending: bool) -> Result<()> {
    let col = column(t, by)?;
    let key = |r: &ExpRow| -> Option<Value> {
        match &col {
            Column::Name => Some(Value::String(r.name.clone())),
            Column::Created => r.created.map(Value::from),
            Column::Param(c) => r.params.get(c).cloned(),
            Column::Metric(c) => r.metrics.get(c).cloned(),
        }
    };
    let cmp = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => a.to_string().cmp(&b.to_string()),
    };
    if t.rows.len() > 1 {
        t.rows[1..].sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) if descending => cmp(&y, &x),
            (Some(x), Some(y)) => cmp(&x, &y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    Ok(())
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The table as CSV (RFC 4180): name, status, commit, created, the parameters, the metrics.
pub fn to_csv(t: &ExpTable) -> String {
    let mut head = vec![
        "name".to_string(),
        "status".into(),
        "commit".into(),
        "created".into(),
    ];
    head.extend(t.params.iter().cloned());
    head.extend(t.metrics.iter().cloned());
    let mut out = head
        .iter()
        .map(|h| csv_field(h))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for r in &t.rows {
        let mut f = vec![
            r.name.clone(),
            r.status.clone(),
            r.commit.map(|c| c.to_hex()).unwrap_or_default(),
            r.created
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
                .map(|d| d.to_rfc3339())
                .unwrap_or_default(),
        ];
        f.extend(t.params.iter().map(|c| cell(r.params.get(c))));
        f.extend(t.metrics.iter().map(|c| cell(r.metrics.get(c))));
        out += &(f.iter().map(|x| csv_field(x)).collect::<Vec<_>>().join(",") + "\n");
    }
    out
}

/// A cell as the text table shows it.
pub fn show_cell(v: Option<&Value>) -> String {
    cell(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(name: &str, l2: f64, acc: Option<f64>) -> ExpRow {
        ExpRow {
            name: name.into(),
            status: "done".into(),
            base: None,
            commit: None,
            created: Some(1),
            wall_ms: None,
            params: BTreeMap::from([("train.l2".into(), json!(l2))]),
            metrics: acc
                .map(|a| BTreeMap::from([("acc".to_string(), json!(a))]))
                .unwrap_or_default(),
            overridden: vec![],
            error: None,
        }
    }

    #[test]
    fn sorts_experiments_below_the_workspace() {
        let mut t = ExpTable {
            params: vec!["train.l2".into()],
            metrics: vec!["acc".into()],
            rows: vec![
                row("workspace", 0.1, Some(0.5)),
                row("a", 0.2, Some(0.7)),
                row("b", 0.3, None),
                row("c", 0.4, Some(0.9)),
            ],
        };
        sort_rows(&mut t, "acc", true).unwrap();
        let names: Vec<&str> = t.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["workspace", "c", "a", "b"]);
        sort_rows(&mut t, "l2", false).unwrap();
        let names: Vec<&str> = t.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["workspace", "a", "b", "c"]);
        assert!(sort_rows(&mut t, "nope", false).is_err());
        let csv = to_csv(&t);
        assert_eq!(
            csv.lines().next(),
            Some("name,status,commit,created,train.l2,acc")
        );
        assert!(
            csv.contains("\na,done,,1970-01-01T00:00:01+00:00,0.2,0.7\n"),
            "{csv}"
        );
    }
}
