//! The top-level sections DVC's dvc.yaml has beside `stages`: `metrics`, `plots`, `params` and
//! `artifacts`. They name files rather than run anything, so a dvc.yaml copied to dvx.yaml
//! keeps its meaning: `dvx metrics` shows the metrics, `dvx params diff` compares the params
//! files, plots are kept for plot commands, and `dvx artifacts` lists the artifacts.

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;
use serde::Serialize;
use serde_json::Value;

use super::{rel_path, Ctx, Pos};
use crate::error::Result;
use crate::params::to_json;

/// What the top level declares beside `stages` (all empty when it declares nothing).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sections {
    /// Project-relative metrics files (or folders of them), in the order written.
    pub metrics: Vec<String>,
    /// Project-relative parameters files, in the order written.
    pub params: Vec<String>,
    pub plots: Vec<Plot>,
    pub artifacts: Vec<Artifact>,
}

/// A plot as DVC declares it: a file (`- loss.csv`) or an id with properties
/// (`- confusion: {template: confusion, x: actual, y: {preds.csv: predicted}}`). The
/// properties are kept as written, for plot commands to read.
#[derive(Clone, Debug, Serialize)]
pub struct Plot {
    /// The file it draws, or the plot's id when `y` names the files.
    pub id: String,
    /// `x`, `y`, `template`, `title`, ... as JSON (`null` when none are given).
    pub props: Value,
    #[serde(skip)]
    pub at: Pos,
}

/// A model or data set the project publishes, as DVC's `artifacts:` declares it.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    pub name: String,
    /// Project-relative path.
    pub path: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    #[serde(skip)]
    pub at: Pos,
}

/// The properties a plot may have (DVC's plot schema).
pub(super) const PLOT_PROPS: &[&str] = &[
    "x", "y", "template", "title", "x_label", "y_label", "header",
];

/// True for the top-level keys this module reads.
pub(super) fn is_section(key: &str) -> bool {
    matches!(key, "metrics" | "params" | "plots" | "artifacts")
}

/// Read one top-level section into `into`.
pub(super) fn parse_section(cx: &Ctx, key: &str, n: &Node, into: &mut Sections) -> Result<()> {
    match key {
        "metrics" => into.metrics = paths(cx, n, "metrics")?,
        "params" => into.params = paths(cx, n, "params")?,
        "plots" => into.plots = plots(cx, n)?,
        "artifacts" => into.artifacts = artifacts(cx, n)?,
        _ => {}
    }
    Ok(())
}

fn paths(cx: &Ctx, n: &Node, what: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (p, pos) in cx.strings(n, what)? {
        let path = rel_path(cx, "", &p, &pos.span(), what)?;
        if !out.contains(&path) {
            out.push(path);
        }
    }
    Ok(out)
}

fn plots(cx: &Ctx, n: &Node) -> Result<Vec<Plot>> {
    let items: Vec<&Node> = match n {
        Node::Sequence(s) => s.iter().collect(),
        _ => vec![n],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Node::Scalar(s) => out.push(Plot {
                id: rel_path(cx, "", s.as_str(), s.span(), "plots")?,
                props: Value::Null,
                at: Ctx::pos(s.span()),
            }),
            Node::Mapping(m) if m.len() == 1 => {
                for (k, v) in m.iter() {
                    let props = match v {
                        Node::Mapping(props) => {
                            check_plot_props(cx, props)?;
                            to_json(v)
                        }
                        Node::Scalar(s) if matches!(s.as_str(), "" | "null" | "~") => Value::Null,
                        _ => {
                            return Err(cx.err(
                                v.span(),
                                "plots: expected properties such as {x: step, y: loss}",
                            ))
                        }
                    };
                    out.push(Plot {
                        id: k.as_str().to_string(),
                        props,
                        at: Ctx::pos(k.span()),
                    });
                }
            }
            _ => {
                return Err(cx.err(
                    item.span(),
                    "plots: expected a file, or `ID: {x: ..., y: ...}`",
                ))
            }
        }
    }
    Ok(out)
}

/// Refuse a misspelt plot property where it was written.
fn check_plot_props(cx: &Ctx, props: &MarkedMappingNode) -> Result<()> {
    for (k, _) in props.iter() {
        if !PLOT_PROPS.contains(&k.as_str()) {
            return Err(cx.err(
                k.span(),
                format!(
                    "plots: unknown property `{}`; expected one of: {}",
                    k.as_str(),
                    PLOT_PROPS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// DVC's rule for artifact names: lowercase letters, digits, `-` and `/`, starting and
/// ending with a letter or digit (they become git tags and registry names).
fn valid_artifact_name(n: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let (Some(first), Some(last)) = (n.chars().next(), n.chars().last()) else {
        return false;
    };
    ok_char(first) && ok_char(last) && n.chars().all(|c| ok_char(c) || c == '-' || c == '/')
}

fn artifacts(cx: &Ctx, n: &Node) -> Result<Vec<Artifact>> {
    let map = cx.mapping(n, "artifacts")?;
    let mut out = Vec::new();
    for (k, v) in map.iter() {
        let name = k.as_str();
        if !valid_artifact_name(name) {
            return Err(cx.err(
                k.span(),
                format!("artifact name `{name}`: use lowercase letters, digits, '-' and '/', starting and ending with a letter or digit"),
            ));
        }
        let fields = cx.mapping(v, &format!("artifact `{name}`"))?;
        let mut a = Artifact {
            name: name.to_string(),
            path: String::new(),
            kind: None,
            desc: None,
            labels: Vec::new(),
            meta: None,
            at: Ctx::pos(k.span()),
        };
        for (f, x) in fields.iter() {
            match f.as_str() {
                "path" => {
                    a.path = rel_path(cx, "", &cx.string(x, "artifact path")?, x.span(), "path")?
                }
                "type" => a.kind = Some(cx.string(x, "artifact type")?),
                "desc" => a.desc = Some(cx.string(x, "artifact desc")?),
                "labels" => {
                    a.labels = cx
                        .strings(x, "artifact labels")?
                        .into_iter()
                        .map(|(l, _)| l)
                        .collect()
                }
                "meta" => a.meta = Some(to_json(x)),
                other => {
                    return Err(cx.err(
                        f.span(),
                        format!("artifact `{name}`: unknown field `{other}`; expected path, type, desc, labels or meta"),
                    ))
                }
            }
        }
        if a.path.is_empty() {
            return Err(cx.err(
                k.span(),
                format!("artifact `{name}`: missing `path` (the file or folder it is)"),
            ));
        }
        out.push(a);
    }
    Ok(out)
}
