//! Unit tests of combination planning; the parent declares this module `#[cfg(test)]`.

use super::*;

fn named(name: &str, key: Option<&str>, outer: bool) -> Named {
    Named {
        name: name.into(),
        path: name.into(),
        glob: "/*".into(),
        key: key.map(String::from),
        outer,
    }
}

fn m(name: &str, id: &str, key: Option<&str>) -> Member {
    Member {
        name: name.into(),
        id: id.into(),
        path: format!("{name}/{id}"),
        input: None,
        size: 0,
        key: key.map(String::from),
    }
}

fn ids(how: How, combos: &[Vec<Member>]) -> Vec<String> {
    combos.iter().map(|c| datum_id(how, c)).collect()
}

#[test]
fn cross_is_every_combination_in_order() {
    let ins = [named("a", None, false), named("b", None, false)];
    let c = combinations(
        How::Cross,
        &ins,
        vec![
            vec![m("a", "1", None), m("a", "2", None)],
            vec![m("b", "x", None), m("b", "y", None)],
        ],
    );
    assert_eq!(
        ids(How::Cross, &c),
        ["a/1+b/x", "a/1+b/y", "a/2+b/x", "a/2+b/y"]
    );
    // An input without matches leaves no combination.
    assert!(combinations(How::Cross, &ins, vec![vec![m("a", "1", None)], vec![]]).is_empty());
}

#[test]
fn union_is_each_match_alone() {
    let ins = [named("a", None, false), named("b", None, false)];
    let c = combinations(
        How::Union,
        &ins,
        vec![
            vec![m("a", "1", None)],
            vec![m("b", "x", None), m("b", "y", None)],
        ],
    );
    assert_eq!(ids(How::Union, &c), ["a/1", "b/x", "b/y"]);
}

#[test]
fn join_pairs_equal_keys_and_outer_keeps_the_lonely() {
    let ins = [named("l", Some("$1"), false), named("r", Some("$1"), false)];
    let matches = || {
        vec![
            vec![m("l", "1.csv", Some("1")), m("l", "2.csv", Some("2"))],
            vec![m("r", "1.json", Some("1")), m("r", "3.json", Some("3"))],
        ]
    };
    let c = combinations(How::Join, &ins, matches());
    assert_eq!(ids(How::Join, &c), ["l/1.csv+r/1.json"]);
    let outer = [named("l", Some("$1"), true), named("r", Some("$1"), false)];
    let c = combinations(How::Join, &outer, matches());
    assert_eq!(ids(How::Join, &c), ["l/1.csv+r/1.json", "l/2.csv"]);
}

#[test]
fn group_gathers_every_match_of_a_key() {
    let ins = [
        named("logs", Some("$1"), false),
        named("cfg", Some("$1"), false),
    ];
    let c = combinations(
        How::Group,
        &ins,
        vec![
            vec![
                m("logs", "a-1.log", Some("a")),
                m("logs", "a-2.log", Some("a")),
                m("logs", "b-1.log", Some("b")),
            ],
            vec![m("cfg", "a.yaml", Some("a"))],
        ],
    );
    assert_eq!(ids(How::Group, &c), ["a", "b"]);
    assert_eq!(c[0].len(), 3);
    assert_eq!(c[1].len(), 1);
}

#[test]
fn globs_with_capture_groups() {
    let re = glob_regex("/(*)-(*).csv").unwrap();
    let caps = re.captures("2024-eu.csv").unwrap();
    assert_eq!(key_of("$1/$2", &caps), "2024/eu");
    assert!(!re.is_match("x/2024-eu.csv"), "* does not cross /");
    assert!(glob_regex("/**/*.txt").unwrap().is_match("a/b/c.txt"));
    assert!(glob_regex("/**/*.txt").unwrap().is_match("c.txt"));
    assert!(glob_regex("/[!a]?.{csv,tsv}").unwrap().is_match("bc.tsv"));
    assert!(!glob_regex("/[!a]?.{csv,tsv}").unwrap().is_match("ac.tsv"));
    assert_eq!(capture_groups("/(*)-[(]*.csv"), 1);
    assert_eq!(group_refs("$1-$12x$"), [1, 12]);
}

#[test]
fn the_combined_id_changes_with_any_member() {
    let mut a = vec![m("a", "1", None), m("b", "x", None)];
    let k = combined_id(&a);
    a[1].input = Some(InputId {
        kind: "file",
        id: dvx_store::Id::of(b"changed"),
    });
    assert_ne!(combined_id(&a), k);
    assert_eq!(m("a", WHOLE_INPUT, None).place(), "a");
}
