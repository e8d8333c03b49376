//! Property tests of every decoder that reads bytes a remote or a damaged disk can supply:
//! trees, file manifests, commits, chunk index entries and stored chunks (dvx-remote tests
//! its pack indexes and fetch checks the same way). Arbitrary bytes and mutated valid encodings must never panic; whatever decodes
//! must re-encode to the same bytes and pass or fail validation the same way every time.
//! Cases are bounded so the whole file runs in a few seconds.

use proptest::prelude::*;

use crate::guard;
use crate::id::Id;
use crate::object::{Commit, FileManifest, Tree};
use crate::pack::{self, ChunkLoc};
use crate::paths;
use crate::strategies::*;

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
}
