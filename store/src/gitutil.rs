//! The git side: which code commit the data goes with, and keeping data out of git.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;
use crate::object::GitInfo;

/// The git work tree containing `root`, if any.
pub fn git_workdir(root: &Path) -> Option<PathBuf> {
    let repo = git2::Repository::discover(root).ok()?;
    repo.workdir().map(|p| p.to_path_buf())
}

/// The full id of the git commit `rev` names (a branch, tag, `HEAD~1`, an id), if git knows
/// it.
pub fn git_commit_of(root: &Path, rev: &str) -> Option<String> {
    // Options are not revisions; git2 would not take them as such anyway.
    if rev.is_empty() || rev.starts_with('-') {
        return None;
    }
    let repo = git2::Repository::discover(root).ok()?;
    let obj = repo.revparse_single(rev).ok()?;
    let commit = obj.peel_to_commit().ok()?;
    Some(commit.id().to_string())
}

/// The branch git's HEAD is on in the enclosing repository, if any.
pub fn git_branch(root: &Path) -> Option<String> {
    let repo = git2::Repository::discover(root).ok()?;
    let head = repo.head().ok()?;
    if !head.is_branch() {
        return None;
    }
    head.shorthand().map(str::to_string)
}

/// HEAD commit of the enclosing git repo and whether tracked files differ from it.
pub fn git_info(root: &Path) -> Option<GitInfo> {
    let repo = git2::Repository::discover(root).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false).include_ignored(false);
    let dirty = repo
        .statuses(Some(&mut opts))
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    Some(GitInfo {
        commit: head.id().to_string(),
        dirty,
    })
}

/// The bytes git holds for `rel` (relative to the project `root`) in commit `commit`, if any.
pub fn blob_at(root: &Path, commit: &str, rel: &str) -> Option<Vec<u8>> {
    let repo = git2::Repository::discover(root).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let prefix = root.canonicalize().ok()?;
    let in_repo = prefix.strip_prefix(&workdir).ok()?.join(rel);
    let oid = git2::Oid::from_str(commit).ok()?;
    let tree = repo.find_commit(oid).ok()?.tree().ok()?;
    let entry = tree.get_path(&in_repo).ok()?;
    let blob = entry.to_object(&repo).ok()?.peel_to_blob().ok()?;
    Some(blob.content().to_vec())
}

/// user.name / user.email from git's configuration, if set.
pub fn git_user(root: &Path) -> (Option<String>, Option<String>) {
    let cfg = git2::Repository::discover(root)
        .ok()
        .and_then(|r| r.config().ok())
        .or_else(|| git2::Config::open_default().ok());
    match cfg {
        Some(c) => (
            c.get_string("user.name").ok(),
            c.get_string("user.email").ok(),
        ),
        None => (None, None),
    }
}

/// Escape a path for a .gitignore line, anchored at the repo top (`/path`).
pub fn gitignore_line(rel_to_git: &str) -> String {
    let mut s = String::from("/");
    for c in rel_to_git.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '!' | '#') {
            s.push('\\');
        }
        s.push(c);
    }
    if s.ends_with(' ') {
        s.pop();
        s.push_str("\\ ");
    }
    s
}

/// Add or remove `/path` lines in the git repo's top-level .gitignore.
pub fn update_gitignore(
    git_root: &Path,
    add: &[String],
    remove: &[String],
    tmp_dir: &Path,
) -> Result<()> {
    let path = git_root.join(".gitignore");
    let old = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(crate::StoreError::io(&path, e)),
    };
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let rm: Vec<String> = remove.iter().map(|p| gitignore_line(p)).collect();
    lines.retain(|l| !rm.contains(l));
    for p in add {
        let l = gitignore_line(p);
        if !lines.contains(&l) {
            lines.push(l);
        }
    }
    let mut new = lines.join("\n");
    if !new.is_empty() {
        new.push('\n');
    }
    if new != old {
        write_atomic(&path, new.as_bytes(), tmp_dir)?;
    }
    Ok(())
}

/// Make sure dvx's internals stay out of git.
pub fn write_internal_gitignore(dot: &Path) -> Result<()> {
    let p = dot.join(".gitignore");
    fs::write(
        &p,
        "# dvx internals: the store lives here, not in git\n/db/\n/packs/\n/tmp/\n/lock\n/lock.info\n/config.local.toml\n/remotes/\n",
    )
    .at(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(gitignore_line("data/raw.csv"), "/data/raw.csv");
        assert_eq!(gitignore_line("a*b/#c"), "/a\\*b/\\#c");
        assert_eq!(gitignore_line("sp "), "/sp\\ ");
    }
}
