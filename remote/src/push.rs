//! Push: upload what the remote lacks, in packs, then move its refs conditionally.
//!
//! Packs go up in two waves. Chunks first, many packs at once; then the objects that name
//! other objects (file manifests, trees, run records, commits), children before parents, one
//! pack after another. So whenever an object is in a remote index, everything it reaches is
//! too, and the walk below stops at any object the remote has: a push killed midway and run
//! again uploads only what is still missing.

use std::collections::HashSet;

use serde::Serialize;

use super::layout::{self, Kind, PackBuilder};
use super::{RefState, Remote, RemoteErrorKind, RemoteIndex};
use crate::error::{RemoteError, Result};
use crate::{Project, SyncStatus};
use dvx_store::db::ObjKind;
use dvx_store::id::Id;
use dvx_store::object::{EntryKind, FileManifest, Tree};
use dvx_store::pack::{self, ChunkLoc};
use dvx_store::refs::{Head, HEADS, REMOTES, TAGS};
use dvx_store::Progress;
use dvx_store::Repo;
use dvx_store::StoreError;

#[derive(Debug, Clone, Serialize)]
pub struct RefUpdate {
    /// Full ref name (`refs/heads/main`).
    pub name: String,
    pub old: Option<Id>,
    pub new: Id,
    /// new, fast-forward, forced or up to date (push); new, updated, up to date or kept local
    /// (fetch)
    pub status: SyncStatus,
}

#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    pub remote: String,
    pub url: String,
    pub dry_run: bool,
    pub refs: Vec<RefUpdate>,
    /// Objects uploaded (chunks included) and their stored bytes.
    pub objects: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub packs: u64,
}

#[derive(Debug, Default, Clone)]
pub struct PushOptions {
    /// Branches or tags to push; empty: the current branch.
    pub refs: Vec<String>,
    /// Every branch and tag.
    pub all: bool,
    /// Replace remote refs even when that is not a fast-forward.
    pub force: bool,
    /// Work out what would be uploaded; upload nothing.
    pub dry_run: bool,
}

/// What a push must upload: chunks, then other objects children first.
#[derive(Default)]
pub struct Plan {
    /// Chunks by id, with their stored size (where they are is looked up as they go up: a
    /// million locations would be another 24 MB held).
    pub chunks: Vec<(Id, u32)>,
    pub meta: Vec<(Kind, Id)>,
    pub chunk_bytes: u64,
}

impl Project<'_> {
    /// The local refs a push names, as (full name, commit).
    pub fn refs_to_push(&self, names: &[String], all: bool) -> Result<Vec<(String, Id)>> {
        let mut out = Vec::new();
        if all {
            for prefix in [HEADS, TAGS] {
                for (n, id) in self.store.list_refs(prefix)? {
                    out.push((format!("{prefix}{n}"), id));
                }
            }
            return Ok(out);
        }
        if names.is_empty() {
            return match self.store.head()? {
                Head::Branch(b) => {
                    let name = format!("{HEADS}{b}");
                    let id = self
                        .store
                        .ref_target(&name)?
                        .ok_or(StoreError::NothingTracked)?;
                    Ok(vec![(name, id)])
                }
                Head::Detached(commit) => Err(self.detached(commit, true)),
            };
        }
        for n in names {
            let mut found = false;
            for prefix in [HEADS, TAGS] {
                let full = if n.starts_with("refs/") {
                    n.clone()
                } else {
                    format!("{prefix}{n}")
                };
                if let Some(id) = self.store.ref_target(&full)? {
                    out.push((full, id));
                    found = true;
                    break;
                }
            }
            if !found {
                return Err(RemoteError::Store(StoreError::UnknownRevision(n.clone())));
            }
        }
        Ok(out)
    }

    /// Everything reachable from `tips` and `runs` (run records) that the remote lacks.
    pub fn push_plan(&self, idx: &RemoteIndex, tips: &[Id], runs: &[Id]) -> Result<Plan> {
        let st = &self.store;
        let mut plan = Plan::default();
        let mut seen: HashSet<(Kind, Id)> = HashSet::new();
        let mut stack: Vec<(Kind, Id, bool)> = runs
            .iter()
            .map(|r| (Kind::Run, *r, false))
            .chain(tips.iter().map(|t| (Kind::Commit, *t, false)))
            .collect();
        let mut dedup_at = DEDUP_MIN;
        let leaf = |id: Id| -> Result<(Kind, Id, bool)> {
            Ok(if st.has_object(ObjKind::File, &id)? {
                (Kind::File, id, false)
            } else {
                (Kind::Chunk, id, false)
            })
        };
        while let Some((kind, id, expanded)) = stack.pop() {
            if expanded {
                plan.meta.push((kind, id));
                continue;
            }
            // Chunks, by far the most, are deduplicated in the list itself now and then (a
            // set of a million ids costs more memory than the list and a few sorts); the
            // list of two commits of a million files then peaks at 1.25 times the distinct
            // chunks, not twice.
            if idx.has(kind, &id) || (kind != Kind::Chunk && !seen.insert((kind, id))) {
                continue;
            }
            match kind {
                Kind::Chunk => {
                    let loc = st
                        .chunk_loc(&id)?
                        .ok_or(StoreError::MissingObject { kind: "chunk", id })?;
                    plan.chunks.push((id, loc.stored_len));
                    if plan.chunks.len() >= dedup_at {
                        dedup_chunks(&mut plan.chunks);
                        dedup_at = (plan.chunks.len() * 5 / 4).max(DEDUP_MIN);
                    }
                    continue;
                }
                _ => stack.push((kind, id, true)),
            }
            match kind {
                Kind::Commit => {
                    let c = st.get_commit(&id)?;
                    stack.extend(c.parents.iter().map(|p| (Kind::Commit, *p, false)));
                    stack.push((Kind::Tree, c.tree, false));
                    stack.extend(c.runs.iter().map(|r| (Kind::Run, *r, false)));
                }
                Kind::Tree => {
                    let bytes = st.get_tree_bytes(&id)?;
                    for e in Tree::decode_ref(id, &bytes)? {
                        if e.kind == EntryKind::Dir {
                            stack.push((Kind::Tree, e.id, false));
                        } else {
                            stack.push(leaf(e.id)?);
                        }
                    }
                }
                Kind::File => {
                    let bytes =
                        st.get_object(ObjKind::File, &id)?
                            .ok_or(StoreError::MissingObject {
                                kind: "file manifest",
                                id,
                            })?;
                    for (c, _) in FileManifest::decode(id, &bytes)?.chunks {
                        stack.push((Kind::Chunk, c, false));
                    }
                }
                Kind::Run => {
                    let bytes =
                        st.get_object(ObjKind::Run, &id)?
                            .ok_or(StoreError::MissingObject {
                                kind: "run record",
                                id,
                            })?;
                    // A record names its logs and the data it read and wrote; whatever of
                    // that this store holds travels with it.
                    for r in dvx_store::maint::referenced_ids(&bytes) {
                        if r == id {
                            continue;
                        }
                        if st.has_object(ObjKind::Tree, &r)? {
                            stack.push((Kind::Tree, r, false));
                        } else if st.has_object(ObjKind::File, &r)? {
                            stack.push((Kind::File, r, false));
                        } else if st.chunk_loc(&r)?.is_some() {
                            stack.push((Kind::Chunk, r, false));
                        }
                    }
                }
                Kind::Chunk => {}
            }
        }
        dedup_chunks(&mut plan.chunks);
        plan.chunk_bytes = plan.chunks.iter().map(|(_, n)| u64::from(*n)).sum();
        Ok(plan)
    }

    /// Push refs to a remote: upload the objects it lacks, then move its refs.
    pub fn push(
        &self,
        remote: &Remote,
        opts: &PushOptions,
        progress: &dyn Progress,
    ) -> Result<PushReport> {
        if self.nothing_fetched() {
            return Err(self.nothing_fetched_error().into());
        }
        let with_remote = |e: RemoteError| match e {
            RemoteError::Remote {
                remote: r,
                message,
                kind,
            } if r.is_empty() => RemoteError::Remote {
                remote: remote.name.clone(),
                message,
                kind,
            },
            e => e,
        };
        let local = self
            .refs_to_push(&opts.refs, opts.all)
            .map_err(with_remote)?;
        let mut report = PushReport {
            remote: remote.name.clone(),
            url: remote.url.clone(),
            dry_run: opts.dry_run,
            ..Default::default()
        };
        match remote.check_format(!opts.dry_run) {
            // A dry run against a remote nothing was pushed to yet: everything would go up.
            Err(RemoteError::Remote {
                kind: RemoteErrorKind::NotFound,
                ..
            }) if opts.dry_run => {}
            r => r?,
        }
        // Decide each ref before uploading anything.
        let mut moves: Vec<(String, Option<RefState>, Id)> = Vec::new();
        for (name, id) in &local {
            let state = remote.read_ref(name)?;
            let old = state.as_ref().map(|s| s.commit);
            let status = match old {
                None => SyncStatus::New,
                Some(o) if o == *id => SyncStatus::UpToDate,
                Some(o) if name.starts_with(HEADS) && self.store.is_ancestor(&o, id)? => {
                    SyncStatus::FastForward
                }
                Some(_) if opts.force => SyncStatus::Forced,
                Some(o) => {
                    let why = if self.store.has_object(ObjKind::Commit, &o)? {
                        "the remote's is not an ancestor of yours"
                    } else {
                        "the remote has commits you do not have"
                    };
                    return Err(RemoteError::Remote {
                        remote: remote.name.clone(),
                        message: format!(
                            "rejected {name}: {why} (remote {}, local {})",
                            o.short(),
                            id.short()
                        ),
                        kind: RemoteErrorKind::Rejected,
                    });
                }
            };
            report.refs.push(RefUpdate {
                name: name.clone(),
                old,
                new: *id,
                status,
            });
            if status != SyncStatus::UpToDate {
                moves.push((name.clone(), state, *id));
            }
        }
        let idx = remote.load_index()?;
        let tips: Vec<Id> = moves.iter().map(|m| m.2).collect();
        let runs = self.run_cache_records(remote)?;
        let plan = self.push_plan(&idx, &tips, &runs)?;
        report.chunks = plan.chunks.len() as u64;
        report.objects = (plan.chunks.len() + plan.meta.len()) as u64;
        if opts.dry_run {
            report.bytes = plan.chunk_bytes;
            return Ok(report);
        }
        let (packs, bytes) = self.upload(remote, plan, progress)?;
        report.packs = packs;
        report.bytes = bytes;
        // Refs last: the data they name is all there now.
        for (name, state, id) in &moves {
            remote.update_ref(name, state.as_ref(), id)?;
        }
        // The remote's default branch: the one checked out here, if it went up.
        let current = match self.store.head()? {
            Head::Branch(b) => Some(format!("{HEADS}{b}")),
            Head::Detached(_) => None,
        };
        let default = moves
            .iter()
            .find(|m| Some(&m.0) == current.as_ref())
            .or_else(|| moves.iter().find(|m| m.0.starts_with(HEADS)));
        if let Some((name, _, _)) = default {
            if remote.get("HEAD")?.is_none() {
                remote.put_new("HEAD", format!("ref: {name}\n").into_bytes())?;
            }
        }
        Ok(report)
    }

    /// Build and upload the plan's packs; returns (packs, stored bytes).
    fn upload(&self, remote: &Remote, plan: Plan, progress: &dyn Progress) -> Result<(u64, u64)> {
        progress.start_bytes("uploading", plan.chunk_bytes);
        let mut packs = 0u64;
        let mut bytes = 0u64;
        let mut set: Uploads = tokio::task::JoinSet::new();
        // Waits for one upload to end; returns its bytes.
        let mut wait_one = |set: &mut Uploads| -> Result<u64> {
            if let Some(r) = remote.block_on(set.join_next()) {
                match r {
                    Ok(Ok((_, n))) => {
                        progress.inc(n);
                        packs += 1;
                        bytes += n;
                        // Tests kill a push here: part uploaded, no ref moved.
                        dvx_store::fsutil::fault_point("after-pack");
                        return Ok(n);
                    }
                    Ok(Err((key, e))) => return Err(remote.err(&key, e)),
                    Err(e) => {
                        return Err(remote.corrupt(format!("upload task failed: {e}")));
                    }
                }
            }
            Ok(0)
        };
        // Wave 1: chunks, several packs in flight, but never more than `IN_FLIGHT` bytes of
        // them: each pack is built from the plan as it goes up, not all groups first.
        let mut group: Vec<(Id, ChunkLoc)> = Vec::new();
        let mut group_bytes = 0usize;
        let mut in_flight = 0u64;
        let mut send = |g: &[(Id, ChunkLoc)], set: &mut Uploads| -> Result<()> {
            // Room first, then the pack: what is built counts against the limit too.
            let n: u64 = g
                .iter()
                .map(|(_, l)| u64::from(l.stored_len) + layout::RECORD_HEADER as u64)
                .sum();
            while !set.is_empty()
                && (set.len() >= remote.jobs || in_flight + n > crate::fetch::IN_FLIGHT as u64)
            {
                in_flight -= wait_one(set)?;
            }
            let pack = self.chunk_pack(g)?;
            in_flight += pack.1.len() as u64;
            spawn_upload(remote, set, pack);
            Ok(())
        };
        // A window of chunks at a time: their locations looked up, then read in the local
        // packs' order.
        for window in plan.chunks.chunks(LOC_WINDOW) {
            let mut located: Vec<(Id, ChunkLoc)> = window
                .iter()
                .map(|(id, _)| {
                    let loc = self.store.chunk_loc(id)?.ok_or(StoreError::MissingObject {
                        kind: "chunk",
                        id: *id,
                    })?;
                    Ok((*id, loc))
                })
                .collect::<Result<_>>()?;
            located.sort_unstable_by_key(|(_, l)| (l.pack, l.offset));
            for (id, loc) in located {
                let n = loc.stored_len as usize + layout::RECORD_HEADER;
                if !group.is_empty() && group_bytes + n > remote.pack_size {
                    send(&group, &mut set)?;
                    group.clear();
                    group_bytes = 0;
                }
                group.push((id, loc));
                group_bytes += n;
            }
        }
        if !group.is_empty() {
            send(&group, &mut set)?;
        }
        while !set.is_empty() {
            wait_one(&mut set)?;
        }
        // Wave 2: the rest, in order, one pack at a time.
        let mut pb = PackBuilder::new();
        for (kind, id) in plan.meta {
            let Some(ok) = kind.obj_kind() else { continue };
            let raw = self
                .store
                .get_object(ok, &id)?
                .ok_or(StoreError::MissingObject {
                    kind: ok.name(),
                    id,
                })?;
            if kind != Kind::File && Id::of(&raw) != id {
                return Err(RemoteError::Store(StoreError::corrupt(
                    ok.name(),
                    id,
                    "content does not match its id",
                )));
            }
            let (codec, stored) = pack::encode_chunk(&raw);
            if !pb.is_empty() && pb.len() + stored.len() > remote.pack_size {
                spawn_upload(remote, &mut set, std::mem::take(&mut pb).finish());
                wait_one(&mut set)?;
            }
            pb.add(kind, id, codec, raw.len() as u32, &stored);
        }
        if !pb.is_empty() {
            spawn_upload(remote, &mut set, pb.finish());
            wait_one(&mut set)?;
        }
        progress.finish();
        Ok((packs, bytes))
    }

    /// A pack of chunks, read from the local packs (in their order) and verified on the way,
    /// straight into the pack being built.
    fn chunk_pack(&self, group: &[(Id, ChunkLoc)]) -> Result<(Id, Vec<u8>, Vec<u8>)> {
        let reader = self.store.pack_reader();
        let total: usize = group
            .iter()
            .map(|(_, l)| l.stored_len as usize + layout::RECORD_HEADER)
            .sum();
        let mut pb = PackBuilder::with_capacity(total);
        for (id, loc) in group {
            let b = reader.read_stored(*id, loc)?;
            pack::verify_stored(*id, loc.codec, loc.raw_len, &b)?;
            pb.add(Kind::Chunk, *id, loc.codec, loc.raw_len, &b);
        }
        Ok(pb.finish())
    }

    /// Remember where the remote's branches are now (`refs/remotes/REMOTE/BRANCH`). Best
    /// effort: a busy writer lock only delays it to the next fetch.
    pub fn record_remote_refs(&self, remote: &str, refs: &[RefUpdate]) -> Result<()> {
        let updates: Vec<(String, Id)> = refs
            .iter()
            .filter_map(|r| {
                r.name
                    .strip_prefix(HEADS)
                    .map(|b| (format!("{REMOTES}{remote}/{b}"), r.new))
            })
            .collect();
        if updates.is_empty() || remote.contains(['/', ':']) {
            return Ok(());
        }
        let write = |repo: &Repo| -> Result<()> {
            let txn = repo.store.txn()?;
            for (n, id) in &updates {
                txn.set_ref(n, id);
            }
            Ok(txn.commit()?)
        };
        if self.can_write() {
            return write(self);
        }
        if let Some(w) = Repo::try_writer(&self.root, "dvx push")? {
            write(&w)?;
        }
        Ok(())
    }
}

/// The plan's chunk list is first deduplicated at this length.
const DEDUP_MIN: usize = 1 << 16;

/// Chunks whose locations are looked up together before they are read.
const LOC_WINDOW: usize = 1 << 16;

/// Sort chunks by id and drop repeats.
fn dedup_chunks(chunks: &mut Vec<(Id, u32)>) {
    chunks.sort_unstable_by_key(|(id, _)| *id);
    chunks.dedup_by_key(|(id, _)| *id);
}

type Built = (Id, Vec<u8>, Vec<u8>);
type Uploads =
    tokio::task::JoinSet<std::result::Result<(String, u64), (String, object_store::Error)>>;

/// Upload a pack, then its index (an index on the remote means a complete pack).
fn spawn_upload(remote: &Remote, set: &mut Uploads, (id, pack, index): Built) {
    let store = remote.store.clone();
    let n = pack.len() as u64;
    set.spawn_on(
        async move {
            let pk = layout::pack_key(&id);
            let ik = layout::index_key(&id);
            store
                .put(&object_store::path::Path::from(pk.as_str()), pack.into())
                .await
                .map_err(|e| (pk.clone(), e))?;
            store
                .put(&object_store::path::Path::from(ik.as_str()), index.into())
                .await
                .map_err(|e| (ik.clone(), e))?;
            Ok((pk, n))
        },
        remote.rt.handle(),
    );
}
