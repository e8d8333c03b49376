//! The run cache on a remote: which records a push sends beyond what its commits reach, and
//! which records a fetch lets into the local run cache. Records travel as ordinary `R`
//! objects in packs (`schemas/remote.md`, "The run cache"); a record names its key, so the
//! remote keeps no separate map. Incoming records are untrusted: a restore writes what they
//! name, so `check_run` holds them to the rules for tracked paths and modes before any of a
//! fetch is written.

use std::collections::HashSet;

use dvx_store::object::EntryKind;
use dvx_store::{paths, Id};

use crate::error::{RemoteError, Result};
use crate::fetch::Want;
use crate::layout::Kind;
use crate::spool::Objects;
use crate::{Project, Remote, RemoteErrorKind, RemoteIndex};

/// What a fetched run record offers the run cache: its key and the outputs a restore would
/// write (their kind and id), once the record passed `check_run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOffer {
    pub run: Id,
    pub key: Id,
    pub outputs: Vec<(EntryKind, Id)>,
}

/// Check a run record that came from a remote before anything of it is written. A restore
/// from the run cache writes a record's outputs at the paths it names with the modes it
/// names, so those must be paths dvx would track (relative, no `..`, not `.git`, `.dvx` or
/// `dvx.lock`) and modes dvx writes; input paths and `wdir` are held to the same rule, as
/// lineage shows them. A record that is not the JSON object dvx writes is refused as
/// malformed. `Ok(Some(..))` for a successful run (a run-cache entry), `Ok(None)` for a
/// failed one (kept for lineage and logs only).
pub fn check_run(remote: &str, id: &Id, bytes: &[u8]) -> Result<Option<CacheOffer>> {
    let malformed = |why: String| RemoteError::Remote {
        remote: remote.to_string(),
        message: format!(
            "run record {} is malformed: {why}; nothing was written",
            id.short()
        ),
        kind: RemoteErrorKind::Corrupt,
    };
    let unsafe_path = |field: &str, path: &str, why: String| RemoteError::Remote {
        remote: remote.to_string(),
        message: format!(
            "run record {} names {field} {path:?}: {why}; nothing was written",
            id.short()
        ),
        kind: RemoteErrorKind::Unsafe,
    };
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| malformed("not a JSON object".into()))?;
    let text = |k: &str| obj.get(k).and_then(|x| x.as_str());
    let key: Id = text("key")
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| malformed("no key (64 hex digits)".into()))?;
    text("stage").ok_or_else(|| malformed("no stage name".into()))?;
    let wdir = text("wdir").ok_or_else(|| malformed("no wdir".into()))?;
    if !wdir.is_empty() {
        paths::check_tracked(wdir).map_err(|e| unsafe_path("wdir", wdir, e.to_string()))?;
    }
    let mut outputs = Vec::new();
    for field in ["inputs", "outputs"] {
        let list = obj
            .get(field)
            .and_then(|x| x.as_array())
            .ok_or_else(|| malformed(format!("no {field} list")))?;
        for item in list {
            let path = item
                .get("path")
                .and_then(|x| x.as_str())
                .ok_or_else(|| malformed(format!("an entry of {field} has no path")))?;
            let kind = match item.get("kind").and_then(|x| x.as_str()) {
                Some("file") => EntryKind::File,
                Some("dir") => EntryKind::Dir,
                Some("symlink") => EntryKind::Symlink,
                _ => {
                    return Err(malformed(format!(
                        "{path}: kind is not file, dir or symlink"
                    )))
                }
            };
            let oid: Id = item
                .get("id")
                .and_then(|x| x.as_str())
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| malformed(format!("{path}: no id")))?;
            // Inputs may be outside the tracked set (`imports` name a URL); outputs never are.
            if field == "outputs" {
                // The empty path is the workspace itself, which no output may replace.
                if path.is_empty() {
                    return Err(unsafe_path("output", path, "the workspace itself".into()));
                }
                paths::check_tracked(path)
                    .map_err(|e| unsafe_path("output", path, e.to_string()))?;
                if let Some(m) = item.get("mode").filter(|m| !m.is_null()) {
                    let ok = m
                        .as_u64()
                        .and_then(|m| u32::try_from(m).ok())
                        .is_some_and(|m| {
                            kind == EntryKind::File && dvx_store::guard::canonical_mode(kind, m)
                        });
                    if !ok {
                        return Err(unsafe_path(
                            "output",
                            path,
                            format!("mode {m}, which dvx never writes (files are 644 or 755)"),
                        ));
                    }
                }
                outputs.push((kind, oid));
            }
        }
    }
    let ok = obj.get("error").is_some_and(|e| e.is_null())
        && obj.get("exit").and_then(|e| e.as_i64()) == Some(0);
    Ok(ok.then_some(CacheOffer {
        run: *id,
        key,
        outputs,
    }))
}

impl Project<'_> {
    /// The run records of this store's run cache, for a push that sends the run cache: the
    /// records themselves are small, and whatever of their outputs is here goes with them.
    pub fn run_cache_records(&self, remote: &Remote) -> Result<Vec<Id>> {
        if !remote.run_cache {
            return Ok(Vec::new());
        }
        let mut runs: Vec<Id> = self
            .store
            .run_cache_entries()?
            .into_iter()
            .map(|(_, run)| run)
            .collect();
        runs.sort();
        runs.dedup();
        Ok(runs)
    }

    /// Check every run record that came down (`incoming::check_run`), and pick the
    /// successful ones to enter the run cache: with the run cache exchanged and data wanted
    /// (not `clone --no-checkout`, not an import), for a key this store has no entry for
    /// (a local entry wins), and only when every output's data is on the remote or here, so
    /// a restore never meets missing data. One record per key, the first by id.
    pub(crate) fn run_cache_offers(
        &self,
        remote: &Remote,
        idx: &RemoteIndex,
        objs: &dyn Objects,
        want: &Want,
    ) -> Result<Vec<CacheOffer>> {
        let mut offers = Vec::new();
        for id in objs.ids(Kind::Run) {
            let Some(bytes) = objs.read(Kind::Run, &id)? else {
                continue;
            };
            if let Some(o) = check_run(&remote.name, &id, &bytes)? {
                offers.push(o);
            }
        }
        if !remote.run_cache || matches!(want, Want::Nothing | Want::Commit { .. }) {
            return Ok(Vec::new());
        }
        let mut keys = HashSet::new();
        let mut out = Vec::new();
        for o in offers {
            if keys.contains(&o.key) || self.store.run_cache(&o.key)?.is_some() {
                continue;
            }
            let mut here = true;
            for (k, id) in &o.outputs {
                let has = |kind: Kind| -> Result<bool> {
                    Ok(objs.contains(kind, id)
                        || match kind.obj_kind() {
                            Some(k) => self.store.has_object(k, id)?,
                            None => false,
                        })
                };
                here &= match k {
                    EntryKind::Dir => has(Kind::Tree)?,
                    _ => {
                        has(Kind::File)? || idx.has(Kind::Chunk, id) || self.store.has_chunk(id)?
                    }
                };
            }
            if here {
                keys.insert(o.key);
                out.push(o);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run record as dvx writes it (`engine/src/record.rs`), with the output and mode given.
    fn record(output: &str, mode: &str, exit: &str) -> Vec<u8> {
        let id = Id::of(b"2\n").to_hex();
        format!(
            r#"{{"attempt":0,"cmd":["wc -c < a.txt > n.txt"],"code":null,"datum":null,"duration_ms":3,"end":"2026-01-01T00:00:01+00:00","env":{{}},"error":null,"executor":"local","exit":{exit},"host":"h","image":null,"inputs":[{{"path":"a.txt","kind":"file","id":"{id}","size":2}}],"key":"{key}","outputs":[{{"path":"{output}","kind":"file","id":"{id}","size":2{mode}}}],"params":{{}},"stage":"count","start":"2026-01-01T00:00:00+00:00","stderr":"{id}","stdout":"{id}","user":"u","version":1,"wdir":""}}"#,
            key = Id::of(b"key").to_hex()
        )
        .into_bytes()
    }

    #[test]
    fn a_successful_record_offers_its_key_and_outputs() {
        let bytes = record("n.txt", r#","mode":420"#, "0");
        let id = Id::of(&bytes);
        let offer = check_run("origin", &id, &bytes).unwrap().unwrap();
        assert_eq!(offer.key, Id::of(b"key"));
        assert_eq!(offer.run, id);
        assert_eq!(offer.outputs, vec![(EntryKind::File, Id::of(b"2\n"))]);
        // A failed run is kept for lineage, but restores nothing.
        let failed = record("n.txt", "", "1");
        assert_eq!(
            check_run("origin", &Id::of(&failed), &failed).unwrap(),
            None
        );
    }

    #[test]
    fn records_that_would_write_outside_the_workspace_are_refused() {
        for (out, mode, what) in [
            ("../outside.txt", "", ".."),
            ("", "", "the workspace"),
            ("/etc/passwd", "", "absolute"),
            (".git/hooks/post-checkout", "", ".git"),
            ("sub/.dvx/config.toml", "", ".dvx"),
            ("n.txt", r#","mode":2541"#, "mode 2541"),
        ] {
            let bytes = record(out, mode, "0");
            let err = check_run("origin", &Id::of(&bytes), &bytes).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("remote origin: run record "),
                "{what}: {msg}"
            );
            assert!(msg.contains("nothing was written"), "{what}: {msg}");
            assert_eq!(err.kind(), Some(RemoteErrorKind::Unsafe), "{what}: {msg}");
        }
    }

    #[test]
    fn malformed_records_are_refused_with_what_is_wrong() {
        let good = String::from_utf8(record("n.txt", "", "0")).unwrap();
        let key = Id::of(b"key").to_hex();
        for (bytes, why) in [
            (b"not json".to_vec(), "not JSON"),
            (b"[1,2]".to_vec(), "not a JSON object"),
            (good.replace(&key, "zz").into_bytes(), "no key"),
            (
                good.replace(r#""kind":"file","id""#, r#""kind":"pipe","id""#)
                    .into_bytes(),
                "kind is not",
            ),
            (
                good.replace(r#""outputs":["#, r#""outs":["#).into_bytes(),
                "no outputs list",
            ),
        ] {
            let err = check_run("origin", &Id::of(&bytes), &bytes).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("is malformed: "), "{msg}");
            assert!(msg.contains(why), "{why}: {msg}");
            assert_eq!(err.kind(), Some(RemoteErrorKind::Corrupt));
        }
    }
}
