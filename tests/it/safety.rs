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

/// A project and a folder outside it holding `result.txt`, linked from the project as `lnk`.
fn linked_outside() -> (Project, tempfile::TempDir) {
    let p = Project::new();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("result.txt"), "precious\n").unwrap();
    fs::create_dir(outside.path().join("sub")).unwrap();
    fs::write(outside.path().join("sub/keep.txt"), "keep\n").unwrap();
    fs::write(outside.path().join("in.txt"), "in\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), p.p("lnk")).unwrap();
    (p, outside)
}

fn assert_untouched(outside: &tempfile::TempDir) {
    let o = outside.path();
    assert_eq!(fs::read(o.join("result.txt")).unwrap(), b"precious\n");
    assert_eq!(fs::read(o.join("sub/keep.txt")).unwrap(), b"keep\n");
    assert!(!o.join("ran").exists(), "the stage ran");
    assert!(!o.join("out.txt").exists());
}

fn assert_one_line(err: &str, needle: &str) {
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    let errors = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "{err}");
    assert!(err.lines().any(|l| l.starts_with("hint: ")), "{err}");
}

#[test]
fn adding_a_path_beyond_a_symlink_is_refused() {
    let (p, outside) = linked_outside();
    let err = p.dvx(&["add", "lnk/result.txt"]).fails();
    assert_one_line(&err, "lnk/result.txt: beyond a symbolic link at lnk");
    let err = p.dvx(&["add", "lnk/sub"]).fails();
    assert_one_line(&err, "lnk/sub: beyond a symbolic link at lnk");
    assert!(
        strs(&p.status()["tracked"]).is_empty(),
        "something was tracked"
    );
    assert_untouched(&outside);
}

#[test]
fn stage_paths_beyond_a_symlink_are_refused_before_anything_runs() {
    for (yaml, path) in [
        ("outs: [lnk/result.txt]", "lnk/result.txt"),
        ("outs: [lnk/sub]", "lnk/sub"),
        ("metrics: [lnk/result.txt]", "lnk/result.txt"),
        ("wdir: lnk", "lnk: is a symbolic link"),
        ("deps: [lnk/in.txt]", "lnk/in.txt"),
        ("deps: [\"lnk/*.txt\"]", "lnk/"),
    ] {
        let (p, outside) = linked_outside();
        p.write(
            "dvx.yaml",
            format!(
                "stages:\n  s:\n    cmd: touch \"$PWD/ran\" && echo new > \"$PWD/out.txt\"\n    {yaml}\n"
            ),
        );
        let err = p.dvx(&["run"]).fails();
        assert_one_line(&err, &format!("stage s: {path}"));
        assert!(err.contains("symbolic link"), "{err}");
        assert_untouched(&outside);
        assert!(!p.exists("ran"), "{yaml}: the stage ran");
    }
}

#[test]
fn stage_outputs_in_reserved_places_are_refused() {
    let p = Project::new();
    p.write(
        "dvx.yaml",
        "stages:\n  s:\n    cmd: touch ran\n    outs: [.git]\n",
    );
    let err = p.dvx(&["run"]).fails();
    assert!(
        err.contains("stage s: .git: dvx and git keep their own files"),
        "{err}"
    );
    assert!(p.exists(".git/HEAD") && !p.exists("ran"));
}

#[test]
fn checkout_never_deletes_through_a_symlinked_folder() {
    let p = Project::new();
    p.write("data/sub/f.txt", "f");
    p.dvx(&["add", "data/sub/f.txt"]).ok();
    let with = p.head();
    p.dvx(&["rm", "data/sub/f.txt"]).ok();
    let without = p.head();
    p.dvx(&["checkout", &with]).ok();
    // The folder on the way becomes a link to a folder outside holding the same file.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("f.txt"), "f").unwrap();
    fs::remove_dir_all(p.p("data/sub")).unwrap();
    std::os::unix::fs::symlink(outside.path(), p.p("data/sub")).unwrap();
    let _ = p.dvx(&["checkout", "--force", &without]);
    assert_eq!(
        fs::read(outside.path().join("f.txt")).unwrap(),
        b"f",
        "deleted through the link"
    );
}

#[test]
fn add_records_canonical_modes_and_checkout_restores_only_the_executable_bit() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.write("d/run.sh", "#!/bin/sh\n");
    p.write("d/plain.txt", "x\n");
    fs::set_permissions(p.p("d/run.sh"), fs::Permissions::from_mode(0o4777)).unwrap();
    fs::set_permissions(p.p("d/plain.txt"), fs::Permissions::from_mode(0o666)).unwrap();
    p.dvx(&["add", "d"]).ok();
    // fsck reports modes dvx never writes: `add` stores only 644 and 755.
    p.assert_fsck_clean();
    fs::remove_dir_all(p.p("d")).unwrap();
    p.dvx(&["checkout", "--force", "HEAD"]).ok();
    let mode = |r: &str| fs::metadata(p.p(r)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("d/run.sh") & 0o7000, 0);
    assert_eq!(mode("d/run.sh") & 0o100, 0o100);
    assert_eq!(mode("d/plain.txt") & 0o111, 0);
    p.assert_fsck_clean();
}
