//! An experiment's copy of the workspace: every file hard-linked (copied where a link cannot
//! be made), except what the experiment may change in place, which is copied. Stages remove
//! their outputs before they run and dvx writes files by rename, so a link is never written
//! through; `persist: true` outputs are the exception, and are copied.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dvx_store::StoreError;

use crate::error::Result;
use crate::spec::Pipeline;

/// Folders of the project never copied: dvx's own, and git's.
const SKIP: &[&str] = &[".dvx", ".git"];

/// Make `dest` (which must not exist) a copy of the workspace at `root`. Returns the files
/// linked, whose change time the links moved.
pub fn make(root: &Path, dest: &Path, pipeline: &Pipeline) -> Result<Vec<String>> {
    let copied: Vec<String> = pipeline
        .stages
        .iter()
        .flat_map(|s| s.all_outs())
        .filter(|o| o.persist)
        .map(|o| o.path.clone())
        .collect();
    fs::create_dir_all(dest).map_err(|e| StoreError::io(dest, e))?;
    let mut linked = Vec::new();
    walk(root, dest, "", &copied, &mut linked)?;
    linked.sort();
    Ok(linked)
}

fn walk(
    root: &Path,
    dest: &Path,
    rel: &str,
    copied: &[String],
    linked: &mut Vec<String>,
) -> Result<()> {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if rel.is_empty() && SKIP.contains(&name.as_str()) {
            continue;
        }
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let from = root.join(&child);
        let to = dest.join(&child);
        let ft = entry.file_type().map_err(|e| StoreError::io(&from, e))?;
        if ft.is_dir() {
            fs::create_dir(&to).map_err(|e| StoreError::io(&to, e))?;
            walk(root, dest, &child, copied, linked)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(|e| StoreError::io(&from, e))?;
            std::os::unix::fs::symlink(&target, &to).map_err(|e| StoreError::io(&to, e))?;
        } else if ft.is_file() {
            let copy = copied.iter().any(|c| dvx_store::paths::is_under(&child, c));
            if link_or_copy(&from, &to, copy).map_err(|e| StoreError::io(&to, e))? {
                linked.push(child);
            }
        }
    }
    Ok(())
}

/// True when linked.
fn link_or_copy(from: &Path, to: &Path, copy: bool) -> io::Result<bool> {
    if !copy && fs::hard_link(from, to).is_ok() {
        return Ok(true);
    }
    fs::copy(from, to).map(|_| false)
}

/// The folder experiment `name` runs in.
pub fn folder(dot: &Path, name: &str) -> PathBuf {
    dot.join("exps").join(name)
}

/// Remove an experiment's folder, if there is one.
pub fn remove(dir: &Path) {
    if dir.exists() {
        let _ = fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn links_files_skips_dvx_and_git_and_copies_persisted_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        for (p, t) in [
            ("data/a.txt", "a"),
            (".dvx/db", "x"),
            (".git/HEAD", "x"),
            ("log/all.txt", "1"),
            ("params.yaml", "k: 1\n"),
        ] {
            let f = root.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, t).unwrap();
        }
        let yaml = "stages:\n  s:\n    cmd: echo\n    outs:\n      - log/all.txt:\n          persist: true\n";
        let p = crate::spec::parse_bytes(Path::new("dvx.yaml"), yaml.as_bytes()).unwrap();
        let dest = dir.path().join("copy");
        let linked = make(&root, &dest, &p).unwrap();
        assert_eq!(linked, ["data/a.txt", "params.yaml"]);
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&root.join("data/a.txt")), ino(&dest.join("data/a.txt")));
        assert_ne!(
            ino(&root.join("log/all.txt")),
            ino(&dest.join("log/all.txt"))
        );
        assert_eq!(fs::read_to_string(dest.join("log/all.txt")).unwrap(), "1");
        assert!(!dest.join(".dvx").exists() && !dest.join(".git").exists());
    }
}
