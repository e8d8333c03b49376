//! Typed access to the column families other crates keep data in (the stat cache, the run
//! cache, the lineage indexes), so that no crate above the store writes raw keys into the
//! database: the layout stays the store's to change (`schemas/database.md`).

use crate::db::{ObjKind, CF_CHUNKS, CF_LINEAGE, CF_META, CF_OBJECTS, CF_RUNS, CF_STAT};
use crate::error::Result;
use crate::id::Id;
use crate::statcache::StatEntry;
use crate::store::{Store, Txn};

impl Txn<'_> {
    /// Remember the id of a workspace file whose metadata is `e.stat`.
    pub fn put_stat(&self, path: &str, e: &StatEntry) {
        self.put(CF_STAT, path.as_bytes(), &e.encode());
    }

    /// The run cache: the run that produced the results of `key`.
    pub fn put_run_cache(&self, key: &Id, run: &Id) {
        self.put(CF_RUNS, key.as_bytes(), run.as_bytes());
    }

    /// A lineage index entry (the value is the entry's payload, often empty).
    pub fn put_lineage(&self, key: &[u8], value: &[u8]) {
        self.put(CF_LINEAGE, key, value);
    }

    pub fn delete_lineage(&self, key: &[u8]) {
        self.delete(CF_LINEAGE, key);
    }

    /// A setting in the `meta` family (format versions, index markers).
    pub fn delete_meta(&self, key: &[u8]) {
        self.delete(CF_META, key);
    }

    /// State of `dvx serve`'s triggers (firings and their progress), under `trigger/` in
    /// the `meta` family.
    pub fn put_trigger_state(&self, key: &str, value: &[u8]) {
        self.put(CF_META, &trigger_key(key), value);
    }
}

impl Txn<'_> {
    /// One row of a datum stage's table (`datum` empty: the table's header), under
    /// `datum/` in the `meta` family. The engine owns the value's encoding.
    pub fn put_datum_row(&self, stage: &str, datum: &str, value: &[u8]) {
        self.put(CF_META, &datum_key(stage, datum), value);
    }

    pub fn delete_datum_row(&self, stage: &str, datum: &str) {
        self.delete(CF_META, &datum_key(stage, datum));
    }

    /// An experiment's entry (`dvx run -S`), under `exp/` in the `meta` family.
    pub fn put_experiment(&self, name: &str, value: &[u8]) {
        self.put(CF_META, &exp_key(name), value);
    }

    pub fn delete_experiment(&self, name: &str) {
        self.delete(CF_META, &exp_key(name));
    }
}

fn exp_key(name: &str) -> Vec<u8> {
    [EXP_PREFIX, name.as_bytes()].concat()
}

const EXP_PREFIX: &[u8] = b"exp/";

/// `datum/STAGE\0DATUM`: stage names hold no NUL, and the header (empty datum) sorts first.
fn datum_key(stage: &str, datum: &str) -> Vec<u8> {
    [DATUM_PREFIX, stage.as_bytes(), b"\0", datum.as_bytes()].concat()
}

const DATUM_PREFIX: &[u8] = b"datum/";

fn trigger_key(key: &str) -> Vec<u8> {
    [TRIGGER_PREFIX, key.as_bytes()].concat()
}

const TRIGGER_PREFIX: &[u8] = b"trigger/";

impl Store {
    /// One trigger state entry (see `Txn::put_trigger_state`).
    pub fn trigger_state(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_META, &trigger_key(key))
    }

    /// Every trigger state entry whose key starts with `prefix`, in key order.
    pub fn trigger_states(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        self.db
            .for_each_prefix(CF_META, &trigger_key(prefix), |k, v| {
                let k = String::from_utf8_lossy(&k[TRIGGER_PREFIX.len()..]).into_owned();
                out.push((k, v.to_vec()));
                Ok(true)
            })?;
        Ok(out)
    }

    /// One experiment's entry (see `Txn::put_experiment`).
    pub fn experiment(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.db.get(CF_META, &exp_key(name))
    }

    /// Every experiment entry, by name.
    pub fn experiments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        self.db.for_each_prefix(CF_META, EXP_PREFIX, |k, v| {
            let k = String::from_utf8_lossy(&k[EXP_PREFIX.len()..]).into_owned();
            out.push((k, v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Every row of a datum stage's table (see `Txn::put_datum_row`), header first, then by
    /// datum id in byte order, until `f` returns false.
    pub fn for_each_datum_row(
        &self,
        stage: &str,
        mut f: impl FnMut(&str, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let prefix = datum_key(stage, "");
        self.db.for_each_prefix(CF_META, &prefix, |k, v| {
            // Datum ids are the stage's own (UTF-8) names; a row that is not is skipped.
            match std::str::from_utf8(&k[prefix.len()..]) {
                Ok(d) => f(d, v),
                Err(_) => Ok(true),
            }
        })
    }

    /// The run recorded in the run cache for `key`, if any.
    pub fn run_cache(&self, key: &Id) -> Result<Option<Id>> {
        Ok(self
            .db
            .get(CF_RUNS, key.as_bytes())?
            .and_then(|v| Id::from_slice(&v)))
    }

    /// Every run-cache entry: (key, run), in key order.
    pub fn run_cache_entries(&self) -> Result<Vec<(Id, Id)>> {
        let mut out = Vec::new();
        self.db.for_each_prefix(CF_RUNS, &[], |k, v| {
            if let (Some(key), Some(run)) = (Id::from_slice(k), Id::from_slice(v)) {
                out.push((key, run));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Each lineage entry whose key starts with `prefix`, until `f` returns false.
    pub fn for_each_lineage(
        &self,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.db.for_each_prefix(CF_LINEAGE, prefix, f)
    }

    /// Each stored object of `kind`: its id and bytes, until `f` returns false.
    pub fn for_each_object(
        &self,
        kind: ObjKind,
        mut f: impl FnMut(Id, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        self.db.for_each_prefix(CF_OBJECTS, &[kind as u8], |k, v| {
            match Id::from_slice(&k[1..]) {
                Some(id) => f(id, v),
                None => Ok(true),
            }
        })
    }

    /// Which of `wanted` (kind and id) the store lacks, in their order.
    pub fn missing_objects(&self, wanted: &[(ObjKind, Id)]) -> Result<Vec<(ObjKind, Id)>> {
        // A window at a time, values not copied: a million files' trees, all present after a
        // clone, were 56 MB of copies just to learn they are there.
        let mut out = Vec::new();
        for window in wanted.chunks(256) {
            let keys: Vec<Vec<u8>> = window.iter().map(|(k, id)| k.key(id).to_vec()).collect();
            let present = self
                .db
                .multi_get_with(CF_OBJECTS, &keys, false, |_| Some(()))?;
            out.extend(
                window
                    .iter()
                    .zip(present)
                    .filter(|(_, p)| p.is_none())
                    .map(|(w, _)| *w),
            );
        }
        Ok(out)
    }

    /// Whether the chunk is stored here.
    pub fn has_chunk(&self, id: &Id) -> Result<bool> {
        self.db.contains(CF_CHUNKS, id.as_bytes())
    }
}
