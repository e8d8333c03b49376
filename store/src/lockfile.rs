//! `dvx.lock`: a text file meant for git that pins the data commit and every tracked path's id,
//! so that checking out old code and running `dvx checkout` restores the data that went with it.
//!
//! Pretty JSON with a fixed key order and paths sorted, one field per line, so diffs in git
//! are readable. Sections written
//! by other crates (such as pipeline stages) are kept as they are.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::fsutil::write_atomic;
use crate::id::Id;
use crate::object::EntryKind;

pub const LOCK_NAME: &str = "dvx.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPath {
    pub kind: EntryKind,
    pub id: Id,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockFile {
    pub version: u32,
    pub commit: Id,
    pub paths: BTreeMap<String, LockedPath>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl LockFile {
    pub fn path(root: &Path) -> PathBuf {
        root.join(LOCK_NAME)
    }

    /// `Ok(None)` when there is no lock file yet.
    pub fn read(root: &Path) -> Result<Option<LockFile>> {
        let path = Self::path(root);
        let bytes = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        LockFile::parse(&path, &bytes).map(Some)
    }

    /// Parse dvx.lock as read from `path` (named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<LockFile> {
        let text =
            crate::limits::utf8(bytes).map_err(|(line, column)| StoreError::LockFileSyntax {
                path: path.to_path_buf(),
                line,
                column,
                message: "not valid UTF-8 text (the first invalid byte is here)".into(),
            })?;
        let lock: LockFile =
            serde_json::from_str(text).map_err(|e| StoreError::LockFileSyntax {
                path: path.to_path_buf(),
                line: e.line(),
                column: e.column(),
                message: e
                    .to_string()
                    .split(" at line")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })?;
        if lock.version != LOCK_VERSION {
            return Err(StoreError::LockFileSyntax {
                path: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!(
                    "version {} is not understood by this dvx (it reads version {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        Ok(lock)
    }

    pub fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn write(&self, root: &Path, tmp_dir: &Path) -> Result<()> {
        write_atomic(&Self::path(root), self.to_text().as_bytes(), tmp_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{Commit, GitInfo, Person};

    fn schema(name: &str) -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../schemas")
            .join(name);
        serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap()
    }

    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }

    /// The JSON Schemas in schemas/ must describe exactly what the code writes.
    #[test]
    fn schemas_match_what_is_written() {
        let lock = LockFile {
            version: LOCK_VERSION,
            commit: Id::of(b"c"),
            paths: [(
                "data/raw.csv".to_string(),
                LockedPath {
                    kind: EntryKind::File,
                    id: Id::of(b"x"),
                    size: 1,
                },
            )]
            .into(),
            other: Default::default(),
        };
        let written: serde_json::Value = serde_json::from_str(&lock.to_text()).unwrap();
        let s = schema("dvx.lock.schema.json");
        assert_eq!(keys(&written), keys(&s["properties"]));
        let entry = &written["paths"]["data/raw.csv"];
        assert_eq!(keys(entry), keys(&s["$defs"]["lockedPath"]["properties"]));

        let c = Commit {
            author: Person {
                email: "e".into(),
                name: "n".into(),
            },
            git: Some(GitInfo {
                commit: "0".repeat(40),
                dirty: true,
            }),
            message: "m".into(),
            parents: vec![],
            roots: vec![],
            runs: vec![],
            time: 0,
            tree: Id::of(b"t"),
            version: 1,
        };
        let written: serde_json::Value = serde_json::from_slice(&c.encode()).unwrap();
        let s = schema("commit.schema.json");
        assert_eq!(keys(&written), keys(&s["properties"]));
    }
}
