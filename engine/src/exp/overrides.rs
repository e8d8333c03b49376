//! `-S [+][FILE:]KEY=VALUE[,VALUE...]`: parameter overrides, and the grid of variants they
//! make when a value lists several choices.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::params::{load_file, lookup};
use crate::spec::DEFAULT_PARAMS;

/// One `-S` as given.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub file: String,
    pub key: String,
    /// One value, or several: one variant each.
    pub values: Vec<Value>,
    /// `+KEY=...`: the key may be new to the file.
    pub add: bool,
}

/// `FILE:KEY` → value: what one experiment changes.
pub type Assignment = BTreeMap<String, Value>;

/// Parse one `-S` argument.
pub fn parse(spec: &str) -> Result<Override> {
    let bad = |why: &str| {
        EngineError::Experiment {
        message: format!("cannot read the override {spec:?}: {why}"),
        hint: "write -S KEY=VALUE, -S FILE:KEY=VALUE, or -S KEY=V1,V2 for one experiment per value (+KEY=VALUE adds a new key)".into(),
    }
    };
    let (lhs, rhs) = spec.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let (add, lhs) = match lhs.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, lhs),
    };
    let (file, key) = match lhs.rsplit_once(':') {
        Some((f, k)) => (f.trim().to_string(), k.trim().to_string()),
        None => (DEFAULT_PARAMS.to_string(), lhs.trim().to_string()),
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("the key is empty"));
    }
    if file.is_empty() || Path::new(&file).is_absolute() || file.split('/').any(|c| c == "..") {
        return Err(bad("the file must be a path inside the project"));
    }
    let values = split_values(rhs).iter().map(|v| scalar(v)).collect();
    Ok(Override {
        file,
        key,
        values,
        add,
    })
}

/// `a,b,c` → three values; a quoted value (`'a,b'`) or one in brackets is one.
fn split_values(rhs: &str) -> Vec<String> {
    let t = rhs.trim();
    let quoted = t.len() >= 2
        && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"')));
    if quoted || t.starts_with('[') || t.starts_with('{') {
        return vec![t.to_string()];
    }
    t.split(',').map(|v| v.trim().to_string()).collect()
}

/// A value typed the way YAML types a plain scalar; quotes make a string; `[..]`/`{..}` are
/// read as JSON (YAML's flow style for the common cases).
pub fn scalar(v: &str) -> Value {
    let t = v.trim();
    if t.len() >= 2
        && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"')))
    {
        return Value::String(t[1..t.len() - 1].to_string());
    }
    if t.starts_with('[') || t.starts_with('{') {
        if let Ok(v) = serde_json::from_str(t) {
            return v;
        }
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
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            })
            .unwrap_or_else(|| Value::String(t.to_string())),
    }
}

/// Every combination of the overrides' values, in the order given (the last one varies
/// fastest). The same `FILE:KEY` twice: the last wins.
pub fn grid(list: &[Override]) -> Vec<Assignment> {
    let mut out = vec![Assignment::new()];
    for o in list {
        let name = format!("{}:{}", o.file, o.key);
        out = out
            .into_iter()
            .flat_map(|a| {
                let name = name.clone();
                o.values.iter().map(move |v| {
                    let mut a = a.clone();
                    a.insert(name.clone(), v.clone());
                    a
                })
            })
            .collect();
    }
    out
}

/// Every override names a parameters file that exists, and a key it has (unless `+`), which
/// is not a whole section being replaced by a scalar.
pub fn check(root: &Path, list: &[Override]) -> Result<()> {
    for o in list {
        let doc = load_file(root, &o.file)?.ok_or_else(|| EngineError::Experiment {
            message: format!(
                "cannot override {}: the parameters file {} does not exist",
                o.key, o.file
            ),
            hint: "name the file as FILE:KEY=VALUE, relative to the project's top".into(),
        })?;
        match lookup(&doc, &o.key) {
            None if !o.add => {
                return Err(EngineError::Experiment {
                    message: format!("{} has no parameter `{}`", o.file, o.key),
                    hint: format!(
                        "check the spelling, or add a new key with -S +{}=VALUE",
                        if o.file == DEFAULT_PARAMS {
                            o.key.clone()
                        } else {
                            format!("{}:{}", o.file, o.key)
                        }
                    ),
                })
            }
            Some(Value::Object(_)) if o.values.iter().any(|v| !v.is_object()) => {
                return Err(EngineError::Experiment {
                    message: format!(
                        "{}: `{}` is a section, not a single parameter",
                        o.file, o.key
                    ),
                    hint: format!("override one of its keys, such as -S {}.NAME=VALUE", o.key),
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// `FILE:KEY` split back.
pub fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once(':').unwrap_or((DEFAULT_PARAMS, name))
}

/// `train.l2=0.5 featurize.x=false`: the overrides in one line (the default file unnamed).
pub fn describe(a: &Assignment) -> String {
    a.iter()
        .map(|(name, v)| {
            let (file, key) = split_name(name);
            let lhs = if file == DEFAULT_PARAMS {
                key.to_string()
            } else {
                name.clone()
            };
            format!("{lhs}={}", show_value(v))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_keys_files_and_values() {
        let o = parse("train.l2=0.5").unwrap();
        assert_eq!(
            (o.file.as_str(), o.key.as_str(), o.values, o.add),
            ("params.yaml", "train.l2", vec![json!(0.5)], false)
        );
        let o = parse("+conf/p.yaml:model.depth=3,4,5").unwrap();
        assert_eq!(o.file, "conf/p.yaml");
        assert_eq!(o.values, vec![json!(3), json!(4), json!(5)]);
        assert!(o.add);
        assert_eq!(parse("a.b='x,y'").unwrap().values, vec![json!("x,y")]);
        assert_eq!(parse("a=false").unwrap().values, vec![json!(false)]);
        assert_eq!(parse("a=[1, 2]").unwrap().values, vec![json!([1, 2])]);
        assert_eq!(parse("a=1e-3").unwrap().values, vec![json!(0.001)]);
        assert_eq!(parse("a=abc").unwrap().values, vec![json!("abc")]);
        assert!(parse("novalue").is_err());
        assert!(parse("a..b=1").is_err());
        assert!(parse("../p.yaml:a=1").is_err());
    }

    #[test]
    fn grid_is_every_combination() {
        let g = grid(&[parse("a=1,2").unwrap(), parse("b=x,y").unwrap()]);
        let shown: Vec<String> = g.iter().map(describe).collect();
        assert_eq!(shown, ["a=1 b=x", "a=1 b=y", "a=2 b=x", "a=2 b=y"]);
        assert_eq!(grid(&[]).len(), 1);
    }

    #[test]
    fn unknown_keys_are_named_with_their_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("params.yaml"), "train:\n  l2: 0.1\n").unwrap();
        assert!(check(dir.path(), &[parse("train.l2=1").unwrap()]).is_ok());
        let e = check(dir.path(), &[parse("train.l3=1").unwrap()]).unwrap_err();
        assert_eq!(e.to_string(), "params.yaml has no parameter `train.l3`");
        assert!(check(dir.path(), &[parse("+train.l3=1").unwrap()]).is_ok());
        let e = check(dir.path(), &[parse("train=1").unwrap()]).unwrap_err();
        assert!(e.to_string().contains("is a section"), "{e}");
        let e = check(dir.path(), &[parse("other.yaml:a=1").unwrap()]).unwrap_err();
        assert!(e.to_string().contains("other.yaml does not exist"), "{e}");
    }
}
