//! Documentation generated from the argument definitions: the book's command-line help page is
//! current, and the completion scripts and manual page are well formed.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn the_books_command_line_help_is_current() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/cli-help.md");
    let p = Project::empty();
    let now = p.dvx(&["man", "--markdown"]).ok().stdout();
    let kept = fs::read_to_string(&page).unwrap_or_default();
    if now != kept && std::env::var_os("DVX_BLESS").is_some() {
        fs::write(&page, &now).unwrap();
        return;
    }
    assert!(
        now == kept,
        "book/src/cli-help.md is out of date: run `cargo run -q -- man --markdown > book/src/cli-help.md` \
         (or this test with DVX_BLESS=1)"
    );
    // Every command is in it, with its examples.
    for cmd in ["add", "run", "lineage", "fsck", "remote add", "completions"] {
        assert!(now.contains(&format!("`dvx {cmd}`")), "{cmd}");
    }
    assert!(now.contains("dvx fsck --recover"));
}

#[test]
fn completion_scripts_for_every_shell() {
    let p = Project::empty();
    let bash = p.dvx(&["completions", "bash"]).ok().stdout();
    assert!(bash.contains("complete -F _dvx"), "{bash}");
    assert!(bash.contains("lineage") && bash.contains("--downstream"));
    // bash itself accepts it.
    let mut sh = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash runs");
    sh.stdin.take().unwrap().write_all(bash.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success(), "bash -n refused the script");
    let zsh = p.dvx(&["completions", "zsh"]).ok().stdout();
    assert!(zsh.starts_with("#compdef dvx"), "{zsh}");
    let fish = p.dvx(&["completions", "fish"]).ok().stdout();
    assert!(fish.contains("complete -c dvx"), "{fish}");
    let err = p.dvx(&["completions", "tcsh"]).fails();
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn manual_page() {
    let p = Project::empty();
    let man = p.dvx(&["man"]).ok().stdout();
    assert!(man.contains(".TH dvx 1"), "{man}");
    for cmd in ["add", "run", "lineage", "fsck"] {
        assert!(man.contains(cmd), "{cmd}");
    }
}
