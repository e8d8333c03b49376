//! `foreach` and `matrix`: one stage definition repeated with variables replaced, checked
//! against the pipeline's limits before anything is made.

use std::collections::BTreeMap;

use marked_yaml::types::MarkedScalarNode;
use marked_yaml::{Node, Span};

use super::{Ctx, MAX_EXPANDED_BYTES, MAX_STAGES};
use crate::error::Result;

/// `foreach`: a list (`${item}`) or a mapping (`${key}`, `${item}` / `${item.field}`).
pub(super) fn foreach_items(cx: &Ctx, n: &Node) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let mut out = Vec::new();
    match n {
        Node::Sequence(seq) => {
            for x in seq.iter() {
                let mut vars = BTreeMap::new();
                let suffix = match x {
                    Node::Scalar(s) => {
                        vars.insert("item".to_string(), s.as_str().to_string());
                        s.as_str().to_string()
                    }
                    Node::Mapping(m) => {
                        for (k, v) in m.iter() {
                            vars.insert(
                                format!("item.{}", k.as_str()),
                                cx.string(v, "foreach item field")?,
                            );
                        }
                        m.iter()
                            .map(|(_, v)| {
                                v.as_scalar()
                                    .map(|s| s.as_str().to_string())
                                    .unwrap_or_default()
                            })
                            .collect::<Vec<_>>()
                            .join("-")
                    }
                    Node::Sequence(_) => {
                        return Err(cx.err(x.span(), "foreach items must be strings or mappings"))
                    }
                };
                out.push((sanitize(&suffix), vars));
            }
        }
        Node::Mapping(m) => {
            for (k, v) in m.iter() {
                let mut vars = BTreeMap::new();
                vars.insert("key".to_string(), k.as_str().to_string());
                match v {
                    Node::Scalar(s) => {
                        vars.insert("item".to_string(), s.as_str().to_string());
                    }
                    Node::Mapping(fields) => {
                        for (fk, fv) in fields.iter() {
                            vars.insert(
                                format!("item.{}", fk.as_str()),
                                cx.string(fv, "foreach item field")?,
                            );
                        }
                    }
                    Node::Sequence(_) => {
                        return Err(cx.err(v.span(), "foreach values must be strings or mappings"))
                    }
                }
                out.push((sanitize(k.as_str()), vars));
            }
        }
        Node::Scalar(_) => return Err(cx.err(n.span(), "foreach: expected a list or a mapping")),
    }
    if out.is_empty() {
        return Err(cx.err(n.span(), "foreach: the list is empty"));
    }
    Ok(out)
}

/// `matrix`: every combination of the listed values (`${item.NAME}`).
/// `budget`: how many stages the pipeline may still have; the number of combinations is
/// computed (without overflow) and checked against it before any is made.
pub(super) fn matrix_items(
    cx: &Ctx,
    n: &Node,
    budget: usize,
    at: &Span,
) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let m = cx.mapping(n, "matrix")?;
    let mut product: usize = 1;
    for (k, v) in m.iter() {
        let len = match v {
            Node::Sequence(seq) => seq.len(),
            _ => 1,
        };
        if len == 0 {
            return Err(cx.err(
                v.span(),
                format!("matrix.{}: the list is empty", k.as_str()),
            ));
        }
        product = product.saturating_mul(len);
    }
    if product > budget {
        return Err(cx.err(
            at,
            format!(
                "matrix: {} combinations; {}",
                if product == usize::MAX {
                    "too many".to_string()
                } else {
                    product.to_string()
                },
                too_many_stages()
            ),
        ));
    }
    let mut combos: Vec<(Vec<String>, BTreeMap<String, String>)> =
        vec![(Vec::new(), BTreeMap::new())];
    for (k, v) in m.iter() {
        let values = cx.strings(v, &format!("matrix.{}", k.as_str()))?;
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for (parts, vars) in &combos {
            for (val, _) in &values {
                let mut p = parts.clone();
                p.push(val.clone());
                let mut vs = vars.clone();
                vs.insert(format!("item.{}", k.as_str()), val.clone());
                next.push((p, vs));
            }
        }
        combos = next;
    }
    Ok(combos
        .into_iter()
        .map(|(parts, vars)| (sanitize(&parts.join("-")), vars))
        .collect())
}

pub(super) fn too_many_stages() -> String {
    format!("a pipeline may have at most {MAX_STAGES} stages after foreach and matrix expand")
}

/// Refuse an expansion that would pass [`MAX_STAGES`] or [`MAX_EXPANDED_BYTES`], before
/// making it: each entry copies the whole body, with its variables substituted.
pub(super) fn check_expansion(
    cx: &Ctx,
    at: &Span,
    name: &str,
    have: usize,
    body: &Node,
    items: &[(String, BTreeMap<String, String>)],
) -> Result<()> {
    if items.len() > MAX_STAGES.saturating_sub(have) {
        return Err(cx.err(at, format!("stage `{name}`: {}", too_many_stages())));
    }
    let (bytes, holes) = text_size(body);
    let longest = items
        .iter()
        .flat_map(|(suffix, vars)| vars.values().map(String::len).chain([suffix.len()]))
        .max()
        .unwrap_or(0);
    let per_entry = bytes.saturating_add(holes.saturating_mul(longest));
    if per_entry.saturating_mul(items.len()) > MAX_EXPANDED_BYTES {
        return Err(cx.err(
            at,
            format!(
                "stage `{name}`: its {} entries would generate more than {} MiB of stage text; split the pipeline or shorten the stage",
                items.len(),
                MAX_EXPANDED_BYTES >> 20
            ),
        ));
    }
    Ok(())
}

/// Bytes of every string in `n`, and how many `${` places a substitution can grow.
fn text_size(n: &Node) -> (usize, usize) {
    match n {
        Node::Scalar(s) => (s.as_str().len(), s.as_str().matches("${").count()),
        Node::Sequence(seq) => seq.iter().map(text_size).fold((0, 0), add2),
        Node::Mapping(m) => m
            .iter()
            .map(|(k, v)| add2(text_size(&Node::Scalar(k.clone())), text_size(v)))
            .fold((0, 0), add2),
    }
}

fn add2(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Replace `${item}`, `${item.x}` and `${key}` in every string of `n`. Other `${...}` (such as
/// `${input}` and `${output}` of datum stages) are left for run time.
pub(super) fn substitute(cx: &Ctx, n: &Node, vars: &BTreeMap<String, String>) -> Result<Node> {
    Ok(match n {
        Node::Scalar(s) => {
            let text = s.as_str();
            let mut out = String::with_capacity(text.len());
            let mut rest = text;
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let after = &rest[i + 2..];
                let Some(j) = after.find('}') else {
                    out.push_str(&rest[i..]);
                    rest = "";
                    break;
                };
                let name = after[..j].trim();
                match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None if name == "item" || name == "key" || name.starts_with("item.") => {
                        return Err(cx.err(
                            s.span(),
                            format!("`${{{name}}}` is not defined for this foreach/matrix entry"),
                        ))
                    }
                    None => out.push_str(&rest[i..i + 3 + j]),
                }
                rest = &after[j + 1..];
            }
            out.push_str(rest);
            let mut new = MarkedScalarNode::new(*s.span(), out);
            new.set_coerce(s.may_coerce());
            Node::Scalar(new)
        }
        Node::Sequence(seq) => {
            let items = seq
                .iter()
                .map(|x| substitute(cx, x, vars))
                .collect::<Result<Vec<_>>>()?;
            Node::Sequence(marked_yaml::types::MarkedSequenceNode::new(
                *seq.span(),
                items,
            ))
        }
        Node::Mapping(m) => {
            // Keys too: an output written as `"${item}.json": {cache: false}`.
            let mut new = marked_yaml::types::MarkedMappingNode::new_empty(*m.span());
            for (k, v) in m.iter() {
                let key = match substitute(cx, &Node::Scalar(k.clone()), vars)? {
                    Node::Scalar(s) => s,
                    _ => k.clone(),
                };
                new.insert(key, substitute(cx, v, vars)?);
            }
            Node::Mapping(new)
        }
    })
}
