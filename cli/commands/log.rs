//! `dvx log`.

use dvx_engine::store::{Access, Repo};

use super::Ctx;
use crate::output;

/// List commits, newest first.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  dvx log\n  dvx log -n 5 --json\n  dvx log experiment")]
pub struct Args {
    /// Start from this revision (default HEAD).
    rev: Option<String>,
    /// Show at most N commits.
    #[arg(short = 'n', long, value_name = "N")]
    max_count: Option<usize>,
}

pub fn run(a: Args, ctx: &Ctx) -> dvx_engine::Result<()> {
    let repo = Repo::open(&ctx.cwd, Access::Read)?;
    let entries = repo.log(a.rev.as_deref(), a.max_count)?;
    if repo.nothing_fetched() {
        ctx.out.note("nothing fetched yet: run `dvx pull`");
    }
    if ctx.json {
        ctx.out.json(&entries);
    } else {
        output::print_log(ctx.out, &entries);
    }
    Ok(())
}
