//! The remote layout, format 1 (specified in `schemas/remote.md`).
//!
//! ```text
//! PREFIX/dvx-remote.json        {"format": 1}
//! PREFIX/HEAD                   ref: refs/heads/main
//! PREFIX/refs/heads/NAME        commit id in hex, newline
//! PREFIX/refs/tags/NAME
//! PREFIX/packs/ID.pack          "DVXRPAK1", then records: header + stored bytes
//! PREFIX/packs/ID.idx           "DVXRIDX1", count, sorted entries, BLAKE3 of all before it
//! ```
//!
//! A pack's id is the BLAKE3 of its bytes, so a name can never hold two contents and a pack
//! uploaded twice is the same object. The index is written after its pack: an index on the
//! remote means its pack is complete.

use crate::error::{RemoteError, Result};
use dvx_store::id::Id;
use dvx_store::StoreError;

pub const REMOTE_FORMAT: u32 = 1;
pub const MARKER: &str = "dvx-remote.json";
pub const PACK_MAGIC: &[u8; 8] = b"DVXRPAK1";
pub const INDEX_MAGIC: &[u8; 8] = b"DVXRIDX1";
/// kind(1) + codec(1) + id(32) + raw_len(4) + stored_len(4)
pub const RECORD_HEADER: usize = 42;
/// kind(1) + id(32) + offset(8) + stored_len(4) + raw_len(4) + codec(1)
pub const ENTRY_LEN: usize = 50;

/// What an entry holds. Chunks are file content; the rest are objects of the local database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Chunk,
    File,
    Tree,
    Commit,
    Run,
}

impl Kind {
    pub fn byte(self) -> u8 {
        match self {
            Kind::Chunk => b'K',
            Kind::File => b'F',
            Kind::Tree => b'T',
            Kind::Commit => b'C',
            Kind::Run => b'R',
        }
    }

    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            b'K' => Kind::Chunk,
            b'F' => Kind::File,
            b'T' => Kind::Tree,
            b'C' => Kind::Commit,
            b'R' => Kind::Run,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Chunk => "chunk",
            Kind::File => "file manifest",
            Kind::Tree => "tree",
            Kind::Commit => "commit",
            Kind::Run => "run record",
        }
    }

    /// The local object kind, for everything but chunks.
    pub fn obj_kind(self) -> Option<dvx_store::db::ObjKind> {
        use dvx_store::db::ObjKind;
        Some(match self {
            Kind::Chunk => return None,
            Kind::File => ObjKind::File,
            Kind::Tree => ObjKind::Tree,
            Kind::Commit => ObjKind::Commit,
            Kind::Run => ObjKind::Run,
        })
    }
}

/// Where an object lies inside a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub id: Id,
    /// Offset of the stored bytes (just after the record header).
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: u8,
}

pub fn pack_key(pack: &Id) -> String {
    format!("packs/{}.pack", pack.to_hex())
}

pub fn index_key(pack: &Id) -> String {
    format!("packs/{}.idx", pack.to_hex())
}

/// The pack id named by an index key (`packs/HEX.idx`).
pub fn pack_of_index_key(key: &str) -> Option<Id> {
    key.strip_prefix("packs/")?
        .strip_suffix(".idx")?
        .parse()
        .ok()
}

/// Builds one pack in memory, with its index.
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<Entry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> PackBuilder {
        PackBuilder {
            buf: PACK_MAGIC.to_vec(),
            entries: Vec::new(),
        }
    }

    pub fn with_capacity(bytes: usize) -> PackBuilder {
        let mut buf = Vec::with_capacity(bytes + PACK_MAGIC.len());
        buf.extend_from_slice(PACK_MAGIC);
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    pub fn add(&mut self, kind: Kind, id: Id, codec: u8, raw_len: u32, stored: &[u8]) {
        self.buf.push(kind.byte());
        self.buf.push(codec);
        self.buf.extend_from_slice(id.as_bytes());
        self.buf.extend_from_slice(&raw_len.to_le_bytes());
        self.buf
            .extend_from_slice(&(stored.len() as u32).to_le_bytes());
        let offset = self.buf.len() as u64;
        self.buf.extend_from_slice(stored);
        self.entries.push(Entry {
            kind,
            id,
            offset,
            stored_len: stored.len() as u32,
            raw_len,
            codec,
        });
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The pack's id, its bytes and its index bytes.
    pub fn finish(mut self) -> (Id, Vec<u8>, Vec<u8>) {
        let id = Id::of(&self.buf);
        self.entries.sort_by_key(|e| (e.kind, e.id));
        (id, self.buf, encode_index(&self.entries))
    }
}

pub fn encode_index(entries: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + entries.len() * ENTRY_LEN + 32);
    b.extend_from_slice(INDEX_MAGIC);
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        b.push(e.kind.byte());
        b.extend_from_slice(e.id.as_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.stored_len.to_le_bytes());
        b.extend_from_slice(&e.raw_len.to_le_bytes());
        b.push(e.codec);
    }
    let sum = Id::of(&b);
    b.extend_from_slice(sum.as_bytes());
    b
}

/// Decode and check an index (`pack` names it in errors).
pub fn decode_index(pack: Id, b: &[u8]) -> Result<Vec<Entry>> {
    let bad = |d: &str| {
        RemoteError::from(StoreError::corrupt(
            "remote pack index",
            pack,
            d.to_string(),
        ))
    };
    if b.len() < 12 + 32 || &b[..8] != INDEX_MAGIC {
        return Err(bad("not a pack index (bad header)"));
    }
    let n = u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize;
    if b.len() != 12 + n * ENTRY_LEN + 32 {
        return Err(bad("wrong length"));
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if Id::of(body).as_bytes() != sum {
        return Err(bad("checksum does not match"));
    }
    let mut out = Vec::with_capacity(n);
    for e in body[12..].chunks_exact(ENTRY_LEN) {
        let kind = Kind::from_byte(e[0]).ok_or_else(|| bad("unknown entry kind"))?;
        let id = Id::from_slice(&e[1..33]).ok_or_else(|| bad("bad id"))?;
        let mut off = [0u8; 8];
        off.copy_from_slice(&e[33..41]);
        let u32_at = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        let offset = u64::from_le_bytes(off);
        let stored_len = u32_at(41);
        // Readers compute offset + stored_len: it must be a byte range that can exist.
        if offset.checked_add(u64::from(stored_len)).is_none() {
            return Err(bad("an entry's byte range overflows"));
        }
        out.push(Entry {
            kind,
            id,
            offset,
            stored_len,
            raw_len: u32_at(45),
            codec: e[49],
        });
    }
    Ok(out)
}

/// A ref file's content: the commit id in hex and a newline.
pub fn encode_ref(id: &Id) -> Vec<u8> {
    format!("{}\n", id.to_hex()).into_bytes()
}

pub fn decode_ref(name: &str, b: &[u8]) -> Result<Id> {
    String::from_utf8_lossy(b)
        .trim()
        .parse()
        .map_err(|_| RemoteError::Remote {
            remote: String::new(),
            message: format!("remote ref {name} does not hold a commit id"),
            kind: super::RemoteErrorKind::Corrupt,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_index_round_trip() {
        let mut p = PackBuilder::new();
        p.add(Kind::Tree, Id::of(b"t"), 0, 1, b"t");
        p.add(Kind::Chunk, Id::of(b"abc"), 0, 3, b"abc");
        let (id, pack, idx) = p.finish();
        assert_eq!(id, Id::of(&pack));
        let entries = decode_index(id, &idx).unwrap();
        assert_eq!(entries.len(), 2);
        // Sorted by kind, then id.
        assert_eq!(entries[0].kind, Kind::Chunk);
        let e = entries[0];
        assert_eq!(
            &pack[e.offset as usize..e.offset as usize + e.stored_len as usize],
            b"abc"
        );
        let mut broken = idx.clone();
        broken[20] ^= 1;
        assert!(decode_index(id, &broken).is_err());
    }

    /// Pins the exact bytes of format 1: a change here breaks every existing remote.
    #[test]
    fn golden_pack_and_index() {
        let mut p = PackBuilder::new();
        p.add(Kind::Chunk, Id::of(b"hello\n"), 0, 6, b"hello\n");
        p.add(Kind::Commit, Id::of(b"{}"), 0, 2, b"{}");
        let (id, pack, idx) = p.finish();
        assert_eq!(pack.len(), 8 + 42 + 6 + 42 + 2);
        assert_eq!(idx.len(), 12 + 2 * ENTRY_LEN + 32);
        assert_eq!(
            id.to_hex(),
            "c4c25b0773c780de76b96ee279c7ca47e7c2fb3bcecaf04dcf2a39d5147b4452"
        );
        assert_eq!(
            Id::of(&idx).to_hex(),
            "9d9d68b3f76ecb1693acb7a08ce8cde0b2ffeb685c4d68a8c5a58483b9950ed2"
        );
    }

    /// The run cache travels as run records (`R`) in ordinary packs, whether or not a commit
    /// names them: a pack of one record is these exact bytes, so format 1 readers read it.
    #[test]
    fn golden_run_record_pack() {
        let rec = br#"{"key":"k"}"#;
        let mut p = PackBuilder::new();
        p.add(Kind::Run, Id::of(rec), 0, rec.len() as u32, rec);
        let (id, pack, idx) = p.finish();
        let mut want = b"DVXRPAK1R\0".to_vec();
        want.extend_from_slice(Id::of(rec).as_bytes());
        want.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        want.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        want.extend_from_slice(rec);
        assert_eq!(pack, want);
        assert_eq!(idx.len(), 12 + ENTRY_LEN + 32);
        assert_eq!(
            id.to_hex(),
            "5c1d7506a7a1e5ec8a3dfd11a7d034772dd70e72be92562e7dd5b34a12134c4d"
        );
        assert_eq!(
            Id::of(&idx).to_hex(),
            "83d5be1ee6182dc2f8d280791233eed7e60bbe33811880267fe4eb28a2ed48c2"
        );
    }
}
