//! Lineage: for any file in any commit, the runs and inputs it came from (upstream), or
//! everything derived from it (downstream), answered from indexes in the `lineage` column
//! family (layout in `schemas/lineage.md`, keys in `dvx_store::lineage`).
//!
//! Every run record indexes each file it wrote and read, folders walked file by file, in the
//! same write batch as the record. Commits index the paths they changed (path history) and the
//! runs they list. A file's producer is the run whose output held that content at that path;
//! where several runs did, the one a commit in the file's history lists wins.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use dvx_store::db::ObjKind;
use dvx_store::lineage::{self as keys, TAG_INPUT, TAG_OUTPUT};
use dvx_store::object::{Commit, EntryKind, GitInfo, Person};
use dvx_store::store::{Store, Txn};
use dvx_store::worktree::{self, Flat};
use dvx_store::{Id, Repo};
use serde::Serialize;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::record::{self, PathId, RunRecord};

mod render;
pub use render::{render_dot, render_mermaid, render_tree, svg};

/// Version of the `--json` document (`schemas/lineage.schema.json`).
pub const GRAPH_VERSION: u32 = 1;

fn kind_of(s: &str) -> EntryKind {
    EntryKind::from_name(s).unwrap_or(EntryKind::File)
}

/// Every (path, entry) a recorded path stands for: itself and, for a folder, everything in it.
/// `known` holds entries just computed (trees not yet readable from the store).
fn expand(store: &Store, p: &PathId, known: &BTreeMap<String, Flat>) -> Result<Vec<(String, Id)>> {
    let mut out = vec![(p.path.clone(), p.id)];
    if p.kind != EntryKind::Dir {
        return Ok(out);
    }
    // Everything inside sorts together right after `path/` (a sibling such as `path.csv`
    // sorts between `path` and `path/`).
    let prefix = format!("{}/", p.path);
    let inside: Vec<(String, Id)> = known
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        // Folders inside carry placeholder ids until their tree is built: files only.
        .filter(|(_, f)| f.kind != EntryKind::Dir)
        .map(|(k, f)| (k.clone(), f.id))
        .collect();
    if !inside.is_empty() {
        out.extend(inside);
    } else {
        // Folders read from the workspace but never stored are indexed as a whole only.
        let files = keys::files_of_tree(store, &p.id, &p.path)?;
        out.extend(
            files
                .into_iter()
                .filter(|(_, f)| f.kind != EntryKind::Dir)
                .map(|(k, f)| (k, f.id)),
        );
    }
    Ok(out)
}

/// Write the index entries of one run record into `txn` (the batch that stores the record).
/// `outs` and `ins` hold the files inside output and input folders when their trees are not
/// stored yet; folders not found there are read from the store.
pub fn index_run(
    txn: &Txn,
    run: &Id,
    rec: &RunRecord,
    outs: &BTreeMap<String, Flat>,
    ins: &BTreeMap<String, Flat>,
) -> Result<()> {
    let store = txn.store();
    for (tag, list, known) in [
        (TAG_OUTPUT, &rec.outputs, outs),
        (TAG_INPUT, &rec.inputs, ins),
    ] {
        for p in list {
            for (path, id) in expand(store, p, known)? {
                txn.put_lineage(&keys::run_file_key(tag, &id, run, &path), b"");
            }
        }
    }
    Ok(())
}

#[derive(Debug, Default, Serialize)]
pub struct ReindexReport {
    pub commits: u64,
    pub runs: u64,
}

/// Rebuild every lineage index from the commits and run records in the store, in one batch.
/// Call it after objects arrive by other ways than `dvx run`/`add`/`commit` (a fetch or
/// clone), or on a store made before lineage existed. The caller holds the writer lock.
pub fn reindex(store: &Store) -> Result<ReindexReport> {
    let txn = store.txn()?;
    let commits = keys::reindex_commits(store, &txn)?;
    let mut runs = Vec::new();
    store.for_each_object(ObjKind::Run, |id, _| {
        {
            runs.push(id);
        }
        Ok(true)
    })?;
    for id in &runs {
        // A damaged record is fsck's business; it just has no lineage.
        if let Ok(rec) = record::load(store, id) {
            index_run(&txn, id, &rec, &BTreeMap::new(), &BTreeMap::new())?;
            txn.flush_over(keys::PIECE)?;
        }
    }
    txn.commit()?;
    Ok(ReindexReport {
        commits,
        runs: runs.len() as u64,
    })
}

/// Index objects that arrived from elsewhere (a fetch or clone stores commits and run records
/// without indexing them): these run records and commits, in one batch. Cheaper than
/// `reindex` when a fetch reports what it brought. The caller holds the writer lock.
pub fn index_fetched(store: &Store, runs: &[Id], commits: &[Id]) -> Result<()> {
    // Written in pieces: unindexed until the last one lands, so a crash means a rebuild.
    let indexed = keys::is_indexed(store)?;
    if indexed {
        keys::mark_unindexed(store)?;
    }
    let txn = store.txn()?;
    for id in runs {
        if let Ok(rec) = record::load(store, id) {
            index_run(&txn, id, &rec, &BTreeMap::new(), &BTreeMap::new())?;
            txn.flush_over(keys::PIECE)?;
        }
    }
    for id in commits {
        let c = store.get_commit(id)?;
        keys::index_commit(store, &txn, id, &c)?;
    }
    if indexed {
        keys::mark_indexed(&txn);
    }
    Ok(txn.commit()?)
}

/// Index what a fetch brought, from its report: the run records it names, and the commits
/// from each ref it moved back to where that ref was (or as far as the store has them).
pub fn index_fetch(store: &Store, rep: &dvx_remote::fetch::FetchReport) -> Result<()> {
    let mut commits = Vec::new();
    let mut seen = HashSet::new();
    for u in &rep.refs {
        let mut stack = vec![u.new];
        while let Some(id) = stack.pop() {
            if Some(id) == u.old || !seen.insert(id) {
                continue;
            }
            // A commit not fetched (only tips were) ends the walk there.
            let Some(bytes) = store.get_object(ObjKind::Commit, &id)? else {
                continue;
            };
            stack.extend(Commit::decode(id, &bytes)?.parents);
            commits.push(id);
        }
    }
    index_fetched(store, &rep.new_runs, &commits)
}

/// Open the project for reading lineage. A store made before lineage existed is indexed
/// first, once (that takes the writer lock briefly); the report says so.
pub fn open(start: &std::path::Path) -> Result<(Repo, Option<ReindexReport>)> {
    let repo = Repo::open(start, dvx_store::Access::Read)?;
    if keys::is_indexed(&repo.store)? {
        return Ok((repo, None));
    }
    drop(repo);
    let built = {
        let w = Repo::open(
            start,
            dvx_store::Access::Write("dvx (building the lineage index)"),
        )
        .map_err(|e| EngineError::NotIndexed(e.to_string()))?;
        reindex(&w.store)?
    };
    // A read-only handle sees the database as it was when opened: open it again.
    Ok((Repo::open(start, dvx_store::Access::Read)?, Some(built)))
}

/// A commit, as lineage names it: who, when, why.
#[derive(Clone, Debug, Serialize)]
pub struct CommitRef {
    pub commit: Id,
    pub author: Person,
    pub time: String,
    pub message: String,
}

impl CommitRef {
    fn of(id: Id, c: &Commit) -> CommitRef {
        CommitRef {
            commit: id,
            author: c.author.clone(),
            time: chrono::DateTime::from_timestamp(c.time, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            message: c.message.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FileNode {
    pub id: String,
    pub path: String,
    pub kind: String,
    pub object: Id,
    /// run (a recorded run produced it), added (committed by hand: see `added`), folder (a
    /// folder no single run produced: see its `contains` edges), unknown (no run, no commit).
    pub origin: String,
    pub added: Option<CommitRef>,
    /// `--depth` stopped here: this file has lineage that is not shown.
    pub truncated: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunNode {
    pub id: String,
    pub run: Id,
    pub stage: String,
    pub datum: Option<String>,
    pub cmd: Vec<String>,
    pub params: BTreeMap<String, Value>,
    pub env: BTreeMap<String, String>,
    pub wdir: String,
    pub image: Option<String>,
    pub code: Option<GitInfo>,
    pub user: String,
    pub host: String,
    pub start: String,
    pub end: String,
    pub exit: Option<i32>,
    /// The commit that recorded the run (its message says why), when one is known.
    pub commit: Option<CommitRef>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Node {
    File(Box<FileNode>),
    Run(Box<RunNode>),
}

impl Node {
    pub fn id(&self) -> &str {
        match self {
            Node::File(f) => &f.id,
            Node::Run(r) => &r.id,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// produced_by (file → run), input (run → file), contains (folder → file); downstream:
    /// consumed_by (file → run), output (run → file).
    pub rel: String,
}

/// The answer to `dvx lineage`: a graph (shared inputs appear once), rooted at `root`.
#[derive(Clone, Debug, Serialize)]
pub struct Graph {
    pub version: u32,
    pub direction: String,
    pub commit: Id,
    pub root: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id() == id)
    }
    pub fn children(&self, id: &str) -> impl Iterator<Item = &Edge> {
        let id = id.to_string();
        self.edges.iter().filter(move |e| e.from == id)
    }
}

/// Split `PATH[@REV]` (the last `@`; no REV means HEAD).
pub fn split_rev(arg: &str) -> (&str, &str) {
    match arg.rsplit_once('@') {
        Some((p, r)) if !p.is_empty() && !r.is_empty() => (p, r),
        Some((p, "")) => (p, "HEAD"),
        _ => (arg, "HEAD"),
    }
}

struct Walk<'a> {
    store: &'a Store,
    at: Id,
    /// Breadth-first walk of the history of `at`, as far as it went: order of each commit
    /// met, and the commits still to visit.
    order: HashMap<Id, usize>,
    frontier: std::collections::VecDeque<Id>,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    files: HashMap<(String, Id), String>,
    runs: HashMap<Id, String>,
    commits: HashMap<Id, Option<Commit>>,
}

impl<'a> Walk<'a> {
    fn new(store: &'a Store, at: Id) -> Walk<'a> {
        Walk {
            store,
            at,
            order: HashMap::new(),
            frontier: std::collections::VecDeque::from([at]),
            nodes: Vec::new(),
            edges: Vec::new(),
            files: HashMap::new(),
            runs: HashMap::new(),
            commits: HashMap::new(),
        }
    }

    fn commit(&mut self, id: &Id) -> Result<Option<Commit>> {
        if let Some(c) = self.commits.get(id) {
            return Ok(c.clone());
        }
        let c = match self.store.get_object(ObjKind::Commit, id)? {
            Some(bytes) => Some(Commit::decode(*id, &bytes)?),
            None => None,
        };
        self.commits.insert(*id, c.clone());
        Ok(c)
    }

    /// The place of `target` in a breadth-first walk of the history of `at` (0 is `at`
    /// itself), or None if it is not in that history. The walk goes only as far as needed and
    /// resumes where it stopped, so a lineage query costs what it reads, not the history.
    fn distance(&mut self, target: &Id) -> Result<Option<usize>> {
        if let Some(d) = self.order.get(target) {
            return Ok(Some(*d));
        }
        while let Some(id) = self.frontier.pop_front() {
            if self.order.contains_key(&id) {
                continue;
            }
            let d = self.order.len();
            self.order.insert(id, d);
            if let Some(c) = self.commit(&id)? {
                self.frontier.extend(c.parents.iter().copied());
            }
            if id == *target {
                return Ok(Some(d));
            }
        }
        Ok(None)
    }

    /// Of `commits`, the one nearest to `at` in its history (`oldest`: the farthest), else
    /// (none in that history) the earliest made.
    fn pick(&mut self, commits: &[Id], oldest: bool) -> Result<Option<(Id, Commit)>> {
        if let [only] = commits {
            return Ok(self.commit(only)?.map(|c| (*only, c)));
        }
        let mut in_history: Option<(usize, Id)> = None;
        for c in commits {
            if let Some(d) = self.distance(c)? {
                if in_history.is_none_or(|(b, _)| (d > b) == oldest) {
                    in_history = Some((d, *c));
                }
            }
        }
        if let Some((_, c)) = in_history {
            return Ok(self.commit(&c)?.map(|x| (c, x)));
        }
        let mut best: Option<(Id, Commit)> = None;
        for id in commits {
            if let Some(c) = self.commit(id)? {
                if best
                    .as_ref()
                    .is_none_or(|b| (c.time, *id) < (b.1.time, b.0))
                {
                    best = Some((*id, c));
                }
            }
        }
        Ok(best)
    }

    /// Runs indexed under `tag` for this content at this path.
    fn runs_for(&self, tag: u8, path: &str, id: &Id) -> Result<Vec<Id>> {
        let mut out = BTreeSet::new();
        self.store
            .for_each_lineage(&keys::run_file_prefix(tag, id), |k, _| {
                if let Some((_, run, p)) = keys::parse_run_file_key(k) {
                    if p == path {
                        out.insert(run);
                    }
                }
                Ok(true)
            })?;
        Ok(out.into_iter().collect())
    }

    /// The commit that recorded a run: the first to list it in the history of `at`.
    fn recording_commit(&mut self, run: &Id) -> Result<Option<(Id, Commit)>> {
        let listed = keys::commits_of_run(self.store, run)?;
        self.pick(&listed, true)
    }

    /// The run that produced this content at this path, as seen from `at`.
    fn producer(&mut self, path: &str, id: &Id) -> Result<Option<Id>> {
        let cands = self.runs_for(TAG_OUTPUT, path, id)?;
        if cands.len() <= 1 {
            return Ok(cands.first().copied());
        }
        // Several runs made the same bytes there: the one recorded nearest in this history...
        let mut by_commit: HashMap<Id, Id> = HashMap::new();
        for r in &cands {
            for c in keys::commits_of_run(self.store, r)? {
                by_commit.insert(c, *r);
            }
        }
        let mut nearest: Option<(usize, Id)> = None;
        let listed: Vec<Id> = by_commit.keys().copied().collect();
        for c in listed {
            if let Some(d) = self.distance(&c)? {
                if nearest.is_none_or(|(b, _)| d < b) {
                    nearest = Some((d, c));
                }
            }
        }
        if let Some((_, c)) = nearest {
            return Ok(by_commit.get(&c).copied());
        }
        // ...else the latest of them.
        let mut best: Option<(String, Id)> = None;
        for r in cands {
            if let Ok(rec) = record::load(self.store, &r) {
                if best.as_ref().is_none_or(|b| rec.end > b.0) {
                    best = Some((rec.end, r));
                }
            }
        }
        Ok(best.map(|b| b.1))
    }

    /// The commit that first brought this content to this path: from the path-history index,
    /// else by walking first parents back from `at` (stores indexed before a crash, say).
    fn added_by(&mut self, path: &str, id: &Id) -> Result<Option<(Id, Commit)>> {
        let brought: Vec<Id> = keys::history(self.store, path, id)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        if let Some(found) = self.pick(&brought, true)? {
            return Ok(Some(found));
        }
        let mut cur = Some(self.at);
        let mut found: Option<(Id, Commit)> = None;
        while let Some(cid) = cur {
            let Some(c) = self.commit(&cid)? else { break };
            let here = worktree::lookup(self.store, &c.tree, path)?.map(|f| f.id) == Some(*id);
            if here {
                cur = c.parents.first().copied();
                found = Some((cid, c));
            } else if found.is_some() {
                break;
            } else {
                cur = c.parents.first().copied();
            }
        }
        Ok(found)
    }

    fn push_file(&mut self, path: &str, kind: &str, id: Id) -> (String, bool) {
        if let Some(n) = self.files.get(&(path.to_string(), id)) {
            return (n.clone(), false);
        }
        let n = format!("f{}", self.files.len());
        self.files.insert((path.to_string(), id), n.clone());
        self.nodes.push(Node::File(Box::new(FileNode {
            id: n.clone(),
            path: path.to_string(),
            kind: kind.to_string(),
            object: id,
            origin: "unknown".into(),
            added: None,
            truncated: false,
        })));
        (n, true)
    }

    fn file_mut(&mut self, n: &str) -> Option<&mut FileNode> {
        self.nodes.iter_mut().find_map(|x| match x {
            Node::File(f) if f.id == n => Some(&mut **f),
            _ => None,
        })
    }

    fn edge(&mut self, from: &str, to: &str, rel: &str) {
        self.edges.push(Edge {
            from: from.into(),
            to: to.into(),
            rel: rel.into(),
        });
    }

    fn push_run(&mut self, run: Id, rec: &RunRecord) -> Result<(String, bool)> {
        if let Some(n) = self.runs.get(&run) {
            return Ok((n.clone(), false));
        }
        let n = format!("r{}", self.runs.len());
        self.runs.insert(run, n.clone());
        let commit = self
            .recording_commit(&run)?
            .map(|(id, c)| CommitRef::of(id, &c));
        self.nodes.push(Node::Run(Box::new(RunNode {
            id: n.clone(),
            run,
            stage: rec.stage.clone(),
            datum: rec.datum.clone(),
            cmd: rec.cmd.clone(),
            params: rec.params.clone(),
            env: rec.env.clone(),
            wdir: rec.wdir.clone(),
            image: rec.image.clone(),
            code: rec.code.clone(),
            user: rec.user.clone(),
            host: rec.host.clone(),
            start: rec.start.clone(),
            end: rec.end.clone(),
            exit: rec.exit,
            commit,
        })));
        Ok((n, true))
    }

    /// Upstream of one file; `depth` is how many more runs may be followed.
    fn up_file(&mut self, path: &str, kind: &str, id: Id, depth: Option<usize>) -> Result<String> {
        let (n, new) = self.push_file(path, kind, id);
        if !new {
            return Ok(n);
        }
        if let Some(run) = self.producer(path, &id)? {
            if let Some(f) = self.file_mut(&n) {
                f.origin = "run".into();
            }
            if depth == Some(0) {
                if let Some(f) = self.file_mut(&n) {
                    f.truncated = true;
                }
                return Ok(n);
            }
            let rec = record::load(self.store, &run)?;
            let (r, new_run) = self.push_run(run, &rec)?;
            self.edge(&n, &r, "produced_by");
            if new_run {
                for i in &rec.inputs {
                    let c = self.up_file(&i.path, i.kind.as_str(), i.id, depth.map(|d| d - 1))?;
                    self.edge(&r, &c, "input");
                }
            }
            return Ok(n);
        }
        let added = self.added_by(path, &id)?;
        let by_hand = added.as_ref().is_some_and(|(_, c)| c.runs.is_empty());
        if kind_of(kind) == EntryKind::Dir && !by_hand {
            // A folder no one run made (datum outputs merged, say): its files, one by one.
            if let Some(f) = self.file_mut(&n) {
                f.origin = "folder".into();
            }
            let files = keys::files_of_tree(self.store, &id, path)?;
            for (p, f) in files.iter().filter(|(_, f)| f.kind != EntryKind::Dir) {
                let c = self.up_file(p, f.kind.as_str(), f.id, depth)?;
                self.edge(&n, &c, "contains");
            }
            return Ok(n);
        }
        if let Some((cid, c)) = added {
            if let Some(f) = self.file_mut(&n) {
                f.origin = "added".into();
                f.added = Some(CommitRef::of(cid, &c));
            }
        }
        Ok(n)
    }

    /// Runs that read this content at this path, or a file inside it.
    fn consumers(&self, path: &str, kind: &str, id: &Id) -> Result<Vec<Id>> {
        let mut out: BTreeSet<Id> = self.runs_for(TAG_INPUT, path, id)?.into_iter().collect();
        if kind_of(kind) == EntryKind::Dir {
            for (p, f) in keys::files_of_tree(self.store, id, path)? {
                out.extend(self.runs_for(TAG_INPUT, &p, &f.id)?);
            }
        }
        Ok(out.into_iter().collect())
    }

    fn down_file(
        &mut self,
        path: &str,
        kind: &str,
        id: Id,
        depth: Option<usize>,
    ) -> Result<String> {
        let (n, new) = self.push_file(path, kind, id);
        if !new {
            return Ok(n);
        }
        if self.producer(path, &id)?.is_some() {
            if let Some(f) = self.file_mut(&n) {
                f.origin = "run".into();
            }
        } else if let Some((cid, c)) = self.added_by(path, &id)? {
            if let Some(f) = self.file_mut(&n) {
                f.origin = "added".into();
                f.added = Some(CommitRef::of(cid, &c));
            }
        }
        let consumers = self.consumers(path, kind, &id)?;
        if consumers.is_empty() {
            return Ok(n);
        }
        if depth == Some(0) {
            if let Some(f) = self.file_mut(&n) {
                f.truncated = true;
            }
            return Ok(n);
        }
        for run in consumers {
            // A failed execution read the file but derived nothing from it.
            let Some(rec) = record::load(self.store, &run).ok().filter(|r| r.ok()) else {
                continue;
            };
            let (r, new_run) = self.push_run(run, &rec)?;
            self.edge(&n, &r, "consumed_by");
            if new_run {
                for o in &rec.outputs {
                    // A datum's output folder holds only its own files: show those.
                    let outs: Vec<(String, String, Id)> =
                        if rec.datum.is_some() && o.kind == EntryKind::Dir {
                            keys::files_of_tree(self.store, &o.id, &o.path)?
                                .into_iter()
                                .filter(|(_, f)| f.kind != EntryKind::Dir)
                                .map(|(p, f)| (p, f.kind.as_str().to_string(), f.id))
                                .collect()
                        } else {
                            vec![(o.path.clone(), o.kind.as_str().to_string(), o.id)]
                        };
                    for (p, k, id) in outs {
                        let c = self.down_file(&p, &k, id, depth.map(|d| d - 1))?;
                        self.edge(&r, &c, "output");
                    }
                }
            }
        }
        Ok(n)
    }
}

/// Which revision and entry `PATH@REV` names.
fn locate(repo: &Repo, path: &str, rev: &str) -> Result<(Id, Flat)> {
    let at = repo.store.resolve(rev)?;
    let c = repo.store.get_commit(&at)?;
    let f = worktree::lookup(&repo.store, &c.tree, path)?
        .filter(|_| !path.is_empty())
        .ok_or_else(|| EngineError::PathNotInRev {
            path: path.to_string(),
            rev: rev.to_string(),
        })?;
    Ok((at, f))
}

/// The lineage graph of `path` as commit `rev` holds it.
pub fn lineage(
    repo: &Repo,
    path: &str,
    rev: &str,
    downstream: bool,
    depth: Option<usize>,
) -> Result<Graph> {
    let (at, f) = locate(repo, path, rev)?;
    let mut w = Walk::new(&repo.store, at);
    let root = if downstream {
        w.down_file(path, f.kind.as_str(), f.id, depth)?
    } else {
        w.up_file(path, f.kind.as_str(), f.id, depth)?
    };
    Ok(Graph {
        version: GRAPH_VERSION,
        direction: if downstream { "downstream" } else { "upstream" }.into(),
        commit: at,
        root,
        nodes: w.nodes,
        edges: w.edges,
    })
}

/// The run that produced `path` as commit `rev` holds it.
pub fn producer_of(repo: &Repo, path: &str, rev: &str) -> Result<(Id, RunRecord)> {
    let (at, f) = locate(repo, path, rev)?;
    let mut w = Walk::new(&repo.store, at);
    let run = w
        .producer(path, &f.id)?
        .ok_or_else(|| EngineError::NotProduced {
            path: path.to_string(),
            rev: rev.to_string(),
        })?;
    Ok((run, record::load(&repo.store, &run)?))
}

/// The run `arg` names by id or unique prefix, if it looks like one and is stored.
pub fn find_run(repo: &Repo, arg: &str) -> Result<Option<(Id, RunRecord)>> {
    if arg.len() < 4 || !arg.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match record::find(&repo.store, arg) {
        // A missing record with a full id: maybe a file of that name.
        Err(EngineError::Store(dvx_store::StoreError::MissingObject { .. })) => Ok(None),
        r => r,
    }
}

/// A run id (or unique prefix) if `arg` names a stored run, else `PATH[@REV]`'s producer.
/// `rel` turns the user's path into a project-relative one.
pub fn run_or_path(
    repo: &Repo,
    arg: &str,
    rel: impl Fn(&str) -> Result<String>,
) -> Result<(Id, RunRecord)> {
    if let Some(found) = find_run(repo, arg)? {
        return Ok(found);
    }
    let (p, rev) = split_rev(arg);
    let (p, rev) = match rel(p) {
        Ok(p) if !p.is_empty() => (p, rev),
        _ => return Err(EngineError::UnknownRun(arg.to_string())),
    };
    let hex = arg.len() >= 4 && arg.bytes().all(|b| b.is_ascii_hexdigit());
    match producer_of(repo, &p, rev) {
        Err(EngineError::PathNotInRev { .. }) if hex => {
            Err(EngineError::UnknownRun(arg.to_string()))
        }
        // A file named like a hex id, or `name@x` meant literally.
        Err(EngineError::Store(dvx_store::StoreError::UnknownRevision(_))) if rev != "HEAD" => {
            let whole = rel(arg)?;
            producer_of(repo, &whole, "HEAD")
        }
        r => r,
    }
}

#[cfg(test)]
mod tests;
