//! What a fetch lets in: every tree and commit that came down is checked against the store's
//! rules for names and modes (`dvx_store::guard`, `dvx_store::paths`) before anything of it is
//! written, and remote ref names against the rules for branch and tag names.

use std::collections::HashSet;

use dvx_store::guard::entry_problem;
use dvx_store::object::{Commit, EntryKind, EntryRef, Tree};
use dvx_store::{paths, Id};

use crate::error::{RemoteError, Result};
use crate::layout::Kind;
use crate::spool::Objects;
use crate::RemoteErrorKind;

/// Refuse a remote ref whose branch or tag name dvx would not create: it becomes a local
/// name (`refs/remotes/R/B`, `refs/tags/T`) and is printed to the user.
pub fn check_remote_ref(remote: &str, name: &str) -> Result<()> {
    let (what, short) = if let Some(b) = name.strip_prefix(dvx_store::refs::HEADS) {
        ("branch", b)
    } else if let Some(t) = name.strip_prefix(dvx_store::refs::TAGS) {
        ("tag", t)
    } else {
        return Ok(());
    };
    dvx_store::refs::validate_ref_name(short, what).map_err(|_| RemoteError::Remote {
        remote: remote.to_string(),
        message: format!("{name:?} is not a valid {what} name; nothing was written"),
        kind: RemoteErrorKind::Unsafe,
    })
}

/// What a fetch downloaded (commits and trees among it), not yet written.
pub struct Incoming<'a> {
    pub remote: &'a str,
    pub objs: &'a dyn Objects,
}

impl<'a> Incoming<'a> {
    pub fn of(remote: &'a str, objs: &'a dyn Objects) -> Incoming<'a> {
        Incoming { remote, objs }
    }

    fn refuse(&self, message: String) -> RemoteError {
        RemoteError::Remote {
            remote: self.remote.to_string(),
            message: format!("{message}; nothing was written"),
            kind: RemoteErrorKind::Unsafe,
        }
    }

    /// Check every commit and tree that came down, before any of it is written: roots and
    /// paths must not be reserved, modes must be canonical. The error names the remote, the
    /// commit and the full path. `local` reads a tree already in the store (trusted for its
    /// own names, but it may be reused as a new commit's top tree).
    pub fn check(&self, local: &dyn Fn(&Id) -> dvx_store::Result<Option<Vec<u8>>>) -> Result<()> {
        let mut seen: HashSet<Id> = HashSet::new();
        for cid in &self.objs.ids(Kind::Commit) {
            let Some(bytes) = self.objs.read(Kind::Commit, cid)? else {
                continue;
            };
            let c = Commit::decode(*cid, &bytes)?;
            for r in &c.roots {
                if let Err(e) = paths::check_tracked(r) {
                    return Err(self.refuse(format!("commit {} tracks {e}", cid.short())));
                }
            }
            // The top tree's names, even when the tree is not new: dvx.lock is only reserved
            // at the top, so a folder's tree reused as a top tree must be looked at again.
            let top = match self.objs.read(Kind::Tree, &c.tree)? {
                Some(b) => Some(b),
                None => local(&c.tree)?,
            };
            if let Some(b) = &top {
                for e in self.decode(&c.tree, b)? {
                    if let Some(p) = entry_problem(&e, true) {
                        return Err(self.refuse(format!(
                            "commit {} holds {}: {p}",
                            cid.short(),
                            e.name
                        )));
                    }
                }
            }
            self.walk(&c.tree, "", &mut seen, &|path, p| {
                self.refuse(format!("commit {} holds {path}: {p}", cid.short()))
            })?;
        }
        // Trees no new commit reaches (run records' outputs, or strays): by name alone.
        for id in self.objs.ids(Kind::Tree) {
            if seen.contains(&id) {
                continue;
            }
            self.walk(&id, "", &mut seen, &|path, p| {
                self.refuse(format!("tree {} holds {path}: {p}", id.short()))
            })?;
        }
        Ok(())
    }

    /// Check the new trees under `id` (which lies at `prefix`), each once.
    fn walk(
        &self,
        id: &Id,
        prefix: &str,
        seen: &mut HashSet<Id>,
        refuse: &dyn Fn(&str, &str) -> RemoteError,
    ) -> Result<()> {
        let mut stack = vec![(*id, prefix.to_string())];
        while let Some((id, prefix)) = stack.pop() {
            if seen.contains(&id) {
                continue;
            }
            let Some(bytes) = self.objs.read(Kind::Tree, &id)? else {
                continue; // already in the store: checked when it came in
            };
            seen.insert(id);
            for e in self.decode(&id, &bytes)? {
                let path = paths::join(&prefix, e.name);
                if let Some(p) = entry_problem(&e, false) {
                    return Err(refuse(&path, &p));
                }
                if e.kind == EntryKind::Dir {
                    stack.push((e.id, path));
                }
            }
        }
        Ok(())
    }

    fn decode<'b>(&self, id: &Id, bytes: &'b [u8]) -> Result<Vec<EntryRef<'b>>> {
        Tree::decode_ref(*id, bytes).map_err(|e| match e {
            dvx_store::StoreError::UnsafePath { path, reason } => {
                self.refuse(format!("tree {} names {path:?}: {reason}", id.short()))
            }
            e => RemoteError::Remote {
                remote: self.remote.to_string(),
                message: e.to_string(),
                kind: RemoteErrorKind::Corrupt,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvx_store::strategies::{commit, entry};
    use std::collections::HashMap;

    fn check(commits: &[Commit], trees: &[Tree]) -> Result<()> {
        let mut objs: HashMap<(Kind, Id), Vec<u8>> = HashMap::new();
        for c in commits {
            objs.insert((Kind::Commit, c.id()), c.encode());
        }
        for t in trees {
            objs.insert((Kind::Tree, t.id()), t.encode());
        }
        Incoming::of("origin", &objs).check(&|_| Ok(None))
    }

    #[test]
    fn remote_ref_names() {
        assert!(check_remote_ref("o", "refs/heads/feature/x-1").is_ok());
        assert!(check_remote_ref("o", "refs/tags/v1.0").is_ok());
        for bad in [
            "refs/heads/a..b",
            "refs/tags/x\ny",
            "refs/heads/",
            "refs/heads/-f",
        ] {
            let err = check_remote_ref("o", bad).unwrap_err();
            assert!(err.to_string().contains("is not a valid"), "{err}");
        }
    }

    #[test]
    fn fetch_refuses_reserved_paths_with_their_full_path() {
        let f = Id::of(b"hook");
        let hooks = Tree::new(vec![entry("post-checkout", EntryKind::File, 0o755, f)]).unwrap();
        let git = Tree::new(vec![entry("hooks", EntryKind::Dir, 0o755, hooks.id())]).unwrap();
        let sub = Tree::new(vec![entry(".git", EntryKind::Dir, 0o755, git.id())]).unwrap();
        let top = Tree::new(vec![entry("sub", EntryKind::Dir, 0o755, sub.id())]).unwrap();
        let c = commit(top.id(), &["sub"]);
        let err = check(&[c], &[top, sub, git.clone(), hooks.clone()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("remote origin: commit "), "{msg}");
        assert!(msg.contains("holds sub/.git: a reserved name"), "{msg}");
        assert!(
            err.hint().unwrap().contains("Nothing was written"),
            "{:?}",
            err.hint()
        );

        let top = Tree::new(vec![entry(".git", EntryKind::Dir, 0o755, git.id())]).unwrap();
        let err = check(&[commit(top.id(), &[".git"])], &[top, git, hooks]).unwrap_err();
        assert!(err.to_string().contains("tracks .git: "), "{err}");

        let lock = Tree::new(vec![entry("dvx.lock", EntryKind::File, 0o644, f)]).unwrap();
        let err = check(&[commit(lock.id(), &["data"])], std::slice::from_ref(&lock)).unwrap_err();
        assert!(
            err.to_string().contains("holds dvx.lock: a reserved name"),
            "{err}"
        );
        // Below the top, dvx.lock is an ordinary name.
        let top = Tree::new(vec![entry("data", EntryKind::Dir, 0o755, lock.id())]).unwrap();
        check(&[commit(top.id(), &["data"])], &[top, lock]).unwrap();
    }

    #[test]
    fn fetch_refuses_setuid_and_world_writable_modes() {
        let d = Tree::new(vec![entry("x", EntryKind::File, 0o6777, Id::of(b"x"))]).unwrap();
        let top = Tree::new(vec![entry("d", EntryKind::Dir, 0o755, d.id())]).unwrap();
        let err = check(&[commit(top.id(), &["d"])], &[top, d.clone()]).unwrap_err();
        assert!(err.to_string().contains("holds d/x: mode 6777"), "{err}");
        // A stray tree no commit reaches is still checked.
        let err = check(&[], &[d]).unwrap_err();
        assert!(err.to_string().contains("holds x: mode 6777"), "{err}");
    }
}
