//! The server's scheduler: a thread that, about every quarter second, works out for each
//! trigger of dvx.yaml what is due (cron ticks after the last one fired; a new tip of a
//! remote branch), holds back what `min_interval` forbids yet, and fires what is due one at
//! a time. Firings a killed server left started are finished first. All state lives in the
//! store (`dvx_engine::trigger::journal`), so a restart loses nothing and repeats nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dvx_engine::exec::Children;
use dvx_engine::remote::Remote;
use dvx_engine::store::{Access, Id, Repo};
use dvx_engine::trigger::fire::{self, Cause, Firing, Outcome};
use dvx_engine::trigger::{journal, plan, Trigger, When};

/// The clock the scheduler reads: the time written in the file `DVX_SERVE_CLOCK` names
/// (RFC 3339), so tests can move time without waiting, or the system's.
pub const CLOCK_ENV: &str = "DVX_SERVE_CLOCK";

const LOOP: Duration = Duration::from_millis(250);

/// How long a trigger whose firing failed to start (a remote out of reach) waits before the
/// next try: the firing stays started, so it is not lost, and the remote is not hammered.
const BACKOFF: Duration = Duration::from_secs(5);

pub fn now() -> DateTime<Utc> {
    std::env::var_os(CLOCK_ENV)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

/// What the pages and metrics show of the scheduler.
#[derive(Default)]
pub struct Stats {
    /// Firings due and not yet started, by trigger (held back by `min_interval` or a busy
    /// writer lock).
    pub pending: Mutex<BTreeMap<String, usize>>,
    /// The last problem met (reading a remote, a firing that could not record), by trigger.
    pub problems: Mutex<BTreeMap<String, String>>,
}

pub struct Scheduler {
    root: PathBuf,
    triggers: Vec<Trigger>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    children: Children,
    /// When each push trigger looked at its remote last, and the tip it saw.
    polled: BTreeMap<String, (Instant, Option<Id>)>,
    /// Every trigger is armed in the store (checked until it is, then never again).
    armed: bool,
    /// Triggers held back after a failed firing, until then.
    retry_at: BTreeMap<String, Instant>,
}

impl Scheduler {
    pub fn new(
        root: PathBuf,
        triggers: Vec<Trigger>,
        stats: Arc<Stats>,
        stop: Arc<AtomicBool>,
        children: Children,
    ) -> Scheduler {
        Scheduler {
            root,
            triggers,
            stats,
            stop,
            children,
            polled: BTreeMap::new(),
            armed: false,
            retry_at: BTreeMap::new(),
        }
    }

    pub fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            if let Err(e) = self.pass() {
                self.problem("*", e.to_string());
            }
            std::thread::sleep(LOOP);
        }
    }

    fn problem(&self, trigger: &str, message: String) {
        if let Ok(mut p) = self.stats.problems.lock() {
            p.insert(trigger.to_string(), message);
        }
    }

    fn set_pending(&self, trigger: &str, n: usize) {
        if let Ok(mut p) = self.stats.pending.lock() {
            p.insert(trigger.to_string(), n);
        }
    }

    /// Arm the triggers not seen before (their ticks count from now on).
    fn arm(&mut self, now: DateTime<Utc>) -> dvx_engine::Result<bool> {
        if self.armed {
            return Ok(true);
        }
        let repo = Repo::open(&self.root, Access::Read)?;
        let mut unarmed = Vec::new();
        for t in &self.triggers {
            if journal::armed(&repo.store, &t.name)?.is_none() {
                unarmed.push(t.name.clone());
            }
        }
        drop(repo);
        if unarmed.is_empty() {
            self.armed = true;
            return Ok(true);
        }
        let Some(w) = Repo::try_writer(&self.root, "dvx serve (arming triggers)")? else {
            return Ok(false);
        };
        let txn = w.store.txn()?;
        for name in unarmed {
            journal::arm(&txn, &name, now);
            // A push trigger fires for commits after this one.
            if let Some(When::Push { remote, branch, .. }) = self
                .triggers
                .iter()
                .find(|t| t.name == name)
                .map(|t| &t.when)
            {
                if let Some(tip) = self.tip(&w, &name, remote.as_deref(), branch) {
                    journal::set_baseline(&txn, &name, &tip);
                }
            }
        }
        txn.commit()?;
        self.armed = true;
        Ok(true)
    }

    fn pass(&mut self) -> dvx_engine::Result<()> {
        let now = now();
        if !self.arm(now)? {
            return Ok(());
        }
        for t in self.triggers.clone() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if self
                .retry_at
                .get(&t.name)
                .is_some_and(|at| Instant::now() < *at)
            {
                continue;
            }
            let due = self.due(&t, now)?;
            self.set_pending(&t.name, due.len());
            for (i, f) in due.iter().enumerate() {
                match fire::fire(&self.root, &t, f, now, &self.children) {
                    Ok(Outcome::Busy) | Ok(Outcome::Interrupted) => break,
                    Ok(_) => self.set_pending(&t.name, due.len() - i - 1),
                    Err(e) => {
                        self.problem(&t.name, e.to_string());
                        self.retry_at
                            .insert(t.name.clone(), Instant::now() + BACKOFF);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The tip of a remote's branch, or None (said in the stats) when it cannot be read.
    fn tip(&self, repo: &Repo, trigger: &str, remote: Option<&str>, branch: &str) -> Option<Id> {
        match Remote::open(repo, remote).and_then(|r| r.list_refs()) {
            Ok((refs, _)) => refs
                .into_iter()
                .find(|(n, _)| *n == format!("refs/heads/{branch}"))
                .map(|(_, s)| s.commit),
            Err(e) => {
                self.problem(trigger, e.to_string());
                None
            }
        }
    }

    /// The firings of `t` due at `now`, oldest first: those a killed server left started,
    /// then the new ones, unless `min_interval` holds them back.
    fn due(&mut self, t: &Trigger, now: DateTime<Utc>) -> dvx_engine::Result<Vec<Firing>> {
        let repo = Repo::open(&self.root, Access::Read)?;
        let entries = journal::firings(&repo.store, &t.name)?;
        let armed = journal::armed(&repo.store, &t.name)?.unwrap_or(now);
        let mut due: Vec<Firing> = entries
            .iter()
            .filter(|e| e.state == journal::FiringState::Started)
            .map(|e| Firing {
                trigger: t.name.clone(),
                key: e.key.clone(),
                cause: match (&e.tick, e.source) {
                    (_, Some(commit)) => match &t.when {
                        When::Push { remote, branch, .. } => Cause::Commit {
                            remote: remote.clone(),
                            branch: branch.clone(),
                            commit,
                        },
                        When::Cron { .. } => Cause::Tick(now),
                    },
                    (Some(tick), None) => Cause::Tick(
                        DateTime::parse_from_rfc3339(tick)
                            .map(|x| x.with_timezone(&Utc))
                            .unwrap_or(now),
                    ),
                    (None, None) => Cause::Tick(now),
                },
            })
            .collect();
        let held = plan::allowed_at(journal::last_start(&entries), t.min_interval, now).is_err();
        match &t.when {
            When::Cron { cron, .. } => {
                let since = journal::last_tick(&entries).map_or(armed, |l| l.max(armed));
                let ticks = plan::due_ticks(cron, since, now, t.catch_up);
                if !held || !due.is_empty() {
                    due.extend(ticks.into_iter().map(|tick| Firing {
                        trigger: t.name.clone(),
                        key: plan::tick_key(&t.name, tick),
                        cause: Cause::Tick(tick),
                    }));
                } else {
                    self.set_pending(&t.name, ticks.len());
                }
            }
            When::Push {
                remote,
                branch,
                poll,
            } => {
                let seen = self.polled.get(&t.name).copied();
                let tip = match seen {
                    Some((at, tip)) if at.elapsed() < *poll => tip,
                    _ => {
                        let tip = self
                            .tip(&repo, &t.name, remote.as_deref(), branch)
                            .or(seen.and_then(|s| s.1));
                        self.polled.insert(t.name.clone(), (Instant::now(), tip));
                        tip
                    }
                };
                let last = entries
                    .iter()
                    .rev()
                    .find_map(|e| e.source)
                    .or(journal::baseline(&repo.store, &t.name)?);
                // A tip this server's own firings made (pushed results) fires nothing.
                let ours = |tip: &Id| entries.iter().any(|e| e.commit == Some(*tip));
                if let Some(tip) = tip.filter(|tip| Some(*tip) != last && !ours(tip)) {
                    let key = plan::commit_key(&t.name, &tip);
                    if held {
                        self.set_pending(&t.name, 1);
                    } else if !entries.iter().any(|e| e.key == key) {
                        due.push(Firing {
                            trigger: t.name.clone(),
                            key,
                            cause: Cause::Commit {
                                remote: remote.clone(),
                                branch: branch.clone(),
                                commit: tip,
                            },
                        });
                    }
                }
            }
        }
        Ok(due)
    }
}
