//! Maintenance: `gc` (delete what nothing reaches, repack) and `fsck` (re-hash everything).

use std::collections::{HashMap, HashSet};
use std::fs;

use rayon::prelude::*;
use serde::Serialize;

use crate::db::{ObjKind, ALL_CFS, CF_CHUNKS, CF_LINEAGE, CF_OBJECTS, CF_REFS, CF_RUNS, CF_STAT};
use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::lockfile::LockFile;
use crate::object::{Commit, EntryKind, FileManifest, Tree};
use crate::pack::{self, ChunkLoc, PackWriter, RECORD_HEADER};
use crate::repo::Repo;
use crate::Progress;

#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub commits_kept: u64,
    pub objects_deleted: u64,
    pub chunks_deleted: u64,
    pub bytes_freed: u64,
    pub packs_rewritten: u64,
}

#[derive(Debug, Serialize)]
pub struct Problem {
    pub kind: String,
    pub id: String,
    pub problem: String,
}

impl Problem {
    fn new(kind: &str, id: String, problem: String) -> Problem {
        Problem {
            kind: kind.into(),
            id,
            problem,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct FsckReport {
    pub chunks: u64,
    pub objects: u64,
    pub refs: u64,
    pub problems: Vec<Problem>,
    /// Damage fsck mended itself (derivable data rebuilt), one line each.
    pub repaired: Vec<String>,
}

/// Everything reachable, by kind.
#[derive(Default)]
struct Reach {
    commits: HashSet<Id>,
    trees: HashSet<Id>,
    files: HashSet<Id>,
    runs: HashSet<Id>,
    chunks: HashSet<Id>,
}

impl Repo {
    /// Roots of reachability: every ref, HEAD, the commit dvx.lock pins, and run records.
    fn gc_roots(&self) -> Result<Vec<Id>> {
        let mut out = Vec::new();
        for (_, v) in self.store.db.scan_prefix(CF_REFS, b"")? {
            if let Ok(id) = String::from_utf8_lossy(&v).parse::<Id>() {
                out.push(id);
            }
        }
        if let Ok(Some(lock)) = LockFile::read(&self.root) {
            // A lock pinning a commit this store never had (not fetched yet) protects nothing.
            if self.store.has_object(ObjKind::Commit, &lock.commit)? {
                out.push(lock.commit);
            }
        }
        Ok(out)
    }

    fn reach(&self) -> Result<Reach> {
        let mut r = Reach::default();
        let mut stack = self.gc_roots()?;
        while let Some(id) = stack.pop() {
            if !r.commits.insert(id) {
                continue;
            }
            let c = self.store.get_commit(&id)?;
            stack.extend(c.parents.iter().copied());
            r.runs.extend(c.runs.iter().copied());
            self.reach_tree(&c.tree, &mut r)?;
        }
        // Run records in the run cache keep their own outputs (pipelines read them back).
        for (_, v) in self.store.db.scan_prefix(CF_RUNS, b"")? {
            if let Some(id) = Id::from_slice(&v) {
                r.runs.insert(id);
            }
        }
        for run in r.runs.clone() {
            if let Some(bytes) = self.store.get_object(ObjKind::Run, &run)? {
                for id in referenced_ids(&bytes) {
                    if self.store.has_object(ObjKind::Tree, &id)? {
                        self.reach_tree(&id, &mut r)?;
                    } else if self.store.has_file(&id)? {
                        self.reach_file(&id, &mut r)?;
                    }
                }
            }
        }
        Ok(r)
    }

    fn reach_tree(&self, id: &Id, r: &mut Reach) -> Result<()> {
        if !r.trees.insert(*id) {
            return Ok(());
        }
        for e in self.store.get_tree(id)?.entries {
            match e.kind {
                EntryKind::Dir => self.reach_tree(&e.id, r)?,
                _ => self.reach_file(&e.id, r)?,
            }
        }
        Ok(())
    }

    fn reach_file(&self, id: &Id, r: &mut Reach) -> Result<()> {
        if !r.files.insert(*id) {
            return Ok(());
        }
        match self.store.file_chunks(id) {
            Ok(list) => r.chunks.extend(list.into_iter().map(|(c, _)| c)),
            // Not fetched (a partial clone): nothing here to keep.
            Err(StoreError::MissingObject { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    pub fn gc(&self, dry_run: bool, progress: &dyn Progress) -> Result<GcReport> {
        let reach = self.reach()?;
        let mut report = GcReport {
            dry_run,
            commits_kept: reach.commits.len() as u64,
            ..Default::default()
        };
        let txn = self.store.txn()?;
        // Objects.
        for (k, _) in self.store.db.scan_prefix(CF_OBJECTS, b"")? {
            let (Some(kind), Some(id)) = (ObjKind::from_byte(k[0]), Id::from_slice(&k[1..])) else {
                continue;
            };
            let keep = match kind {
                ObjKind::Commit => reach.commits.contains(&id),
                ObjKind::Tree => reach.trees.contains(&id),
                ObjKind::File => reach.files.contains(&id),
                ObjKind::Run => reach.runs.contains(&id),
            };
            if !keep {
                report.objects_deleted += 1;
                txn.delete(CF_OBJECTS, &k);
            }
        }
        // Lineage entries of deleted runs and commits go with them.
        for k in crate::lineage::dead_entries(&self.store, &reach.commits, &reach.runs)? {
            txn.delete(crate::db::CF_LINEAGE, &k);
        }
        // Chunks, grouped by pack to decide which packs to rewrite.
        let mut live: HashMap<u32, Vec<(Id, ChunkLoc)>> = HashMap::new();
        let mut dead_in: HashSet<u32> = HashSet::new();
        for (k, v) in self.store.db.scan_prefix(CF_CHUNKS, b"")? {
            let Some(id) = Id::from_slice(&k) else {
                continue;
            };
            let loc = ChunkLoc::decode(id, &v)?;
            if reach.chunks.contains(&id) {
                live.entry(loc.pack).or_default().push((id, loc));
            } else {
                report.chunks_deleted += 1;
                dead_in.insert(loc.pack);
                txn.delete(CF_CHUNKS, &k);
            }
        }
        // A pack is rewritten when it holds dead records or garbage past its live records
        // (a torn append); what it frees is everything but its live records.
        let packs = pack::list_packs(self.store.packs_dir())?;
        let header = pack::PACK_MAGIC.len() as u64;
        report.bytes_freed = 0;
        for n in &packs {
            let len = fs::metadata(pack::pack_path(self.store.packs_dir(), *n))
                .map(|m| m.len())
                .unwrap_or(0);
            let used: u64 = live
                .get(n)
                .map(|v| {
                    v.iter()
                        .map(|(_, l)| RECORD_HEADER + u64::from(l.stored_len))
                        .sum()
                })
                .unwrap_or(0);
            if len > used + header || dead_in.contains(n) {
                dead_in.insert(*n);
                report.bytes_freed += len.saturating_sub(used);
            }
        }
        // Stat-cache entries for paths that no longer exist are dropped too.
        for (k, _) in self.store.db.scan_prefix(CF_STAT, b"")? {
            let rel = String::from_utf8_lossy(&k);
            if crate::paths::check_rel(&rel).is_err() || !self.root.join(rel.as_ref()).exists() {
                txn.delete(CF_STAT, &k);
            }
        }
        if dry_run {
            return Ok(report);
        }
        let rewrite: Vec<u32> = packs
            .iter()
            .copied()
            .filter(|n| dead_in.contains(n))
            .collect();
        let mut writer: Option<PackWriter> = None;
        let total: u64 = rewrite
            .iter()
            .map(|n| live.get(n).map_or(0, |v| v.len() as u64))
            .sum();
        progress.start("repacking", total);
        for n in &rewrite {
            for (id, loc) in live.get(n).map(Vec::as_slice).unwrap_or(&[]) {
                let raw = self.store.pack_reader().read(*id, loc)?;
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(PackWriter::create_new(self.store.packs_dir())?),
                };
                let (codec, stored) = pack::encode_chunk(&raw);
                let new = w.append(*id, codec, raw.len() as u32, &stored)?;
                txn.put(CF_CHUNKS, id.as_bytes(), &new.encode());
                progress.inc(1);
            }
            report.packs_rewritten += 1;
        }
        progress.finish();
        if let Some(mut w) = writer {
            w.sync()?;
        }
        txn.commit()?;
        // Only now, with the index pointing at the new pack, are the old packs garbage.
        for n in rewrite {
            let p = pack::pack_path(self.store.packs_dir(), n);
            let _ = fs::remove_file(&p);
        }
        self.store.pack_reader().reset();
        self.store.db.compact();
        Ok(report)
    }

    /// Check everything. `promised` holds the ids a remote's index lists (dvx-remote's
    /// `promised_ids`): a partial clone lacks them locally, which is not damage.
    pub fn fsck(&self, promised: &HashSet<Id>, progress: &dyn Progress) -> Result<FsckReport> {
        // "All good" about a store that does not exist would mislead.
        if self.nothing_fetched() {
            return Err(self.nothing_fetched_error());
        }
        let mut report = FsckReport::default();
        // Every table file of every column family, checksums verified. Derivable families are
        // rebuilt when this fsck may write; the others are reported, and not scanned further.
        let mut damaged: HashSet<&str> = HashSet::new();
        for cf in ALL_CFS {
            let Err(detail) = self.store.db.verify_cf(cf) else {
                continue;
            };
            match self.rebuild_derivable(cf) {
                Ok(Some(what)) => report.repaired.push(what),
                Ok(None) => {
                    damaged.insert(cf);
                    report
                        .problems
                        .push(Problem::new("table", cf.to_string(), detail));
                }
                Err(e) => {
                    damaged.insert(cf);
                    report.problems.push(Problem::new(
                        "table",
                        cf.to_string(),
                        format!("{detail}; rebuilding failed: {e}"),
                    ));
                }
            }
        }
        if damaged.contains(CF_CHUNKS) || damaged.contains(CF_OBJECTS) || damaged.contains(CF_REFS)
        {
            return Ok(report);
        }
        self.check_head_and_lock(promised, &mut report)?;
        // Chunks: read and re-hash each, in parallel.
        let chunks = self.store.db.scan_prefix(CF_CHUNKS, b"")?;
        report.chunks = chunks.len() as u64;
        progress.start("checking chunks", chunks.len() as u64);
        let bad: Vec<Problem> = chunks
            .par_iter()
            .filter_map(|(k, v)| {
                progress.inc(1);
                let id = Id::from_slice(k)?;
                let res =
                    ChunkLoc::decode(id, v).and_then(|loc| self.store.pack_reader().read(id, &loc));
                res.err()
                    .map(|e| Problem::new("chunk", id.to_hex(), e.to_string()))
            })
            .collect();
        progress.finish();
        report.problems.extend(bad);
        // Objects: hash, decode, and check what they reference exists.
        let objects = self.store.db.scan_prefix(CF_OBJECTS, b"")?;
        report.objects = objects.len() as u64;
        progress.start("checking objects", objects.len() as u64);
        let bad: Vec<Problem> = objects
            .par_iter()
            .flat_map_iter(|(k, v)| {
                progress.inc(1);
                self.check_object(k, v, promised).unwrap_or_else(|e| {
                    vec![Problem::new("object", hex::encode(&k[1..]), e.to_string())]
                })
            })
            .collect();
        progress.finish();
        report.problems.extend(bad);
        for (k, _) in self.store.db.scan_prefix(CF_REFS, b"")? {
            report.refs += 1;
            let name = String::from_utf8_lossy(&k).into_owned();
            match self.store.ref_target(&name) {
                Ok(Some(id)) => {
                    if !self.store.has_object(ObjKind::Commit, &id)? {
                        report.problems.push(Problem::new(
                            "ref",
                            name,
                            format!("points to missing commit {id}"),
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => report
                    .problems
                    .push(Problem::new("ref", name, e.to_string())),
            }
        }
        Ok(report)
    }

    /// Rebuild a damaged column family that can be derived from the rest, when this handle
    /// may write: the stat cache starts empty, the lineage indexes are built again from commits
    /// and run records on next use. `None` when it cannot be rebuilt here.
    fn rebuild_derivable(&self, cf: &str) -> Result<Option<String>> {
        if !self.can_write() {
            return Ok(None);
        }
        match cf {
            CF_STAT => {
                self.store.db.reset_cf(cf)?;
                Ok(Some(
                    "the stat cache was damaged: rebuilt (files are hashed again once)".into(),
                ))
            }
            CF_LINEAGE => {
                self.store.db.reset_cf(cf)?;
                crate::lineage::mark_unindexed(&self.store)?;
                Ok(Some(
                    "the lineage index was damaged: cleared; the next `dvx lineage` (or `dvx fsck --reindex`) builds it again".into(),
                ))
            }
            _ => Ok(None),
        }
    }

    /// HEAD names a commit the store has, and dvx.lock pins one it has or a remote promises.
    fn check_head_and_lock(&self, promised: &HashSet<Id>, report: &mut FsckReport) -> Result<()> {
        match self.store.head_commit() {
            Ok(Some(id)) if !self.store.has_object(ObjKind::Commit, &id)? => {
                report.problems.push(Problem::new(
                    "ref",
                    "HEAD".into(),
                    format!("points to missing commit {id}"),
                ))
            }
            Ok(_) => {}
            Err(e) => report
                .problems
                .push(Problem::new("ref", "HEAD".into(), e.to_string())),
        }
        match LockFile::read(&self.root) {
            Ok(Some(lock)) => {
                if !self.store.has_object(ObjKind::Commit, &lock.commit)?
                    && !promised.contains(&lock.commit)
                {
                    report.problems.push(Problem::new(
                        "dvx.lock",
                        lock.commit.to_hex(),
                        "pins a commit this store does not have and no remote index lists".into(),
                    ));
                }
            }
            Ok(None) => {}
            Err(e) => report
                .problems
                .push(Problem::new("dvx.lock", String::new(), e.to_string())),
        }
        Ok(())
    }

    fn check_object(
        &self,
        key: &[u8],
        bytes: &[u8],
        promised: &HashSet<Id>,
    ) -> Result<Vec<Problem>> {
        let mut out = Vec::new();
        let (Some(kind), Some(id)) = (ObjKind::from_byte(key[0]), Id::from_slice(&key[1..])) else {
            return Ok(vec![Problem {
                kind: "object".into(),
                id: hex::encode(key),
                problem: "malformed key".into(),
            }]);
        };
        let mut p = |what: &str| {
            out.push(Problem {
                kind: kind.name().into(),
                id: id.to_hex(),
                problem: what.to_string(),
            })
        };
        match kind {
            ObjKind::File => {
                let m = FileManifest::decode(id, bytes)?;
                let mut h = blake3::Hasher::new();
                for (c, _) in &m.chunks {
                    match self.store.read_chunk(c) {
                        Ok(data) => {
                            h.update(&data);
                        }
                        Err(StoreError::MissingObject { .. }) if promised.contains(c) => {
                            return Ok(out);
                        }
                        Err(e) => {
                            p(&format!("chunk {}: {e}", c.short()));
                            return Ok(out);
                        }
                    }
                }
                if Id::from_hash(h.finalize()) != id {
                    p("content does not match its id");
                }
            }
            ObjKind::Tree => {
                if Id::of(bytes) != id {
                    p("content does not match its id");
                    return Ok(out);
                }
                crate::guard::tree_problems(id, bytes)
                    .iter()
                    .for_each(|w| p(w));
                for e in Tree::decode(id, bytes)?.entries {
                    let ok = match e.kind {
                        EntryKind::Dir => self.store.has_object(ObjKind::Tree, &e.id)?,
                        _ => self.store.has_file(&e.id)? || promised.contains(&e.id),
                    };
                    if !ok {
                        p(&format!(
                            "entry {:?} names missing {} {}",
                            e.name,
                            e.kind.as_str(),
                            e.id
                        ));
                    }
                }
            }
            ObjKind::Commit => {
                if Id::of(bytes) != id {
                    p("content does not match its id");
                    return Ok(out);
                }
                let c = Commit::decode(id, bytes)?;
                crate::guard::stored_commit_problems(&self.store, &c)
                    .iter()
                    .for_each(|w| p(w));
                if !self.store.has_object(ObjKind::Tree, &c.tree)? {
                    p(&format!("names missing tree {}", c.tree));
                }
                for parent in &c.parents {
                    if !self.store.has_object(ObjKind::Commit, parent)? {
                        p(&format!("names missing parent {parent}"));
                    }
                }
            }
            ObjKind::Run => {
                if Id::of(bytes) != id {
                    p("content does not match its id");
                }
            }
        }
        Ok(out)
    }
}

/// Every 64-hex-digit string inside a JSON document (the ids a run record names).
pub fn referenced_ids(bytes: &[u8]) -> Vec<Id> {
    fn walk(v: &serde_json::Value, out: &mut Vec<Id>) {
        match v {
            serde_json::Value::String(s) if s.len() == 64 => {
                if let Ok(id) = s.parse() {
                    out.push(id);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        walk(&v, &mut out);
    }
    out
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        Problem {
            kind: "store".into(),
            id: String::new(),
            problem: e.to_string(),
        }
    }
}
