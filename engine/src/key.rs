//! Stage and datum keys: the hash of everything that decides a result.
//!
//! The key covers the command (after foreach/matrix templating, before `${input}`/`${output}`
//! which name per-run folders), the environment the stage declares, its working folder, the
//! values of its parameters, its outputs' declarations, and the id of every input. Nothing
//! else: renaming an unrelated file or moving the project leaves keys alone.

use std::collections::BTreeMap;

use dvx_store::Id;
use serde::Serialize;
use serde_json::Value;

use crate::spec::Stage;

pub const KEY_FORMAT: u32 = 1;

/// An input as the key sees it: its kind and id, or `None` when it does not exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InputId {
    pub kind: &'static str,
    pub id: Id,
}

#[derive(Serialize)]
struct KeyDoc<'a> {
    cmd: &'a [String],
    datum: Option<(&'a str, &'a Option<InputId>)>,
    deps: &'a BTreeMap<String, Option<InputId>>,
    env: &'a BTreeMap<String, String>,
    format: u32,
    outs: Vec<(&'a str, bool, bool)>,
    params: &'a BTreeMap<String, Value>,
    wdir: &'a str,
}

/// The key of a stage run, or of one datum of it (`datum` = its path and input id).
pub fn key(
    stage: &Stage,
    deps: &BTreeMap<String, Option<InputId>>,
    params: &BTreeMap<String, Value>,
    datum: Option<(&str, &Option<InputId>)>,
) -> Id {
    let doc = KeyDoc {
        cmd: &stage.cmd,
        datum,
        deps,
        env: &stage.env,
        format: KEY_FORMAT,
        outs: stage
            .all_outs()
            .map(|o| (o.path.as_str(), o.cache, o.persist))
            .collect(),
        params,
        wdir: &stage.wdir,
    };
    Id::of(&serde_json::to_vec(&doc).unwrap_or_default())
}

/// One key for a whole datum stage: the hash of its datums' keys in order.
pub fn combine(keys: &[Id]) -> Id {
    let mut h = blake3::Hasher::new();
    h.update(b"dvx-datums-1\0");
    for k in keys {
        h.update(k.as_bytes());
    }
    Id::from_hash(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;
    use std::path::Path;

    fn stage(text: &str) -> Stage {
        parse(Path::new("dvx.yaml"), text).unwrap().stages.remove(0)
    }

    /// Golden keys: a change here means every user's run cache is invalidated. Bump
    /// KEY_FORMAT deliberately instead of editing the value.
    #[test]
    fn golden_key_and_sensitivity() {
        let s = stage("stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n    outs: [model.pkl]\n    params: [lr]\n");
        let mut deps = BTreeMap::new();
        deps.insert(
            "train.py".to_string(),
            Some(InputId {
                kind: "file",
                id: Id::of(b"print(1)\n"),
            }),
        );
        let mut params = BTreeMap::new();
        params.insert("params.yaml:lr".to_string(), serde_json::json!(0.1));
        let k = key(&s, &deps, &params, None);
        assert_eq!(
            k.to_hex(),
            "d1d90a7ab68a53b394a701aff6632f6243aaefbd5c3c9cd49891e94bcf864f4c"
        );
        // Code, params and command changes all change the key.
        let mut d2 = deps.clone();
        d2.insert(
            "train.py".to_string(),
            Some(InputId {
                kind: "file",
                id: Id::of(b"print(2)\n"),
            }),
        );
        assert_ne!(key(&s, &d2, &params, None), k);
        let mut p2 = params.clone();
        p2.insert("params.yaml:lr".to_string(), serde_json::json!(0.2));
        assert_ne!(key(&s, &deps, &p2, None), k);
        let s2 = stage("stages:\n  train:\n    cmd: python train.py --fast\n    deps: [train.py]\n    outs: [model.pkl]\n    params: [lr]\n");
        assert_ne!(key(&s2, &deps, &params, None), k);
        // The stage's name is not part of the key (renaming a stage keeps its cache).
        let s3 = stage("stages:\n  fit:\n    cmd: python train.py\n    deps: [train.py]\n    outs: [model.pkl]\n    params: [lr]\n");
        assert_eq!(key(&s3, &deps, &params, None), k);
    }
}
