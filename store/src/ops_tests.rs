//! Unit tests of `ops.rs`.

use super::*;
use crate::{Access, Quiet};

/// A reader that cannot save what it hashed (someone else writes) remembers it: the
/// same unchanged file is not read again in the same process.
#[test]
fn a_reader_hashes_a_changed_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("p");
    std::fs::create_dir_all(root.join("data")).unwrap();
    Repo::init(&root).unwrap();
    let writer = Repo::open(&root, Access::Write("test")).unwrap();
    std::fs::write(root.join("data/in.csv"), "a,b\n1,2\n").unwrap();
    std::thread::sleep(std::time::Duration::from_nanos(
        crate::statcache::RACY_NS as u64 + 20_000_000,
    ));
    let reader = Repo::open(&root, Access::Read).unwrap();
    let first = reader.identify_path("data", None, &Quiet).unwrap();
    assert_eq!(first.files_read, 1);
    reader.save_cache(&first.cache_updates).unwrap();
    let again = reader.identify_path("data", None, &Quiet).unwrap();
    assert_eq!(again.files_read, 0, "hashed again");
    assert_eq!(again.files, first.files);
    // Changed again: read again.
    std::fs::write(root.join("data/in.csv"), "a,b\n1,3\n").unwrap();
    let changed = reader.identify_path("data", None, &Quiet).unwrap();
    assert_eq!(changed.files_read, 1);
    // A path that sorts between "data" and "data/" is remembered too.
    std::fs::write(root.join("data.csv"), "x\n").unwrap();
    std::thread::sleep(std::time::Duration::from_nanos(
        crate::statcache::RACY_NS as u64 + 20_000_000,
    ));
    let one = reader.identify_path("data.csv", None, &Quiet).unwrap();
    assert_eq!(one.files_read, 1);
    reader.save_cache(&one.cache_updates).unwrap();
    let again = reader.identify_path("data.csv", None, &Quiet).unwrap();
    assert_eq!(again.files_read, 0, "data.csv hashed again");
    drop(writer);
}
