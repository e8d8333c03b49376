//! Run records: what every execution was, stored as objects, and the run cache that maps a key
//! to the record of a successful execution with that key.

use std::collections::BTreeMap;

use dvx_store::db::{ObjKind, CF_RUNS};
use dvx_store::object::GitInfo;
use dvx_store::store::{Store, Txn};
use dvx_store::{Id, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

pub const RECORD_VERSION: u32 = 1;

/// A path and what it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathId {
    pub path: String,
    pub kind: String,
    pub id: Id,
    pub size: u64,
}

/// One execution. Canonical JSON (fields in sorted order); its id is the hash of that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub attempt: u32,
    pub cmd: Vec<String>,
    pub code: Option<GitInfo>,
    /// The datum's path inside the stage's input folder, for datum stages.
    pub datum: Option<String>,
    pub duration_ms: u64,
    pub end: String,
    pub env: BTreeMap<String, String>,
    /// Why it failed, in words (None when it succeeded).
    pub error: Option<String>,
    pub executor: String,
    /// Exit status (None if killed by a signal or never started).
    pub exit: Option<i32>,
    pub host: String,
    pub image: Option<String>,
    pub inputs: Vec<PathId>,
    pub key: Id,
    pub outputs: Vec<PathId>,
    pub params: BTreeMap<String, Value>,
    pub stage: String,
    pub start: String,
    /// File ids of the captured output.
    pub stderr: Id,
    pub stdout: Id,
    pub user: String,
    pub version: u32,
    pub wdir: String,
}

impl RunRecord {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.exit == Some(0)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Store the record; successful runs also enter the run cache under their key.
    pub fn put(&self, txn: &Txn) -> Id {
        let bytes = self.encode();
        let id = Id::of(&bytes);
        txn.put_object(ObjKind::Run, &id, &bytes);
        if self.ok() {
            txn.put(CF_RUNS, self.key.as_bytes(), id.as_bytes());
        }
        id
    }
}

pub fn load(store: &Store, id: &Id) -> Result<RunRecord> {
    let bytes = store
        .get_object(ObjKind::Run, id)?
        .ok_or(StoreError::MissingObject {
            kind: "run record",
            id: *id,
        })?;
    if Id::of(&bytes) != *id {
        return Err(StoreError::corrupt("run record", *id, "content does not match its id").into());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::corrupt("run record", *id, e.to_string()).into())
}

/// The record of a successful run with this key, if any.
pub fn cached(store: &Store, key: &Id) -> Result<Option<(Id, RunRecord)>> {
    let Some(v) = store.db.get(CF_RUNS, key.as_bytes())? else {
        return Ok(None);
    };
    let Some(id) = Id::from_slice(&v) else {
        return Ok(None);
    };
    match load(store, &id) {
        Ok(r) => Ok(Some((id, r))),
        // A damaged cache entry is a miss, not a failure: the stage simply runs.
        Err(_) => Ok(None),
    }
}

/// Find a run record by id or unique hex prefix.
pub fn find(store: &Store, prefix: &str) -> Result<Option<(Id, RunRecord)>> {
    if let Ok(id) = prefix.parse::<Id>() {
        return Ok(Some((id, load(store, &id)?)));
    }
    if prefix.len() < 4 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match store.find_by_prefix(ObjKind::Run, &prefix.to_ascii_lowercase())? {
        Some(id) => Ok(Some((id, load(store, &id)?))),
        None => Ok(None),
    }
}
