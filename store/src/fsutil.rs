//! Small filesystem helpers: atomic writes, and the fault points crash tests kill dvx at.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Write `data` to `dest` atomically: a temp file in `tmp_dir` (same filesystem), fsync, rename.
pub fn write_atomic(dest: &Path, data: &[u8], tmp_dir: &Path) -> Result<()> {
    fs::create_dir_all(tmp_dir).at(tmp_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).at(tmp_dir)?;
    tmp.write_all(data).at(tmp.path())?;
    tmp.as_file().sync_all().at(tmp.path())?;
    tmp.persist(dest)
        .map_err(|e| crate::StoreError::io(dest, e.error))?;
    if let Some(parent) = dest.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Remove everything inside `dir`, keeping `dir` itself; what cannot be removed is left.
pub fn empty_dir(dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

/// This machine's name, for lock holders, authors and run records.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Stop the process on the spot, as `kill -9` would (no destructors, no flush), when
/// `DVX_FAULT` names this point. Crash-safety tests use it to kill dvx at an exact step.
/// `DVX_FAULT=pause-NAME` instead holds the process here for `DVX_FAULT_PAUSE_MS` (default
/// 10 s), once, so a test can change the world under it (stop a server) at that step.
pub fn fault_point(name: &str) {
    let Some(v) = std::env::var_os("DVX_FAULT") else {
        return;
    };
    if v == name {
        std::process::abort();
    }
    if v.to_str().and_then(|v| v.strip_prefix("pause-")) == Some(name) {
        static PAUSED: std::sync::Once = std::sync::Once::new();
        PAUSED.call_once(|| {
            let ms = std::env::var("DVX_FAULT_PAUSE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(10_000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        });
    }
}
