//! A dvx project: its folders, settings, store, writer lock, and the commit/lock-file plumbing
//! every writing command shares.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::db::Db;
use crate::error::{IoContext, Result, StoreError};
use crate::gitutil;
use crate::id::Id;
use crate::lock::WriterLock;
use crate::lockfile::{LockFile, LockedPath, LOCK_VERSION};
use crate::object::{Commit, EntryKind, Person};
use crate::refs::{Head, DEFAULT_BRANCH};
use crate::store::{Store, Txn};
use crate::worktree;

pub const DOT: &str = ".dvx";

/// Key in the `meta` column family naming a commit whose dvx.lock is not written yet. It is
/// set in the same batch that moves HEAD and cleared once dvx.lock is rewritten, so a command
/// killed in between is finished by the next one instead of being mistaken for a hand edit.
pub const LOCK_PENDING: &[u8] = b"lock-pending";

/// How a command needs the project.
#[derive(Clone, Copy, Debug)]
pub enum Access<'a> {
    /// Never blocks, never writes.
    Read,
    /// Takes the writer lock (waiting briefly), then opens the database for writing.
    Write(&'a str),
    /// Writes if no one else is (to persist caches), otherwise reads.
    ReadOrWrite(&'a str),
    /// Like `Write`, after a damaged write-ahead log: keeps what precedes the damage
    /// (`dvx fsck --recover`).
    Salvage(&'a str),
}

pub struct Repo {
    pub root: PathBuf,
    pub dot: PathBuf,
    pub config: Config,
    /// Shared with the views of this project (`Repo::view`).
    pub store: Arc<Store>,
    lock: Option<Arc<WriterLock>>,
    /// Set when the project has no store yet (a fresh `git clone`) and a reader opened it:
    /// an empty store in a temporary folder stands in, so reads answer as for an empty store
    /// and nothing is written into the project. Declared after `store`, so the database is
    /// closed before its folder is removed.
    stand_in: Option<StandIn>,
    /// Never take the writer lock, not even briefly to save fresh hashes (`dvx serve`: many
    /// readers must never keep a `dvx run` from starting).
    pub(crate) observer: bool,
    /// Set on a view (`Repo::view`): the ref its commits advance instead of HEAD.
    view: Option<String>,
}

/// A temporary folder removed when dropped.
struct StandIn(PathBuf);

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What `init` did.
pub struct InitReport {
    pub root: PathBuf,
    pub git: Option<PathBuf>,
}

impl Repo {
    /// The project containing `start` (walking up like git).
    pub fn find_root(start: &Path) -> Result<PathBuf> {
        let mut cur = Some(start);
        while let Some(dir) = cur {
            if dir.join(DOT).join("config.toml").is_file() {
                return Ok(dir.to_path_buf());
            }
            cur = dir.parent();
        }
        Err(StoreError::NotAProject(start.to_path_buf()))
    }

    pub fn init(dir: &Path) -> Result<InitReport> {
        let dot = dir.join(DOT);
        if dot.join("config.toml").exists() {
            return Err(StoreError::AlreadyInitialized(dir.to_path_buf()));
        }
        fs::create_dir_all(&dot).at(&dot)?;
        {
            let _lock = WriterLock::acquire(&dot, "dvx init", Duration::from_secs(3))?;
            Self::create_store(&dot)?;
        }
        // The config file marks the project as ready, so it is written last.
        crate::fsutil::write_atomic(
            &dot.join("config.toml"),
            Config::default().to_toml().as_bytes(),
            &dot.join("tmp"),
        )?;
        Ok(InitReport {
            root: dir.to_path_buf(),
            git: gitutil::git_workdir(dir),
        })
    }

    /// Make an empty store (on branch `main`, no commits) in `dot`: by `init`, and by the
    /// first writing command in a project that git brought without one. The caller holds the
    /// writer lock.
    fn create_store(dot: &Path) -> Result<()> {
        fs::create_dir_all(dot.join("tmp")).at(dot)?;
        fs::create_dir_all(dot.join("packs")).at(dot)?;
        if !dot.join(".gitignore").exists() {
            gitutil::write_internal_gitignore(dot)?;
        }
        Self::init_db(&dot.join("db"), &dot.join("packs"))?;
        Ok(())
    }

    fn init_db(db_path: &Path, packs: &Path) -> Result<Store> {
        let db = Db::open(db_path)?;
        let store = Store::new(db, packs);
        let txn = store.txn()?;
        txn.set_head(&Head::Branch(DEFAULT_BRANCH.into()));
        txn.put(crate::db::CF_META, b"format", b"1");
        crate::lineage::mark_indexed(&txn);
        txn.commit()?;
        Ok(store)
    }

    /// Whether the project has a store. A project git brought (dvx.lock and
    /// `.dvx/config.toml` committed, `.dvx/db` ignored) has none until a command writes.
    pub fn has_store(root: &Path) -> bool {
        root.join(DOT).join("db").exists()
    }

    /// Whether this handle reads a stand-in for a store that does not exist yet.
    pub fn nothing_fetched(&self) -> bool {
        self.stand_in.is_some()
    }

    /// The error for a question only fetched data can answer.
    pub fn nothing_fetched_error(&self) -> StoreError {
        StoreError::NothingFetched {
            pinned: LockFile::read(&self.root).ok().flatten().map(|l| l.commit),
        }
    }

    /// A reader's view of a project without a store: an empty one in a temporary folder.
    fn open_stand_in(root: PathBuf, dot: PathBuf, config: Config) -> Result<Repo> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = std::env::temp_dir().join(format!("dvx-unfetched-{}-{n}", std::process::id()));
        let guard = StandIn(tmp.clone());
        fs::create_dir_all(tmp.join("packs")).at(&tmp)?;
        let mut store = Self::init_db(&tmp.join("db"), &tmp.join("packs"))?;
        store.nothing_fetched = true;
        Ok(Repo {
            store: Arc::new(store),
            root,
            dot,
            config,
            lock: None,
            stand_in: Some(guard),
            observer: false,
            view: None,
        })
    }

    pub fn open(start: &Path, access: Access) -> Result<Repo> {
        let root = Self::find_root(start)?;
        let dot = root.join(DOT);
        let config = Config::load(&dot.join("config.toml"))?;
        // Readers never create the store: they answer from dvx.lock and an empty stand-in.
        // (`.dvx/db` missing altogether means never created; a folder without its files is
        // damage, which the open below reports.)
        let fresh = !Self::has_store(&root);
        if fresh && matches!(access, Access::Read | Access::ReadOrWrite(_)) {
            return Self::open_stand_in(root, dot, config);
        }
        let wait = crate::limits::env_f64("DVX_LOCK_WAIT", crate::limits::LOCK_WAIT_SECS)?
            .unwrap_or(config.core.lock_wait_secs);
        // Both sources are range-checked, so this cannot panic.
        let wait = Duration::from_secs_f64(wait);
        let lock = match access {
            Access::Read => None,
            Access::Write(cmd) | Access::Salvage(cmd) => {
                Some(WriterLock::acquire(&dot, cmd, wait)?)
            }
            Access::ReadOrWrite(cmd) => WriterLock::try_acquire(&dot, cmd, Duration::ZERO)?,
        };
        let db_path = dot.join("db");
        if fresh && !Self::has_store(&root) {
            Self::create_store(&dot)?;
        }
        let (db, lock) = match lock {
            Some(l) if matches!(access, Access::Salvage(_)) => {
                (Db::open_salvaging(&db_path)?, Some(l))
            }
            Some(l) => match Db::open(&db_path) {
                Ok(db) => (db, Some(l)),
                // A full disk must not stop reading: fall back when writing was optional.
                Err(StoreError::DiskFull(_)) if matches!(access, Access::ReadOrWrite(_)) => {
                    drop(l);
                    (Db::open_read_only(&db_path)?, None)
                }
                Err(e) => return Err(e),
            },
            None => (Db::open_read_only(&db_path)?, None),
        };
        let mut store = Store::new(db, &dot.join("packs"));
        store.compress_large = config.core.compression == "all";
        store.compress_small = config.core.compression != "none";
        store.direct_io = config.core.direct_io;
        let repo = Repo {
            store: Arc::new(store),
            lock: lock.map(Arc::new),
            root,
            dot,
            config,
            stand_in: None,
            observer: false,
            view: None,
        };
        if repo.lock.is_some() {
            repo.clean_tmp();
            // A command killed between moving HEAD and rewriting dvx.lock is finished here.
            if let Ok(Some(lock)) = LockFile::read(&repo.root) {
                repo.finish_interrupted_lock(&lock)?;
            }
        }
        Ok(repo)
    }

    /// A second handle that writes, if the writer lock is free right now. Used by readers to
    /// persist caches; only possible while the reader's own database handle is read-only,
    /// which RocksDB allows beside one writer.
    pub fn try_writer(root: &Path, cmd: &str) -> Result<Option<Repo>> {
        match Repo::open(root, Access::ReadOrWrite(cmd)) {
            Ok(r) if r.can_write() => Ok(Some(r)),
            Ok(_) => Ok(None),
            Err(StoreError::DiskFull(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A reader that never writes, not even the stat cache: hashes it computes are used and
    /// forgotten. For long-running readers whose requests must never hold the writer lock.
    pub fn observer(mut self) -> Repo {
        self.observer = true;
        self
    }

    /// The same store seen from another workspace folder (an experiment's copy of the
    /// project), whose commits advance `reference` (a full ref name such as
    /// `refs/exps/NAME`, which must exist) and never HEAD, dvx.lock's pending marker, the
    /// stat cache of the project's own files, or the project's `.gitignore`. It writes under
    /// this handle's writer lock, so only a writer has views.
    pub fn view(&self, root: PathBuf, reference: &str) -> Result<Repo> {
        if self.lock.is_none() {
            return Err(StoreError::Db(format!(
                "a view of {} needs the writer lock",
                self.root.display()
            )));
        }
        if self.store.ref_target(reference)?.is_none() {
            return Err(StoreError::UnknownRevision(reference.into()));
        }
        Ok(Repo {
            root,
            dot: self.dot.clone(),
            config: self.config.clone(),
            store: self.store.clone(),
            lock: self.lock.clone(),
            stand_in: None,
            observer: false,
            view: Some(reference.into()),
        })
    }

    /// The ref a view's commits advance (`Repo::view`); None for the project itself.
    pub fn view_ref(&self) -> Option<&str> {
        self.view.as_deref()
    }

    pub fn can_write(&self) -> bool {
        self.lock.is_some()
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.dot.join("tmp")
    }

    /// Temp files left by a killed writer are never trusted; remove them.
    fn clean_tmp(&self) {
        crate::fsutil::empty_dir(&self.tmp_dir());
    }

    pub fn author(&self) -> Person {
        let env = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
        let (gname, gemail) = gitutil::git_user(&self.root);
        let user = env("USER").unwrap_or_else(|| "unknown".into());
        let host = crate::fsutil::hostname();
        Person {
            name: env("DVX_AUTHOR_NAME")
                .or_else(|| self.config.user.name.clone())
                .or(gname)
                .unwrap_or_else(|| user.clone()),
            email: env("DVX_AUTHOR_EMAIL")
                .or_else(|| self.config.user.email.clone())
                .or(gemail)
                .unwrap_or_else(|| format!("{user}@{host}")),
        }
    }

    /// HEAD, its commit id, and the commit itself.
    pub fn head_state(&self) -> Result<(Head, Option<Id>, Option<Commit>)> {
        let (head, id) = match &self.view {
            // A view's tip stands for HEAD; `new_commit` moves the view's ref, not HEAD.
            Some(r) => {
                let id = self
                    .store
                    .ref_target(r)?
                    .ok_or_else(|| StoreError::UnknownRevision(r.clone()))?;
                (Head::Detached(id), Some(id))
            }
            None => (self.store.head()?, self.store.head_commit()?),
        };
        let commit = match &id {
            Some(id) => Some(self.store.get_commit(id)?),
            None => None,
        };
        Ok((head, id, commit))
    }

    /// Record a commit on top of HEAD inside `txn` and move HEAD's branch to it.
    pub fn new_commit(
        &self,
        txn: &Txn,
        tree: Id,
        roots: Vec<String>,
        message: String,
        runs: Vec<Id>,
    ) -> Result<(Id, Commit)> {
        let (head, parent, _) = self.head_state()?;
        let commit = Commit {
            author: self.author(),
            git: gitutil::git_info(&self.root),
            message,
            parents: parent.into_iter().collect(),
            roots,
            runs,
            time: chrono::Utc::now().timestamp(),
            tree,
            version: 1,
        };
        let id = txn.put_commit(&commit);
        match &self.view {
            Some(r) => txn.set_ref(r, &id),
            None => {
                txn.advance_head(&head, &id);
                txn.put(crate::db::CF_META, LOCK_PENDING, id.to_hex().as_bytes());
            }
        }
        Ok((id, commit))
    }

    /// The lock file describing `commit`, keeping sections other crates wrote.
    pub fn lock_for(&self, id: &Id, commit: &Commit) -> Result<LockFile> {
        let mut paths = std::collections::BTreeMap::new();
        for r in &commit.roots {
            if let Some(f) = worktree::lookup(&self.store, &commit.tree, r)? {
                paths.insert(
                    r.clone(),
                    LockedPath {
                        kind: f.kind,
                        id: f.id,
                        size: f.size,
                    },
                );
            }
        }
        let other = match LockFile::read(&self.root) {
            Ok(Some(old)) => old.other,
            _ => Default::default(),
        };
        Ok(LockFile {
            version: LOCK_VERSION,
            commit: *id,
            paths,
            other,
        })
    }

    /// Rewrite dvx.lock for `commit` and keep the data paths out of git (paths `previous`
    /// tracked and `commit` does not leave .gitignore).
    pub fn write_lock(&self, id: &Id, commit: &Commit, previous: Option<&Commit>) -> Result<()> {
        crate::fsutil::fault_point("before-lock");
        let untracked: Vec<&String> = previous
            .map(|p| {
                p.roots
                    .iter()
                    .filter(|r| !commit.roots.contains(r))
                    .collect()
            })
            .unwrap_or_default();
        self.lock_for(id, commit)?
            .write(&self.root, &self.tmp_dir())?;
        if self.view.is_some() {
            // A view's folder lies inside the project: its git and pending marker are the
            // project's, not the view's.
            return Ok(());
        }
        if let Some(git_root) = gitutil::git_workdir(&self.root) {
            let prefix = self
                .root
                .strip_prefix(&git_root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let rel = |r: &String| crate::paths::join(&prefix, r);
            let add: Vec<String> = commit.roots.iter().map(rel).collect();
            let rm: Vec<String> = untracked.into_iter().map(rel).collect();
            gitutil::update_gitignore(&git_root, &add, &rm, &self.tmp_dir())?;
        }
        if self
            .store
            .db
            .get(crate::db::CF_META, LOCK_PENDING)?
            .is_some()
        {
            let txn = self.store.txn()?;
            txn.delete(crate::db::CF_META, LOCK_PENDING);
            txn.commit()?;
        }
        Ok(())
    }

    /// The commit a killed command moved HEAD to without rewriting dvx.lock, if that is the
    /// state now.
    fn interrupted_lock(&self, lock: &LockFile) -> Result<Option<Id>> {
        let Some(v) = self.store.db.get(crate::db::CF_META, LOCK_PENDING)? else {
            return Ok(None);
        };
        let pending = String::from_utf8_lossy(&v).parse::<Id>().ok();
        let head = self.store.head_commit()?;
        Ok(pending.filter(|p| Some(*p) == head && *p != lock.commit))
    }

    /// Finish what a killed command left: rewrite dvx.lock for the commit it had made. A
    /// reader has it done by a second, writing handle (which finishes it as it opens) when no
    /// one else writes, and otherwise answers from HEAD meanwhile.
    fn finish_interrupted_lock(&self, lock: &LockFile) -> Result<Option<LockFile>> {
        let Some(id) = self.interrupted_lock(lock)? else {
            return Ok(None);
        };
        let commit = self.store.get_commit(&id)?;
        if !self.can_write() {
            return match Repo::try_writer(&self.root, "dvx (finishing dvx.lock)")? {
                Some(_) => LockFile::read(&self.root),
                None => self.lock_for(&id, &commit).map(Some),
            };
        }
        let previous = self.store.get_commit(&lock.commit).ok();
        self.write_lock(&id, &commit, previous.as_ref())?;
        eprintln!(
            "note: an interrupted command had committed {} without rewriting dvx.lock; rewrote it",
            id.short()
        );
        LockFile::read(&self.root)
    }

    /// Read dvx.lock and check it says what its commit says. `Ok(None)` if there is none.
    pub fn checked_lock(&self) -> Result<Option<LockFile>> {
        let Some(mut lock) = LockFile::read(&self.root)? else {
            return Ok(None);
        };
        if let Some(fixed) = self.finish_interrupted_lock(&lock)? {
            lock = fixed;
        }
        let path = LockFile::path(&self.root);
        let edited = |detail: String| StoreError::LockFileEdited {
            path: path.clone(),
            detail,
        };
        let commit = match self.store.get_commit(&lock.commit) {
            Ok(c) => c,
            Err(StoreError::MissingObject { .. }) if self.nothing_fetched() => {
                return Err(self.nothing_fetched_error())
            }
            // A commit not here is rarely a hand edit: git brought a dvx.lock newer than what
            // dvx fetched. A pull fetches it, and says so if the remote lacks it too.
            Err(StoreError::MissingObject { .. }) => {
                return Err(StoreError::PinnedNotFetched(lock.commit))
            }
            Err(e) => return Err(e),
        };
        let locked: Vec<&String> = lock.paths.keys().collect();
        let roots: Vec<&String> = commit.roots.iter().collect();
        if locked != roots {
            return Err(edited(format!(
                "it lists paths [{}] but commit {} tracks [{}]",
                lock.paths.keys().cloned().collect::<Vec<_>>().join(", "),
                lock.commit.short(),
                commit.roots.join(", ")
            )));
        }
        for (p, lp) in &lock.paths {
            let actual = worktree::lookup(&self.store, &commit.tree, p)?;
            match actual {
                Some(f) if f.id == lp.id && f.kind == lp.kind && f.size == lp.size => {}
                Some(f) => {
                    return Err(edited(format!(
                        "{p}: it says {} {} ({} bytes) but commit {} has {} {} ({} bytes)",
                        lp.kind.as_str(),
                        lp.id.short(),
                        lp.size,
                        lock.commit.short(),
                        f.kind.as_str(),
                        f.id.short(),
                        f.size
                    )))
                }
                None => {
                    return Err(edited(format!(
                        "{p}: not in commit {}",
                        lock.commit.short()
                    )))
                }
            }
        }
        Ok(Some(lock))
    }
}

/// Is this entry kind a leaf (file or symlink)?
pub fn is_leaf(k: EntryKind) -> bool {
    k != EntryKind::Dir
}
