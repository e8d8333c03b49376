//! A project git brought without a store (`dvx.lock` and `.dvx/config.toml` committed,
//! `.dvx/db` not): what status can say from `dvx.lock` alone. Readers open such a project on
//! an empty stand-in store (`Repo::open`), so every other read answers as for an empty store
//! or says that nothing is fetched yet.

use crate::error::Result;
use crate::lockfile::LockFile;
use crate::object::EntryKind;
use crate::ops::Status;
use crate::repo::Repo;
use crate::Progress;

impl Repo {
    /// Status of a project without a store: what dvx.lock tracks, which of it is here, and
    /// which files differ from what it pins (folders are compared once their trees are
    /// fetched).
    pub(crate) fn status_from_lock(&self, progress: &dyn Progress) -> Result<Status> {
        let lock = LockFile::read(&self.root)?;
        let mut st = Status {
            branch: None,
            head: None,
            tracked: Vec::new(),
            modified: Vec::new(),
            deleted: Vec::new(),
            new: Vec::new(),
            clean: true,
            lock_commit: lock.as_ref().map(|l| l.commit),
            lock_fetched: false,
            fetched: false,
            not_here: Vec::new(),
        };
        let Some(lock) = lock else {
            return Ok(st);
        };
        for (path, locked) in &lock.paths {
            st.tracked.push(path.clone());
            if self.root.join(path).symlink_metadata().is_err() {
                st.not_here.push(path.clone());
                continue;
            }
            if locked.kind != EntryKind::Dir {
                let found = self.workspace(std::slice::from_ref(path), progress)?;
                if found.get(path).map(|f| f.id) != Some(locked.id) {
                    st.modified.push(path.clone());
                }
            }
        }
        st.clean = st.modified.is_empty();
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Access, Quiet, Repo, StoreError};

    /// What git brings of a project: its settings and dvx.lock, without `.dvx/db`.
    #[test]
    fn readers_use_a_stand_in_and_writers_create_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir(&root).unwrap();
        Repo::init(&root).unwrap();
        std::fs::write(root.join("a.txt"), "a\n").unwrap();
        let id = {
            let repo = Repo::open(&root, Access::Write("test")).unwrap();
            repo.add(&["a.txt".into()], None, &Quiet).unwrap().commit
        };
        for p in ["db", "packs", "tmp", "lock"] {
            let p = root.join(".dvx").join(p);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        std::fs::remove_file(root.join("a.txt")).unwrap();

        let repo = Repo::open(&root, Access::Read).unwrap();
        assert!(repo.nothing_fetched());
        let st = repo.status(&Quiet).unwrap();
        assert!(!st.fetched);
        assert_eq!(st.lock_commit, id);
        assert_eq!(st.not_here, vec!["a.txt".to_string()]);
        assert!(matches!(
            repo.store.resolve("HEAD"),
            Err(StoreError::NothingFetched { .. })
        ));
        assert!(matches!(
            repo.checked_lock(),
            Err(StoreError::NothingFetched { pinned }) if pinned == id
        ));
        drop(repo);
        assert!(!root.join(".dvx/db").exists(), "a reader created the store");

        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        assert!(!repo.nothing_fetched() && root.join(".dvx/db").exists());
        // The commit dvx.lock pins is not here: a pull, not a hand edit.
        assert!(matches!(
            repo.checked_lock(),
            Err(StoreError::PinnedNotFetched(c)) if Some(c) == id
        ));
    }
}
