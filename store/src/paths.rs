//! Workspace paths: relative, `/`-separated, UTF-8, never escaping the project.

use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::object::validate_name;

/// Prefix of temporary files dvx writes beside their final place; never tracked.
pub const TEMP_PREFIX: &str = ".dvx-tmp-";

/// Why a name may never be a component of a tracked path, anywhere in the project, if so.
///
/// This and [`reserved`] are the one rule for what tracked data may name; `add`, fetch,
/// checkout and fsck all apply it. `.git` and `.dvx` are compared without case, as git does
/// for `.git`, so that a case-insensitive file system cannot be used to reach them.
pub fn reserved_name(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case(".git") {
        Some("`.git` is git's own folder")
    } else if name.eq_ignore_ascii_case(".dvx") {
        Some("`.dvx` is dvx's own folder")
    } else if name
        .get(..TEMP_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(TEMP_PREFIX))
    {
        Some("names starting with `.dvx-tmp-` are dvx's temporary files")
    } else {
        None
    }
}

/// Why a name may never be tracked at the top of the project, if so: the names reserved
/// anywhere, and `dvx.lock`, which pins the data to the code.
pub fn reserved_top_name(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("dvx.lock") {
        Some("`dvx.lock` at the top of the project is dvx's own file")
    } else {
        reserved_name(name)
    }
}

/// Why a project-relative path may never be tracked, written or deleted by dvx, if so.
pub fn reserved(rel: &str) -> Option<&'static str> {
    let mut parts = rel.split('/');
    let first = parts.next().unwrap_or("");
    reserved_top_name(first).or_else(|| parts.find_map(reserved_name))
}

pub fn is_reserved(rel: &str) -> bool {
    reserved(rel).is_some()
}

/// Check a path named by tracked data before using it: safe to join under the root, and not
/// one of git's or dvx's own files (see [`reserved`]).
pub fn check_tracked(rel: &str) -> Result<()> {
    check_rel(rel)?;
    match reserved(rel) {
        Some(reason) => Err(StoreError::ReservedPath {
            path: rel.into(),
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

/// The first folder on the way to `rel` (not `rel` itself) that is a symlink on disk, if any.
/// A path beyond a symlink can lie outside the project, so dvx neither reads nor writes it.
pub fn symlinked_parent(root: &Path, rel: &str) -> Option<String> {
    let mut prefix = String::new();
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break;
        }
        prefix = join(&prefix, part);
        match std::fs::symlink_metadata(root.join(&prefix)) {
            Ok(m) if m.file_type().is_symlink() => return Some(prefix),
            Ok(m) if m.is_dir() => {}
            // Missing or not a folder: nothing beyond it exists to follow.
            _ => return None,
        }
    }
    None
}

/// Refuse `rel` if a folder on its way is a symlink (with `itself`, also if `rel` is one).
pub fn check_no_symlink(root: &Path, rel: &str, itself: bool) -> Result<()> {
    let link = symlinked_parent(root, rel).or_else(|| {
        let is_link = itself
            && !rel.is_empty()
            && std::fs::symlink_metadata(root.join(rel)).is_ok_and(|m| m.file_type().is_symlink());
        is_link.then(|| rel.to_string())
    });
    match link {
        Some(link) => Err(StoreError::BeyondSymlink {
            path: rel.into(),
            link,
        }),
        None => Ok(()),
    }
}

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

/// Join a relative path under a parent ("" is the top).
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        // Not `format!`: this runs once per entry of every tree flattened.
        let mut s = String::with_capacity(parent.len() + 1 + name.len());
        s.push_str(parent);
        s.push('/');
        s.push_str(name);
        s
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
    fn reserved_paths() {
        for bad in [
            ".git",
            ".GIT/hooks/post-checkout",
            "sub/.git",
            "a/b/.Git/config",
            ".dvx",
            ".dvx/config.toml",
            "data/.DVX",
            "dvx.lock",
            "DVX.LOCK",
            ".dvx-tmp-123-x",
            "data/.dvx-tmp-1-f.csv",
            "data/.DVX-TMP-1",
        ] {
            assert!(is_reserved(bad), "{bad}");
            assert!(
                matches!(check_tracked(bad), Err(StoreError::ReservedPath { .. })),
                "{bad}"
            );
        }
        for ok in [
            "data",
            "data/dvx.lock",
            ".gitignore",
            ".github/x",
            "a/.gitkeep",
            ".dvxignore",
            "x.git",
            ".dvx-tmp",
        ] {
            assert!(!is_reserved(ok), "{ok}");
            assert!(check_tracked(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn symlinked_parents() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("lnk")).unwrap();
        std::os::unix::fs::symlink("real", root.join("real/sub/inner")).unwrap();
        assert_eq!(symlinked_parent(root, "lnk/x"), Some("lnk".into()));
        assert_eq!(symlinked_parent(root, "lnk"), None);
        assert_eq!(
            symlinked_parent(root, "real/sub/inner/y/z"),
            Some("real/sub/inner".into())
        );
        assert_eq!(symlinked_parent(root, "real/sub/f"), None);
        assert_eq!(symlinked_parent(root, "missing/a/b"), None);
        assert!(check_no_symlink(root, "lnk", false).is_ok());
        let err = check_no_symlink(root, "lnk", true).unwrap_err();
        assert!(matches!(err, StoreError::BeyondSymlink { .. }), "{err}");
        let err = check_no_symlink(root, "lnk/result.txt", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lnk/result.txt: beyond a symbolic link at lnk"
        );
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
