//! `dvx exp apply`, `dvx exp branch`, `dvx exp remove`.

use dvx_store::lockfile::LockFile;
use dvx_store::refs::Head;
use dvx_store::{Id, Progress, Repo};
use serde::Serialize;

use super::{get, overlay, run::write_overrides, ExpStatus, Experiment};
use crate::error::{EngineError, Result};

#[derive(Debug, Serialize)]
pub struct Applied {
    pub name: String,
    pub commit: Id,
    /// The branch now at the experiment's commit (None when HEAD is detached).
    pub branch: Option<String>,
    pub written: u64,
    pub deleted: u64,
    /// Parameters files the experiment's values were written into.
    pub params_files: Vec<String>,
    /// Of those, the ones written again as a whole (as JSON: comments were lost).
    pub rewritten: Vec<String>,
}

fn finished(repo: &Repo, name: &str) -> Result<(Experiment, Id)> {
    let e = get(repo, name)?;
    match (e.status, e.commit) {
        (ExpStatus::Done, Some(c)) => Ok((e, c)),
        (status, _) => Err(EngineError::Experiment {
            message: format!("experiment {name} is {}, not done", status.as_str()),
            hint: match status {
                ExpStatus::Queued => "run it with `dvx exp run`".into(),
                _ => "`dvx exp show` lists the experiments that finished".into(),
            },
        }),
    }
}

/// Bring experiment `name` into the workspace: its data, its parameter values written into
/// the parameters files, and dvx.lock. The current branch moves to the experiment's commit,
/// which is only possible while it is where the experiment started.
pub fn apply(repo: &Repo, name: &str, force: bool, progress: &dyn Progress) -> Result<Applied> {
    let (exp, commit) = finished(repo, name)?;
    let (head, head_id, _) = repo.head_state()?;
    if head_id != Some(exp.base) {
        return Err(EngineError::Experiment {
            message: format!(
                "HEAD moved since experiment {name} started (it started from {}, HEAD is {})",
                exp.base.short(),
                head_id
                    .map(|h| h.short())
                    .unwrap_or_else(|| "nothing".into())
            ),
            hint: format!(
                "make a branch of it with `dvx exp branch {name} BRANCH` and check that out"
            ),
        });
    }
    let new_head = match head {
        Head::Branch(b) => Head::Branch(b),
        Head::Detached(_) => Head::Detached(commit),
    };
    let rep = repo.checkout_to(commit, Some(new_head), &[], force, progress)?;
    let rewritten = write_overrides(&repo.root, &exp.overrides)?;
    if let Some(stages) = &exp.stages {
        if let Some(mut lock) = LockFile::read(&repo.root)? {
            lock.other.insert("stages".into(), stages.clone());
            lock.write(&repo.root, &repo.tmp_dir())?;
        }
    }
    let mut params_files: Vec<String> = exp
        .overrides
        .keys()
        .map(|k| super::overrides::split_name(k).0.to_string())
        .collect();
    params_files.dedup();
    Ok(Applied {
        name: name.into(),
        commit,
        branch: rep.branch,
        written: rep.written,
        deleted: rep.deleted,
        params_files,
        rewritten,
    })
}

/// Make branch `branch` at experiment `name`'s commit.
pub fn branch(repo: &Repo, name: &str, branch: &str) -> Result<Id> {
    let (_, commit) = finished(repo, name)?;
    Ok(repo.create_ref("branch", branch, Some(&commit.to_hex()))?)
}

/// Forget experiments: their entries, refs and any folder left behind. Their commits go
/// with the next `dvx gc` unless a branch holds them.
pub fn remove(repo: &Repo, names: &[String]) -> Result<Vec<String>> {
    let mut exps = Vec::new();
    for n in names {
        exps.push(get(repo, n)?);
    }
    let txn = repo.store.txn()?;
    for e in &exps {
        txn.delete_experiment(&e.name);
        txn.delete_ref(&e.reference());
    }
    txn.commit()?;
    for e in &exps {
        overlay::remove(&overlay::folder(&repo.dot, &e.name));
    }
    Ok(exps.into_iter().map(|e| e.name).collect())
}
