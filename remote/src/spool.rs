//! Where a fetch keeps the commits, trees, manifests and run records it downloaded until they
//! are checked and written: an unnamed temporary file in `.dvx/tmp`, with only an index in
//! memory. A million files' trees are about 100 MB; held in memory they were a third of a
//! clone's peak. The file has no name (`O_TMPFILE`), so a killed fetch leaves nothing behind,
//! and nothing in it reaches the store before every object in it has passed its checks.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use dvx_store::error::IoContext;
use dvx_store::Id;

use crate::error::Result;
use crate::layout::Kind;

/// Appended bytes wait in memory up to this size before one write.
const BUFFER: usize = 1 << 20;

/// Downloaded objects read back by kind and id.
pub trait Objects {
    /// The ids of one kind that came down, sorted.
    fn ids(&self, kind: Kind) -> Vec<Id>;
    /// One object's bytes, if it came down.
    fn read(&self, kind: Kind, id: &Id) -> Result<Option<Vec<u8>>>;
    fn contains(&self, kind: Kind, id: &Id) -> bool;
}

/// The ids of one kind among `keys`, sorted.
fn ids_of<'a>(keys: impl Iterator<Item = &'a (Kind, Id)>, kind: Kind) -> Vec<Id> {
    let mut v: Vec<Id> = keys
        .filter(|(k, _)| *k == kind)
        .map(|(_, id)| *id)
        .collect();
    v.sort();
    v
}

/// In memory: what tests build by hand.
impl Objects for HashMap<(Kind, Id), Vec<u8>> {
    fn ids(&self, kind: Kind) -> Vec<Id> {
        ids_of(self.keys(), kind)
    }

    fn read(&self, kind: Kind, id: &Id) -> Result<Option<Vec<u8>>> {
        Ok(self.get(&(kind, *id)).cloned())
    }

    fn contains(&self, kind: Kind, id: &Id) -> bool {
        self.contains_key(&(kind, *id))
    }
}

pub struct Spool {
    file: File,
    path: PathBuf,
    /// Bytes in the file; `buf` follows them.
    written: u64,
    buf: Vec<u8>,
    index: HashMap<(Kind, Id), (u64, u32)>,
}

impl Spool {
    pub fn new(dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir).at(dir)?;
        Ok(Spool {
            file: tempfile::tempfile_in(dir).at(dir)?,
            path: dir.to_path_buf(),
            written: 0,
            buf: Vec::new(),
            index: HashMap::new(),
        })
    }

    /// Keep one object (a second copy of the same one is ignored).
    pub fn put(&mut self, kind: Kind, id: Id, bytes: &[u8]) -> Result<()> {
        if self.index.contains_key(&(kind, id)) {
            return Ok(());
        }
        let at = self.written + self.buf.len() as u64;
        self.index.insert((kind, id), (at, bytes.len() as u32));
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .write_all_at(&self.buf, self.written)
            .at(&self.path)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Done writing: everything is readable from the file.
    pub fn seal(&mut self) -> Result<()> {
        self.flush()?;
        self.buf = Vec::new();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every (kind, id), sorted, so objects are written in key order.
    pub fn keys(&self) -> Vec<(Kind, Id)> {
        let mut v: Vec<(Kind, Id)> = self.index.keys().copied().collect();
        v.sort();
        v
    }
}

impl Objects for Spool {
    fn ids(&self, kind: Kind) -> Vec<Id> {
        ids_of(self.index.keys(), kind)
    }

    fn read(&self, kind: Kind, id: &Id) -> Result<Option<Vec<u8>>> {
        let Some(&(at, len)) = self.index.get(&(kind, *id)) else {
            return Ok(None);
        };
        if at >= self.written {
            let from = (at - self.written) as usize;
            return Ok(Some(self.buf[from..from + len as usize].to_vec()));
        }
        let mut out = vec![0u8; len as usize];
        self.file.read_exact_at(&mut out, at).at(&self.path)?;
        Ok(Some(out))
    }

    fn contains(&self, kind: Kind, id: &Id) -> bool {
        self.index.contains_key(&(kind, *id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_come_back_from_the_buffer_and_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path()).unwrap();
        let big = vec![7u8; BUFFER + 10];
        let a = Id::of(b"a");
        let b = Id::of(&big);
        let c = Id::of(b"c");
        s.put(Kind::Tree, a, b"a").unwrap();
        s.put(Kind::File, b, &big).unwrap(); // fills the buffer: both go to the file
        s.put(Kind::Tree, c, b"c").unwrap(); // stays in the buffer
        s.put(Kind::Tree, a, b"ignored").unwrap();
        assert_eq!(s.read(Kind::Tree, &a).unwrap().unwrap(), b"a");
        assert_eq!(s.read(Kind::File, &b).unwrap().unwrap(), big);
        assert_eq!(s.read(Kind::Tree, &c).unwrap().unwrap(), b"c");
        assert_eq!(s.read(Kind::Commit, &a).unwrap(), None);
        let mut trees = vec![a, c];
        trees.sort();
        assert_eq!(s.ids(Kind::Tree), trees);
        s.seal().unwrap();
        assert_eq!(s.read(Kind::Tree, &c).unwrap().unwrap(), b"c");
        assert_eq!(s.len(), 3);
        // Unnamed: nothing is left in the folder, even before the spool is dropped.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
