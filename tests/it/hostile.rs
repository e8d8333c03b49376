//! Hostile remotes, crafted byte by byte from `schemas/remote.md` and `schemas/objects.md`
//! (not with dvx's own encoders, so a bug there cannot hide here): commits whose trees reach
//! into `.git`, `.dvx`, `dvx.lock` or dvx's temp names, or ask for setuid and world-writable
//! files. `dvx clone` and `dvx pull` must refuse them before writing anything.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::Project;
use crate::remote::{py, run, s, Kind, Remote};

fn hash(b: &[u8]) -> [u8; 32] {
    *blake3::hash(b).as_bytes()
}

fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A node of the tree to craft: a file (content, mode) or a folder.
pub enum Node {
    File(&'static [u8], u32),
    Dir(Vec<(&'static str, Node)>),
}

/// The objects of a remote: (kind byte, id, bytes).
#[derive(Default)]
pub struct Objects(Vec<(u8, [u8; 32], Vec<u8>)>);

impl Objects {
    fn add(&mut self, kind: u8, bytes: Vec<u8>) -> [u8; 32] {
        let id = hash(&bytes);
        if !self.0.iter().any(|(k, i, _)| *k == kind && *i == id) {
            self.0.push((kind, id, bytes));
        }
        id
    }

    /// A tree: "DVXT", version 1, count, then kind, mode, size, id, name per entry sorted by
    /// name bytes. Returns (id, total size).
    fn tree(&mut self, entries: &[(&'static str, Node)]) -> ([u8; 32], u64) {
        let mut rows: Vec<(&str, u8, u32, u64, [u8; 32])> = entries
            .iter()
            .map(|(name, node)| match node {
                Node::File(content, mode) => {
                    let id = self.add(b'K', content.to_vec());
                    (*name, 1u8, *mode, content.len() as u64, id)
                }
                Node::Dir(sub) => {
                    let (id, size) = self.tree(sub);
                    (*name, 2u8, 0o755, size, id)
                }
            })
            .collect();
        rows.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut b = b"DVXT\x01".to_vec();
        varint(&mut b, rows.len() as u64);
        for (name, kind, mode, size, id) in &rows {
            b.push(*kind);
            b.extend_from_slice(&mode.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(id);
            varint(&mut b, name.len() as u64);
            b.extend_from_slice(name.as_bytes());
        }
        let size = rows.iter().map(|r| r.3).sum();
        (self.add(b'T', b), size)
    }

    /// A commit in canonical JSON.
    fn commit(
        &mut self,
        top: &[(&'static str, Node)],
        roots: &[&str],
        parent: Option<[u8; 32]>,
    ) -> [u8; 32] {
        let (tree, _) = self.tree(top);
        let parents: Vec<String> = parent.iter().map(|p| format!("\"{}\"", hex(p))).collect();
        let roots: Vec<String> = roots.iter().map(|r| format!("\"{r}\"")).collect();
        let json = format!(
            "{{\"author\":{{\"email\":\"eve@example.com\",\"name\":\"Eve\"}},\"git\":null,\"message\":\"hostile\",\"parents\":[{}],\"roots\":[{}],\"runs\":[],\"time\":1700000000,\"tree\":\"{}\",\"version\":1}}",
            parents.join(","),
            roots.join(","),
            hex(&tree)
        );
        self.add(b'C', json.into_bytes())
    }

    /// The remote's files: marker, HEAD, the branch `main` at `tip`, one pack and its index.
    fn files(&self, tip: &[u8; 32]) -> BTreeMap<String, Vec<u8>> {
        let mut pack = b"DVXRPAK1".to_vec();
        let mut entries = Vec::new();
        for (kind, id, bytes) in &self.0 {
            pack.push(*kind);
            pack.push(0); // raw
            pack.extend_from_slice(id);
            pack.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            pack.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            entries.push((*kind, *id, pack.len() as u64, bytes.len() as u32));
            pack.extend_from_slice(bytes);
        }
        // Sorted by (kind, id), kinds in the order chunk, manifest, tree, commit, run.
        let order = |k: u8| b"KFTCR".iter().position(|x| *x == k).unwrap_or(9);
        entries.sort_by_key(|e| (order(e.0), e.1));
        let mut idx = b"DVXRIDX1".to_vec();
        idx.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (kind, id, offset, len) in &entries {
            idx.push(*kind);
            idx.extend_from_slice(id);
            idx.extend_from_slice(&offset.to_le_bytes());
            idx.extend_from_slice(&len.to_le_bytes());
            idx.extend_from_slice(&len.to_le_bytes());
            idx.push(0);
        }
        let sum = hash(&idx);
        idx.extend_from_slice(&sum);
        let pid = hex(&hash(&pack));
        let mut out = BTreeMap::new();
        out.insert("dvx-remote.json".into(), b"{\"format\":1}\n".to_vec());
        out.insert("HEAD".into(), b"ref: refs/heads/main\n".to_vec());
        out.insert(
            "refs/heads/main".into(),
            format!("{}\n", hex(tip)).into_bytes(),
        );
        out.insert(format!("packs/{pid}.pack"), pack);
        out.insert(format!("packs/{pid}.idx"), idx);
        out
    }
}

/// Write the files into a folder remote, or upload them to the S3 one.
fn publish(r: &Remote, kind: Kind, files: &BTreeMap<String, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let root = match kind {
        Kind::Folder => Path::new(&r.url).to_path_buf(),
        _ => dir.path().to_path_buf(),
    };
    for (k, b) in files {
        let p = root.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    if !matches!(kind, Kind::Folder) {
        let (bucket, prefix) = r.bucket_prefix();
        let keys: Vec<String> = files.keys().cloned().collect();
        py(
            r.endpoint.as_deref().unwrap_or_default(),
            &format!(
                "import os\nfor k in {keys:?}:\n    s3.upload_file(os.path.join({:?}, k), {bucket:?}, {prefix:?} + '/' + k)",
                root.display().to_string()
            ),
        );
    }
}

const HOOK: &[u8] = b"#!/bin/sh\ntouch \"$HOME/pwned\"\n";

fn hooks() -> Node {
    Node::Dir(vec![(
        "hooks",
        Node::Dir(vec![("post-checkout", Node::File(HOOK, 0o755))]),
    )])
}

/// A hostile commit: a name, its top tree, its roots, and the path the error must name.
type Case = (
    &'static str,
    Vec<(&'static str, Node)>,
    Vec<&'static str>,
    &'static str,
);

fn cases() -> Vec<Case> {
    vec![
        ("git", vec![(".git", hooks())], vec![".git"], ".git"),
        (
            "dvx",
            vec![(
                ".dvx",
                Node::Dir(vec![("config.toml", Node::File(b"[core]\n", 0o644))]),
            )],
            vec![".dvx"],
            ".dvx",
        ),
        (
            "lock",
            vec![("dvx.lock", Node::File(b"{}\n", 0o644))],
            vec!["dvx.lock"],
            "dvx.lock",
        ),
        (
            "temp",
            vec![(".dvx-tmp-1-x", Node::File(b"x\n", 0o644))],
            vec![".dvx-tmp-1-x"],
            ".dvx-tmp-1-x",
        ),
        (
            "subgit",
            vec![("sub", Node::Dir(vec![(".git", hooks())]))],
            vec!["sub"],
            "sub/.git",
        ),
        (
            "setuid",
            vec![(
                "data",
                Node::Dir(vec![("x.sh", Node::File(b"#!/bin/sh\n", 0o6777))]),
            )],
            vec!["data"],
            "data/x.sh",
        ),
        (
            "world-writable",
            vec![(
                "data",
                Node::Dir(vec![("w.txt", Node::File(b"w\n", 0o666))]),
            )],
            vec!["data"],
            "data/w.txt",
        ),
    ]
}

fn hostile_remotes_are_refused(kind: Kind) {
    for (tag, top, roots, path) in cases() {
        let r = Remote::new(kind, &format!("hostile-{tag}"));
        let mut objs = Objects::default();
        let tip = objs.commit(&top, &roots, None);
        publish(&r, kind, &objs.files(&tip));

        // clone: refused, the error names remote and path, and no folder is left.
        let p = Project::empty();
        let mut args = s(&["clone", &r.url, "c"]);
        args.extend(r.conn());
        let err = run(&p, "", &args).fails();
        assert!(err.contains("remote origin: commit "), "{tag}: {err}");
        assert!(err.contains(&format!(" {path}")), "{tag}: {err}");
        assert!(err.contains("hint: "), "{tag}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error: ")).count(),
            1,
            "{err}"
        );
        assert!(!p.exists("c"), "{tag}: clone left its folder");

        // pull into a project with git and data of its own: refused, nothing written.
        let q = Project::new();
        q.write("mine/a.txt", "a\n");
        q.dvx(&["add", "mine"]).ok();
        r.add_to(&q);
        let head = q.head();
        let config = q.read(".dvx/config.toml");
        let lock = q.read("dvx.lock");
        let packs = q.pack_bytes();
        let err = run(&q, "", &s(&["pull"])).fails();
        assert!(err.contains("remote origin: commit "), "{tag}: {err}");
        assert!(err.contains(&format!(" {path}")), "{tag}: {err}");
        assert!(!q.exists(".git/hooks/post-checkout"), "{tag}: hook written");
        for p in ["sub", "data", ".dvx-tmp-1-x"] {
            assert!(!q.exists(p), "{tag}: {p} written");
        }
        assert!(q.exists(".git/HEAD"), "{tag}: .git damaged");
        assert_eq!(
            q.read(".dvx/config.toml"),
            config,
            "{tag}: config.toml changed"
        );
        assert_eq!(q.read("dvx.lock"), lock, "{tag}: dvx.lock changed");
        assert_eq!(q.pack_bytes(), packs, "{tag}: the store was written");
        assert_eq!(q.head(), head);
        // import: the same check (the path asked for is the commit's root).
        let mut args = s(&["import", &r.url, roots[0], "-o", "imported"]);
        args.extend(r.conn());
        let err = run(&q, "", &args).fails();
        assert!(err.contains(&format!(" {path}")), "{tag}: {err}");
        assert!(err.contains("nothing was written"), "{tag}: {err}");
        assert!(!q.exists("imported"), "{tag}: import wrote");
        assert_eq!(q.pack_bytes(), packs, "{tag}: the store was written");
        // Not even the commit came in.
        let err = q.dvx(&["log", &hex(&tip)]).fails();
        assert!(err.contains("unknown revision"), "{tag}: {err}");
        q.assert_fsck_clean();
    }
}

#[test]
fn hostile_folder_remote_is_refused() {
    hostile_remotes_are_refused(Kind::Folder);
}

#[test]
fn hostile_s3_remote_is_refused() {
    hostile_remotes_are_refused(Kind::Moto);
}

/// A remote that was fine, then moves to a commit without the root a user had: dvx removes
/// only what it tracked, never `.git` (the tester's second finding, through a later pull).
#[test]
fn a_later_commit_never_deletes_git() {
    let r = Remote::new(Kind::Folder, "later");
    let mut objs = Objects::default();
    let first = objs.commit(
        &[(
            "data",
            Node::Dir(vec![("a.txt", Node::File(b"a\n", 0o644))]),
        )],
        &["data"],
        None,
    );
    publish(&r, Kind::Folder, &objs.files(&first));
    let q = Project::new();
    r.add_to(&q);
    run(&q, "", &s(&["pull"])).ok();
    assert_eq!(q.read("data/a.txt"), b"a\n");
    // Now the remote's next commit lists `.git` as a root it "removed" and then drops it.
    let second = objs.commit(&[(".git", hooks())], &[".git"], Some(first));
    publish(&r, Kind::Folder, &objs.files(&second));
    let err = run(&q, "", &s(&["pull"])).fails();
    assert!(err.contains(".git"), "{err}");
    let third = objs.commit(&[("data", Node::Dir(vec![]))], &["data"], Some(second));
    publish(&r, Kind::Folder, &objs.files(&third));
    let _ = run(&q, "", &s(&["pull"]));
    assert!(
        q.exists(".git/HEAD") && q.exists(".git/config"),
        ".git was deleted"
    );
    assert!(!q.exists(".git/hooks/post-checkout"));
    q.assert_fsck_clean();
}

/// Ref names become local names: one dvx would never create is refused, nothing written.
#[test]
fn a_remote_ref_name_dvx_would_not_create_is_refused() {
    let r = Remote::new(Kind::Folder, "refname");
    let mut objs = Objects::default();
    let tip = objs.commit(
        &[(
            "data",
            Node::Dir(vec![("a.txt", Node::File(b"a\n", 0o644))]),
        )],
        &["data"],
        None,
    );
    let mut files = objs.files(&tip);
    files.insert(
        "refs/tags/-x..y".into(),
        format!("{}\n", hex(&tip)).into_bytes(),
    );
    publish(&r, Kind::Folder, &files);
    let q = Project::new();
    r.add_to(&q);
    let err = run(&q, "", &s(&["pull"])).fails();
    assert!(
        err.contains("\"refs/tags/-x..y\" is not a valid tag name"),
        "{err}"
    );
    assert!(!q.exists("data"));
    q.assert_fsck_clean();
}
