//! Set parameters in a YAML (or JSON) parameters file, keeping its comments and layout: a
//! value on one line is replaced where it stands. A value that is not (a key new to the file,
//! a block scalar over several lines) makes the whole file be written again as JSON, which
//! YAML readers read the same; the caller says so.

use marked_yaml::{LoaderOptions, Node};
use serde_json::Value;

use crate::params::to_json;

/// `text` with every `(key, value)` set. The flag tells whether the file had to be written
/// again as a whole (its comments lost).
pub fn set_all(text: &str, sets: &[(&str, &Value)]) -> Result<(String, bool), String> {
    let mut out = text.to_string();
    for (i, (key, value)) in sets.iter().enumerate() {
        match set_in_place(&out, key, value)? {
            Some(t) => out = t,
            None => return rewrite(&out, &sets[i..]).map(|t| (t, true)),
        }
    }
    Ok((out, false))
}

fn parse(text: &str) -> Result<Node, String> {
    let options = LoaderOptions::default().prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| e.to_string())
}

/// Replace one single-line scalar value in place; None when the key is not such a value.
fn set_in_place(text: &str, key: &str, value: &Value) -> Result<Option<String>, String> {
    let root = parse(text)?;
    let mut node = &root;
    for part in key.split('.') {
        node = match node {
            Node::Mapping(m) => match m.get_node(part) {
                Some(n) => n,
                None => return Ok(None),
            },
            Node::Sequence(s) => match part.parse::<usize>().ok().and_then(|i| s.get(i)) {
                Some(n) => n,
                None => return Ok(None),
            },
            Node::Scalar(_) => return Ok(None),
        };
    }
    let Node::Scalar(sc) = node else {
        return Ok(None);
    };
    let Some(start) = sc.span().start() else {
        return Ok(None);
    };
    let Some(begin) = text
        .char_indices()
        .nth(start.character())
        .map(|(b, _)| b)
        .or((start.character() == text.chars().count()).then_some(text.len()))
    else {
        return Ok(None);
    };
    let Some(end) = scalar_end(text, begin, sc.as_str()) else {
        return Ok(None);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..begin]);
    out.push_str(&render(value));
    out.push_str(&text[end..]);
    // The edit must read back as intended, or it is not made.
    let check = to_json(&parse(&out)?);
    Ok((crate::params::lookup(&check, key) == Some(value)).then_some(out))
}

/// Where the scalar starting at byte `begin` ends, if it lies on one line and reads back as
/// `want`.
fn scalar_end(text: &str, begin: usize, want: &str) -> Option<usize> {
    let rest = &text[begin..];
    let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let first = line.chars().next()?;
    if first == '\'' || first == '"' {
        let mut chars = line.char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            if first == '"' && c == '\\' {
                chars.next();
            } else if c == first {
                if first == '\'' && chars.peek().map(|p| p.1) == Some('\'') {
                    chars.next();
                    continue;
                }
                return Some(begin + i + 1);
            }
        }
        return None;
    }
    // A plain scalar ends before a comment, or (in flow style) before `,`, `]` or `}`.
    let comment = line.find(" #").unwrap_or(line.len());
    let block = line[..comment].trim_end();
    if block == want {
        return Some(begin + block.len());
    }
    let flow = line
        .find([',', ']', '}'])
        .unwrap_or(line.len())
        .min(comment);
    let flow_text = line[..flow].trim_end();
    (flow_text == want).then_some(begin + flow_text.len())
}

/// A value as YAML writes it on one line: plain where that reads back the same, else quoted
/// the JSON way (YAML's double quotes), lists and maps in flow style.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.trim() == s
                && !s.contains([
                    ':', '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%',
                    '@', '`', '\n', '\\',
                ])
                && !s.starts_with(['-', '?'])
                && super::overrides::scalar(s) == Value::String(s.clone());
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        other => other.to_string(),
    }
}

/// The whole document with `sets` applied, as pretty JSON.
fn rewrite(text: &str, sets: &[(&str, &Value)]) -> Result<String, String> {
    let mut doc = to_json(&parse(text)?);
    if doc.is_null() {
        doc = Value::Object(Default::default());
    }
    for (key, value) in sets {
        let mut cur = &mut doc;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            cur = match cur {
                Value::Object(m) => {
                    if last {
                        m.insert(part.to_string(), (*value).clone());
                        break;
                    }
                    m.entry(part.to_string())
                        .or_insert_with(|| Value::Object(Default::default()))
                }
                Value::Array(a) => {
                    let idx = part
                        .parse::<usize>()
                        .ok()
                        .filter(|i| *i < a.len())
                        .ok_or_else(|| format!("`{key}`: no item {part} in the list"))?;
                    if last {
                        a[idx] = (*value).clone();
                        break;
                    }
                    &mut a[idx]
                }
                _ => return Err(format!("`{key}`: {part} is inside a single value")),
            };
        }
    }
    serde_json::to_string_pretty(&doc)
        .map(|s| s + "\n")
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(text: &str, key: &str, v: Value) -> (String, bool) {
        set_all(text, &[(key, &v)]).unwrap()
    }

    #[test]
    fn single_line_values_change_in_place() {
        let t = "# model settings\ntrain:\n  l2: 0.1   # regularization\n  name: base\nfeaturize:\n  interactions: true\n";
        let (out, whole) = set(t, "train.l2", json!(0.5));
        assert!(!whole);
        assert_eq!(out, t.replace("l2: 0.1 ", "l2: 0.5 "));
        let (out, _) = set(t, "featurize.interactions", json!(false));
        assert!(out.ends_with("interactions: false\n"), "{out}");
        let (out, _) = set(t, "train.name", json!("a: b"));
        assert!(out.contains("name: \"a: b\"\n"), "{out}");
        let (out, _) = set(t, "train.name", json!("10"));
        assert!(out.contains("name: \"10\"\n"), "{out}");
    }

    #[test]
    fn quoted_flow_and_json_values() {
        let (out, whole) = set("a: 'it''s'\nb: 2\n", "a", json!("x"));
        assert_eq!((out.as_str(), whole), ("a: x\nb: 2\n", false));
        let (out, _) = set("p: {lr: 0.1, n: 3}\n", "p.lr", json!(0.2));
        assert_eq!(out, "p: {lr: 0.2, n: 3}\n");
        let (out, _) = set("{\"a\": {\"b\": 1, \"c\": 2}}\n", "a.b", json!(7));
        assert_eq!(out, "{\"a\": {\"b\": 7, \"c\": 2}}\n");
        let (out, _) = set("l: [1, 2, 3]\n", "l.1", json!(9));
        assert_eq!(out, "l: [1, 9, 3]\n");
    }

    #[test]
    fn new_keys_rewrite_the_file_as_json() {
        let (out, whole) = set("train:\n  l2: 0.1\n", "train.depth", json!(4));
        assert!(whole);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"train": {"l2": 0.1, "depth": 4}}));
        let (out, whole) = set("note: |\n  two\n  lines\n", "note", json!("x"));
        assert!(whole);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"note": "x"})
        );
    }
}
