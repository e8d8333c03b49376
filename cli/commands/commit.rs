//! `dvx commit`.

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output::{count, human_bytes};

/// Snapshot every tracked path as a new commit.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx commit -m \"cleaned outliers\"")]
pub struct Args {
    #[arg(short, long)]
    message: Option<String>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx commit"))?;
    let rep = repo.commit(a.message, &ctx.bar)?;
    if ctx.json {
        ctx.out.json(&rep);
        return Ok(());
    }
    match rep.commit {
        Some(id) => ctx.out.say(&format!(
            "commit {} on {} ({}, {}; read {})",
            id.short(),
            rep.branch.as_deref().unwrap_or("detached HEAD"),
            count(rep.files, "file"),
            human_bytes(rep.bytes),
            count(rep.files_read, "changed file")
        )),
        None => ctx.out.say("nothing to commit: tracked data is unchanged"),
    }
    Ok(())
}
