//! Remote commands: remote add/list/remove/default, push, fetch, pull, clone, status --remote.

use std::path::{Path, PathBuf};

use dvx_engine::remote::fetch::{FetchReport, Want};
use dvx_engine::remote::push::{PushOptions, RefUpdate};
use dvx_engine::remote::{Project, Remote, SyncStatus};
use dvx_engine::store::config::RemoteConfig;
use dvx_engine::store::{Access, Repo, StoreError};
use dvx_engine::sync;

use crate::args::{RemoteCmd, RemoteConn};
use crate::output::{count, human_bytes, Bar, Out};

fn config_of(url: String, c: RemoteConn) -> RemoteConfig {
    RemoteConfig {
        url,
        endpoint: c.endpoint,
        region: c.region,
        profile: c.profile,
        allow_http: c.allow_http.then_some(true),
        jobs: c.jobs,
        timeout_secs: c.timeout,
        retries: c.retries,
    }
}

/// A folder remote given as a relative path is made absolute against where the user stands.
fn absolute_url(cwd: &Path, url: String) -> String {
    if url.contains("://") || url.starts_with('/') {
        url
    } else {
        cwd.join(&url).display().to_string()
    }
}

pub fn remote_cmd(cwd: &Path, out: &Out, cmd: RemoteCmd) -> dvx_engine::Result<()> {
    match cmd {
        RemoteCmd::Add {
            name,
            url,
            conn,
            force,
        } => {
            let repo = Repo::open(cwd, Access::Write("dvx remote add"))?;
            let url = absolute_url(cwd, url);
            Project(&repo).add_remote(&name, config_of(url.clone(), conn), force)?;
            out.say(&format!("added remote {name}: {url}"));
        }
        RemoteCmd::List { json } => {
            let repo = Repo::open(cwd, Access::Read)?;
            let default = repo.config.core.remote.clone();
            if json {
                let v: Vec<serde_json::Value> = repo
                    .config
                    .remote
                    .iter()
                    .map(|(n, r)| {
                        let mut v = serde_json::to_value(r).unwrap_or_default();
                        v["name"] = n.clone().into();
                        v["default"] = (default.as_deref() == Some(n.as_str())).into();
                        v
                    })
                    .collect();
                out.json(&v);
            } else {
                for (n, r) in &repo.config.remote {
                    let star = if default.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    let ep = r
                        .endpoint
                        .as_ref()
                        .map(|e| format!(" (endpoint {e})"))
                        .unwrap_or_default();
                    out.say(&format!("{star} {n}\t{}{ep}", r.url));
                }
            }
        }
        RemoteCmd::Remove { name } => {
            let repo = Repo::open(cwd, Access::Write("dvx remote remove"))?;
            Project(&repo).remove_remote(&name)?;
            out.say(&format!("removed remote {name}"));
        }
        RemoteCmd::Default { name } => {
            let repo = Repo::open(cwd, Access::Write("dvx remote default"))?;
            Project(&repo).set_default_remote(&name)?;
            out.say(&format!("default remote: {name}"));
        }
    }
    Ok(())
}

fn say_refs(out: &Out, refs: &[RefUpdate]) {
    for r in refs {
        let old = r.old.map(|o| o.short()).unwrap_or_else(|| "-".into());
        out.say(&format!(
            "  {:<28} {} -> {} ({})",
            r.name,
            old,
            r.new.short(),
            r.status
        ));
    }
}

#[allow(clippy::too_many_arguments)]
pub fn push(
    cwd: &Path,
    out: &Out,
    bar: &Bar,
    remote: Option<String>,
    revs: Vec<String>,
    (all, force, dry_run, run_cache): (bool, bool, bool, bool),
    json: bool,
) -> dvx_engine::Result<()> {
    // Reading only: a long push does not keep others from writing.
    let repo = Repo::open(cwd, Access::Read)?;
    let mut remote = Remote::open(&repo, remote.as_deref())?;
    remote.run_cache = run_cache;
    let opts = PushOptions {
        refs: revs,
        all,
        force,
        dry_run,
    };
    let rep = Project(&repo).push(&remote, &opts, bar)?;
    if !dry_run {
        Project(&repo).record_remote_refs(&remote.name, &rep.refs)?;
    }
    if json {
        out.json(&rep);
        return Ok(());
    }
    let verb = if dry_run { "would upload" } else { "uploaded" };
    out.say(&format!(
        "{} {}: {verb} {} ({}) in {}",
        if dry_run {
            "dry run: push to"
        } else {
            "pushed to"
        },
        remote.name,
        count(rep.objects, "object"),
        human_bytes(rep.bytes),
        count(rep.packs, "pack")
    ));
    say_refs(out, &rep.refs);
    Ok(())
}

fn say_fetch(out: &Out, rep: &FetchReport) {
    out.say(&format!(
        "fetched from {}: {} ({}, {})",
        rep.remote,
        count(rep.objects, "object"),
        count(rep.chunks, "chunk"),
        human_bytes(rep.bytes)
    ));
    if rep.run_cache > 0 {
        out.say(&format!(
            "run cache: {} added (`dvx run` restores these instead of running them)",
            count(rep.run_cache, "record")
        ));
    }
    say_refs(out, &rep.refs);
}

pub fn fetch(
    cwd: &Path,
    out: &Out,
    bar: &Bar,
    remote: Option<String>,
    all_history: bool,
    run_cache: bool,
    json: bool,
) -> dvx_engine::Result<()> {
    let repo = Repo::open(cwd, Access::Write("dvx fetch"))?;
    let mut remote = Remote::open(&repo, remote.as_deref())?;
    remote.run_cache = run_cache;
    let want = if all_history {
        Want::History
    } else {
        Want::Tips
    };
    let rep = sync::fetch(&repo, &remote, &want, bar)?;
    if json {
        out.json(&rep);
    } else {
        say_fetch(out, &rep);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn pull(
    cwd: &Path,
    out: &Out,
    bar: &Bar,
    paths: Vec<String>,
    remote: Option<String>,
    branch: Option<String>,
    (force, run_cache): (bool, bool),
    json: bool,
) -> dvx_engine::Result<()> {
    let repo = Repo::open(cwd, Access::Write("dvx pull"))?;
    let mut remote = Remote::open(&repo, remote.as_deref())?;
    remote.run_cache = run_cache;
    let rep = sync::pull(&repo, &remote, branch.as_deref(), &paths, force, bar)?;
    if json {
        out.json(&rep);
        return Ok(());
    }
    say_fetch(out, &rep.fetch);
    match (&rep.checkout, rep.status) {
        (Some(c), _) if rep.pinned.is_some() => out.say(&format!(
            "checked out {} ({}), what dvx.lock pins; branch {} is at the remote's newer commit: wrote {} ({})",
            c.commit.short(),
            c.branch.as_deref().map_or("detached HEAD".into(), |b| format!("on branch {b}")),
            rep.branch,
            count(c.written, "file"),
            human_bytes(c.bytes_written)
        )),
        (_, SyncStatus::Ahead) => out.say(&format!(
            "branch {} has commits the remote lacks; nothing to update (push them with `dvx push`)",
            rep.branch
        )),
        (Some(c), s) => out.say(&format!(
            "{} {}: at {}; wrote {} ({}), deleted {}, {} already matched",
            rep.branch,
            s,
            c.commit.short(),
            count(c.written, "file"),
            human_bytes(c.bytes_written),
            c.deleted,
            c.unchanged
        )),
        (None, s) => out.say(&format!("{} {s}", rep.branch)),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn clone(
    cwd: &Path,
    out: &Out,
    bar: &Bar,
    url: String,
    dir: Option<PathBuf>,
    branch: Option<String>,
    (no_checkout, run_cache): (bool, bool),
    conn: RemoteConn,
    json: bool,
) -> dvx_engine::Result<()> {
    let url = absolute_url(cwd, url);
    let dir = match dir {
        Some(d) => cwd.join(d),
        None => {
            let last = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            if last.is_empty() || last.contains(':') {
                return Err(StoreError::InvalidPath {
                    path: url,
                    reason: "cannot name a folder after this URL".into(),
                }
                .into());
            }
            cwd.join(last)
        }
    };
    let rep = sync::clone(
        &dir,
        config_of(url, conn),
        branch.as_deref(),
        no_checkout,
        run_cache,
        bar,
    )?;
    if json {
        out.json(&rep);
        return Ok(());
    }
    out.say(&format!("cloned into {}", rep.root));
    say_fetch(out, &rep.fetch);
    match (&rep.branch, &rep.checkout) {
        (Some(b), Some(c)) => out.say(&format!(
            "checked out {b} at {}: wrote {} ({})",
            c.commit.short(),
            count(c.written, "file"),
            human_bytes(c.bytes_written)
        )),
        (Some(b), None) => out.say(&format!(
            "on branch {b}; no data checked out (bring it with `dvx pull [PATH...]`)"
        )),
        (None, _) => out.say("the remote has no branches yet"),
    }
    Ok(())
}

pub fn status(cwd: &Path, out: &Out, remote: String, json: bool) -> dvx_engine::Result<()> {
    let repo = Repo::open(cwd, Access::Read)?;
    let name = (!remote.is_empty()).then_some(remote);
    let remote = Remote::open(&repo, name.as_deref())?;
    let st = Project(&repo).remote_status(&remote, true)?;
    if json {
        out.json(&st);
        return Ok(());
    }
    out.say(&format!("remote {} ({})", st.remote, st.url));
    for b in &st.branches {
        let r = b.remote.map(|r| r.short()).unwrap_or_else(|| "-".into());
        out.say(&format!(
            "  {:<20} local {}  remote {}  {}",
            b.branch,
            b.local.short(),
            r,
            b.state
        ));
    }
    if st.objects_to_push == 0 {
        out.say("everything is pushed");
    } else {
        out.say(&format!(
            "not pushed: {} ({})",
            count(st.objects_to_push, "object"),
            human_bytes(st.bytes_to_push)
        ));
    }
    Ok(())
}

/// The source of an import: one of this project's remotes by name, or a URL.
pub fn source_config(repo: &Repo, cwd: &Path, url: String, conn: RemoteConn) -> RemoteConfig {
    match repo.config.remote.get(&url) {
        Some(rc) => rc.clone(),
        None => config_of(absolute_url(cwd, url), conn),
    }
}

pub fn say_import(out: &Out, rep: &dvx_engine::import::ImportReport, json: bool) {
    if json {
        out.json(rep);
    } else if !rep.changed {
        out.say(&format!(
            "{} is up to date with {}:{} at {}",
            rep.dest,
            rep.source.url,
            rep.source.path,
            rep.source.commit.short()
        ));
    } else {
        out.say(&format!(
            "imported {}:{} at {} into {}: wrote {} ({})",
            rep.source.url,
            rep.source.path,
            rep.source.commit.short(),
            rep.dest,
            count(rep.files_written, "file"),
            human_bytes(rep.bytes_written)
        ));
    }
}
