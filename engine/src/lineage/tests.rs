//! Unit tests of lineage (the walk, the indexes, rendering); the parent declares this module `#[cfg(test)]`.

/// Every lineage key under `prefix` (tests look at the index directly).
fn lineage_keys(repo: &Repo, prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    repo.store
        .for_each_lineage(prefix, |k, _| {
            out.push(k.to_vec());
            Ok(true)
        })
        .unwrap();
    out
}

use super::*;

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sample() -> Graph {
    let who = CommitRef {
        commit: Id::of(b"c"),
        author: Person {
            email: "e".into(),
            name: "n".into(),
        },
        time: "t".into(),
        message: "m".into(),
    };
    Graph {
        version: GRAPH_VERSION,
        direction: "upstream".into(),
        commit: Id::of(b"c"),
        root: "f0".into(),
        nodes: vec![
            Node::File(Box::new(FileNode {
                id: "f0".into(),
                path: "a".into(),
                kind: "file".into(),
                object: Id::of(b"a"),
                origin: "added".into(),
                added: Some(who.clone()),
                truncated: false,
            })),
            Node::Run(Box::new(RunNode {
                id: "r0".into(),
                run: Id::of(b"r"),
                stage: "s".into(),
                datum: None,
                cmd: vec![],
                params: BTreeMap::new(),
                env: BTreeMap::new(),
                wdir: String::new(),
                image: None,
                code: Some(GitInfo {
                    commit: "0".repeat(40),
                    dirty: false,
                }),
                user: "u".into(),
                host: "h".into(),
                start: "s".into(),
                end: "e".into(),
                exit: Some(0),
                commit: Some(who),
            })),
        ],
        edges: vec![Edge {
            from: "f0".into(),
            to: "r0".into(),
            rel: "produced_by".into(),
        }],
    }
}

/// schemas/lineage.schema.json describes exactly what `--json` writes.
#[test]
fn json_schema_is_in_step_with_the_graph() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/lineage.schema.json");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let g = serde_json::to_value(sample()).unwrap();
    assert_eq!(keys(&g), keys(&s["properties"]));
    let d = &s["$defs"];
    assert_eq!(keys(&g["nodes"][0]), keys(&d["file"]["properties"]));
    assert_eq!(keys(&g["nodes"][1]), keys(&d["run"]["properties"]));
    assert_eq!(keys(&g["edges"][0]), keys(&d["edge"]["properties"]));
    assert_eq!(
        keys(&g["nodes"][0]["added"]),
        keys(&d["commitRef"]["properties"])
    );
    for def in ["file", "run", "edge", "commitRef"] {
        let mut req: Vec<String> = d[def]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        req.sort();
        assert_eq!(req, keys(&d[def]["properties"]), "{def}");
    }
}

/// A store without lineage indexes (made before they existed) is indexed on first use;
/// gc finds the entries of what it deletes; a commit whose path history was lost still
/// names who added its data.
#[test]
fn old_stores_are_indexed_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    std::fs::create_dir(&root).unwrap();
    Repo::init(&root).unwrap();
    std::fs::write(root.join("a.csv"), "x,y\n").unwrap();
    {
        let repo = Repo::open(&root, dvx_store::Access::Write("test")).unwrap();
        repo.add(&["a.csv".into()], Some("first".into()), &dvx_store::Quiet)
            .unwrap();
        // Make it look like an old store: no marker, no entries.
        let txn = repo.store.txn().unwrap();
        txn.delete_meta(keys::META_KEY);
        for k in lineage_keys(&repo, b"") {
            txn.delete_lineage(&k);
        }
        txn.commit().unwrap();
    }
    let (repo, built) = open(&root).unwrap();
    let built = built.expect("indexed on first use");
    assert_eq!((built.commits, built.runs), (1, 0));
    let g = lineage(&repo, "a.csv", "HEAD", false, None).unwrap();
    let Node::File(f) = &g.nodes[0] else {
        panic!("a file first")
    };
    assert_eq!(f.origin, "added");
    assert_eq!(f.added.as_ref().map(|a| a.message.as_str()), Some("first"));
    drop(repo);
    assert!(open(&root).unwrap().1.is_none(), "only once");

    // Entries naming commits or runs that are gone are found for gc to delete.
    let repo = Repo::open(&root, dvx_store::Access::Read).unwrap();
    let n = lineage_keys(&repo, b"").len();
    assert!(n > 0);
    let dead = keys::dead_entries(&repo.store, &HashSet::new(), &HashSet::new()).unwrap();
    assert_eq!(dead.len(), n);
    let head = repo.store.head_commit().unwrap().unwrap();
    let live = keys::dead_entries(&repo.store, &HashSet::from([head]), &HashSet::new());
    assert!(live.unwrap().is_empty());
    drop(repo);

    // Path history lost (a crash between a commit and its index): found by walking.
    std::fs::write(root.join("b.csv"), "b\n").unwrap();
    {
        let repo = Repo::open(&root, dvx_store::Access::Write("test")).unwrap();
        repo.add(&["b.csv".into()], Some("second".into()), &dvx_store::Quiet)
            .unwrap();
        let txn = repo.store.txn().unwrap();
        for k in lineage_keys(&repo, b"h") {
            txn.delete_lineage(&k);
        }
        txn.commit().unwrap();
    }
    let check = || {
        let (repo, built) = open(&root).unwrap();
        assert!(built.is_none());
        for (path, message) in [("a.csv", "first"), ("b.csv", "second")] {
            let g = lineage(&repo, path, "HEAD", false, None).unwrap();
            let Node::File(f) = &g.nodes[0] else {
                panic!("a file first")
            };
            assert_eq!(f.added.as_ref().map(|a| a.message.as_str()), Some(message));
        }
    };
    check();

    // Commits that arrived unindexed (a fetch) are indexed from their ids.
    let repo = Repo::open(&root, dvx_store::Access::Write("test")).unwrap();
    let head = repo.store.head_commit().unwrap().unwrap();
    let parent = repo.store.get_commit(&head).unwrap().parents[0];
    index_fetched(&repo.store, &[], &[head, parent]).unwrap();
    let n = lineage_keys(&repo, b"h").len();
    assert_eq!(n, 2, "a.csv in the first commit, b.csv in the second");
    assert!(
        dvx_store::lineage::is_indexed(&repo.store).unwrap(),
        "still marked indexed"
    );

    // A rebuild is written in pieces: one cut short (its last write never made) leaves the
    // store marked unindexed, so the next reader rebuilds instead of trusting half an index.
    let txn = repo.store.txn().unwrap();
    dvx_store::lineage::reindex_commits(&repo.store, &txn).unwrap();
    drop(txn);
    assert!(!dvx_store::lineage::is_indexed(&repo.store).unwrap());
    drop(repo);
    assert!(open(&root).unwrap().1.is_some(), "rebuilt on the next use");
    check();
}

#[test]
fn rev_suffix_is_split_at_the_last_at() {
    assert_eq!(split_rev("a/b.txt"), ("a/b.txt", "HEAD"));
    assert_eq!(split_rev("a/b.txt@v1"), ("a/b.txt", "v1"));
    assert_eq!(split_rev("a@b.txt@HEAD~2"), ("a@b.txt", "HEAD~2"));
    assert_eq!(split_rev("a.txt@"), ("a.txt", "HEAD"));
    assert_eq!(split_rev("@v1"), ("@v1", "HEAD"));
}

#[test]
fn renderers_name_every_node() {
    let g = sample();
    let t = render_tree(&g);
    assert!(t.starts_with("a ("), "{t}");
    assert!(t.contains("added by n <e> t"), "{t}");
    assert!(t.contains("run ") && t.contains(" s\n"), "{t}");
    assert!(render_dot(&g).contains("f0 -> r0 [label=\"produced_by\"]"));
    assert!(render_mermaid(&g).contains("f0 -->|produced_by| r0"));
    assert!(svg(&g).contains("<g id=\"r0\">"));
}
