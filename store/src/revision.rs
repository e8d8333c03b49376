//! Revisions as users write them: dvx's own (branches, tags, commit ids, `HEAD~2`) and git's
//! (a branch, tag or commit of the code), the latter through the dvx.lock that git revision
//! holds. A name both could mean is dvx's: dvx's names always meant dvx revisions, so a script
//! keeps its meaning when a git branch of the same name appears; `git:REV` asks for git's.

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::gitutil;
use crate::id::Id;
use crate::lockfile::{LockFile, LOCK_NAME};
use crate::repo::Repo;

/// The prefix that makes a revision git's even when dvx has one of that name.
pub const GIT_PREFIX: &str = "git:";

/// Where a revision was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum RevSource {
    /// A dvx branch, tag, commit id or HEAD expression.
    Dvx,
    /// A git revision; `git_commit` is the code commit whose dvx.lock pinned the data.
    Git { git_commit: String },
}

/// A revision and the dvx commit it names.
#[derive(Clone, Debug, Serialize)]
pub struct Resolved {
    /// As the user wrote it.
    pub revision: String,
    /// The dvx commit.
    pub commit: Id,
    #[serde(flatten)]
    pub source: RevSource,
    /// Set when dvx's revision won over a git revision of the same name that pins another
    /// dvx commit (the one given here).
    pub git_pins: Option<Id>,
}

impl Resolved {
    /// A line telling which meaning was taken, when that is worth saying: a git revision, or
    /// a dvx one that shadowed a different git one.
    pub fn note(&self) -> Option<String> {
        match (&self.source, self.git_pins) {
            (RevSource::Git { git_commit }, _) => Some(format!(
                "{} is the git revision {}; its dvx.lock pins dvx commit {}",
                self.revision,
                &git_commit[..git_commit.len().min(12)],
                self.commit.short()
            )),
            (RevSource::Dvx, Some(other)) => Some(format!(
                "{} is dvx commit {} (dvx's revisions win; the git revision of that name pins {}: write git:{} for it)",
                self.revision,
                self.commit.short(),
                other.short(),
                self.revision
            )),
            (RevSource::Dvx, None) => None,
        }
    }
}

impl Repo {
    /// Resolve `rev` as dvx's revision, else as git's (through its dvx.lock). `git:REV` is
    /// git's only. Unknown to both: dvx's error (unknown revision, or nothing fetched yet).
    pub fn resolve_rev(&self, rev: &str) -> Result<Resolved> {
        if let Some(g) = rev.strip_prefix(GIT_PREFIX) {
            return match self.git_pin(g)? {
                Some((git_commit, commit)) => Ok(Resolved {
                    revision: rev.to_string(),
                    commit,
                    source: RevSource::Git { git_commit },
                    git_pins: None,
                }),
                None => Err(StoreError::UnknownRevision(rev.to_string())),
            };
        }
        match self.store.resolve(rev) {
            Ok(commit) => {
                // Only worth a look when git could mean something else by the same name.
                // HEAD is "now" to both; that they differ mid-work is no news.
                let now = rev == "HEAD" || rev == "@";
                let git_pins = (!now)
                    .then(|| self.git_pin(rev))
                    .and_then(|r| r.ok())
                    .flatten()
                    .map(|(_, pin)| pin)
                    .filter(|pin| *pin != commit);
                Ok(Resolved {
                    revision: rev.to_string(),
                    commit,
                    source: RevSource::Dvx,
                    git_pins,
                })
            }
            Err(e @ (StoreError::UnknownRevision(_) | StoreError::NothingFetched { .. })) => {
                match self.git_pin(rev)? {
                    Some((git_commit, commit)) => Ok(Resolved {
                        revision: rev.to_string(),
                        commit,
                        source: RevSource::Git { git_commit },
                        git_pins: None,
                    }),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The git commit `rev` names and the dvx commit its dvx.lock pins; `None` when git does
    /// not know `rev` (or there is no git). A git revision without dvx.lock, or one whose
    /// pinned commit is not fetched, is an error of its own.
    fn git_pin(&self, rev: &str) -> Result<Option<(String, Id)>> {
        let Some(git_commit) = gitutil::git_commit_of(&self.root, rev) else {
            return Ok(None);
        };
        let Some(bytes) = gitutil::blob_at(&self.root, &git_commit, LOCK_NAME) else {
            return Err(StoreError::NoLockAtGitRev {
                rev: rev.to_string(),
                git_commit,
            });
        };
        let at = format!("{rev}:{LOCK_NAME}");
        let lock = LockFile::parse(std::path::Path::new(&at), &bytes)?;
        if !self
            .store
            .has_object(crate::db::ObjKind::Commit, &lock.commit)?
        {
            return Err(if self.nothing_fetched() {
                self.nothing_fetched_error()
            } else {
                StoreError::PinnedNotFetched(lock.commit)
            });
        }
        Ok(Some((git_commit, lock.commit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Quiet};

    /// A git repository holding a dvx project; `git_commit` commits every file as git sees it.
    struct Both {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        git: git2::Repository,
    }

    impl Both {
        fn new() -> Both {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("proj");
            std::fs::create_dir(&root).unwrap();
            let git = git2::Repository::init(&root).unwrap();
            Repo::init(&root).unwrap();
            Both {
                _dir: dir,
                root,
                git,
            }
        }

        fn add(&self, content: &str) -> Id {
            std::fs::write(self.root.join("data.txt"), content).unwrap();
            let repo = Repo::open(&self.root, Access::Write("test")).unwrap();
            repo.add(&["data.txt".into()], None, &Quiet)
                .unwrap()
                .commit
                .unwrap()
        }

        fn git_commit(&self, tag: &str) {
            let mut index = self.git.index().unwrap();
            index
                .add_all(
                    ["dvx.lock", ".gitignore"],
                    git2::IndexAddOption::DEFAULT,
                    None,
                )
                .unwrap();
            index.write().unwrap();
            let tree = self.git.find_tree(index.write_tree().unwrap()).unwrap();
            let sig = git2::Signature::now("t", "t@example.com").unwrap();
            let parent = self.git.head().ok().and_then(|h| h.peel_to_commit().ok());
            let parents: Vec<&git2::Commit> = parent.iter().collect();
            let id = self
                .git
                .commit(Some("HEAD"), &sig, &sig, tag, &tree, &parents)
                .unwrap();
            let obj = self.git.find_object(id, None).unwrap();
            self.git.tag_lightweight(tag, &obj, false).unwrap();
        }

        fn repo(&self) -> Repo {
            Repo::open(&self.root, Access::Read).unwrap()
        }
    }

    #[test]
    fn a_git_revision_is_read_through_its_dvx_lock() {
        let b = Both::new();
        let first = b.add("one\n");
        b.git_commit("g1");
        let second = b.add("two\n");
        b.git_commit("g2");
        let r = b.repo().resolve_rev("g1").unwrap();
        assert_eq!(r.commit, first);
        assert!(matches!(r.source, RevSource::Git { ref git_commit } if git_commit.len() == 40));
        assert!(r.note().unwrap().starts_with("g1 is the git revision "));
        // git's HEAD~1 is g1; dvx's HEAD~1 is also `first`: no shadowing to report.
        let r = b.repo().resolve_rev("HEAD~1").unwrap();
        assert_eq!(
            (r.commit, r.source.clone(), r.git_pins),
            (first, RevSource::Dvx, None)
        );
        assert_eq!(b.repo().resolve_rev("git:g2").unwrap().commit, second);
    }

    #[test]
    fn a_name_both_know_is_dvx_s_and_says_what_git_meant() {
        let b = Both::new();
        let first = b.add("one\n");
        b.git_commit("v1");
        let second = b.add("two\n");
        let repo = Repo::open(&b.root, Access::Write("test")).unwrap();
        repo.create_ref("tag", "v1", None).unwrap();
        drop(repo);
        let r = b.repo().resolve_rev("v1").unwrap();
        assert_eq!((r.commit, r.source.clone()), (second, RevSource::Dvx));
        assert_eq!(r.git_pins, Some(first));
        assert!(r.note().unwrap().contains("write git:v1 for it"));
        let r = b.repo().resolve_rev("git:v1").unwrap();
        assert_eq!(r.commit, first);
    }

    #[test]
    fn unknown_to_both_and_git_revisions_without_dvx_lock() {
        let b = Both::new();
        // A git commit from before dvx: no dvx.lock in it.
        std::fs::write(b.root.join("README"), "hi\n").unwrap();
        let mut index = b.git.index().unwrap();
        index.add_path(std::path::Path::new("README")).unwrap();
        let tree = b.git.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        b.git
            .commit(Some("refs/heads/old"), &sig, &sig, "old", &tree, &[])
            .unwrap();
        b.add("one\n");
        let repo = b.repo();
        assert!(matches!(
            repo.resolve_rev("nope"),
            Err(StoreError::UnknownRevision(r)) if r == "nope"
        ));
        assert!(matches!(
            repo.resolve_rev("old"),
            Err(StoreError::NoLockAtGitRev { ref rev, .. }) if rev == "old"
        ));
        assert!(matches!(
            repo.resolve_rev("git:nope"),
            Err(StoreError::UnknownRevision(_))
        ));
    }
}
