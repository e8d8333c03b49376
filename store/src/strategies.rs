//! Test support: strategies for property tests of the decoders (arbitrary and mutated
//! encodings of trees, commits and names) and small fixtures. Shared with dvx-remote's tests
//! (feature `test-strategies`).

use proptest::prelude::*;

use crate::id::Id;
use crate::object::{Commit, EntryKind, GitInfo, Person, Tree, TreeEntry};

/// A tree entry with size 1, as crafted trees in tests hold.
pub fn entry(name: &str, kind: EntryKind, mode: u32, id: Id) -> TreeEntry {
    TreeEntry {
        name: name.into(),
        kind,
        mode,
        size: 1,
        id,
    }
}

/// A commit of `tree` tracking `roots`, with fixed author, message and time.
pub fn commit(tree: Id, roots: &[&str]) -> Commit {
    Commit {
        author: Person {
            email: "e".into(),
            name: "n".into(),
        },
        git: None,
        message: "m".into(),
        parents: vec![],
        roots: roots.iter().map(|r| r.to_string()).collect(),
        runs: vec![],
        time: 0,
        tree,
        version: 1,
    }
}

pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

pub fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

/// Names mixing ordinary ones, reserved ones and invalid ones.
pub fn name() -> impl Strategy<Value = String> {
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

pub fn kind() -> impl Strategy<Value = EntryKind> {
    prop::sample::select(vec![EntryKind::File, EntryKind::Dir, EntryKind::Symlink])
}

pub fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(vec![0o644u32, 0o755, 0o777, 0o6777, 0o100644]),
        any::<u32>()
    ]
}

/// An encoded tree (built without `Tree::new`'s checks, as a hostile writer would).
pub fn tree_bytes() -> impl Strategy<Value = Vec<u8>> {
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
pub enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    /// Rewrite a byte that could end a varint in a longer form (`b` as `b|0x80, 00`).
    Widen(usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Insert(i, x)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Widen),
    ]
}

pub fn mutate(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
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
pub fn commit_bytes() -> impl Strategy<Value = Vec<u8>> {
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
