//! `dvx import` and `dvx update`: data from another dvx project, pinned to a commit of it.
//!
//! The data lands in the workspace and is tracked like anything added by hand, and the import
//! is a run record (executor `import`) whose input names the source (URL, path, commit), so
//! lineage reaches across projects. dvx.lock keeps where each import came from under
//! `imports`, which is what `dvx update` reads to move it to the source's newest commit.

use std::collections::BTreeMap;
use std::path::Path;

use dvx_remote::fetch::Want;
use dvx_remote::{Remote, RemoteErrorKind};
use dvx_store::config::RemoteConfig;
use dvx_store::lockfile::LockFile;
use dvx_store::object::EntryKind;
use dvx_store::refs::{HEADS, TAGS};
use dvx_store::worktree;
use dvx_store::{paths, Id, Progress, Repo, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::record::{PathId, RunRecord, RECORD_VERSION};

/// Where an import came from: the `imports` section of dvx.lock, by destination path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSource {
    /// How to reach the source project: its URL and connection settings (only those; see
    /// `RemoteConfig::connection`), written first as they always were. Credentials come from
    /// the environment, never the lock.
    #[serde(flatten)]
    pub remote: RemoteConfig,
    /// The path inside the source project.
    pub path: String,
    /// The revision asked for (a branch or tag follows the source; a commit id pins it).
    /// None: the source's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// The commit imported.
    pub commit: Id,
    /// What the path held there.
    pub id: Id,
}

#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub dest: String,
    pub source: ImportSource,
    /// False when `update` found the source unchanged.
    pub changed: bool,
    pub run: Option<Id>,
    pub commit: Option<Id>,
    pub files_written: u64,
    pub bytes_written: u64,
}

fn imports(lock: &LockFile) -> BTreeMap<String, ImportSource> {
    lock.other
        .get("imports")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// The source's commit for `rev` (default: its default branch).
fn resolve(remote: &Remote, rev: Option<&str>) -> Result<Id> {
    let (refs, head) = remote.list_refs()?;
    let find = |name: &str| refs.iter().find(|(n, _)| n == name).map(|(_, s)| s.commit);
    let unknown = |r: &str| dvx_remote::RemoteError::Remote {
        remote: remote.name.clone(),
        message: format!("no branch, tag or commit {r:?} there"),
        kind: RemoteErrorKind::NotFound,
    };
    match rev {
        None => {
            let b = head.unwrap_or_else(|| "main".into());
            find(&format!("{HEADS}{b}")).ok_or_else(|| unknown(&b).into())
        }
        Some(r) => {
            if let Some(id) = find(r)
                .or_else(|| find(&format!("{HEADS}{r}")))
                .or_else(|| find(&format!("{TAGS}{r}")))
            {
                return Ok(id);
            }
            // A full commit id pins the import; the fetch checks the remote has it.
            r.parse::<Id>().map_err(|_| unknown(r).into())
        }
    }
}

/// The source an import names: one of this project's remotes, or a URL (a folder relative to
/// `cwd` is made absolute) reached with `conn`'s settings.
pub fn source(repo: &Repo, cwd: &Path, name_or_url: &str, conn: RemoteConfig) -> RemoteConfig {
    match repo.config.remote.get(name_or_url) {
        Some(rc) => rc.clone(),
        None => RemoteConfig {
            url: crate::sync::absolute_url(cwd, name_or_url),
            ..conn
        },
    }
}

/// Where `dvx import` puts `path` when no destination is given: its last part (relative to
/// where the user stands).
pub fn default_dest(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Import `path` of the project at `rc` (at `rev`) into `dest` of this one.
pub fn import(
    repo: &Repo,
    rc: &RemoteConfig,
    path: &str,
    rev: Option<&str>,
    dest: &str,
    force: bool,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    paths::check_tracked(dest)?;
    paths::check_no_symlink(&repo.root, dest, false)?;
    let tracked = repo.head_state()?.2.is_some_and(|c| {
        c.roots
            .iter()
            .any(|r| paths::is_under(dest, r) || paths::is_under(r, dest))
    });
    if !force && (repo.root.join(dest).symlink_metadata().is_ok() || tracked) {
        return Err(StoreError::InvalidPath {
            path: dest.to_string(),
            reason:
                "already exists; choose another destination with -o, or pass --force to replace it"
                    .into(),
        }
        .into());
    }
    let src = ImportSource {
        remote: rc.connection(),
        path: path.trim_matches('/').to_string(),
        rev: rev.map(str::to_string),
        commit: Id::of(b""),
        id: Id::of(b""),
    };
    bring(repo, src, dest, force, progress)
}

/// Move an import to the newest commit of what it follows (or to `rev`).
pub fn update(
    repo: &Repo,
    dest: &str,
    rev: Option<&str>,
    force: bool,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let lock = repo
        .checked_lock()?
        .ok_or_else(|| StoreError::NotTracked(dest.to_string()))?;
    let mut src = imports(&lock)
        .remove(dest)
        .ok_or_else(|| StoreError::InvalidPath {
            path: dest.to_string(),
            reason: "not an import (dvx.lock lists imports under \"imports\")".into(),
        })?;
    if let Some(r) = rev {
        src.rev = Some(r.to_string());
    }
    // Local edits to imported data are not thrown away silently.
    if !force {
        let changes = repo.status(progress)?;
        let dirty: Vec<String> = changes
            .modified
            .iter()
            .chain(&changes.deleted)
            .chain(&changes.new)
            .filter(|p| paths::is_under(p, dest))
            .cloned()
            .collect();
        if !dirty.is_empty() {
            return Err(StoreError::UncommittedChanges(dirty).into());
        }
    }
    bring(repo, src, dest, true, progress)
}

fn bring(
    repo: &Repo,
    mut src: ImportSource,
    dest: &str,
    force: bool,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let remote = Remote::for_url(repo, &src.remote)?;
    remote.check_format(false)?;
    let commit = resolve(&remote, src.rev.as_deref())?;
    let before = src.clone();
    dvx_remote::Project(repo).fetch(
        &remote,
        &Want::Commit {
            commit,
            paths: vec![src.path.clone()],
        },
        progress,
    )?;
    let c = repo.store.get_commit(&commit)?;
    let node = worktree::lookup(&repo.store, &c.tree, &src.path)?.ok_or_else(|| {
        StoreError::NotInRevision {
            path: src.path.clone(),
            commit: format!("{} of {}", commit.short(), src.remote.url),
        }
    })?;
    src.commit = commit;
    src.id = node.id;
    let (_, _, head) = repo.head_state()?;
    let current = match &head {
        Some(h) => worktree::lookup(&repo.store, &h.tree, dest)?,
        None => None,
    };
    if current.is_some_and(|f| f.id == node.id) && before.commit == commit {
        return Ok(ImportReport {
            dest: dest.to_string(),
            source: src,
            changed: false,
            run: None,
            commit: None,
            files_written: 0,
            bytes_written: 0,
        });
    }

    // The workspace: exactly the imported data at dest.
    let mut want = BTreeMap::new();
    want.insert(dest.to_string(), node);
    if node.kind == EntryKind::Dir {
        worktree::flatten(&repo.store, &node.id, dest, &mut want)?;
    }
    let work = repo.workspace(&[dest.to_string()], progress)?;
    if !force && !work.is_empty() {
        return Err(StoreError::InvalidPath {
            path: dest.to_string(),
            reason: "already exists".into(),
        }
        .into());
    }
    let start = chrono::Utc::now();
    let applied = repo.apply(&want, &work, progress)?;

    // One transaction: the run record, the commit, the stat cache.
    let txn = repo.store.txn()?;
    let empty = txn.put_bytes(b"")?;
    let mut params = BTreeMap::new();
    params.insert("url".to_string(), Value::String(src.remote.url.clone()));
    params.insert("path".to_string(), Value::String(src.path.clone()));
    params.insert(
        "rev".to_string(),
        src.rev.clone().map(Value::String).unwrap_or(Value::Null),
    );
    params.insert("commit".to_string(), Value::String(commit.to_hex()));
    let input = PathId {
        path: format!("{}#{}@{}", src.remote.url, src.path, commit.to_hex()),
        kind: node.kind,
        id: node.id,
        size: node.size,
        mode: None,
    };
    let output = PathId {
        path: dest.to_string(),
        kind: node.kind,
        id: node.id,
        size: node.size,
        mode: (node.kind == EntryKind::File).then_some(node.mode),
    };
    let key_doc =
        serde_json::json!({"import": [&src.remote.url, &src.path, commit.to_hex(), dest]});
    let end = chrono::Utc::now();
    let mut cmd = vec![
        "dvx".to_string(),
        "import".into(),
        src.remote.url.clone(),
        src.path.clone(),
        "-o".into(),
        dest.to_string(),
    ];
    if let Some(r) = &src.rev {
        cmd.extend(["--rev".to_string(), r.clone()]);
    }
    let rec = RunRecord {
        attempt: 1,
        cluster: None,
        cmd,
        code: dvx_store::gitutil::git_info(&repo.root),
        combine: None,
        datum: None,
        duration_ms: (end - start).num_milliseconds().max(0) as u64,
        end: end.to_rfc3339(),
        env: BTreeMap::new(),
        error: None,
        executor: "import".into(),
        exit: Some(0),
        experiment: None,
        host: dvx_store::fsutil::hostname(),
        image: None,
        inputs: vec![input],
        key: Id::of(key_doc.to_string().as_bytes()),
        members: Vec::new(),
        notebook: None,
        outputs: vec![output],
        params,
        stage: format!("import:{dest}"),
        start: start.to_rfc3339(),
        stderr: empty,
        stdout: empty,
        trigger: None,
        user: repo.author().name,
        version: RECORD_VERSION,
        warnings: Vec::new(),
        wdir: String::new(),
    };
    let run = rec.put(&txn);
    crate::lineage::index_run(&txn, &run, &rec, &BTreeMap::new(), &BTreeMap::new())?;
    let mut edits = BTreeMap::new();
    edits.insert(dest.to_string(), Some(node));
    let tree = worktree::edit_tree(&repo.store, head.as_ref().map(|h| &h.tree), &edits, &|t| {
        txn.put_tree(t)
    })?;
    let mut roots = head.as_ref().map(|h| h.roots.clone()).unwrap_or_default();
    roots.retain(|r| !paths::is_under(r, dest));
    roots.push(dest.to_string());
    roots.sort();
    let message = format!(
        "import {}:{} at {} into {dest}",
        src.remote.url,
        src.path,
        commit.short()
    );
    let (new_id, new_commit) = repo.new_commit(&txn, tree, roots, message, vec![run])?;
    for (p, e) in &applied.cache {
        txn.put_stat(p, e);
    }
    txn.commit()?;
    repo.index_commit(&new_id, &new_commit)?;
    repo.write_lock(&new_id, &new_commit, head.as_ref())?;
    // Record the source in dvx.lock, beside the paths.
    if let Some(mut lock) = LockFile::read(&repo.root)? {
        let mut all = imports(&lock);
        all.insert(dest.to_string(), src.clone());
        lock.other.insert(
            "imports".into(),
            serde_json::to_value(&all).unwrap_or(Value::Null),
        );
        lock.write(&repo.root, &repo.tmp_dir())?;
    }
    Ok(ImportReport {
        dest: dest.to_string(),
        source: src,
        changed: true,
        run: Some(run),
        commit: Some(new_id),
        files_written: applied.written,
        bytes_written: applied.bytes_written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An import as dvx.lock has always written it: the connection settings first, flat.
    const SOURCE: &str = r#"{
  "url": "s3://team/raw",
  "endpoint": "http://127.0.0.1:9000",
  "region": "eu-west-1",
  "profile": "lab",
  "allow_http": true,
  "path": "data/labels",
  "rev": "v3",
  "commit": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  "id": "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"
}"#;

    #[test]
    fn the_lock_form_of_a_source_round_trips_byte_for_byte() {
        let src: ImportSource = serde_json::from_str(SOURCE).unwrap();
        assert_eq!(src.remote.url, "s3://team/raw");
        assert_eq!(src.remote.allow_http, Some(true));
        assert_eq!(src.rev.as_deref(), Some("v3"));
        assert_eq!(serde_json::to_string_pretty(&src).unwrap(), SOURCE);
        // Through a Value, as dvx.lock's `imports` section is kept.
        let v = serde_json::to_value(&src).unwrap();
        assert_eq!(serde_json::to_string_pretty(&v).unwrap(), SOURCE);
        assert_eq!(serde_json::from_value::<ImportSource>(v).unwrap(), src);
    }

    #[test]
    fn a_minimal_source_writes_only_what_it_has() {
        let min = r#"{"url":"/data/other","path":"x","commit":"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262","id":"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"}"#;
        let src: ImportSource = serde_json::from_str(min).unwrap();
        assert_eq!(serde_json::to_string(&src).unwrap(), min);
        // The report embeds the source as it is.
        let rep = ImportReport {
            dest: "x".into(),
            source: src,
            changed: false,
            run: None,
            commit: None,
            files_written: 0,
            bytes_written: 0,
        };
        assert_eq!(
            serde_json::to_string(&rep).unwrap(),
            format!(
                r#"{{"dest":"x","source":{min},"changed":false,"run":null,"commit":null,"files_written":0,"bytes_written":0}}"#
            )
        );
    }

    #[test]
    fn unknown_fields_in_a_source_are_refused() {
        let bad = SOURCE.replace("\"rev\"", "\"revision\"");
        let e = serde_json::from_str::<ImportSource>(&bad).unwrap_err();
        assert!(e.to_string().contains("revision"), "{e}");
    }

    #[test]
    fn a_source_keeps_only_the_connection_of_a_remote() {
        let rc = RemoteConfig {
            url: "s3://b/p".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            jobs: Some(4),
            timeout_secs: Some(9.0),
            retries: Some(1),
            ..Default::default()
        };
        let c = rc.connection();
        assert_eq!((c.jobs, c.timeout_secs, c.retries), (None, None, None));
        assert_eq!(c.endpoint, rc.endpoint);
        assert_eq!(default_dest("data/images/"), "images");
        assert_eq!(default_dest("labels.csv"), "labels.csv");
    }
}
