//! Run records: what every execution was, stored as objects, and the run cache that maps a key
//! to the record of a successful execution with that key.

use std::collections::BTreeMap;

use dvx_store::db::ObjKind;
use dvx_store::object::EntryKind;
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
    pub kind: EntryKind,
    pub id: Id,
    pub size: u64,
    /// Permission bits of a file output (0o644, 0o755), so a restore from the run cache
    /// gives back an executable as executable. Absent for folders, inputs and older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Where a cluster ran an execution: the queue's job id, and when it was queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterJob {
    pub job: String,
    /// When the job was submitted (RFC 3339); `start` is when its commands began.
    pub queued: String,
}

/// The experiment a run belongs to (`dvx run -S`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentTag {
    pub name: String,
    /// `FILE:KEY` → the value the experiment gives it.
    pub overrides: BTreeMap<String, Value>,
}

/// One execution. Canonical JSON (fields in sorted order); its id is the hash of that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub attempt: u32,
    /// Executions on a cluster only (absent for local ones, so their records are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterJob>,
    pub cmd: Vec<String>,
    pub code: Option<GitInfo>,
    /// How a combined datum's inputs were combined (absent for other executions, so their
    /// records keep their ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<crate::spec::How>,
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
    /// The experiment (`dvx run -S`) the run belongs to: its name and the parameter values it
    /// overrides. Absent for other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentTag>,
    pub host: String,
    pub image: Option<String>,
    pub inputs: Vec<PathId>,
    pub key: Id,
    /// A combined datum's matches: each input's name, project path and place in the input
    /// folder, so `dvx verify` can lay them out again. Absent for other executions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<RecordMember>,
    /// Notebook stages: the notebook, its report and the executed notebook as stored (kept
    /// for failed executions too). Absent for other executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notebook: Option<NotebookRun>,
    pub outputs: Vec<PathId>,
    pub params: BTreeMap<String, Value>,
    pub stage: String,
    pub start: String,
    /// File ids of the captured output.
    pub stderr: Id,
    pub stdout: Id,
    /// The firing of a trigger (`dvx serve`) that started the run: `TRIGGER@TICK` or
    /// `TRIGGER@COMMIT`. Absent for runs a person started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    pub user: String,
    pub version: u32,
    /// What went right but deserves a look, such as a datum that wrote no output. Absent
    /// when empty, so records without warnings keep their ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub wdir: String,
}

/// What a run record keeps of a notebook execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotebookRun {
    /// The notebook's id as the key sees it (its normalized cells and kernel).
    pub cells: Id,
    /// The executed notebook papermill wrote, stored (None: it wrote none).
    pub executed: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Project-relative path of the notebook.
    pub path: String,
    /// Project-relative path of the executed notebook (for a datum, inside the stage's
    /// output folder).
    pub report: String,
}

/// One match of a combined datum, as its run record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMember {
    pub name: String,
    /// Project-relative path of the match.
    pub path: String,
    /// Its place in the datum's input folder (`name/sub`).
    pub place: String,
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
            txn.put_run_cache(&self.key, &id);
        }
        id
    }
}

/// The run records of `commit`'s first-parent history, newest first (within a commit, the
/// last executed first), until `f` returns false. Records that cannot be read are skipped.
pub fn walk_history(
    store: &Store,
    commit: &Id,
    mut f: impl FnMut(&Id, &RunRecord) -> bool,
) -> Result<()> {
    let mut cur = Some(*commit);
    while let Some(id) = cur {
        let c = store.get_commit(&id)?;
        for rid in c.runs.iter().rev() {
            if let Ok(r) = load(store, rid) {
                if !f(rid, &r) {
                    return Ok(());
                }
            }
        }
        cur = c.parents.first().copied();
    }
    Ok(())
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
    let Some(id) = store.run_cache(key)? else {
        return Ok(None);
    };
    match load(store, &id) {
        // A restore writes the record's outputs where it says; a record that names a path
        // dvx would not track (fetch refuses those, but a store may predate that check) is
        // a miss.
        Ok(r)
            if r.outputs.iter().any(|o| {
                o.path.is_empty() || dvx_store::paths::check_tracked(&o.path).is_err()
            }) =>
        {
            Ok(None)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunRecord {
        RunRecord {
            attempt: 0,
            cluster: None,
            cmd: vec!["wc -l < in.csv > n.txt".into()],
            code: Some(GitInfo {
                commit: "0".repeat(40),
                dirty: false,
            }),
            combine: None,
            datum: None,
            duration_ms: 12,
            end: "2026-01-01T00:00:01+00:00".into(),
            env: BTreeMap::from([("LANG".to_string(), "C".to_string())]),
            error: None,
            executor: "local".into(),
            exit: Some(0),
            experiment: None,
            host: "h".into(),
            image: None,
            inputs: vec![PathId {
                path: "in.csv".into(),
                kind: EntryKind::File,
                id: Id::of(b"a,b\n"),
                size: 4,
                mode: None,
            }],
            key: Id::of(b"key"),
            members: Vec::new(),
            notebook: None,
            outputs: vec![PathId {
                path: "n.txt".into(),
                kind: EntryKind::File,
                id: Id::of(b"1\n"),
                size: 2,
                mode: None,
            }],
            params: BTreeMap::from([("params.yaml:k".to_string(), serde_json::json!(2))]),
            stage: "count".into(),
            start: "2026-01-01T00:00:00+00:00".into(),
            stderr: Id::of(b""),
            stdout: Id::of(b""),
            trigger: None,
            user: "u".into(),
            version: RECORD_VERSION,
            warnings: Vec::new(),
            wdir: String::new(),
        }
    }

    /// The exact bytes of a record decide its id: a change here is a format change.
    #[test]
    fn golden_record_bytes() {
        let bytes = sample().encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"attempt":0,"cmd":["wc -l < in.csv > n.txt"],"code":{"commit":"0000000000000000000000000000000000000000","dirty":false},"datum":null,"duration_ms":12,"#), "{text}");
        assert!(text.contains(r#""inputs":[{"path":"in.csv","kind":"file","id":""#));
        assert!(
            text.ends_with(r#","user":"u","version":1,"wdir":""}"#),
            "{text}"
        );
        assert_eq!(
            Id::of(&bytes).to_hex(),
            "18f36ee9e03ca738f23fda1adb180910232bcd2e641f5de9b1dcacce0748f8ea"
        );
        let back: RunRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, sample());
    }

    /// schemas/run-record.schema.json names exactly the fields a record has.
    #[test]
    fn schema_is_in_step_with_the_record() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas/run-record.schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let written: Value = serde_json::from_slice(&sample().encode()).unwrap();
        // `warnings` and `trigger` are written only when there is one; the schema lists them,
        // not as required.
        let mut all = keys(&written);
        all.extend([
            "cluster".into(),
            "combine".into(),
            "experiment".into(),
            "members".into(),
            "notebook".into(),
            "trigger".into(),
            "warnings".into(),
        ]);
        all.sort();
        assert_eq!(all, keys(&schema["properties"]));
        let mut required: Vec<String> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        required.sort();
        assert_eq!(keys(&written), required);
        // `mode` is the one optional field of a path (file outputs only).
        let mut path_keys = keys(&written["inputs"][0]);
        path_keys.push("mode".into());
        path_keys.sort();
        assert_eq!(path_keys, keys(&schema["$defs"]["pathId"]["properties"]));
        let mut required: Vec<String> = schema["$defs"]["pathId"]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        required.sort();
        assert_eq!(keys(&written["inputs"][0]), required);
    }
}
