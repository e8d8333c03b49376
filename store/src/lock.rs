//! The writer lock: one writing dvx per project at a time. Readers never take it.
//!
//! It is an OS file lock (flock) on `.dvx/lock`, so a holder killed with SIGKILL releases it
//! with its last file descriptor; nothing stale is left to clean up. `.dvx/lock.info` names the
//! holder for the error message of whoever waits.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, StoreError};

#[derive(Serialize, Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    command: String,
    since: String,
}

pub struct WriterLock {
    _file: File,
    info: PathBuf,
}

impl WriterLock {
    /// Try for up to `wait`; on timeout fail naming the holder.
    pub fn acquire(dot: &Path, command: &str, wait: Duration) -> Result<WriterLock> {
        match Self::try_acquire(dot, command, wait)? {
            Some(l) => Ok(l),
            None => Err(StoreError::Locked {
                holder: Self::describe_holder(dot),
            }),
        }
    }

    /// Like `acquire`, but `None` instead of an error when the lock stays busy.
    pub fn try_acquire(dot: &Path, command: &str, wait: Duration) -> Result<Option<WriterLock>> {
        let path = dot.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at(&path)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        return Ok(None);
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
            }
        }
        let info = dot.join("lock.info");
        let holder = Holder {
            pid: std::process::id(),
            host: crate::fsutil::hostname(),
            command: command.to_string(),
            since: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        };
        // Best effort: the info only improves a waiting process's message.
        let _ = fs::write(&info, serde_json::to_vec(&holder).unwrap_or_default());
        Ok(Some(WriterLock { _file: file, info }))
    }

    fn describe_holder(dot: &Path) -> String {
        fs::read(dot.join("lock.info"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
            .map(|h| {
                format!(
                    "pid {} on {}: `{}` since {}",
                    h.pid, h.host, h.command, h.since
                )
            })
            .unwrap_or_else(|| "unknown process".into())
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.info);
    }
}
