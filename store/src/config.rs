//! `.dvx/config.toml`: project settings. A versioned format; unknown keys are rejected so that
//! typos surface.

use std::collections::BTreeMap;
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
    /// Remotes by name (`[remote.NAME]`). Never secrets: those go in `config.local.toml`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remote: BTreeMap<String, RemoteConfig>,
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
    /// The remote that push, pull and fetch use when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// One remote: where it is and how to reach it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///path`.
    pub url: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// An AWS profile from ~/.aws/credentials and ~/.aws/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Allow plain http (always allowed for loopback endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<bool>,
    /// Transfers at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<usize>,
    /// Seconds before one request is abandoned (and retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Retries of a failed request, with exponential backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<usize>,
}

/// Secrets a user insists on keeping in the project: `.dvx/config.local.toml`, which git
/// ignores. Environment variables and AWS profiles are the better place.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    #[serde(default)]
    pub remote: BTreeMap<String, RemoteSecrets>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSecrets {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for RemoteSecrets {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteSecrets { .. }")
    }
}

impl LocalConfig {
    pub fn load(path: &Path) -> Result<LocalConfig> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalConfig::default()),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            StoreError::Config {
                path: path.to_path_buf(),
                message: format!("line {line}, column {col}: {}", e.message()),
            }
        })
    }
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
                remote: None,
            },
            user: User::default(),
            remote: BTreeMap::new(),
            other: toml::Table::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        let cfg: Config = toml::from_str(&text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            let secret = ["access_key_id", "secret_access_key", "session_token"]
                .iter()
                .any(|k| e.message().contains(&format!("`{k}`")));
            let message = if secret {
                format!("line {line}, column {col}: credentials do not belong in config.toml, which git tracks; use the environment (AWS_ACCESS_KEY_ID, ...), an AWS profile, or .dvx/config.local.toml")
            } else {
                format!("line {line}, column {col}: {}", e.message())
            };
            StoreError::Config {
                path: path.to_path_buf(),
                message,
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
