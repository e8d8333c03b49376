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
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let lock: LockFile =
            serde_json::from_str(&text).map_err(|e| StoreError::LockFileSyntax {
                path: path.clone(),
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
                path,
                line: 1,
                column: 1,
                message: format!(
                    "version {} is not understood by this dvx (it reads version {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        Ok(Some(lock))
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
