//! Property tests: the config.toml and dvx.lock parsers never panic, whatever they read; they
//! return an error or a value.

use std::path::Path;

use dvx_store::config::Config;
use dvx_store::lockfile::LockFile;
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Failures are kept in proptest-regressions/ beside this file and replayed first.
        ..ProptestConfig::default()
    }
}

/// Small edits to valid text: insert, delete or replace a character somewhere.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let edit = (any::<Index>(), 0u8..3, prop::char::any());
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(chars.len() + 1);
            match op {
                0 => chars.insert(i, c),
                1 if i < chars.len() => {
                    chars.remove(i);
                }
                _ if i < chars.len() => chars[i] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    })
}

const CONFIG: &str = "[core]
format = 1
lock_wait_secs = 3.0
compression = \"small\"
remote = \"origin\"

[user]
name = \"A\"

[remote.origin]
url = \"s3://bucket/prefix\"
jobs = 8
timeout_secs = 60.0
retries = 5

[containers]
runtime = \"podman\"
";

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "3.0",
    "inf",
    "-inf",
    "nan",
    "1e308",
    "-0.0",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "0x10",
    "\"small\"",
    "\"all\"",
    "\"zip\"",
    "\"\"",
    "true",
    "[]",
    "{}",
    "1979-05-27",
];

const KEYS: &[&str] = &[
    "format",
    "lock_wait_secs",
    "compression",
    "remote",
    "jobs",
    "timeout_secs",
    "retries",
    "url",
    "runtime",
    "name",
    "other",
];

const SECTIONS: &[&str] = &["core", "user", "remote.o", "containers", "x"];

/// Real section and key names with awkward values.
fn config_text() -> impl Strategy<Value = String> {
    let entry = (0..KEYS.len(), 0..NUMBERS.len());
    let section = (0..SECTIONS.len(), prop::collection::vec(entry, 0..6));
    prop::collection::vec(section, 0..5).prop_map(|sections| {
        let mut s = String::from("[core]\nformat = 1\n");
        let mut seen = std::collections::BTreeSet::new();
        for (sec, entries) in sections {
            if !seen.insert(sec) {
                continue;
            }
            if sec != 0 {
                s.push_str(&format!("[{}]\n", SECTIONS[sec]));
            }
            let mut keys = std::collections::BTreeSet::new();
            for (k, v) in entries {
                if (sec != 0 || k != 0) && keys.insert(k) {
                    s.push_str(&format!("{} = {}\n", KEYS[k], NUMBERS[v]));
                }
            }
        }
        s
    })
}

const LOCK: &str = r#"{
  "version": 1,
  "commit": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
  "paths": {
    "data/raw.csv": {
      "kind": "file",
      "id": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
      "size": 18446744073709551615
    }
  },
  "stages": {"a": {"key": "x", "outs": {}}}
}
"#;

fn parse_config(text: &str) {
    let _ = Config::parse(Path::new(".dvx/config.toml"), text);
}

fn parse_lock(bytes: &[u8]) {
    let _ = LockFile::parse(Path::new("dvx.lock"), bytes);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Config::parse_bytes(Path::new(".dvx/config.toml"), &bytes);
    }

    #[test]
    fn config_arbitrary_text_never_panics(text in "\\PC{0,300}") {
        parse_config(&text);
    }

    #[test]
    fn config_toml_like_text_never_panics(text in "[a-z_=\\[\\]{}., \\n\"'0-9+-]{0,200}") {
        parse_config(&text);
    }

    #[test]
    fn config_awkward_values_never_panic(text in config_text()) {
        parse_config(&text);
    }

    #[test]
    fn config_edits_never_panic(text in mutated(CONFIG)) {
        parse_config(&text);
    }

    #[test]
    fn lock_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_lock(&bytes);
    }

    #[test]
    fn lock_json_like_text_never_panics(text in "[a-z0-9{}\\[\\]:,\" .eE+-]{0,200}") {
        parse_lock(text.as_bytes());
    }

    #[test]
    fn lock_edits_never_panic(text in mutated(LOCK)) {
        parse_lock(text.as_bytes());
    }
}

#[test]
fn the_base_texts_are_valid() {
    Config::parse(Path::new("c"), CONFIG).unwrap();
    LockFile::parse(Path::new("l"), LOCK.as_bytes()).unwrap();
}
