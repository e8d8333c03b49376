//! Tables a plot reads: CSV, TSV, JSON (a list of rows, or an object holding one) and YAML.

use std::collections::BTreeMap;

use serde_json::Value;

/// Rows of named values, columns in the order first seen.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<BTreeMap<String, Value>>,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

impl Table {
    /// `step` when there is one (DVCLive writes it), else the row number.
    pub fn default_x(&self) -> Option<String> {
        self.columns.iter().find(|c| *c == "step").cloned()
    }

    /// DVC's default: the last column that holds numbers (other than x).
    pub fn default_y(&self, x: Option<&str>) -> Vec<String> {
        self.columns
            .iter()
            .rev()
            .filter(|c| Some(c.as_str()) != x && *c != "timestamp")
            .find(|c| {
                self.rows
                    .iter()
                    .any(|r| r.get(*c).and_then(number).is_some())
            })
            .map(|c| vec![c.clone()])
            .unwrap_or_default()
    }

    /// (x, y) of every row that has a number for y (x: the row number when not given).
    pub fn points(&self, x: Option<&str>, y: &str) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let yv = r.get(y).and_then(number)?;
                let xv = match x {
                    Some(x) => r.get(x).and_then(number)?,
                    None => i as f64,
                };
                Some((xv, yv))
            })
            .collect()
    }
}

fn delimited(bytes: &[u8], sep: char) -> Table {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(head) = lines.next() else {
        return Table::default();
    };
    let columns: Vec<String> = head
        .split(sep)
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    let rows = lines
        .map(|l| {
            columns
                .iter()
                .cloned()
                .zip(
                    l.split(sep)
                        .map(|v| Value::String(v.trim().trim_matches('"').to_string())),
                )
                .collect()
        })
        .collect();
    Table { columns, rows }
}

fn from_value(v: Value) -> Option<Table> {
    let rows = match v {
        Value::Array(a) => a,
        // `{"train": [...]}`: the one list inside.
        Value::Object(m) => m.into_iter().find_map(|(_, v)| match v {
            Value::Array(a) => Some(a),
            _ => None,
        })?,
        _ => return None,
    };
    let mut t = Table::default();
    for r in rows {
        let Value::Object(m) = r else { continue };
        for k in m.keys() {
            if !t.columns.contains(k) {
                t.columns.push(k.clone());
            }
        }
        t.rows.push(m.into_iter().collect());
    }
    Some(t)
}

/// A table from a file's bytes, by its extension; None when it is no table.
pub fn parse_table(path: &str, bytes: &[u8]) -> Option<Table> {
    if path.ends_with(".csv") {
        Some(delimited(bytes, ','))
    } else if path.ends_with(".tsv") {
        Some(delimited(bytes, '\t'))
    } else if path.ends_with(".json") {
        from_value(serde_json::from_slice(bytes).ok()?)
    } else if path.ends_with(".yaml") || path.ends_with(".yml") {
        let text = std::str::from_utf8(bytes).ok()?;
        let node = marked_yaml::parse_yaml(0, text).ok()?;
        from_value(crate::params::to_json(&node))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_tsv_and_json_give_the_same_points() {
        let csv = parse_table("a.csv", b"step,loss,acc\n0,1.5,0.1\n1,0.75,0.5\n").unwrap();
        let tsv = parse_table("a.tsv", b"step\tloss\tacc\n0\t1.5\t0.1\n1\t0.75\t0.5\n").unwrap();
        let json = parse_table(
            "a.json",
            br#"{"train": [{"step": 0, "loss": 1.5, "acc": 0.1}, {"step": 1, "loss": 0.75, "acc": 0.5}]}"#,
        )
        .unwrap();
        for t in [&csv, &tsv, &json] {
            assert_eq!(t.default_x().as_deref(), Some("step"));
            assert_eq!(t.points(Some("step"), "loss"), [(0.0, 1.5), (1.0, 0.75)]);
        }
        assert_eq!(csv.default_y(Some("step")), ["acc"]);
        assert_eq!(csv.points(None, "acc"), [(0.0, 0.1), (1.0, 0.5)]);
        assert!(parse_table("a.txt", b"x").is_none());
    }
}
