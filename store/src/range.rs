//! Ranged reads: a byte range of a stored file, touching only the chunks that overlap it.
//!
//! Each chunk read is verified against its own id, as every read is. What a range cannot
//! verify is the whole-file id: that hash covers every byte, so checking it would mean
//! reading the whole file, which is what a range is for avoiding. A manifest names its
//! chunks by their ids, so a range is still made only of bytes whose hashes were checked;
//! `dvx cat` without a range (or `dvx fsck`) checks the file whole.

use std::io::Write;

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::id::Id;
use crate::object::EntryKind;
use crate::pack::ChunkLoc;
use crate::repo::Repo;
use crate::store::Store;
use crate::worktree::{self, Flat};

/// What a ranged read did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RangeRead {
    /// Bytes written: less than asked for when the range runs past the end of the file.
    pub bytes: u64,
    /// Chunks read (and verified) to serve them.
    pub chunks_read: u64,
}

/// A chunk a range overlaps: its id, where it is, and which of its bytes the range takes.
struct Piece {
    id: Id,
    loc: ChunkLoc,
    len: u64,
    from: usize,
    to: usize,
}

impl Store {
    /// The chunks overlapping `offset..end` of file `id`, every one located before any is
    /// read, so that a chunk not fetched fails the read before anything is written.
    fn pieces(&self, id: &Id, offset: u64, end: u64) -> Result<Vec<Piece>> {
        let mut out = Vec::new();
        if end <= offset {
            return Ok(out);
        }
        // A chunk [start, stop) overlaps the range when it ends after `offset` and starts
        // before `end`.
        let mut start = 0u64;
        for (cid, len) in self.file_chunks(id)? {
            let stop = start + u64::from(len);
            if stop > offset && start < end {
                let loc = self.chunk_loc(&cid)?.ok_or(StoreError::MissingObject {
                    kind: "chunk",
                    id: cid,
                })?;
                out.push(Piece {
                    id: cid,
                    loc,
                    len: u64::from(len),
                    // Both within 0..=len: the range is clamped to this chunk.
                    from: (offset.max(start) - start) as usize,
                    to: (end.min(stop) - start) as usize,
                });
            }
            if stop >= end {
                break;
            }
            start = stop;
        }
        Ok(out)
    }

    /// Fail (with `MissingObject`) unless every chunk of the range is in the store.
    pub fn check_range_here(&self, id: &Id, offset: u64, length: Option<u64>) -> Result<()> {
        self.pieces(
            id,
            offset,
            offset.saturating_add(length.unwrap_or(u64::MAX)),
        )
        .map(drop)
    }

    /// Write bytes `offset..offset + length` of file `id` to `out` (`length` None: to the
    /// end). Only the chunks overlapping the range are read, each verified against its id; a
    /// range past the end writes nothing, and one running past it stops at the end. A chunk
    /// missing from the store fails the read before anything is written.
    pub fn write_range_to(
        &self,
        id: &Id,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<RangeRead> {
        let end = offset.saturating_add(length.unwrap_or(u64::MAX));
        let mut done = RangeRead::default();
        for p in self.pieces(id, offset, end)? {
            let data = self.read_chunk_at(&p.id, &p.loc)?;
            done.chunks_read += 1;
            if data.len() as u64 != p.len {
                return Err(StoreError::corrupt(
                    "file",
                    *id,
                    format!("chunk {} is not the length its manifest says", p.id.short()),
                ));
            }
            out.write_all(&data[p.from..p.to])
                .map_err(|e| StoreError::io("<output>", e))?;
            done.bytes += (p.to - p.from) as u64;
        }
        Ok(done)
    }
}

impl Repo {
    /// The file (or symlink) at `rel` in `rev`, refusing a folder or a path the commit lacks.
    pub fn file_at(&self, rev: &str, rel: &str) -> Result<Flat> {
        let id = self.store.resolve(rev)?;
        let c = self.store.get_commit(&id)?;
        match worktree::lookup(&self.store, &c.tree, rel)? {
            Some(f) if f.kind != EntryKind::Dir => Ok(f),
            Some(_) => Err(StoreError::InvalidPath {
                path: rel.into(),
                reason: "is a folder; list it with `dvx ls`".into(),
            }),
            None => Err(StoreError::NotInRevision {
                path: rel.into(),
                commit: id.short(),
            }),
        }
    }

    /// Bytes `offset..offset + length` of the file at `rel` in `rev` (see
    /// `Store::write_range_to`: only the chunks overlapping the range are read).
    pub fn cat_range(
        &self,
        rev: &str,
        rel: &str,
        offset: u64,
        length: Option<u64>,
        out: &mut dyn Write,
    ) -> Result<RangeRead> {
        let f = self.file_at(rev, rel)?;
        self.store.write_range_to(&f.id, offset, length, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, Quiet};

    /// Deterministic bytes that do not repeat, so content-defined chunking cuts them.
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn ranges_read_only_the_chunks_they_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        Repo::init(root).unwrap();
        let data = noise(6 << 20);
        std::fs::write(root.join("big.bin"), &data).unwrap();
        let repo = Repo::open(root, Access::Write("test")).unwrap();
        repo.add(&["big.bin".into()], None, &Quiet).unwrap();
        let f = repo.file_at("HEAD", "big.bin").unwrap();
        let chunks = repo.store.file_chunks(&f.id).unwrap();
        assert!(chunks.len() >= 3, "{} chunks", chunks.len());
        let first = u64::from(chunks[0].1);
        let second = first + u64::from(chunks[1].1);
        let size = data.len() as u64;

        let read = |offset: u64, length: Option<u64>| {
            let mut out = Vec::new();
            let r = repo
                .cat_range("HEAD", "big.bin", offset, length, &mut out)
                .unwrap();
            assert_eq!(r.bytes, out.len() as u64);
            (out, r.chunks_read)
        };
        let slice = |a: u64, b: u64| data[a as usize..b.min(size) as usize].to_vec();

        // Inside the first chunk: one chunk read.
        assert_eq!(read(10, Some(100)), (slice(10, 110), 1));
        // The whole first chunk exactly: still one.
        assert_eq!(read(0, Some(first)), (slice(0, first), 1));
        // Across the first boundary: two.
        assert_eq!(read(first - 5, Some(10)), (slice(first - 5, first + 5), 2));
        // Starting exactly on the second chunk, running into the third.
        assert_eq!(
            read(first, Some(second - first + 1)),
            (slice(first, second + 1), 2)
        );
        // Zero length and past the end: nothing read at all.
        assert_eq!(read(5, Some(0)), (Vec::new(), 0));
        assert_eq!(read(size, Some(10)), (Vec::new(), 0));
        assert_eq!(read(size + 100, None), (Vec::new(), 0));
        // Running past the end stops there, reading only the last chunk.
        assert_eq!(read(size - 3, Some(100)), (slice(size - 3, size), 1));
        // No length: to the end; from 0 it is the whole file, every chunk once.
        assert_eq!(read(0, None), (data.clone(), chunks.len() as u64));
    }

    #[test]
    fn small_files_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        Repo::init(root).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/a.txt"), "hello world\n").unwrap();
        let repo = Repo::open(root, Access::Write("test")).unwrap();
        repo.add(&["d".into()], None, &Quiet).unwrap();
        let mut out = Vec::new();
        let r = repo
            .cat_range("HEAD", "d/a.txt", 6, Some(5), &mut out)
            .unwrap();
        assert_eq!((out.as_slice(), r.chunks_read), (&b"world"[..], 1));
        let mut sink = Vec::new();
        assert!(matches!(
            repo.cat_range("HEAD", "d", 0, None, &mut sink),
            Err(StoreError::InvalidPath { .. })
        ));
        assert!(matches!(
            repo.cat_range("HEAD", "d/b.txt", 0, None, &mut sink),
            Err(StoreError::NotInRevision { .. })
        ));
    }
}
