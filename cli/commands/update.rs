//! `dvx update`.

use std::path::PathBuf;

use dvx_engine::store::{Access, Repo};

use super::import::print_import;
use super::Ctx;

/// Move an import to the newest commit of the branch or tag it follows (or to --rev).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx update data/images\n  dvx update data/images --rev v4")]
pub struct Args {
    #[arg(value_name = "DEST")]
    dest: PathBuf,
    #[arg(long)]
    rev: Option<String>,
    /// Discard local changes to the imported data.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Write("dvx update"))?;
    let rel = ctx.rel(&repo, &a.dest)?;
    let rep = dvx_engine::import::update(&repo, &rel, a.rev.as_deref(), a.force, &ctx.bar)?;
    print_import(ctx.out, &rep, ctx.json);
    Ok(())
}
