//! `.dvx/config.toml`: project settings. A versioned format; unknown keys are rejected so that
//! typos surface.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::limits;

pub const CONFIG_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub core: Core,
    #[serde(default, skip_serializing_if = "User::is_empty")]
    pub user: User,
    /// Remotes by name (`[remote.NAME]`). Never secrets: those go in `config.local.toml`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remote: BTreeMap<String, RemoteConfig>,
    /// `[containers]`: how container stages run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Containers>,
    /// Sections owned by other crates (remotes, pipelines) kept as they are.
    #[serde(flatten)]
    pub other: toml::Table,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Core {
    #[serde(deserialize_with = "de::format")]
    pub format: u32,
    /// Seconds a writer waits for another writer before giving up.
    #[serde(default = "default_lock_wait", deserialize_with = "de::lock_wait")]
    pub lock_wait_secs: f64,
    /// "small" (default): zstd for files of one chunk, when it saves space; "all": also the
    /// chunks of large files (smaller store, slower adds); "none".
    #[serde(default = "default_compression", deserialize_with = "de::compression")]
    pub compression: String,
    /// Write the chunks of large files without the page cache (`O_DIRECT`); false keeps
    /// every write on the page cache (for file systems where direct writes are slow).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub direct_io: bool,
    /// The remote that push, pull and fetch use when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// One remote: where it is and how to reach it. The one declaration of these settings: it is
/// a `[remote.NAME]` table of config.toml, the source of an import in dvx.lock (flattened
/// there), and, with the `clap` feature, the connection options of `dvx remote add`, `clone`
/// and `import`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `file:///path`.
    // Each command declares the URL itself: where it goes and what it may be (a remote's name,
    // for import) differ.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub url: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, help = "S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    )]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub region: Option<String>,
    /// An AWS profile from ~/.aws/credentials and ~/.aws/config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "clap",
        arg(long, help = "AWS profile (from ~/.aws/credentials and ~/.aws/config)")
    )]
    pub profile: Option<String>,
    /// Allow plain http (always allowed for loopback endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // A flag: absent is None (nothing written), given is Some(true).
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            num_args = 0,
            default_missing_value = "true",
            help = "Allow plain http to a non-loopback endpoint"
        )
    )]
    pub allow_http: Option<bool>,
    /// Transfers at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::remote_jobs"
    )]
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            value_name = "N",
            value_parser = limits::parse_remote_jobs,
            help = "Transfers at once, 1 to 64 (default 8)"
        )
    )]
    pub jobs: Option<usize>,
    /// Seconds before one request is abandoned (and retried).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::remote_timeout"
    )]
    #[cfg_attr(
        feature = "clap",
        arg(
            long = "timeout",
            value_name = "SECS",
            value_parser = limits::parse_remote_timeout,
            help = "Seconds before a request is abandoned and retried, up to 3600 (default 60)"
        )
    )]
    pub timeout_secs: Option<f64>,
    /// Retries of a failed request, with exponential backoff.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::remote_retries"
    )]
    #[cfg_attr(
        feature = "clap",
        arg(
            long,
            value_name = "N",
            value_parser = limits::parse_remote_retries,
            help = "Retries of a failed request, with backoff, 0 to 100 (default 5)"
        )
    )]
    pub retries: Option<usize>,
}

impl RemoteConfig {
    /// Only where the remote is and how to reach it, without the transfer settings (jobs,
    /// timeout, retries) that belong to one machine rather than to the data's source.
    pub fn connection(&self) -> RemoteConfig {
        RemoteConfig {
            url: self.url.clone(),
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            profile: self.profile.clone(),
            allow_http: self.allow_http,
            ..Default::default()
        }
    }
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
        let bytes = match fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalConfig::default()),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let text = text_of(path, &bytes)?;
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            StoreError::Config {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().to_string(),
            }
        })
    }
}

fn default_compression() -> String {
    "small".into()
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
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
                direct_io: true,
                remote: None,
            },
            user: User::default(),
            remote: BTreeMap::new(),
            containers: None,
            other: toml::Table::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let bytes = fs::read(path).map_err(|e| StoreError::io(path, e))?;
        Config::parse_bytes(path, &bytes)
    }

    /// Parse config.toml as read from disk (`path` names it in errors).
    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Config> {
        Config::parse(path, text_of(path, bytes)?)
    }

    /// Parse config.toml text; every value is checked here, so errors carry its place.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            let secret = ["access_key_id", "secret_access_key", "session_token"]
                .iter()
                .any(|k| e.message().contains(&format!("`{k}`")));
            let message = if secret {
                "credentials do not belong in config.toml, which git tracks; use the environment (AWS_ACCESS_KEY_ID, ...), an AWS profile, or .dvx/config.local.toml".to_string()
            } else {
                e.message().trim_end().to_string()
            };
            StoreError::Config {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// The text of a settings file, or where its first byte that is not UTF-8 is.
fn text_of<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    limits::utf8(bytes).map_err(|(line, column)| StoreError::Config {
        path: path.to_path_buf(),
        line,
        column,
        message: "not valid UTF-8 text (the first invalid byte is here)".into(),
    })
}

/// `[containers]` of config.toml.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Containers {
    /// `podman`, `docker` or the path of a compatible program.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

impl<'d> Deserialize<'d> for Containers {
    // By hand, so that errors keep the messages dvx has always given for this section.
    fn deserialize<D: serde::Deserializer<'d>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(de::ContainersVisitor)
    }
}

/// Checks made while deserializing, so that toml reports the place of the offending value.
mod de {
    use std::ops::RangeInclusive;

    use serde::de::{DeserializeSeed, Error, MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    use super::{limits, Containers, CONFIG_FORMAT};

    pub fn format<'d, D: Deserializer<'d>>(d: D) -> Result<u32, D::Error> {
        let v = u64::deserialize(d)?;
        if v != CONFIG_FORMAT as u64 {
            return Err(D::Error::custom(format!(
                "format {v} is not understood by this dvx (it reads format {CONFIG_FORMAT})"
            )));
        }
        Ok(CONFIG_FORMAT)
    }

    pub fn lock_wait<'d, D: Deserializer<'d>>(d: D) -> Result<f64, D::Error> {
        seconds(d, "core.lock_wait_secs", limits::LOCK_WAIT_SECS)
    }

    pub fn compression<'d, D: Deserializer<'d>>(d: D) -> Result<String, D::Error> {
        let v = String::deserialize(d)?;
        if !matches!(v.as_str(), "small" | "all" | "none") {
            return Err(D::Error::custom(format!(
                "core.compression = {v:?}: expected \"small\", \"all\" or \"none\""
            )));
        }
        Ok(v)
    }

    pub fn remote_timeout<'d, D: Deserializer<'d>>(d: D) -> Result<Option<f64>, D::Error> {
        seconds(d, "remote timeout_secs", limits::REMOTE_TIMEOUT_SECS).map(Some)
    }

    pub fn remote_jobs<'d, D: Deserializer<'d>>(d: D) -> Result<Option<usize>, D::Error> {
        count(d, "remote jobs", limits::REMOTE_JOBS).map(Some)
    }

    pub fn remote_retries<'d, D: Deserializer<'d>>(d: D) -> Result<Option<usize>, D::Error> {
        count(d, "remote retries", limits::REMOTE_RETRIES).map(Some)
    }

    fn seconds<'d, D: Deserializer<'d>>(
        d: D,
        what: &str,
        range: RangeInclusive<f64>,
    ) -> Result<f64, D::Error> {
        let v = f64::deserialize(d)?;
        if !range.contains(&v) {
            return Err(D::Error::custom(format!(
                "{what} = {v}: expected {}",
                limits::Range(&range)
            )));
        }
        Ok(v)
    }

    fn count<'d, D: Deserializer<'d>>(
        d: D,
        what: &str,
        range: RangeInclusive<u64>,
    ) -> Result<usize, D::Error> {
        // i64 first: toml integers are signed, and a negative one deserves the same message.
        let v = i64::deserialize(d)?;
        match u64::try_from(v) {
            Ok(u) if range.contains(&u) => Ok(u as usize),
            _ => Err(D::Error::custom(format!(
                "{what} = {v}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))),
        }
    }

    pub struct ContainersVisitor;

    impl<'d> Visitor<'d> for ContainersVisitor {
        type Value = Containers;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a [containers] table")
        }
        fn visit_map<A: MapAccess<'d>>(self, mut map: A) -> Result<Containers, A::Error> {
            let mut c = Containers::default();
            while map.next_key_seed(Key)?.is_some() {
                c.runtime = Some(map.next_value_seed(Runtime)?);
            }
            Ok(c)
        }
    }

    /// The only key of `[containers]`; an error here carries the key's place.
    struct Key;
    impl<'d> DeserializeSeed<'d> for Key {
        type Value = ();
        fn deserialize<D: Deserializer<'d>>(self, d: D) -> Result<(), D::Error> {
            let k = String::deserialize(d)?;
            if k != "runtime" {
                return Err(D::Error::custom(format!(
                    "containers.{k}: unknown setting; expected `runtime`"
                )));
            }
            Ok(())
        }
    }

    struct Runtime;
    impl<'d> DeserializeSeed<'d> for Runtime {
        type Value = String;
        fn deserialize<D: Deserializer<'d>>(self, d: D) -> Result<String, D::Error> {
            match toml::Value::deserialize(d)? {
                toml::Value::String(r) if !r.trim().is_empty() => Ok(r.trim().to_string()),
                _ => Err(D::Error::custom(
                    "containers.runtime: expected \"podman\", \"docker\" or a path",
                )),
            }
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    // A span is always on a character boundary, but a bad offset must not panic.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn values_are_checked_at_their_place() {
        let base = "[core]\nformat = 1\n";
        assert_eq!(
            err(&format!("{base}lock_wait_secs = nan\n")),
            "c.toml:3:18: core.lock_wait_secs = NaN: expected a number of seconds from 0 to 86400"
        );
        assert!(err(&format!("{base}lock_wait_secs = -0.5\n")).starts_with("c.toml:3:18: "));
        assert_eq!(
            err(&format!("{base}compression = \"fast\"\n")),
            "c.toml:3:15: core.compression = \"fast\": expected \"small\", \"all\" or \"none\""
        );
        assert_eq!(
            err("[core]\nformat = 2\n"),
            "c.toml:2:10: format 2 is not understood by this dvx (it reads format 1)"
        );
        let remote = format!("{base}[remote.o]\nurl = \"/x\"\n");
        assert_eq!(
            err(&format!("{remote}retries = 101\n")),
            "c.toml:5:11: remote retries = 101: expected a whole number from 0 to 100"
        );
        assert!(err(&format!("{remote}timeout_secs = inf\n")).starts_with("c.toml:5:16: "));
        assert!(err(&format!("{remote}jobs = 65\n")).starts_with("c.toml:5:8: "));
        assert_eq!(
            err(&format!("{base}[containers]\nruntime = \"\"\n")),
            "c.toml:4:11: containers.runtime: expected \"podman\", \"docker\" or a path"
        );
        let ok = Config::parse(
            Path::new("c.toml"),
            &format!(
                "{base}lock_wait_secs = 0\n[containers]\nruntime = \" docker \"\n[x]\ny = 1\n"
            ),
        )
        .unwrap();
        assert_eq!(ok.core.lock_wait_secs, 0.0);
        assert!(ok.core.direct_io, "direct writes are the default");
        let off = Config::parse(Path::new("c.toml"), &format!("{base}direct_io = false\n"));
        assert!(!off.unwrap().core.direct_io);
        assert!(err(&format!("{base}direct_io = \"no\"\n")).starts_with("c.toml:3:13: "));
        assert_eq!(ok.containers.unwrap().runtime.as_deref(), Some("docker"));
        assert!(ok.other.contains_key("x"));
        let e = Config::parse_bytes(Path::new("c.toml"), b"[core]\nformat = 1 # \xff\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2:14: not valid UTF-8"), "{e}");
    }

    /// config.toml as dvx writes it, with every setting of a remote.
    const FULL: &str = r#"[core]
format = 1
lock_wait_secs = 3.0
compression = "small"
remote = "origin"

[remote.origin]
url = "s3://team/cats"
endpoint = "http://127.0.0.1:9000"
region = "eu-west-1"
profile = "lab"
allow_http = true
jobs = 4
timeout_secs = 30.5
retries = 2

[remote.plain]
url = "/mnt/share/cats"
"#;

    #[test]
    fn config_and_remote_json_round_trip_byte_for_byte() {
        let c = Config::parse(Path::new("c.toml"), FULL).unwrap();
        assert_eq!(c.to_toml(), FULL);
        let origin = &c.remote["origin"];
        assert_eq!(origin.timeout_secs, Some(30.5));
        // The JSON form `dvx remote list --json` prints (before it adds name and default).
        assert_eq!(
            serde_json::to_string(origin).unwrap(),
            r#"{"url":"s3://team/cats","endpoint":"http://127.0.0.1:9000","region":"eu-west-1","profile":"lab","allow_http":true,"jobs":4,"timeout_secs":30.5,"retries":2}"#
        );
        assert_eq!(
            serde_json::to_string(&c.remote["plain"]).unwrap(),
            r#"{"url":"/mnt/share/cats"}"#
        );
    }

    #[test]
    fn line_col_never_panics_off_a_boundary() {
        assert_eq!(line_col("é\nab", 1), (1, 1));
        assert_eq!(line_col("é\nab", 99), (2, 3));
    }
}
