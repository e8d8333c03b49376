//! The dvx command line: parsing, output and progress. Every decision lives in the libraries.

mod args;
mod docs;
mod output;
mod remote;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use dvx_engine::run::{Engine, RunOptions};
use dvx_engine::store::{self, paths, Access, Repo, StoreError};
use dvx_engine::{exec::Children, lineage, metrics, record, EngineError};

use args::{Cli, Command, MetricsCmd, ParamsCmd};
use output::{count, human_bytes, Bar, Out};

fn main() -> ExitCode {
    // A file-size limit (a full disk in tests, quotas) must surface as an error, not kill us.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    // A closed pipe (`dvx log | head`) ends dvx quietly, as it does other Unix tools.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let out = Out::new(cli.quiet, cli.verbose);
    match run(cli, &out) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e}");
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            ExitCode::from(e.class().exit_code())
        }
    }
}

/// Where the user stands (after -C).
fn cwd(cli_dir: &Option<PathBuf>) -> store::Result<PathBuf> {
    let here = std::env::current_dir().map_err(|e| StoreError::io(".", e))?;
    Ok(match cli_dir {
        Some(d) => paths::normalize(&here, d),
        None => here,
    })
}

/// Resolve user paths (and globs) to project-relative paths.
fn rel_args(repo: &Repo, cwd: &Path, args: &[PathBuf], glob: bool) -> store::Result<Vec<String>> {
    let mut out = Vec::new();
    for a in args {
        let s = a.to_string_lossy();
        let abs = paths::normalize(cwd, a);
        if glob && !abs.exists() && s.contains(['*', '?', '[']) {
            let pattern = abs.to_string_lossy().into_owned();
            let matches: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|e| StoreError::InvalidPath {
                    path: s.to_string(),
                    reason: format!("bad glob: {e}"),
                })?
                .filter_map(Result::ok)
                .collect();
            if matches.is_empty() {
                return Err(StoreError::PathNotFound(a.clone()));
            }
            for m in matches {
                out.push(paths::to_rel(&repo.root, cwd, &m)?);
            }
        } else {
            out.push(paths::to_rel(&repo.root, cwd, a)?);
        }
    }
    Ok(out)
}

fn run(cli: Cli, out: &Out) -> dvx_engine::Result<ExitCode> {
    let cwd = cwd(&cli.directory)?;
    let bar = Bar::new(out.quiet || !std::io::stderr().is_terminal());
    let show = |rel: &str, root: &Path| paths::display_rel(root, &cwd, rel);
    match cli.command {
        Command::Init => {
            let r = Repo::init(&cwd)?;
            out.say(&format!(
                "initialised an empty dvx project in {}",
                r.root.join(".dvx").display()
            ));
            if let Some(g) = r.git {
                out.info(&format!(
                    "inside the git work tree {}: dvx internals are git-ignored",
                    g.display()
                ));
            }
        }
        Command::Add {
            paths: p,
            message,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx add"))?;
            let rels = rel_args(&repo, &cwd, &p, true)?;
            let rep = repo.add(&rels, message, &bar)?;
            if json {
                out.json(&rep);
            } else {
                let shown: Vec<String> = rep.paths.iter().map(|r| show(r, &repo.root)).collect();
                out.say(&format!(
                    "added {} ({}, {}; read {}, {})",
                    shown.join(", "),
                    count(rep.files, "file"),
                    human_bytes(rep.bytes),
                    count(rep.files_read, "file"),
                    human_bytes(rep.bytes_read)
                ));
                match rep.commit {
                    Some(id) => out.say(&format!(
                        "commit {} on {}",
                        id.short(),
                        rep.branch.as_deref().unwrap_or("detached HEAD")
                    )),
                    None => out.say("nothing changed: no new commit"),
                }
            }
        }
        Command::Commit { message, json } => {
            let repo = Repo::open(&cwd, Access::Write("dvx commit"))?;
            let rep = repo.commit(message, &bar)?;
            if json {
                out.json(&rep);
            } else {
                match rep.commit {
                    Some(id) => out.say(&format!(
                        "commit {} on {} ({}, {}; read {})",
                        id.short(),
                        rep.branch.as_deref().unwrap_or("detached HEAD"),
                        count(rep.files, "file"),
                        human_bytes(rep.bytes),
                        count(rep.files_read, "changed file")
                    )),
                    None => out.say("nothing to commit: tracked data is unchanged"),
                }
            }
        }
        Command::Rm {
            paths: p,
            message,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx rm"))?;
            let rels = rel_args(&repo, &cwd, &p, false)?;
            let rep = repo.rm(&rels, message)?;
            if json {
                out.json(&rep);
            } else if let Some(id) = rep.commit {
                out.say(&format!(
                    "stopped tracking {} (files stay on disk); commit {}",
                    rels.join(", "),
                    id.short()
                ));
            }
        }
        Command::Status {
            remote: Some(r),
            json,
            ..
        } => remote::status(&cwd, out, r, json)?,
        Command::Status {
            remote: None,
            json,
            exit_code,
        } => {
            // Read-only: a no-op status writes nothing; new hashes are saved by a short writer.
            let repo = Repo::open(&cwd, Access::Read)?;
            let st = repo.status(&bar)?;
            let stages = match Engine::open(&repo) {
                Ok(mut e) => Some(e.status(&bar)?),
                Err(EngineError::NoPipeline(_)) => None,
                Err(e) => return Err(e),
            };
            if json {
                let mut v = serde_json::to_value(&st).unwrap_or_default();
                v["stages"] = serde_json::to_value(&stages).unwrap_or_default();
                out.json(&v);
            } else {
                output::print_status(out, &st, |r| show(r, &repo.root));
                if let Some(stages) = &stages {
                    output::print_stage_status(out, stages);
                }
            }
            let stale = stages
                .as_deref()
                .is_some_and(|s| !output::stale(s).is_empty());
            if exit_code && (!st.clean || stale) {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Log {
            rev,
            max_count,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let entries = repo.log(rev.as_deref(), max_count)?;
            if json {
                out.json(&entries);
            } else {
                output::print_log(out, &entries);
            }
        }
        Command::Diff { revs, json } => {
            let repo = Repo::open(&cwd, Access::ReadOrWrite("dvx diff"))?;
            let changes = repo.diff(
                revs.first().map(String::as_str),
                revs.get(1).map(String::as_str),
                &bar,
            )?;
            if json {
                out.json(&changes);
            } else {
                output::print_changes(out, &changes, |r| show(r, &repo.root));
            }
        }
        Command::Checkout {
            rev,
            paths: p,
            force,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx checkout"))?;
            let rels = rel_args(&repo, &cwd, &p, false)?;
            let rep = repo.checkout(rev.as_deref(), &rels, force, &bar)?;
            if json {
                out.json(&rep);
            } else {
                let at = match (&rep.branch, rels.is_empty()) {
                    (Some(b), _) => format!("on branch {b} at {}", rep.commit.short()),
                    (None, true) => format!("at {} (detached HEAD)", rep.commit.short()),
                    (None, false) => format!("from {}", rep.commit.short()),
                };
                out.say(&format!(
                    "checked out {at}: wrote {} ({}), deleted {}, {} already matched",
                    count(rep.written, "file"),
                    human_bytes(rep.bytes_written),
                    rep.deleted,
                    rep.unchanged
                ));
            }
        }
        Command::Branch {
            name,
            rev,
            delete,
            json,
        } => refs_cmd(&cwd, out, "branch", name, rev, delete, json)?,
        Command::Tag {
            name,
            rev,
            delete,
            json,
        } => refs_cmd(&cwd, out, "tag", name, rev, delete, json)?,
        Command::Ls {
            args,
            recursive,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let (rev, path) = match args.as_slice() {
                [] => ("HEAD".to_string(), None),
                [one] if repo.store.resolve(one).is_ok() => (one.clone(), None),
                [one] => ("HEAD".to_string(), Some(one.clone())),
                [r, p, ..] => (r.clone(), Some(p.clone())),
            };
            let rel = match path {
                Some(p) => paths::to_rel(&repo.root, &cwd, Path::new(&p))?,
                None => paths::to_rel(&repo.root, &cwd, Path::new("."))?,
            };
            let entries = repo.ls(&rev, &rel, recursive)?;
            if json {
                out.json(&entries);
            } else {
                for e in entries {
                    let mark = if e.kind == store::object::EntryKind::Dir {
                        "/"
                    } else {
                        ""
                    };
                    out.say(&format!(
                        "{:<7} {:>10}  {}  {}{mark}",
                        e.kind.as_str(),
                        human_bytes(e.size),
                        e.id.short(),
                        show(&e.path, &repo.root)
                    ));
                }
            }
        }
        Command::Cat { spec } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let (rev, path) = spec
                .split_once(':')
                .ok_or_else(|| StoreError::InvalidPath {
                    path: spec.clone(),
                    reason: "expected REV:PATH, such as HEAD:data/raw.csv".into(),
                })?;
            let rel = paths::to_rel(&repo.root, &cwd, Path::new(path))?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            repo.cat(if rev.is_empty() { "HEAD" } else { rev }, &rel, &mut lock)?;
            lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
        }
        Command::Gc { dry_run, json } => {
            let repo = Repo::open(&cwd, Access::Write("dvx gc"))?;
            let rep = repo.gc(dry_run, &bar)?;
            if json {
                out.json(&rep);
            } else {
                out.say(&format!(
                    "{}{} and {} unreachable; {} {}; {} rewritten; {} kept",
                    if dry_run { "dry run: " } else { "" },
                    count(rep.objects_deleted, "object"),
                    count(rep.chunks_deleted, "chunk"),
                    human_bytes(rep.bytes_freed),
                    if dry_run { "would be freed" } else { "freed" },
                    count(rep.packs_rewritten, "pack"),
                    count(rep.commits_kept, "commit")
                ));
            }
        }
        Command::Remote(cmd) => remote::remote_cmd(&cwd, out, cmd)?,
        Command::Push {
            remote: r,
            revs,
            all,
            force,
            dry_run,
            json,
        } => remote::push(&cwd, out, &bar, r, revs, all, force, dry_run, json)?,
        Command::Fetch {
            remote: r,
            all_history,
            json,
        } => remote::fetch(&cwd, out, &bar, r, all_history, json)?,
        Command::Pull {
            paths: p,
            remote: r,
            branch,
            force,
            json,
        } => {
            let rels = if p.is_empty() {
                Vec::new()
            } else {
                let repo = Repo::open(&cwd, Access::Read)?;
                rel_args(&repo, &cwd, &p, false)?
            };
            remote::pull(&cwd, out, &bar, rels, r, branch, force, json)?
        }
        Command::Clone {
            url,
            dir,
            branch,
            no_checkout,
            conn,
            json,
        } => remote::clone(&cwd, out, &bar, url, dir, branch, no_checkout, conn, json)?,
        Command::Import {
            url,
            path,
            rev,
            out: dest,
            force,
            conn,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx import"))?;
            let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let dest = dest.unwrap_or_else(|| PathBuf::from(last));
            let rel = rel_args(&repo, &cwd, &[dest], false)?.remove(0);
            let rc = remote::source_config(&repo, &cwd, url, conn);
            let rep =
                dvx_engine::import::import(&repo, &rc, &path, rev.as_deref(), &rel, force, &bar)?;
            remote::say_import(out, &rep, json);
        }
        Command::Update {
            dest,
            rev,
            force,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx update"))?;
            let rel = rel_args(&repo, &cwd, &[dest], false)?.remove(0);
            let rep = dvx_engine::import::update(&repo, &rel, rev.as_deref(), force, &bar)?;
            remote::say_import(out, &rep, json);
        }
        Command::Run {
            stages,
            jobs,
            force,
            dry_run,
            keep_going,
            downstream,
            datum,
            no_run_cache,
            message,
            json,
        } => {
            let repo = Repo::open(&cwd, Access::Write("dvx run"))?;
            let mut engine = Engine::open(&repo)?;
            let children = Children::default();
            let c = children.clone();
            // Ctrl-C stops every child; finished work is already stored.
            let _ = ctrlc::set_handler(move || c.cancel_all());
            let opts = RunOptions {
                targets: stages,
                jobs: jobs.unwrap_or_else(|| {
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2)
                        .min(dvx_engine::run::MAX_JOBS)
                }),
                force,
                dry_run,
                keep_going,
                downstream,
                datum,
                message,
                no_run_cache,
            };
            let summary = engine.run(&opts, &children, &bar)?;
            if json {
                out.json(&summary);
            } else {
                output::print_run(out, &summary, dry_run);
            }
            if summary.failed > 0 {
                return Err(EngineError::SomeFailed(summary.failures.len()));
            }
        }
        Command::Dag { dot, mermaid } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let engine = Engine::open(&repo)?;
            let text = if dot {
                engine.dag.to_dot(&engine.pipeline)
            } else if mermaid {
                engine.dag.to_mermaid(&engine.pipeline)
            } else {
                engine.dag.to_text(&engine.pipeline)
            };
            print!("{text}");
        }
        Command::Datums { stage, json } => {
            let repo = Repo::open(&cwd, Access::ReadOrWrite("dvx datums"))?;
            let engine = Engine::open(&repo)?;
            let ds = engine.datums(&stage, &bar)?;
            if json {
                out.json(&ds);
            } else {
                for d in &ds {
                    println!(
                        "{}  {}",
                        d.input.as_ref().map(|i| i.id.short()).unwrap_or_default(),
                        d.id
                    );
                }
                out.say(&count(ds.len() as u64, "datum"));
            }
        }
        Command::Show { run, json } => {
            let (_repo, id, rec) = run_or_path(&cwd, out, &run)?;
            if json {
                let mut v = serde_json::to_value(&rec).unwrap_or_default();
                v["id"] = serde_json::Value::String(id.to_hex());
                out.json(&v);
            } else {
                output::print_record(&id, &rec);
            }
        }
        Command::Logs { run, stderr } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let (_, rec) = record::find(&repo.store, &run)?
                .ok_or_else(|| EngineError::UnknownRun(run.clone()))?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            if !stderr {
                repo.store.write_file_to(&rec.stdout, &mut lock)?;
            }
            repo.store.write_file_to(&rec.stderr, &mut lock)?;
            lock.flush().map_err(|e| StoreError::io("<stdout>", e))?;
        }
        Command::Metrics(cmd) => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let engine = Engine::open(&repo)?;
            let p = &engine.pipeline;
            let at = |rev: &str| metrics::at_rev(&repo, p, rev).map(|(m, _)| m);
            match cmd {
                MetricsCmd::Show { rev, json } => {
                    let m = match rev {
                        Some(r) => at(&r)?,
                        None => metrics::workspace_metrics(&repo, p),
                    };
                    if json {
                        out.json(&m);
                    } else {
                        for (path, kv) in &m {
                            println!("{path}");
                            for (k, v) in kv {
                                println!("  {k:<30} {v}");
                            }
                        }
                    }
                }
                MetricsCmd::Diff { revs, json } => {
                    let old = at(revs.first().map(String::as_str).unwrap_or("HEAD"))?;
                    let new = match revs.get(1) {
                        Some(r) => at(r)?,
                        None => metrics::workspace_metrics(&repo, p),
                    };
                    output::print_deltas(out, &metrics::diff(&old, &new), json);
                }
            }
        }
        Command::Params(ParamsCmd::Diff { revs, json }) => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let engine = Engine::open(&repo)?;
            let p = &engine.pipeline;
            let at = |rev: &str| metrics::at_rev(&repo, p, rev).map(|(_, params)| params);
            let old = at(revs.first().map(String::as_str).unwrap_or("HEAD"))?;
            let new = match revs.get(1) {
                Some(r) => at(r)?,
                None => metrics::workspace_params(&repo, p)?,
            };
            output::print_deltas(out, &metrics::diff(&old, &new), json);
        }
        Command::Artifacts { json } => {
            let repo = Repo::open(&cwd, Access::Read)?;
            let engine = Engine::open(&repo)?;
            output::print_artifacts(out, &engine.pipeline.sections.artifacts, json);
        }
        Command::Lineage {
            target,
            downstream,
            depth,
            json,
            dot,
            mermaid,
            svg,
        } => {
            let repo = open_lineage(&cwd, out)?;
            let (p, rev) = lineage::split_rev(&target);
            let rel = paths::to_rel(&repo.root, &cwd, Path::new(p))?;
            let g = lineage::lineage(&repo, &rel, rev, downstream, depth)?;
            if json {
                out.json(&g);
            } else if dot {
                print!("{}", lineage::render_dot(&g));
            } else if mermaid {
                print!("{}", lineage::render_mermaid(&g));
            } else if svg {
                print!("{}", lineage::svg(&g));
            } else {
                print!("{}", lineage::render_tree(&g));
            }
        }
        Command::Verify { target, json } => {
            let (repo, id, rec) = run_or_path(&cwd, out, &target)?;
            out.info(&format!("re-running {} ({})", id.short(), rec.stage));
            let rep = dvx_engine::verify::verify(&repo, &id, &rec)?;
            if json {
                out.json(&rep);
            } else {
                output::print_verify(out, &rep);
            }
            if !rep.identical {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Fsck {
            json,
            reindex,
            recover,
        } => {
            if recover {
                let w = Repo::open(&cwd, Access::Salvage("dvx fsck --recover"))?;
                if !out.quiet {
                    eprintln!(
                        "opened the store at its last consistent point; writes after the damaged log record were dropped"
                    );
                }
                drop(w);
            }
            if reindex {
                let w = Repo::open(&cwd, Access::Write("dvx fsck --reindex"))?;
                let r = lineage::reindex(&w.store)?;
                if !out.quiet {
                    eprintln!(
                        "rebuilt the lineage index from {} commits and {} run records",
                        r.commits, r.runs
                    );
                }
            }
            // Writing when no one else does, so that derivable damage is rebuilt on the spot.
            let repo = Repo::open(&cwd, Access::ReadOrWrite("dvx fsck"))?;
            let promised = dvx_engine::remote::promised_ids(&repo.dot);
            let rep = repo.fsck(&promised, &bar)?;
            let bad = !rep.problems.is_empty();
            if !json {
                for r in &rep.repaired {
                    eprintln!("repaired: {r}");
                }
            }
            if json {
                out.json(&rep);
            } else {
                for p in &rep.problems {
                    println!("{} {}: {}", p.kind, p.id, p.problem);
                }
                out.say(&format!(
                    "checked {} chunks, {} objects, {} refs: {}",
                    rep.chunks,
                    rep.objects,
                    rep.refs,
                    if bad {
                        count(rep.problems.len() as u64, "problem")
                    } else {
                        "all good".into()
                    }
                ));
            }
            if bad {
                eprintln!(
                    "error: the store has {} damaged or missing objects",
                    rep.problems.len()
                );
                eprintln!(
                    "hint: fetch them again from a remote, or re-add the data; then run `dvx gc`"
                );
                return Ok(ExitCode::from(
                    dvx_engine::store::ErrorClass::Integrity.exit_code(),
                ));
            }
        }
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { markdown } => docs::man(markdown)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Open for lineage questions (indexing a store from before lineage existed, once).
fn open_lineage(cwd: &Path, out: &Out) -> dvx_engine::Result<Repo> {
    let (repo, built) = lineage::open(cwd)?;
    if let (Some(r), false) = (built, out.quiet) {
        eprintln!(
            "note: built the lineage index of this store ({} commits, {} run records)",
            r.commits, r.runs
        );
    }
    Ok(repo)
}

/// A run id, or PATH[@REV] (relative to where the user stands): the run that produced it.
/// A run id needs no lineage index, so it is tried first.
fn run_or_path(
    cwd: &Path,
    out: &Out,
    arg: &str,
) -> dvx_engine::Result<(Repo, store::Id, record::RunRecord)> {
    let repo = Repo::open(cwd, Access::Read)?;
    if let Some(found) = lineage::find_run(&repo, arg)? {
        return Ok((repo, found.0, found.1));
    }
    drop(repo);
    let repo = open_lineage(cwd, out)?;
    let (id, rec) = lineage::run_or_path(&repo, arg, |p| {
        Ok(paths::to_rel(&repo.root, cwd, Path::new(p))?)
    })?;
    Ok((repo, id, rec))
}

fn refs_cmd(
    cwd: &Path,
    out: &Out,
    kind: &str,
    name: Option<String>,
    rev: Option<String>,
    delete: Option<String>,
    json: bool,
) -> dvx_engine::Result<()> {
    if let Some(d) = delete {
        let repo = Repo::open(cwd, Access::Write("dvx branch/tag -d"))?;
        let id = repo.delete_ref(kind, &d)?;
        out.say(&format!("deleted {kind} {d} (was {})", id.short()));
        return Ok(());
    }
    if let Some(n) = name {
        let repo = Repo::open(cwd, Access::Write("dvx branch/tag"))?;
        let id = repo.create_ref(kind, &n, rev.as_deref())?;
        out.say(&format!("created {kind} {n} at {}", id.short()));
        return Ok(());
    }
    let repo = Repo::open(cwd, Access::Read)?;
    let prefix = if kind == "tag" {
        store::refs::TAGS
    } else {
        store::refs::HEADS
    };
    let list = repo.store.list_refs(prefix)?;
    let head = repo.store.head()?;
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|(n, id)| {
                serde_json::json!({"name": n, "commit": id, "current": head == store::refs::Head::Branch(n.clone()) && kind == "branch"})
            })
            .collect();
        out.json(&v);
    } else {
        for (n, id) in list {
            let cur = kind == "branch" && head == store::refs::Head::Branch(n.clone());
            out.say(&format!(
                "{} {n} {}",
                if cur { "*" } else { " " },
                id.short()
            ));
        }
    }
    Ok(())
}
