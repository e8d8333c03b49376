//! Remotes: the store shared through object storage (S3, GCS, Azure, a folder).
//!
//! Objects travel in packs with an index (`layout`), so thousands of small files cost a few
//! requests. Data goes up before refs, and refs move with conditional writes (`push`); what
//! comes down is verified against its id before it enters the local store (`fetch`).

mod connect;
pub mod error;
pub mod fetch;
pub mod incoming;
mod index;
pub mod layout;
pub mod ops;
#[cfg(test)]
mod proptests;
pub mod push;
pub mod runcache;
pub mod spool;
pub mod task;
pub mod transfer;

use connect::{aws_profile, check_http};
pub use connect::{check_endpoint, parse_url};
use error::{error_chain, no_bucket, summarize_network};
pub use index::RemoteIndex;

use std::fs;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};
use serde::Serialize;

use dvx_store::config::{LocalConfig, RemoteConfig, RemoteSecrets};
use dvx_store::error::IoContext;
use dvx_store::id::Id;
use dvx_store::repo::Repo;
use dvx_store::StoreError;

pub use error::{RemoteError, RemoteErrorKind, Result};

/// Where a ref stands after a push, fetch or pull, or against the remote's (`status --remote`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SyncStatus {
    #[serde(rename = "new")]
    New,
    #[serde(rename = "up to date")]
    UpToDate,
    #[serde(rename = "fast-forward")]
    FastForward,
    /// Pushed with --force over commits the remote had.
    #[serde(rename = "forced")]
    Forced,
    /// A fetched ref moved.
    #[serde(rename = "updated")]
    Updated,
    /// A fetched tag that differs from the local one of that name, which is kept.
    #[serde(rename = "kept local")]
    KeptLocal,
    /// Local has commits the remote lacks.
    #[serde(rename = "ahead")]
    Ahead,
    #[serde(rename = "behind")]
    Behind,
    #[serde(rename = "diverged")]
    Diverged,
    #[serde(rename = "not pushed")]
    NotPushed,
    /// The remote's commit is not here: fetch first.
    #[serde(rename = "unknown")]
    Unknown,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::New => "new",
            SyncStatus::UpToDate => "up to date",
            SyncStatus::FastForward => "fast-forward",
            SyncStatus::Forced => "forced",
            SyncStatus::Updated => "updated",
            SyncStatus::KeptLocal => "kept local",
            SyncStatus::Ahead => "ahead",
            SyncStatus::Behind => "behind",
            SyncStatus::Diverged => "diverged",
            SyncStatus::NotPushed => "not pushed",
            SyncStatus::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project seen from its remotes: push, fetch, pull and the remote settings work on the
/// project's store through this, since the store itself knows nothing of remotes.
pub struct Project<'a>(pub &'a Repo);

impl std::ops::Deref for Project<'_> {
    type Target = Repo;
    fn deref(&self) -> &Repo {
        self.0
    }
}

/// A remote's state of one ref, as read: the commit and what a conditional write needs.
#[derive(Clone, Debug)]
pub struct RefState {
    pub commit: Id,
    version: UpdateVersion,
    raw: Vec<u8>,
}

/// A remote's refs by full name, and its default branch.
pub type RemoteRefs = (Vec<(String, RefState)>, Option<String>);

pub struct Remote {
    pub name: String,
    pub url: String,
    store: Arc<dyn ObjectStore>,
    /// For folder remotes: the folder, where refs move under a file lock.
    folder: Option<PathBuf>,
    rt: tokio::runtime::Runtime,
    pub jobs: usize,
    /// Target size of a pack.
    pub pack_size: usize,
    /// Where pack indexes are kept between commands (they never change once written).
    cache_dir: Option<PathBuf>,
    /// Exchange the run cache: push sends every run-cache record (and the outputs it names)
    /// even when no pushed commit reaches it, and fetch enters successful records it brings
    /// into the local run cache with their outputs' data. On unless `--no-run-cache`.
    pub run_cache: bool,
}

impl Remote {
    /// The remote `name` of this project (or its default), or a URL given in its place.
    pub fn open(repo: &Repo, name: Option<&str>) -> Result<Remote> {
        let cfg = &repo.config;
        let name = match name {
            Some(n) => n.to_string(),
            None => match (&cfg.core.remote, cfg.remote.len()) {
                (Some(n), _) => n.clone(),
                (None, 1) => cfg.remote.keys().next().cloned().unwrap_or_default(),
                (None, 0) => {
                    return Err(RemoteError::Store(StoreError::UnknownRemote(
                        "(none configured)".into(),
                    )))
                }
                (None, _) => {
                    return Err(RemoteError::Remote {
                        remote: String::new(),
                        message: "several remotes and no default".into(),
                        kind: RemoteErrorKind::Config,
                    })
                }
            },
        };
        let local = LocalConfig::load(&repo.dot.join("config.local.toml"))?;
        // Projects made before remotes existed: keep the index cache out of git.
        let ignore = repo.dot.join(".gitignore");
        if !fs::read_to_string(&ignore).is_ok_and(|t| t.contains("/remotes/")) {
            dvx_store::gitutil::write_internal_gitignore(&repo.dot)?;
        }
        match cfg.remote.get(&name) {
            Some(rc) => {
                let cache = repo.dot.join("remotes").join(&name);
                Remote::connect(&name, rc, local.remote.get(&name), Some(cache))
            }
            None if name.contains("://") || name.starts_with('/') || name.starts_with('.') => {
                Remote::for_url(
                    repo,
                    &RemoteConfig {
                        url: name.clone(),
                        ..Default::default()
                    },
                )
            }
            None => Err(RemoteError::Store(StoreError::UnknownRemote(name))),
        }
    }

    /// A remote that is not one of the project's, named by its URL (with its index cache
    /// under `.dvx/remotes/url-HASH`).
    pub fn for_url(repo: &Repo, rc: &RemoteConfig) -> Result<Remote> {
        let cache = repo
            .dot
            .join("remotes")
            .join(format!("url-{}", Id::of(rc.url.as_bytes()).short()));
        Remote::connect(&rc.url, rc, None, Some(cache))
    }

    /// Connect to a remote (nothing is requested yet).
    pub fn connect(
        name: &str,
        rc: &RemoteConfig,
        secrets: Option<&RemoteSecrets>,
        cache_dir: Option<PathBuf>,
    ) -> Result<Remote> {
        let (scheme, bucket, prefix) = parse_url(&rc.url).map_err(|e| match e {
            RemoteError::Remote { message, kind, .. } => RemoteError::Remote {
                remote: name.to_string(),
                message,
                kind,
            },
            e => e,
        })?;
        use dvx_store::limits::{env_f64, env_u64, PACK_SIZE, REMOTE_RETRIES, REMOTE_TIMEOUT_SECS};
        let timeout = env_f64("DVX_REMOTE_TIMEOUT", REMOTE_TIMEOUT_SECS)?
            .or(rc.timeout_secs)
            .unwrap_or(60.0)
            .max(0.1);
        let retries = env_u64("DVX_REMOTE_RETRIES", REMOTE_RETRIES)?
            .map(|v| v as usize)
            .or(rc.retries)
            .unwrap_or(5);
        let jobs = rc.jobs.unwrap_or(8).clamp(1, 64);
        let client = ClientOptions::new()
            .with_timeout(Duration::from_secs_f64(timeout))
            .with_connect_timeout(Duration::from_secs_f64(timeout.min(10.0)));
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: Duration::from_secs_f64((timeout * (retries as f64 + 1.0)).min(300.0)),
        };
        let cfg_err = |e: object_store::Error| RemoteError::Remote {
            remote: name.to_string(),
            message: e.to_string(),
            kind: RemoteErrorKind::Config,
        };
        check_endpoint(name, &scheme, rc)?;
        let mut folder = None;
        let inner: Arc<dyn ObjectStore> = match scheme.as_str() {
            "s3" => {
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&bucket);
                let mut endpoint = rc.endpoint.clone();
                let mut region = rc.region.clone();
                // As the AWS tools do: the named profile, else AWS_PROFILE, else "default".
                let profile = rc
                    .profile
                    .clone()
                    .or_else(|| std::env::var("AWS_PROFILE").ok())
                    .or_else(|| Some("default".into()));
                let mut creds = secrets.cloned().unwrap_or_default();
                if let Some(p) = &profile {
                    let (pc, pregion, pendpoint) = aws_profile(p);
                    // A profile named on purpose wins over the environment's keys.
                    if rc.profile.is_some() || std::env::var("AWS_ACCESS_KEY_ID").is_err() {
                        creds.access_key_id = creds.access_key_id.or(pc.access_key_id);
                        creds.secret_access_key = creds.secret_access_key.or(pc.secret_access_key);
                        creds.session_token = creds.session_token.or(pc.session_token);
                    }
                    region = region.or(pregion);
                    endpoint = endpoint.or(pendpoint);
                }
                if let Some(k) = creds.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(s) = creds.secret_access_key {
                    b = b.with_secret_access_key(s);
                }
                if let Some(t) = creds.session_token {
                    b = b.with_token(t);
                }
                let region = region
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .unwrap_or_else(|| "us-east-1".into());
                b = b.with_region(region);
                let mut client = client;
                if let Some(ep) = &endpoint {
                    client = client.with_allow_http(check_http(name, ep, rc)?);
                    b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
                }
                let s = b
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(cfg_err)?;
                Arc::new(s)
            }
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(cfg_err)?,
            ),
            "az" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_container_name(&bucket);
                let mut client = client;
                if let Some(ep) = &rc.endpoint {
                    // Azurite and other emulators: http://127.0.0.1:10000/ACCOUNT
                    client = client.with_allow_http(check_http(name, ep, rc)?);
                    b = b.with_endpoint(ep.clone());
                }
                Arc::new(
                    b.with_client_options(client)
                        .with_retry(retry)
                        .build()
                        .map_err(cfg_err)?,
                )
            }
            _ => {
                let dir = PathBuf::from(&bucket);
                if !dir.is_absolute() {
                    return Err(RemoteError::Remote {
                        remote: name.to_string(),
                        message: format!("{:?}: a folder remote needs an absolute path", rc.url),
                        kind: RemoteErrorKind::Config,
                    });
                }
                fs::create_dir_all(&dir).at(&dir)?;
                folder = Some(dir.clone());
                Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(cfg_err)?)
            }
        };
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            inner
        } else {
            Arc::new(PrefixStore::new(inner, ObjPath::from(prefix.as_str())))
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StoreError::io("tokio runtime", e))?;
        let pack_size = env_u64("DVX_PACK_SIZE", PACK_SIZE)?.map_or(16 << 20, |v| v as usize);
        Ok(Remote {
            name: name.to_string(),
            url: rc.url.clone(),
            store,
            folder,
            rt,
            jobs,
            pack_size,
            cache_dir,
            run_cache: true,
        })
    }

    /// Turn an object_store error into ours, in plain words.
    fn err(&self, what: &str, e: object_store::Error) -> RemoteError {
        use object_store::Error as E;
        let (kind, message) = match &e {
            E::NotFound { .. } if no_bucket(&e) => (
                RemoteErrorKind::NotFound,
                "no such bucket (dvx does not create buckets: create it first)".to_string(),
            ),
            E::NotFound { .. } => (RemoteErrorKind::NotFound, format!("{what}: not found")),
            E::Precondition { .. } | E::AlreadyExists { .. } => (
                RemoteErrorKind::Rejected,
                format!("{what}: changed on the remote meanwhile"),
            ),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => (
                RemoteErrorKind::Auth,
                format!("{what}: access denied by the server"),
            ),
            _ => {
                let full = error_chain(&e);
                let lower = full.to_ascii_lowercase();
                let no_creds =
                    lower.contains("169.254.169.254") || lower.contains("metadata.google");
                // "403" alone also matches timings in the retry message ("in 1.403ms").
                let kind = if no_creds
                    || lower.contains("status 403")
                    || lower.contains("403 forbidden")
                    || lower.contains("accessdenied")
                    || lower.contains("invalidaccesskeyid")
                    || lower.contains("signaturedoesnotmatch")
                    || lower.contains("forbidden")
                {
                    RemoteErrorKind::Auth
                } else if lower.contains("nosuchbucket") {
                    RemoteErrorKind::NotFound
                } else {
                    RemoteErrorKind::Network
                };
                let short = match kind {
                    RemoteErrorKind::Auth if no_creds => {
                        "no credentials found (none in the environment or a profile, and no instance role)".to_string()
                    }
                    RemoteErrorKind::Auth => "access denied by the server".to_string(),
                    RemoteErrorKind::NotFound => {
                        "no such bucket (dvx does not create buckets: create it first)".to_string()
                    }
                    _ => summarize_network(&full),
                };
                (kind, format!("{what}: {short}"))
            }
        };
        // DVX_DEBUG=1 shows the client's whole error chain (it never holds secrets).
        let message = if std::env::var_os("DVX_DEBUG").is_some() {
            format!("{message} [{}]", error_chain(&e))
        } else {
            message
        };
        RemoteError::Remote {
            remote: self.name.clone(),
            message,
            kind,
        }
    }

    pub fn corrupt(&self, message: String) -> RemoteError {
        RemoteError::Remote {
            remote: self.name.clone(),
            message,
            kind: RemoteErrorKind::Corrupt,
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Read a whole object; None if it does not exist.
    pub fn get(&self, key: &str) -> Result<Option<(Bytes, UpdateVersion)>> {
        let path = ObjPath::from(key);
        let r = self.block_on(async {
            let r = self.store.get(&path).await?;
            let version = UpdateVersion {
                e_tag: r.meta.e_tag.clone(),
                version: r.meta.version.clone(),
            };
            let bytes = r.bytes().await?;
            Ok::<_, object_store::Error>((bytes, version))
        });
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e @ object_store::Error::NotFound { .. }) if !no_bucket(&e) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Keys under `prefix` (relative to the remote's root).
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = ObjPath::from(prefix);
        let metas: Vec<object_store::ObjectMeta> = self
            .block_on(self.store.list(Some(&p)).try_collect())
            .map_err(|e| self.err(&format!("listing {prefix}"), e))?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// Write an object only if none exists; false if one did.
    pub fn put_new(&self, key: &str, data: Vec<u8>) -> Result<bool> {
        let path = ObjPath::from(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.block_on(self.store.put_opts(&path, PutPayload::from(data), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Read a ref.
    pub fn read_ref(&self, name: &str) -> Result<Option<RefState>> {
        match self.get(name)? {
            None => Ok(None),
            Some((bytes, version)) => {
                let commit = layout::decode_ref(name, &bytes)
                    .map_err(|_| self.corrupt(format!("ref {name} does not hold a commit id")))?;
                Ok(Some(RefState {
                    commit,
                    version,
                    raw: bytes.to_vec(),
                }))
            }
        }
    }

    /// Move a ref to `to` if it still is what was read (`expected`; None: if it does not
    /// exist). Someone else's push in between makes this fail with a "fetch first" error.
    pub fn update_ref(&self, name: &str, expected: Option<&RefState>, to: &Id) -> Result<()> {
        let data = layout::encode_ref(to);
        let rejected = || RemoteError::Remote {
            remote: self.name.clone(),
            message: format!("{name} was changed by another push meanwhile"),
            kind: RemoteErrorKind::Rejected,
        };
        if let Some(dir) = &self.folder {
            return folder_update_ref(dir, name, expected.map(|e| e.raw.as_slice()), &data)
                .and_then(|ok| if ok { Ok(()) } else { Err(rejected()) });
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(s) => PutMode::Update(s.version.clone()),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let path = ObjPath::from(name);
        match self.block_on(self.store.put_opts(&path, PutPayload::from(data), opts)) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Err(rejected()),
            Err(e) => Err(self.err(name, e)),
        }
    }

    /// All of the remote's pack indexes: cached ones from disk, new ones downloaded.
    pub fn load_index(&self) -> Result<RemoteIndex> {
        let keys = self.list("packs/")?;
        let packs: Vec<Id> = keys
            .iter()
            .filter_map(|k| layout::pack_of_index_key(k))
            .collect();
        let cache = self.cache_dir.as_ref().map(|d| d.join("idx"));
        if let Some(c) = &cache {
            fs::create_dir_all(c).at(c)?;
        }
        // Each pack's entries join the index as they are read: neither the downloaded index
        // files nor their decoded entries are all held at once.
        let mut idx = RemoteIndex::default();
        let mut missing = Vec::new();
        for p in packs {
            let cached = cache
                .as_ref()
                .and_then(|c| fs::read(c.join(format!("{}.idx", p.to_hex()))).ok())
                .and_then(|b| layout::decode_index(p, &b).ok());
            match cached {
                Some(e) => idx.add_pack(p, e),
                None => missing.push(p),
            }
        }
        let mut add = |p: Id, bytes: Bytes| -> Result<()> {
            let entries = layout::decode_index(p, &bytes)
                .map_err(|e| self.corrupt(format!("{}: {e}", layout::index_key(&p))))?;
            if let Some(c) = &cache {
                let dest = c.join(format!("{}.idx", p.to_hex()));
                let _ = dvx_store::fsutil::write_atomic(&dest, &bytes, c);
            }
            idx.add_pack(p, entries);
            Ok(())
        };
        self.block_on(async {
            let mut got = stream::iter(missing)
                .map(|p| async move {
                    let path = ObjPath::from(layout::index_key(&p));
                    let r = self.store.get(&path).await?;
                    Ok::<_, object_store::Error>((p, r.bytes().await?))
                })
                .buffer_unordered(self.jobs);
            while let Some(r) = got.next().await {
                let (p, bytes) = r.map_err(|e| self.err("reading pack indexes", e))?;
                add(p, bytes)?;
            }
            Ok::<_, RemoteError>(())
        })?;
        idx.finish();
        Ok(idx)
    }

    /// The remote's branches and tags (`refs/heads/X`, `refs/tags/X`) and its HEAD branch.
    pub fn list_refs(&self) -> Result<RemoteRefs> {
        let names: Vec<String> = self
            .list("refs/")?
            .into_iter()
            .filter(|k| k.starts_with("refs/heads/") || k.starts_with("refs/tags/"))
            .collect();
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = self.read_ref(&n)? {
                out.push((n, s));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let head = self.get("HEAD")?.and_then(|(b, _)| {
            String::from_utf8_lossy(&b)
                .trim()
                .strip_prefix("ref: refs/heads/")
                .map(str::to_string)
        });
        Ok((out, head))
    }

    /// Check the marker that says this is a dvx remote of a format we read. With `create`,
    /// a new remote gets one; otherwise an empty location is an error.
    pub fn check_format(&self, create: bool) -> Result<()> {
        let marker = format!("{{\"format\":{}}}\n", layout::REMOTE_FORMAT);
        match self.get(layout::MARKER)? {
            Some((b, _)) => {
                let v: serde_json::Value = serde_json::from_slice(&b)
                    .map_err(|_| self.corrupt(format!("{} is not JSON", layout::MARKER)))?;
                let f = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0);
                if f != u64::from(layout::REMOTE_FORMAT) {
                    return Err(RemoteError::Remote {
                        remote: self.name.clone(),
                        message: format!(
                            "remote format {f} is not understood by this dvx (it reads format {})",
                            layout::REMOTE_FORMAT
                        ),
                        kind: RemoteErrorKind::Config,
                    });
                }
                Ok(())
            }
            None if create => {
                self.put_new(layout::MARKER, marker.into_bytes())?;
                Ok(())
            }
            None => Err(RemoteError::Remote {
                remote: self.name.clone(),
                message: format!("{} holds no dvx data", self.url),
                kind: RemoteErrorKind::NotFound,
            }),
        }
    }
}

/// Ids the cached indexes of this project's remotes list: data a partial clone may lack.
pub fn promised_ids(dot: &FsPath) -> std::collections::HashSet<Id> {
    let mut out = std::collections::HashSet::new();
    let Ok(remotes) = fs::read_dir(dot.join("remotes")) else {
        return out;
    };
    for r in remotes.flatten() {
        for f in fs::read_dir(r.path().join("idx"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(pack) = name.strip_suffix(".idx").and_then(|h| h.parse::<Id>().ok()) else {
                continue;
            };
            if let Ok(entries) = fs::read(f.path())
                .map_err(|_| ())
                .and_then(|b| layout::decode_index(pack, &b).map_err(|_| ()))
            {
                out.extend(entries.into_iter().map(|e| e.id));
            }
        }
    }
    out
}

/// A conditional ref update in a folder: compare and swap under a file lock.
fn folder_update_ref(
    dir: &FsPath,
    name: &str,
    expected: Option<&[u8]>,
    data: &[u8],
) -> Result<bool> {
    use std::os::fd::AsRawFd;
    let lock_path = dir.join("refs.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .at(&lock_path)?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(RemoteError::Store(StoreError::io(
            &lock_path,
            std::io::Error::last_os_error(),
        )));
    }
    let path = dir.join(name);
    let current = match fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(RemoteError::Store(StoreError::io(&path, e))),
    };
    if current.as_deref() != expected {
        return Ok(false);
    }
    let parent = path.parent().unwrap_or(dir);
    fs::create_dir_all(parent).at(parent)?;
    dvx_store::fsutil::write_atomic(&path, data, parent)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::is_loopback;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("s3://b/some/prefix/").unwrap(),
            ("s3".into(), "b".into(), "some/prefix".into())
        );
        assert_eq!(
            parse_url("file:///tmp/r").unwrap(),
            ("file".into(), "/tmp/r".into(), "".into())
        );
        assert_eq!(
            parse_url("/tmp/r/").unwrap(),
            ("file".into(), "/tmp/r".into(), "".into())
        );
        assert!(parse_url("ftp://x/y").is_err());
        assert!(parse_url("s3:///y").is_err());
        assert!(is_loopback("http://127.0.0.1:5055"));
        assert!(is_loopback("http://localhost:5055/"));
        assert!(!is_loopback("http://s3.example.com"));
    }
}
