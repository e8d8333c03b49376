//! Property tests of every decoder that reads bytes a remote or a damaged disk can supply:
//! trees, file manifests, commits, chunk index entries, stored chunks and remote pack
//! indexes. Arbitrary bytes and mutated valid encodings must never panic; whatever decodes
//! must re-encode to the same bytes and pass or fail validation the same way every time.
//! Cases are bounded so the whole file runs in a few seconds.

use proptest::prelude::*;

use crate::guard;
use crate::id::Id;
use crate::object::{Commit, EntryKind, FileManifest, GitInfo, Person, Tree, TreeEntry};
use crate::pack::{self, ChunkLoc};
use crate::paths;
use crate::remote::layout::{self, Entry, Kind};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

/// Names mixing ordinary ones, reserved ones and invalid ones.
fn name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "data",
        "ü",
        "x.csv",
        ".git",
        ".GIT",
        ".dvx",
        "dvx.lock",
        ".dvx-tmp-",
        "..",
        ".",
        "",
        "/",
        "\0",
        " ",
    ]);
    (piece, 0u8..4).prop_map(|(p, n)| format!("{p}{}", "z".repeat(n as usize)))
}

fn kind() -> impl Strategy<Value = EntryKind> {
    prop::sample::select(vec![EntryKind::File, EntryKind::Dir, EntryKind::Symlink])
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![0o644u32, 0o755, 0o777, 0o6777, 0o100644]),
        any::<u32>()
    ]
}

/// An encoded tree (built without `Tree::new`'s checks, as a hostile writer would).
fn tree_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((name(), kind(), mode(), any::<u64>(), id()), 0..6).prop_map(|es| {
        let mut entries: Vec<TreeEntry> = es
            .into_iter()
            .map(|(name, kind, mode, size, id)| TreeEntry {
                name,
                kind,
                mode,
                size,
                id,
            })
            .collect();
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        entries.dedup_by(|a, b| a.name == b.name);
        Tree { entries }.encode()
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// Rewrite a byte that could end a varint in a longer form (`b` as `b|0x80, 00`).
    Widen(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Widen),
    ]
}

fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let n = b.len();
        match *m {
            Mutation::Flip(i, x) if n > 0 => b[i % n] ^= x,
            Mutation::Truncate(i) => b.truncate(i % (n + 1)),
            Mutation::Insert(i, x) => b.insert(i % (n + 1), x),
            Mutation::Remove(i) if n > 0 => {
                b.remove(i % n);
            }
            Mutation::Widen(i) if n > 0 && b[i % n] < 0x80 => {
                b[i % n] |= 0x80;
                b.insert(i % n + 1, 0);
            }
            _ => {}
        }
    }
    b
}

/// Decode a tree and hold it to its promises: canonical bytes, names that `Tree::new` accepts,
/// and the same verdict from validation as from the rule applied entry by entry.
fn check_tree(b: &[u8]) {
    let id = Id::of(b);
    let Ok(entries) = Tree::decode_ref(id, b) else {
        assert!(Tree::decode(id, b).is_err());
        return;
    };
    let tree = Tree::decode(id, b).expect("decode agrees with decode_ref");
    assert_eq!(tree.encode(), b, "a decoded tree re-encodes to its bytes");
    let rebuilt = Tree::new(tree.entries.clone()).expect("decoded names are valid names");
    assert_eq!(rebuilt, tree);
    let problems = guard::tree_problems(id, b);
    assert_eq!(problems, guard::tree_problems(id, b));
    let expected = entries
        .iter()
        .filter(|e| {
            paths::reserved_name(e.name).is_some() || !guard::canonical_mode(e.kind, e.mode)
        })
        .count();
    assert_eq!(problems.len(), expected);
    for e in &entries {
        let safe = paths::check_tracked(e.name).is_ok();
        assert_eq!(safe, paths::reserved_top_name(e.name).is_none());
    }
}

fn commit_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        bytes(8),
        proptest::collection::vec(name(), 0..3),
        proptest::collection::vec(id(), 0..2),
        id(),
        any::<i64>(),
        any::<bool>(),
    )
        .prop_map(|(msg, roots, parents, tree, time, git)| {
            Commit {
                author: Person {
                    email: "e@x".into(),
                    name: String::from_utf8_lossy(&msg).into_owned(),
                },
                git: git.then(|| GitInfo {
                    commit: "0".repeat(40),
                    dirty: false,
                }),
                message: String::from_utf8_lossy(&msg).into_owned(),
                parents,
                roots,
                runs: vec![],
                time,
                tree,
                version: 1,
            }
            .encode()
        })
}

fn index_entry() -> impl Strategy<Value = Entry> {
    (
        prop::sample::select(vec![
            Kind::Chunk,
            Kind::File,
            Kind::Tree,
            Kind::Commit,
            Kind::Run,
        ]),
        id(),
        prop_oneof![any::<u64>(), Just(u64::MAX)],
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
    )
        .prop_map(|(kind, id, offset, stored_len, raw_len, codec)| Entry {
            kind,
            id,
            offset,
            stored_len,
            raw_len,
            codec,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn trees_from_arbitrary_bytes(b in bytes(400)) {
        check_tree(&b);
        let mut with_magic = b"DVXT\x01".to_vec();
        with_magic.extend_from_slice(&b);
        check_tree(&with_magic);
    }

    #[test]
    fn trees_from_mutated_encodings(b in tree_bytes(), ms in proptest::collection::vec(mutation(), 0..4)) {
        check_tree(&b);
        check_tree(&mutate(b, &ms));
    }

    #[test]
    fn manifests(b in bytes(300), chunks in proptest::collection::vec((id(), any::<u32>()), 0..4),
                 ms in proptest::collection::vec(mutation(), 0..4)) {
        let _ = FileManifest::decode(Id::of(&b), &b);
        let size = chunks.iter().map(|c| u64::from(c.1)).sum();
        let valid = FileManifest { size, chunks }.encode();
        for b in [valid.clone(), mutate(valid, &ms)] {
            if let Ok(m) = FileManifest::decode(Id::of(&b), &b) {
                prop_assert_eq!(m.encode(), b);
            }
        }
    }

    #[test]
    fn commits(b in bytes(300), c in commit_bytes(), ms in proptest::collection::vec(mutation(), 0..4)) {
        let _ = Commit::decode(Id::of(&b), &b);
        let decoded = Commit::decode(Id::of(&c), &c).expect("a valid commit decodes");
        prop_assert_eq!(decoded.encode(), c.clone());
        let m = mutate(c, &ms);
        if let Ok(d) = Commit::decode(Id::of(&m), &m) {
            // Validation of what decoded: the same verdict every time.
            prop_assert_eq!(guard::commit_problems(&d, None), guard::commit_problems(&d, None));
        }
    }

    #[test]
    fn chunk_locations_and_stored_chunks(b in bytes(64), stored in bytes(200), codec in 0u8..3,
                                         raw_len in 0u32..4096) {
        let id = Id::of(&b);
        if let Ok(loc) = ChunkLoc::decode(id, &b) {
            prop_assert_eq!(loc.encode().to_vec(), b);
        }
        let loc = ChunkLoc { pack: 1, offset: 0, stored_len: stored.len() as u32, raw_len, codec };
        let _ = pack::decode_chunk(id, &loc, &stored);
        let _ = pack::decompress_unchecked(&loc, &stored);
        let _ = pack::verify_stored(id, codec, raw_len, &stored);
        let (c, enc) = pack::encode_chunk(&stored);
        let loc = ChunkLoc { raw_len: stored.len() as u32, stored_len: enc.len() as u32, codec: c, ..loc };
        prop_assert_eq!(pack::decode_chunk(Id::of(&stored), &loc, &enc).ok(), Some(stored));
    }

    #[test]
    fn remote_pack_indexes(b in bytes(300), entries in proptest::collection::vec(index_entry(), 0..5),
                           ms in proptest::collection::vec(mutation(), 0..3)) {
        let pack = Id::of(b"pack");
        let _ = layout::decode_index(pack, &b);
        let valid = layout::encode_index(&entries);
        let sound = entries.iter().all(|e| e.offset.checked_add(u64::from(e.stored_len)).is_some());
        prop_assert_eq!(layout::decode_index(pack, &valid).ok(), sound.then_some(entries));
        let m = mutate(valid, &ms);
        // A mutation behind a still-valid checksum: recompute it and decode again.
        let _ = layout::decode_index(pack, &m);
        if m.len() >= 32 {
            let body = &m[..m.len() - 32];
            let mut fixed = body.to_vec();
            fixed.extend_from_slice(Id::of(body).as_bytes());
            let _ = layout::decode_index(pack, &fixed);
        }
    }

    /// Fetch and fsck agree: a set of trees a fetch accepts holds nothing fsck reports, and a
    /// tree fsck reports makes the fetch refuse. Never a panic on what does not decode.
    #[test]
    fn fetch_and_fsck_agree(trees in proptest::collection::vec(
                                prop_oneof![tree_bytes(), bytes(120)], 1..4),
                            roots in proptest::collection::vec(name(), 0..2)) {
        let top = Id::of(&trees[0]);
        let c = Commit {
            author: Person { email: "e".into(), name: "n".into() },
            git: None,
            message: String::new(),
            parents: vec![],
            roots,
            runs: vec![],
            time: 0,
            tree: top,
            version: 1,
        }
        .encode();
        let incoming = guard::Incoming {
            remote: "r",
            commits: vec![(Id::of(&c), c.as_slice())],
            trees: trees.iter().map(|t| (Id::of(t), t.as_slice())).collect(),
        };
        let accepted = incoming.check(&|_| Ok(None)).is_ok();
        let reported = trees.iter().any(|t| !guard::tree_problems(Id::of(t), t).is_empty());
        if accepted {
            prop_assert!(!reported);
        }
        if reported {
            prop_assert!(!accepted);
        }
    }
}
