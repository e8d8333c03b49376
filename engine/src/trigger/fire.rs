//! One firing: take the writer lock (or come back later), record the firing as started,
//! bring in the remote commit that caused it, run the pipeline as `dvx run` would, push if
//! asked, and record the end.

use std::path::Path;

use chrono::{DateTime, Utc};
use dvx_remote::fetch::Want;
use dvx_remote::push::PushOptions;
use dvx_remote::{Project, Remote};
use dvx_store::refs::Head;
use dvx_store::{Id, Quiet, Repo};

use super::journal::{self, FiringEntry, FiringState};
use super::Trigger;
use crate::error::Result;
use crate::exec::Children;
use crate::run::{default_jobs, Engine, RunOptions};

/// What a firing is for.
#[derive(Clone, Debug, PartialEq)]
pub enum Cause {
    /// A tick of a cron schedule.
    Tick(DateTime<Utc>),
    /// A new commit on a remote's branch.
    Commit {
        remote: Option<String>,
        branch: String,
        commit: Id,
    },
}

#[derive(Clone, Debug)]
pub struct Firing {
    pub trigger: String,
    pub key: String,
    pub cause: Cause,
}

#[derive(Debug)]
pub enum Outcome {
    /// It ran (successfully or not: see the entry).
    Ran(Box<FiringEntry>),
    /// An earlier server ran it already.
    AlreadyDone,
    /// Another dvx holds the writer lock: try again later.
    Busy,
    /// The server is stopping and stopped the run: the firing stays started, so the next
    /// server runs it.
    Interrupted,
}

/// How far back a restarted server looks for the commit of a firing it was killed during.
const LOOK_BACK: usize = 200;

/// The commit whose message names the firing `key`, if HEAD's recent history has one.
fn commit_naming(repo: &Repo, key: &str) -> Result<Option<Id>> {
    if repo.store.head_commit()?.is_none() {
        return Ok(None);
    }
    let tag = format!("[{key}]");
    Ok(repo
        .log(None, Some(LOOK_BACK))?
        .into_iter()
        .find(|e| e.commit.message.contains(&tag))
        .map(|e| e.id))
}

fn end(
    repo: &Repo,
    mut e: FiringEntry,
    commit: Option<Id>,
    failed: u64,
    error: Option<String>,
) -> Result<Box<FiringEntry>> {
    e.state = FiringState::Done;
    e.ended = Some(Utc::now().to_rfc3339());
    e.commit = commit;
    e.failed = failed;
    e.error = error;
    let txn = repo.store.txn()?;
    journal::put(&txn, &e);
    txn.commit()?;
    Ok(Box::new(e))
}

pub fn fire(
    root: &Path,
    t: &Trigger,
    f: &Firing,
    now: DateTime<Utc>,
    children: &Children,
) -> Result<Outcome> {
    let Some(repo) = Repo::try_writer(root, &format!("dvx serve (trigger {})", t.name))? else {
        return Ok(Outcome::Busy);
    };
    if let Some(e) = journal::firing(&repo.store, &t.name, &f.key)? {
        if e.state == FiringState::Done {
            return Ok(Outcome::AlreadyDone);
        }
        // Started by a server that was killed: done if its run committed, else run it now.
        if let Some(c) = commit_naming(&repo, &f.key)? {
            end(&repo, e, Some(c), 0, None)?;
            return Ok(Outcome::AlreadyDone);
        }
    }
    let (tick, source) = match &f.cause {
        Cause::Tick(at) => (Some(at.to_rfc3339()), None),
        Cause::Commit { commit, .. } => (None, Some(*commit)),
    };
    let entry = FiringEntry {
        version: journal::ENTRY_VERSION,
        trigger: t.name.clone(),
        key: f.key.clone(),
        state: FiringState::Started,
        tick,
        source,
        started: now.to_rfc3339(),
        ended: None,
        commit: None,
        failed: 0,
        error: None,
    };
    {
        let txn = repo.store.txn()?;
        journal::put(&txn, &entry);
        txn.commit()?;
    }
    if let Cause::Commit {
        remote,
        branch,
        commit,
    } = &f.cause
    {
        // The server's project follows the remote branch: fetch it, and put the branch and
        // the workspace at exactly the commit that fired (this server's earlier results on
        // top of an older commit stay in the records and the run cache).
        let brought = Remote::open(&repo, remote.as_deref())
            .map_err(crate::EngineError::from)
            .and_then(|r| {
                let want = Want::Branch {
                    branch: branch.clone(),
                    paths: Vec::new(),
                };
                crate::sync::fetch(&repo, &r, &want, &Quiet)
            })
            .and_then(|_| {
                let head = Some(Head::Branch(branch.clone()));
                Ok(repo.checkout_to(*commit, head, &[], true, &Quiet)?)
            });
        // The remote unreachable, say: the firing stays started, and the server tries it
        // again later instead of losing it.
        brought?;
    }
    let opts = RunOptions {
        targets: t.stages.clone(),
        jobs: default_jobs(),
        message: Some(format!("dvx run: trigger {} [{}]", t.name, f.key)),
        trigger: Some(f.key.clone()),
        ..Default::default()
    };
    let ran = Engine::open(&repo).and_then(|mut e| e.run(&opts, children, &Quiet));
    if matches!(ran, Err(crate::EngineError::Interrupted)) {
        return Ok(Outcome::Interrupted);
    }
    // Tests kill the server here: the run's commit is made, the firing not yet marked done.
    dvx_store::fsutil::fault_point("trigger-after-run");
    let (commit, failed, mut error) = match &ran {
        Ok(s) => (s.commit, s.failed, None),
        Err(e) => (None, 0, Some(e.to_string())),
    };
    if let (Some(to), true) = (&t.push, error.is_none() && failed == 0) {
        let name = (!to.is_empty()).then_some(to.as_str());
        let pushed = Remote::open(&repo, name).and_then(|r| {
            let p = Project(&repo);
            let rep = p.push(&r, &PushOptions::default(), &Quiet)?;
            p.record_remote_refs(&r.name, &rep.refs)
        });
        if let Err(e) = pushed {
            error = Some(format!("the run finished, but the push failed: {e}"));
        }
    }
    Ok(Outcome::Ran(end(&repo, entry, commit, failed, error)?))
}
