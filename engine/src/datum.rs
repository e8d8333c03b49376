//! Datums: an input glob splits a stage into one execution per match, as in Pachyderm.

use std::collections::BTreeMap;

use dvx_store::object::EntryKind;
use dvx_store::worktree::{self, Flat};
use globset::GlobBuilder;
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::key::InputId;
use crate::spec::{Input, Stage};

#[derive(Clone, Debug, Serialize)]
pub struct Datum {
    /// Path of the match inside the input folder (its id for humans).
    pub id: String,
    /// Project-relative path of the match.
    pub path: String,
    pub input: Option<InputId>,
    /// Bytes of the match (all files in it, for a folder).
    pub size: u64,
}

/// The datums `input` yields over the workspace state `files` (the input folder flattened).
pub fn datums(stage: &Stage, input: &Input, files: &BTreeMap<String, Flat>) -> Result<Vec<Datum>> {
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
    for (path, flat) in files {
        if path == base || !dvx_store::paths::is_under(path, base) {
            continue;
        }
        let sub = &path[base.len() + 1..];
        if !glob.is_match(sub) {
            continue;
        }
        let entry = if flat.kind == EntryKind::Dir {
            worktree::build_tree(path, files, &|t| t.id())?
        } else {
            Some(*flat)
        };
        out.push(Datum {
            id: sub.to_string(),
            path: path.clone(),
            input: entry.map(|e| InputId {
                kind: flat.kind.as_str(),
                id: e.id,
            }),
            size: entry.map_or(0, |e| e.size),
        });
    }
    Ok(out)
}
