//! Checkout: make the workspace match a commit exactly, writing only what differs.

mod plan;
mod write;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::db::CF_STAT;
use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::ops::normalize_roots;
use crate::paths;
use crate::refs::{Head, HEADS, TAGS};
use crate::repo::Repo;
use crate::statcache::StatEntry;
use crate::worktree::Flat;
use crate::Progress;

use plan::Plan;
use write::CacheSink;

/// Stat-cache entries of written files held before they are committed to the store.
const STAT_BATCH: usize = 20_000;

/// What `Repo::apply` changed on disk.
#[derive(Debug, Default)]
pub struct Applied {
    pub written: u64,
    pub deleted: u64,
    pub bytes_written: u64,
    pub unchanged: u64,
    pub cache: Vec<(String, StatEntry)>,
}

#[derive(Debug, Serialize)]
pub struct CheckoutReport {
    pub commit: Id,
    /// Branch now checked out, or None when HEAD is detached / only paths were restored.
    pub branch: Option<String>,
    pub written: u64,
    pub deleted: u64,
    pub bytes_written: u64,
    pub unchanged: u64,
    /// How the revision given was read, when it was a git revision or shadowed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<crate::revision::Resolved>,
}

impl Repo {
    /// Check out `rev` (default: the commit dvx.lock pins). With `only`, restore just those
    /// paths and leave HEAD alone.
    pub fn checkout(
        &self,
        rev: Option<&str>,
        only: &[String],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<CheckoutReport> {
        let resolved = match rev {
            Some(r) => Some(self.resolve_rev(r)?),
            None => None,
        };
        let git_id = resolved.as_ref().and_then(|r| match r.source {
            crate::revision::RevSource::Git { .. } => Some(r.commit),
            crate::revision::RevSource::Dvx => None,
        });
        let (target_id, new_head) = match (rev, git_id) {
            // A git revision: the data its dvx.lock pins, on the branch that ends there.
            (Some(_), Some(id)) => match self.branch_at(&id)? {
                Some(b) => (id, Head::Branch(b)),
                None => (id, Head::Detached(id)),
            },
            (Some(r), None) => {
                let id = self.store.resolve(r)?;
                let is_branch = self.store.ref_target(&format!("{HEADS}{r}"))?.is_some();
                let is_tag = self.store.ref_target(&format!("{TAGS}{r}"))?.is_some();
                let current = self.store.head()?;
                let head = if r == "HEAD" || r == "@" {
                    current
                } else if is_branch && !is_tag {
                    Head::Branch(r.to_string())
                } else {
                    Head::Detached(id)
                };
                (id, head)
            }
            (None, _) => {
                // dvx.lock is the source of truth after a git checkout; it must be sound.
                let lock = self.checked_lock()?.ok_or_else(|| {
                    StoreError::UnknownRevision("(none given, and there is no dvx.lock)".into())
                })?;
                match self.branch_at(&lock.commit)? {
                    Some(b) => (lock.commit, Head::Branch(b)),
                    None => (lock.commit, Head::Detached(lock.commit)),
                }
            }
        };
        let head = if only.is_empty() {
            Some(new_head)
        } else {
            None
        };
        let mut rep = self.checkout_to(target_id, head, only, force, progress)?;
        rep.revision = resolved.filter(|r| r.note().is_some());
        Ok(rep)
    }

    /// The branch to be on at `commit` (what dvx.lock pins after a `git checkout`): among the
    /// branches whose tip it is, the current one, else the one named like git's current
    /// branch, else `main`, else the first by name. `None` when no branch ends there, so
    /// HEAD is detached only when no branch could be moved by the next commit without
    /// leaving the pinned data behind.
    pub fn branch_at(&self, commit: &Id) -> Result<Option<String>> {
        let at: Vec<String> = self
            .store
            .list_refs(HEADS)?
            .into_iter()
            .filter(|(_, id)| id == commit)
            .map(|(n, _)| n)
            .collect();
        let current = match self.store.head()? {
            Head::Branch(b) => Some(b),
            Head::Detached(_) => None,
        };
        let git = crate::gitutil::git_branch(&self.root);
        for want in [current, git, Some(crate::refs::DEFAULT_BRANCH.to_string())]
            .into_iter()
            .flatten()
        {
            if at.contains(&want) {
                return Ok(Some(want));
            }
        }
        Ok(at.into_iter().next())
    }

    /// Make the workspace (or just `only`) hold commit `target_id`. With `head`, HEAD becomes
    /// it, and a branch it names moves to the target (a fast-forward after a pull) and the
    /// lock is rewritten; without, HEAD stays where it is.
    ///
    /// The target tree, the current commit's tree and the workspace are compared folder by
    /// folder (`plan`): only what must change is held, never a map of every path, and
    /// nothing on disk changes before the whole comparison found no conflict.
    pub fn checkout_to(
        &self,
        target_id: Id,
        head: Option<Head>,
        only: &[String],
        force: bool,
        progress: &dyn Progress,
    ) -> Result<CheckoutReport> {
        let target = self.store.get_commit(&target_id)?;
        let (_, _, current) = self.head_state()?;

        let scope: Vec<String> = if only.is_empty() {
            normalize_roots(
                target
                    .roots
                    .iter()
                    .chain(current.iter().flat_map(|c| c.roots.iter()))
                    .cloned(),
            )
        } else {
            for p in only {
                let tracked_somewhere = target.roots.iter().any(|r| paths::is_under(p, r))
                    || current
                        .iter()
                        .any(|c| c.roots.iter().any(|r| paths::is_under(p, r)));
                if !tracked_somewhere {
                    return Err(StoreError::NotTracked(p.clone()));
                }
            }
            normalize_roots(only.iter().cloned())
        };
        let mut plan = self.plan_checkout(
            &target.tree,
            current.as_ref().map(|c| &c.tree),
            &scope,
            force,
        )?;
        if let Some(conflicts) = plan.conflicts.take_error() {
            return Err(conflicts);
        }

        // Stat-cache entries of the files written go into the store in bounded batches; the
        // last one rides in the transaction that moves HEAD.
        let sink = CacheSink::new(STAT_BATCH, |batch| {
            let txn = self.store.txn()?;
            for (p, e) in batch {
                txn.put(CF_STAT, p.as_bytes(), &e.encode());
            }
            txn.commit()
        });
        let applied = self.execute(plan, progress, &sink)?;
        let txn = self.store.txn()?;
        for (p, e) in sink.into_rest() {
            txn.put(CF_STAT, p.as_bytes(), &e.encode());
        }
        let branch = match &head {
            Some(h) => {
                if let Head::Branch(b) = h {
                    let name = format!("{HEADS}{b}");
                    if self.store.ref_target(&name)? != Some(target_id) {
                        txn.set_ref(&name, &target_id);
                    }
                }
                txn.set_head(h);
                match h {
                    Head::Branch(b) => Some(b.clone()),
                    Head::Detached(_) => None,
                }
            }
            None => None,
        };
        if head.is_some() {
            txn.put(
                crate::db::CF_META,
                crate::repo::LOCK_PENDING,
                target_id.to_hex().as_bytes(),
            );
        }
        txn.commit()?;
        if head.is_some() {
            self.write_lock(&target_id, &target, current.as_ref())?;
        }
        Ok(CheckoutReport {
            revision: None,
            commit: target_id,
            branch,
            written: applied.written,
            deleted: applied.deleted,
            bytes_written: applied.bytes_written,
            unchanged: applied.unchanged,
        })
    }

    /// Make the workspace hold exactly `want` where it now holds `work` (both flattened, over
    /// the same scope): delete what `want` lacks, then write only what differs. Returns the
    /// stat-cache entries of the files written, for the caller's transaction. For small scopes
    /// (a stage's outputs, an import); a whole checkout compares folder by folder instead.
    pub fn apply(
        &self,
        want: &BTreeMap<String, Flat>,
        work: &BTreeMap<String, Flat>,
        progress: &dyn Progress,
    ) -> Result<Applied> {
        let plan = Plan::from_maps(want, work)?;
        let sink = CacheSink::new(usize::MAX, |_| Ok(()));
        let mut applied = self.execute(plan, progress, &sink)?;
        applied.cache = sink.into_rest();
        Ok(applied)
    }
}

#[cfg(test)]
mod tests;
