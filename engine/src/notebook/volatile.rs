//! Executed notebooks compared without what papermill and Jupyter write differently on every
//! run: times, durations, the paths papermill was given, and a datum's own input and output
//! paths (which differ between `dvx run` and `dvx verify`'s scratch folder).

use std::collections::BTreeMap;

use serde_json::Value;

/// The fields left out of the comparison, as `dvx verify` names them.
pub const IGNORED: &[&str] = &[
    "metadata.papermill.start_time",
    "metadata.papermill.end_time",
    "metadata.papermill.duration",
    "metadata.papermill.input_path",
    "metadata.papermill.output_path",
    "metadata.papermill.parameters.input_path",
    "metadata.papermill.parameters.output_path",
    "cells[].metadata.papermill.start_time",
    "cells[].metadata.papermill.end_time",
    "cells[].metadata.papermill.duration",
    "cells[].metadata.execution",
    "cells[].metadata.ExecuteTime",
    INJECTED_ID,
    INJECTED_PATHS,
];

/// The cell papermill adds gets a new random id on every run.
const INJECTED_ID: &str = "cells[injected-parameters].id";
/// A datum's paths, injected, differ between a run and its verification.
const INJECTED_PATHS: &str = "cells[injected-parameters].source: input_path, output_path";

fn take(obj: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = obj;
    for p in parents {
        cur = cur.get_mut(*p)?;
    }
    cur.as_object_mut()?.remove(*last)
}

/// Remove the volatile fields from an executed notebook; what was removed, by field name.
fn strip(nb: &mut Value) -> BTreeMap<String, Vec<Value>> {
    let mut removed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for f in IGNORED.iter().filter(|f| f.starts_with("metadata.")) {
        let parts: Vec<&str> = f.split('.').collect();
        if let Some(v) = take(nb, &parts) {
            removed.entry(f.to_string()).or_default().push(v);
        }
    }
    let Some(cells) = nb.get_mut("cells").and_then(Value::as_array_mut) else {
        return removed;
    };
    for c in cells {
        for f in IGNORED.iter().filter(|f| f.starts_with("cells[].")) {
            let parts: Vec<&str> = f["cells[].".len()..].split('.').collect();
            if let Some(v) = take(c, &parts) {
                removed.entry(f.to_string()).or_default().push(v);
            }
        }
        let injected = c
            .pointer("/metadata/tags")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t == "injected-parameters"));
        if injected {
            if let Some(id) = c.as_object_mut().and_then(|o| o.remove("id")) {
                removed.entry(INJECTED_ID.to_string()).or_default().push(id);
            }
            let text = c.get("source").map(super::normalize::source_text);
            if let Some(text) = text {
                let (paths, kept): (Vec<&str>, Vec<&str>) =
                    text.split_inclusive('\n').partition(|l| {
                        l.starts_with("input_path = ") || l.starts_with("output_path = ")
                    });
                if !paths.is_empty() {
                    removed
                        .entry(INJECTED_PATHS.to_string())
                        .or_default()
                        .push(Value::String(paths.concat()));
                    c["source"] = Value::String(kept.concat());
                }
            }
        }
    }
    removed
}

/// Whether two executed notebooks are the same but for the volatile fields, and which of
/// those fields differed (and so were ignored).
pub fn same(recorded: &[u8], now: &[u8]) -> Option<(bool, Vec<String>)> {
    let mut a: Value = serde_json::from_slice(recorded).ok()?;
    let mut b: Value = serde_json::from_slice(now).ok()?;
    let ra = strip(&mut a);
    let rb = strip(&mut b);
    let mut differed: Vec<String> = ra
        .keys()
        .chain(rb.keys())
        .filter(|k| ra.get(*k) != rb.get(*k))
        .cloned()
        .collect();
    differed.sort();
    differed.dedup();
    Some((a == b, differed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn executed(start: &str, secs: f64, out: &str, input: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "cells": [
                {"cell_type": "code", "id": start, "metadata": {"tags": ["injected-parameters"]},
                 "source": format!("lr = 0.1\ninput_path = \"{input}\"\n"), "outputs": [], "execution_count": 1},
                {"cell_type": "code", "execution_count": 2,
                 "metadata": {"execution": {"iopub.execute_input": start},
                              "papermill": {"start_time": start, "end_time": start, "duration": secs, "status": "completed"}},
                 "outputs": [{"output_type": "stream", "name": "stdout", "text": out}], "source": "print(1)"},
            ],
            "metadata": {"papermill": {"start_time": start, "duration": secs, "input_path": input,
                                       "parameters": {"lr": 0.1, "input_path": input}, "version": "2.6.0"}},
            "nbformat": 4, "nbformat_minor": 5,
        }))
        .unwrap()
    }

    #[test]
    fn times_and_paths_are_ignored_and_named() {
        let a = executed("2024-01-01T00:00:00", 1.5, "1\n", "/p/in/a.csv");
        let b = executed("2025-06-01T10:00:00", 2.0, "1\n", "/p/.dvx/tmp/w/in/a.csv");
        let (same_, ignored) = same(&a, &b).unwrap();
        assert!(same_);
        assert!(ignored.contains(&"metadata.papermill.start_time".to_string()));
        assert!(ignored.contains(&"cells[].metadata.execution".to_string()));
        assert!(ignored.contains(&"metadata.papermill.parameters.input_path".to_string()));
        assert!(!ignored.contains(&"metadata.papermill.end_time".to_string()));
        assert_eq!(same(&a, &a).unwrap(), (true, Vec::new()));
    }

    #[test]
    fn outputs_still_count() {
        let a = executed("2024-01-01T00:00:00", 1.5, "1\n", "/p/a");
        let b = executed("2024-01-01T00:00:00", 1.5, "2\n", "/p/a");
        assert!(!same(&a, &b).unwrap().0);
        assert_eq!(same(b"x", &b), None);
    }
}
