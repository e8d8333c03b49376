//! Lineage benchmark: a store holding 100,000 run records and a file 10 runs deep, then the
//! time `dvx lineage` takes to trace that file back to the data added by hand.
//!
//! ```sh
//! cargo build --release -p dvx-engine --example lineage_bench && cargo build --release
//! target/release/examples/lineage_bench --dvx target/release/dvx
//! ```
//!
//! Options: `--runs N` (default 100000), `--depth N` (default 10), `--dir DIR` (build the store
//! there and keep it; default a temporary folder), `--dvx PATH` (also time the binary),
//! `--add-files N` (instead: time `add` of N small files in folders of 1,000, and the part of
//! it that writes the path history).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use dvx_engine::lineage;
use dvx_engine::record::{PathId, RunRecord, RECORD_VERSION};
use dvx_engine::store::object::{Commit, EntryKind, Person, Tree, TreeEntry};
use dvx_engine::store::refs::Head;
use dvx_engine::store::{Access, Id, Repo};

fn record(stage: &str, input: PathId, output: PathId, n: u64) -> RunRecord {
    RunRecord {
        attempt: 0,
        cluster: None,
        cmd: vec![format!("./{stage}.sh {} > {}", input.path, output.path)],
        code: None,
        combine: None,
        datum: None,
        duration_ms: 10,
        end: format!("2026-01-01T00:00:{:02}Z", n % 60),
        env: BTreeMap::new(),
        error: None,
        executor: "local".into(),
        exit: Some(0),
        experiment: None,
        host: "bench".into(),
        image: None,
        inputs: vec![input],
        key: Id::of(format!("key {stage} {n}").as_bytes()),
        members: Vec::new(),
        notebook: None,
        outputs: vec![output],
        params: BTreeMap::new(),
        stage: stage.into(),
        start: "2026-01-01T00:00:00Z".into(),
        stderr: Id::of(b""),
        stdout: Id::of(b""),
        trigger: None,
        user: "bench".into(),
        version: RECORD_VERSION,
        warnings: Vec::new(),
        wdir: String::new(),
    }
}

fn file(path: &str, content: &[u8]) -> PathId {
    PathId {
        path: path.into(),
        kind: EntryKind::File,
        id: Id::of(content),
        size: content.len() as u64,
        mode: None,
    }
}

fn entry(name: &str, p: &PathId) -> TreeEntry {
    TreeEntry {
        name: name.into(),
        kind: EntryKind::File,
        mode: 0o644,
        size: p.size,
        id: p.id,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs: u64 = 100_000;
    let mut depth: usize = 10;
    let mut dir: Option<PathBuf> = None;
    let mut dvx: Option<PathBuf> = None;
    let mut add_files: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--runs" => runs = val()?.parse()?,
            "--depth" => depth = val()?.parse()?,
            "--dir" => dir = Some(PathBuf::from(val()?)),
            "--dvx" => dvx = Some(PathBuf::from(val()?)),
            "--add-files" => add_files = Some(val()?.parse()?),
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    let tmp = tempfile::tempdir()?;
    let root = dir.unwrap_or_else(|| tmp.path().join("proj"));
    std::fs::create_dir_all(&root)?;
    Repo::init(&root)?;
    if let Some(n) = add_files {
        return time_add(&root, n);
    }
    let repo = Repo::open(&root, Access::Write("lineage bench"))?;
    let store = &repo.store;
    let who = Person {
        email: "bench@example.com".into(),
        name: "Bench".into(),
    };

    let t0 = Instant::now();
    // Background: records of other work, 100 per commit, as a long project history holds.
    let mut parent: Option<Id> = None;
    let mut commit = |txn: &dvx_engine::store::store::Txn,
                      tree: Id,
                      runs: Vec<Id>,
                      message: String,
                      time: i64|
     -> Result<Id, Box<dyn std::error::Error>> {
        let c = Commit {
            author: who.clone(),
            git: None,
            message,
            parents: parent.into_iter().collect(),
            roots: vec![],
            runs,
            time,
            tree,
            version: 1,
        };
        let id = txn.put_commit(&c);
        parent = Some(id);
        Ok(id)
    };
    let empty = Tree::new(vec![])?;
    let mut pending: Vec<(Id, Commit)> = Vec::new();
    let mut n = 0u64;
    let mut time = 1_700_000_000i64;
    while n < runs.saturating_sub(depth as u64) {
        let txn = store.txn()?;
        let empty_id = txn.put_tree(&empty);
        let mut batch = Vec::new();
        for _ in 0..100 {
            let i = file("noise/in.csv", format!("noise input {n}").as_bytes());
            let o = file("noise/out.csv", format!("noise output {n}").as_bytes());
            let rec = record("noise", i, o, n);
            let id = rec.put(&txn);
            lineage::index_run(&txn, &id, &rec, &BTreeMap::new(), &BTreeMap::new())?;
            batch.push(id);
            n += 1;
        }
        time += 1;
        let cid = commit(&txn, empty_id, batch, format!("noise {n}"), time)?;
        txn.commit()?;
        pending.push((cid, store.get_commit(&cid)?));
    }
    // The chain: raw data added by hand, then `depth` stages each reading the previous output.
    let txn = store.txn()?;
    let raw = b"id,value\n1,2\n";
    let raw_p = file("raw.csv", raw);
    txn.put_bytes(raw)?;
    let mut entries = vec![entry("raw.csv", &raw_p)];
    let tree = txn.put_tree(&Tree::new(entries.clone())?);
    time += 1;
    let cid = commit(&txn, tree, vec![], "add raw data".into(), time)?;
    txn.commit()?;
    pending.push((cid, store.get_commit(&cid)?));
    let mut prev = raw_p;
    for s in 1..=depth {
        let txn = store.txn()?;
        let content = format!("output of stage {s}\n");
        let name = format!("s{s:02}.out");
        let out = file(&name, content.as_bytes());
        txn.put_bytes(content.as_bytes())?;
        let rec = record(&format!("stage{s:02}"), prev.clone(), out.clone(), n);
        n += 1;
        let id = rec.put(&txn);
        lineage::index_run(&txn, &id, &rec, &BTreeMap::new(), &BTreeMap::new())?;
        entries.push(entry(&name, &out));
        let tree = txn.put_tree(&Tree::new(entries.clone())?);
        time += 1;
        let cid = commit(&txn, tree, vec![id], format!("dvx run: stage{s:02}"), time)?;
        txn.set_ref("refs/heads/main", &cid);
        txn.set_head(&Head::Branch("main".into()));
        txn.commit()?;
        pending.push((cid, store.get_commit(&cid)?));
        prev = out;
    }
    // Path history and run → commit entries, as `dvx` writes them after each commit.
    for chunk in pending.chunks(500) {
        let txn = store.txn()?;
        for (id, c) in chunk {
            dvx_engine::store::lineage::index_commit(store, &txn, id, c)?;
        }
        txn.commit()?;
    }
    let target = prev.path.clone();
    println!(
        "built {n} run records in {} commits in {:.1} s ({})",
        pending.len(),
        t0.elapsed().as_secs_f64(),
        root.display()
    );
    drop(repo);

    // In-process: open read-only, then trace; median of 21.
    let mut times = Vec::new();
    let mut traces = Vec::new();
    let mut nodes = 0;
    for _ in 0..21 {
        let t = Instant::now();
        let repo = Repo::open(&root, Access::Read)?;
        let t1 = Instant::now();
        let g = lineage::lineage(&repo, &target, "HEAD", false, None)?;
        traces.push(t1.elapsed().as_secs_f64() * 1000.0);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        nodes = g.nodes.len();
        let runs = g
            .nodes
            .iter()
            .filter(|n| matches!(n, lineage::Node::Run(_)))
            .count();
        assert_eq!(runs, depth, "the chain is {depth} runs deep");
    }
    times.sort_by(|a, b| a.total_cmp(b));
    traces.sort_by(|a, b| a.total_cmp(b));
    println!(
        "lineage {target} (in process, {nodes} nodes): open + trace median {:.2} ms, max {:.2} ms; trace alone median {:.2} ms, max {:.2} ms",
        times[times.len() / 2],
        times[times.len() - 1],
        traces[traces.len() / 2],
        traces[traces.len() - 1]
    );
    if let Some(bin) = dvx {
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let out = std::process::Command::new(&bin)
                .args(["lineage", &target, "--json"])
                .current_dir(&root)
                .output()?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "dvx lineage {target} --json (whole command): median {:.2} ms, max {:.2} ms",
            times[times.len() / 2],
            times[times.len() - 1]
        );
    }
    Ok(())
}

/// `add` of `n` small files, and the path-history part of it alone.
fn time_add(root: &std::path::Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..n {
        let d = root.join(format!("data/d{:03}", i / 1000));
        if i % 1000 == 0 {
            std::fs::create_dir_all(&d)?;
        }
        let body = format!("{i},{}\n", "x".repeat(1000 + i % 3000));
        std::fs::write(d.join(format!("f{i:06}.csv")), body)?;
    }
    let repo = Repo::open(root, Access::Write("lineage bench"))?;
    let t = Instant::now();
    repo.add(&["data".into()], None, &dvx_engine::store::Quiet)?;
    let add = t.elapsed().as_secs_f64();
    let head = repo.store.head_commit()?.ok_or("no commit")?;
    let c = repo.store.get_commit(&head)?;
    let t = Instant::now();
    repo.index_commit(&head, &c)?;
    let index = t.elapsed().as_secs_f64();
    println!(
        "add of {n} files: {add:.2} s, of which the path history (measured again alone): {index:.2} s"
    );
    Ok(())
}
