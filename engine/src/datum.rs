//! Datums: an input glob splits a stage into one execution per match, as in Pachyderm.

use std::collections::BTreeMap;

use dvx_store::object::EntryKind;
use dvx_store::worktree::{self, Flat};
use globset::GlobBuilder;
use serde::Serialize;

use crate::combine::{self, Member};
use crate::error::{EngineError, Result};
use crate::key::InputId;
use crate::spec::{Input, Stage};

/// The id of the one datum `glob: "/"` makes: the whole input folder, as in Pachyderm.
pub const WHOLE_INPUT: &str = "/";

#[derive(Clone, Debug, Serialize)]
pub struct Datum {
    /// Path of the match inside the input folder (its id for humans); [`WHOLE_INPUT`] for
    /// the input folder itself.
    pub id: String,
    /// Project-relative path of the match.
    pub path: String,
    pub input: Option<InputId>,
    /// Bytes of the match (all files in it, for a folder).
    pub size: u64,
    /// Several inputs combined (`cross`, `join`, ...): one match of each, or a group. Then
    /// `path` is empty and `input` is the id of them all together.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// The datums `input` yields over the workspace state `files` (the input folder flattened).
pub fn datums(stage: &Stage, input: &Input, files: &BTreeMap<String, Flat>) -> Result<Vec<Datum>> {
    if let Some(c) = &input.combine {
        return combined(stage, c, files);
    }
    let pattern = input.glob.trim_start_matches('/');
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| EngineError::Failed {
            stage: stage.name.clone(),
            datum: None,
            message: format!("input glob {:?} is not valid: {e}", input.glob),
        })?
        .compile_matcher();
    let base = &input.path;
    let mut out = Vec::new();
    if pattern.is_empty() {
        // `/`: the input folder itself is the one datum (an empty glob matches nothing).
        if let Some(flat) = files.get(base) {
            out.push(datum_of(WHOLE_INPUT, base, flat, files)?);
        }
        return Ok(out);
    }
    for (path, flat) in files {
        if path == base || !dvx_store::paths::is_under(path, base) {
            continue;
        }
        let sub = &path[base.len() + 1..];
        if !glob.is_match(sub) {
            continue;
        }
        out.push(datum_of(sub, path, flat, files)?);
    }
    Ok(out)
}

fn datum_of(id: &str, path: &str, flat: &Flat, files: &BTreeMap<String, Flat>) -> Result<Datum> {
    let entry = if flat.kind == EntryKind::Dir {
        worktree::build_tree(path, files, &|t| t.id())?
    } else {
        Some(*flat)
    };
    Ok(Datum {
        id: id.to_string(),
        path: path.to_string(),
        input: entry.map(|e| InputId {
            kind: flat.kind.as_str(),
            id: e.id,
        }),
        size: entry.map_or(0, |e| e.size),
        members: Vec::new(),
    })
}

/// The datums of several inputs: each input's matches (with their capture-group keys), then
/// the combinations `combine` plans.
fn combined(
    stage: &Stage,
    c: &crate::spec::Combine,
    files: &BTreeMap<String, Flat>,
) -> Result<Vec<Datum>> {
    let bad = |message: String| EngineError::Failed {
        stage: stage.name.clone(),
        datum: None,
        message,
    };
    let mut matches = Vec::new();
    for named in &c.inputs {
        let mut ms = Vec::new();
        let whole = named.glob.trim_start_matches('/').is_empty();
        let re = combine::glob_regex(&named.glob).map_err(bad)?;
        for (path, flat) in files {
            let (id, caps) = if whole && path == &named.path {
                (WHOLE_INPUT, None)
            } else if path != &named.path && dvx_store::paths::is_under(path, &named.path) {
                let sub = &path[named.path.len() + 1..];
                match re.captures(sub) {
                    Some(caps) if !whole => (sub, Some(caps)),
                    _ => continue,
                }
            } else {
                continue;
            };
            let d = datum_of(id, path, flat, files)?;
            let key = match (&named.key, caps) {
                (Some(t), Some(caps)) => Some(combine::key_of(t, &caps)),
                _ => None,
            };
            ms.push(Member {
                name: named.name.clone(),
                id: d.id,
                path: d.path,
                input: d.input,
                size: d.size,
                key,
            });
        }
        matches.push(ms);
    }
    Ok(combine::combinations(c.how, &c.inputs, matches)
        .into_iter()
        .map(|members| Datum {
            id: combine::datum_id(c.how, &members),
            path: String::new(),
            input: combine::combined_id(&members),
            size: members.iter().map(|m| m.size).sum(),
            members,
        })
        .collect())
}

/// The match's path below the input folder ("" for the whole input).
pub fn sub_path(id: &str) -> &str {
    if id == WHOLE_INPUT {
        ""
    } else {
        id
    }
}
