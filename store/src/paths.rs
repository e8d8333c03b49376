//! Workspace paths: relative, `/`-separated, UTF-8, never escaping the project.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::object::validate_name;

/// Names dvx keeps for itself at the top of a project.
pub const RESERVED_TOP: [&str; 3] = [".dvx", ".git", "dvx.lock"];
/// Prefix of temporary files dvx writes beside their final place; never tracked.
pub const TEMP_PREFIX: &str = ".dvx-tmp-";

/// Lexically normalise `p` (made absolute against `cwd`): drop `.`, apply `..`.
/// Symlinks are deliberately not resolved: a link is tracked as a link.
pub fn normalize(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The project-relative form of a user-given path (relative to `cwd`).
/// The top folder itself is "".
pub fn to_rel(root: &Path, cwd: &Path, arg: &Path) -> Result<String> {
    let abs = normalize(cwd, arg);
    let rel = abs
        .strip_prefix(root)
        .map_err(|_| StoreError::OutsideWorkspace {
            path: arg.to_path_buf(),
            root: root.to_path_buf(),
        })?;
    let mut parts = Vec::new();
    for c in rel.components() {
        let s = c
            .as_os_str()
            .to_str()
            .ok_or_else(|| StoreError::InvalidPath {
                path: rel.to_string_lossy().into_owned(),
                reason: "the name is not valid UTF-8".into(),
            })?;
        parts.push(s);
    }
    Ok(parts.join("/"))
}

/// Check a stored relative path before touching the disk with it.
pub fn check_rel(rel: &str) -> Result<()> {
    if rel.is_empty() {
        return Ok(());
    }
    if rel.starts_with('/') {
        return Err(StoreError::UnsafePath {
            path: rel.into(),
            reason: "absolute path".into(),
        });
    }
    for part in rel.split('/') {
        validate_name(part).map_err(|r| StoreError::UnsafePath {
            path: rel.into(),
            reason: r.into(),
        })?;
    }
    Ok(())
}

pub fn is_reserved(rel: &str) -> bool {
    let first = rel.split('/').next().unwrap_or("");
    RESERVED_TOP.contains(&first)
}

/// Join a relative path under a parent ("" is the top).
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// True if `path` is `root` or lies under it.
pub fn is_under(path: &str, root: &str) -> bool {
    root.is_empty()
        || path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'/')
}

/// `rel` as a path below `root`, after checking it is safe.
pub fn abs(root: &Path, rel: &str) -> Result<PathBuf> {
    check_rel(rel)?;
    Ok(if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    })
}

/// Show a project-relative path relative to where the user stands.
pub fn display_rel(root: &Path, cwd: &Path, rel: &str) -> String {
    let here = match cwd.strip_prefix(root) {
        Ok(h) => h.to_string_lossy().replace('\\', "/"),
        Err(_) => return rel.to_string(),
    };
    if here.is_empty() {
        return rel.to_string();
    }
    if is_under(rel, &here) && rel != here {
        return rel[here.len() + 1..].to_string();
    }
    let ups = here.split('/').count();
    format!("{}{}", "../".repeat(ups), rel)
}

/// Does a symlink at `link_rel` pointing to `target` stay inside the project?
pub fn symlink_stays_inside(link_rel: &str, target: &str) -> bool {
    if target.starts_with('/') || target.is_empty() {
        return false;
    }
    let mut depth: Vec<&str> = link_rel.split('/').collect();
    depth.pop(); // the link's own name
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            p => depth.push(p),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rel_paths() {
        let root = Path::new("/p");
        assert_eq!(
            to_rel(root, Path::new("/p/a"), Path::new("b/c")).unwrap(),
            "a/b/c"
        );
        assert_eq!(
            to_rel(root, Path::new("/p/a"), Path::new("../x")).unwrap(),
            "x"
        );
        assert_eq!(to_rel(root, Path::new("/p"), Path::new(".")).unwrap(), "");
        assert!(to_rel(root, Path::new("/p"), Path::new("../q")).is_err());
        assert!(to_rel(root, Path::new("/p"), Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn unsafe_stored_paths() {
        assert!(check_rel("a/../../etc").is_err());
        assert!(check_rel("/etc/passwd").is_err());
        assert!(check_rel("a//b").is_err());
        assert!(check_rel("a/b c/ü.csv").is_ok());
    }

    #[test]
    fn symlink_escape() {
        assert!(symlink_stays_inside("a/link", "../b"));
        assert!(symlink_stays_inside("a/link", "c/d"));
        assert!(!symlink_stays_inside("a/link", "../../b"));
        assert!(!symlink_stays_inside("link", "/etc"));
    }

    #[test]
    fn display_relative_to_cwd() {
        let root = Path::new("/p");
        assert_eq!(display_rel(root, Path::new("/p/a"), "a/b"), "b");
        assert_eq!(display_rel(root, Path::new("/p/a"), "c/d"), "../c/d");
        assert!(is_under("a/b", "a") && !is_under("ab", "a") && is_under("x", ""));
    }
}
