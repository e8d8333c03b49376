//! Parameter values read from params.yaml (or another YAML/JSON file) by dotted key.

use std::collections::BTreeMap;
use std::path::Path;

use marked_yaml::Node;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::spec::{ParamRef, Stage};

/// A YAML node as JSON, with plain scalars typed the YAML way (numbers, booleans, null).
pub fn to_json(n: &Node) -> Value {
    match n {
        Node::Scalar(s) => {
            let t = s.as_str();
            if !s.may_coerce() {
                return Value::String(t.to_string());
            }
            match t {
                "null" | "~" | "" => Value::Null,
                "true" | "True" => Value::Bool(true),
                "false" | "False" => Value::Bool(false),
                _ => t
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        t.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                            .map(Value::Number)
                    })
                    .unwrap_or_else(|| Value::String(t.to_string())),
            }
        }
        Node::Sequence(seq) => Value::Array(seq.iter().map(to_json).collect()),
        Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

/// Read a whole params file as JSON.
pub fn load_file(root: &Path, rel: &str) -> Result<Option<Value>> {
    let path = root.join(rel);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(dvx_store::StoreError::io(&path, e).into()),
    };
    let options = marked_yaml::LoaderOptions::default().prevent_coercion(true);
    let node = marked_yaml::parse_yaml_with_options(0, &text, options)
        .map_err(|e| EngineError::spec(&path, 1, 1, format!("cannot read parameters: {e}")))?;
    Ok(Some(to_json(&node)))
}

pub fn lookup<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |cur, part| match cur {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// The values of every parameter a stage names, keyed `file:key`.
pub fn stage_params(root: &Path, stage: &Stage) -> Result<BTreeMap<String, Value>> {
    let mut files: BTreeMap<&str, Option<Value>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for ParamRef { file, key } in &stage.params {
        if !files.contains_key(file.as_str()) {
            files.insert(file, load_file(root, file)?);
        }
        let doc = files[file.as_str()]
            .as_ref()
            .ok_or_else(|| EngineError::Params {
                stage: stage.name.clone(),
                message: format!("the parameters file {file} does not exist"),
            })?;
        let v = lookup(doc, key).ok_or_else(|| EngineError::Params {
            stage: stage.name.clone(),
            message: format!("{file} has no parameter `{key}`"),
        })?;
        out.insert(format!("{file}:{key}"), v.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lookup() {
        let options = marked_yaml::LoaderOptions::default().prevent_coercion(true);
        let n = marked_yaml::parse_yaml_with_options(
            0,
            "train:\n  lr: 0.01\n  epochs: 10\n  name: '10'\n  on: true\nlist: [a, b]\n",
            options,
        )
        .unwrap();
        let v = to_json(&n);
        assert_eq!(lookup(&v, "train.lr"), Some(&serde_json::json!(0.01)));
        assert_eq!(lookup(&v, "train.epochs"), Some(&serde_json::json!(10)));
        assert_eq!(lookup(&v, "train.name"), Some(&serde_json::json!("10")));
        assert_eq!(lookup(&v, "train.on"), Some(&serde_json::json!(true)));
        assert_eq!(lookup(&v, "list.1"), Some(&serde_json::json!("b")));
        assert_eq!(lookup(&v, "train.nope"), None);
    }
}
