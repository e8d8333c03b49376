//! What each trigger has fired, kept in the store (`trigger/` keys of the `meta` family, see
//! `schemas/database.md`): when the trigger was first armed, and one entry per firing,
//! written `started` in its own batch before the run begins and `done` after. A firing left
//! `started` by a killed server is finished on restart: done if a commit names its key, run
//! again otherwise.

use chrono::{DateTime, Utc};
use dvx_store::store::{Store, Txn};
use dvx_store::Id;
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FiringState {
    Started,
    Done,
}

/// One firing, as stored (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FiringEntry {
    pub version: u32,
    pub trigger: String,
    pub key: String,
    pub state: FiringState,
    /// The tick it fired for (cron triggers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<String>,
    /// The remote commit it fired for (push triggers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Id>,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// The commit the run made (none when nothing changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Id>,
    #[serde(default)]
    pub failed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub const ENTRY_VERSION: u32 = 1;

fn armed_key(trigger: &str) -> String {
    format!("{trigger}/armed")
}

fn firing_key(trigger: &str, key: &str) -> String {
    format!("{trigger}/firing/{key}")
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// When the trigger was first seen by a server (ticks before it never fire).
pub fn armed(store: &Store, trigger: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(store
        .trigger_state(&armed_key(trigger))?
        .and_then(|v| time(&String::from_utf8_lossy(&v))))
}

pub fn arm(txn: &Txn, trigger: &str, at: DateTime<Utc>) {
    txn.put_trigger_state(&armed_key(trigger), at.to_rfc3339().as_bytes());
}

/// Every firing of `trigger`, oldest first (by start).
pub fn firings(store: &Store, trigger: &str) -> Result<Vec<FiringEntry>> {
    let mut out: Vec<FiringEntry> = store
        .trigger_states(&format!("{trigger}/firing/"))?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect();
    out.sort_by(|a, b| a.started.cmp(&b.started).then(a.key.cmp(&b.key)));
    Ok(out)
}

pub fn firing(store: &Store, trigger: &str, key: &str) -> Result<Option<FiringEntry>> {
    Ok(store
        .trigger_state(&firing_key(trigger, key))?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

pub fn put(txn: &Txn, e: &FiringEntry) {
    txn.put_trigger_state(
        &firing_key(&e.trigger, &e.key),
        &serde_json::to_vec(e).unwrap_or_default(),
    );
}

/// The latest tick fired (cron triggers), to find the ticks after it.
pub fn last_tick(entries: &[FiringEntry]) -> Option<DateTime<Utc>> {
    entries
        .iter()
        .filter_map(|e| e.tick.as_deref().and_then(time))
        .max()
}

/// When the latest firing started, for the minimum interval.
pub fn last_start(entries: &[FiringEntry]) -> Option<DateTime<Utc>> {
    entries.iter().filter_map(|e| time(&e.started)).max()
}

fn baseline_key(trigger: &str) -> String {
    format!("{trigger}/baseline")
}

/// A push trigger's branch tip when it was armed: commits up to it do not fire.
pub fn baseline(store: &Store, trigger: &str) -> Result<Option<Id>> {
    Ok(store
        .trigger_state(&baseline_key(trigger))?
        .and_then(|v| String::from_utf8_lossy(&v).parse::<Id>().ok()))
}

pub fn set_baseline(txn: &Txn, trigger: &str, tip: &Id) {
    txn.put_trigger_state(&baseline_key(trigger), tip.to_hex().as_bytes());
}
