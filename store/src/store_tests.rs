//! Tests of `store.rs`: files added whole and mapped, direct writes, the read-ahead.

use crate::{chunking, Access, Repo};

/// A file added a batch of cuts at a time (many batches here) gets the id, chunks and
/// content of adding it in one piece: chunk by chunk in order (the default), and hashed
/// a batch at a time on the pool when large files are compressed. A stretch repeated
/// inside the file gives chunks it already holds, which are stored once.
#[test]
fn a_mapped_file_is_stored_as_one_piece_would_be() {
    let mut x = 99u64;
    let mut data: Vec<u8> = (0..super::REGION + 3 * chunking::MAX_CHUNK + 4321)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    data.extend_from_within(..6 * chunking::MAX_CHUNK);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    let want: Vec<usize> = chunking::chunks(&data).iter().map(|c| c.1).collect();
    for compress_large in [false, true] {
        let root = dir.path().join(format!("proj-{compress_large}"));
        std::fs::create_dir(&root).unwrap();
        Repo::init(&root).unwrap();
        if compress_large {
            let cfg = root.join(".dvx/config.toml");
            let text = std::fs::read_to_string(&cfg).unwrap();
            let text = text.replace("compression = \"small\"", "compression = \"all\"");
            std::fs::write(&cfg, text).unwrap();
        }
        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        assert_eq!(repo.store.compress_large, compress_large);
        let txn = repo.store.txn().unwrap();
        let (id, n) = txn.put_path(&path).unwrap();
        txn.commit().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(id.to_string(), blake3::hash(&data).to_hex().to_string());
        let ids: Vec<(super::Id, u32)> = repo.store.file_chunks(&id).unwrap();
        let lens: Vec<usize> = ids.iter().map(|c| c.1 as usize).collect();
        assert_eq!(lens, want, "compress_large {compress_large}");
        let distinct: std::collections::BTreeSet<super::Id> = ids.iter().map(|c| c.0).collect();
        assert!(
            distinct.len() < ids.len(),
            "the repeat gives repeated chunks"
        );
        let stored = repo
            .store
            .db
            .scan_prefix(super::CF_CHUNKS, b"")
            .unwrap()
            .len();
        assert_eq!(stored, distinct.len(), "each chunk stored once");
        assert!(repo.store.read_file(&id).unwrap() == data);
        assert_eq!(super::hash_path(&path).unwrap(), (id, n));
    }
}

/// The read-ahead is asked for a window in front of the cutting, again each time a
/// quarter of it has been cut, and once for the file's end.
#[test]
fn read_ahead_asks_in_quarters_up_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.bin");
    let len = 3 * super::READ_AHEAD + 12345;
    std::fs::File::create(&path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
    let f = std::fs::File::open(&path).unwrap();
    // SAFETY: a file of this test's own, not changed while mapped.
    let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
    let q = super::READ_AHEAD / 4;
    let mut asked = super::read_ahead(&map, 0, 0);
    assert_eq!(asked, super::READ_AHEAD);
    assert_eq!(
        super::read_ahead(&map, q - 1, asked),
        asked,
        "less than a quarter cut"
    );
    asked = super::read_ahead(&map, q, asked);
    assert_eq!(asked, super::READ_AHEAD + q);
    asked = super::read_ahead(&map, len - 10, asked);
    assert_eq!(asked, len, "the end is asked for at once");
    assert_eq!(super::read_ahead(&map, len - 1, asked), len);
}

/// `core.direct_io = false` keeps a large file's chunks on the page cache; by default they
/// bypass it wherever the file system takes `O_DIRECT`. The stored file is the same.
#[test]
fn direct_io_follows_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(9usize << 20)).map(|i| (i * 131 / 7) as u8).collect();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    for (name, setting) in [("on", None), ("off", Some(false))] {
        let root = dir.path().join(name);
        std::fs::create_dir(&root).unwrap();
        Repo::init(&root).unwrap();
        if let Some(v) = setting {
            let cfg = root.join(".dvx/config.toml");
            let text = std::fs::read_to_string(&cfg).unwrap();
            let text = text.replace("[core]\n", &format!("[core]\ndirect_io = {v}\n"));
            std::fs::write(&cfg, text).unwrap();
        }
        let repo = Repo::open(&root, Access::Write("test")).unwrap();
        assert_eq!(repo.store.direct_io, setting.unwrap_or(true));
        let txn = repo.store.txn().unwrap();
        let (id, _) = txn.put_path(&path).unwrap();
        let direct = txn
            .pack
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|w| w.is_direct());
        txn.commit().unwrap();
        let takes = crate::directio::takes_direct(&root);
        assert_eq!(direct, setting.unwrap_or(true) && takes, "{name}");
        assert!(repo.store.read_file(&id).unwrap() == data);
    }
}
