//! Canonical encodings of stored objects: file manifests, trees and commits.
//!
//! Same content always gives the same bytes and so the same id. The byte layouts are specified
//! in `schemas/objects.md`; the golden tests below pin exact ids so a change cannot slip in.

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::id::Id;

const TREE_MAGIC: &[u8; 4] = b"DVXT";
const FILE_MAGIC: &[u8; 4] = b"DVXF";
pub const FORMAT_VERSION: u8 = 1;

/// What a tree entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::File => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink => 3,
        }
    }
    fn from_code(c: u8) -> Option<EntryKind> {
        Some(match c {
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            _ => return None,
        })
    }
    /// The kind a name stands for (`file`, `dir`, `symlink`), as written in JSON.
    pub fn from_name(s: &str) -> Option<EntryKind> {
        Some(match s {
            "file" => EntryKind::File,
            "dir" => EntryKind::Dir,
            "symlink" => EntryKind::Symlink,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One name in a directory. `size` is the file's length, a directory's total bytes, or the
/// length of a symlink's target. `mode` keeps the permission bits of files (0o644 / 0o755).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub name: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub id: Id,
}

/// A tree entry borrowing its name from the encoded tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub name: &'a str,
    pub kind: EntryKind,
    pub mode: u32,
    pub size: u64,
    pub id: Id,
}

impl<'a> From<&'a TreeEntry> for EntryRef<'a> {
    fn from(e: &'a TreeEntry) -> EntryRef<'a> {
        EntryRef {
            name: &e.name,
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            id: e.id,
        }
    }
}

/// A directory: entries sorted by name bytes, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

/// Check one path component as stored in a tree: never empty, `.`, `..`, or containing `/` or NUL.
pub fn validate_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == "." || name == ".." {
        return Err("'.' or '..' as a name");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("'/' or NUL inside a name");
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap_or([0; 4])))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
    }
    fn id(&mut self) -> Option<Id> {
        self.take(32).and_then(Id::from_slice)
    }
    /// A LEB128 varint as `put_varint` writes it: the shortest form only (no trailing zero
    /// groups, nothing past 64 bits), so one value has one encoding and a decoded object
    /// re-encodes to its own bytes.
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return None;
                }
                return Some(v);
            }
        }
        None
    }
    fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

impl Tree {
    /// Build a tree, sorting entries; fails on duplicate or invalid names.
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Tree> {
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for w in entries.windows(2) {
            if w[0].name == w[1].name {
                return Err(StoreError::InvalidPath {
                    path: w[0].name.clone(),
                    reason: "two entries with the same name".into(),
                });
            }
        }
        for e in &entries {
            validate_name(&e.name).map_err(|r| StoreError::InvalidPath {
                path: e.name.clone(),
                reason: r.into(),
            })?;
        }
        Ok(Tree { entries })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * 64);
        out.extend_from_slice(TREE_MAGIC);
        out.push(FORMAT_VERSION);
        put_varint(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            out.push(e.kind.code());
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(e.id.as_bytes());
            put_varint(&mut out, e.name.len() as u64);
            out.extend_from_slice(e.name.as_bytes());
        }
        out
    }

    pub fn id(&self) -> Id {
        Id::of(&self.encode())
    }

    /// Decode and validate: the result is canonical or an error, never a tree that could name a
    /// path outside the workspace.
    pub fn decode(id: Id, bytes: &[u8]) -> Result<Tree> {
        let entries = Self::decode_ref(id, bytes)?
            .into_iter()
            .map(|e| TreeEntry {
                name: e.name.to_string(),
                kind: e.kind,
                mode: e.mode,
                size: e.size,
                id: e.id,
            })
            .collect();
        Ok(Tree { entries })
    }

    /// Decode and validate without copying names: for walks over large folders, where one
    /// allocation per entry is most of the work.
    pub fn decode_ref(id: Id, bytes: &[u8]) -> Result<Vec<EntryRef<'_>>> {
        let bad = |d: &str| StoreError::corrupt("tree", id, d.to_string());
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(4) != Some(TREE_MAGIC.as_slice()) {
            return Err(bad("not a tree (bad magic)"));
        }
        let v = r.u8().ok_or_else(|| bad("truncated"))?;
        if v != FORMAT_VERSION {
            return Err(bad(&format!("unsupported tree format version {v}")));
        }
        let n = r.varint().ok_or_else(|| bad("truncated"))?;
        let mut entries: Vec<EntryRef> = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let kind = r
                .u8()
                .and_then(EntryKind::from_code)
                .ok_or_else(|| bad("bad entry kind"))?;
            let mode = r.u32().ok_or_else(|| bad("truncated"))?;
            let size = r.u64().ok_or_else(|| bad("truncated"))?;
            let eid = r.id().ok_or_else(|| bad("truncated"))?;
            let len = r.varint().ok_or_else(|| bad("truncated"))? as usize;
            let name = r.take(len).ok_or_else(|| bad("truncated"))?;
            let name = std::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?;
            if let Err(reason) = validate_name(name) {
                return Err(StoreError::UnsafePath {
                    path: name.to_string(),
                    reason: format!("tree {} holds an entry with {reason}", id.short()),
                });
            }
            if entries
                .last()
                .is_some_and(|p| p.name.as_bytes() >= name.as_bytes())
            {
                return Err(bad("entries not sorted or not unique"));
            }
            entries.push(EntryRef {
                name,
                kind,
                mode,
                size,
                id: eid,
            });
        }
        if !r.done() {
            return Err(bad("trailing bytes"));
        }
        Ok(entries)
    }

    pub fn get(&self, name: &str) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// The chunks of a file larger than one chunk, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileManifest {
    pub size: u64,
    pub chunks: Vec<(Id, u32)>,
}

impl FileManifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.chunks.len() * 36);
        out.extend_from_slice(FILE_MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.size.to_le_bytes());
        put_varint(&mut out, self.chunks.len() as u64);
        for (id, len) in &self.chunks {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out
    }

    pub fn decode(id: Id, bytes: &[u8]) -> Result<FileManifest> {
        let bad = |d: &str| StoreError::corrupt("file manifest", id, d.to_string());
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(4) != Some(FILE_MAGIC.as_slice()) || r.u8() != Some(FORMAT_VERSION) {
            return Err(bad("bad header"));
        }
        let size = r.u64().ok_or_else(|| bad("truncated"))?;
        let n = r.varint().ok_or_else(|| bad("truncated"))?;
        let mut chunks = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let cid = r.id().ok_or_else(|| bad("truncated"))?;
            let len = r.u32().ok_or_else(|| bad("truncated"))?;
            chunks.push((cid, len));
        }
        if !r.done() {
            return Err(bad("trailing bytes"));
        }
        if chunks.iter().map(|c| u64::from(c.1)).sum::<u64>() != size {
            return Err(bad("chunk lengths do not add up to the file size"));
        }
        Ok(FileManifest { size, chunks })
    }
}

/// Who made a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub email: String,
    pub name: String,
}

/// The git commit of the code when a dvx commit was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    pub commit: String,
    pub dirty: bool,
}

/// A snapshot of all tracked data. Fields are declared in sorted order so that serde_json
/// writes canonical JSON (sorted keys, no whitespace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    pub author: Person,
    pub git: Option<GitInfo>,
    pub message: String,
    pub parents: Vec<Id>,
    /// The tracked paths (files or folders), sorted; everything in `tree` lies under one of them.
    pub roots: Vec<String>,
    /// Run records this commit records (filled by pipelines).
    pub runs: Vec<Id>,
    /// Seconds since the Unix epoch, UTC.
    pub time: i64,
    pub tree: Id,
    pub version: u32,
}

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain structs of strings/ints/vecs to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn id(&self) -> Id {
        Id::of(&self.encode())
    }

    pub fn decode(id: Id, bytes: &[u8]) -> Result<Commit> {
        let c: Commit = serde_json::from_slice(bytes)
            .map_err(|e| StoreError::corrupt("commit", id, e.to_string()))?;
        if c.version != 1 {
            return Err(StoreError::corrupt(
                "commit",
                id,
                format!("unsupported commit format version {}", c.version),
            ));
        }
        Ok(c)
    }

    /// The first line of the message.
    pub fn summary(&self) -> &str {
        self.message.lines().next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind, content: &[u8]) -> TreeEntry {
        TreeEntry {
            name: name.into(),
            kind,
            mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
            size: content.len() as u64,
            id: Id::of(content),
        }
    }

    fn sample_tree() -> Tree {
        Tree::new(vec![
            entry("b.csv", EntryKind::File, b"b,c\n1,2\n"),
            entry("a.txt", EntryKind::File, b"hello\n"),
            entry("link", EntryKind::Symlink, b"a.txt"),
        ])
        .unwrap()
    }

    #[test]
    fn tree_round_trip_and_sorting() {
        let t = sample_tree();
        assert_eq!(t.entries[0].name, "a.txt");
        let id = t.id();
        assert_eq!(Tree::decode(id, &t.encode()).unwrap(), t);
    }

    #[test]
    fn tree_rejects_bad_names() {
        for bad in ["..", ".", "", "a/b"] {
            assert!(Tree::new(vec![entry(bad, EntryKind::File, b"x")]).is_err());
        }
        // A hostile encoding with ".." is refused on decode, not just on build.
        let mut t = sample_tree();
        t.entries[0].name = "..".into();
        let err = Tree::decode(Id::of(b"x"), &t.encode()).unwrap_err();
        assert!(matches!(err, StoreError::UnsafePath { .. }), "{err}");
    }

    /// One value, one encoding: a count or name length written in a longer form than
    /// `put_varint`'s (or past 64 bits) is refused, so a decoded tree re-encodes to its bytes.
    #[test]
    fn varints_decode_only_in_their_shortest_form() {
        let t = sample_tree();
        let good = t.encode();
        assert_eq!(good[5], 3, "entry count");
        let mut longer = good[..5].to_vec();
        longer.extend_from_slice(&[0x83, 0x00]);
        longer.extend_from_slice(&good[6..]);
        assert!(Tree::decode(Id::of(&longer), &longer).is_err());
        let mut r = Reader {
            buf: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            pos: 0,
        };
        assert_eq!(r.varint(), None);
        let mut r = Reader {
            buf: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            pos: 0,
        };
        assert_eq!(r.varint(), Some(u64::MAX));
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Reader { buf: &b, pos: 0 }.varint(), Some(v));
        }
    }

    #[test]
    fn manifest_round_trip() {
        let m = FileManifest {
            size: 7,
            chunks: vec![(Id::of(b"abc"), 3), (Id::of(b"defg"), 4)],
        };
        assert_eq!(FileManifest::decode(Id::of(b"x"), &m.encode()).unwrap(), m);
        let mut bad = m.encode();
        bad.push(0);
        assert!(FileManifest::decode(Id::of(b"x"), &bad).is_err());
    }

    fn sample_commit(tree: Id) -> Commit {
        Commit {
            author: Person {
                email: "ada@example.com".into(),
                name: "Ada".into(),
            },
            git: Some(GitInfo {
                commit: "0123456789abcdef0123456789abcdef01234567".into(),
                dirty: false,
            }),
            message: "add raw data".into(),
            parents: vec![],
            roots: vec!["data".into()],
            runs: vec![],
            time: 1_700_000_000,
            tree,
            version: 1,
        }
    }

    /// Golden ids: if one of these changes, the on-disk format changed. Bump the format version
    /// and write a migration instead of editing the expected values.
    #[test]
    fn golden_ids() {
        let t = sample_tree();
        assert_eq!(
            t.id().to_hex(),
            "33653238667ad3490403bacae7a71e2949aa762a4ba97fd3f5db799186bd5d9c"
        );
        let c = sample_commit(t.id());
        assert_eq!(
            String::from_utf8(c.encode()).unwrap(),
            format!(
                "{{\"author\":{{\"email\":\"ada@example.com\",\"name\":\"Ada\"}},\"git\":{{\"commit\":\"0123456789abcdef0123456789abcdef01234567\",\"dirty\":false}},\"message\":\"add raw data\",\"parents\":[],\"roots\":[\"data\"],\"runs\":[],\"time\":1700000000,\"tree\":\"{}\",\"version\":1}}",
                t.id()
            )
        );
        assert_eq!(
            c.id().to_hex(),
            "9675d9bc143f7726b222724e520fd001cfde4f0537b16c31c09cd54e6044de06"
        );
        let m = FileManifest {
            size: 7,
            chunks: vec![(Id::of(b"abc"), 3), (Id::of(b"defg"), 4)],
        };
        assert_eq!(
            Id::of(&m.encode()).to_hex(),
            "e9d2c2b30acca8121f10009f0422fa9ff6d6a1f77b98e801b5662fdcefef2532"
        );
    }
}
