//! Stage paths stay inside the project on disk. `dvx.yaml` paths are checked lexically when
//! parsed (no `..` out of the project, no absolute paths); here they are checked against the
//! disk: a path beyond a symlinked folder could resolve anywhere, so the stage is refused
//! before anything of it is deleted or run.

use std::path::Path;

use dvx_store::paths;

use crate::error::{EngineError, Result};
use crate::spec::Stage;

/// Refuse a stage whose working folder, outputs, metrics, params files or datum input lie
/// beyond a symlinked folder (the working folder and the input may not be links either), or
/// whose outputs are git's or dvx's own files (they are deleted before the stage runs).
pub fn check_stage(root: &Path, s: &Stage) -> Result<()> {
    let at = |e| EngineError::StagePath {
        stage: s.name.clone(),
        source: e,
    };
    if !s.wdir.is_empty() {
        paths::check_no_symlink(root, &s.wdir, true).map_err(at)?;
    }
    for o in s.all_outs() {
        paths::check_tracked(&o.path).map_err(at)?;
        paths::check_no_symlink(root, &o.path, false).map_err(at)?;
    }
    for p in &s.params {
        paths::check_no_symlink(root, &p.file, false).map_err(at)?;
    }
    if let Some(i) = &s.input {
        for f in i.folders() {
            paths::check_no_symlink(root, f, true).map_err(at)?;
        }
    }
    Ok(())
}

/// Refuse a dependency (after glob expansion) beyond a symlinked folder.
pub fn check_dep(root: &Path, s: &Stage, dep: &str) -> Result<()> {
    paths::check_no_symlink(root, dep, false).map_err(|e| EngineError::StagePath {
        stage: s.name.clone(),
        source: e,
    })
}
