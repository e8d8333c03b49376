//! What users do with remotes beyond push and fetch: configure them, pull, clone, and see
//! what is not pushed yet.

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::fetch::{FetchReport, Want};
use super::push::PushOptions;
use super::{parse_url, Project, Remote, RemoteErrorKind, SyncStatus};
use crate::error::{RemoteError, Result};
use dvx_store::checkout::CheckoutReport;
use dvx_store::config::RemoteConfig;
use dvx_store::error::IoContext;
use dvx_store::id::Id;
use dvx_store::refs::{Head, HEADS, REMOTES};
use dvx_store::repo::{Access, Repo};
use dvx_store::Progress;
use dvx_store::StoreError;

#[derive(Debug, Serialize)]
pub struct PullReport {
    pub fetch: FetchReport,
    pub branch: String,
    /// fast-forward, up to date, or ahead (local has commits the remote lacks)
    pub status: SyncStatus,
    pub checkout: Option<CheckoutReport>,
    /// Set when a first pull checked out what dvx.lock pins, which is not the branch's tip
    /// (the code git has checked out is older than the remote's data).
    pub pinned: Option<Id>,
}

/// What `clone` brings: the branch to check out (default: the remote's), whether to check out
/// at all, and whether the run cache comes along.
#[derive(Clone, Debug, Default)]
pub struct CloneOptions {
    pub branch: Option<String>,
    pub no_checkout: bool,
    pub run_cache: bool,
}

#[derive(Debug, Serialize)]
pub struct CloneReport {
    pub root: String,
    pub fetch: FetchReport,
    pub branch: Option<String>,
    pub checkout: Option<CheckoutReport>,
}

#[derive(Debug, Serialize)]
pub struct RemoteStatus {
    pub remote: String,
    pub url: String,
    pub branches: Vec<BranchStatus>,
    /// Objects (and their stored bytes) a push of these branches would upload.
    pub objects_to_push: u64,
    pub bytes_to_push: u64,
}

#[derive(Debug, Serialize)]
pub struct BranchStatus {
    pub branch: String,
    pub local: Id,
    pub remote: Option<Id>,
    /// up to date, ahead, behind, diverged, not pushed, or unknown (the remote's commit is
    /// not here: fetch)
    pub state: SyncStatus,
}

fn check_remote_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(RemoteError::Store(StoreError::InvalidRefName {
            name: name.to_string(),
            what: "remote",
        }))
    }
}

impl Project<'_> {
    fn save_config(&self, cfg: &dvx_store::config::Config) -> Result<()> {
        Ok(dvx_store::fsutil::write_atomic(
            &self.dot.join("config.toml"),
            cfg.to_toml().as_bytes(),
            &self.tmp_dir(),
        )?)
    }

    /// Add (or with `replace`, change) a remote. The first remote becomes the default.
    pub fn add_remote(&self, name: &str, rc: RemoteConfig, replace: bool) -> Result<()> {
        check_remote_name(name)?;
        let (scheme, _, _) = parse_url(&rc.url)?;
        super::check_endpoint(name, &scheme, &rc)?;
        let mut cfg = self.config.clone();
        if cfg.remote.contains_key(name) && !replace {
            return Err(RemoteError::Remote {
                remote: name.to_string(),
                message: "already exists".into(),
                kind: RemoteErrorKind::Config,
            });
        }
        cfg.remote.insert(name.to_string(), rc);
        if cfg.core.remote.is_none() {
            cfg.core.remote = Some(name.to_string());
        }
        self.save_config(&cfg)
    }

    /// Forget a remote and the refs fetched from it.
    pub fn remove_remote(&self, name: &str) -> Result<()> {
        let mut cfg = self.config.clone();
        if cfg.remote.remove(name).is_none() {
            return Err(RemoteError::Store(StoreError::UnknownRemote(
                name.to_string(),
            )));
        }
        if cfg.core.remote.as_deref() == Some(name) {
            cfg.core.remote = None;
        }
        let txn = self.store.txn()?;
        for (r, _) in self.store.list_refs(&format!("{REMOTES}{name}/"))? {
            txn.delete_ref(&format!("{REMOTES}{name}/{r}"));
        }
        txn.commit()?;
        let cache = self.dot.join("remotes").join(name);
        if cache.exists() {
            fs::remove_dir_all(&cache).at(&cache)?;
        }
        self.save_config(&cfg)
    }

    pub fn set_default_remote(&self, name: &str) -> Result<()> {
        if !self.config.remote.contains_key(name) {
            return Err(RemoteError::Store(StoreError::UnknownRemote(
                name.to_string(),
            )));
        }
        let mut cfg = self.config.clone();
        cfg.core.remote = Some(name.to_string());
        self.save_config(&cfg)
    }

    /// HEAD is on no branch: say which branches end at its commit, to get on one.
    pub(crate) fn detached(&self, commit: Id, push: bool) -> RemoteError {
        let branches = self
            .store
            .list_refs(HEADS)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, id)| *id == commit)
            .map(|(n, _)| n)
            .collect();
        RemoteError::Detached {
            commit,
            branches,
            push,
        }
    }

    /// The branch a pull or status is about: the named one or HEAD's.
    fn current_branch(&self, branch: Option<&str>) -> Result<String> {
        match branch {
            Some(b) => Ok(b.to_string()),
            None => match self.store.head()? {
                Head::Branch(b) => Ok(b),
                Head::Detached(commit) => Err(self.detached(commit, false)),
            },
        }
    }

    /// Fetch a branch (only `paths` of it, if given) and bring the workspace to it: a
    /// fast-forward of the local branch. A local branch with commits of its own is left
    /// alone (ahead) or refused (diverged).
    pub fn pull(
        &self,
        remote: &Remote,
        branch: Option<&str>,
        paths: &[String],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<PullReport> {
        // The first pull into a store git brought without one (a fresh `git clone`) brings
        // what dvx.lock pins, on the branch that goes with the code.
        let pinned = self.first_pull_pin(paths)?;
        let branch = match (branch, pinned) {
            (None, Some(_)) => self.first_pull_branch(remote)?,
            _ => self.current_branch(branch)?,
        };
        let fetch = self.fetch(
            remote,
            &Want::Branch {
                branch: branch.clone(),
                paths: paths.to_vec(),
            },
            progress,
        )?;
        let tracking = format!("{HEADS}{branch}");
        let target = match self
            .store
            .ref_target(&format!("{REMOTES}{}/{branch}", remote.name))?
        {
            Some(t) => t,
            None => fetch
                .refs
                .iter()
                .find(|r| r.name.ends_with(&format!("/{branch}")))
                .map(|r| r.new)
                .ok_or_else(|| RemoteError::Remote {
                    remote: remote.name.clone(),
                    message: format!("the remote has no branch {branch:?}"),
                    kind: RemoteErrorKind::NotFound,
                })?,
        };
        let local = self.store.ref_target(&tracking)?;
        let on_branch = matches!(self.store.head()?, Head::Branch(ref b) if *b == branch);
        let status = match local {
            Some(l) if l == target => SyncStatus::UpToDate,
            None => SyncStatus::FastForward,
            Some(l) if self.store.is_ancestor(&l, &target)? => SyncStatus::FastForward,
            Some(l) if self.store.is_ancestor(&target, &l)? => SyncStatus::Ahead,
            Some(l) => {
                return Err(RemoteError::Remote {
                    remote: remote.name.clone(),
                    message: format!(
                        "branch {branch} ({}) and the remote's ({}) have diverged",
                        l.short(),
                        target.short()
                    ),
                    kind: RemoteErrorKind::Diverged,
                })
            }
        };
        let pinned = pinned.filter(|p| *p != target);
        let checkout = if let Some(pin) = pinned {
            Some(self.checkout_pinned(remote, &branch, target, pin, force, progress)?)
        } else if status == SyncStatus::Ahead {
            None
        } else if on_branch || local.is_none() {
            Some(self.checkout_to(
                target,
                Some(Head::Branch(branch.clone())),
                paths,
                force,
                progress,
            )?)
        } else {
            // Another branch is checked out: move the pulled one, leave the workspace.
            let txn = self.store.txn()?;
            txn.set_ref(&tracking, &target);
            txn.commit()?;
            None
        };
        Ok(PullReport {
            fetch,
            branch,
            status,
            checkout,
            pinned,
        })
    }

    /// The commit dvx.lock pins, when this store has no commit yet and the whole workspace is
    /// wanted: a store made lazily in a project git brought.
    fn first_pull_pin(&self, paths: &[String]) -> Result<Option<Id>> {
        if !paths.is_empty() || self.store.head_commit()?.is_some() {
            return Ok(None);
        }
        Ok(dvx_store::lockfile::LockFile::read(&self.root)?.map(|l| l.commit))
    }

    /// The branch a first pull follows: the one named like git's current branch if the
    /// remote has it, else HEAD's (`main`) if it has that, else the remote's default.
    fn first_pull_branch(&self, remote: &Remote) -> Result<String> {
        let (refs, head) = remote.list_refs()?;
        let has = |b: &str| refs.iter().any(|(n, _)| *n == format!("{HEADS}{b}"));
        let ours = match self.store.head()? {
            Head::Branch(b) => Some(b),
            Head::Detached(_) => None,
        };
        [dvx_store::gitutil::git_branch(&self.root), ours, head]
            .into_iter()
            .flatten()
            .find(|b| has(b))
            .map_or_else(|| self.current_branch(None), Ok)
    }

    /// A first pull whose dvx.lock pins another commit than the branch's tip (the code is
    /// older than the data): the branch goes to the remote's tip, the workspace to the pin.
    fn checkout_pinned(
        &self,
        remote: &Remote,
        branch: &str,
        tip: Id,
        pin: Id,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<CheckoutReport> {
        if !self
            .store
            .has_object(dvx_store::db::ObjKind::Commit, &pin)?
        {
            return Err(RemoteError::Remote {
                remote: remote.name.clone(),
                message: format!(
                    "dvx.lock pins commit {}, which the remote does not have (pushed from nowhere yet?)",
                    pin.short()
                ),
                kind: RemoteErrorKind::NotFound,
            });
        }
        self.fetch(
            remote,
            &Want::Commit {
                commit: pin,
                paths: Vec::new(),
            },
            progress,
        )?;
        let txn = self.store.txn()?;
        txn.set_ref(&format!("{HEADS}{branch}"), &tip);
        txn.commit()?;
        let head = match self.branch_at(&pin)? {
            Some(b) => Head::Branch(b),
            None => Head::Detached(pin),
        };
        Ok(self.checkout_to(pin, Some(head), &[], force, progress)?)
    }

    /// What a push of the current branch (or all branches) would send, and how each branch
    /// stands against the remote's.
    pub fn remote_status(&self, remote: &Remote, all: bool) -> Result<RemoteStatus> {
        // Nothing here to compare, and a reader must not start caching the remote's indexes.
        if self.nothing_fetched() {
            return Err(self.nothing_fetched_error().into());
        }
        let local = self.refs_to_push(&[], all)?;
        let mut branches = Vec::new();
        for (name, id) in &local {
            let Some(b) = name.strip_prefix(HEADS) else {
                continue;
            };
            let r = remote.read_ref(name)?.map(|s| s.commit);
            let state = match r {
                None => SyncStatus::NotPushed,
                Some(r) if r == *id => SyncStatus::UpToDate,
                Some(r) if !self.store.has_object(dvx_store::db::ObjKind::Commit, &r)? => {
                    SyncStatus::Unknown
                }
                Some(r) if self.store.is_ancestor(&r, id)? => SyncStatus::Ahead,
                Some(r) if self.store.is_ancestor(id, &r)? => SyncStatus::Behind,
                Some(_) => SyncStatus::Diverged,
            };
            branches.push(BranchStatus {
                branch: b.to_string(),
                local: *id,
                remote: r,
                state,
            });
        }
        let opts = PushOptions {
            all,
            dry_run: true,
            force: true,
            ..Default::default()
        };
        let idx = remote.load_index()?;
        let tips: Vec<Id> = self
            .refs_to_push(&opts.refs, all)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let runs = self.run_cache_records(remote)?;
        let plan = self.push_plan(&idx, &tips, &runs)?;
        Ok(RemoteStatus {
            remote: remote.name.clone(),
            url: remote.url.clone(),
            branches,
            objects_to_push: (plan.chunks.len() + plan.meta.len()) as u64,
            bytes_to_push: plan.chunk_bytes,
        })
    }
}

/// Clone a remote into `dir` (new or empty): a project whose remote `origin` is `rc`, with
/// the remote's default branch (or `branch`) checked out. A failed clone leaves no folder
/// behind.
pub fn clone(
    dir: &Path,
    rc: RemoteConfig,
    opts: &CloneOptions,
    progress: &dyn Progress,
) -> Result<CloneReport> {
    let existed = dir.exists();
    if existed && fs::read_dir(dir).at(dir)?.next().is_some() {
        // A git checkout of a dvx project: bring its data in place, as `dvx pull` would.
        if dir.join(dvx_store::lockfile::LOCK_NAME).is_file()
            || dir.join(dvx_store::repo::DOT).join("config.toml").is_file()
        {
            return clone_into_checkout(dir, rc, opts, progress);
        }
        return Err(RemoteError::Store(StoreError::InvalidPath {
            path: dir.display().to_string(),
            reason: "exists, is not empty and holds no dvx.lock (clone into a new folder, or into a git checkout of a dvx project)".into(),
        }));
    }
    let res = clone_into(dir, rc, opts, progress);
    if res.is_err() {
        if existed {
            dvx_store::fsutil::empty_dir(dir);
        } else {
            let _ = fs::remove_dir_all(dir);
        }
    }
    res
}

/// Clone into a folder that already holds a dvx project's files (a `git clone` with dvx.lock,
/// and usually `.dvx/config.toml`): the project keeps its files and settings; `origin` is
/// added if it has none, and must name the same URL if it has; then a pull brings what
/// dvx.lock pins. Nothing of the folder is removed if it fails; a `.dvx` made here is.
fn clone_into_checkout(
    dir: &Path,
    rc: RemoteConfig,
    opts: &CloneOptions,
    progress: &dyn Progress,
) -> Result<CloneReport> {
    let (branch, no_checkout, run_cache) =
        (opts.branch.as_deref(), opts.no_checkout, opts.run_cache);
    let dot = dir.join(dvx_store::repo::DOT);
    let made_dot = !dot.join("config.toml").is_file();
    let res = (|| {
        if made_dot {
            Repo::init(dir)?;
        }
        let repo = Repo::open(dir, Access::Write("dvx clone"))?;
        match repo.config.remote.get("origin") {
            None => Project(&repo).add_remote("origin", rc.clone(), false)?,
            Some(have) if have.url.trim_end_matches('/') == rc.url.trim_end_matches('/') => {}
            Some(have) => {
                return Err(RemoteError::Remote {
                    remote: "origin".into(),
                    message: format!(
                    "the project already has origin at {}, not {}; pull from it with `dvx pull`",
                    have.url, rc.url
                ),
                    kind: RemoteErrorKind::Config,
                })
            }
        }
        // The settings changed on disk: open again to read them.
        drop(repo);
        let repo = Repo::open(dir, Access::Write("dvx clone"))?;
        let mut remote = Remote::open(&repo, Some("origin"))?;
        remote.run_cache = run_cache;
        if no_checkout {
            let fetch = Project(&repo).fetch(&remote, &Want::Nothing, progress)?;
            return Ok(CloneReport {
                root: dir.display().to_string(),
                fetch,
                branch: branch.map(str::to_string),
                checkout: None,
            });
        }
        let rep = Project(&repo).pull(&remote, branch, &[], false, progress)?;
        Ok(CloneReport {
            root: dir.display().to_string(),
            fetch: rep.fetch,
            branch: Some(rep.branch),
            checkout: rep.checkout,
        })
    })();
    if res.is_err() && made_dot {
        let _ = fs::remove_dir_all(&dot);
    }
    res
}

fn clone_into(
    dir: &Path,
    rc: RemoteConfig,
    opts: &CloneOptions,
    progress: &dyn Progress,
) -> Result<CloneReport> {
    let (branch, no_checkout, run_cache) =
        (opts.branch.as_deref(), opts.no_checkout, opts.run_cache);
    fs::create_dir_all(dir).at(dir)?;
    Repo::init(dir)?;
    {
        let repo = Repo::open(dir, Access::Write("dvx clone"))?;
        Project(&repo).add_remote("origin", rc, false)?;
    }
    let repo = Repo::open(dir, Access::Write("dvx clone"))?;
    let mut remote = Remote::open(&repo, Some("origin"))?;
    remote.run_cache = run_cache;
    remote.check_format(false)?;
    let (refs, head) = remote.list_refs()?;
    let branch = match branch {
        Some(b) => Some(b.to_string()),
        None => head
            .filter(|h| refs.iter().any(|(n, _)| *n == format!("{HEADS}{h}")))
            .or_else(|| {
                refs.iter()
                    .find_map(|(n, _)| n.strip_prefix(HEADS).map(str::to_string))
            }),
    };
    let want = match (&branch, no_checkout) {
        (Some(b), false) => Want::Branch {
            branch: b.clone(),
            paths: Vec::new(),
        },
        _ => Want::Nothing,
    };
    let fetch = Project(&repo).fetch(&remote, &want, progress)?;
    let mut checkout = None;
    if let Some(b) = &branch {
        let target = repo
            .store
            .ref_target(&format!("{REMOTES}origin/{b}"))?
            .ok_or_else(|| RemoteError::Remote {
                remote: "origin".into(),
                message: format!("the remote has no branch {b:?}"),
                kind: RemoteErrorKind::NotFound,
            })?;
        if no_checkout {
            let txn = repo.store.txn()?;
            txn.set_ref(&format!("{HEADS}{b}"), &target);
            txn.set_head(&Head::Branch(b.clone()));
            txn.commit()?;
        } else {
            checkout = Some(repo.checkout_to(
                target,
                Some(Head::Branch(b.clone())),
                &[],
                true,
                progress,
            )?);
        }
    }
    Ok(CloneReport {
        root: dir.display().to_string(),
        fetch,
        branch,
        checkout,
    })
}
