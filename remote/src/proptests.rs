//! Property tests of what a fetch reads from a remote: pack indexes never panic and decode
//! what was encoded; the fetch check and fsck agree on every tree.

use proptest::prelude::*;

use dvx_store::guard;
use dvx_store::object::{Commit, Person};
use dvx_store::strategies::*;
use dvx_store::Id;

use crate::incoming::Incoming;
use crate::layout::{self, Entry, Kind};

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
        let mut objs: std::collections::HashMap<(Kind, Id), Vec<u8>> =
            trees.iter().map(|t| ((Kind::Tree, Id::of(t)), t.clone())).collect();
        objs.insert((Kind::Commit, Id::of(&c)), c);
        let incoming = Incoming::of("r", &objs);
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
