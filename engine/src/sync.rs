//! Fetch, pull and clone as every caller should use them: dvx-remote moves the data, and the
//! lineage indexes take in what came, in the same call, so no caller can leave a store whose
//! lineage misses what it fetched.

use std::path::{Path, PathBuf};

use dvx_remote::fetch::{FetchReport, Want};
use dvx_remote::ops::{self, CloneOptions, CloneReport, PullReport};
use dvx_remote::{Project, Remote};
use dvx_store::config::RemoteConfig;
use dvx_store::{Access, Progress, Repo, StoreError};

use crate::error::Result;
use crate::lineage;

/// Fetch from `remote` and index the commits and run records that came.
pub fn fetch(
    repo: &Repo,
    remote: &Remote,
    want: &Want,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let rep = Project(repo).fetch(remote, want, progress)?;
    lineage::index_fetch(&repo.store, &rep)?;
    Ok(rep)
}

/// Fetch the branch (all of it, or `paths` of it) and bring the workspace to it; index what
/// came.
pub fn pull(
    repo: &Repo,
    remote: &Remote,
    branch: Option<&str>,
    paths: &[String],
    force: bool,
    progress: &dyn Progress,
) -> Result<PullReport> {
    let rep = Project(repo).pull(remote, branch, paths, force, progress)?;
    lineage::index_fetch(&repo.store, &rep.fetch)?;
    Ok(rep)
}

/// A folder remote given as a relative path is made absolute against `cwd`; URLs are kept.
pub fn absolute_url(cwd: &Path, url: &str) -> String {
    if url.contains("://") || url.starts_with('/') {
        url.to_string()
    } else {
        cwd.join(url).display().to_string()
    }
}

/// The folder `dvx clone` makes when none is given: the last part of the URL, in `cwd`.
pub fn clone_dir(cwd: &Path, url: &str) -> Result<PathBuf> {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last.is_empty() || last.contains(':') {
        return Err(StoreError::InvalidPath {
            path: url.to_string(),
            reason: "cannot name a folder after this URL".into(),
        }
        .into());
    }
    Ok(cwd.join(last))
}

/// Make a new project in `dir` from a remote; everything in its store came from the remote,
/// so all of it is indexed.
pub fn clone(
    dir: &Path,
    rc: RemoteConfig,
    opts: &CloneOptions,
    progress: &dyn Progress,
) -> Result<CloneReport> {
    let rep = ops::clone(dir, rc, opts, progress)?;
    let repo = Repo::open(dir, Access::Write("dvx clone"))?;
    lineage::reindex(&repo.store)?;
    Ok(rep)
}

/// Whether a read failed only for want of data this store has not fetched (so that fetching
/// from a remote could answer it): no store yet, a pinned commit not here, or a file or chunk
/// missing. An unknown revision or path is not: no fetch would change that answer.
pub fn is_unfetched(e: &StoreError) -> bool {
    match e {
        StoreError::NothingFetched { .. } | StoreError::PinnedNotFetched(_) => true,
        StoreError::MissingObject { kind, .. } => matches!(*kind, "file" | "chunk"),
        _ => false,
    }
}

/// Fetch from `remote` what reading `rel` at `rev` needs: the metadata, and the chunks of
/// that path at that commit only (refs are left alone). `repo` is a writer's handle; in a
/// fresh `git clone` this creates the store.
pub fn fetch_for_read(
    repo: &Repo,
    remote: &Remote,
    rev: &str,
    rel: &str,
    progress: &dyn Progress,
) -> Result<FetchReport> {
    let commit = match repo.resolve_rev(rev) {
        Ok(r) => r.commit,
        // A git revision (HEAD of a fresh clone included) whose dvx.lock pins a commit not here.
        Err(StoreError::PinnedNotFetched(c)) => c,
        Err(e) => return Err(e.into()),
    };
    let want = Want::Commit {
        commit,
        paths: vec![rel.to_string()],
    };
    fetch(repo, remote, &want, progress)
}
