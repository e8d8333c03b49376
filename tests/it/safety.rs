//! Paths never escape the workspace: not through symlinks, `..` or absolute names.

use std::fs;

use crate::common::*;

#[test]
fn symlink_pointing_outside_is_refused_on_add() {
    let p = Project::new();
    p.write("d/ok.txt", "ok");
    std::os::unix::fs::symlink("/etc/passwd", p.p("d/evil")).unwrap();
    let err = p.dvx(&["add", "d"]).fails();
    assert!(err.contains("points outside the project"), "{err}");
    fs::remove_file(p.p("d/evil")).unwrap();
    std::os::unix::fs::symlink("../../outside", p.p("d/evil2")).unwrap();
    let err = p.dvx(&["add", "d"]).fails();
    assert!(err.contains("points outside the project"), "{err}");
}

#[test]
fn checkout_never_writes_through_a_symlinked_folder() {
    let p = Project::new();
    p.write("data/sub/f.txt", "f");
    p.dvx(&["add", "data"]).ok();
    // Someone replaces a tracked folder by a link to a folder outside the project.
    let outside = tempfile::tempdir().unwrap();
    fs::remove_dir_all(p.p("data/sub")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.p("data/sub")).unwrap();
    let r = p.dvx(&["checkout", "--force", "HEAD"]);
    // Either the link is replaced by a real folder or the checkout is refused; never a write outside.
    assert!(
        !outside.path().join("f.txt").exists(),
        "wrote through the symlink"
    );
    if r.out.status.success() {
        assert!(p.p("data/sub").symlink_metadata().unwrap().is_dir());
        assert_eq!(p.read("data/sub/f.txt"), b"f");
    }
}
