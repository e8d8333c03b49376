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
