//! `input:` of a datum stage: one folder and glob, or Pachyderm's combinations of several
//! (`cross`, `union`, `join` on a capture group of the glob, `group` by one).

use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;
use serde::Serialize;

use super::{rel_path, Ctx};
use crate::error::Result;

/// An input glob that splits a stage into datums (one execution per match), or several
/// inputs combined. For combinations `path` and `glob` are the first input's.
#[derive(Clone, Debug, Serialize)]
pub struct Input {
    pub path: String,
    pub glob: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
}

/// How several inputs make datums, as in Pachyderm's pipeline spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// Every combination of one match from each input.
    Cross,
    /// Every match of every input, alone.
    Union,
    /// The matches whose `join_on` keys are equal, one from each input (all combinations).
    Join,
    /// All matches with the same `group_by` key, from every input, as one datum.
    Group,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Cross => "cross",
            How::Union => "union",
            How::Join => "join",
            How::Group => "group",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Combine {
    pub how: How,
    pub inputs: Vec<Named>,
}

/// One input of a combination (Pachyderm's `pfs`).
#[derive(Clone, Debug, Serialize)]
pub struct Named {
    /// The folder name it has in `DVX_INPUT_DIR` and the `DVX_INPUT_<NAME>` variable's name.
    pub name: String,
    pub path: String,
    pub glob: String,
    /// `join_on` or `group_by`: a template of the glob's capture groups (`$1`, `$2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `outer_join: true`: its matches make datums even without a partner.
    pub outer: bool,
}

impl Input {
    /// Every folder the datums come from.
    pub fn folders(&self) -> Vec<&str> {
        match &self.combine {
            Some(c) => c.inputs.iter().map(|i| i.path.as_str()).collect(),
            None => vec![self.path.as_str()],
        }
    }
}

fn glob_of(cx: &Ctx, m: &MarkedMappingNode, n: &Node, what: &str) -> Result<String> {
    let glob = match m.get_node("glob") {
        Some(g) => cx.string(g, &format!("{what}.glob"))?,
        None => "/*".to_string(),
    };
    if !glob.starts_with('/') {
        return Err(cx.err(
            m.get_node("glob").map(|g| g.span()).unwrap_or(n.span()),
            format!("{what}.glob: must start with `/` (such as `/*` or `/*/*`)"),
        ));
    }
    Ok(glob)
}

fn path_of(cx: &Ctx, wdir: &str, m: &MarkedMappingNode, n: &Node, what: &str) -> Result<String> {
    let p = m
        .get_node("path")
        .ok_or_else(|| cx.err(n.span(), format!("{what}: missing `path`")))?;
    rel_path(
        cx,
        wdir,
        &cx.string(p, &format!("{what}.path"))?,
        p.span(),
        &format!("{what}.path"),
    )
}

pub(super) fn parse_input(cx: &Ctx, wdir: &str, n: &Node) -> Result<Input> {
    let m = cx.mapping(n, "input")?;
    let how = m.iter().find_map(|(k, v)| {
        let how = match k.as_str() {
            "cross" => How::Cross,
            "union" => How::Union,
            "join" => How::Join,
            "group" => How::Group,
            _ => return None,
        };
        Some((k, v, how))
    });
    if let Some((k, list, how)) = how {
        if m.len() != 1 {
            return Err(cx.err(
                k.span(),
                format!(
                    "input: `{}` stands alone; put every input in its list",
                    how.as_str()
                ),
            ));
        }
        let combine = parse_combine(cx, wdir, k.span(), list, how)?;
        let first = &combine.inputs[0];
        return Ok(Input {
            path: first.path.clone(),
            glob: first.glob.clone(),
            combine: Some(combine),
        });
    }
    for (k, _) in m.iter() {
        if !matches!(k.as_str(), "path" | "glob") {
            return Err(cx.err(
                k.span(),
                format!(
                    "input: unknown field `{}`; expected `path` and `glob`, or one of `cross`, `union`, `join`, `group`",
                    k.as_str()
                ),
            ));
        }
    }
    Ok(Input {
        path: path_of(cx, wdir, m, n, "input")?,
        glob: glob_of(cx, m, n, "input")?,
        combine: None,
    })
}

fn parse_combine(
    cx: &Ctx,
    wdir: &str,
    at: &marked_yaml::Span,
    list: &Node,
    how: How,
) -> Result<Combine> {
    let what = format!("input.{}", how.as_str());
    let Node::Sequence(items) = list else {
        return Err(cx.err(
            list.span(),
            format!("{what}: expected a list of inputs such as `- {{path: a, glob: /*}}`"),
        ));
    };
    let least = if how == How::Group { 1 } else { 2 };
    if items.len() < least {
        return Err(cx.err(at, format!("{what}: needs at least {least} inputs")));
    }
    let key_field = match how {
        How::Join => Some("join_on"),
        How::Group => Some("group_by"),
        _ => None,
    };
    let mut inputs: Vec<Named> = Vec::new();
    for item in items.iter() {
        let m = cx.mapping(item, &what)?;
        for (k, _) in m.iter() {
            let ok = match k.as_str() {
                "name" | "path" | "glob" => true,
                "outer_join" => how == How::Join,
                f => Some(f) == key_field,
            };
            if !ok {
                let mut expected = vec!["name", "path", "glob"];
                expected.extend(key_field);
                if how == How::Join {
                    expected.push("outer_join");
                }
                return Err(cx.err(
                    k.span(),
                    format!(
                        "{what}: unknown field `{}`; expected {}",
                        k.as_str(),
                        expected.join(", ")
                    ),
                ));
            }
        }
        let path = path_of(cx, wdir, m, item, &what)?;
        let glob = glob_of(cx, m, item, &what)?;
        let name = match m.get_node("name") {
            Some(nn) => cx.string(nn, &format!("{what}.name"))?,
            None => path.rsplit('/').next().unwrap_or_default().to_string(),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with('.')
        {
            return Err(cx.err(
                m.get_node("name").map(|x| x.span()).unwrap_or(item.span()),
                format!("{what}: input name `{name}`: use ASCII letters, digits, '-', '_' and '.' (set `name:`)"),
            ));
        }
        if inputs.iter().any(|i| i.name == name) {
            return Err(cx.err(
                item.span(),
                format!("{what}: two inputs are named `{name}`; give one a `name:`"),
            ));
        }
        let key = match key_field {
            Some(f) => {
                let node = m.get_node(f).ok_or_else(|| {
                    cx.err(
                        item.span(),
                        format!(
                            "{what}: missing `{f}` (such as \"$1\", a capture group of the glob)"
                        ),
                    )
                })?;
                let key = cx.string(node, &format!("{what}.{f}"))?;
                let groups = crate::combine::capture_groups(&glob);
                let refs = crate::combine::group_refs(&key);
                if refs.is_empty() || refs.iter().any(|r| *r == 0 || *r > groups) {
                    let have = match groups {
                        0 => "it has none".to_string(),
                        1 => "it has $1".to_string(),
                        n => format!("it has $1 to ${n}"),
                    };
                    return Err(cx.err(
                        node.span(),
                        format!("{what}.{f}: `{key}` must name capture groups of the glob ({have}); put ( ) around parts of the glob, such as /(*).csv"),
                    ));
                }
                Some(key)
            }
            None => None,
        };
        let outer = match m.get_node("outer_join") {
            Some(o) => cx.boolean(o, &format!("{what}.outer_join"))?,
            None => false,
        };
        inputs.push(Named {
            name,
            path,
            glob,
            key,
            outer,
        });
    }
    Ok(Combine { how, inputs })
}
