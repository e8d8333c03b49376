//! The parameters a notebook stage hands papermill: the stage's `params` values under Python
//! names, and, for a datum, its input and output paths.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The names datum stages inject beside the stage's parameters.
pub const INPUT_PATH: &str = "input_path";
pub const OUTPUT_PATH: &str = "output_path";

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn whole(key: &str) -> String {
    let n: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{n}")
    } else {
        n
    }
}

/// Python names for parameter values keyed `FILE:KEY` (as a stage's params are): the last
/// part of the dotted key (`train.lr` → `lr`), or, when two keys end alike or the last part
/// is not a Python name (`layers.0`), the whole key with other characters than letters,
/// digits and `_` as `_` (`train_lr`, `layers_0`).
pub fn names(params: &BTreeMap<String, Value>) -> Map<String, Value> {
    let key_of = |k: &str| {
        k.rsplit_once(':')
            .map(|(_, key)| key.to_string())
            .unwrap_or_else(|| k.to_string())
    };
    let last = |k: &str| key_of(k).rsplit('.').next().unwrap_or_default().to_string();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for k in params.keys() {
        *count.entry(last(k)).or_default() += 1;
    }
    let mut out = Map::new();
    for (k, v) in params {
        let short = last(k);
        let name = if is_name(&short) && count[&short] == 1 {
            short
        } else {
            whole(&key_of(k))
        };
        out.insert(name, v.clone());
    }
    out
}

/// Everything injected: the parameters' names and values, and a datum's paths.
pub fn injected(
    params: &BTreeMap<String, Value>,
    datum: Option<(&str, &str)>,
) -> Map<String, Value> {
    let mut m = names(params);
    if let Some((input, output)) = datum {
        m.insert(INPUT_PATH.into(), Value::String(input.into()));
        m.insert(OUTPUT_PATH.into(), Value::String(output.into()));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_the_last_part_unless_that_is_ambiguous() {
        let params = BTreeMap::from([
            ("params.yaml:train.lr".to_string(), json!(0.1)),
            ("params.yaml:eval.lr".to_string(), json!(0.2)),
            ("params.yaml:train.epochs".to_string(), json!(3)),
            ("params.yaml:layers.0".to_string(), json!(64)),
            ("cfg/model.yaml:name".to_string(), json!("m")),
        ]);
        let n = names(&params);
        assert_eq!(
            Value::Object(n),
            json!({"train_lr": 0.1, "eval_lr": 0.2, "epochs": 3, "layers_0": 64, "name": "m"})
        );
        assert_eq!(whole("0.a-b"), "_0_a_b");
    }

    #[test]
    fn datums_get_their_paths() {
        let m = injected(&BTreeMap::new(), Some(("/in/a.csv", "/out")));
        assert_eq!(
            Value::Object(m),
            json!({"input_path": "/in/a.csv", "output_path": "/out"})
        );
    }
}
