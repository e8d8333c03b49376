//! Moving files and folders to and from a remote without a local store: what a cluster worker
//! (which has no project) and a submitter (which must not index what a worker made before it
//! is checked) need.
//!
//! Uploads cut and encode exactly as the store does (same chunking, manifests and trees), so
//! ids are those `dvx add` would give, and a pack's objects are added children first: an
//! index on the remote never names an object whose parts are missing. Downloads read byte
//! ranges of packs named by their indexes, verify every object against its id, and write
//! only relative, checked names below the destination.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use bytes::Bytes;

use dvx_store::chunking;
use dvx_store::error::IoContext;
use dvx_store::object::{EntryKind, FileManifest, Tree, TreeEntry};
use dvx_store::pack;
use dvx_store::worktree::{file_mode, restored_mode, Flat};
use dvx_store::{paths, Id, StoreError};

use crate::error::{RemoteError, Result};
use crate::layout::{self, Kind, PackBuilder};
use crate::{Remote, RemoteErrorKind, RemoteIndex};

/// Builds packs from files on disk and uploads them; skips what `known` says the remote has.
pub struct Upload<'a> {
    remote: &'a Remote,
    known: Option<&'a RemoteIndex>,
    pb: PackBuilder,
    added: HashSet<(Kind, Id)>,
    /// Packs uploaded, and the known packs that hold objects met on the way.
    packs: Vec<Id>,
}

impl<'a> Upload<'a> {
    pub fn new(remote: &'a Remote, known: Option<&'a RemoteIndex>) -> Upload<'a> {
        Upload {
            remote,
            known,
            pb: PackBuilder::new(),
            added: HashSet::new(),
            packs: Vec::new(),
        }
    }

    /// Add one object unless the remote or this upload has it.
    fn add(&mut self, kind: Kind, id: Id, raw: &[u8]) -> Result<()> {
        if let Some((p, _)) = self.known.and_then(|k| k.get(kind, &id)) {
            if !self.packs.contains(&p) {
                self.packs.push(p);
            }
            return Ok(());
        }
        if !self.added.insert((kind, id)) {
            return Ok(());
        }
        let (codec, stored) = pack::encode_chunk(raw);
        if !self.pb.is_empty() && self.pb.len() + stored.len() > self.remote.pack_size {
            self.flush()?;
        }
        self.pb.add(kind, id, codec, raw.len() as u32, &stored);
        Ok(())
    }

    /// A file's content: one chunk, or chunks and a manifest. Returns its id.
    pub fn add_bytes(&mut self, data: &[u8]) -> Result<Id> {
        let cuts = chunking::chunks(data);
        if cuts.len() == 1 {
            let id = Id::of(data);
            self.add(Kind::Chunk, id, data)?;
            return Ok(id);
        }
        let mut list = Vec::with_capacity(cuts.len());
        for (off, len) in cuts {
            let raw = &data[off..off + len];
            let cid = Id::of(raw);
            self.add(Kind::Chunk, cid, raw)?;
            list.push((cid, len as u32));
        }
        let id = Id::of(data);
        let manifest = FileManifest {
            size: data.len() as u64,
            chunks: list,
        };
        self.add(Kind::File, id, &manifest.encode())?;
        Ok(id)
    }

    /// A file or folder on disk (symlinks are refused: a worker's output is data, and a
    /// link could point anywhere on the machine that made it).
    pub fn add_path(&mut self, abs: &Path) -> Result<Flat> {
        let meta = fs::symlink_metadata(abs).at(abs)?;
        if meta.file_type().is_symlink() {
            return Err(StoreError::InvalidPath {
                path: abs.to_string_lossy().into_owned(),
                reason: "a symbolic link; a task's outputs hold only files and folders".into(),
            }
            .into());
        }
        if meta.is_file() {
            let data = fs::read(abs).at(abs)?;
            let id = self.add_bytes(&data)?;
            use std::os::unix::fs::PermissionsExt;
            return Ok(Flat {
                kind: EntryKind::File,
                mode: file_mode(meta.permissions().mode()),
                size: data.len() as u64,
                id,
            });
        }
        let mut names = Vec::new();
        for e in fs::read_dir(abs).at(abs)? {
            let e = e.at(abs)?;
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| StoreError::InvalidPath {
                    path: abs.join(n).to_string_lossy().into_owned(),
                    reason: "the name is not valid UTF-8".into(),
                })?;
            names.push(name);
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let f = self.add_path(&abs.join(&name))?;
            entries.push(TreeEntry {
                name,
                kind: f.kind,
                mode: f.mode,
                size: f.size,
                id: f.id,
            });
        }
        let tree = Tree::new(entries)?;
        let bytes = tree.encode();
        let id = Id::of(&bytes);
        self.add(Kind::Tree, id, &bytes)?;
        Ok(Flat {
            kind: EntryKind::Dir,
            mode: 0o755,
            size: tree.total_size(),
            id,
        })
    }

    /// Upload what is pending as one pack, then its index.
    fn flush(&mut self) -> Result<()> {
        if self.pb.is_empty() {
            return Ok(());
        }
        let (id, data, index) = std::mem::take(&mut self.pb).finish();
        let r = self.remote;
        r.block_on(async {
            let pk = layout::pack_key(&id);
            r.store
                .put(&object_store::path::Path::from(pk.as_str()), data.into())
                .await
                .map_err(|e| r.err(&pk, e))?;
            let ik = layout::index_key(&id);
            r.store
                .put(&object_store::path::Path::from(ik.as_str()), index.into())
                .await
                .map_err(|e| r.err(&ik, e))?;
            Ok::<_, RemoteError>(())
        })?;
        self.packs.push(id);
        Ok(())
    }

    /// Upload the last pack; returns every pack that holds what was added.
    pub fn finish(mut self) -> Result<Vec<Id>> {
        self.flush()?;
        Ok(self.packs)
    }
}

impl Remote {
    /// The indexes of some packs only (a task names the packs it needs: a worker does not
    /// list a remote that may hold thousands).
    pub fn load_packs(&self, packs: &[Id]) -> Result<RemoteIndex> {
        let mut idx = RemoteIndex::default();
        let mut all = Vec::with_capacity(packs.len());
        for p in packs {
            let key = layout::index_key(p);
            let (bytes, _) = self
                .get(&key)?
                .ok_or_else(|| self.corrupt(format!("{key} is missing")))?;
            let entries = layout::decode_index(*p, &bytes)
                .map_err(|e| self.corrupt(format!("{key}: {e}")))?;
            all.push((*p, entries));
        }
        idx.add_packs(all);
        Ok(idx)
    }

    /// Add packs just uploaded to an index held in memory.
    pub fn extend_index(&self, idx: &mut RemoteIndex, packs: &[Id]) -> Result<()> {
        let new: Vec<Id> = packs
            .iter()
            .filter(|p| !idx.packs.contains(p))
            .copied()
            .collect();
        let more = self.load_packs(&new)?;
        let added = more
            .packs
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, more.pack_entries(i)))
            .collect();
        idx.add_packs(added);
        Ok(())
    }

    /// Raw bytes of objects, verified (manifests against their file once read whole).
    fn objects(
        &self,
        idx: &RemoteIndex,
        want: &[(Kind, Id)],
    ) -> Result<HashMap<(Kind, Id), Bytes>> {
        let (groups, absent) = idx.by_pack(want);
        if let Some((k, id)) = absent.first() {
            return Err(self.corrupt(format!(
                "{} {id} is not in the packs the task names",
                k.name()
            )));
        }
        let mut out = HashMap::new();
        for (p, es, data) in self.download(groups)? {
            for (e, stored) in es.iter().zip(data) {
                let raw = Bytes::from(crate::fetch::decode(self, &p, e, &stored)?);
                out.insert((e.kind, e.id), raw);
            }
        }
        Ok(out)
    }

    /// Write the file, folder (`EntryKind::Dir`, a tree id) at `dest`, which must not exist.
    /// Returns the bytes written.
    pub fn download_to(
        &self,
        idx: &RemoteIndex,
        kind: EntryKind,
        id: Id,
        dest: &Path,
    ) -> Result<u64> {
        // Folders level by level, so each level is one round of ranged reads.
        let mut dirs: Vec<(String, Id)> = Vec::new();
        let mut files: Vec<(String, Id, u32)> = Vec::new();
        match kind {
            EntryKind::Dir => dirs.push((String::new(), id)),
            EntryKind::File => files.push((String::new(), id, 0o644)),
            EntryKind::Symlink => return Err(self.unsafe_link(dest)),
        }
        let mut level = dirs.clone();
        while !level.is_empty() {
            let want: Vec<(Kind, Id)> = level.iter().map(|(_, id)| (Kind::Tree, *id)).collect();
            let got = self.objects(idx, &want)?;
            let mut next = Vec::new();
            for (rel, tid) in &level {
                let bytes = &got[&(Kind::Tree, *tid)];
                for e in Tree::decode_ref(*tid, bytes)? {
                    let sub = paths::join(rel, e.name);
                    // The names reserved anywhere; where the tree lands was checked by whoever
                    // chose the destination.
                    if let Some(why) = paths::reserved_name(e.name) {
                        return Err(RemoteError::Remote {
                            remote: self.name.clone(),
                            message: format!("{sub:?} would be written: {why}"),
                            kind: RemoteErrorKind::Unsafe,
                        });
                    }
                    match e.kind {
                        EntryKind::Dir => next.push((sub, e.id)),
                        EntryKind::File => files.push((sub, e.id, e.mode)),
                        EntryKind::Symlink => return Err(self.unsafe_link(&dest.join(&sub))),
                    }
                }
            }
            dirs.extend(next.iter().cloned());
            level = next;
        }
        // Manifests of multi-chunk files, then every chunk.
        let manifests: Vec<(Kind, Id)> = files
            .iter()
            .filter(|(_, id, _)| idx.has(Kind::File, id))
            .map(|(_, id, _)| (Kind::File, *id))
            .collect();
        let got = self.objects(idx, &manifests)?;
        let mut parts: HashMap<Id, Vec<Id>> = HashMap::new();
        let mut chunks: Vec<(Kind, Id)> = Vec::new();
        for (_, id, _) in &files {
            let list = match got.get(&(Kind::File, *id)) {
                Some(b) => FileManifest::decode(*id, b)?
                    .chunks
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect(),
                None => vec![*id],
            };
            chunks.extend(list.iter().map(|c| (Kind::Chunk, *c)));
            parts.insert(*id, list);
        }
        chunks.sort();
        chunks.dedup();
        let data = self.objects(idx, &chunks)?;
        for (rel, _) in &dirs {
            let p = if rel.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(rel)
            };
            fs::create_dir_all(&p).at(&p)?;
        }
        let mut written = 0u64;
        for (rel, id, mode) in &files {
            let p = if rel.is_empty() {
                dest.to_path_buf()
            } else {
                dest.join(rel)
            };
            let mut h = blake3::Hasher::new();
            let mut content = Vec::new();
            for c in &parts[id] {
                let b = &data[&(Kind::Chunk, *c)];
                h.update(b);
                content.extend_from_slice(b);
            }
            if Id::from_hash(h.finalize()) != *id {
                return Err(
                    self.corrupt(format!("the chunks of file {id} do not make up the file"))
                );
            }
            fs::write(&p, &content).at(&p)?;
            dvx_store::worktree::set_mode(&p, restored_mode(*mode))?;
            written += content.len() as u64;
        }
        Ok(written)
    }

    /// The content of one file (a log), verified.
    pub fn read_file(&self, idx: &RemoteIndex, id: Id) -> Result<Vec<u8>> {
        let list: Vec<Id> = if idx.has(Kind::File, &id) {
            let got = self.objects(idx, &[(Kind::File, id)])?;
            FileManifest::decode(id, &got[&(Kind::File, id)])?
                .chunks
                .into_iter()
                .map(|(c, _)| c)
                .collect()
        } else {
            vec![id]
        };
        let want: Vec<(Kind, Id)> = list.iter().map(|c| (Kind::Chunk, *c)).collect();
        let data = self.objects(idx, &want)?;
        let mut out = Vec::new();
        for c in &list {
            out.extend_from_slice(&data[&(Kind::Chunk, *c)]);
        }
        if Id::of(&out) != id {
            return Err(self.corrupt(format!("the chunks of file {id} do not make up the file")));
        }
        Ok(out)
    }

    fn unsafe_link(&self, at: &Path) -> RemoteError {
        RemoteError::Remote {
            remote: self.name.clone(),
            message: format!("{}: task data holds a symbolic link", at.display()),
            kind: RemoteErrorKind::Unsafe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_remote(dir: &Path) -> Remote {
        let rc = dvx_store::config::RemoteConfig {
            url: dir.to_string_lossy().into_owned(),
            ..Default::default()
        };
        Remote::connect("r", &rc, None, None).unwrap()
    }

    #[test]
    fn a_folder_goes_up_and_comes_back_the_same() {
        let remote_dir = tempfile::tempdir().unwrap();
        let remote = folder_remote(remote_dir.path());
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/one.txt"), "one\n").unwrap();
        // Bigger than a chunk: a manifest and several chunks.
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        fs::write(src.path().join("a/b/big.bin"), &big).unwrap();
        fs::write(src.path().join("a/empty"), "").unwrap();
        let mut up = Upload::new(&remote, None);
        let top = up.add_path(&src.path().join("a")).unwrap();
        let packs = up.finish().unwrap();
        assert_eq!(top.kind, EntryKind::Dir);
        // The id is the one the store gives the same folder.
        let (store_id, _) = dvx_store::store::hash_path(&src.path().join("a/b/big.bin")).unwrap();
        assert_eq!(store_id, Id::of(&big));
        let idx = remote.load_packs(&packs).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let out = dest.path().join("x");
        remote
            .download_to(&idx, EntryKind::Dir, top.id, &out)
            .unwrap();
        assert_eq!(fs::read(out.join("one.txt")).unwrap(), b"one\n");
        assert_eq!(fs::read(out.join("b/big.bin")).unwrap(), big);
        assert_eq!(fs::read(out.join("empty")).unwrap(), b"");
        // Uploading again with the index known sends nothing new.
        let mut again = Upload::new(&remote, Some(&idx));
        assert_eq!(again.add_path(&src.path().join("a")).unwrap().id, top.id);
        assert_eq!(again.finish().unwrap(), packs);
        assert_eq!(remote.read_file(&idx, Id::of(&big)).unwrap(), big);
    }

    #[test]
    fn a_tree_that_names_dvx_or_git_files_or_a_link_is_refused() {
        let remote_dir = tempfile::tempdir().unwrap();
        let remote = folder_remote(remote_dir.path());
        for bad in [".git/config", "sub/.dvx/db", "sub/.dvx-tmp-1"] {
            let src = tempfile::tempdir().unwrap();
            let f = src.path().join("a").join(bad);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(&f, "x").unwrap();
            let mut up = Upload::new(&remote, None);
            let top = up.add_path(&src.path().join("a")).unwrap();
            let idx = remote.load_packs(&up.finish().unwrap()).unwrap();
            let dest = tempfile::tempdir().unwrap();
            let e = remote
                .download_to(&idx, EntryKind::Dir, top.id, &dest.path().join("x"))
                .unwrap_err();
            assert_eq!(e.kind(), Some(RemoteErrorKind::Unsafe), "{bad}: {e}");
            assert!(
                !dest.path().join("x").exists(),
                "{bad}: written before the check"
            );
        }
        let src = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        let mut up = Upload::new(&remote, None);
        assert!(up.add_path(src.path()).is_err());
    }
}
