//! `dvx checkout`.

use std::path::PathBuf;

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes};

/// Restore the workspace (or some paths) exactly as a commit has it.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx checkout HEAD~1              # the previous commit (detached)\n  dvx checkout main                # back to the branch\n  dvx checkout v1 data/raw.csv     # one path from a tag; HEAD stays\n  dvx checkout                     # the commit dvx.lock pins (after `git checkout`)\n\nRefuses to overwrite uncommitted changes unless --force."
)]
pub struct Args {
    /// Revision: branch, tag, commit id (prefix), HEAD~N. Default: the commit in dvx.lock.
    rev: Option<String>,
    /// Restore only these paths.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Discard uncommitted changes.
    #[arg(short, long)]
    force: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx checkout"))?;
    let rels = ctx.rel_args(&repo, &a.paths, false)?;
    let rep = repo.checkout(a.rev.as_deref(), &rels, a.force, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    if let Some(r) = &rep.revision {
        ctx.out.revision(r, false);
    }
    let at = match (&rep.branch, rels.is_empty()) {
        (Some(b), _) => format!("on branch {b} at {}", rep.commit.short()),
        (None, true) => format!("at {} (detached HEAD)", rep.commit.short()),
        (None, false) => format!("from {}", rep.commit.short()),
    };
    ctx.out.say(&format!(
        "checked out {at}: wrote {} ({}), deleted {}, {} already matched",
        count(rep.written, "file"),
        human_bytes(rep.bytes_written),
        rep.deleted,
        rep.unchanged
    ));
    Ok(())
}
