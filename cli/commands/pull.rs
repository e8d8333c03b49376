//! `dvx pull`.

use std::path::PathBuf;

use dvx_engine::remote::{Remote, SyncStatus};
use dvx_engine::store::{Access, Repo};
use dvx_engine::sync;

use super::Ctx;
use crate::output::{count, human_bytes, print_fetch};

/// Fetch the current branch and bring the workspace to it (all of it, or only PATHs).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx pull\n  dvx pull data/images/cats     # only the bytes these paths need\n  dvx pull -r backup --branch dev\n\nThe local branch moves forward to the remote's; dvx never merges: if both have new\ncommits, pull stops and says so."
)]
pub struct Args {
    /// Only these tracked paths.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Remote name or URL (default: the default remote).
    #[arg(short, long)]
    remote: Option<String>,
    /// Branch to pull (default: the current one).
    #[arg(short, long)]
    branch: Option<String>,
    /// Overwrite uncommitted changes.
    #[arg(long)]
    force: bool,
    /// Leave the run cache out: push only what the pushed commits reach; fetch no
    /// outputs of other runs and add nothing to the local run cache.
    #[arg(long)]
    no_run_cache: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let out = ctx.out;
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx pull"))?;
    let paths = ctx.rel_args(&repo, &a.paths, false)?;
    let mut remote = Remote::open(&repo, a.remote.as_deref())?;
    remote.run_cache = !a.no_run_cache;
    let rep = sync::pull(
        &repo,
        &remote,
        a.branch.as_deref(),
        &paths,
        a.force,
        &ctx.bar,
    )?;
    if ctx.json {
        out.json(&rep);
        return Ok(());
    }
    print_fetch(out, &rep.fetch);
    match (&rep.checkout, rep.status) {
        (Some(c), _) if rep.pinned.is_some() => out.say(&format!(
            "checked out {} ({}), what dvx.lock pins; branch {} is at the remote's newer commit: wrote {} ({})",
            c.commit.short(),
            c.branch
                .as_deref()
                .map_or("detached HEAD".into(), |b| format!("on branch {b}")),
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
