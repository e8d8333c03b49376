//! Fetch: bring a remote's refs and the objects they need into the local store.
//!
//! Objects that name others (commits, trees, file manifests, run records) are small and all
//! come down; chunks come down only for what is wanted: the tips of the remote's branches, one
//! branch (pull), some paths of it (partial pull), or all history. Every object is verified
//! against its id before it is written; a file's manifest is checked by hashing the file
//! whole once its chunks are in. Chunks are committed in batches, so an interrupted fetch
//! keeps what it finished; commits, trees and refs land in one last transaction.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;

use super::layout::{Entry, Kind};
use super::push::RefUpdate;
use super::spool::{Objects, Spool};
use super::{Remote, RemoteErrorKind, RemoteIndex};
use crate::error::{RemoteError, Result};
use crate::{Project, SyncStatus};
use dvx_store::id::Id;
use dvx_store::object::{Commit, EntryKind, FileManifest, Tree};
use dvx_store::pack::{self, CODEC_RAW};
use dvx_store::refs::{HEADS, REMOTES, TAGS};
use dvx_store::Progress;
use dvx_store::Repo;
use dvx_store::StoreError;

/// Which chunks to bring (all metadata always comes).
#[derive(Clone, Debug)]
pub enum Want {
    /// None: commits, trees, manifests and records only (`clone --no-checkout`).
    Nothing,
    /// What the tips of every remote branch and tag hold.
    Tips,
    /// What one branch's tip holds, or only some paths of it.
    Branch { branch: String, paths: Vec<String> },
    /// Every commit's data.
    History,
    /// One commit (or some paths of it), leaving refs alone: an import from another project.
    Commit { commit: Id, paths: Vec<String> },
}

#[derive(Debug, Default, Serialize)]
pub struct FetchReport {
    pub remote: String,
    pub url: String,
    /// Remote branches and tags and where the local copies moved.
    pub refs: Vec<RefUpdate>,
    /// The remote's default branch.
    pub head: Option<String>,
    /// Objects written (chunks included) and the bytes downloaded.
    pub objects: u64,
    pub chunks: u64,
    pub bytes: u64,
    /// Run records that came down (their lineage can be indexed).
    pub new_runs: Vec<Id>,
    /// Run-cache entries added: successful runs of the remote's whose outputs came too.
    pub run_cache: u64,
}

/// Commits, trees, manifests and records downloaded (spooled to disk), not yet written.
struct Meta {
    objs: Spool,
}

impl Meta {
    /// Downloaded bytes first, then the store's.
    fn get(&self, repo: &Repo, kind: Kind, id: &Id) -> Result<Option<Vec<u8>>> {
        if let Some(b) = self.objs.read(kind, id)? {
            return Ok(Some(b));
        }
        match kind.obj_kind() {
            Some(k) => Ok(repo.store.get_object(k, id)?),
            None => Ok(None),
        }
    }

    fn has(&self, repo: &Repo, kind: Kind, id: &Id) -> Result<bool> {
        if self.objs.contains(kind, id) {
            return Ok(true);
        }
        match kind.obj_kind() {
            Some(k) => Ok(repo.store.has_object(k, id)?),
            None => Ok(false),
        }
    }
}

impl Project<'_> {
    pub fn fetch(
        &self,
        remote: &Remote,
        want: &Want,
        progress: &dyn Progress,
    ) -> Result<FetchReport> {
        remote.check_format(false)?;
        let (refs, head) = remote.list_refs()?;
        for (name, _) in &refs {
            crate::incoming::check_remote_ref(&remote.name, name)?;
        }
        let idx = remote.load_index()?;
        let mut report = FetchReport {
            remote: remote.name.clone(),
            url: remote.url.clone(),
            head,
            ..Default::default()
        };

        // 1. Every object but chunks that this store lacks.
        let mut needed: Vec<(Kind, Id)> =
            idx.objects().filter(|(k, _)| *k != Kind::Chunk).collect();
        needed.sort();
        let typed: Vec<_> = needed
            .iter()
            .filter_map(|(k, id)| Some((k.obj_kind()?, *id)))
            .collect();
        let lacking: HashSet<Id> = self
            .store
            .missing_objects(&typed)?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let needed: Vec<(Kind, Id)> = needed
            .into_iter()
            .filter(|(_, id)| lacking.contains(id))
            .collect();
        let meta = Meta {
            objs: self.download_meta(remote, &idx, &needed)?,
        };
        // Nothing is written before every tree and commit that came down passes.
        crate::incoming::Incoming::of(&remote.name, &meta.objs)
            .check(&|id| self.store.get_object(dvx_store::db::ObjKind::Tree, id))?;
        // Run records too: a malformed one, or one whose outputs would land outside the
        // workspace, stops the fetch before anything is written.
        let offers = self.run_cache_offers(remote, &idx, &meta.objs, want)?;

        // 2. The chunks wanted, and the manifests to check once they are in.
        let tips: Vec<Id> = match want {
            Want::Nothing => Vec::new(),
            Want::Tips | Want::History => refs.iter().map(|(_, s)| s.commit).collect(),
            Want::Branch { branch, .. } => {
                let name = format!("{HEADS}{branch}");
                let s =
                    refs.iter()
                        .find(|(n, _)| *n == name)
                        .ok_or_else(|| RemoteError::Remote {
                            remote: remote.name.clone(),
                            message: format!("the remote has no branch {branch:?}"),
                            kind: RemoteErrorKind::NotFound,
                        })?;
                vec![s.1.commit]
            }
            Want::Commit { commit, .. } => vec![*commit],
        };
        let paths: &[String] = match want {
            Want::Branch { paths, .. } | Want::Commit { paths, .. } => paths,
            _ => &[],
        };
        let outputs: Vec<(Kind, Id)> = offers
            .iter()
            .flat_map(|o| o.outputs.iter())
            .map(|(k, id)| {
                Ok(match k {
                    EntryKind::Dir => (Kind::Tree, *id),
                    _ if meta.has(self, Kind::File, id)? => (Kind::File, *id),
                    _ => (Kind::Chunk, *id),
                })
            })
            .collect::<Result<_>>()?;
        let (chunks, files) = self.wanted_chunks(
            remote,
            &idx,
            &meta,
            &tips,
            &outputs,
            matches!(want, Want::History),
            paths,
        )?;
        let (n, bytes) = self.download_chunks(remote, &idx, &chunks, progress)?;
        report.chunks = n;
        report.bytes = bytes;
        for f in files {
            self.check_file(remote, &meta, &f)?;
        }

        // 3. Objects and refs, in one transaction.
        let txn = self.store.txn()?;
        for (kind, id) in meta.objs.keys() {
            if let Some(k) = kind.obj_kind() {
                let Some(bytes) = meta.objs.read(kind, &id)? else {
                    continue;
                };
                txn.put_object(k, &id, &bytes);
                // Objects are content-addressed: written in pieces, only the refs below
                // make them reachable (a million files' trees and manifests otherwise sit in
                // one batch, and again in the memtable).
                txn.flush_over(8 << 20)?;
            }
            if kind == Kind::Run {
                report.new_runs.push(id);
            }
        }
        for o in &offers {
            txn.put_run_cache(&o.key, &o.run);
        }
        report.run_cache = offers.len() as u64;
        report.objects = meta.objs.len() as u64 + n;
        let tracking = !remote.name.contains(['/', ':']);
        let refs = if matches!(want, Want::Commit { .. }) {
            Vec::new()
        } else {
            refs
        };
        for (name, s) in &refs {
            let (local, status) = if let Some(b) = name.strip_prefix(HEADS) {
                if !tracking {
                    continue;
                }
                let local = format!("{REMOTES}{}/{b}", remote.name);
                (local, None)
            } else if let Some(t) = name.strip_prefix(TAGS) {
                // Tags are shared names: a local tag that differs is left alone.
                let local = format!("{TAGS}{t}");
                match self.store.ref_target(&local)? {
                    Some(id) if id != s.commit => (local, Some(SyncStatus::KeptLocal)),
                    _ => (local, None),
                }
            } else {
                continue;
            };
            let old = self.store.ref_target(&local)?;
            let status = status.unwrap_or(match old {
                None => SyncStatus::New,
                Some(o) if o == s.commit => SyncStatus::UpToDate,
                Some(_) => SyncStatus::Updated,
            });
            if status == SyncStatus::New || status == SyncStatus::Updated {
                txn.set_ref(&local, &s.commit);
            }
            report.refs.push(RefUpdate {
                name: local,
                old,
                new: s.commit,
                status,
            });
        }
        txn.commit()?;
        Ok(report)
    }

    /// Download objects (not chunks), verified, into a spool.
    fn download_meta(
        &self,
        remote: &Remote,
        idx: &RemoteIndex,
        needed: &[(Kind, Id)],
    ) -> Result<Spool> {
        // `needed` comes from the index itself: nothing is absent.
        let (groups, _) = idx.by_pack(needed);
        let mut out = Spool::new(&self.tmp_dir())?;
        remote.download_each(groups, &mut |pack, entries, data| {
            for (e, stored) in entries.iter().zip(data) {
                let raw = decode(remote, &pack, e, &stored)?;
                if e.kind == Kind::File {
                    FileManifest::decode(e.id, &raw)
                        .map_err(|err| remote.corrupt(format!("file manifest {}: {err}", e.id)))?;
                }
                out.put(e.kind, e.id, &raw)?;
            }
            Ok(())
        })?;
        out.seal()?;
        Ok(out)
    }

    /// The chunks (missing here) that the tips and `extra` (run-cache outputs) hold, as
    /// positions in `idx` in the order to read them, and the new manifests whose files those
    /// chunks complete.
    #[allow(clippy::too_many_arguments)]
    fn wanted_chunks(
        &self,
        remote: &Remote,
        idx: &RemoteIndex,
        meta: &Meta,
        tips: &[Id],
        extra: &[(Kind, Id)],
        history: bool,
        paths: &[String],
    ) -> Result<(Vec<u32>, Vec<Id>)> {
        let missing = |kind: &str, id: &Id| {
            remote.corrupt(format!("the remote lacks {kind} {id}, which its refs need"))
        };
        let mut seen: HashSet<(Kind, Id)> = HashSet::new();
        let mut chunks = Vec::new();
        let mut files = Vec::new();
        let mut stack: Vec<(Kind, Id)> = extra.to_vec();
        for tip in tips {
            let bytes = meta
                .get(self, Kind::Commit, tip)?
                .ok_or_else(|| missing("commit", tip))?;
            let c = Commit::decode(*tip, &bytes)?;
            if paths.is_empty() {
                stack.push((Kind::Commit, *tip));
                continue;
            }
            for p in paths {
                match self.find_in_tree(meta, &c.tree, p)? {
                    Some(node) => stack.push(node),
                    None => {
                        return Err(RemoteError::Store(StoreError::NotInRevision {
                            path: p.clone(),
                            commit: tip.short(),
                        }))
                    }
                }
            }
        }
        while let Some((kind, id)) = stack.pop() {
            // Chunks are many and leaves: deduplicated by sorting their positions at the end.
            if kind != Kind::Chunk && !seen.insert((kind, id)) {
                continue;
            }
            match kind {
                Kind::Commit => {
                    let bytes = meta
                        .get(self, kind, &id)?
                        .ok_or_else(|| missing("commit", &id))?;
                    let c = Commit::decode(id, &bytes)?;
                    stack.push((Kind::Tree, c.tree));
                    stack.extend(c.runs.iter().map(|r| (Kind::Run, *r)));
                    if history {
                        stack.extend(c.parents.iter().map(|p| (Kind::Commit, *p)));
                    }
                }
                Kind::Tree => {
                    let bytes = meta
                        .get(self, kind, &id)?
                        .ok_or_else(|| missing("tree", &id))?;
                    for e in Tree::decode_ref(id, &bytes)? {
                        if e.kind == EntryKind::Dir {
                            stack.push((Kind::Tree, e.id));
                        } else if meta.has(self, Kind::File, &e.id)? {
                            stack.push((Kind::File, e.id));
                        } else {
                            stack.push((Kind::Chunk, e.id));
                        }
                    }
                }
                Kind::File => {
                    let bytes = meta
                        .get(self, kind, &id)?
                        .ok_or_else(|| missing("file manifest", &id))?;
                    let mut any = false;
                    for (c, _) in FileManifest::decode(id, &bytes)?.chunks {
                        if !self.store.has_chunk(&c)? {
                            any = true;
                            stack.push((Kind::Chunk, c));
                        }
                    }
                    if any {
                        files.push(id);
                    }
                }
                Kind::Run => {
                    // The logs of a run come with it; its inputs and outputs are data of
                    // their own commits.
                    let Some(bytes) = meta.get(self, kind, &id)? else {
                        continue;
                    };
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    for f in ["stdout", "stderr"] {
                        if let Some(log) = v.get(f).and_then(|x| x.as_str()?.parse::<Id>().ok()) {
                            if meta.has(self, Kind::File, &log)? {
                                stack.push((Kind::File, log));
                            } else if idx.has(Kind::Chunk, &log) {
                                stack.push((Kind::Chunk, log));
                            }
                        }
                    }
                }
                Kind::Chunk => {
                    if self.store.has_chunk(&id)? {
                        continue;
                    }
                    let Some(pos) = idx.position(Kind::Chunk, &id) else {
                        return Err(missing("chunk", &id));
                    };
                    chunks.push(pos);
                }
            }
        }
        chunks.sort_unstable_by_key(|&p| (idx.place(p), p));
        chunks.dedup();
        Ok((chunks, files))
    }

    /// The node a path names inside a tree (with downloaded trees), if any.
    fn find_in_tree(&self, meta: &Meta, root: &Id, path: &str) -> Result<Option<(Kind, Id)>> {
        let mut cur = (Kind::Tree, *root);
        for name in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
            if cur.0 != Kind::Tree {
                return Ok(None);
            }
            let Some(bytes) = meta.get(self, Kind::Tree, &cur.1)? else {
                return Ok(None);
            };
            let entries = Tree::decode_ref(cur.1, &bytes)?;
            let Some(e) = entries.iter().find(|e| e.name == name) else {
                return Ok(None);
            };
            cur = if e.kind == EntryKind::Dir {
                (Kind::Tree, e.id)
            } else if meta.has(self, Kind::File, &e.id)? {
                (Kind::File, e.id)
            } else {
                (Kind::Chunk, e.id)
            };
        }
        Ok(Some(cur))
    }

    /// Download chunks pack by pack, several at once, verifying each and committing in
    /// batches. Returns (chunks, bytes).
    fn download_chunks(
        &self,
        remote: &Remote,
        idx: &RemoteIndex,
        chunks: &[u32],
        progress: &dyn Progress,
    ) -> Result<(u64, u64)> {
        if chunks.is_empty() {
            return Ok((0, 0));
        }
        let total: u64 = chunks
            .iter()
            .map(|&p| u64::from(idx.at(p).1.stored_len))
            .sum();
        // Requests of at most a pack's size and a share of the bytes in flight, so big packs
        // still spread over connections and memory stays bounded. `chunks` is in read order
        // (pack, then offset), so each request is cut from it as the last one goes out.
        let request = remote.pack_size.min(IN_FLIGHT / remote.jobs).max(1 << 20);
        let mut rest = chunks.iter().copied().peekable();
        let groups = std::iter::from_fn(|| {
            let first = rest.next()?;
            let (pack, e) = idx.at(first);
            let number = idx.place(first).0;
            let mut size = e.stored_len as usize;
            let mut cur = vec![e];
            while let Some(&next) = rest.peek() {
                let (_, e) = idx.at(next);
                if idx.place(next).0 != number || size + e.stored_len as usize > request {
                    break;
                }
                size += e.stored_len as usize;
                cur.push(e);
                rest.next();
            }
            Some((pack, cur))
        });
        progress.start_bytes("downloading", total);
        let mut txn = self.store.txn()?;
        let mut in_txn = 0u64;
        let mut count = 0u64;
        let mut bytes = 0u64;
        let mut handle = |pack: Id, entries: Vec<Entry>, data: Vec<bytes::Bytes>| -> Result<()> {
            entries
                .par_iter()
                .zip(data.par_iter())
                .try_for_each(|(e, b)| {
                    pack::verify_stored(e.id, e.codec, e.raw_len, b).map_err(|_| {
                        remote.corrupt(format!(
                            "chunk {} in pack {} does not match its id",
                            e.id,
                            pack.short()
                        ))
                    })
                })?;
            for (e, b) in entries.iter().zip(&data) {
                txn.put_stored_chunk(e.id, e.codec, e.raw_len, b)?;
                in_txn += b.len() as u64;
                bytes += b.len() as u64;
                count += 1;
                progress.inc(b.len() as u64);
            }
            // Commit now and then: an interrupted fetch keeps what it verified.
            if in_txn >= 256 << 20 {
                let done = std::mem::replace(&mut txn, self.store.txn()?);
                done.commit()?;
                in_txn = 0;
            }
            Ok(())
        };
        remote.download_each(groups, &mut handle)?;
        txn.commit()?;
        progress.finish();
        Ok((count, bytes))
    }

    /// A new manifest is trusted once its chunks, in order, hash to the file's id.
    fn check_file(&self, remote: &Remote, meta: &Meta, id: &Id) -> Result<()> {
        let Some(bytes) = meta.objs.read(Kind::File, id)? else {
            return Ok(());
        };
        let m = FileManifest::decode(*id, &bytes)?;
        let mut h = blake3::Hasher::new();
        for (c, _) in &m.chunks {
            match self.store.read_chunk(c) {
                Ok(data) => {
                    h.update(&data);
                }
                // Not fetched (a partial pull): checked when it is.
                Err(StoreError::MissingObject { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        if Id::from_hash(h.finalize()) != *id {
            return Err(remote.corrupt(format!(
                "file manifest {id} lists chunks that do not make up the file"
            )));
        }
        Ok(())
    }
}

/// The most bytes of chunk data downloading (or, for push, uploading) at once, whatever
/// `jobs` and the pack size: a clone's resident memory must not grow with the remote's pack
/// size. 32 MiB keeps a pull of a million files under 200 MB and still fills a link of
/// 300 MB/s at 100 ms round trips; 64 MiB bought no speed against SeaweedFS here.
pub const IN_FLIGHT: usize = 32 << 20;

/// A group of entries of one pack and their stored bytes.
type Fetched = (Id, Vec<Entry>, Vec<bytes::Bytes>);

/// An object's bytes from what a pack stores, decoded and checked against its id (a file
/// manifest is named by its file's content: checked once the file is read whole).
pub(crate) fn decode(remote: &Remote, pack: &Id, e: &Entry, stored: &[u8]) -> Result<Vec<u8>> {
    let raw = if e.codec == CODEC_RAW {
        stored.to_vec()
    } else {
        let loc = pack::ChunkLoc {
            pack: 0,
            offset: 0,
            stored_len: stored.len() as u32,
            raw_len: e.raw_len,
            codec: e.codec,
        };
        // decode_chunk checks the hash of the decoded bytes, which for objects is their id,
        // but not for manifests: decompress without that check, then check here.
        pack::decompress_unchecked(&loc, stored).map_err(|_| {
            remote.corrupt(format!(
                "{} {} in pack {} cannot be decoded",
                e.kind.name(),
                e.id,
                pack.short()
            ))
        })?
    };
    if e.kind != Kind::File && Id::of(&raw) != e.id {
        return Err(remote.corrupt(format!(
            "{} {} in pack {} does not match its id",
            e.kind.name(),
            e.id,
            pack.short()
        )));
    }
    Ok(raw)
}

impl Remote {
    /// Fetch the stored bytes of groups of entries (each group within one pack).
    pub(crate) fn download(&self, groups: Vec<(Id, Vec<Entry>)>) -> Result<Vec<Fetched>> {
        let mut out = Vec::new();
        self.download_each(groups, &mut |p, e, d| {
            out.push((p, e, d));
            Ok(())
        })?;
        Ok(out)
    }

    /// Fetch groups several at once, handing each to `f` on this thread as it arrives.
    fn download_each(
        &self,
        groups: impl IntoIterator<Item = (Id, Vec<Entry>)>,
        f: &mut dyn FnMut(Id, Vec<Entry>, Vec<bytes::Bytes>) -> Result<()>,
    ) -> Result<()> {
        type Done =
            std::result::Result<(Id, Vec<Entry>, Vec<bytes::Bytes>), (String, object_store::Error)>;
        let mut set: tokio::task::JoinSet<Done> = tokio::task::JoinSet::new();
        let wait_one = |set: &mut tokio::task::JoinSet<Done>,
                        f: &mut dyn FnMut(Id, Vec<Entry>, Vec<bytes::Bytes>) -> Result<()>|
         -> Result<usize> {
            match self.block_on(set.join_next()) {
                Some(Ok(Ok((p, e, d)))) => {
                    if d.len() != e.len()
                        || d.iter()
                            .zip(&e)
                            .any(|(b, e)| b.len() != e.stored_len as usize)
                    {
                        return Err(self.corrupt(format!("pack {} is truncated", p.short())));
                    }
                    let n = group_bytes(&e);
                    f(p, e, d).map(|()| n)
                }
                Some(Ok(Err((key, err)))) => Err(match self.err(&key, err) {
                    RemoteError::Remote {
                        kind: RemoteErrorKind::NotFound,
                        ..
                    } => self.corrupt(format!("{key} is listed in its index but missing")),
                    e => e,
                }),
                Some(Err(e)) => Err(self.corrupt(format!("download task failed: {e}"))),
                None => Ok(0),
            }
        };
        let mut in_flight = 0usize;
        for (pack, entries) in groups {
            let n = group_bytes(&entries);
            while !set.is_empty() && (set.len() >= self.jobs || in_flight + n > IN_FLIGHT) {
                in_flight -= wait_one(&mut set, f)?;
            }
            in_flight += n;
            let store = self.store.clone();
            set.spawn_on(
                async move {
                    let key = super::layout::pack_key(&pack);
                    // An empty object (the log of a silent run) needs no read, and an empty
                    // range is an error to some S3 servers.
                    let ranges: Vec<std::ops::Range<u64>> = entries
                        .iter()
                        .filter(|e| e.stored_len > 0)
                        .map(|e| e.offset..e.offset + u64::from(e.stored_len))
                        .collect();
                    let got = if ranges.is_empty() {
                        Ok(Vec::new())
                    } else {
                        store
                            .get_ranges(&object_store::path::Path::from(key.as_str()), &ranges)
                            .await
                    };
                    match got {
                        Ok(d) => {
                            let mut d = d.into_iter();
                            let all = entries
                                .iter()
                                .map(|e| match e.stored_len {
                                    0 => bytes::Bytes::new(),
                                    _ => d.next().unwrap_or_default(),
                                })
                                .collect();
                            Ok((pack, entries, all))
                        }
                        Err(e) => Err((key, e)),
                    }
                },
                self.rt.handle(),
            );
        }
        while !set.is_empty() {
            wait_one(&mut set, f)?;
        }
        Ok(())
    }
}

fn group_bytes(entries: &[Entry]) -> usize {
    entries.iter().map(|e| e.stored_len as usize).sum()
}
