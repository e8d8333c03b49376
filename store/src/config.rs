//! `.dvx/config.toml`: project settings. A versioned format; unknown keys are rejected so that
//! typos surface.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

pub const CONFIG_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub core: Core,
    #[serde(default, skip_serializing_if = "User::is_empty")]
    pub user: User,
    /// Sections owned by other crates (remotes, pipelines) kept as they are.
    #[serde(flatten)]
    pub other: toml::Table,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Core {
    pub format: u32,
    /// Seconds a writer waits for another writer before giving up.
    #[serde(default = "default_lock_wait")]
    pub lock_wait_secs: f64,
    /// "small" (default): zstd for files of one chunk, when it saves space; "all": also the
    /// chunks of large files (smaller store, slower adds); "none".
    #[serde(default = "default_compression")]
    pub compression: String,
}

fn default_compression() -> String {
    "small".into()
}

fn default_lock_wait() -> f64 {
    3.0
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl User {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            core: Core {
                format: CONFIG_FORMAT,
                lock_wait_secs: default_lock_wait(),
                compression: default_compression(),
            },
            user: User::default(),
            other: toml::Table::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            StoreError::Config {
                path: path.to_path_buf(),
                message: format!("line {line}, column {col}: {}", e.message()),
            }
        })?;
        if !matches!(cfg.core.compression.as_str(), "small" | "all" | "none") {
            return Err(StoreError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "core.compression = {:?}: expected \"small\", \"all\" or \"none\"",
                    cfg.core.compression
                ),
            });
        }
        if cfg.core.format != CONFIG_FORMAT {
            return Err(StoreError::Config {
                path: path.to_path_buf(),
                message: format!(
                    "format {} is not understood by this dvx (it reads format {CONFIG_FORMAT})",
                    cfg.core.format
                ),
            });
        }
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}
