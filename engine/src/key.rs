//! Stage and datum keys: the hash of everything that decides a result.
//!
//! The key covers the command (after foreach/matrix templating, before `${input}`/`${output}`
//! which name per-run folders), the environment the stage declares, its working folder, the
//! values of its parameters, its outputs' declarations, and the id of every input. Nothing
//! else: renaming an unrelated file or moving the project leaves keys alone.
//!
//! A stage that runs in a container adds the image's id and whether it has a network; the
//! field is absent for other stages, so their keys are what they were before containers.
//! Resource limits and batching are left out: they decide how fast, not what.
//! `require_output: true` is in (absent when false): it decides whether an empty result is one.

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

/// What the key takes from a container stage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerKey {
    /// The image id the reference resolved to (`sha256:...`), not the name or tag.
    pub image: String,
    pub network: bool,
}

#[derive(Serialize)]
struct KeyDoc<'a> {
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<&'a ContainerKey>,
    datum: Option<(&'a str, &'a Option<InputId>)>,
    deps: &'a BTreeMap<String, Option<InputId>>,
    env: &'a BTreeMap<String, String>,
    format: u32,
    outs: Vec<(&'a str, bool, bool)>,
    params: &'a BTreeMap<String, Value>,
    /// Decides whether an empty result counts as success, so a cached one must not pass
    /// for it. Absent when false: keys of stages without it are what they were.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    require_output: bool,
    wdir: &'a str,
}

/// The key of a stage run, or of one datum of it (`datum` = its path and input id).
pub fn key(
    stage: &Stage,
    deps: &BTreeMap<String, Option<InputId>>,
    params: &BTreeMap<String, Value>,
    datum: Option<(&str, &Option<InputId>)>,
) -> Id {
    key_with(stage, deps, params, datum, None)
}

/// [`key`] for a stage that runs in a container.
pub fn key_with(
    stage: &Stage,
    deps: &BTreeMap<String, Option<InputId>>,
    params: &BTreeMap<String, Value>,
    datum: Option<(&str, &Option<InputId>)>,
    container: Option<&ContainerKey>,
) -> Id {
    let doc = KeyDoc {
        cmd: &stage.cmd,
        container,
        datum,
        deps,
        env: &stage.env,
        format: KEY_FORMAT,
        outs: stage
            .all_outs()
            .map(|o| (o.path.as_str(), o.cache, o.persist))
            .collect(),
        params,
        require_output: stage.require_output,
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

    /// `require_output: true` changes a datum's key; leaving it out (or false) does not.
    #[test]
    fn require_output_is_in_the_key_only_when_set() {
        let base = "stages:\n  f:\n    cmd: c\n    input: {path: raw}\n    outs: [o]\n";
        let (deps, params) = (BTreeMap::new(), BTreeMap::new());
        let input = Some(InputId {
            kind: "file",
            id: Id::of(b"x"),
        });
        let k = |text: &str| key(&stage(text), &deps, &params, Some(("a", &input)));
        let plain = k(base);
        assert_eq!(k(&format!("{base}    require_output: false\n")), plain);
        assert_ne!(k(&format!("{base}    require_output: true\n")), plain);
    }

    /// A container stage's key: pinned, and sensitive to the image id and network only.
    #[test]
    fn golden_container_key() {
        let s = stage("stages:\n  conv:\n    image: localhost/tool:1\n    cmd: convert ${input} ${output}\n    input: {path: raw}\n    outs: [converted]\n");
        let deps = BTreeMap::new();
        let params = BTreeMap::new();
        let input = Some(InputId {
            kind: "file",
            id: Id::of(b"a,b\n"),
        });
        let ck = ContainerKey {
            image: "sha256:6a50f64137a12899270f7b1f56cc9b95af8a1cc4793309e526a7ab89a852502f".into(),
            network: false,
        };
        let k = key_with(&s, &deps, &params, Some(("a.csv", &input)), Some(&ck));
        assert_eq!(
            k.to_hex(),
            "052debf21077bb7d832c05de2b5f35607a656aa5fb728d3b1b956b17b0fd299d"
        );
        let plain = key(&s, &deps, &params, Some(("a.csv", &input)));
        assert_ne!(plain, k);
        let other_image = ContainerKey {
            image: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
            network: false,
        };
        assert_ne!(
            key_with(
                &s,
                &deps,
                &params,
                Some(("a.csv", &input)),
                Some(&other_image)
            ),
            k
        );
        let networked = ContainerKey {
            network: true,
            ..ck.clone()
        };
        assert_ne!(
            key_with(
                &s,
                &deps,
                &params,
                Some(("a.csv", &input)),
                Some(&networked)
            ),
            k
        );
        // Limits and batching do not change what a stage computes.
        let limited = stage("stages:\n  conv:\n    image: localhost/tool:1\n    cmd: convert ${input} ${output}\n    input: {path: raw}\n    outs: [converted]\n    resources: {cpus: 1, memory: 1g}\n    batch: 10\n");
        assert_eq!(
            key_with(&limited, &deps, &params, Some(("a.csv", &input)), Some(&ck)),
            k
        );
    }
}
