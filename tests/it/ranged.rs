//! `dvx cat --offset/--length`: byte ranges of a multi-chunk file at two revisions, across
//! chunk boundaries, past the end, of zero length; `dvx ls --json` for the size and id; and
//! `dvx cat --fetch` in a `git clone` whose data is only on the remote.

use crate::common::{git, noise, Project};

fn cat(p: &Project, args: &[&str]) -> Vec<u8> {
    p.dvx(args).ok().out.stdout
}

#[test]
fn ranges_of_a_multi_chunk_file_at_two_revisions() {
    let p = Project::new();
    let v1 = noise(5 << 20, 7);
    let mut v2 = v1.clone();
    v2[3 << 20] ^= 0xff;
    v2.extend_from_slice(b"tail");
    p.write("big.bin", &v1);
    p.dvx(&["add", "big.bin"]).ok();
    p.dvx(&["tag", "v1"]).ok();
    p.write("big.bin", &v2);
    p.dvx(&["add", "big.bin"]).ok();

    // The size and id without reading the file.
    let ls = p.dvx(&["ls", "--json", "v1", "big.bin"]).ok().json();
    assert_eq!(ls[0]["size"], v1.len() as u64, "{ls}");
    assert_eq!(ls[0]["id"], blake3::hash(&v1).to_hex().as_str(), "{ls}");

    for (rev, data) in [("v1", &v1), ("HEAD", &v2)] {
        let spec = format!("{rev}:big.bin");
        let n = data.len() as u64;
        // Offsets around the 2 MiB largest chunk and beyond: ranges that cross boundaries
        // wherever the content-defined cuts fell.
        for (off, len) in [
            (0u64, 1u64),
            (1 << 20, 3 << 20),
            ((2 << 20) - 7, 100),
            (3 << 20, 1),
            (n - 10, 10),
        ] {
            let got = cat(
                &p,
                &[
                    "cat",
                    &spec,
                    "--offset",
                    &off.to_string(),
                    "--length",
                    &len.to_string(),
                ],
            );
            assert_eq!(
                got,
                data[off as usize..(off + len) as usize],
                "{spec} {off}+{len}"
            );
        }
        // Past the end, running past the end, zero length, no length, no offset.
        let past = cat(&p, &["cat", &spec, "--offset", &(n + 5).to_string()]);
        assert!(past.is_empty());
        let over = cat(
            &p,
            &[
                "cat",
                &spec,
                "--offset",
                &(n - 3).to_string(),
                "--length",
                "100",
            ],
        );
        assert_eq!(over, data[data.len() - 3..]);
        assert!(cat(&p, &["cat", &spec, "--offset", "12", "--length", "0"]).is_empty());
        assert_eq!(cat(&p, &["cat", &spec, "--offset", "1000"]), data[1000..]);
        assert_eq!(cat(&p, &["cat", &spec, "--length", "1000"]), data[..1000]);
        assert_eq!(cat(&p, &["cat", &spec]), *data);
    }
    // A bad number is a usage error.
    let out = p.dvx(&["cat", "HEAD:big.bin", "--offset", "-1"]);
    assert_eq!(out.out.status.code(), Some(2));
}

#[test]
fn cat_fetch_reads_a_clone_whose_data_is_on_the_remote() {
    let o = Project::new();
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    o.dvx(&["remote", "add", "origin", &url]).ok();
    let data = noise(3 << 20, 11);
    o.write("data/big.bin", &data);
    o.write("data/small.txt", "small\n");
    o.dvx(&["add", "data"]).ok();
    o.dvx(&["push"]).ok();
    git(o.path(), &["add", "-A"]);
    git(o.path(), &["commit", "-qm", "data"]);

    let c = Project::empty();
    git(
        c.path(),
        &["clone", "-q", &o.path().display().to_string(), "."],
    );
    // Without --fetch: the usual answer, and nothing is created.
    let err = c.dvx(&["cat", "HEAD:data/small.txt"]).fails();
    assert!(err.contains("nothing fetched yet"), "{err}");
    assert!(!c.exists(".dvx/db"));
    // With it: the file's data comes down, and is printed once.
    let got = cat(
        &c,
        &[
            "cat",
            "--fetch",
            "HEAD:data/big.bin",
            "--offset",
            "100",
            "--length",
            "2097152",
        ],
    );
    assert_eq!(got, data[100..100 + (2 << 20)]);
    assert_eq!(cat(&c, &["cat", "--fetch", "HEAD:data/big.bin"]), data);
    // Only what was read came: the other file's data is still on the remote alone.
    let err = c.dvx(&["cat", "HEAD:data/small.txt"]).fails();
    assert!(
        err.contains("missing") || err.contains("not fetched"),
        "{err}"
    );
    assert_eq!(
        cat(&c, &["cat", "--fetch", "HEAD:data/small.txt"]),
        b"small\n"
    );
    // A path the commit lacks is not a reason to fetch: the usual error.
    let err = c.dvx(&["cat", "--fetch", "HEAD:data/nope"]).fails();
    assert!(err.contains("not found in commit"), "{err}");
}
