//! `dvx add`.

use std::path::PathBuf;

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes};

/// Track files or folders: hash, store, and commit them.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  dvx add data/raw.csv\n  dvx add images/ labels.csv -m \"first labelled batch\"\n  dvx add 'data/*.csv'\n\nIn a git repo the paths are added to .gitignore, and dvx.lock (commit it to git) pins their ids."
)]
pub struct Args {
    /// Files, folders or glob patterns.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx add"))?;
    let rels = ctx.rel_args(&repo, &a.paths, true)?;
    let rep = repo.add(&rels, a.message, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    let shown: Vec<String> = rep.paths.iter().map(|r| ctx.show(&repo, r)).collect();
    ctx.out.say(&format!(
        "added {} ({}, {}; read {}, {})",
        shown.join(", "),
        count(rep.files, "file"),
        human_bytes(rep.bytes),
        count(rep.files_read, "file"),
        human_bytes(rep.bytes_read)
    ));
    match rep.commit {
        Some(id) => ctx.out.say(&format!(
            "commit {} on {}",
            id.short(),
            rep.branch.as_deref().unwrap_or("detached HEAD")
        )),
        None => ctx.out.say("nothing changed: no new commit"),
    }
    Ok(())
}
