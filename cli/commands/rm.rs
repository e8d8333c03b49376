//! `dvx rm`.

use std::path::PathBuf;

use dvx_engine::store::{Access, Repo};

use super::Ctx;

/// Stop tracking paths (their files stay on disk).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx rm data/scratch.csv")]
pub struct Args {
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[arg(short, long)]
    message: Option<String>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx rm"))?;
    let rels = ctx.rel_args(&repo, &a.paths, false)?;
    let rep = repo.rm(&rels, a.message)?;
    if ctx.json {
        ctx.out.json(&rep);
    } else if let Some(id) = rep.commit {
        ctx.out.say(&format!(
            "stopped tracking {} (files stay on disk); commit {}",
            rels.join(", "),
            id.short()
        ));
    }
    Ok(())
}
